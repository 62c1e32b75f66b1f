//! The sequential engine: the reference every other path must equal.
//!
//! An overlay on the reader (the role `ApplicableChainState` plays in a
//! node): one hash table keyed by the declared accesses' precomputed hashes
//! (no hashing here). Before anything runs, every declared key is loaded
//! into it with one batch read ([`preload`]: independent reads overlap
//! their cache misses or seeks; measured 2.3x on a 1,000-transfer block
//! met once on MemoryStorage, 2.8x on RocksDB); writes go to the overlay
//! and counted in each entry's version; the written entries become the block's writes. The block hooks and every transaction run in block
//! order on the calling thread. The table's allocation is kept across
//! blocks ([`SeqScratch`]).

use hashbrown::HashTable;

use super::contract::{
    Access, Accesses, Chain, Key, Mode, Reader, StateError, StateResult, Value, View, MAX_SUMS,
};
use super::outcome::{EngineStats, Executed, Writes};

/// One key of the overlay.
pub(crate) struct Entry<K, V> {
    key: K,
    hash: u64,
    /// The current value (`None`: absent).
    value: Option<V>,
    /// How many times the block wrote the key (0: never, so not a write
    /// of the block). Invariant: only grows during a block. The optimistic
    /// path validates a read of the key by this version (`optimistic.rs`).
    version: u64,
    /// During the preload only ([`list`] to [`fill`]): where its batch read
    /// put the value.
    slot: u32,
}

/// The overlay's table and the preload's buffer, kept across blocks.
pub(crate) struct SeqScratch<K, V> {
    table: HashTable<Entry<K, V>>,
    /// Empty between blocks: the values [`preload`] read (the optimistic
    /// path's team reads into pieces of its own).
    values: Vec<Option<V>>,
}

impl<K, V> Default for SeqScratch<K, V> {
    fn default() -> Self {
        SeqScratch {
            table: HashTable::new(),
            values: Vec::new(),
        }
    }
}

impl<K, V> SeqScratch<K, V> {
    /// The overlay (after [`InOrder::start`]: preloaded).
    pub(crate) fn table(&mut self) -> &mut HashTable<Entry<K, V>> {
        &mut self.table
    }
}

/// What an operation needs of the declared mode.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Need {
    /// `get`, `counter`: `Read` or `Write`.
    Read,
    /// `set`: `Write`.
    Write,
    /// `add`, `sub`: `Add` or `Write`.
    Add,
}

impl Need {
    /// Whether an access declared in `mode` allows this operation.
    pub(crate) fn allowed_by(self, mode: Mode) -> bool {
        matches!(
            (self, mode),
            (_, Mode::Write) | (Need::Read, Mode::Read) | (Need::Add, Mode::Add)
        )
    }
}

/// The one declaration rule of both engines: `key`'s access among
/// `accesses` (its index and its effective mode: the proven one inside a
/// proven group) if that mode allows `need`.
#[inline(always)]
pub(crate) fn permitted<'a, K: super::Key>(
    accesses: &'a Accesses<K>,
    proven: bool,
    key: &K,
    need: Need,
) -> Option<(usize, &'a Access<K>, Mode)> {
    declared_access(accesses, proven, key).filter(|&(_, _, mode)| need.allowed_by(mode))
}

/// `key`'s declared access, its index and its effective mode (the proven
/// one inside a proven group), whatever the operation: one search.
#[inline(always)]
fn declared_access<'a, K: super::Key>(
    accesses: &'a Accesses<K>,
    proven: bool,
    key: &K,
) -> Option<(usize, &'a Access<K>, Mode)> {
    let j = accesses.find(key)?;
    let a = accesses.list().get(j)?;
    Some((j, a, a.mode_when(proven)))
}

/// [`permitted`], or the error saying why not.
#[inline]
pub(crate) fn declared<'a, K: super::Key, E>(
    accesses: &'a Accesses<K>,
    proven: bool,
    key: &K,
    need: Need,
) -> StateResult<(usize, &'a Access<K>), E> {
    // The hot path returns no error value: building one costs more than the search.
    match permitted(accesses, proven, key, need) {
        Some((j, a, _)) => Ok((j, a)),
        None => Err(undeclared(
            key,
            need,
            accesses
                .find(key)
                .and_then(|j| accesses.list().get(j))
                .map(|a| a.mode),
        )),
    }
}

