//! The optimistic path: blocks whose transactions' keys are known only by
//! running them (open accesses, `contract.rs`), or any block under
//! [`Scheduler::Optimistic`](super::Scheduler::Optimistic).
//!
//! # The algorithm
//! 0. **Preload** (phase 0 of the block's team): the caller lists every
//!    declared and hinted key of the block once (`sequential::list`); the
//!    participants read them in claimed pieces ([`Reader::read_batch`],
//!    the database's seeks of each piece in key order), and the caller
//!    fills the overlay from the pieces (`sequential::fill`) and runs the
//!    begin hook: the overlay the sequential engine's preload makes, the
//!    reads spread over the team (on RocksDB they are most of a block's
//!    time). A failed read of any piece abandons the block with the first
//!    failed piece's error, as the sequential engine's one batch does.
//!    This phase alone, then every transaction in order on the caller
//!    ([`After::InOrder`]: no chunk, the helpers leave after it), is how
//!    the parallel executor runs a block in order where reads are costly
//!    (`executor.rs`, `in_order`): the sequential engine with its reads
//!    shared.
//!
//! The block then runs in *chunks* of consecutive transactions (32, then
//! four times larger up to [`MAX_CHUNK`]: small first, so that a block
//! that keeps aborting is found early). For each chunk:
//! 1. **Front and back** (a phase of the block's team, in parallel): the
//!    calling thread executes the chunk's *front*, one transaction at a
//!    time in block order, with the sequential engine's own step
//!    ([`InOrder::execute_on`]) on its private *delta* over the overlay
//!    (`sequential::Layered`: a key is copied into the delta at its first
//!    touch, or read from the reader into it; the overlay is not written),
//!    or on the overlay itself when the team has no helper (nothing else
//!    reads it then); nothing it executes needs validating. The helpers
//!    *speculate* the chunk from its *back*, [`PIECE`] transactions at a
//!    time, until the two meet. (With
//!    [`EngineConfig::speculate_all`](super::EngineConfig::speculate_all),
//!    the calling thread speculates from the back too: every transaction
//!    is speculated.) At one thread the whole chunk is the front: the
//!    sequential engine's steps, 1.01x its instructions on `token`; with
//!    helpers, the front costs the caller the delta's copies (the caller
//!    alone, all fronts: 1.12x) where speculating and settling its share
//!    cost it 1.27-1.32x (benches/README.md, sixteenth session).
//!    A speculated transaction runs against the overlay as the previous
//!    chunks left it (read-only while the chunk speculates; it holds
//!    every declared and hinted key from the block's batch read, so a
//!    hinted key's first read is an overlay read), through a
//!    [`SpecView`] that records how it *first* read each key (the overlay
//!    entry's version: how many times the block wrote it so far; or, for a
//!    key the overlay lacks, the reader's value, an absent key as `None`,
//!    a counter included) and keeps every write
//!    local: a final value, or, for adds to a counter it never read, their
//!    sum (so that credits to one account do not conflict). A transaction
//!    sees one value per key (its first read, then its own writes), never
//!    two versions of one key. A speculation that meets any error is
//!    dropped. In a chunk holding open transactions, declared ones are
//!    *known writers*: a first read of a key that a declared transaction
//!    before it in the chunk writes (its declaration says so; `known.rs`
//!    lists them per chunk) is an *estimate*, and the speculation stops
//!    there instead of guessing a value that is about to change
//!    (`BlockStats::estimates`).
//! 2. **Merge, then validate and commit the back, in block order** (on the
//!    calling thread): the delta is merged into the overlay
//!    (`sequential::merge`: an entry the front wrote replaces the
//!    overlay's value and version, one the overlay lacked is inserted, an
//!    untouched copy is dropped). Then transaction `i` of the back is valid
//!    when no key it read was written since it
//!    read it: each overlay key is at the version it saw, each key it read
//!    from the reader still unwritten (versions only grow, so an equal
//!    version is an unchanged value). If so its writes, block sums and
//!    status are applied as they are ([`InOrder::apply`]); if not (or its
//!    speculation was dropped), it is executed again, on the overlay itself
//!    ([`InOrder::execute`]), exactly as the sequential engine runs it.
//!    A key first read from the overlay is found again by the bucket its
//!    read found it in (`sequential::at_bucket`: no hash probe, for its
//!    validation and its write), while the entry is still there: the
//!    overlay removes nothing during a block, so an entry moves only when
//!    the table grows, and the bucket's key is compared, so a moved entry
//!    costs a probe, never a wrong entry. Settling `token` (1,000 calls)
//!    took 23% fewer instructions with it.
//! 3. **Bound**: a chunk where more than half the speculated transactions
//!    (at least [`MIN_BOUND_SAMPLE`]) were
//!    executed again shows a block whose transactions depend on each other
//!    (one hot contract): the rest of the block runs in order on the
//!    overlay, without speculation (`PathReason::Aborts`). Each transaction
//!    is speculated at most once and executed at most once more: no
//!    livelock, and memory bounded by one chunk's read and write sets.
//!
//! # Why the result is the sequential one
//! Invariant (`sequential.rs`, [`InOrder`]): when transaction `i` is
//! validated, the overlay holds the sequential state after transaction
//! `i - 1`; when a chunk's phase opens, the state after the chunk before.
//!
//! *The front.* During the phase nobody writes the overlay (every
//! participant holds its read lock). The caller's delta starts empty and
//! receives exactly the writes of the front's transactions, in block
//! order, plus copies of the entries they touched: a key's entry in the
//! delta is, at any moment, the overlay's entry (a copy at first touch:
//! same value and version) or, for a key the overlay lacks, the reader's
//! value unwritten (what `sequential::load_entry` puts into the overlay),
//! updated by the writes of the front so far. So the view of the delta
//! over the overlay is the state the overlay would hold had the front run
//! on it directly, and each front transaction runs, with the sequential
//! engine's own step, on the sequential state after the transaction
//! before it. The merge then makes the overlay that state: a written
//! entry's value and version replace the overlay's (its version is the
//! overlay's plus the front's writes of the key: versions still only
//! grow), a new entry is inserted as `load_entry` would have inserted it,
//! an untouched copy equals the overlay's entry and is dropped. The
//! invariant holds at the front's end, and the back is settled below, its
//! speculations having read the overlay as it was before the front: every
//! key the front wrote now has a higher version than they saw, or, if they
//! read it from the reader, is no longer unwritten, so validation finds
//! them out.
//!
//! *The back.* A chain's rules are a deterministic function of the values
//! their reads return (the [`Chain`] contract), and a speculation's reads
//! return either a first read's value (the overlay, unchanged during the
//! chunk, or the recorded reader value) or the transaction's own writes.
//! If no key it read was written since (its version unchanged, or still
//! unwritten), every first read equals the current value, and running `i` now would
//! make the same reads, return the same values, take the same branches,
//! and make the same writes, sums and status: applying the speculation is
//! running it. An add to a counter the transaction never read commutes
//! with everything before it, so it is applied to the current value (as
//! the sequential engine's add would be; its overflow is the same error).
//! A subtraction always reads first (it may fail below zero), so it is
//! validated like any read. A re-execution is the sequential engine's own
//! step. By induction the invariant holds after `i`, and at the end of the
//! block the overlay, sums and statuses are the sequential engine's.
//! A declared key's access is held to its declaration during speculation
//! exactly as in the sequential view (`sequential::resolve`, one rule).
//! A speculation stopped at an estimate (or dropped) is never used: its
//! transaction runs again in step 2, the sequential engine's own step, so
//! estimates only decide which transactions run twice, never a value.
//! A declared transaction is validated like any other: an open
//! transaction before it may write one of its keys (a `TRANSFER` to its
//! sender), which no declaration announces.
//!
//! # Synchronisation
//! The calling thread leads a team (`team.rs`: it works from the first
//! instant, `threads - 1` helper jobs join on the pool and stay between
//! phases, so a block pays no hand-over to the pool and no wake-up per
//! chunk; the team's phases and memory ordering are argued there). Phase
//! 0 reads the preload's keys; phase `k + 1` speculates chunk `k`; between
//! phases the caller fills the overlay (after phase 0) or settles the
//! chunk. What this module adds ([`Speculations`]):
//! * **Claims.** In phase 0 each participant takes the keys `read_piece`
//!   at a time from the phase's `claimed` counter (`fetch_add`, `Relaxed`:
//!   only atomicity matters), so each key is read exactly once, by its
//!   claimer. In a speculation phase the chunk's unclaimed range is one
//!   word (`ends`: front in the high 32 bits, back in the low); the caller
//!   takes one transaction from the front, a speculating participant
//!   [`PIECE`] from the back, each by a compare-exchange of the whole word
//!   from a value whose front is below its back (`Relaxed`: only the
//!   partition matters; results are published as below). One word, so the
//!   claims are totally ordered: each transaction is claimed exactly once,
//!   the front is a prefix of the chunk taken in order, and the back the
//!   rest.
//! * **The front** is counted in `finished` by the caller, with `Release`,
//!   once it executed its last claimed transaction (the thread that then
//!   waits for the phase to complete). Its delta is its own (no other
//!   thread ever sees it); the overlay it reads through is read-locked by
//!   the caller for its front, as by every speculating participant, so it
//!   is unchanged during the phase; the caller merges the delta under the
//!   write lock after the phase is complete. With no helper the caller
//!   takes the write lock for its front instead (no other participant
//!   exists to read the overlay). A front transaction that fails
//!   abandons the block: the caller goes on claiming (without executing)
//!   until the front meets the back, so the phase completes as usual, and
//!   returns the error after it.
//! * **Reads.** A claimer of phase 0 writes its piece's values (or its
//!   error) into the piece's `reads` slot (its own `Mutex`, never
//!   contended) before it counts the piece's keys in `finished[0]` with
//!   `Release`; the caller takes every slot only once `finished[0]`
//!   (`Acquire`) covers every key, and fills the overlay under its write
//!   lock, before phase 1 opens (the same argument as for results below).
//! * **Results.** A claimer writes each speculation into the
//!   transaction's slot (its own `Mutex`, never contended: one writer, and
//!   the caller takes it only later), then adds the piece's size to the
//!   phase's `finished` counter with `Release`. The phase is complete when
//!   `finished` (read with `Acquire`) reaches the chunk's size, so every
//!   slot write happens-before the caller's check, and the caller, which
//!   settles only after [`Lead::phase`] saw the phase complete, finds every
//!   speculation in its slot.
//! * **The overlay** sits in an `RwLock` for the block: participants hold
//!   its read lock while they work on a phase, the caller its write lock
//!   while it settles between phases. Settling of chunk `k` thus excludes,
//!   and (the lock's release/acquire) happens-before, every read of chunk
//!   `k + 1`'s speculations; a helper that finished its last piece of a
//!   phase releases its read lock a few instructions later, so the
//!   caller's write lock waits only for that.
//! * **Known writers** (`known.rs`) of chunk `k` are listed during phase
//!   `k` (the preload for chunk 0, chunk `k - 1`'s speculation for the
//!   others), as one extra piece of it: its claimer (`listing[k]`,
//!   `swap`) builds them into `next_known` (its own `Mutex`, never
//!   contended: the caller takes it only later) and counts the piece in
//!   `finished[k]` with `Release`, which [`Work::complete`] waits for. The
//!   caller, once phase `k` is complete, swaps them into the overlay's
//!   state under its write lock, and phase `k + 1`'s participants read
//!   them under the read lock: ordered before every speculation of chunk
//!   `k` exactly as the overlay's settling is.
//! * **Panics**: a participant's panic aborts the team (`team.rs`), every
//!   phase then reports itself complete and hands out nothing; the panic
//!   is resumed after the team and contained by the executor. The locks
//!   do not poison; the block is abandoned.
//!
//! * **Buffers** ([`SpecScratch`]): each transaction index's read and
//!   write set buffer, kept across blocks, behind its own `Mutex`; it
//!   carries capacity only (handed back cleared), so its protocol needs no
//!   ordering argument: whichever order the take and the give-back meet
//!   in, a speculation starts from an empty vector (the loom model below
//!   takes and gives back the buffers as `speculate` and `settle` do).
//!
//! No flag says "done" apart from the per-phase counters, and none is
//! set before the work it reports (the "done while a validation is still
//! running" bug class: validation runs only on the caller, after its
//! phase completed). The loom model below checks this protocol (claims,
//! slots, counters and the overlay's lock, with the same orderings, over
//! the preload's phase and a speculation phase) under every interleaving
//! of a caller and a helper with up to three preemptions.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use crossbeam_utils::CachePadded;
use hashbrown::HashTable;
use parking_lot::{Mutex, RwLock};

