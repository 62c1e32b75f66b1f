//! [`ParallelChainState`]: the state a block executes on in parallel.
//!
//! # Layout
//! Every key gets one *cell*: an `AccountCell` (nonce, multisig, energy)
//! or a `BalanceCell`. A cell loads its value from the storage clone
//! lazily, on first use (cache first, storage on a miss), and never moves.
//!
//! * The keys the block's access sets name get their cells at plan time, in
//!   one table indexed by the dense key ids of [`KeyIndex`] (`access.rs`),
//!   so a transaction reaches its cells through its own id list: no hashing,
//!   no lock, just a key comparison within that short list. With the
//!   prefetch ([`ParallelChainState::prefetch`], on the pool) their values
//!   are loaded before anything runs.
//! * Any other key (the miner of a block whose transactions never name it,
//!   or a lookup on a state built without a plan) gets an `Arc`'d cell in a
//!   lock-sharded cache (`Sharded`: `parking_lot` mutexes over keyed ahash
//!   maps), created on first use. Lookups by key (block-level operations on
//!   the calling thread, the coverage check) try the id index first.
//!
//! # Locking and memory-ordering argument
//! * The table and the key index are built before any worker runs and only
//!   read afterwards. A shard mutex guards only its map (key → cell); it is
//!   held for one lookup or insert, never across a storage read, never with
//!   another shard's lock, so there is no lock-order deadlock.
//! * A value is an `AtomicU64` inside a `OnceLock`. The first user reads
//!   storage without any lock and installs the value; a racing first user
//!   may read storage too, but both read the same stored value (nothing is
//!   written before it is read) and `OnceLock` keeps one. `OnceLock`
//!   publishes the installed value (release on set, acquire on get). A user
//!   racing the installation may wait for it, but the installation only
//!   moves an integer into place: no job waits on another job's work.
//! * The scheduler never runs two transactions touching one key at the same
//!   time unless both accesses are commutative (credits; a covered sender's
//!   debits and nonce increments, `coverage.rs`). Commutative writes are
//!   atomic read-modify-writes, so none is lost and their total does not
//!   depend on their order.
//! * Every other pair of accesses is ordered by the scheduler: a dependency
//!   finishes its writes, then releases its dependents with an `AcqRel`
//!   decrement (`release.rs`), or the batch barrier joins. That
//!   happens-before edge is what makes a later transaction see an earlier
//!   one's writes, so the values and dirty flags themselves use `Relaxed`.
//!   The pool's scope join orders every write before
//!   [`BlockState::into_change_set`], which runs on the calling thread.
//! * Energy and written multisig configs (rare, never commutative) sit in
//!   per-cell mutexes, uncontended by the argument above.
//! * The fee and burn accumulators are one `AtomicU64` per worker thread
//!   (each on its own cache line, so the transactions of different workers
//!   never contend on them), updated with `Relaxed` checked additions:
//!   addition commutes, and they are summed after the join. A sum of
//!   non-negative amounts overflows iff some prefix of it does, so the
//!   overflow check on the total ([`ParallelChainState::check_totals`])
//!   rejects exactly the blocks the sequential path rejects.

// ahash: keyed (DoS-resistant against chosen keys) and much faster than SipHash on 32-64 byte keys.
use ahash::AHashMap as HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use crossbeam_utils::CachePadded;
use parking_lot::Mutex;

use rayon::prelude::*;

use crate::access::{AccessKey, KeyIndex};
use crate::error::StateError;
use crate::executor::BlockState;
use crate::rules::TxState;
use crate::{Asset, ChangeSet, EnergyState, MultisigConfig, PublicKey, Storage, TopoHeight};

/// Cells per prefetch job (one batched storage read each).
const PREFETCH_CHUNK: usize = 256;

/// A `u64` value loaded lazily from storage, then updated atomically.
#[derive(Debug, Default)]
struct LazyU64 {
    /// The current value; set once, from storage, on first use.
    value: OnceLock<AtomicU64>,
    /// Invariant: set (and never cleared) once the block wrote the value.
    dirty: AtomicBool,
}

impl LazyU64 {
    /// The atomic holding the value, loading it with `load` on first use.
    fn get(
        &self,
        load: impl FnOnce() -> Result<u64, StateError>,
    ) -> Result<&AtomicU64, StateError> {
        if let Some(v) = self.value.get() {
            return Ok(v);
        }
        let v = load()?;
        Ok(self.value.get_or_init(|| AtomicU64::new(v)))
    }

