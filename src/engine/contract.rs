//! The contract between the engine and a chain: what a chain brings.
//!
//! * [`Key`] and [`Value`]: the chain's state, monomorphized (no `dyn`, no
//!   boxing). A key holds either a *counter* (a `u64`: a balance, a nonce)
//!   or a *record* (any value, read and replaced whole).
//! * [`Accesses`]: what a transaction declares it touches, derived from the
//!   transaction alone (at admission, or when it is checked), with each
//!   key's hash computed once ([`key_hash`]) so the plan never hashes.
//!   Modes: [`Mode::Read`], [`Mode::Write`] (read and write), and
//!   [`Mode::Add`] (a commutative add to, or subtract from, a counter:
//!   what credits are). Reads commute with reads and adds with adds;
//!   everything else is ordered in block order.
//! * [`Chain`]: the rules: one transaction against a [`View`] (get, set,
//!   add, sub, block sums), returning success or the chain's failure (the
//!   transaction is then orphaned: it wrote nothing); the block hooks
//!   before and after the transactions; and, optionally, a proof that a
//!   group of transactions (one sender's) commutes on the block-start state.
//! * [`Reader`]: the state at the block's parent, one key or a batch.
//!
//! A transaction's execution may only touch the keys it declared, in the
//! modes it declared, unless its accesses are *open*
//! ([`Accesses::set_open`]): then it may also touch keys it did not
//! declare, in any mode (its declared keys stay held to their modes). Both
//! engines check every access against the declaration and abort the
//! block with [`StateError::Undeclared`] otherwise, so a chain whose
//! declarations are wrong gets an error, never a silently different
//! result. Open transactions run on the sequential engine (which reads an
//! undeclared key when first touched) and on the optimistic path (which
//! records every read and validates it); the dependency-graph scheduler
//! never sees one (its cells refuse any key outside the plan).

use std::fmt::Debug;
use std::hash::Hash;
use std::sync::OnceLock;

use smallvec::SmallVec;

/// A state key of a chain.
pub trait Key: Clone + Eq + Ord + Hash + Send + Sync + Debug + 'static {
    /// Whether this key holds a counter (a `u64`, absent reads 0; the engine
    /// keeps it in an atomic, and [`Mode::Add`] accesses add to it and
    /// subtract from it in any order) rather than a record.
    fn is_counter(&self) -> bool;

    /// The hash that places this key in a worker's partition of the plan
    /// (`plan.rs`): keys a transaction usually touches together should
    /// share it (the SPEC chain: every key of one account), so that their
    /// cells live with one worker. The default is the key's own hash.
    fn affinity(&self) -> u64 {
        key_hash(self)
    }
}

/// A state value of a chain.
pub trait Value: Clone + PartialEq + Send + Sync + Debug + 'static {
    /// The counter this value holds, if it is one.
    fn as_counter(&self) -> Option<u64>;
    /// The value of a counter key holding `n`.
    fn from_counter(n: u64) -> Self;
}

/// How a transaction touches a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Reads it (checks may depend on the value); commutes with other reads.
    Read,
    /// Reads and writes it: ordered against every other access.
    Write,
    /// Adds to or subtracts from a counter without reading it; commutes
    /// with other adds (their sum does not depend on the order).
    Add,
}

impl Mode {
    /// The mode of two accesses to one key by one transaction.
    pub fn merge(self, other: Mode) -> Mode {
        if self == other {
            self
        } else {
            Mode::Write
        }
    }
}

/// The hash the engine keys its tables with: keyed per process (resistant
/// to chosen-key collisions, since keys hold attacker-chosen bytes), so a
/// hash computed at admission is valid for the process's lifetime.
pub fn key_hash<K: Hash>(key: &K) -> u64 {
    static STATE: OnceLock<ahash::RandomState> = OnceLock::new();
    STATE.get_or_init(ahash::RandomState::new).hash_one(key)
}

/// One declared access.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access<K> {
    /// The key.
    pub key: K,
    /// `key_hash(&key)`.
    pub hash: u64,
    /// `key.affinity()`.
    pub affinity: u64,
    /// The mode.
    pub mode: Mode,
    /// The mode when the transaction's proof group is proven to commute
    /// ([`Chain::prove`]): e.g. `Add` for a sender's own nonce and balance.
    pub proven: Mode,
}

