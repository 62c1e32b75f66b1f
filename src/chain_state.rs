//! [`ParallelChainState`]: the state a block executes on in parallel.
//!
//! # Locking argument
//! The cache is split in shards, each a `parking_lot::Mutex<HashMap>`; a key
//! always maps to the same shard (by its hash), and no code holds two shard
//! locks at once, so there is no lock-order deadlock. A lock is held only for a
//! map lookup or insert, never across a storage read (a miss reads storage
//! unlocked, then inserts with `entry().or_insert`, keeping whichever value got
//! there first; both are the same storage value, since nothing writes a key
//! before reading it). Values are consistent because the scheduler never runs
//! two transactions touching the same key at the same time: the mutex only
//! makes the map itself safe to share, and the batch barrier (rayon's
//! join/collect, which synchronises-with the workers) orders every write of
//! batch `k` before every read of batch `k + 1`.
//!
//! The fee and burn accumulators are `AtomicU64`s updated with `Relaxed`
//! read-modify-writes: addition commutes, the order does not matter, and they
//! are read only after the last batch, behind the same barrier.

// ahash: keyed (DoS-resistant against chosen keys) and much faster than SipHash on 32-64 byte keys.
use ahash::AHashMap as HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_utils::CachePadded;
use parking_lot::Mutex;

use crate::access::{Access, AccessKey};
use crate::error::StateError;
use crate::executor::BlockState;
use crate::rules::TxState;
use crate::{Asset, ChangeSet, EnergyState, MultisigConfig, PublicKey, Storage, TopoHeight};

/// A cached value and whether the block wrote it.
#[derive(Clone, Debug)]
struct Slot<T> {
    value: T,
    dirty: bool,
}

/// An account's own fields, each loaded lazily on first use.
#[derive(Clone, Debug, Default)]
struct AccountEntry {
    nonce: Option<Slot<u64>>,
    multisig: Option<Slot<Option<Arc<MultisigConfig>>>>,
    energy: Option<Slot<EnergyState>>,
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

impl<K: Hash + Eq, V> Sharded<K, V> {
    fn new(shards: usize) -> Self {
        let n = shards.next_power_of_two();
        Sharded {
            shards: (0..n)
                .map(|_| CachePadded::new(Mutex::new(HashMap::new())))
                .collect(),
            hasher: Default::default(),
        }
    }

    fn shard(&self, key: &K) -> &Mutex<HashMap<K, V>> {
        let h = self.hasher.hash_one(key) as usize;
        &self.shards[h & (self.shards.len() - 1)]
    }

    /// Runs `f` on the entry of `key` under its shard lock, inserting `load()`
    /// (computed without the lock) when absent.
    fn with<R, E>(
        &self,
        key: K,
        load: impl FnOnce() -> Result<V, E>,
        f: impl FnOnce(&mut V) -> R,
    ) -> Result<R, E> {
        let shard = self.shard(&key);
        {
            let mut map = shard.lock();
            if let Some(v) = map.get_mut(&key) {
                return Ok(f(v));
            }
        }
        let loaded = load()?;
        let mut map = shard.lock();
        Ok(f(map.entry(key).or_insert(loaded)))
    }

    /// Runs `f` on the entry of `key` under its shard lock, inserting the default when absent.
    fn with_default<R>(&self, key: K, f: impl FnOnce(&mut V) -> R) -> R
    where
        V: Default,
    {
        f(self.shard(&key).lock().entry(key).or_default())
    }

    fn into_entries(self) -> impl Iterator<Item = (K, V)> {
        self.shards
            .into_vec()
            .into_iter()
            .flat_map(|s| CachePadded::into_inner(s).into_inner().into_iter())
    }
}

/// Shared state of a block executing in parallel, on an owned storage clone.
pub struct ParallelChainState<S: Storage + Clone> {
    /// Storage clone read at `at`; never written.
    storage: S,
    /// The parent topoheight every storage read uses.
    at: TopoHeight,
    /// Account fields touched by the block.
    accounts: Sharded<PublicKey, AccountEntry>,
    /// Balances touched by the block.
    balances: Sharded<(PublicKey, Asset), Slot<u64>>,
    /// Sum of native fees of successful transactions.
    fees: AtomicU64,
    /// Native amount burned by successful transactions.
    burned: AtomicU64,
}

impl<S: Storage + Clone> ParallelChainState<S> {
    /// An empty state over `storage` at topoheight `at`, with `shards` lock shards per map.
    pub fn new(storage: S, at: TopoHeight, shards: usize) -> Self {
        ParallelChainState {
            storage,
            at,
            accounts: Sharded::new(shards),
            balances: Sharded::new(shards),
            fees: AtomicU64::new(0),
            burned: AtomicU64::new(0),
        }
    }