/// The table hash under which an access to `key` needing `need` is kept:
/// its declared access's (precomputed) hash if the declaration permits it;
/// for an open transaction's undeclared key, `key_hash(key)` (`true`);
/// else the error `declared` gives. The one resolution rule of the
/// sequential view and the optimistic path's speculative view.
#[inline(always)]
pub(crate) fn resolve<K: super::Key, E>(
    accesses: &Accesses<K>,
    key: &K,
    need: Need,
) -> StateResult<(u64, bool), E> {
    // One search of the declaration: found, it must permit `need`; not
    // found, the transaction must be open.
    match declared_access(accesses, false, key) {
        Some((_, a, mode)) if need.allowed_by(mode) => Ok((a.hash, false)),
        None if accesses.is_open() => Ok((
            accesses
                .hinted_hash(key)
                .unwrap_or_else(|| super::contract::key_hash(key)),
            true,
        )),
        _ => {
            // The refusal's error (declared() refuses what permitted() did).
            declared::<K, E>(accesses, false, key, need)?;
            Err(StateError::Invariant(
                "an access both refused and permitted",
            ))
        }
    }
}

/// The error of an access `declared` refused (the cold path).
#[cold]
fn undeclared<K: std::fmt::Debug, E>(key: &K, need: Need, declared: Option<Mode>) -> StateError<E> {
    StateError::Undeclared(match declared {
        None => format!("{key:?} is not declared"),
        Some(mode) => format!("{need:?} of {key:?}, declared {mode:?}"),
    })
}

/// The counter a value holds (absent: 0).
pub(crate) fn counter_of<K: std::fmt::Debug, V: Value, E>(
    key: &K,
    value: Option<&V>,
) -> StateResult<u64, E> {
    match value {
        None => Ok(0),
        Some(v) => v
            .as_counter()
            .ok_or_else(|| StateError::NotCounter(format!("{key:?} holds {v:?}"))),
    }
}

/// `n + amount`, or the overflow every engine reports for a counter add.
#[inline]
pub(crate) fn plus<E>(n: u64, amount: u64) -> StateResult<u64, E> {
    n.checked_add(amount)
        .ok_or_else(|| StateError::Overflow("counter add"))
}

/// `n - amount`, or the underflow every engine reports for a counter sub.
#[inline]
pub(crate) fn minus<E>(n: u64, amount: u64) -> StateResult<u64, E> {
    n.checked_sub(amount)
        .ok_or_else(|| StateError::Underflow("counter sub"))
}

/// The error of an add or sub to a record key (every engine reports it
/// after the declaration check).
#[cold]
pub(crate) fn record_key<K: std::fmt::Debug, E>(key: &K) -> StateError<E> {
    StateError::NotCounter(format!("{key:?} is a record"))
}

/// Whether `value` may be set on `key`: a counter key takes only counters.
#[inline]
pub(crate) fn settable<K: Key, V: Value, E>(key: &K, value: &V) -> StateResult<(), E> {
    if key.is_counter() && value.as_counter().is_none() {
        return Err(StateError::NotCounter(format!("{key:?} set to {value:?}")));
    }
    Ok(())
}

/// Adds `amount` to block sum `slot`.
pub(crate) fn add_sum<E>(
    sums: &mut [u64; MAX_SUMS],
    slot: usize,
    amount: u64,
) -> StateResult<(), E> {
    let s = sums
        .get_mut(slot)
        .ok_or_else(|| StateError::Invariant("block sum slot out of range"))?;
    *s = s
        .checked_add(amount)
        .ok_or_else(|| StateError::Overflow("block sum"))?;
    Ok(())
}