use super::contract::{
    Accesses, Chain, Key, Mode, Reader, StateError, StateResult, Value, View, MAX_SUMS,
};
use super::known::KnownWriters;
use super::outcome::Executed;
use super::sequential::{
    add_sum, at_bucket, counter_of, fill, list, lookup, merge, minus, plus, record_key, resolve,
    settable, value_at, Applied, Entry, InOrder, Layered, Listed, Need, Overlay, SeqScratch,
};
use super::team::{self, Aborted, Lead, On, Work};

/// The first chunk's size: small, so a block that keeps aborting is found
/// early and costs little.
pub(crate) const FIRST_CHUNK: usize = 32;

/// The largest chunk.
pub(crate) const MAX_CHUNK: usize = 512;

/// What the optimistic path did in one block.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Transactions run in the path's chunks: the caller's in-order
    /// fronts and the speculated ones.
    pub(crate) speculated: usize,
    /// Speculations checked against the overlay.
    pub(crate) validations: usize,
    /// Transactions executed a second time (a failed validation or a
    /// dropped speculation): incarnations beyond the first.
    pub(crate) reexecuted: usize,
    /// Speculations stopped at an estimate: a first read of a key that a
    /// declared transaction before it in its chunk writes (`known.rs`).
    pub(crate) estimates: usize,
    /// Whether the bound engaged (the rest of the block ran in order).
    pub(crate) bounded: bool,
    /// The preload, wall time: keys listed, read (phase 0), the overlay
    /// filled and the begin hook run.
    pub(crate) preload: std::time::Duration,
    /// Within it, phase 0 (the keys read by the team), wall time.
    pub(crate) read: std::time::Duration,
}

/// What one transaction wrote to one key, locally.
#[derive(Clone, Debug)]
enum Written<V> {
    /// Nothing (only read).
    Nothing,
    /// Its value now.
    Set(V),
    /// Adds to a counter it never read, summed.
    Add(u64),
}

/// How a speculation first read a key (its read set).
#[derive(Clone, Debug)]
enum Seen<V> {
    /// From the overlay, at `version`, in `bucket` (the value is read again
    /// from the overlay, unchanged during the chunk, when needed: no copy
    /// kept; validation and the write's application find the entry by its
    /// bucket, without a probe, while the table has not grown:
    /// [`at_bucket`]).
    Overlay { version: u64, bucket: usize },
    /// From the reader (the overlay lacked the key): this value.
    Reader(Option<V>),
}