impl<K> Access<K> {
    /// The mode that applies: [`Self::proven`] inside a proven group, else
    /// [`Self::mode`].
    #[inline(always)]
    pub(crate) fn mode_when(&self, proven: bool) -> Mode {
        if proven {
            self.proven
        } else {
            self.mode
        }
    }
}

/// What a transaction touches: each key once, with its mode, and
/// optionally the access whose key groups it with other transactions for a
/// proof ([`Chain::prove`]; the SPEC chain: its sender's nonce).
#[derive(Clone, Debug)]
pub struct Accesses<K> {
    /// The accesses, each key once.
    list: SmallVec<[Access<K>; 4]>,
    /// The low 32 bits of each access's affinity, in `list`'s order: what
    /// the plan scans to find a partition's accesses (a few bytes per
    /// transaction instead of whole accesses).
    affinities: SmallVec<[u32; 4]>,
    /// Index in `list` of the proof group's key.
    group: Option<u16>,
    /// Whether the transaction may also touch keys it did not declare
    /// ([`Accesses::set_open`]).
    open: bool,
    /// Keys an open transaction is expected to touch beyond its declared
    /// ones ([`Accesses::hint`]): never enforced, each key once, none
    /// declared, at most [`MAX_HINTS`].
    hints: Vec<Access<K>>,
    /// Invariant: empty, or these accesses sealed ([`Accesses::sealed`])
    /// as they are now (every change empties it).
    sealed: OnceLock<Box<Accesses<K>>>,
}

/// Equal when they declare and hint the same (whether either was sealed
/// already does not matter).
impl<K: PartialEq> PartialEq for Accesses<K> {
    fn eq(&self, other: &Self) -> bool {
        self.list == other.list
            && self.affinities == other.affinities
            && self.group == other.group
            && self.open == other.open
            && self.hints == other.hints
    }
}

impl<K: Eq> Eq for Accesses<K> {}

/// The most hints one transaction keeps ([`Accesses::hint`]): a hint costs
/// a read before the block runs, so a transaction cannot make a block read
/// more than this many keys it may never touch.
pub const MAX_HINTS: usize = 64;

impl<K> Default for Accesses<K> {
    fn default() -> Self {
        Accesses {
            list: SmallVec::new(),
            affinities: SmallVec::new(),
            group: None,
            open: false,
            hints: Vec::new(),
            sealed: OnceLock::new(),
        }
    }
}

impl<K: Key> Accesses<K> {
    /// No access yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares an access to `key` in `mode` (a key declared twice keeps one
    /// access, in the merged mode).
    pub fn push(&mut self, key: K, mode: Mode) {
        self.push_provable(key, mode, mode);
    }

    /// Declares an access to `key` in `mode`, which becomes `proven` when the
    /// transaction's proof group is proven to commute.
    pub fn push_provable(&mut self, key: K, mode: Mode, proven: Mode) {
        self.sealed.take();
        if !self.hints.is_empty() {
            // Declared now: no longer a hint.
            self.hints.retain(|h| h.key != key);
        }
        if let Some(a) = self.list.iter_mut().find(|a| a.key == key) {
            a.mode = a.mode.merge(mode);
            a.proven = a.proven.merge(proven);
            return;
        }
        let hash = key_hash(&key);
        let affinity = key.affinity();
        self.affinities.push(affinity as u32);
        self.list.push(Access {
            key,
            hash,
            affinity,
            mode,
            proven,
        });
    }

    /// Declares the proof group's key (an access to it in `mode`, which
    /// becomes `proven` when the group is proven). At most one per transaction.
    pub fn push_group(&mut self, key: K, mode: Mode, proven: Mode) {
        self.push_provable(key.clone(), mode, proven);
        self.group = self
            .list
            .iter()
            .position(|a| a.key == key)
            .and_then(|i| u16::try_from(i).ok());
    }

    /// Leaves the transaction's accesses *open*: besides its declared keys
    /// (still enforced, each in its declared mode), it may read, write and
    /// add to any key it did not declare, found only by running it (a
    /// contract call: a slot computed from a stored word, a payment to an
    /// account a contract stored). Blocks holding an open transaction take
    /// the engine's optimistic path (`optimistic.rs`): speculation, then
    /// validation of every read in block order.
    pub fn set_open(&mut self) {
        self.sealed.take();
        self.open = true;
    }