    /// Replaces the value by `f(value)` atomically and marks it written.
    fn update(
        &self,
        load: impl FnOnce() -> Result<u64, StateError>,
        f: impl Fn(u64) -> Option<u64>,
        err: StateError,
    ) -> Result<(), StateError> {
        self.get(load)?
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, f)
            .map_err(|_| err)?;
        // A load first: a hot cell's line is not written again once dirty.
        if !self.dirty.load(Ordering::Relaxed) {
            self.dirty.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    /// The value, if the block wrote it.
    fn written(&self) -> Option<u64> {
        if self.dirty.load(Ordering::Relaxed) {
            self.value.get().map(|v| v.load(Ordering::Relaxed))
        } else {
            None
        }
    }
}

/// A value the block may overwrite, and whether it did.
#[derive(Clone, Debug)]
struct Slot<T> {
    value: T,
    dirty: bool,
}

/// An account's own fields (nonce, multisig config, energy).
#[derive(Debug)]
struct AccountCell {
    /// The account; never changes.
    key: PublicKey,
    /// The nonce.
    nonce: LazyU64,
    /// The multisig config in storage; set once, on first read.
    stored_multisig: OnceLock<Option<Arc<MultisigConfig>>>,
    /// Invariant: `written_multisig` holds `Some` exactly when this is set.
    multisig_dirty: AtomicBool,
    /// The config the block wrote, if any.
    written_multisig: Mutex<Option<Option<Arc<MultisigConfig>>>>,
    /// Energy state, loaded on first use (rare: energy transactions and fees).
    energy: Mutex<Option<Slot<EnergyState>>>,
}

impl AccountCell {
    fn new(key: PublicKey) -> Self {
        AccountCell {
            key,
            nonce: LazyU64::default(),
            stored_multisig: OnceLock::new(),
            multisig_dirty: AtomicBool::new(false),
            written_multisig: Mutex::new(None),
            energy: Mutex::new(None),
        }
    }
}

/// One (account, asset) balance.
#[derive(Debug)]
struct BalanceCell {
    /// The account and asset; never change.
    key: (PublicKey, Asset),
    /// The balance.
    value: LazyU64,
}

/// A cell of the plan's table, aligned so that no two cells share a cache
/// line (workers writing neighbouring cells do not contend).
#[derive(Debug)]
#[repr(align(64))]
enum Cell {
    /// An account's own fields.
    Account(AccountCell),
    /// A balance.
    Balance(BalanceCell),
}

/// One lock shard, padded to its own cache line(s) against false sharing.
type Shard<K, V> = CachePadded<Mutex<HashMap<K, V>>>;

/// A hash map split in independently locked shards.
struct Sharded<K, V> {
    /// Invariant: `shards.len()` is a power of two; key `k` lives only in
    /// `shards[hash(k) & (len - 1)]`.
    shards: Box<[Shard<K, V>]>,
    hasher: ahash::RandomState,
}

impl<K: Hash + Eq + Copy, V: Clone> Sharded<K, V> {
    fn new(shards: usize) -> Self {
        let n = shards.next_power_of_two();
        Sharded {
            shards: (0..n)
                .map(|_| CachePadded::new(Mutex::new(HashMap::new())))
                .collect(),
            hasher: Default::default(),
        }
    }

    /// The value of `key`, inserting `make(key)` when absent (under the shard lock).
    fn get_or_insert(&self, key: K, make: impl FnOnce(K) -> V) -> V {
        let h = self.hasher.hash_one(key) as usize;
        let shard = &self.shards[h & (self.shards.len() - 1)];
        shard.lock().entry(key).or_insert_with(|| make(key)).clone()
    }

    fn into_values(self) -> impl Iterator<Item = V> {
        self.shards
            .into_vec()
            .into_iter()
            .flat_map(|s| CachePadded::into_inner(s).into_inner().into_values())
    }
}

/// Shared state of a block executing in parallel, on an owned storage clone.
pub struct ParallelChainState<S: Storage + Clone> {
    /// Storage clone read at `at`; never written.
    storage: S,
    /// The parent topoheight every storage read uses.
    at: TopoHeight,
    /// Dense ids of the keys the plan named; read-only once built.
    index: KeyIndex,
    /// `cells[id]` is the cell of `index.keys()[id]`; fixed once built.
    cells: Box<[Cell]>,
    /// Account cells of keys outside the plan.
    accounts: Sharded<PublicKey, Arc<AccountCell>>,
    /// Balance cells of keys outside the plan.
    balances: Sharded<(PublicKey, Asset), Arc<BalanceCell>>,
    /// Per-worker partial sums of the native fees of successful
    /// transactions: slot `i` for the pool's thread `i`, the last slot for
    /// any other thread. The block's fees are their sum.
    fees: Box<[CachePadded<AtomicU64>]>,
    /// Per-worker partial sums of the native amount burned, as `fees`.
    burned: Box<[CachePadded<AtomicU64>]>,
}

/// A cell found by key: in the table, or shared from the sharded cache.
enum Found<'a, T> {
    Table(&'a T),
    Cached(Arc<T>),
}

impl<T> std::ops::Deref for Found<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        match self {
            Found::Table(t) => t,
            Found::Cached(t) => t,
        }
    }
}