/// One key a speculation touched.
#[derive(Clone, Debug)]
struct Local<K, V> {
    key: K,
    hash: u64,
    /// How it first read the key, if it read it.
    read: Option<Seen<V>>,
    /// What it wrote.
    write: Written<V>,
}

/// A transaction's speculation: its status, read and write sets, sums.
struct Speculation<C: Chain> {
    status: Result<(), C::Failure>,
    locals: Vec<Local<C::Key, C::Value>>,
    sums: [u64; MAX_SUMS],
}

/// How a speculation ended.
enum Speculated<C: Chain> {
    /// It ran to its end: to be validated.
    Ran(Speculation<C>),
    /// It stopped at an estimate (`known.rs`): to run again in order.
    Estimate,
    /// It met an error: to run again in order (the error, if real,
    /// comes back there).
    Dropped,
}

/// What the participants of a phase read (under the lock's read side) and
/// the caller changes between phases (under its write side).
struct Settled<'a, K, V> {
    /// The overlay: the sequential state after the chunks settled so far.
    table: HashTable<Entry<K, V>>,
    /// The open chunk's known writers (`known.rs`).
    known: KnownWriters<'a, K>,
}

/// Above this many keys, a speculation indexes its keys by hash.
const INDEX_ABOVE: usize = 16;

/// The view of one speculating transaction.
struct SpecView<'a, C: Chain, R> {
    /// The overlay as the previous chunks left it (shared, unchanging).
    table: &'a HashTable<Entry<C::Key, C::Value>>,
    reader: &'a R,
    accesses: &'a Accesses<C::Key>,
    /// The chunk's known writers and this transaction's block index (none
    /// when exploring).
    known: Option<(&'a KnownWriters<'a, C::Key>, usize)>,
    /// A first read met a known writer: the speculation is an estimate.
    estimate: bool,
    locals: Vec<Local<C::Key, C::Value>>,
    /// Index of `locals` by key hash, once there are many.
    index: HashTable<u32>,
    sums: [u64; MAX_SUMS],
}

impl<'a, C: Chain, R: Reader<C::Key, C::Value>> SpecView<'a, C, R> {
    /// A transaction's view on `table` (its first reads of keys the table
    /// lacks go to `reader`), nothing touched yet.
    fn new(
        table: &'a HashTable<Entry<C::Key, C::Value>>,
        reader: &'a R,
        accesses: &'a Accesses<C::Key>,
        known: Option<(&'a KnownWriters<'a, C::Key>, usize)>,
        locals: Vec<Local<C::Key, C::Value>>,
    ) -> Self {
        debug_assert!(locals.is_empty());
        SpecView {
            table,
            reader,
            accesses,
            known,
            estimate: false,
            locals,
            index: HashTable::new(),
            sums: [0; MAX_SUMS],
        }
    }

    /// The local entry of `key` (resolved and checked against the
    /// declaration for `need`), created untouched.
    fn local(&mut self, key: &C::Key, need: Need) -> StateResult<usize, R::Error> {
        let (hash, _) = resolve(self.accesses, key, need)?;
        let found = if self.locals.len() > INDEX_ABOVE {
            let locals = &self.locals;
            self.index
                .find(hash, |&i| locals[i as usize].key == *key)
                .map(|&i| i as usize)
        } else {
            self.locals
                .iter()
                .position(|l| l.hash == hash && l.key == *key)
        };
        if let Some(i) = found {
            return Ok(i);
        }
        let i = self.locals.len();
        self.locals.push(Local {
            key: key.clone(),
            hash,
            read: None,
            write: Written::Nothing,
        });
        if self.locals.len() > INDEX_ABOVE {
            if self.index.is_empty() {
                let locals = &self.locals;
                for (j, l) in locals.iter().enumerate() {
                    self.index
                        .insert_unique(l.hash, j as u32, |&k| locals[k as usize].hash);
                }
            } else {
                let locals = &self.locals;
                self.index
                    .insert_unique(hash, i as u32, |&k| locals[k as usize].hash);
            }
        }
        Ok(i)
    }

    /// The value the key held before this transaction (its first read
    /// recorded: the overlay's version, or the reader's value).
    fn base(&mut self, i: usize) -> StateResult<Option<C::Value>, R::Error> {
        let l = &mut self.locals[i];
        match &l.read {
            Some(Seen::Reader(v)) => return Ok(v.clone()),
            Some(Seen::Overlay { bucket, .. }) => {
                // The table is unchanged during the chunk (its read lock
                // is held for the whole phase): the entry is where the
                // first read found it, so the key needs no comparison.
                if let Some(v) = value_at(self.table, *bucket, &l.key) {
                    return Ok(v.clone());
                }
            }
            None => {
                // A first read of a key an earlier declared transaction of
                // the chunk writes: an estimate, not a guess (`known.rs`).
                if let Some((known, me)) = self.known {
                    if known.written_before(&l.key, l.hash, me) {
                        self.estimate = true;
                        return Err(StateError::Invariant(
                            "an estimate: a declared transaction before it writes this key",
                        ));
                    }
                }
            }
        }
        if let Some((v, version, bucket)) = lookup(self.table, &l.key, l.hash) {
            l.read = Some(Seen::Overlay { version, bucket });
            return Ok(v.clone());
        }
        let v = self.reader.read(&l.key).map_err(StateError::Read)?;
        l.read = Some(Seen::Reader(v.clone()));
        Ok(v)
    }

    /// The key's value as this transaction sees it now.
    fn now(&mut self, i: usize) -> StateResult<Option<C::Value>, R::Error> {
        match &self.locals[i].write {
            Written::Set(v) => Ok(Some(v.clone())),
            Written::Nothing => self.base(i),
            Written::Add(a) => {
                let a = *a;
                let base = self.base(i)?;
                let key = &self.locals[i].key;
                let n = counter_of::<_, C::Value, R::Error>(key, base.as_ref())?;
                let v = C::Value::from_counter(plus(n, a)?);
                self.locals[i].write = Written::Set(v.clone());
                Ok(Some(v))
            }
        }
    }

    fn counter_now(&mut self, i: usize) -> StateResult<u64, R::Error> {
        // What `now` would return, read in place (no value cloned) where
        // it is already known: the transaction's own value, or its first
        // read's.
        let l = &self.locals[i];
        match (&l.write, &l.read) {
            (Written::Set(v), _) => return counter_of::<_, C::Value, R::Error>(&l.key, Some(v)),
            (Written::Nothing, Some(Seen::Reader(v))) => {
                return counter_of::<_, C::Value, R::Error>(&l.key, v.as_ref())
            }
            (Written::Nothing, Some(Seen::Overlay { bucket, .. })) => {
                if let Some(v) = value_at(self.table, *bucket, &l.key) {
                    return counter_of::<_, C::Value, R::Error>(&l.key, v.as_ref());
                }
            }
            _ => {}
        }
        let v = self.now(i)?;
        counter_of::<_, C::Value, R::Error>(&self.locals[i].key, v.as_ref())
    }

    fn counter_key(&self, i: usize) -> StateResult<(), R::Error> {
        let key = &self.locals[i].key;
        if key.is_counter() {
            Ok(())
        } else {
            Err(record_key(key))
        }
    }
}