    /// A [`TxState`] handle for one transaction (cheap; one per worker call).
    pub fn view(&self) -> TxView<'_, S> {
        TxView {
            state: self,
            covered: None,
        }
    }

    /// A handle for a transaction of a covered sender chain (see
    /// `coverage.rs`): reading `source`'s nonce answers `nonce`, the value
    /// sequential execution is proven to read, whatever order the chain's
    /// transactions run in; every write is still a delta on the real state.
    pub fn covered_view(&self, source: PublicKey, nonce: u64) -> TxView<'_, S> {
        TxView {
            state: self,
            covered: Some((source, nonce)),
        }
    }

    /// Whether the storage wants a prefetch ([`Storage::prefetch_pays`]).
    pub fn prefetch_pays(&self) -> bool {
        self.storage.prefetch_pays()
    }

    /// Loads the keys of `accesses` into the cache (nonce and multisig of an
    /// account key, since every transaction reads them; the balance of a
    /// balance key), so execution rarely waits on storage. The executor calls
    /// it for every transaction, in parallel, before any transaction runs.
    pub fn prefetch(&self, accesses: &[Access]) -> Result<(), StateError> {
        let mut view = self.view();
        for a in accesses {
            match &a.key {
                AccessKey::Account(k) => {
                    view.load_nonce(k)?;
                    view.multisig(k)?;
                }
                AccessKey::Balance(k, asset) => {
                    view.balance(k, asset)?;
                }
            }
        }
        Ok(())
    }

    fn account<R>(&self, account: &PublicKey, f: impl FnOnce(&mut AccountEntry) -> R) -> R {
        self.accounts.with_default(*account, f)
    }

    fn add(counter: &AtomicU64, amount: u64, what: &'static str) -> Result<(), StateError> {
        counter
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
    /// For a covered sender chain: (source, the nonce its reads answer).
    covered: Option<(PublicKey, u64)>,
}

impl<S: Storage + Clone> TxView<'_, S> {
    fn load_nonce(&self, account: &PublicKey) -> Result<u64, StateError> {
        let st = self.state;
        if let Some(v) = st.account(account, |e| e.nonce.as_ref().map(|s| s.value)) {
            return Ok(v);
        }
        let v = st.storage.get_nonce(account, st.at)?.unwrap_or(0);
        Ok(st.account(account, |e| {
            e.nonce
                .get_or_insert(Slot {
                    value: v,
                    dirty: false,
                })
                .value
        }))
    }

    /// A balance as storage has it at the parent topoheight (a clean slot).
    fn load_balance(&self, account: &PublicKey, asset: &Asset) -> Result<Slot<u64>, StateError> {
        let st = self.state;
        Ok(Slot {
            value: st.storage.get_balance(account, asset, st.at)?.unwrap_or(0),
            dirty: false,
        })
    }

    /// Applies `f` to a balance under its shard lock (loading it first if needed).
    fn adjust(
        &self,
        account: &PublicKey,
        asset: &Asset,
        f: impl FnOnce(u64) -> Result<u64, StateError>,
    ) -> Result<(), StateError> {
        self.state.balances.with(
            (*account, *asset),
            || self.load_balance(account, asset),
            |s| {
                s.value = f(s.value)?;
                s.dirty = true;
                Ok(())
            },
        )?
    }
}

