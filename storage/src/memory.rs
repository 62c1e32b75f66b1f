//! [`MemoryStorage`]: the [`Storage`] semantics on ordered in-memory maps.
//!
//! Every versioned map is keyed by `(key..., topoheight)`, so the versions of
//! one key are contiguous and ordered, and "latest version <= T" is a range
//! query bounded above by `(key, T)` read from the back.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::check::{check_commit, check_rewind};
use crate::{
    AccountSnapshot, Asset, BatchRead, BlockMeta, ChainParams, ChangeSet, EnergyState,
    MultisigConfig, PublicKey, StateSnapshot, Storage, StorageError, TopoHeight,
};

/// In-memory versioned storage, for tests and benchmarks.
///
/// Cloning is cheap and the clones share the data (there is no cache, so no
/// clone can ever see a stale value).
#[derive(Clone, Default)]
pub struct MemoryStorage {
    /// The whole store; readers take the read lock, commit and rewind the write lock.
    inner: Arc<RwLock<Inner>>,
}

/// The maps behind a [`MemoryStorage`].
#[derive(Default)]
struct Inner {
    /// Highest topoheight written (`None` until genesis).
    top: Option<TopoHeight>,
    /// Parameters written with genesis.
    params: Option<ChainParams>,
    /// Block metadata per topoheight, for every topoheight `<= top`.
    meta: BTreeMap<TopoHeight, BlockMeta>,
    /// Nonce versions.
    nonces: BTreeMap<(PublicKey, TopoHeight), u64>,
    /// Balance versions per (account, asset).
    balances: BTreeMap<(PublicKey, Asset, TopoHeight), u64>,
    /// Multisig versions; `None` is a deletion tombstone.
    multisigs: BTreeMap<(PublicKey, TopoHeight), Option<MultisigConfig>>,
    /// Energy versions.
    energies: BTreeMap<(PublicKey, TopoHeight), EnergyState>,
}

impl MemoryStorage {
    /// An empty (uninitialised) store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl fmt::Debug for MemoryStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.inner.read();
        f.debug_struct("MemoryStorage")
            .field("top", &inner.top)
            .finish_non_exhaustive()
    }
}

/// Latest value of `account` at or below `at` in a map keyed by `(account, topoheight)`.
fn latest<'a, V>(
    map: &'a BTreeMap<(PublicKey, TopoHeight), V>,
    account: &PublicKey,
    at: TopoHeight,
) -> Option<&'a V> {
    map.range((*account, 0)..=(*account, at))
        .next_back()
        .map(|(_, v)| v)
}

/// For each key of a map keyed by `(key, topoheight)`, calls `f(key, value)`
/// with its latest value at or below `at` (keys with no such version are skipped).
fn each_latest<K: Copy + PartialEq, V>(
    versions: impl Iterator<Item = (K, TopoHeight, V)>,
    at: TopoHeight,
    mut f: impl FnMut(K, V),
) {
    let mut current: Option<(K, V)> = None;
    for (key, topo, value) in versions {
        if let Some((k, _)) = &current {
            if *k != key {
                let (k, v) = current.take().expect("checked above");
                f(k, v);
            }
        }
        if topo <= at {
            current = Some((key, value));
        }
    }
    if let Some((k, v)) = current {
        f(k, v);
    }
}

impl Storage for MemoryStorage {
    fn prefetch_pays(&self) -> bool {
        false
    }

    fn top_topoheight(&self) -> Result<Option<TopoHeight>, StorageError> {
        Ok(self.inner.read().top)
    }

    fn chain_params(&self) -> Result<Option<ChainParams>, StorageError> {
        Ok(self.inner.read().params)
    }

    fn block_meta(&self, topoheight: TopoHeight) -> Result<Option<BlockMeta>, StorageError> {
        Ok(self.inner.read().meta.get(&topoheight).copied())
    }

    fn get_nonce(
        &self,
        account: &PublicKey,
        topoheight: TopoHeight,
    ) -> Result<Option<u64>, StorageError> {
        Ok(latest(&self.inner.read().nonces, account, topoheight).copied())
    }

    fn get_balance(
        &self,
        account: &PublicKey,
        asset: &Asset,
        topoheight: TopoHeight,
    ) -> Result<Option<u64>, StorageError> {
        let inner = self.inner.read();
        let value = inner
            .balances
            .range((*account, *asset, 0)..=(*account, *asset, topoheight))
            .next_back()
            .map(|(_, v)| *v);
        Ok(value)
    }