impl<C: Chain, R: Reader<C::Key, C::Value>> View<C::Key, C::Value> for SpecView<'_, C, R> {
    type ReadError = R::Error;

    fn get(&mut self, key: &C::Key) -> StateResult<Option<C::Value>, R::Error> {
        let i = self.local(key, Need::Read)?;
        if key.is_counter() {
            return Ok(Some(C::Value::from_counter(self.counter_now(i)?)));
        }
        self.now(i)
    }

    fn counter(&mut self, key: &C::Key) -> StateResult<u64, R::Error> {
        let i = self.local(key, Need::Read)?;
        self.counter_now(i)
    }

    fn set(&mut self, key: &C::Key, value: C::Value) -> StateResult<(), R::Error> {
        let i = self.local(key, Need::Write)?;
        settable(key, &value)?;
        self.locals[i].write = Written::Set(value);
        Ok(())
    }

    fn add(&mut self, key: &C::Key, amount: u64) -> StateResult<(), R::Error> {
        let i = self.local(key, Need::Add)?;
        self.counter_key(i)?;
        let write = match (&self.locals[i].write, &self.locals[i].read) {
            // Never read: a lazy add, applied to the value at commit.
            (Written::Nothing, None) => Written::Add(amount),
            (Written::Add(a), _) => Written::Add(plus(*a, amount)?),
            _ => Written::Set(C::Value::from_counter(plus(self.counter_now(i)?, amount)?)),
        };
        self.locals[i].write = write;
        Ok(())
    }

    fn sub(&mut self, key: &C::Key, amount: u64) -> StateResult<(), R::Error> {
        let i = self.local(key, Need::Add)?;
        self.counter_key(i)?;
        // A subtraction may fail below zero: it reads (and is validated).
        let n = minus(self.counter_now(i)?, amount)?;
        self.locals[i].write = Written::Set(C::Value::from_counter(n));
        Ok(())
    }

    fn sum(&mut self, slot: usize, amount: u64) -> StateResult<(), R::Error> {
        add_sum(&mut self.sums, slot, amount)
    }
}

/// Speculates `tx` (block index `me`) on `settled`.
fn speculate<C: Chain, R: Reader<C::Key, C::Value>>(
    chain: &C,
    block: &C::Block,
    tx: &C::Tx,
    me: usize,
    settled: &Settled<'_, C::Key, C::Value>,
    reader: &R,
    buffer: Option<&Buffer<C::Key, C::Value>>,
) -> Speculated<C> {
    let mut view = SpecView::<C, R>::new(
        &settled.table,
        reader,
        chain.accesses(tx),
        Some((&settled.known, me)),
        buffer.map_or_else(Vec::new, |b| std::mem::take(&mut *b.lock())),
    );
    let status = chain.execute(block, tx, false, &mut view);
    // Checked whatever the chain made of the error: a speculation that
    // met an estimate is never used.
    let ended = match status {
        Ok(status) if !view.estimate => {
            return Speculated::Ran(Speculation {
                status,
                locals: view.locals,
                sums: view.sums,
            })
        }
        _ if view.estimate => Speculated::Estimate,
        _ => Speculated::Dropped,
    };
    recycle(buffer, view.locals);
    ended
}

/// Read and write sets kept across blocks, one buffer per transaction
/// index (a speculation takes its index's, the settling gives it back
/// emptied): a speculation allocates nothing once the buffers have grown.
/// Each buffer's `Mutex` is never contended: a transaction's claimer takes
/// it during its phase, the caller gives it back while it settles, after
/// the phase completed (the same ordering as the slots'). Nothing depends
/// on that order: a buffer carries only capacity (it is given back
/// cleared), so a speculation that found its buffer taken or empty
/// allocates one, as before, and no value crosses blocks through it.
pub(crate) struct SpecScratch<K, V> {
    /// By transaction index: an empty buffer (capacity kept).
    buffers: Vec<Buffer<K, V>>,
    /// The caller's delta (`sequential::Layered`), empty between blocks
    /// (capacity kept).
    delta: HashTable<Entry<K, V>>,
}

/// One transaction index's read and write set buffer ([`SpecScratch`]).
type Buffer<K, V> = Mutex<Vec<Local<K, V>>>;

impl<K, V> Default for SpecScratch<K, V> {
    fn default() -> Self {
        SpecScratch {
            buffers: Vec::new(),
            delta: HashTable::new(),
        }
    }
}

impl<K, V> SpecScratch<K, V> {
    /// At least `n` buffers, at most [`KEPT_BUFFERS`].
    fn grow(&mut self, n: usize) {
        let n = n.min(KEPT_BUFFERS);
        if self.buffers.len() < n {
            self.buffers.resize_with(n, || Mutex::new(Vec::new()));
        }
    }
}

/// The largest buffer kept for the next block: a transaction that touched
/// many keys does not pin their memory for every later block.
const KEPT_LOCALS: usize = 16;

/// Transaction indexes with a kept buffer: what the scratch holds between
/// blocks stays bounded (at most `KEPT_BUFFERS * KEPT_LOCALS` entries of
/// about 128 bytes for the SPEC chain: 8 MiB, about 1 MiB for blocks of
/// 1,000 transfers); a larger block's later transactions allocate theirs.
const KEPT_BUFFERS: usize = 4096;

/// Gives `locals` back to `buffer`, emptied (dropped if it grew large).
fn recycle<K, V>(buffer: Option<&Buffer<K, V>>, mut locals: Vec<Local<K, V>>) {
    if let Some(buffer) = buffer.filter(|_| locals.capacity() <= KEPT_LOCALS) {
        locals.clear();
        *buffer.lock() = locals;
    }
}

/// The keys `tx` touches beyond its declaration, each once with the mode
/// of its use, when explored ([`Chain::explore`]) on `reader` alone (the
/// speculative view over an empty overlay: the reads it records are the
/// reader's values).
pub(crate) fn explore<C: Chain, R: Reader<C::Key, C::Value>>(
    chain: &C,
    block: &C::Block,
    tx: &C::Tx,
    reader: &R,
) -> StateResult<Vec<(C::Key, Mode)>, R::Error> {
    let empty = HashTable::new();
    let accesses = chain.accesses(tx);
    let mut view = SpecView::<C, R>::new(&empty, reader, accesses, None, Vec::new());
    chain.explore(block, tx, &mut view)?;
    Ok(view
        .locals
        .into_iter()
        .filter(|l| accesses.find(&l.key).is_none())
        .filter_map(|l| {
            let mode = match (&l.write, &l.read) {
                (Written::Set(_), _) => Mode::Write,
                (Written::Add(_), _) => Mode::Add,
                (Written::Nothing, Some(_)) => Mode::Read,
                (Written::Nothing, None) => return None,
            };
            Some((l.key, mode))
        })
        .collect())
}

