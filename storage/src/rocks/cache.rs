//! Per-clone LRU caches of the latest versions, kept exact across clones by
//! a shared generation counter.
//!
//! # Protocol
//! Shared by all clones: `Shared::generation` and `Shared::write_lock`
//! (`store.rs`); per clone and per cache: `CacheState { gen, lru }` behind
//! its own mutex.
//!
//! * Writers. `commit` and `rewind_to` hold `write_lock` from before they read
//!   the top until after their last bump, so writes are totally ordered across
//!   clones. Each one bumps `generation` to an odd value, writes ONE batch, and
//!   bumps it again to an even value (also when the write failed: the state is
//!   then unknown, and the bump invalidates every cache). So an even
//!   generation `g` means "no write in progress; the database is exactly the
//!   state after the `g / 2`-th write", and an odd one "a write is under way".
//! * Serving. Every cache access first loads `generation` (Acquire) under the
//!   cache mutex and, if it differs from `gen`, clears the cache and sets `gen`
//!   to it. So only entries tagged with the generation the reader observes are
//!   ever served. A reader that happens after a write's first bump observes
//!   that bump or a later one (coherence) and so cannot use older entries. That
//!   covers a read that starts after the commit/rewind returned, and also a
//!   read that starts after the reader saw the write's data in the database
//!   (e.g. the new top): the first bump is sequenced before the batch, and
//!   RocksDB publishes a batch with release/acquire on its sequence number.
//! * Filling. On a miss the reader remembers `g = gen`, releases the mutex and
//!   reads the database. It re-locks and inserts only if `g` is even, `gen ==
//!   g` and `generation` still loads `g`. The Acquire load that first observed
//!   `g` synchronised with the bump that produced it, so the read saw at least
//!   the state after write `g / 2`; had it seen any later write, it would
//!   happen after that write's first bump, and the re-check would not load
//!   `g`. Invariant: an entry tagged with an even `g` is exactly the latest
//!   version of its key (or its absence) in the state of generation `g`.
//! * A commit writes nothing into any cache (not even the committing
//!   clone's): it bumps `generation`, so every cache, the committer's
//!   included, is cleared when next used (the committing clone is not the
//!   one an executor reads: a node executes each block on a fresh clone).
//! * Entries hold the LATEST version overall (or "never written"), so an entry
//!   with version `v` answers any read at `T >= v`; a read below `v` goes to the
//!   database and is not cached.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};

use lru::LruCache;
use parking_lot::{Mutex, MutexGuard};

use super::schema::Cf;
use crate::{StateKey, StateValue, StorageError, TopoHeight};

/// A cached key: `None` if the key was never written, else its latest version and value.
pub(super) type Entry = Option<(TopoHeight, StateValue)>;

/// The mutable part of one cache.
struct CacheState {
    /// Generation the entries belong to (see the protocol above).
    gen: u64,
    /// The entries; allocated on first insert so that clones stay cheap.
    lru: Option<LruCache<StateKey, Entry>>,
}

/// One per-clone cache of the latest versions of one kind of value.
struct VersionedCache {
    /// The state; every access syncs `gen` with the shared generation first.
    state: Mutex<CacheState>,
}

impl VersionedCache {
    fn new() -> Self {
        VersionedCache {
            state: Mutex::new(CacheState { gen: 0, lru: None }),
        }
    }

    /// Locks the cache and brings it to the current generation (clearing it
    /// if it was behind).
    fn sync(&self, generation: &AtomicU64) -> MutexGuard<'_, CacheState> {
        let mut state = self.state.lock();
        let current = generation.load(Ordering::Acquire);
        if state.gen != current {
            if let Some(lru) = state.lru.as_mut() {
                lru.clear();
            }
            state.gen = current;
        }
        state
    }
}

/// The caches of one clone, one per versioned column family (so that
/// readers of different kinds of value never share a mutex).
pub(super) struct Caches {
    /// Indexed by `Cf::id()`.
    kinds: [VersionedCache; Cf::VERSIONED.len()],
}

impl Caches {
    pub(super) fn new() -> Self {
        Caches {
            kinds: std::array::from_fn(|_| VersionedCache::new()),
        }
    }

    fn of(&self, cf: Cf) -> &VersionedCache {
        &self.kinds[cf.id() as usize % Cf::VERSIONED.len()]
    }

    /// Reads `key` of `cf` at `at` through its cache, following the protocol
    /// above; `load(t)` reads the latest version `<= t` from the database.
    pub(super) fn read(
        &self,
        generation: &AtomicU64,
        capacity: Option<NonZeroUsize>,
        cf: Cf,
        key: &StateKey,
        at: TopoHeight,
        mut load: impl FnMut(TopoHeight) -> Result<Entry, StorageError>,
    ) -> Result<Option<StateValue>, StorageError> {
        let Some(capacity) = capacity else {
            return Ok(load(at)?.map(|(_, v)| v));
        };
        let cache = self.of(cf);
        let g = {
            let mut state = cache.sync(generation);
            // None: miss; Some(None): cached, but newer than `at`;
            // Some(Some(answer)): served from the cache.
            let hit = state
                .lru
                .as_mut()
                .and_then(|lru| lru.get(key))
                .map(|entry| match entry {
                    None => Some(None),
                    Some((version, value)) if *version <= at => Some(Some(value.clone())),
                    Some(_) => None,
                });
            match hit {
                Some(Some(answer)) => return Ok(answer),
                Some(None) => {
                    // Older than the cached latest version: seek, do not cache.
                    drop(state);
                    return Ok(load(at)?.map(|(_, v)| v));
                }
                None => state.gen,
            }
        };
        let latest = load(TopoHeight::MAX)?;
        if let Some((version, _)) = &latest {
            if *version > at {
                return Ok(load(at)?.map(|(_, v)| v));
            }
        }
        let mut state = cache.state.lock();
        if g % 2 == 0 && state.gen == g && generation.load(Ordering::Acquire) == g {
            state
                .lru
                .get_or_insert_with(|| LruCache::new(capacity))
                .put(*key, latest.clone());
        }
        Ok(latest.map(|(_, v)| v))
    }
}