    /// Whether the accesses are open ([`Self::set_open`]).
    #[inline]
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Hints that an open transaction will touch `key` in `mode`, beyond
    /// what it declared: what the node learned before the block, e.g. by
    /// running the transaction on the state at the tip when it was
    /// admitted ([`discover`](super::discover)). A hint is never enforced
    /// and never changes a result: the transaction still touches whatever
    /// its execution touches. The engine reads hinted keys with the
    /// declared ones, in the batch read before the block runs (so an open
    /// transaction's first touch of the key finds it loaded, and a failed
    /// read of it abandons the block as a declared key's does), and may
    /// use them to schedule. A wrong or stale hint costs a read. Ignored
    /// unless the accesses are open ([`Self::set_open`]), for a key already
    /// declared (or hinted: the modes merge), and beyond [`MAX_HINTS`].
    pub fn hint(&mut self, key: K, mode: Mode) {
        if !self.open || self.find(&key).is_some() {
            return;
        }
        self.sealed.take();
        if let Some(h) = self.hints.iter_mut().find(|h| h.key == key) {
            h.mode = h.mode.merge(mode);
            h.proven = h.mode;
            return;
        }
        if self.hints.len() >= MAX_HINTS {
            return;
        }
        let hash = key_hash(&key);
        let affinity = key.affinity();
        self.hints.push(Access {
            key,
            hash,
            affinity,
            mode,
            proven: mode,
        });
    }

    /// The hints ([`Self::hint`]), each key once, none declared.
    #[inline]
    pub fn hints(&self) -> &[Access<K>] {
        &self.hints
    }

    /// Drops every hint (a node whose hints went stale, say).
    pub fn clear_hints(&mut self) {
        self.sealed.take();
        self.hints.clear();
    }

    /// These accesses *sealed* (`sealed.rs`): the declared ones, then each
    /// hint as a declared access in its hinted mode, closed (not open, no
    /// hints). What the dependency graph runs an open, hinted transaction
    /// by; an access outside them is then refused, which voids the attempt
    /// (or makes the key private to the transaction). Built once and kept
    /// (until the accesses change): a node builds it when it hints the
    /// transaction at admission, off the block's path.
    pub(crate) fn sealed(&self) -> &Accesses<K> {
        self.sealed.get_or_init(|| Box::new(self.build_sealed()))
    }

    /// The sealed form, built (not kept: [`Self::sealed`] keeps it).
    pub(crate) fn build_sealed(&self) -> Accesses<K> {
        let mut sealed = Accesses {
            list: self.list.clone(),
            affinities: self.affinities.clone(),
            group: self.group,
            open: false,
            hints: Vec::new(),
            sealed: OnceLock::new(),
        };
        // A hint is never a declared key, and each is kept once:
        // appended as they are (hash and affinity already computed).
        sealed.list.extend(self.hints.iter().cloned());
        sealed
            .affinities
            .extend(self.hints.iter().map(|h| h.affinity as u32));
        sealed
    }

    /// Builds and keeps the form the dependency graph runs these accesses
    /// by when the block's open transactions are hinted (their hints
    /// taken as declarations, `engine/sealed.rs`), so that the block does
    /// not build it: call it once the hints are set (as a node's admission
    /// does after [`discover`](super::discover)). Without it the first
    /// block that needs it builds it.
    pub fn seal(&self) {
        if self.open {
            self.sealed();
        }
    }

    /// The precomputed hash of `key` if it is hinted.
    #[inline]
    pub(crate) fn hinted_hash(&self, key: &K) -> Option<u64> {
        self.hints.iter().find(|h| h.key == *key).map(|h| h.hash)
    }

    /// The accesses.
    pub fn list(&self) -> &[Access<K>] {
        &self.list
    }

    /// The low 32 bits of each access's affinity, in [`Self::list`]'s order.
    pub fn affinities(&self) -> &[u32] {
        &self.affinities
    }

    /// The proof group's access, if any.
    pub fn group(&self) -> Option<&Access<K>> {
        self.group.and_then(|i| self.list.get(i as usize))
    }

    /// Index in [`Self::list`] of the proof group's access, if any.
    pub fn group_index(&self) -> Option<usize> {
        self.group.map(usize::from)
    }