/// Whether every key `spec` read is still as it saw it (same overlay
/// version, or still never written); a key read from the reader that the
/// overlay lacks is moved into it (taken out of `spec`).
fn valid<C: Chain, R: Reader<C::Key, C::Value>>(
    run: &mut InOrder<'_, C, R>,
    table: &mut HashTable<Entry<C::Key, C::Value>>,
    spec: &mut Speculation<C>,
) -> StateResult<bool, R::Error> {
    for l in &mut spec.locals {
        let holds = match &mut l.read {
            None => true,
            // Where the speculation found it (no probe), unless the table
            // grew since.
            &mut Some(Seen::Overlay { version, bucket }) => {
                match at_bucket(table, bucket, &l.key, l.hash) {
                    Some((_, now)) => now == version,
                    None => run.holds(table, &l.key, l.hash, Some(version), || None)?,
                }
            }
            Some(Seen::Reader(value)) => {
                let value = value.take();
                run.holds(table, &l.key, l.hash, None, || value)?
            }
        };
        if !holds {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The caller's share of a chunk (`chunk`, its range `ends`): one
/// transaction at a time claimed from the front and executed in block
/// order on `overlay` (the sequential engine's step). Returns how many it
/// claimed, and the first failure: after one it goes on claiming without
/// executing, so that the phase completes, and the block fails with it.
fn execute_front<C, R, T, O>(
    run: &mut InOrder<'_, C, R>,
    overlay: &mut O,
    chunk: &[T],
    ends: &AtomicU64,
) -> (usize, Option<StateError<R::Error>>)
where
    C: Chain,
    R: Reader<C::Key, C::Value>,
    T: std::borrow::Borrow<C::Tx>,
    O: Overlay<C, R>,
{
    let (mut claimed, mut failed) = (0, None);
    while let Some(i) = claim_front(ends) {
        debug_assert_eq!(i, claimed, "the front is claimed in order");
        claimed = i + 1;
        if failed.is_none() {
            if let Err(e) = run.execute_on(overlay, chunk[i].borrow()) {
                failed = Some(e);
            }
        }
    }
    (claimed, failed)
}

/// Fewest speculated transactions of a chunk that can engage the bound: a
/// chunk whose back was only a few transactions (a helper that came late)
/// says little about the block.
const MIN_BOUND_SAMPLE: usize = 8;

/// Transactions a participant claims at once in a speculation phase.
const PIECE: usize = 4;

/// The chunks of a block of `n` transactions: [`FIRST_CHUNK`], then four
/// times larger up to [`MAX_CHUNK`].
fn chunks(n: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let (mut from, mut size) = (0, FIRST_CHUNK);
    while from < n {
        let to = n.min(from + size);
        out.push((from, to));
        from = to;
        size = (size * 4).min(MAX_CHUNK);
    }
    out
}

/// One piece's values of the preload, in slot order (`None`: absent).
type Values<V> = Vec<Option<V>>;

/// One piece's read once done: its values, or the reader's error.
type ReadSlot<V, E> = Mutex<Option<Result<Values<V>, E>>>;

/// The phases of one block, for a team (`team.rs`): phase 0 reads the
/// preload's keys in claimed pieces; phase `k + 1` speculates chunk `k`'s
/// transactions on the overlay, in claimed pieces.
struct Speculations<'a, 'k, C: Chain, R: Reader<C::Key, C::Value>, T> {
    chain: &'k C,
    block: &'k C::Block,
    txs: &'k [T],
    reader: &'k R,
    /// The overlay and the open chunk's known writers. Read-locked by
    /// participants while a speculation phase is open, write-locked by the
    /// caller between phases to settle the chunk and list the next one's
    /// writers.
    state: &'a RwLock<Settled<'k, C::Key, C::Value>>,
    chunks: &'a [(usize, usize)],
    /// The preload's keys, in slot order (phase 0 reads them).
    keys: &'a [&'k C::Key],
    /// Keys per piece of phase 0.
    read_piece: usize,
    /// By piece of phase 0: the values its claimer read (or the read's
    /// error), taken by the caller once the phase is complete.
    reads: Vec<ReadSlot<C::Value, R::Error>>,
    /// Phase 0's next unclaimed key (later phases claim from `ends`).
    claimed: CachePadded<AtomicUsize>,
    /// Per phase: pieces finished, counted in keys or transactions (the
    /// caller's front included), plus one for the extra piece (`Release` by
    /// each piece's claimer, `Acquire` by [`Work::complete`]).
    finished: Vec<CachePadded<AtomicUsize>>,
    /// By transaction: its speculation, written by its piece's claimer,
    /// taken by the caller once the phase is complete.
    slots: Vec<Mutex<Option<Speculated<C>>>>,
    /// By transaction index (the first [`KEPT_BUFFERS`]): its read and write
    /// sets' buffer ([`SpecScratch`]).
    buffers: &'a [Buffer<C::Key, C::Value>],
    /// Per phase `k`: whether its extra piece (listing chunk `k`'s known
    /// writers: the chunk after the one it speculates) was claimed
    /// (`swap`, `Relaxed`: only atomicity matters).
    listing: Vec<AtomicBool>,
    /// The next chunk's known writers, listed by the claimer of the
    /// phase's extra piece, swapped in by the caller once it is complete.
    next_known: Mutex<KnownWriters<'k, C::Key>>,
    /// A participant panicked: no phase hands out work any more.
    aborted: AtomicBool,
    /// Per phase `k + 1`: chunk `k`'s unclaimed range (relative indices),
    /// its front in the high 32 bits, its back in the low. Invariant: front
    /// <= back; both only move towards each other, each by a
    /// compare-exchange of the whole word (the module docs' claims).
    ends: Vec<CachePadded<AtomicU64>>,
}

/// One claim from the front of the range word `cur`: the word after it and
/// the claimed transaction (relative index), or `None` once the front met
/// the back. Pure: [`claim_front`] and the loom model apply it by
/// compare-exchange.
#[inline]
fn front_step(cur: u64) -> Option<(u64, usize)> {
    let (f, b) = (cur >> 32, cur & 0xffff_ffff);
    (f < b).then(|| (((f + 1) << 32) | b, f as usize))
}

/// One claim of up to `piece` transactions from the back of the range
/// word `cur`: the word after it and the claimed relative range, never
/// below the front.
#[inline]
fn back_step(cur: u64, piece: u64) -> Option<(u64, (usize, usize))> {
    let (f, b) = (cur >> 32, cur & 0xffff_ffff);
    let nb = b.saturating_sub(piece).max(f);
    (f < b).then_some(((f << 32) | nb, (nb as usize, b as usize)))
}

/// A 64-bit atomic word: std's, or loom's in the model (which then runs
/// [`claim`] itself, not a copy).
trait Word {
    fn load_relaxed(&self) -> u64;
    fn swap_if(&self, cur: u64, next: u64) -> Result<u64, u64>;
}

impl Word for AtomicU64 {
    #[inline]
    fn load_relaxed(&self) -> u64 {
        self.load(Ordering::Relaxed)
    }
    #[inline]
    fn swap_if(&self, cur: u64, next: u64) -> Result<u64, u64> {
        self.compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed)
    }
}

/// Applies `step` to `word` by compare-exchange until it succeeds or
/// finds nothing to claim (`Relaxed`: the module docs' claims).
#[inline]
fn claim<T>(word: &impl Word, step: impl Fn(u64) -> Option<(u64, T)>) -> Option<T> {
    let mut cur = word.load_relaxed();
    loop {
        let (next, claimed) = step(cur)?;
        match word.swap_if(cur, next) {
            Ok(_) => return Some(claimed),
            Err(now) => cur = now,
        }
    }
}

/// Claims the next transaction (relative index) from the front of `ends`:
/// the caller's share, in order.
fn claim_front(ends: &AtomicU64) -> Option<usize> {
    claim(ends, front_step)
}

/// Claims up to `piece` transactions (a relative range) from the back of
/// `ends`: a speculating participant's.
fn claim_back(ends: &AtomicU64, piece: u64) -> Option<(usize, usize)> {
    claim(ends, |cur| back_step(cur, piece))
}

impl<C, R, T> Speculations<'_, '_, C, R, T>
where
    C: Chain,
    R: Reader<C::Key, C::Value>,
    T: std::borrow::Borrow<C::Tx> + Sync,
{
    /// Phase 0: reads pieces of the preload's keys until none is left.
    fn read(&self) {
        let n = self.keys.len();
        loop {
            if self.aborted.load(Ordering::Relaxed) {
                return;
            }
            let i = self.claimed.fetch_add(self.read_piece, Ordering::Relaxed);
            if i >= n {
                return;
            }
            let end = (i + self.read_piece).min(n);
            let mut values = Vec::with_capacity(end - i);
            let read = self
                .reader
                .read_batch(&self.keys[i..end], &mut values)
                .map(|()| values);
            *self.reads[i / self.read_piece].lock() = Some(read);
            self.finished[0].fetch_add(end - i, Ordering::Release);
        }
    }

    /// Phase `k + 1`: speculates pieces of chunk `k`, taken from its back,
    /// until the back meets the front.
    fn speculate(&self, phase: usize, from: usize, to: usize) {
        let settled = self.state.read();
        loop {
            if self.aborted.load(Ordering::Relaxed) {
                return;
            }
            let Some((i, end)) = claim_back(&self.ends[phase], PIECE as u64) else {
                return;
            };
            debug_assert!(end <= to - from);
            for t in from + i..from + end {
                let spec = speculate(
                    self.chain,
                    self.block,
                    self.txs[t].borrow(),
                    t,
                    &settled,
                    self.reader,
                    self.buffers.get(t),
                );
                *self.slots[t].lock() = Some(spec);
            }
            self.finished[phase].fetch_add(end - i, Ordering::Release);
        }
    }

    /// Phase `phase`'s pieces, counted as [`Self::finished`] counts them.
    fn pieces(&self, phase: usize) -> usize {
        let own = match phase.checked_sub(1) {
            None => self.keys.len(),
            Some(k) => self.chunks.get(k).map_or(0, |&(from, to)| to - from),
        };
        own + usize::from(phase < self.chunks.len())
    }

    /// Phase 0's values by slot (the pieces' in order, one vector: a
    /// slot's value is then an index, not a division per key), once it is
    /// complete, or the first failed piece's error (in slot order).
    fn take_reads(&self) -> Result<Values<C::Value>, StateError<R::Error>> {
        let mut all: Values<C::Value> = Vec::new();
        for (p, piece) in self.reads.iter().enumerate() {
            let want = self.keys.len().min((p + 1) * self.read_piece) - p * self.read_piece;
            match piece.lock().take() {
                // The first piece's vector holds them all (one piece, at
                // one thread: nothing is moved).
                Some(Ok(values)) if values.len() == want && p == 0 => {
                    all = values;
                    all.reserve(self.keys.len() - want);
                }
                Some(Ok(values)) if values.len() == want => all.extend(values),
                Some(Ok(_)) => {
                    return Err(StateError::Invariant("a batch read returned another count"))
                }
                Some(Err(e)) => return Err(StateError::Read(e)),
                None => return Err(StateError::Invariant("a piece of the preload was not read")),
            }
        }
        Ok(all)
    }
}

impl<C, R, T> Work for Speculations<'_, '_, C, R, T>
where
    C: Chain,
    R: Reader<C::Key, C::Value>,
    T: std::borrow::Borrow<C::Tx> + Sync,
{
    fn work(&self, phase: usize, _me: usize, _lead: bool) {
        // The extra piece: chunk `phase`'s known writers, listed while the
        // keys are read or the chunk before it speculates (off the
        // caller's serial path).
        if let Some(&(next, end)) = self.chunks.get(phase) {
            if !self.listing[phase].swap(true, Ordering::Relaxed) {
                self.next_known
                    .lock()
                    .build(self.chain, &self.txs[next..end], next);
                self.finished[phase].fetch_add(1, Ordering::Release);
            }
        }
        match phase.checked_sub(1) {
            None => self.read(),
            Some(k) => {
                if let Some(&(from, to)) = self.chunks.get(k) {
                    self.speculate(phase, from, to);
                }
            }
        }
    }

    fn complete(&self, phase: usize) -> bool {
        self.aborted.load(Ordering::Acquire)
            || self.finished[phase].load(Ordering::Acquire) >= self.pieces(phase)
    }

    fn abort(&self) {
        self.aborted.store(true, Ordering::Release);
    }

    fn phases(&self) -> usize {
        self.chunks.len() + 1
    }
}

/// Validates and commits, in block order, the speculations of `txs`
/// (`from..`) on `table` (step 2 of the module docs); returns how many
/// ran again.
fn settle<C, R, T>(
    run: &mut InOrder<'_, C, R>,
    table: &mut HashTable<Entry<C::Key, C::Value>>,
    txs: &[T],
    from: usize,
    slots: &[Mutex<Option<Speculated<C>>>],
    buffers: &[Buffer<C::Key, C::Value>],
    counts: &mut Counts,
) -> StateResult<usize, R::Error>
where
    C: Chain,
    R: Reader<C::Key, C::Value>,
    T: std::borrow::Borrow<C::Tx>,
{
    let mut again = 0;
    for (i, tx) in txs.iter().enumerate() {
        let taken = slots[from + i].lock().take();
        if let Some(Speculated::Estimate) = taken {
            counts.estimates += 1;
        }
        if let Some(Speculated::Ran(mut spec)) = taken {
            counts.validations += 1;
            if valid(run, table, &mut spec)? {
                // The keys by reference (the buffer keeps them until it
                // is cleared), the values moved out.
                let writes = spec.locals.iter_mut().filter_map(|l| {
                    let applied = match std::mem::replace(&mut l.write, Written::Nothing) {
                        Written::Nothing => return None,
                        Written::Set(v) => Applied::Set(v),
                        Written::Add(a) => Applied::Add(a),
                    };
                    let bucket = match l.read {
                        Some(Seen::Overlay { bucket, .. }) => Some(bucket),
                        _ => None,
                    };
                    Some((&l.key, l.hash, bucket, applied))
                });
                run.apply(table, writes, &spec.sums, spec.status)?;
                recycle(buffers.get(from + i), spec.locals);
                continue;
            }
            recycle(buffers.get(from + i), spec.locals);
        }
        again += 1;
        run.execute(table, tx.borrow())?;
    }
    counts.reexecuted += again;
    Ok(again)
}

/// How the caller's side of the team ended.
enum Led<E> {
    Failed(StateError<E>),
    Aborted,
}

/// How [`run`] runs a block once its keys are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum After {
    /// In chunks (the optimistic path): the caller executes each chunk's
    /// front in block order, the helpers speculate it from its back.
    Chunks,
    /// In chunks, every transaction speculated, the caller's share too
    /// ([`EngineConfig::speculate_all`](super::EngineConfig::speculate_all)).
    SpeculateAll,
    /// Every transaction in order on the caller: the sequential engine
    /// with its preload's reads spread over the team (for a block run in
    /// order where reads are costly).
    InOrder,
}

