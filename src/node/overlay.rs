//! Executed but unpersisted blocks, and the state view that reads through
//! them: what lets [`crate::Blockchain`] execute block N+1 while block N is
//! still being written (`committer.rs`).
//!
//! A [`PendingBlock`] is one block's change set and metadata with an index
//! by key. A [`Layered`] view is a storage clone plus the pending blocks of
//! the moment it was made, newest first: a read at topoheight `at` returns
//! the value of the newest pending block at or below `at` that wrote the
//! key, else the storage's answer at `at`.
//!
//! Why the view is exact while the committer writes under it: the pending
//! blocks of a view are consecutive and end at the chain's top, and a block
//! leaves the pending list only after the storage holds it
//! (`committer.rs`). So for any key, either one of the view's pending
//! blocks wrote it (and the overlay answers with the newest such value,
//! which is what the storage holds or will hold at that topoheight), or
//! none did, and its latest version at or below `at` is at or below the
//! persisted top: the storage answers it whether or not it has meanwhile
//! written some of the view's blocks (they do not touch the key). The view
//! is only made under the chain's writer lock, so no block is added or
//! rewound while it lives.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use ahash::RandomState;
use hashbrown::HashTable;

use crate::node::tip_cache::TipCache;
use crate::{
    BlockMeta, ChainParams, ChangeSet, PreparedCommit, StateKey, StateRead, StateValue,
    StorageError, TopoHeight,
};

/// The hasher of every pending block's index: one for the process, so a
/// read hashes its key once however many blocks are pending.
fn key_hash(key: &StateKey) -> u64 {
    static STATE: OnceLock<RandomState> = OnceLock::new();
    STATE.get_or_init(RandomState::new).hash_one(key)
}

/// One executed block waiting for (or in) its write.
pub(crate) struct PendingBlock {
    /// Every write of the block, at `changes.topoheight`.
    pub(crate) changes: ChangeSet,
    /// Its metadata.
    pub(crate) meta: BlockMeta,
    /// (part, index) of each key's write in `changes`, by [`key_hash`].
    index: HashTable<(u32, u32)>,
    /// The storage's batch for it, built by the chain's thread
    /// ([`StateWrite::prepare_commit`](crate::StateWrite::prepare_commit)),
    /// until the committer takes it.
    prepared: parking_lot::Mutex<PreparedCommit>,
}

impl PendingBlock {
    /// Indexes `changes` (each key is written once in a change set).
    #[cfg(test)]
    pub(crate) fn new(changes: ChangeSet, meta: BlockMeta) -> Self {
        Self::prepared(changes, meta, PreparedCommit::none())
    }

    /// [`Self::new`], with the storage's batch built ahead.
    pub(crate) fn prepared(changes: ChangeSet, meta: BlockMeta, prepared: PreparedCommit) -> Self {
        let mut index = HashTable::with_capacity(changes.len());
        let parts = changes.parts();
        for (p, part) in parts.iter().enumerate() {
            for (i, (key, _)) in part.iter().enumerate() {
                index.insert_unique(key_hash(key), (p as u32, i as u32), |&(p, i)| {
                    key_hash(&parts[p as usize][i as usize].0)
                });
            }
        }
        PendingBlock {
            changes,
            meta,
            index,
            prepared: parking_lot::Mutex::new(prepared),
        }
    }

    /// The batch built ahead, once (then [`PreparedCommit::none`]).
    pub(crate) fn take_prepared(&self) -> PreparedCommit {
        std::mem::take(&mut *self.prepared.lock())
    }

    /// The topoheight the block produces.
    pub(crate) fn topoheight(&self) -> TopoHeight {
        self.changes.topoheight
    }

    /// The value the block wrote to `key` (whose [`key_hash`] is `hash`),
    /// if it wrote it.
    fn get(&self, key: &StateKey, hash: u64) -> Option<&StateValue> {
        let parts = self.changes.parts();
        self.index
            .find(hash, |&(p, i)| parts[p as usize][i as usize].0 == *key)
            .map(|&(p, i)| &parts[p as usize][i as usize].1)
    }
}

/// The chain's tip cache as one view sees it.
#[derive(Clone)]
pub(crate) struct TipView {
    /// The chain's cache.
    pub(crate) cache: Arc<TipCache>,
    /// Its version when the view was made (read before the pending blocks
    /// and the storage clone: `tip_cache.rs`, "Fill").
    pub(crate) version: u64,
    /// Reads it served, over every clone of the view.
    pub(crate) hits: Arc<AtomicUsize>,
}

/// A batch read of `asked` keys must answer as many values.
fn check_answered(asked: usize, answered: usize) -> Result<(), StorageError> {
    if asked == answered {
        return Ok(());
    }
    Err(StorageError::Corrupt {
        column: "batch",
        reason: format!("a batch read of {asked} keys answered {answered}"),
    })
}

