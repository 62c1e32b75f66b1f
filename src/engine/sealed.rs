//! Sealed blocks: the dependency graph for open transactions whose hints
//! say what they touch.
//!
//! An open transaction (a contract call) may touch keys it did not
//! declare, so a block holding one cannot be planned from its
//! declarations alone, and takes the optimistic path (`optimistic.rs`),
//! whose recording view, validation and serial settling cost more than
//! the graph. But a node usually knows an open transaction's keys before
//! the block: its hints ([`Accesses::hint`], [`discover`](super::discover):
//! the transaction run on the tip at admission). When the open
//! transactions of a block carry hints, the executor first tries the
//! block *sealed*: each open transaction's hints become declared accesses
//! in their hinted modes ([`Accesses::sealed`]), the transaction is no
//! longer open, and the block runs on the dependency graph like any
//! declared block (the plan, proofs, commutative adds, the guards and
//! calibration of `executor.rs`), through the adapter [`Sealed`]: a chain
//! whose transactions are [`SealedTx`]s and whose rules are the chain's
//! own. Grevm 2 builds its graph from hints the same way; here a wrong
//! hint costs the attempt, never a result. A block whose open
//! transactions mostly carry hints but a few do not (their admission not
//! done when the block came) has those few explored on the block-start
//! state first ([`SealedTx::block`], at most [`MAX_EXPLORED`]; with more,
//! [`sealable`] says no and the block runs as an open block).
//!
//! # Why a sealed result is the sequential one, or is thrown away
//! The graph's argument (`plan.rs`, `run.rs`) needs only that every
//! transaction stays within its declarations: then each of its reads
//! returns the value the sequential engine's would (every earlier
//! conflicting access is ordered before it), so it makes the sequential
//! engine's reads, branches, writes and status. A sealed transaction's
//! declarations are its own plus its hints; whatever it touches beyond
//! them, or in a mode they do not allow, the graph's view refuses with an
//! error ([`StateError::Undeclared`]) instead of performing. A refusal in
//! a declared transaction (its own declaration broken), or one the chain
//! returns, makes the block fail (`Err`). A refusal in an open transaction
//! goes to the adapter's view ([`Watch`]), which either serves the access
//! as a *private key* (below) or voids the attempt ([`Sealed::escaped`],
//! set whatever the chain's rules then do with the error). Every other
//! error of an open transaction's view also voids it.
//!
//! **Private keys.** An open transaction `i` may touch a key `k` that no
//! declaration of the block names (a token's recipient that nothing else
//! in the block touches, missed because its exploration at the tip
//! stopped early), or that only its own hint names, to read
//! ([`Sealed::may_own`]). Then no other access to `k` is in the plan, and
//! no other transaction touched it in this attempt without voiding it (an
//! undeclared touch of `k` by another would find `k` owned by `i`, and
//! void): `i` is the only one to touch `k` in the whole block. So the
//! value `k` has before `i` in block order is its block-start value
//! (nothing before `i` wrote it; a hint to read is served by a cell that
//! nobody writes), and `i`'s operations on `k` are the sequential
//! engine's own on an overlay entry loaded with it (`sequential.rs`: the
//! same checks, values and errors), in `i`'s own order. The entry's final
//! value is `k`'s write, added to the block's writes (no cell writes it).
//! By induction over block order, with every transaction's declared keys
//! served by the graph and its private keys by its entries, every
//! transaction sees sequential values and the result is the sequential
//! one. A key the transaction itself declares (not a hint: enforced, as
//! in every engine) is never private: its refusal is the sequential
//! engine's error too, and voids.
//!
//! The executor keeps a sealed result only if it is `Ok` and nothing
//! voided it; otherwise it runs the block again as an open block (the
//! optimistic path, or in order with the guards on), whose result and
//! errors are the sequential engine's. A stale hint (an earlier
//! transaction of the block changed what the contract computes its keys
//! from, or pays the caller so that it gets past a check that stopped its
//! exploration, then touches keys another transaction declares), a wrong
//! one, or a failed read thus costs one attempt. Each void attempt makes
//! the executor run its next 1, 2, 4, ... [`MAX_SKIP`] hinted blocks as
//! open blocks ([`Backoff`]), and a sealed block that holds resets it: a
//! chain whose hints are often wrong pays for few attempts. With the
//! guards on, the first hinted block is tried, and a void attempt skips
//! 16, then 32, ... 512 hinted blocks ([`Backoff::guarded`], as the
//! optimistic path's probes wait), so a node whose hints do not hold pays
//! for one attempt in its first 17 hinted blocks, and rarely after. A
//! block the guards run in order runs as it is (in order, an open
//! transaction needs no declaration).
//!
//! # Synchronisation
//! * [`Sealed::escaped`]: set (`Relaxed`) by whichever participant of the
//!   block's team voids the attempt, read by the caller once `team::run`
//!   returned. The team ends only after every helper that joined counted
//!   itself out (`left`, `Release`; the caller's `Close` reads it with
//!   `Acquire`), and a helper counts itself out after its last piece; so
//!   every store to the flag happens-before the caller's read, and the
//!   read sees `true` if any transaction voided the attempt. A `Relaxed`
//!   store suffices because nothing is published through the flag (it is
//!   read once, after the join).
//! * The private keys sit in one map under a mutex (locked only on a
//!   refused access, which is rare), each entry with its owner; the
//!   caller takes the map after the team ended (the same join).
//! * The block's declarers by key ([`Sealed::may_own`]) are built once,
//!   at the first refused access, in a `OnceLock` (its initialisation
//!   happens-before every read of it), and only read after.
//!
//! The loom model below checks the flag's protocol under every
//! interleaving of a caller and a helper. [`Backoff`] is only counters
//! with `Relaxed` updates: it decides speed, never a result.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::OnceLock;