impl<S: Storage + Clone> ParallelChainState<S> {
    /// An empty state over `storage` at topoheight `at`, for a pool of
    /// `threads` workers, without a plan: every key goes through the
    /// sharded cache (16 lock shards per map and per thread).
    pub fn new(storage: S, at: TopoHeight, threads: usize) -> Self {
        Self::with_keys(storage, at, threads, KeyIndex::default())
    }

    /// A state whose table holds a cell for every key of `index` (values
    /// still loaded lazily, or by [`Self::prefetch`]).
    pub fn with_keys(storage: S, at: TopoHeight, threads: usize, index: KeyIndex) -> Self {
        let threads = threads.max(1);
        let sums = || {
            (0..=threads)
                .map(|_| CachePadded::new(AtomicU64::new(0)))
                .collect()
        };
        let cells = index
            .keys()
            .iter()
            .map(|k| match k {
                AccessKey::Account(a) => Cell::Account(AccountCell::new(*a)),
                AccessKey::Balance(a, asset) => Cell::Balance(BalanceCell {
                    key: (*a, *asset),
                    value: LazyU64::default(),
                }),
            })
            .collect();
        ParallelChainState {
            storage,
            at,
            index,
            cells,
            accounts: Sharded::new(threads * 16),
            balances: Sharded::new(threads * 16),
            fees: sums(),
            burned: sums(),
        }
    }

    /// The storage clone the state reads.
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// The key ids of the plan.
    pub fn index(&self) -> &KeyIndex {
        &self.index
    }

    /// The block's fees and burned amount so far; an overflow of either
    /// total is the error the sequential path raises at the overflowing
    /// addition. Call it after the parallel phase.
    pub fn check_totals(&self) -> Result<(u64, u64), StateError> {
        Ok((
            Self::total(&self.fees).ok_or(StateError::Overflow("fees"))?,
            Self::total(&self.burned).ok_or(StateError::Overflow("burned"))?,
        ))
    }

    fn total(sums: &[CachePadded<AtomicU64>]) -> Option<u64> {
        sums.iter()
            .try_fold(0u64, |acc, s| acc.checked_add(s.load(Ordering::Relaxed)))
    }