/// The entry of `key` (hash `hash`) in `table`: found (declared, or
/// touched earlier in the block), or read now at the block's parent and
/// inserted unwritten (nothing before it in the block wrote it, or it
/// would be in the table): an open transaction's undeclared key. One probe.
#[cold]
fn load_entry<'t, C: Chain, R: Reader<C::Key, C::Value>>(
    table: &'t mut HashTable<Entry<C::Key, C::Value>>,
    reader: &R,
    key: &C::Key,
    hash: u64,
) -> StateResult<&'t mut Entry<C::Key, C::Value>, R::Error> {
    match table.entry(hash, |e| e.key == *key, |e| e.hash) {
        hashbrown::hash_table::Entry::Occupied(o) => Ok(o.into_mut()),
        hashbrown::hash_table::Entry::Vacant(v) => {
            let value = reader.read(key).map_err(StateError::Read)?;
            Ok(v.insert(unwritten::<C, R::Error>(key, hash, value)?)
                .into_mut())
        }
    }
}

/// The entry of `key` (absent from the overlay) holding its block-start
/// `value`, unwritten; a counter key must hold a counter (as at preload).
fn unwritten<C: Chain, E>(
    key: &C::Key,
    hash: u64,
    value: Option<C::Value>,
) -> StateResult<Entry<C::Key, C::Value>, E> {
    if key.is_counter() {
        counter_of::<_, C::Value, E>(key, value.as_ref())?;
    }
    Ok(Entry {
        key: key.clone(),
        hash,
        value,
        version: 0,
        slot: 0,
    })
}

/// Where a [`SeqView`] finds its entries: the overlay itself, or (the
/// optimistic path's lead, `optimistic.rs`) a private delta over a shared,
/// unchanging overlay.
pub(crate) trait Overlay<C: Chain, R: Reader<C::Key, C::Value>> {
    /// A declared key's entry (preloaded).
    fn declared(&mut self, key: &C::Key, hash: u64) -> Option<&mut Entry<C::Key, C::Value>>;
    /// An open key's entry, read from `reader` at its first touch.
    fn open(
        &mut self,
        reader: &R,
        key: &C::Key,
        hash: u64,
    ) -> StateResult<&mut Entry<C::Key, C::Value>, R::Error>;
}

impl<C: Chain, R: Reader<C::Key, C::Value>> Overlay<C, R> for HashTable<Entry<C::Key, C::Value>> {
    #[inline(always)]
    fn declared(&mut self, key: &C::Key, hash: u64) -> Option<&mut Entry<C::Key, C::Value>> {
        self.find_mut(hash, |e| e.key == *key)
    }
    #[inline(always)]
    fn open(
        &mut self,
        reader: &R,
        key: &C::Key,
        hash: u64,
    ) -> StateResult<&mut Entry<C::Key, C::Value>, R::Error> {
        load_entry::<C, R>(self, reader, key, hash)
    }
}

/// A private delta over an unchanging overlay: an entry is copied into the
/// delta at its first touch (declared or found in the base), or read from
/// the reader into it; the base is never written.
pub(crate) struct Layered<'a, K, V> {
    pub(crate) delta: &'a mut HashTable<Entry<K, V>>,
    pub(crate) base: &'a HashTable<Entry<K, V>>,
}

impl<K: Key, V: Value> Layered<'_, K, V> {
    /// The delta's entry of `key`: found there, else copied from the base,
    /// else made by `absent` (`None`: no entry, nothing inserted).
    #[inline(always)]
    fn entry<E>(
        &mut self,
        key: &K,
        hash: u64,
        absent: impl FnOnce() -> StateResult<Option<Entry<K, V>>, E>,
    ) -> StateResult<Option<&mut Entry<K, V>>, E> {
        match self.delta.entry(hash, |e| e.key == *key, |e| e.hash) {
            hashbrown::hash_table::Entry::Occupied(o) => Ok(Some(o.into_mut())),
            hashbrown::hash_table::Entry::Vacant(v) => {
                let e = match self.base.find(hash, |e| e.key == *key) {
                    Some(b) => copy_of(b),
                    None => match absent()? {
                        Some(e) => e,
                        None => return Ok(None),
                    },
                };
                Ok(Some(v.insert(e).into_mut()))
            }
        }
    }
}