/// Runs the block on the optimistic path (see the module docs), or, with
/// [`After::InOrder`], only its preload's reads in parallel: the calling
/// thread leads a team (itself and a helper job per other worker of
/// `on`'s pool, `team.rs`). Nothing is written anywhere.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run<C, R, T>(
    chain: &C,
    block: &C::Block,
    txs: &[T],
    reader: &R,
    scratch: &mut SeqScratch<C::Key, C::Value>,
    spec: &mut SpecScratch<C::Key, C::Value>,
    counts: &mut Counts,
    on: On<'_>,
    after: After,
) -> StateResult<Executed<C>, R::Error>
where
    C: Chain,
    R: Reader<C::Key, C::Value>,
    T: std::borrow::Borrow<C::Tx> + Sync,
{
    let start = std::time::Instant::now();
    spec.grow(txs.len());
    let block_accesses = chain.block_accesses(block);
    // The preload's keys are listed here; phase 0 reads them in pieces.
    let listed: Listed<'_, C::Key> = list(chain, &block_accesses, txs, scratch);
    // In order: no chunk, so the team has phase 0 only and its helpers
    // leave once the keys are read.
    let chunks = match after {
        After::Chunks | After::SpeculateAll => chunks(txs.len()),
        After::InOrder => Vec::new(),
    };
    let phases = chunks.len() + 1;
    let read_piece = read_piece(listed.keys.len(), on.threads());
    // The overlay moves into the lock for the block, and back.
    let state = RwLock::new(Settled {
        table: std::mem::take(scratch.table()),
        known: KnownWriters::new(),
    });
    let work = Speculations {
        chain,
        block,
        txs,
        reader,
        state: &state,
        chunks: &chunks,
        keys: &listed.keys,
        read_piece,
        reads: (0..listed.keys.len().div_ceil(read_piece))
            .map(|_| Mutex::new(None))
            .collect(),
        claimed: CachePadded::new(AtomicUsize::new(0)),
        finished: (0..phases)
            .map(|_| CachePadded::new(AtomicUsize::new(0)))
            .collect(),
        slots: txs.iter().map(|_| Mutex::new(None)).collect(),
        buffers: &spec.buffers,
        listing: (0..phases).map(|_| AtomicBool::new(false)).collect(),
        next_known: Mutex::new(KnownWriters::new()),
        aborted: AtomicBool::new(false),
        ends: (0..phases)
            .map(|p| {
                let n = p
                    .checked_sub(1)
                    .and_then(|k| chunks.get(k))
                    .map_or(0, |&(f, t)| t - f);
                CachePadded::new(AtomicU64::new(n as u64))
            })
            .collect(),
    };
    // A block run in order with few keys: its reads are not worth a
    // helper's wake-up.
    let helpers = match after {
        After::InOrder if listed.keys.len() < 2 * MIN_READ_PIECE => 0,
        _ => on.threads().saturating_sub(1),
    };
    // The caller's share of each chunk: its front, executed in order (on
    // the overlay itself when no helper exists to read it meanwhile, else
    // on its private delta), unless every transaction is speculated.
    let own_share = after == After::Chunks;
    let mut delta = std::mem::take(&mut spec.delta);
    let lead = |lead: &Lead<'_, Speculations<'_, '_, C, R, T>>| -> Result<InOrder<'_, C, R>, Led<R::Error>> {
        // Phase 0: the keys read (and chunk 0's known writers listed); the
        // overlay filled, the begin hook run.
        let read = std::time::Instant::now();
        lead.phase(0).map_err(|Aborted| Led::Aborted)?;
        counts.read = read.elapsed();
        let mut run = {
            let mut s = state.write();
            let mut values = work.take_reads().map_err(Led::Failed)?;
            fill(&mut s.table, &listed, |slot| values[slot].take()).map_err(Led::Failed)?;
            std::mem::swap(&mut s.known, &mut *work.next_known.lock());
            InOrder::begin(
                chain,
                block,
                &block_accesses,
                txs.len(),
                reader,
                &mut s.table,
            )
            .map_err(Led::Failed)?
        };
        counts.preload = start.elapsed();
        // Transactions settled so far.
        let mut done = 0;
        for (k, &(from, to)) in chunks.iter().enumerate() {
            if counts.bounded {
                break;
            }
            let chunk = &txs[from..to];
            let ends = &work.ends[k + 1];
            // How many transactions of the chunk's front the caller
            // claimed, and the first failure among them.
            let mut front = (0, None);
            lead.phase_with(k + 1, || {
                if !own_share {
                    return;
                }
                front = if helpers == 0 {
                    execute_front(&mut run, &mut state.write().table, chunk, ends)
                } else {
                    let s = state.read();
                    let mut layered = Layered {
                        delta: &mut delta,
                        base: &s.table,
                    };
                    execute_front(&mut run, &mut layered, chunk, ends)
                };
                work.finished[k + 1].fetch_add(front.0, Ordering::Release);
            })
            .map_err(|Aborted| Led::Aborted)?;
            let (front, failed) = front;
            if let Some(e) = failed {
                return Err(Led::Failed(e));
            }
            counts.speculated += to - from;
            let mut s = state.write();
            merge(&mut s.table, &mut delta);
            let speculated = to - from - front;
            let again = settle(
                &mut run,
                &mut s.table,
                &chunk[front..],
                from + front,
                &work.slots,
                work.buffers,
                counts,
            )
            .map_err(Led::Failed)?;
            // Mostly executed again: the rest of the block in order.
            if speculated >= MIN_BOUND_SAMPLE && again * 2 > speculated && to < txs.len() {
                counts.bounded = true;
            } else {
                // The next chunk's known writers, listed during this phase.
                std::mem::swap(&mut s.known, &mut *work.next_known.lock());
            }
            done = to;
        }
        // The rest (after the bound engaged, or all of it in order): in
        // order on the overlay, the helpers let go first (no phase
        // follows; they would wait for one until the team ends).
        if done < txs.len() {
            lead.close();
            let mut s = state.write();
            for tx in &txs[done..] {
                run.execute(&mut s.table, tx.borrow())
                    .map_err(Led::Failed)?;
            }
        }
        Ok(run)
    };
    let led = team::run(on, helpers, &work, lead);
    drop(work);
    // Empty after every merge; a failed block may leave entries behind.
    delta.clear();
    spec.delta = delta;
    *scratch.table() = state.into_inner().table;
    match led {
        Ok(run) => run.finish(scratch.table()),
        Err(Led::Failed(e)) => Err(e),
        Err(Led::Aborted) => Err(StateError::Invariant("a participant of the team stopped")),
    }
}