    /// A [`TxState`] handle that finds every key by lookup (block-level
    /// operations and the coverage check, on one thread).
    pub fn view(&self) -> TxView<'_, S> {
        TxView {
            state: self,
            ids: &[],
            covered: None,
        }
    }

    /// The handle transaction `t` of the plan runs through. `covered` is
    /// `Some((source, nonce))` for a transaction of a covered sender chain
    /// (see `coverage.rs`): reading `source`'s nonce answers `nonce`, the
    /// value sequential execution is proven to read, whatever order the
    /// chain's transactions run in; every write is still a delta on the real
    /// state.
    pub fn tx_view(&self, t: usize, covered: Option<(PublicKey, u64)>) -> TxView<'_, S> {
        TxView {
            state: self,
            ids: self.index.ids_of(t),
            covered,
        }
    }

    /// Whether the storage wants a prefetch ([`Storage::prefetch_pays`]).
    pub fn prefetch_pays(&self) -> bool {
        self.storage.prefetch_pays()
    }

    /// Loads every cell of the table (an account's nonce and multisig, which
    /// every transaction of it reads; a balance) on the current rayon pool,
    /// so execution rarely waits on storage. Each job reads a chunk of the
    /// table in one [`Storage::get_batch`], its keys sorted (neighbouring
    /// seeks touch neighbouring blocks).
    pub fn prefetch(&self) -> Result<(), StateError> {
        self.cells
            .par_chunks(PREFETCH_CHUNK)
            .try_for_each(|chunk| self.prefetch_chunk(chunk))
    }

    fn prefetch_chunk(&self, chunk: &[Cell]) -> Result<(), StateError> {
        let mut accounts: Vec<&AccountCell> = Vec::with_capacity(chunk.len());
        let mut balances: Vec<&BalanceCell> = Vec::with_capacity(chunk.len());
        for cell in chunk {
            match cell {
                Cell::Account(c) => accounts.push(c),
                Cell::Balance(c) => balances.push(c),
            }
        }
        accounts.sort_unstable_by_key(|c| c.key);
        balances.sort_unstable_by_key(|c| c.key);
        let account_keys: Vec<PublicKey> = accounts.iter().map(|c| c.key).collect();
        let balance_keys: Vec<(PublicKey, Asset)> = balances.iter().map(|c| c.key).collect();
        let read = self
            .storage
            .get_batch(&account_keys, &balance_keys, self.at)?;
        if read.nonces.len() != accounts.len()
            || read.multisigs.len() != accounts.len()
            || read.balances.len() != balances.len()
        {
            return Err(StateError::Internal(
                "batch read answered a different count",
            ));
        }
        for ((c, nonce), multisig) in accounts.iter().zip(read.nonces).zip(read.multisigs) {
            // `OnceLock`: a value already installed (the same stored one) wins.
            c.nonce
                .value
                .get_or_init(|| AtomicU64::new(nonce.unwrap_or(0)));
            c.stored_multisig.get_or_init(|| multisig.map(Arc::new));
        }
        for (c, balance) in balances.iter().zip(read.balances) {
            c.value
                .value
                .get_or_init(|| AtomicU64::new(balance.unwrap_or(0)));
        }
        Ok(())
    }

    fn account_cell(&self, account: &PublicKey) -> Found<'_, AccountCell> {
        if let Some(id) = self.index.get(&AccessKey::Account(*account)) {
            if let Some(Cell::Account(c)) = self.cells.get(id as usize) {
                return Found::Table(c);
            }
        }
        Found::Cached(
            self.accounts
                .get_or_insert(*account, |k| Arc::new(AccountCell::new(k))),
        )
    }

    fn balance_cell(&self, account: &PublicKey, asset: &Asset) -> Found<'_, BalanceCell> {
        if let Some(id) = self.index.get(&AccessKey::Balance(*account, *asset)) {
            if let Some(Cell::Balance(c)) = self.cells.get(id as usize) {
                return Found::Table(c);
            }
        }
        Found::Cached(self.balances.get_or_insert((*account, *asset), |key| {
            Arc::new(BalanceCell {
                key,
                value: LazyU64::default(),
            })
        }))
    }

    /// Adds to the calling worker's partial sum.
    fn add(
        sums: &[CachePadded<AtomicU64>],
        amount: u64,
        what: &'static str,
    ) -> Result<(), StateError> {
        let last = sums.len() - 1;
        let slot = rayon::current_thread_index().map_or(last, |i| i.min(last));
        sums[slot]
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                v.checked_add(amount)
            })
            .map(|_| ())
            .map_err(|_| StateError::Overflow(what))
    }
}

/// The per-transaction handle through which the rule engine reads and writes.
pub struct TxView<'a, S: Storage + Clone> {
    state: &'a ParallelChainState<S>,
    /// The transaction's key ids (empty for block-level operations).
    ids: &'a [u32],
    /// For a covered sender chain: (source, the nonce its reads answer).
    covered: Option<(PublicKey, u64)>,
}