impl<C: Chain, R: Reader<C::Key, C::Value>> Overlay<C, R> for Layered<'_, C::Key, C::Value> {
    #[inline(always)]
    fn declared(&mut self, key: &C::Key, hash: u64) -> Option<&mut Entry<C::Key, C::Value>> {
        // A declared key is preloaded into the base: never absent.
        self.entry::<R::Error>(key, hash, || Ok(None))
            .ok()
            .flatten()
    }
    #[inline(always)]
    fn open(
        &mut self,
        reader: &R,
        key: &C::Key,
        hash: u64,
    ) -> StateResult<&mut Entry<C::Key, C::Value>, R::Error> {
        // Absent from both: read now, at the block's parent, as
        // `load_entry` reads it into the overlay.
        let read = || {
            let value = reader.read(key).map_err(StateError::Read)?;
            unwritten::<C, R::Error>(key, hash, value).map(Some)
        };
        self.entry(key, hash, read)?
            .ok_or(StateError::Invariant("an entry read was not inserted"))
    }
}

/// A base entry's copy for a delta.
#[inline(always)]
fn copy_of<K: Clone, V: Clone>(b: &Entry<K, V>) -> Entry<K, V> {
    Entry {
        key: b.key.clone(),
        hash: b.hash,
        value: b.value.clone(),
        version: b.version,
        slot: u32::MAX,
    }
}

/// Moves `delta`'s entries into `table`: a written one replaces the
/// table's (its version grew), a new one is inserted; an untouched copy is
/// dropped. The table then holds what executing on it directly would have.
pub(crate) fn merge<K: Key, V>(
    table: &mut HashTable<Entry<K, V>>,
    delta: &mut HashTable<Entry<K, V>>,
) {
    for e in delta.drain() {
        match table.entry(e.hash, |t| t.key == e.key, |t| t.hash) {
            hashbrown::hash_table::Entry::Occupied(mut o) => {
                if o.get().version != e.version {
                    let t = o.get_mut();
                    t.value = e.value;
                    t.version = e.version;
                }
            }
            hashbrown::hash_table::Entry::Vacant(v) => {
                v.insert(e);
            }
        }
    }
}

/// The view of one transaction (or block hook) on the overlay (also a
/// sealed block's private keys', `sealed.rs`: the same operations).
pub(crate) struct SeqView<
    'a,
    C: Chain,
    R,
    O = HashTable<Entry<<C as Chain>::Key, <C as Chain>::Value>>,
> {
    /// Holds every declared key of the block ([`preload`]) and every
    /// undeclared key an open transaction touched so far ([`Self::entry`]).
    table: &'a mut O,
    _chain: std::marker::PhantomData<fn() -> C>,
    /// Read only for an open transaction's undeclared keys.
    reader: &'a R,
    accesses: &'a Accesses<C::Key>,
    sums: &'a mut [u64; MAX_SUMS],
}

impl<'a, C: Chain, R: Reader<C::Key, C::Value>, O: Overlay<C, R>> SeqView<'a, C, R, O> {
    /// A view on `table` for a transaction of `accesses` (its undeclared
    /// keys, if open, read from `reader` at their first touch).
    pub(crate) fn new(
        table: &'a mut O,
        reader: &'a R,
        accesses: &'a Accesses<C::Key>,
        sums: &'a mut [u64; MAX_SUMS],
    ) -> Self {
        SeqView {
            table,
            _chain: std::marker::PhantomData,
            reader,
            accesses,
            sums,
        }
    }

    /// The overlay entry of `key`: a declared key was preloaded
    /// ([`preload`]); an open transaction's undeclared key is found in the
    /// table (another transaction's key, or one touched earlier) or read
    /// now, once, at the block's parent (nothing before it in the block
    /// wrote it, or it would be in the table).
    fn entry(
        &mut self,
        key: &C::Key,
        need: Need,
    ) -> StateResult<&mut Entry<C::Key, C::Value>, R::Error> {
        match resolve(self.accesses, key, need)? {
            (hash, false) => self
                .table
                .declared(key, hash)
                .ok_or_else(|| StateError::Invariant("a declared key was not preloaded")),
            (hash, true) => self.table.open(self.reader, key, hash),
        }
    }

    fn update(
        &mut self,
        key: &C::Key,
        f: impl FnOnce(u64) -> StateResult<u64, R::Error>,
    ) -> StateResult<(), R::Error> {
        let e = self.entry(key, Need::Add)?;
        if !e.key.is_counter() {
            // After the declaration check, as the parallel engine's cells.
            return Err(record_key(key));
        }
        let n = f(counter_of(&e.key, e.value.as_ref())?)?;
        e.value = Some(C::Value::from_counter(n));
        e.version += 1;
        Ok(())
    }
}