use hashbrown::{HashMap, HashTable};
use parking_lot::Mutex;
use smallvec::SmallVec;

use super::contract::{
    key_hash, Accesses, Chain, Mode, ProofView, Reader, StateError, StateResult, View, MAX_SUMS,
};
use super::sequential::{drain_writes, Entry, SeqView};

/// An open transaction of a sealed block: its hints declared
/// ([`Accesses::sealed`]); a declared one as it is.
pub(crate) struct SealedTx<'t, C: Chain> {
    tx: &'t C::Tx,
    accesses: &'t Accesses<C::Key>,
    /// The sealed accesses of an open transaction that came without hints,
    /// explored here on the block-start state ([`SealedTx::block`]); used
    /// instead of `accesses` when present.
    explored: Option<Box<Accesses<C::Key>>>,
    /// Its block index.
    index: usize,
    /// Whether the transaction's own accesses are open (then its view is
    /// watched, [`Watch`]).
    open: bool,
}

/// At most this many open transactions without hints are explored when a
/// block is sealed ([`SealedTx::block`]); beyond, they are sealed with
/// their declarations alone.
pub(crate) const MAX_EXPLORED: usize = 32;

impl<'t, C: Chain> SealedTx<'t, C> {
    /// The transactions of a block, `txs` of `chain`, each open one sealed
    /// ([`Accesses::sealed`]: built at its first use and kept with the
    /// transaction, so a node that built it at admission pays nothing
    /// here).
    ///
    /// An open transaction that came without hints (its admission was not
    /// done when the block came, or it was never admitted here) would be
    /// sealed with its declarations alone, and its first key beyond them
    /// that another transaction declares would void the attempt: up to
    /// [`MAX_EXPLORED`] such transactions are explored here, on the
    /// block-start state (`reader`: what a hint taken at the parent would
    /// see), and sealed with what they touched. A failed exploration
    /// leaves the transaction with its declarations (hints never change a
    /// result). With `explore` false (the block will most likely run in
    /// order: the node's pipeline holds one of two cores) nothing is
    /// explored.
    pub(crate) fn block<T, R>(
        chain: &C,
        block: &C::Block,
        txs: &'t [T],
        reader: &R,
        explore: bool,
    ) -> Vec<Self>
    where
        T: std::borrow::Borrow<C::Tx>,
        R: Reader<C::Key, C::Value>,
    {
        let mut budget = if explore { MAX_EXPLORED } else { 0 };
        txs.iter()
            .enumerate()
            .map(|(index, tx)| {
                let tx = tx.borrow();
                let own: &'t Accesses<C::Key> = chain.accesses(tx);
                let open = own.is_open();
                let explored = (open && own.hints().is_empty() && budget > 0)
                    .then(|| {
                        budget -= 1;
                        let found = super::optimistic::explore(chain, block, tx, reader).ok()?;
                        let mut hinted = own.clone();
                        for (key, mode) in found {
                            hinted.hint(key, mode);
                        }
                        Some(Box::new(hinted.build_sealed()))
                    })
                    .flatten();
                SealedTx {
                    tx,
                    // An explored one runs by `explored` (its own sealed
                    // form would be its declarations alone: not built).
                    accesses: if open && explored.is_none() {
                        own.sealed()
                    } else {
                        own
                    },
                    explored,
                    index,
                    open,
                }
            })
            .collect()
    }