    fn get_multisig(
        &self,
        account: &PublicKey,
        topoheight: TopoHeight,
    ) -> Result<Option<MultisigConfig>, StorageError> {
        Ok(latest(&self.inner.read().multisigs, account, topoheight)
            .cloned()
            .flatten())
    }

    fn get_energy(
        &self,
        account: &PublicKey,
        topoheight: TopoHeight,
    ) -> Result<Option<EnergyState>, StorageError> {
        Ok(latest(&self.inner.read().energies, account, topoheight).cloned())
    }

    /// One read lock for the whole batch (the single reads take one each,
    /// which concurrent readers keep bouncing between cores).
    fn get_batch(
        &self,
        accounts: &[PublicKey],
        balances: &[(PublicKey, Asset)],
        topoheight: TopoHeight,
    ) -> Result<BatchRead, StorageError> {
        let inner = self.inner.read();
        Ok(BatchRead {
            nonces: accounts
                .iter()
                .map(|a| latest(&inner.nonces, a, topoheight).copied())
                .collect(),
            multisigs: accounts
                .iter()
                .map(|a| latest(&inner.multisigs, a, topoheight).cloned().flatten())
                .collect(),
            balances: balances
                .iter()
                .map(|(a, asset)| {
                    inner
                        .balances
                        .range((*a, *asset, 0)..=(*a, *asset, topoheight))
                        .next_back()
                        .map(|(_, v)| *v)
                })
                .collect(),
        })
    }

    fn commit(
        &mut self,
        changes: &ChangeSet,
        meta: &BlockMeta,
        params: Option<&ChainParams>,
    ) -> Result<(), StorageError> {
        let mut inner = self.inner.write();
        // Everything that can fail is checked before the first mutation.
        check_commit(inner.top, changes, params)?;
        let t = changes.topoheight;
        for (account, nonce) in &changes.nonces {
            inner.nonces.insert((*account, t), *nonce);
        }
        for ((account, asset), balance) in &changes.balances {
            inner.balances.insert((*account, *asset, t), *balance);
        }
        for (account, config) in &changes.multisigs {
            inner.multisigs.insert((*account, t), config.clone());
        }
        for (account, energy) in &changes.energies {
            inner.energies.insert((*account, t), energy.clone());
        }
        inner.meta.insert(t, *meta);
        if let Some(params) = params {
            inner.params = Some(*params);
        }
        inner.top = Some(t);
        Ok(())
    }

    fn rewind_to(&mut self, topoheight: TopoHeight) -> Result<(), StorageError> {
        let mut inner = self.inner.write();
        check_rewind(inner.top, topoheight)?;
        let keep = |t: TopoHeight| t <= topoheight;
        inner.nonces.retain(|(_, t), _| keep(*t));
        inner.balances.retain(|(_, _, t), _| keep(*t));
        inner.multisigs.retain(|(_, t), _| keep(*t));
        inner.energies.retain(|(_, t), _| keep(*t));
        inner.meta.retain(|t, _| keep(*t));
        inner.top = Some(topoheight);
        Ok(())
    }

    fn snapshot(&self, topoheight: TopoHeight) -> Result<StateSnapshot, StorageError> {
        let inner = self.inner.read();
        let meta = match (inner.top, inner.meta.get(&topoheight)) {
            (Some(top), Some(meta)) if topoheight <= top => *meta,
            (Some(top), None) if topoheight <= top => {
                return Err(StorageError::Corrupt {
                    column: "meta",
                    reason: format!("no block meta at topoheight {topoheight} <= top {top}"),
                })
            }
            (top, _) => return Err(StorageError::MissingTopoheight { topoheight, top }),
        };
        let mut accounts: BTreeMap<PublicKey, AccountSnapshot> = BTreeMap::new();
        each_latest(
            inner.nonces.iter().map(|((a, t), v)| (*a, *t, *v)),
            topoheight,
            |a, v| accounts.entry(a).or_default().nonce = v,
        );
        each_latest(
            inner
                .balances
                .iter()
                .map(|((a, s, t), v)| ((*a, *s), *t, *v)),
            topoheight,
            |(a, s), v| {
                accounts.entry(a).or_default().balances.insert(s, v);
            },
        );
        each_latest(
            inner.multisigs.iter().map(|((a, t), v)| (*a, *t, v)),
            topoheight,
            |a, v| accounts.entry(a).or_default().multisig = v.clone(),
        );
        each_latest(
            inner.energies.iter().map(|((a, t), v)| (*a, *t, v)),
            topoheight,
            |a, v| accounts.entry(a).or_default().energy = v.clone(),
        );
        Ok(StateSnapshot {
            topoheight,
            meta,
            accounts,
        })
    }
}