impl<C: Chain, R: Reader<C::Key, C::Value>, O: Overlay<C, R>> View<C::Key, C::Value>
    for SeqView<'_, C, R, O>
{
    type ReadError = R::Error;

    fn get(&mut self, key: &C::Key) -> StateResult<Option<C::Value>, R::Error> {
        let e = self.entry(key, Need::Read)?;
        if e.key.is_counter() {
            let n = counter_of(&e.key, e.value.as_ref())?;
            return Ok(Some(C::Value::from_counter(n)));
        }
        Ok(e.value.clone())
    }

    fn counter(&mut self, key: &C::Key) -> StateResult<u64, R::Error> {
        let e = self.entry(key, Need::Read)?;
        counter_of(&e.key, e.value.as_ref())
    }

    fn set(&mut self, key: &C::Key, value: C::Value) -> StateResult<(), R::Error> {
        let e = self.entry(key, Need::Write)?;
        settable(key, &value)?;
        e.value = Some(value);
        e.version += 1;
        Ok(())
    }

    fn add(&mut self, key: &C::Key, amount: u64) -> StateResult<(), R::Error> {
        self.update(key, |n| plus(n, amount))
    }

    fn sub(&mut self, key: &C::Key, amount: u64) -> StateResult<(), R::Error> {
        self.update(key, |n| minus(n, amount))
    }

    fn sum(&mut self, slot: usize, amount: u64) -> StateResult<(), R::Error> {
        add_sum(self.sums, slot, amount)
    }
}

/// Puts `a`'s key in `table` (unloaded) with the next slot of the batch
/// read `keys`, unless the table holds it already.
#[inline]
fn slot_for<'k, K: Key, V>(
    table: &mut HashTable<Entry<K, V>>,
    keys: &mut Vec<&'k K>,
    a: &'k Access<K>,
) {
    if let hashbrown::hash_table::Entry::Vacant(v) =
        table.entry(a.hash, |e| e.key == a.key, |e| e.hash)
    {
        v.insert(Entry {
            key: a.key.clone(),
            hash: a.hash,
            value: None,
            version: 0,
            slot: keys.len() as u32,
        });
        keys.push(&a.key);
    }
}

/// The preload: every key the block declares, and every key its open
/// transactions are hinted to touch ([`Accesses::hint`]), is loaded into
/// the empty overlay with one batch read before anything runs: the reads
/// are independent, so their cache misses (or a database's seeks, in key
/// order) overlap, where the lazy reads of execution each wait for their
/// own. The values are those the lazy reads would get (the reader does not
/// change during a block), and an entry loaded but never used writes
/// nothing (its version stays 0). As in the parallel engine's prefetch, a
/// failed read of any of them abandons the block (see [`Reader`]); a
/// declared counter key holding a non-counter fails the block here, a
/// hinted one only if a transaction touches it (as a lazy read would).
///
/// Its first step: the overlay emptied and given each key once, unloaded,
/// with its slot in the batch read (the keys returned). The read is
/// [`preload`]'s on the calling thread, or the optimistic path's in
/// parallel pieces; [`fill`] is the last step.
pub(crate) fn list<'k, C, T>(
    chain: &'k C,
    block_accesses: &'k Accesses<C::Key>,
    txs: &'k [T],
    scratch: &mut SeqScratch<C::Key, C::Value>,
) -> Listed<'k, C::Key>
where
    C: Chain,
    T: std::borrow::Borrow<C::Tx>,
{
    let declared = std::iter::once(block_accesses.list())
        .chain(txs.iter().map(|tx| chain.accesses(tx.borrow()).list()))
        .flatten();
    // Hints after every declared key: a key both declared and hinted is
    // loaded as declared.
    let hinted = txs
        .iter()
        .flat_map(|tx| chain.accesses(tx.borrow()).hints());
    // Each key once (a key declared by many transactions is read once).
    let table = &mut scratch.table;
    table.clear();
    let mut keys: Vec<&C::Key> = Vec::with_capacity(txs.len() * 4);
    for a in declared {
        slot_for(table, &mut keys, a);
    }
    let declared = keys.len();
    for a in hinted {
        slot_for(table, &mut keys, a);
    }
    Listed { keys, declared }
}