    /// The accesses the graph runs it by.
    fn accesses(&self) -> &Accesses<C::Key> {
        self.explored.as_deref().unwrap_or(self.accesses)
    }

    /// Whether the transaction's own accesses are open (it was sealed).
    pub(crate) fn is_open(&self) -> bool {
        self.open
    }
}

/// Whether a block of `txs` is worth trying sealed: its open
/// transactions carry hints (the node hints what it admits), but for at
/// most [`MAX_EXPLORED`], which [`SealedTx::block`] explores. A block with
/// more unhinted open transactions (its transactions checked at block
/// time, their admission not done) runs as an open block: so many
/// explorations on the block's path would cost what the graph saves, and
/// without them one of them would likely void the attempt.
pub(crate) fn sealable<C: Chain, T: std::borrow::Borrow<C::Tx>>(chain: &C, txs: &[T]) -> bool {
    let mut hinted = false;
    let mut unhinted = 0;
    for tx in txs {
        let a = chain.accesses(tx.borrow());
        if a.is_open() {
            if a.hints().is_empty() {
                unhinted += 1;
                if unhinted > MAX_EXPLORED {
                    return false;
                }
            } else {
                hinted = true;
            }
        }
    }
    hinted
}

/// The block's private keys (module docs, "Private keys"): an overlay of
/// the sequential engine's (its entries start at the block-start value and
/// take the sequential view's own operations), and each key's owner.
struct PrivateKeys<K, V> {
    /// The keys' entries.
    table: HashTable<Entry<K, V>>,
    /// Each key's owner (its block index), by the key's hash (two keys of
    /// one hash share an owner: a second owner voids, never a wrong value).
    owners: HashMap<u64, usize, Spread>,
}

/// Hashes a key's hash (already `key_hash`'s, keyed per process) by
/// taking it as it is: the declarers' map costs no second hash.
#[derive(Clone, Copy, Default)]
struct Spread;

impl std::hash::BuildHasher for Spread {
    type Hasher = Taken;
    fn build_hasher(&self) -> Taken {
        Taken(0)
    }
}

/// The hasher of [`Spread`]: the `u64` written.
struct Taken(u64);

impl std::hash::Hasher for Taken {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `u64`s are hashed here; any other input still hashes.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Who declares a key of a sealed block.
#[derive(Clone, Copy, Debug)]
enum Declarer {
    /// One open transaction (this block index), reading it (a hint).
    Reader(usize),
    /// Anyone else, or more than one.
    Many,
}

/// Chain `C` with its open transactions sealed: the same keys, values,
/// failures, blocks and rules; transactions are [`SealedTx`]s. For one
/// block (`txs`, on `reader`).
pub(crate) struct Sealed<'c, 't, C: Chain, R> {
    chain: &'c C,
    reader: &'c R,
    txs: &'c [SealedTx<'t, C>],
    block_accesses: Accesses<C::Key>,
    /// Invariant: true once the attempt is void (an open transaction's
    /// access could not be served, or met an error). Set `Relaxed` by any
    /// participant, read by the caller after the team ended (module docs).
    escaped: AtomicBool,
    /// Who declares each key of the block (by hash; its transactions',
    /// sealed, and its hooks'): built at the block's first undeclared
    /// access, read-only after.
    keys: OnceLock<HashMap<u64, Declarer, Spread>>,
    /// The private keys: each key once, with its owner. Locked per
    /// undeclared access (rare); taken by the caller after the team ended.
    private: Mutex<PrivateKeys<C::Key, C::Value>>,
    _txs: PhantomData<&'t C::Tx>,
}