    /// Index of the access to `key`, if declared (a short linear search).
    #[inline]
    pub fn find(&self, key: &K) -> Option<usize> {
        self.list.iter().position(|a| a.key == *key)
    }
}

/// Why a block could not be executed: not a chain outcome (those are
/// [`Chain::Failure`]s), but a storage failure or a broken invariant. The
/// block is abandoned; nothing of it is written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError<E> {
    /// The reader failed.
    #[error("state read failed: {0}")]
    Read(#[source] E),
    /// A transaction touched a key it did not declare, or in a mode it did
    /// not declare (a bug of the chain's declarations).
    #[error("undeclared access: {0}")]
    Undeclared(String),
    /// A counter operation on a record key, or a counter key holding a
    /// non-counter value.
    #[error("not a counter: {0}")]
    NotCounter(String),
    /// A counter or a block sum overflowed `u64`.
    #[error("overflow: {0}")]
    Overflow(&'static str),
    /// A counter went below zero.
    #[error("underflow: {0}")]
    Underflow(&'static str),
    /// The chain reported a broken invariant.
    #[error("invariant violated: {0}")]
    Invariant(&'static str),
}

/// The result type of state operations.
pub type StateResult<T, E> = Result<T, StateError<E>>;

/// Reads and writes of one transaction (or of a block hook), in the modes
/// it declared. Reads return the value as left by every earlier
/// transaction of the block (the engine guarantees it).
pub trait View<K, V> {
    /// The reader's error.
    type ReadError: std::error::Error + Send + Sync + 'static;

    /// The value of `key` (`Read` or `Write`); a counter key gives
    /// `V::from_counter`, a record absent from the state `None`.
    fn get(&mut self, key: &K) -> StateResult<Option<V>, Self::ReadError>;
    /// The counter `key` holds (`Read` or `Write`; absent reads 0).
    fn counter(&mut self, key: &K) -> StateResult<u64, Self::ReadError>;
    /// Replaces the value of `key` (`Write`).
    fn set(&mut self, key: &K, value: V) -> StateResult<(), Self::ReadError>;
    /// Adds `amount` to counter `key` (`Add` or `Write`); even 0 writes it.
    fn add(&mut self, key: &K, amount: u64) -> StateResult<(), Self::ReadError>;
    /// Subtracts `amount` from counter `key` (`Add` or `Write`); even 0
    /// writes it. Under `Add`, it must not go below zero in any order of
    /// the block's adds (what the chain's proof guarantees).
    fn sub(&mut self, key: &K, amount: u64) -> StateResult<(), Self::ReadError>;
    /// Adds `amount` to block sum `slot` (< [`Chain::SUMS`]; fees, burned
    /// supply): sums commute, and are handed to [`Chain::end_block`].
    fn sum(&mut self, slot: usize, amount: u64) -> StateResult<(), Self::ReadError>;
}

/// Block-start reads for a proof: keys the group declared that share the
/// group key's affinity ([`Key::affinity`]; the SPEC chain: the sender's
/// keys). Reading any other key makes the engine discard the proof.
pub trait ProofView<K, V> {
    /// The reader's error.
    type ReadError: std::error::Error + Send + Sync + 'static;
    /// The block-start value of `key`.
    fn get(&mut self, key: &K) -> StateResult<Option<V>, Self::ReadError>;
    /// The block-start counter of `key` (absent reads 0).
    fn counter(&mut self, key: &K) -> StateResult<u64, Self::ReadError>;
}

/// The most block sums a chain may keep ([`Chain::SUMS`]).
pub const MAX_SUMS: usize = 4;

/// A chain the engine executes.
pub trait Chain: Sync {
    /// State keys.
    type Key: Key;
    /// State values.
    type Value: Value;
    /// A transaction, decoded and checked (what a verification cache keeps).
    type Tx: Send + Sync;
    /// Why a transaction is orphaned (its status when it fails).
    type Failure: Clone + PartialEq + Debug + Send + Sync;
    /// What the rules need to know of the block (its height, its miner...).
    type Block: Sync;

    /// Number of block sums (fees, burned...; at most [`MAX_SUMS`]).
    const SUMS: usize;

    /// What `tx` touches (computed once, when it was checked).
    fn accesses<'t>(&self, tx: &'t Self::Tx) -> &'t Accesses<Self::Key>;

    /// What the block hooks touch (the miner's balance, say), as one list.
    fn block_accesses(&self, block: &Self::Block) -> Accesses<Self::Key>;

    /// Runs before any transaction (a block reward).
    fn begin_block<V: View<Self::Key, Self::Value>>(
        &self,
        block: &Self::Block,
        view: &mut V,
    ) -> StateResult<(), V::ReadError>;

    /// Executes one transaction, as a deterministic function of what its
    /// reads return (no clock, no randomness, no state outside the view:
    /// the optimistic path relies on it): `Ok(Ok(()))` applied, `Ok(Err(failure))`
    /// failed (it must then have written nothing, or only what the chain's
    /// rules keep of a failure: the SPEC chain keeps an invocation's nonce
    /// and fee), `Err(_)` the block is abandoned. `proven` is true when its proof
    /// group was proven to commute: the chain may then rely on what its
    /// proof established instead of reading it.
    fn execute<V: View<Self::Key, Self::Value>>(
        &self,
        block: &Self::Block,
        tx: &Self::Tx,
        proven: bool,
        view: &mut V,
    ) -> StateResult<Result<(), Self::Failure>, V::ReadError>;

    /// Runs `tx` only to see what it touches, for its hints
    /// ([`Accesses::hint`], [`discover`](super::discover)): on a view of
    /// some state (the tip, when the node admitted it), whose writes go
    /// nowhere. It may skip what does not decide the keys (the SPEC chain
    /// skips an invocation's nonce and fee checks, so that a transaction
    /// whose nonce is not yet the next one still gets its contract's
    /// keys). An error only means no hints. The default executes it.
    fn explore<V: View<Self::Key, Self::Value>>(
        &self,
        block: &Self::Block,
        tx: &Self::Tx,
        view: &mut V,
    ) -> StateResult<(), V::ReadError> {
        self.execute(block, tx, false, view).map(drop)
    }

    /// Runs after every transaction, with the block sums (fees to the miner).
    fn end_block<V: View<Self::Key, Self::Value>>(
        &self,
        block: &Self::Block,
        sums: &[u64],
        view: &mut V,
    ) -> StateResult<(), V::ReadError>;

    /// Whether the transactions of one proof group (every transaction of
    /// the block whose group key is this one, block order, at least four:
    /// smaller groups are left to chain through their key)
    /// provably commute on the block-start state: then their accesses take
    /// their `proven` modes and they run with `proven` true, in any order
    /// among themselves. The proof must hold whatever the block's other
    /// transactions add to or subtract from those keys (`Add` accesses run
    /// in any order with the group); every other read of those keys is
    /// ordered against the group as usual, and the engine does not use a
    /// proof when another transaction writes (`Write`) a key whose mode the
    /// proof changes. A proof may read, and change the modes of, only keys
    /// with the group key's affinity (so that one partition of the plan
    /// holds all it needs); the engine does not use one that would change
    /// another key's mode or that read another key. The default proves
    /// nothing.
    fn prove<R: ProofView<Self::Key, Self::Value>>(
        &self,
        block: &Self::Block,
        group: &[&Self::Tx],
        view: &mut R,
    ) -> StateResult<bool, R::ReadError> {
        let _ = (block, group, view);
        Ok(false)
    }
}

/// The state a block executes on: its parent's state.
///
/// Every engine reads every key a block declares (its transactions' and
/// its hooks' accesses) before running anything, in batches: a failed read
/// of any of them abandons the block ([`StateError::Read`]), whether or not
/// execution would have used the value, so every engine, mode and thread
/// count reports the same error for the same block and storage.
pub trait Reader<K, V>: Sync {
    /// What a failed read reports.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The value of `key` (`None`: absent).
    fn read(&self, key: &K) -> Result<Option<V>, Self::Error>;

    /// The values of `keys`, appended to `out` in order (the engine loads a
    /// block's keys through it, in parallel chunks). The default reads them
    /// one by one.
    fn read_batch(&self, keys: &[&K], out: &mut Vec<Option<V>>) -> Result<(), Self::Error> {
        for key in keys {
            out.push(self.read(key)?);
        }
        Ok(())
    }
}