/// The keys of a block's batch read ([`list`]), each once, in slot order.
pub(crate) struct Listed<'k, K> {
    /// Slot `i` is `keys[i]`.
    pub(crate) keys: Vec<&'k K>,
    /// The first `declared` slots are declared keys, the rest hinted.
    declared: usize,
}

/// Fills the listed, unloaded overlay with the batch read's values
/// (`value(slot)`, each slot taken once): a linear pass over the table,
/// not a probe per key.
pub(crate) fn fill<K: Key, V: Value, E>(
    table: &mut HashTable<Entry<K, V>>,
    listed: &Listed<'_, K>,
    mut value: impl FnMut(usize) -> Option<V>,
) -> StateResult<(), E> {
    let n = listed.keys.len();
    for e in table.iter_mut() {
        let slot = e.slot as usize;
        if slot < n {
            e.value = value(slot);
        }
        // A counter key holding something else fails the block here, as it
        // does in the parallel engine's prefetch, used or not.
        if e.key.is_counter() && slot < listed.declared {
            counter_of::<_, V, E>(&e.key, e.value.as_ref())?;
        }
    }
    Ok(())
}

/// The preload ([`list`]), one batch read on the calling thread, and
/// [`fill`].
fn preload<C, R, T>(
    chain: &C,
    block_accesses: &Accesses<C::Key>,
    txs: &[T],
    reader: &R,
    scratch: &mut SeqScratch<C::Key, C::Value>,
) -> StateResult<(), R::Error>
where
    C: Chain,
    R: Reader<C::Key, C::Value>,
    T: std::borrow::Borrow<C::Tx>,
{
    let listed = list(chain, block_accesses, txs, scratch);
    let SeqScratch { table, values } = scratch;
    values.clear();
    let filled = match reader.read_batch(&listed.keys, values) {
        Err(e) => Err(StateError::Read(e)),
        Ok(()) if values.len() != listed.keys.len() => {
            Err(StateError::Invariant("a batch read returned another count"))
        }
        Ok(()) => fill(table, &listed, |slot| values[slot].take()),
    };
    values.clear();
    filled
}

/// One block on the overlay, in block order: [`InOrder::start`] (preload
/// and the begin hook), [`InOrder::execute`] per transaction (or, for the
/// optimistic path, [`InOrder::holds`] and [`InOrder::apply`] of a
/// validated speculation), [`InOrder::finish`] (the end hook and the
/// writes). Invariant: the table holds the state after every transaction
/// executed or applied so far, i.e. the sequential state at that point.
pub(crate) struct InOrder<'s, C: Chain, R> {
    chain: &'s C,
    block: &'s C::Block,
    reader: &'s R,
    block_accesses: &'s Accesses<C::Key>,
    sums: [u64; MAX_SUMS],
    statuses: Vec<Result<(), C::Failure>>,
}

impl<'s, C: Chain, R: Reader<C::Key, C::Value>> InOrder<'s, C, R> {
    /// Loads every declared key of the block into `scratch`'s emptied
    /// table ([`preload`]) and runs the begin hook.
    pub(crate) fn start<T: std::borrow::Borrow<C::Tx>>(
        chain: &'s C,
        block: &'s C::Block,
        block_accesses: &'s Accesses<C::Key>,
        txs: &[T],
        reader: &'s R,
        scratch: &mut SeqScratch<C::Key, C::Value>,
    ) -> StateResult<Self, R::Error> {
        preload(chain, block_accesses, txs, reader, scratch)?;
        Self::begin(
            chain,
            block,
            block_accesses,
            txs.len(),
            reader,
            &mut scratch.table,
        )
    }

    /// Runs the begin hook on an overlay already preloaded (`table`:
    /// [`list`] and [`fill`] done) for a block of `n` transactions.
    /// `block_accesses` are the block's ([`Chain::block_accesses`]).
    pub(crate) fn begin(
        chain: &'s C,
        block: &'s C::Block,
        block_accesses: &'s Accesses<C::Key>,
        n: usize,
        reader: &'s R,
        table: &mut HashTable<Entry<C::Key, C::Value>>,
    ) -> StateResult<Self, R::Error> {
        let mut this = InOrder {
            chain,
            block,
            reader,
            block_accesses,
            sums: [0u64; MAX_SUMS],
            statuses: Vec::with_capacity(n),
        };
        let mut view = SeqView::<C, R>::new(table, reader, this.block_accesses, &mut this.sums);
        chain.begin_block(block, &mut view)?;
        Ok(this)
    }