impl<'c, 't, C: Chain, R: Reader<C::Key, C::Value>> Sealed<'c, 't, C, R> {
    /// `chain` for `block`'s `txs` (sealed, in block order) on `reader`.
    pub(crate) fn new(
        chain: &'c C,
        block: &C::Block,
        reader: &'c R,
        txs: &'c [SealedTx<'t, C>],
    ) -> Self {
        Sealed {
            chain,
            reader,
            txs,
            block_accesses: chain.block_accesses(block),
            escaped: AtomicBool::new(false),
            keys: OnceLock::new(),
            private: Mutex::new(PrivateKeys {
                table: HashTable::new(),
                owners: HashMap::with_hasher(Spread),
            }),
            _txs: PhantomData,
        }
    }

    /// Whether the attempt is void: an open transaction escaped its hints
    /// onto a key the block declares, two touched one private key, or an
    /// open transaction's view met an error. Read after the block's team
    /// ended.
    pub(crate) fn escaped(&self) -> bool {
        self.escaped.load(Ordering::Relaxed)
    }

    /// The private keys' writes, each key once (after the team ended).
    pub(crate) fn private_writes(&self) -> Vec<(C::Key, C::Value)> {
        drain_writes(&mut self.private.lock().table)
    }

    fn void(&self) {
        self.escaped.store(true, Ordering::Relaxed);
    }

    /// Whether open transaction `me` may have `key` (hash `hash`) as a
    /// private key: its own declaration does not name it (a declared key
    /// stays enforced: the refusal is the sequential engine's error too),
    /// and no declaration of the block does but, in `Read` mode, its own
    /// hint (a hint it read through the graph, whose cell nothing else
    /// touches and nobody writes: it still holds the block-start value). A
    /// hash collision answers no: the attempt is then void, never wrong.
    fn may_own(&self, me: usize, key: &C::Key, hash: u64) -> bool {
        let Some(tx) = self.txs.get(me) else {
            return false;
        };
        if self.chain.accesses(tx.tx).find(key).is_some() {
            return false;
        }
        let declarers = self.keys.get_or_init(|| {
            let accesses = self
                .txs
                .iter()
                .map(|t| t.accesses().list().len())
                .sum::<usize>();
            let mut keys = HashMap::with_capacity_and_hasher(
                accesses + self.block_accesses.list().len(),
                Spread,
            );
            let mut declare = |hash: u64, by: Declarer| {
                keys.entry(hash)
                    .and_modify(|d| *d = Declarer::Many)
                    .or_insert(by);
            };
            for tx in self.txs {
                for a in tx.accesses().list() {
                    let by = match (tx.open, a.mode) {
                        (true, Mode::Read) => Declarer::Reader(tx.index),
                        _ => Declarer::Many,
                    };
                    declare(a.hash, by);
                }
            }
            for a in self.block_accesses.list() {
                declare(a.hash, Declarer::Many);
            }
            keys
        });
        match declarers.get(&hash) {
            None => true,
            Some(&Declarer::Reader(i)) => i == me,
            Some(Declarer::Many) => false,
        }
    }

    /// Serves open transaction `me`'s access to `key` (hash `hash`),
    /// which its view refused (`refused`), with `op` on the sequential
    /// view of the private keys, if it may own the key
    /// ([`Self::may_own`]) and no other transaction touched it; otherwise,
    /// or if `op` fails, the attempt is void and the refusal returned.
    fn private<T, E>(
        &self,
        me: usize,
        key: &C::Key,
        hash: u64,
        refused: impl FnOnce() -> StateError<E>,
        op: impl FnOnce(&mut SeqView<'_, C, R>) -> StateResult<T, R::Error>,
    ) -> StateResult<T, E> {
        let served = match self.txs.get(me) {
            Some(tx) if !self.escaped() && self.may_own(me, key, hash) => {
                let mut private = self.private.lock();
                let PrivateKeys { table, owners } = &mut *private;
                if *owners.entry(hash).or_insert(me) == me {
                    // The transaction's own accesses (open): an undeclared
                    // key is read from the reader at its first touch.
                    let mut sums = [0u64; MAX_SUMS];
                    let accesses = self.chain.accesses(tx.tx);
                    op(&mut SeqView::<C, R>::new(
                        table,
                        self.reader,
                        accesses,
                        &mut sums,
                    ))
                    .ok()
                } else {
                    None
                }
            }
            _ => None,
        };
        served.ok_or_else(|| {
            self.void();
            refused()
        })
    }
}