impl<S: Storage + Clone> TxView<'_, S> {
    /// Runs `f` on `account`'s cell: found among the transaction's own ids
    /// when listed (no hashing, no lock), else by lookup.
    fn with_account<R>(&self, account: &PublicKey, f: impl FnOnce(&AccountCell) -> R) -> R {
        for &id in self.ids {
            if let Some(Cell::Account(cell)) = self.state.cells.get(id as usize) {
                if cell.key == *account {
                    return f(cell);
                }
            }
        }
        f(&self.state.account_cell(account))
    }

    /// As [`Self::with_account`], for a balance.
    fn with_balance<R>(
        &self,
        account: &PublicKey,
        asset: &Asset,
        f: impl FnOnce(&BalanceCell) -> R,
    ) -> R {
        for &id in self.ids {
            if let Some(Cell::Balance(cell)) = self.state.cells.get(id as usize) {
                if cell.key.0 == *account && cell.key.1 == *asset {
                    return f(cell);
                }
            }
        }
        f(&self.state.balance_cell(account, asset))
    }

    fn load_nonce(&self, account: &PublicKey) -> impl FnOnce() -> Result<u64, StateError> + '_ {
        let st = self.state;
        let account = *account;
        move || Ok(st.storage.get_nonce(&account, st.at)?.unwrap_or(0))
    }

    fn load_balance(
        &self,
        account: &PublicKey,
        asset: &Asset,
    ) -> impl FnOnce() -> Result<u64, StateError> + '_ {
        let st = self.state;
        let (account, asset) = (*account, *asset);
        move || {
            Ok(st
                .storage
                .get_balance(&account, &asset, st.at)?
                .unwrap_or(0))
        }
    }

    fn nonce_of(&self, cell: &AccountCell) -> Result<u64, StateError> {
        Ok(cell
            .nonce
            .get(self.load_nonce(&cell.key))?
            .load(Ordering::Relaxed))
    }

    fn balance_of(&self, cell: &BalanceCell) -> Result<u64, StateError> {
        Ok(cell
            .value
            .get(self.load_balance(&cell.key.0, &cell.key.1))?
            .load(Ordering::Relaxed))
    }

    fn stored_multisig(
        &self,
        cell: &AccountCell,
    ) -> Result<Option<Arc<MultisigConfig>>, StateError> {
        if let Some(v) = cell.stored_multisig.get() {
            return Ok(v.clone());
        }
        let st = self.state;
        let v = st.storage.get_multisig(&cell.key, st.at)?.map(Arc::new);
        Ok(cell.stored_multisig.get_or_init(|| v).clone())
    }

    /// Applies `f` to a balance atomically (loading it first if needed).
    fn adjust(
        &self,
        account: &PublicKey,
        asset: &Asset,
        f: impl Fn(u64) -> Option<u64>,
        err: StateError,
    ) -> Result<(), StateError> {
        self.with_balance(account, asset, |cell| {
            cell.value.update(self.load_balance(account, asset), f, err)
        })
    }
}

impl<S: Storage + Clone> TxState for TxView<'_, S> {
    fn nonce(&mut self, account: &PublicKey) -> Result<u64, StateError> {
        match self.covered {
            Some((source, nonce)) if source == *account => Ok(nonce),
            _ => self.with_account(account, |c| self.nonce_of(c)),
        }
    }

    fn balance(&mut self, account: &PublicKey, asset: &Asset) -> Result<u64, StateError> {
        self.with_balance(account, asset, |c| self.balance_of(c))
    }

    fn multisig(&mut self, account: &PublicKey) -> Result<Option<Arc<MultisigConfig>>, StateError> {
        self.with_account(account, |c| {
            if c.multisig_dirty.load(Ordering::Relaxed) {
                if let Some(v) = c.written_multisig.lock().as_ref() {
                    return Ok(v.clone());
                }
            }
            self.stored_multisig(c)
        })
    }

    fn energy(&mut self, account: &PublicKey) -> Result<EnergyState, StateError> {
        self.with_account(account, |c| {
            if let Some(s) = c.energy.lock().as_ref() {
                return Ok(s.value.clone());
            }
            let st = self.state;
            let v = st.storage.get_energy(account, st.at)?.unwrap_or_default();
            Ok(c.energy
                .lock()
                .get_or_insert(Slot {
                    value: v,
                    dirty: false,
                })
                .value
                .clone())
        })
    }

    fn increment_nonce(&mut self, account: &PublicKey) -> Result<(), StateError> {
        self.with_account(account, |c| {
            c.nonce.update(
                self.load_nonce(account),
                |v| v.checked_add(1),
                StateError::Overflow("nonce"),
            )
        })
    }

    fn debit(&mut self, account: &PublicKey, asset: &Asset, amount: u64) -> Result<(), StateError> {
        self.adjust(
            account,
            asset,
            |v| v.checked_sub(amount),
            StateError::Internal("debit below zero"),
        )
    }

    fn credit(
        &mut self,
        account: &PublicKey,
        asset: &Asset,
        amount: u64,
    ) -> Result<(), StateError> {
        self.adjust(
            account,
            asset,
            |v| v.checked_add(amount),
            StateError::Overflow("balance credit"),
        )
    }

    fn set_multisig(&mut self, account: &PublicKey, config: Option<Arc<MultisigConfig>>) {
        self.with_account(account, |c| {
            *c.written_multisig.lock() = Some(config);
            c.multisig_dirty.store(true, Ordering::Relaxed);
        })
    }

    fn set_energy(&mut self, account: &PublicKey, energy: EnergyState) {
        self.with_account(account, |c| {
            *c.energy.lock() = Some(Slot {
                value: energy,
                dirty: true,
            })
        })
    }

    fn add_burned(&mut self, amount: u64) -> Result<(), StateError> {
        ParallelChainState::<S>::add(&self.state.burned, amount, "burned")
    }

    fn add_fee(&mut self, amount: u64) -> Result<(), StateError> {
        ParallelChainState::<S>::add(&self.state.fees, amount, "fees")
    }
}