    /// Executes the next transaction on the overlay `table` (the one
    /// [`Self::start`] loaded: [`SeqScratch::table`]).
    pub(crate) fn execute(
        &mut self,
        table: &mut HashTable<Entry<C::Key, C::Value>>,
        tx: &C::Tx,
    ) -> StateResult<(), R::Error> {
        self.execute_on(table, tx)
    }

    /// [`Self::execute`] on any overlay.
    pub(crate) fn execute_on<O: Overlay<C, R>>(
        &mut self,
        table: &mut O,
        tx: &C::Tx,
    ) -> StateResult<(), R::Error> {
        let mut view =
            SeqView::<C, R, O>::new(table, self.reader, self.chain.accesses(tx), &mut self.sums);
        let status = self.chain.execute(self.block, tx, false, &mut view)?;
        self.statuses.push(status);
        Ok(())
    }

    /// Whether `key` (hash `hash`) is still as a speculation saw it: at
    /// version `Some(v)` of the overlay, or, for `None`, absent from it
    /// (read from the reader, `block_start`) and since then never written.
    /// A key the overlay lacks is inserted unwritten with `block_start`,
    /// the value it holds while nothing in the block wrote it (a write
    /// would have put it in the overlay). One probe.
    pub(crate) fn holds(
        &mut self,
        table: &mut HashTable<Entry<C::Key, C::Value>>,
        key: &C::Key,
        hash: u64,
        version: Option<u64>,
        block_start: impl FnOnce() -> Option<C::Value>,
    ) -> StateResult<bool, R::Error> {
        match table.entry(hash, |e| e.key == *key, |e| e.hash) {
            hashbrown::hash_table::Entry::Occupied(o) => {
                Ok(o.get().version == version.unwrap_or(0))
            }
            hashbrown::hash_table::Entry::Vacant(v) => {
                v.insert(unwritten::<C, R::Error>(key, hash, block_start())?);
                // Absent at speculation, absent now: only `None` saw it so.
                Ok(version.is_none())
            }
        }
    }

    /// Applies the writes of a transaction whose speculation was validated
    /// (each key's final value, or a sum of adds to a counter it never
    /// read), its block sums, and records its status.
    pub(crate) fn apply<'k>(
        &mut self,
        table: &mut HashTable<Entry<C::Key, C::Value>>,
        writes: impl IntoIterator<Item = (&'k C::Key, u64, Option<usize>, Applied<C::Value>)>,
        sums: &[u64; MAX_SUMS],
        status: Result<(), C::Failure>,
    ) -> StateResult<(), R::Error> {
        for (key, hash, bucket, w) in writes {
            // Where the speculation read it (`lookup`'s bucket), if it is
            // still there; else one probe. Absent only for a key it wrote
            // without reading, that nothing before it touched: read then.
            let e = match bucket.filter(|&b| at_bucket(table, b, key, hash).is_some()) {
                Some(b) => table
                    .get_bucket_mut(b)
                    .ok_or_else(|| StateError::Invariant("an overlay bucket emptied"))?,
                None => load_entry::<C, R>(table, self.reader, key, hash)?,
            };
            match w {
                Applied::Set(v) => e.value = Some(v),
                Applied::Add(amount) => {
                    let n = counter_of::<_, C::Value, R::Error>(&e.key, e.value.as_ref())?;
                    e.value = Some(C::Value::from_counter(plus(n, amount)?));
                }
            }
            e.version += 1;
        }
        for (slot, amount) in sums.iter().enumerate() {
            if *amount != 0 {
                add_sum(&mut self.sums, slot, *amount)?;
            }
        }
        self.statuses.push(status);
        Ok(())
    }