impl<'t, C: Chain, R: Reader<C::Key, C::Value>> Chain for Sealed<'_, 't, C, R> {
    type Key = C::Key;
    type Value = C::Value;
    type Tx = SealedTx<'t, C>;
    type Failure = C::Failure;
    type Block = C::Block;

    const SUMS: usize = C::SUMS;

    fn accesses<'x>(&self, tx: &'x SealedTx<'t, C>) -> &'x Accesses<C::Key> {
        tx.accesses()
    }

    fn block_accesses(&self, block: &C::Block) -> Accesses<C::Key> {
        self.chain.block_accesses(block)
    }

    fn begin_block<V: View<C::Key, C::Value>>(
        &self,
        block: &C::Block,
        view: &mut V,
    ) -> StateResult<(), V::ReadError> {
        self.chain.begin_block(block, view)
    }

    fn execute<V: View<C::Key, C::Value>>(
        &self,
        block: &C::Block,
        tx: &SealedTx<'t, C>,
        proven: bool,
        view: &mut V,
    ) -> StateResult<Result<(), C::Failure>, V::ReadError> {
        if !tx.open {
            return self.chain.execute(block, tx.tx, proven, view);
        }
        let mut watched = Watch {
            view,
            sealed: self,
            accesses: tx.accesses(),
            me: tx.index,
            mine: SmallVec::new(),
        };
        self.chain.execute(block, tx.tx, proven, &mut watched)
    }

    fn explore<V: View<C::Key, C::Value>>(
        &self,
        block: &C::Block,
        tx: &SealedTx<'t, C>,
        view: &mut V,
    ) -> StateResult<(), V::ReadError> {
        self.chain.explore(block, tx.tx, view)
    }

    fn end_block<V: View<C::Key, C::Value>>(
        &self,
        block: &C::Block,
        sums: &[u64],
        view: &mut V,
    ) -> StateResult<(), V::ReadError> {
        self.chain.end_block(block, sums, view)
    }

    fn prove<P: ProofView<C::Key, C::Value>>(
        &self,
        block: &C::Block,
        group: &[&SealedTx<'t, C>],
        view: &mut P,
    ) -> StateResult<bool, P::ReadError> {
        let txs: SmallVec<[&C::Tx; 8]> = group.iter().map(|t| t.tx).collect();
        self.chain.prove(block, &txs, view)
    }
}

/// The view of a sealed open transaction (block index `me`): the graph's;
/// an access it refuses goes to the key's private entry
/// ([`Sealed::private`]), as does every later access to a key it owns;
/// any other error voids the attempt.
struct Watch<'v, 's, 'c, 't, V, C: Chain, R> {
    view: &'v mut V,
    sealed: &'s Sealed<'c, 't, C, R>,
    /// The transaction's sealed accesses.
    accesses: &'s Accesses<C::Key>,
    me: usize,
    /// Hashes of the private keys it owns (served privately from then on,
    /// even one it hinted, whose cell still holds the block-start value).
    mine: SmallVec<[u64; 2]>,
}

impl<V, C: Chain, R: Reader<C::Key, C::Value>> Watch<'_, '_, '_, '_, V, C, R> {
    /// Whether `key` is one of its private keys (a hash collision answers
    /// yes: [`Sealed::private`] then refuses it, and the attempt is void).
    #[inline(always)]
    fn owns(&self, key: &C::Key) -> bool {
        !self.mine.is_empty() && self.mine.contains(&key_hash(key))
    }