/// A storage clone seen through the pending blocks above it (module doc),
/// and through the chain's tip cache when it has one (`tip_cache.rs`).
#[derive(Clone)]
pub(crate) struct Layered<S> {
    /// The node's storage (a clone sharing its data).
    base: S,
    /// Pending blocks, newest first, consecutive, the first at the top.
    pending: Arc<[Arc<PendingBlock>]>,
    /// Consulted first; fed with what the overlay and the storage answer.
    tip: Option<TipView>,
}

impl<S: StateRead> Layered<S> {
    /// `base` seen through `pending` (newest first) and `tip`.
    pub(crate) fn new(base: S, pending: Vec<Arc<PendingBlock>>, tip: Option<TipView>) -> Self {
        Layered {
            base,
            pending: pending.into(),
            tip,
        }
    }

    /// Reads the tip cache served through this view (and its clones).
    pub(crate) fn tip_hits(&self) -> usize {
        self.tip
            .as_ref()
            .map_or(0, |t| t.hits.load(Ordering::Relaxed))
    }

    /// [`StateRead::get`] without the tip cache.
    fn get_uncached(
        &self,
        key: &StateKey,
        topoheight: TopoHeight,
    ) -> Result<Option<StateValue>, StorageError> {
        match self.overlay(key, topoheight) {
            Some(v) => Ok(Some(v.clone())),
            None => self.base.get(key, topoheight),
        }
    }

    /// The value of the newest pending block at or below `at` that wrote
    /// `key`, or `None` when the storage answers.
    fn overlay(&self, key: &StateKey, at: TopoHeight) -> Option<&StateValue> {
        if self.pending.is_empty() {
            return None;
        }
        let hash = key_hash(key);
        self.pending
            .iter()
            .filter(|b| b.topoheight() <= at)
            .find_map(|b| b.get(key, hash))
    }
}

impl<S: StateRead> StateRead for Layered<S> {
    fn top_topoheight(&self) -> Result<Option<TopoHeight>, StorageError> {
        match self.pending.first() {
            Some(b) => Ok(Some(b.topoheight())),
            None => self.base.top_topoheight(),
        }
    }

    fn chain_params(&self) -> Result<Option<ChainParams>, StorageError> {
        self.base.chain_params()
    }

    fn block_meta(&self, topoheight: TopoHeight) -> Result<Option<BlockMeta>, StorageError> {
        match self.pending.iter().find(|b| b.topoheight() == topoheight) {
            Some(b) => Ok(Some(b.meta)),
            None => self.base.block_meta(topoheight),
        }
    }

    fn get(
        &self,
        key: &StateKey,
        topoheight: TopoHeight,
    ) -> Result<Option<StateValue>, StorageError> {
        let Some(tip) = &self.tip else {
            return self.get_uncached(key, topoheight);
        };
        let mut served = [None];
        if tip
            .cache
            .lookup(tip.version, &[key], topoheight, &mut served)
            == 1
        {
            tip.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(served[0].take().flatten());
        }
        let value = self.get_uncached(key, topoheight)?;
        tip.cache.fill(tip.version, topoheight, [(key, &value)]);
        Ok(value)
    }

    fn get_batch(
        &self,
        keys: &[&StateKey],
        topoheight: TopoHeight,
        out: &mut Vec<Option<StateValue>>,
    ) -> Result<(), StorageError> {
        let Some(tip) = &self.tip else {
            return self.get_batch_uncached(keys, topoheight, out);
        };
        let mut served: Vec<Option<Option<StateValue>>> = vec![None; keys.len()];
        let hits = tip.cache.lookup(tip.version, keys, topoheight, &mut served);
        tip.hits.fetch_add(hits, Ordering::Relaxed);
        if hits == keys.len() {
            out.extend(served.into_iter().map(Option::flatten));
            return Ok(());
        }
        let missed: Vec<&StateKey> = keys
            .iter()
            .zip(&served)
            .filter(|(_, s)| s.is_none())
            .map(|(k, _)| *k)
            .collect();
        let mut loaded = Vec::with_capacity(missed.len());
        self.get_batch_uncached(&missed, topoheight, &mut loaded)?;
        check_answered(missed.len(), loaded.len())?;
        tip.cache
            .fill(tip.version, topoheight, missed.iter().copied().zip(&loaded));
        let mut loaded = loaded.into_iter();
        for s in served {
            out.push(match s {
                Some(v) => v,
                None => loaded.next().flatten(),
            });
        }
        Ok(())
    }
}