    /// Runs the end hook and returns the block's result.
    pub(crate) fn finish(
        mut self,
        table: &mut HashTable<Entry<C::Key, C::Value>>,
    ) -> StateResult<Executed<C>, R::Error> {
        {
            let done = self.sums;
            let mut view = SeqView::<C, R>::new(
                &mut *table,
                self.reader,
                self.block_accesses,
                &mut self.sums,
            );
            self.chain
                .end_block(self.block, &done[..C::SUMS], &mut view)?;
        }
        let writes = drain_writes(table);
        Ok(Executed {
            statuses: self.statuses,
            sums: self.sums[..C::SUMS].to_vec(),
            writes: Writes {
                parts: vec![writes],
            },
            stats: EngineStats::default(),
        })
    }
}

/// The writes of an overlay (every entry written and not absent), which
/// leaves it empty.
pub(crate) fn drain_writes<K, V>(table: &mut HashTable<Entry<K, V>>) -> Vec<(K, V)> {
    let mut writes = Vec::with_capacity(table.len());
    for e in table.drain() {
        if let (true, Some(v)) = (e.version > 0, e.value) {
            writes.push((e.key, v));
        }
    }
    writes
}

/// A validated speculation's write of one key.
#[derive(Clone, Debug)]
pub(crate) enum Applied<V> {
    /// Its final value.
    Set(V),
    /// Adds to a counter the transaction never read: their sum, added to
    /// the current value (as its adds would have been, one by one).
    Add(u64),
}

/// The value of `key` in `table`, its version and its bucket, if the table
/// holds it. The bucket finds the entry again without a probe
/// ([`at_bucket`]) while the table has not grown: during a block the
/// overlay never removes an entry, so an entry moves only when the table
/// is resized.
#[inline]
pub(crate) fn lookup<'t, K: Key, V>(
    table: &'t HashTable<Entry<K, V>>,
    key: &K,
    hash: u64,
) -> Option<(&'t Option<V>, u64, usize)> {
    let bucket = table.find_bucket_index(hash, |e| e.key == *key)?;
    table
        .get_bucket(bucket)
        .map(|e| (&e.value, e.version, bucket))
}

/// The value and version of `key`'s entry if it is still at `bucket` (a
/// [`lookup`]'s); `None` if the table moved it since (then probe again).
/// The key is compared, so a stale bucket is never taken for another key.
#[inline]
pub(crate) fn at_bucket<'t, K: Key, V>(
    table: &'t HashTable<Entry<K, V>>,
    bucket: usize,
    key: &K,
    hash: u64,
) -> Option<(&'t Option<V>, u64)> {
    table
        .get_bucket(bucket)
        .filter(|e| e.hash == hash && e.key == *key)
        .map(|e| (&e.value, e.version))
}

/// The value of the entry at `bucket`, found there by a [`lookup`] of
/// `key` on this same table, unchanged since (the optimistic path's
/// speculations, under the overlay's read lock): no comparison needed
/// (checked in debug builds).
#[inline]
pub(crate) fn value_at<'t, K: Key, V>(
    table: &'t HashTable<Entry<K, V>>,
    bucket: usize,
    key: &K,
) -> Option<&'t Option<V>> {
    let e = table.get_bucket(bucket)?;
    debug_assert!(e.key == *key, "a bucket that moved under a read lock");
    let _ = key;
    Some(&e.value)
}

/// Runs the block hooks and every transaction of `txs` in block order on
/// `reader`, through `scratch`'s table. Nothing is written anywhere. With
/// `costs`, also records each transaction's execution time (for a
/// benchmark's ideal bound).
pub(crate) fn run<C, R, T>(
    chain: &C,
    block: &C::Block,
    txs: &[T],
    reader: &R,
    scratch: &mut SeqScratch<C::Key, C::Value>,
    mut costs: Option<&mut Vec<std::time::Duration>>,
) -> StateResult<Executed<C>, R::Error>
where
    C: Chain,
    R: Reader<C::Key, C::Value>,
    T: std::borrow::Borrow<C::Tx>,
{
    let block_accesses = chain.block_accesses(block);
    let mut run = InOrder::start(chain, block, &block_accesses, txs, reader, scratch)?;
    let table = scratch.table();
    for tx in txs {
        let start = costs.is_some().then(std::time::Instant::now);
        run.execute(table, tx.borrow())?;
        if let (Some(costs), Some(start)) = (costs.as_deref_mut(), start) {
            costs.push(start.elapsed());
        }
    }
    run.finish(table)
}
