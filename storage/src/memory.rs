//! [`MemoryStorage`]: the storage semantics on in-memory hash maps.
//!
//! Each key maps to its versions, oldest first; "latest version <= T" scans
//! them from the newest (usually the first look). A per-topoheight log of
//! the keys written lets a rewind drop exactly the versions above its
//! target. One `RwLock` guards the whole store: reads share it, a batch
//! takes it once, commit and rewind take it exclusively.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

// ahash: keyed (resistant to chosen-key collisions: keys hold arbitrary
// account bytes) and much faster than SipHash on 32-64 byte keys.
use ahash::AHashMap as HashMap;
use parking_lot::RwLock;
use smallvec::SmallVec;

use crate::check::{check_commit, check_init, check_rewind};
use crate::types::apply_to_snapshot;
use crate::{
    BlockMeta, ChainParams, ChangeSet, StateKey, StateRead, StateScan, StateSnapshot, StateValue,
    StateWrite, StorageError, TopoHeight,
};

/// In-memory versioned storage, for tests and benchmarks.
///
/// Cloning is cheap and the clones share the data (there is no cache, so no
/// clone can ever see a stale value).
#[derive(Clone, Default)]
pub struct MemoryStorage {
    /// The whole store; readers take the read lock, writers the write lock.
    inner: Arc<RwLock<Inner>>,
}

/// The versions of one key, oldest first (at most one per topoheight).
type Versions = SmallVec<[(TopoHeight, StateValue); 2]>;

/// The maps behind a [`MemoryStorage`].
#[derive(Default)]
struct Inner {
    /// Highest topoheight written (`None` until genesis).
    top: Option<TopoHeight>,
    /// Parameters written with genesis.
    params: Option<ChainParams>,
    /// Block metadata per topoheight, for every topoheight `<= top`.
    meta: BTreeMap<TopoHeight, BlockMeta>,
    /// Every key's versions.
    values: HashMap<StateKey, Versions>,
    /// The keys written at each topoheight (what a rewind removes).
    log: BTreeMap<TopoHeight, Vec<StateKey>>,
}

impl Inner {
    fn get(&self, key: &StateKey, at: TopoHeight) -> Option<StateValue> {
        let versions = self.values.get(key)?;
        versions
            .iter()
            .rev()
            .find(|(t, _)| *t <= at)
            .map(|(_, v)| v.clone())
    }

    fn write(&mut self, changes: &ChangeSet) {
        let t = changes.topoheight;
        let mut written = Vec::with_capacity(changes.len());
        for (key, value) in changes.iter() {
            self.values
                .entry(*key)
                .or_default()
                .push((t, value.clone()));
            written.push(*key);
        }
        self.log.insert(t, written);
        self.top = Some(t);
    }
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

impl StateRead for MemoryStorage {
    fn top_topoheight(&self) -> Result<Option<TopoHeight>, StorageError> {
        Ok(self.inner.read().top)
    }

    fn chain_params(&self) -> Result<Option<ChainParams>, StorageError> {
        Ok(self.inner.read().params)
    }

    fn block_meta(&self, topoheight: TopoHeight) -> Result<Option<BlockMeta>, StorageError> {
        Ok(self.inner.read().meta.get(&topoheight).copied())
    }

    fn get(
        &self,
        key: &StateKey,
        topoheight: TopoHeight,
    ) -> Result<Option<StateValue>, StorageError> {
        Ok(self.inner.read().get(key, topoheight))
    }

    /// One read lock for the whole batch (the single reads take one each,
    /// which concurrent readers keep bouncing between cores).
    fn get_batch(
        &self,
        keys: &[&StateKey],
        topoheight: TopoHeight,
        out: &mut Vec<Option<StateValue>>,
    ) -> Result<(), StorageError> {
        let inner = self.inner.read();
        out.extend(keys.iter().map(|k| inner.get(k, topoheight)));
        Ok(())
    }
}

impl StateWrite for MemoryStorage {
    fn init(
        &mut self,
        genesis: &ChangeSet,
        meta: &BlockMeta,
        params: &ChainParams,
    ) -> Result<(), StorageError> {
        let mut inner = self.inner.write();
        check_init(inner.top, genesis)?;
        inner.write(genesis);
        inner.meta.insert(0, *meta);
        inner.params = Some(*params);
        Ok(())
    }

    fn commit(&mut self, changes: &ChangeSet, meta: &BlockMeta) -> Result<(), StorageError> {
        let mut inner = self.inner.write();
        // Everything that can fail is checked before the first mutation.
        check_commit(inner.top, changes)?;
        inner.write(changes);
        inner.meta.insert(changes.topoheight, *meta);
        Ok(())
    }

    fn rewind_to(&mut self, topoheight: TopoHeight) -> Result<(), StorageError> {
        let mut inner = self.inner.write();
        check_rewind(inner.top, topoheight)?;
        let undone = inner.log.split_off(&(topoheight + 1));
        for (t, keys) in undone {
            for key in keys {
                if let Some(versions) = inner.values.get_mut(&key) {
                    versions.retain(|(v, _)| *v != t);
                    if versions.is_empty() {
                        inner.values.remove(&key);
                    }
                }
            }
            inner.meta.remove(&t);
        }
        inner.top = Some(topoheight);
        Ok(())
    }
}

impl StateScan for MemoryStorage {
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
        let mut snapshot = StateSnapshot::empty(topoheight, meta);
        for key in inner.values.keys() {
            if let Some(value) = inner.get(key, topoheight) {
                apply_to_snapshot(&mut snapshot, key, value)?;
            }
        }
        Ok(snapshot)
    }
}