    /// `op` on `key`'s private entry (`refused`: the graph's refusal).
    fn private<T, E>(
        &mut self,
        key: &C::Key,
        refused: impl FnOnce() -> StateError<E>,
        op: impl FnOnce(&mut SeqView<'_, C, R>) -> StateResult<T, R::Error>,
    ) -> StateResult<T, E> {
        let hash = key_hash(key);
        let r = self.sealed.private(self.me, key, hash, refused, op);
        if r.is_ok() && !self.mine.contains(&hash) {
            self.mine.push(hash);
        }
        r
    }

    /// The graph's answer `r` as it is; a refusal served privately by `op`;
    /// any other error voids the attempt.
    #[inline(always)]
    fn watch<T, E>(
        &mut self,
        key: &C::Key,
        r: StateResult<T, E>,
        op: impl FnOnce(&mut SeqView<'_, C, R>) -> StateResult<T, R::Error>,
    ) -> StateResult<T, E> {
        match r {
            Ok(v) => Ok(v),
            Err(refused @ StateError::Undeclared(_)) => self.private(key, || refused, op),
            Err(e) => {
                self.sealed.void();
                Err(e)
            }
        }
    }
}

/// Why a key's private service was refused, when the graph's view was not
/// asked.
fn undeclared<K: std::fmt::Debug, E>(key: &K) -> StateError<E> {
    StateError::Undeclared(format!("{key:?} is not declared"))
}

impl<V, C, R> View<C::Key, C::Value> for Watch<'_, '_, '_, '_, V, C, R>
where
    V: View<C::Key, C::Value>,
    C: Chain,
    R: Reader<C::Key, C::Value>,
{
    type ReadError = V::ReadError;

    // A private key's operation is the sequential view's own, on the
    // private keys' overlay (`sequential.rs`, `SeqView`): the same checks,
    // values and errors.

    fn get(&mut self, key: &C::Key) -> StateResult<Option<C::Value>, V::ReadError> {
        if self.owns(key) {
            return self.private(key, || undeclared(key), |v| v.get(key));
        }
        let r = self.view.get(key);
        self.watch(key, r, |v| v.get(key))
    }

    fn counter(&mut self, key: &C::Key) -> StateResult<u64, V::ReadError> {
        if self.owns(key) {
            return self.private(key, || undeclared(key), |v| v.counter(key));
        }
        let r = self.view.counter(key);
        self.watch(key, r, |v| v.counter(key))
    }

    fn set(&mut self, key: &C::Key, value: C::Value) -> StateResult<(), V::ReadError> {
        // The graph's view would take the value even to refuse it: a key
        // its sealed accesses may write is the graph's, any other goes to
        // its private entry.
        let graphs = !self.owns(key)
            && self
                .accesses
                .find(key)
                .and_then(|j| self.accesses.list().get(j))
                .is_some_and(|a| a.mode == Mode::Write);
        if graphs {
            let r = self.view.set(key, value);
            if r.is_err() {
                self.sealed.void();
            }
            return r;
        }
        self.private(key, || undeclared(key), |v| v.set(key, value))
    }

    fn add(&mut self, key: &C::Key, amount: u64) -> StateResult<(), V::ReadError> {
        if self.owns(key) {
            return self.private(key, || undeclared(key), |v| v.add(key, amount));
        }
        let r = self.view.add(key, amount);
        self.watch(key, r, |v| v.add(key, amount))
    }

    fn sub(&mut self, key: &C::Key, amount: u64) -> StateResult<(), V::ReadError> {
        if self.owns(key) {
            return self.private(key, || undeclared(key), |v| v.sub(key, amount));
        }
        let r = self.view.sub(key, amount);
        self.watch(key, r, |v| v.sub(key, amount))
    }

    fn sum(&mut self, slot: usize, amount: u64) -> StateResult<(), V::ReadError> {
        let r = self.view.sum(slot, amount);
        if r.is_err() {
            self.sealed.void();
        }
        r
    }
}

/// The most hinted blocks run as open blocks after a void attempt, guards
/// off ([`Backoff::default`]).
pub(crate) const MAX_SKIP: u32 = 64;

/// With the guards on ([`Backoff::guarded`]), the hinted blocks run as
/// open blocks after a first void attempt, and the most after several:
/// the optimistic path's probes wait as long (`calibration.rs`).
pub(crate) const GUARDED_SKIPS: (u32, u32) = (16, 512);

/// How many hinted blocks to run as open blocks before the next sealed
/// attempt: none at first; after a void attempt `first` (1 with the
/// guards off, 16 on), doubled by each further one up to `most`, reset
/// by a sealed block that held. Only speed depends on it.
#[derive(Debug)]
pub(crate) struct Backoff {
    /// Hinted blocks still to skip.
    skip: AtomicU32,
    /// The skip the next escape sets (0: never escaped since the last hold).
    penalty: AtomicU32,
    /// The skip after a first void attempt.
    first: u32,
    /// The longest skip.
    most: u32,
}

impl Default for Backoff {
    /// Skips 1, 2, 4 ... [`MAX_SKIP`] after repeated voids (guards off).
    fn default() -> Self {
        Backoff::with(1, MAX_SKIP)
    }
}

impl Backoff {
    fn with(first: u32, most: u32) -> Self {
        Backoff {
            skip: AtomicU32::new(0),
            penalty: AtomicU32::new(0),
            first,
            most,
        }
    }

    /// With the guards on: skips [`GUARDED_SKIPS`] (16, 32 ... 512).
    pub(crate) fn guarded() -> Self {
        Backoff::with(GUARDED_SKIPS.0, GUARDED_SKIPS.1)
    }

    /// Whether this hinted block may be tried sealed (counts a skip).
    pub(crate) fn allows(&self) -> bool {
        self.skip
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| s.checked_sub(1))
            .is_err()
    }

    /// A sealed attempt escaped.
    pub(crate) fn escaped(&self) {
        let next = (self.penalty.load(Ordering::Relaxed) * 2).clamp(self.first, self.most);
        self.penalty.store(next, Ordering::Relaxed);
        self.skip.store(next, Ordering::Relaxed);
    }

    /// A sealed attempt held.
    pub(crate) fn held(&self) {
        self.penalty.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hinted blocks `b` skips after each of `voids` void attempts in
    /// a row.
    fn skips(b: &Backoff, voids: usize) -> Vec<u32> {
        (0..voids)
            .map(|_| {
                b.escaped();
                let mut n = 0;
                while !b.allows() {
                    n += 1;
                }
                n
            })
            .collect()
    }

    #[test]
    fn backoff_skips_one_two_four_then_resets_when_an_attempt_holds() {
        let b = Backoff::default();
        assert!(b.allows());
        assert_eq!(skips(&b, 4), [1, 2, 4, 8]);
        for _ in 0..10 {
            b.escaped();
        }
        let mut n = 0;
        while !b.allows() {
            n += 1;
        }
        assert_eq!(n, MAX_SKIP);
        b.held();
        b.escaped();
        assert!(!b.allows());
        assert!(b.allows());
    }

    #[test]
    fn guarded_backoff_tries_at_once_then_skips_sixteen_and_doubles() {
        let b = Backoff::guarded();
        assert!(b.allows(), "the first hinted block is tried");
        assert_eq!(skips(&b, 7), [16, 32, 64, 128, 256, 512, 512]);
        b.held();
        b.escaped();
        assert_eq!((0..17).filter(|_| !b.allows()).count(), 16);
    }
}

/// Loom model of the escape flag: a helper runs a transaction that escapes
/// (a `Relaxed` store of the flag), then counts itself out of the team
/// (`left`, `Release`), as `team.rs`'s `help` does; the caller, which may
/// run the other transaction itself, waits for every helper to have left
/// (`Acquire`, `Close`) and reads the flag. Under every interleaving the
/// caller sees the escape.
#[cfg(test)]
mod loom_model {
    use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use loom::sync::Arc;
    use loom::thread;

    #[test]
    fn an_escape_in_a_helper_is_seen_by_the_caller_after_the_team() {
        loom::model(|| {
            let escaped = Arc::new(AtomicBool::new(false));
            let left = Arc::new(AtomicUsize::new(0));
            let claimed = Arc::new(AtomicUsize::new(0));
            let helper = {
                let (escaped, left, claimed) = (escaped.clone(), left.clone(), claimed.clone());
                thread::spawn(move || {
                    // Claims a transaction; the one it runs escapes.
                    if claimed.fetch_add(1, Ordering::Relaxed) < 2 {
                        escaped.store(true, Ordering::Relaxed);
                    }
                    left.fetch_add(1, Ordering::Release);
                })
            };
            // The caller claims too; its transaction does not escape.
            let mine = claimed.fetch_add(1, Ordering::Relaxed);
            while left.load(Ordering::Acquire) < 1 {
                thread::yield_now();
            }
            // The helper claimed 0 or 1: both are transactions, so it
            // escaped, and the caller must see it.
            assert!(mine < 2);
            assert!(escaped.load(Ordering::Relaxed));
            helper.join().unwrap();
        });
    }
}