impl<S: StateRead> Layered<S> {
    /// [`StateRead::get_batch`] without the tip cache.
    fn get_batch_uncached(
        &self,
        keys: &[&StateKey],
        topoheight: TopoHeight,
        out: &mut Vec<Option<StateValue>>,
    ) -> Result<(), StorageError> {
        if self.pending.iter().all(|b| b.topoheight() > topoheight) {
            return self.base.get_batch(keys, topoheight, out);
        }
        let start = out.len();
        let mut misses: Vec<&StateKey> = Vec::new();
        let mut miss_at: Vec<usize> = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            match self.overlay(key, topoheight) {
                Some(v) => out.push(Some(v.clone())),
                None => {
                    out.push(None);
                    misses.push(key);
                    miss_at.push(start + i);
                }
            }
        }
        if !misses.is_empty() {
            let mut loaded = Vec::with_capacity(misses.len());
            self.base.get_batch(&misses, topoheight, &mut loaded)?;
            check_answered(misses.len(), loaded.len())?;
            for (slot, value) in miss_at.into_iter().zip(loaded) {
                out[slot] = value;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Hash, MemoryStorage, PublicKey, StateWrite};

    fn meta(n: u8) -> BlockMeta {
        BlockMeta {
            hash: Hash([n; 32]),
            emitted_supply: n as u64,
            burned_supply: 0,
        }
    }

    fn nonce(n: u8) -> StateKey {
        StateKey::Nonce(PublicKey([n; 32]))
    }

    /// Storage holds genesis and block 1; blocks 2 and 3 are pending. Every
    /// read of the view, one by one and in a batch, at every topoheight,
    /// equals the read of a storage that holds all four.
    #[test]
    fn layered_reads_equal_a_storage_holding_the_pending_blocks() {
        let params = ChainParams {
            blocks_per_day: 10,
            genesis_hash: Hash([7; 32]),
        };
        let mut genesis = ChangeSet::new(0);
        genesis.set_nonce(PublicKey([1; 32]), 1);
        genesis.set_nonce(PublicKey([2; 32]), 1);
        let mut blocks = Vec::new();
        for t in 1..=3u64 {
            let mut c = ChangeSet::new(t);
            c.set_nonce(PublicKey([t as u8; 32]), 10 + t);
            c.set_nonce(PublicKey([9; 32]), 20 + t);
            blocks.push(c);
        }
        let mut full = MemoryStorage::new();
        full.init(&genesis, &meta(0), &params).unwrap();
        let mut base = MemoryStorage::new();
        base.init(&genesis, &meta(0), &params).unwrap();
        for (i, c) in blocks.iter().enumerate() {
            full.commit(c, &meta(i as u8 + 1)).unwrap();
        }
        base.commit(&blocks[0], &meta(1)).unwrap();
        let pending = vec![
            Arc::new(PendingBlock::new(blocks[2].clone(), meta(3))),
            Arc::new(PendingBlock::new(blocks[1].clone(), meta(2))),
        ];
        // With the tip cache (fed by blocks 2 and 3, as the chain feeds
        // it) and without; each read twice, so that the second is served
        // by what the first filled.
        let cache = Arc::new(TipCache::new(64, Some(1)));
        cache.advance(&blocks[1]);
        cache.advance(&blocks[2]);
        let tip = || TipView {
            version: cache.version(),
            cache: Arc::clone(&cache),
            hits: Arc::default(),
        };
        check_view(&Layered::new(base.clone(), pending.clone(), None), &full);
        check_view(
            &Layered::new(base.clone(), pending.clone(), Some(tip())),
            &full,
        );
        let second = Layered::new(base.clone(), pending.clone(), Some(tip()));
        check_view(&second, &full);
        // At 3 every read (a batch of nine and nine single reads); at 2
        // key 2's (written at 2; the others' entries start at 3).
        assert_eq!(
            second.tip_hits(),
            20,
            "the second round: served by the cache"
        );
        assert_eq!(cache.len(), 9, "every key filled or advanced, once");
    }

    fn check_view<S: StateRead>(view: &Layered<S>, full: &MemoryStorage) {
        assert_eq!(view.top_topoheight().unwrap(), Some(3));
        let keys: Vec<StateKey> = (1..=9).map(nonce).collect();
        let refs: Vec<&StateKey> = keys.iter().collect();
        for at in (0..=3).rev() {
            assert_eq!(view.block_meta(at).unwrap(), full.block_meta(at).unwrap());
            let (mut a, mut b) = (Vec::new(), Vec::new());
            view.get_batch(&refs, at, &mut a).unwrap();
            full.get_batch(&refs, at, &mut b).unwrap();
            assert_eq!(a, b, "batch at {at}");
            for k in &keys {
                assert_eq!(
                    view.get(k, at).unwrap(),
                    full.get(k, at).unwrap(),
                    "{k} at {at}"
                );
            }
        }
    }
}