/// Block-level operations (reward, fees, change set) run on the calling
/// thread, outside any parallel phase, through the sharded cache.
impl<S: Storage + Clone> TxState for ParallelChainState<S> {
    fn nonce(&mut self, account: &PublicKey) -> Result<u64, StateError> {
        self.view().nonce(account)
    }
    fn balance(&mut self, account: &PublicKey, asset: &Asset) -> Result<u64, StateError> {
        self.view().balance(account, asset)
    }
    fn multisig(&mut self, account: &PublicKey) -> Result<Option<Arc<MultisigConfig>>, StateError> {
        self.view().multisig(account)
    }
    fn energy(&mut self, account: &PublicKey) -> Result<EnergyState, StateError> {
        self.view().energy(account)
    }
    fn increment_nonce(&mut self, account: &PublicKey) -> Result<(), StateError> {
        self.view().increment_nonce(account)
    }
    fn debit(&mut self, account: &PublicKey, asset: &Asset, amount: u64) -> Result<(), StateError> {
        self.view().debit(account, asset, amount)
    }
    fn credit(
        &mut self,
        account: &PublicKey,
        asset: &Asset,
        amount: u64,
    ) -> Result<(), StateError> {
        self.view().credit(account, asset, amount)
    }
    fn set_multisig(&mut self, account: &PublicKey, config: Option<Arc<MultisigConfig>>) {
        self.view().set_multisig(account, config)
    }
    fn set_energy(&mut self, account: &PublicKey, energy: EnergyState) {
        self.view().set_energy(account, energy)
    }
    fn add_burned(&mut self, amount: u64) -> Result<(), StateError> {
        self.view().add_burned(amount)
    }
    fn add_fee(&mut self, amount: u64) -> Result<(), StateError> {
        self.view().add_fee(amount)
    }
}

impl<S: Storage + Clone> BlockState for ParallelChainState<S> {
    /// The total (saturating; [`ParallelChainState::check_totals`] reports an overflow).
    fn fees(&self) -> u64 {
        Self::total(&self.fees).unwrap_or(u64::MAX)
    }

    /// The total (saturating; [`ParallelChainState::check_totals`] reports an overflow).
    fn burned(&self) -> u64 {
        Self::total(&self.burned).unwrap_or(u64::MAX)
    }

    fn into_change_set(self, topoheight: TopoHeight) -> ChangeSet {
        let mut changes = ChangeSet {
            topoheight,
            ..ChangeSet::default()
        };
        // Collected, then built in one go (sorted bulk build, as the
        // sequential overlay does), not inserted one by one.
        let mut balances = Vec::new();
        let mut nonces = Vec::new();
        let mut multisigs = Vec::new();
        let mut energies = Vec::new();
        let mut balance = |cell: &BalanceCell| {
            if let Some(v) = cell.value.written() {
                balances.push((cell.key, v));
            }
        };
        for cell in self.cells.iter() {
            if let Cell::Balance(c) = cell {
                balance(c);
            }
        }
        for cell in self.balances.into_values() {
            balance(&cell);
        }
        let mut account = |cell: &AccountCell| {
            if let Some(v) = cell.nonce.written() {
                nonces.push((cell.key, v));
            }
            if cell.multisig_dirty.load(Ordering::Relaxed) {
                if let Some(v) = cell.written_multisig.lock().take() {
                    multisigs.push((cell.key, v.map(|c| (*c).clone())));
                }
            }
            if let Some(Slot { value, dirty: true }) = cell.energy.lock().take() {
                energies.push((cell.key, value));
            }
        };
        for cell in self.cells.iter() {
            if let Cell::Account(c) = cell {
                account(c);
            }
        }
        for cell in self.accounts.into_values() {
            account(&cell);
        }
        changes.balances = balances.into_iter().collect();
        changes.nonces = nonces.into_iter().collect();
        changes.multisigs = multisigs.into_iter().collect();
        changes.energies = energies.into_iter().collect();
        changes
    }
}