impl<S: Storage + Clone> TxState for TxView<'_, S> {
    fn nonce(&mut self, account: &PublicKey) -> Result<u64, StateError> {
        match self.covered {
            Some((source, nonce)) if source == *account => Ok(nonce),
            _ => self.load_nonce(account),
        }
    }

    fn balance(&mut self, account: &PublicKey, asset: &Asset) -> Result<u64, StateError> {
        self.state.balances.with(
            (*account, *asset),
            || self.load_balance(account, asset),
            |s| s.value,
        )
    }

    fn multisig(&mut self, account: &PublicKey) -> Result<Option<Arc<MultisigConfig>>, StateError> {
        let st = self.state;
        if let Some(v) = st.account(account, |e| e.multisig.as_ref().map(|s| s.value.clone())) {
            return Ok(v);
        }
        let v = st.storage.get_multisig(account, st.at)?.map(Arc::new);
        Ok(st.account(account, |e| {
            e.multisig
                .get_or_insert(Slot {
                    value: v,
                    dirty: false,
                })
                .value
                .clone()
        }))
    }

    fn energy(&mut self, account: &PublicKey) -> Result<EnergyState, StateError> {
        let st = self.state;
        if let Some(v) = st.account(account, |e| e.energy.as_ref().map(|s| s.value.clone())) {
            return Ok(v);
        }
        let v = st.storage.get_energy(account, st.at)?.unwrap_or_default();
        Ok(st.account(account, |e| {
            e.energy
                .get_or_insert(Slot {
                    value: v,
                    dirty: false,
                })
                .value
                .clone()
        }))
    }

    fn increment_nonce(&mut self, account: &PublicKey) -> Result<(), StateError> {
        self.load_nonce(account)?;
        self.state.account(account, |e| match e.nonce.as_mut() {
            Some(slot) => {
                slot.value = slot
                    .value
                    .checked_add(1)
                    .ok_or(StateError::Overflow("nonce"))?;
                slot.dirty = true;
                Ok(())
            }
            None => Err(StateError::Internal("nonce vanished after loading")),
        })
    }

    fn debit(&mut self, account: &PublicKey, asset: &Asset, amount: u64) -> Result<(), StateError> {
        self.adjust(account, asset, |v| {
            v.checked_sub(amount)
                .ok_or(StateError::Internal("debit below zero"))
        })
    }

    fn credit(
        &mut self,
        account: &PublicKey,
        asset: &Asset,
        amount: u64,
    ) -> Result<(), StateError> {
        self.adjust(account, asset, |v| {
            v.checked_add(amount)
                .ok_or(StateError::Overflow("balance credit"))
        })
    }

    fn set_multisig(&mut self, account: &PublicKey, config: Option<Arc<MultisigConfig>>) {
        self.state.account(account, |e| {
            e.multisig = Some(Slot {
                value: config,
                dirty: true,
            })
        });
    }

    fn set_energy(&mut self, account: &PublicKey, energy: EnergyState) {
        self.state.account(account, |e| {
            e.energy = Some(Slot {
                value: energy,
                dirty: true,
            })
        });
    }

    fn add_burned(&mut self, amount: u64) -> Result<(), StateError> {
        ParallelChainState::<S>::add(&self.state.burned, amount, "burned")
    }

    fn add_fee(&mut self, amount: u64) -> Result<(), StateError> {
        ParallelChainState::<S>::add(&self.state.fees, amount, "fees")
    }
}

/// Block-level operations (reward, fees, change set) run on the calling
/// thread, outside any batch, through the same handle.
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
    fn fees(&self) -> u64 {
        self.fees.load(Ordering::Relaxed)
    }

    fn burned(&self) -> u64 {
        self.burned.load(Ordering::Relaxed)
    }

    fn into_change_set(self, topoheight: TopoHeight) -> ChangeSet {
        let mut changes = ChangeSet {
            topoheight,
            ..ChangeSet::default()
        };
        for (key, slot) in self.balances.into_entries() {
            if slot.dirty {
                changes.balances.insert(key, slot.value);
            }
        }
        for (key, e) in self.accounts.into_entries() {
            if let Some(Slot { value, dirty: true }) = e.nonce {
                changes.nonces.insert(key, value);
            }
            if let Some(Slot { value, dirty: true }) = e.multisig {
                changes.multisigs.insert(key, value.map(|c| (*c).clone()));
            }
            if let Some(Slot { value, dirty: true }) = e.energy {
                changes.energies.insert(key, value);
            }
        }
        changes
    }
}