/// Keys per piece of the preload's read (phase 0): one piece per
/// participant, and at least [`MIN_READ_PIECE`]. A piece's batch read
/// seeks its keys in key order on one iterator, and the more keys a
/// piece holds, the closer its consecutive keys lie (often in one data
/// block of a database): on RocksDB (`token`, `uniform`, about 2,100 and
/// 3,700 keys, 2 threads) the phase took 1.5-2.2 ms with one piece per
/// participant against 1.7-2.3 ms with four. A helper that wakes late
/// leaves its piece to the caller, which then reads as the sequential
/// engine does.
fn read_piece(keys: usize, threads: usize) -> usize {
    keys.div_ceil(threads.max(1)).max(MIN_READ_PIECE)
}

/// The smallest piece of the preload's read.
const MIN_READ_PIECE: usize = 64;

/// Loom model of the phases' protocol ([`Speculations::work`] and
/// [`Speculations::complete`], with loom's atomics and locks in the same
/// orderings, and the team's `open` store/load around them): under every
/// interleaving of the caller and one helper, phase 0's piece of the
/// preload is read exactly once and found by the caller once the phase is
/// complete; the caller fills the overlay from it; each transaction of
/// phase 1 is run exactly once: the caller's front (claimed one at a
/// time, `claim_front`) in order, on the filled overlay through its own
/// delta, the rest speculated (claimed from the back, `claim_back`) on the
/// overlay as the caller filled it, with every speculation in its slot and
/// none for the front once the phase is complete; each phase's extra piece (the known writers of the chunk that
/// follows) is listed exactly once and found once its phase is complete;
/// each speculation starts from an empty kept buffer and its read set
/// comes back with its slot.
#[cfg(test)]
mod loom_model {
    use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
    use loom::sync::{Arc, Mutex, RwLock};
    use loom::thread;

    /// Phase 1's transactions.
    const TXS: usize = 3;
    /// Transactions a speculating participant claims at once (`PIECE`).
    const PIECE: u64 = 2;

    /// A speculation: the value it saw, and its read set.
    type Slot = Mutex<Option<(u64, Vec<u64>)>>;

    struct Phases {
        /// The team's `open`: `k + 1` once phase `k` is open, 3 once
        /// closed.
        open: AtomicUsize,
        /// Phase 0's claims.
        claimed: AtomicUsize,
        /// Phase 1's unclaimed range (`ends`): front high, back low.
        ends: AtomicU64,
        finished: [AtomicUsize; 2],
        listing: [AtomicBool; 2],
        /// Phase 0's one piece of the preload (`reads`).
        read: Mutex<Option<u64>>,
        reads_done: AtomicUsize,
        /// Phase 1's speculations (`slots`), each with its read and
        /// write set.
        slots: Vec<Slot>,
        /// By transaction index: its kept read and write set buffer
        /// (`SpecScratch`), taken by the speculation, given back cleared
        /// by the caller while it settles.
        buffers: Vec<Mutex<Vec<u64>>>,
        runs: Vec<AtomicUsize>,
        /// `Settled`: the overlay (and known writers), filled and settled
        /// by the caller between phases (a value here).
        table: RwLock<u64>,
        /// The extra pieces' known writers (`next_known`).
        next_known: Mutex<Option<u64>>,
        listed: AtomicUsize,
    }

    /// `Speculations::work` for `phase`: the extra piece (once), then
    /// claim, read or speculate, publish.
    fn work(p: &Phases, phase: usize) {
        if !p.listing[phase].swap(true, Ordering::Relaxed) {
            p.listed.fetch_add(1, Ordering::Relaxed);
            *p.next_known.lock().unwrap() = Some(10 + phase as u64);
            p.finished[phase].fetch_add(1, Ordering::Release);
        }
        if phase == 0 {
            // `Speculations::read`: the storage holds 5.
            while p.claimed.fetch_add(1, Ordering::Relaxed) < 1 {
                p.reads_done.fetch_add(1, Ordering::Relaxed);
                *p.read.lock().unwrap() = Some(5);
                p.finished[0].fetch_add(1, Ordering::Release);
            }
            return;
        }
        let table = p.table.read().unwrap();
        while let Some((from, to)) = claim_back(&p.ends) {
            for i in from..to {
                p.runs[i].fetch_add(1, Ordering::Relaxed);
                // `speculate`: the buffer taken; it must come empty.
                let mut locals = std::mem::take(&mut *p.buffers[i].lock().unwrap());
                assert!(locals.is_empty(), "a speculation found a used buffer");
                locals.push(*table);
                *p.slots[i].lock().unwrap() = Some((*table, locals));
            }
            p.finished[1].fetch_add(to - from, Ordering::Release);
        }
    }

    /// Loom's atomic word, for the engine's own `claim` and steps.
    impl super::Word for AtomicU64 {
        fn load_relaxed(&self) -> u64 {
            self.load(Ordering::Relaxed)
        }
        fn swap_if(&self, cur: u64, next: u64) -> Result<u64, u64> {
            self.compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed)
        }
    }

    fn claim_front(ends: &AtomicU64) -> Option<usize> {
        super::claim(ends, super::front_step)
    }

    fn claim_back(ends: &AtomicU64) -> Option<(usize, usize)> {
        super::claim(ends, |cur| super::back_step(cur, PIECE))
    }

    /// The caller's front of phase 1 (`execute_front` under
    /// `Lead::phase_with`): claimed one at a time, run in order on the
    /// overlay through a delta of its own (the overlay read-locked),
    /// counted once; returns the transactions it ran, in order.
    fn front(p: &Phases) -> Vec<usize> {
        let table = p.table.read().unwrap();
        let mut delta = *table;
        let mut ran = Vec::new();
        while let Some(i) = claim_front(&p.ends) {
            p.runs[i].fetch_add(1, Ordering::Relaxed);
            assert_eq!(delta, 5 + i as u64, "the front runs in order on its delta");
            delta += 1;
            ran.push(i);
        }
        drop(table);
        p.finished[1].fetch_add(ran.len(), Ordering::Release);
        ran
    }

    /// `Lead::phase_with`: opens `phase`, runs its own share (phase 1: the
    /// front), works on it, waits until it is complete (its pieces and the
    /// extra one). Returns the front.
    fn lead(p: &Phases, phase: usize, pieces: usize) -> Vec<usize> {
        p.open.store(phase + 1, Ordering::Release);
        let ran = if phase == 1 { front(p) } else { Vec::new() };
        work(p, phase);
        while p.finished[phase].load(Ordering::Acquire) < pieces + 1 {
            thread::yield_now();
        }
        ran
    }

    #[test]
    fn each_piece_once_on_the_filled_overlay_and_found_when_complete() {
        // Every interleaving with up to three preemptions (loom's usual
        // bound: the orderings' bugs show within two).
        let mut model = loom::model::Builder::new();
        model.preemption_bound = Some(3);
        model.check(|| {
            let p = Arc::new(Phases {
                open: AtomicUsize::new(0),
                claimed: AtomicUsize::new(0),
                ends: AtomicU64::new(TXS as u64),
                finished: [AtomicUsize::new(0), AtomicUsize::new(0)],
                listing: [AtomicBool::new(false), AtomicBool::new(false)],
                read: Mutex::new(None),
                reads_done: AtomicUsize::new(0),
                slots: (0..TXS).map(|_| Mutex::new(None)).collect(),
                // Given back by an earlier block: capacity, no entries.
                buffers: (0..TXS)
                    .map(|_| Mutex::new(Vec::with_capacity(1)))
                    .collect(),
                runs: (0..TXS).map(|_| AtomicUsize::new(0)).collect(),
                table: RwLock::new(0),
                next_known: Mutex::new(None),
                listed: AtomicUsize::new(0),
            });
            // A helper (`team::help`): joins whichever phase is open, and
            // every later one, until the team closes.
            let helper = {
                let p = Arc::clone(&p);
                thread::spawn(move || {
                    let mut next = 1;
                    loop {
                        let open = p.open.load(Ordering::Acquire);
                        if open == 3 {
                            return;
                        }
                        if open < next {
                            thread::yield_now();
                            continue;
                        }
                        work(&p, open - 1);
                        // The last phase worked: it leaves.
                        if open >= 2 {
                            return;
                        }
                        next = open + 1;
                    }
                })
            };
            // Phase 0: the preload's read; then the overlay filled from
            // it (the write lock) and chunk 0's known writers swapped in.
            lead(&p, 0, 1);
            assert_eq!(p.reads_done.load(Ordering::Relaxed), 1, "read once");
            let read = p.read.lock().unwrap().take();
            assert_eq!(read, Some(5), "read before phase 0 was complete");
            let known = p.next_known.lock().unwrap().take();
            assert_eq!(known, Some(10), "listed before phase 0 was complete");
            *p.table.write().unwrap() = read.unwrap_or(0);
            // Phase 1: chunk 0's front run by the caller, its back
            // speculated, on the filled overlay.
            let ran = lead(&p, 1, TXS);
            assert_eq!(ran, (0..ran.len()).collect::<Vec<_>>(), "a prefix");
            for (i, slot) in p.slots.iter().enumerate() {
                let taken = slot.lock().unwrap().take();
                assert_eq!(p.runs[i].load(Ordering::Relaxed), 1, "transaction {i}");
                if i < ran.len() {
                    assert!(taken.is_none(), "transaction {i} of the front speculated");
                    continue;
                }
                let (seen, mut locals) = taken.unwrap_or_default();
                assert_eq!(seen, 5, "transaction {i}");
                assert_eq!(locals, [5], "transaction {i}'s read set");
                assert_eq!(p.runs[i].load(Ordering::Relaxed), 1, "transaction {i}");
                // `settle`'s `recycle`: given back cleared.
                locals.clear();
                *p.buffers[i].lock().unwrap() = locals;
            }
            let known = p.next_known.lock().unwrap().take();
            assert_eq!(known, Some(11), "listed before phase 1 was complete");
            assert_eq!(p.listed.load(Ordering::Relaxed), 2, "each listed once");
            *p.table.write().unwrap() = 6;
            p.open.store(3, Ordering::Release);
            helper.join().unwrap();
        });
    }
}
