//! The tip cache: the latest value of recently used keys at the chain's
//! top, kept from block to block, so that a node's next block reads them
//! from memory instead of the storage.
//!
//! Why it exists: the storage's own caches (`tos_storage`'s per-clone LRU
//! caches) start empty on every clone and are cleared by every commit,
//! and a node executes each block on a fresh clone; so every block read
//! all its keys from the database (a RocksDB seek, about 1 µs a key: 3 ms
//! of a 1,000-transfer block's 3.6 ms in order). Production nodes keep a
//! cache across blocks and update it with each executed block's writes
//! (reth's cross-block execution cache, Aptos's hot state); this is that
//! cache for [`crate::Blockchain`]. Reads at the tip consult it first,
//! then the executed blocks not yet written (`overlay.rs`), then the
//! storage.
//!
//! # What an entry means
//! The cache describes the chain at its `top` (executed blocks not yet
//! written included). An entry `key -> (since, value)` says: the latest
//! version of `key` at or below `top` was written at or below `since`
//! and is `value` (`None`: never written), and no version of `key` lies
//! in `(since, top]`. So it answers a read of `key` at any `at` with
//! `since <= at <= top`, exactly what the storage would answer there.
//!
//! # Protocol
//! One lock ([`parking_lot::RwLock`]) guards the entries, `top` and
//! `version`; nothing is read outside it. `version` counts every change
//! of the chain the cache follows.
//! * **Advance** (the chain, under its writer lock, right after block
//!   `t = top + 1` is executed and queued or written): every write of the
//!   block becomes an entry `(t, value)`, replacing any older one; keys
//!   the block did not write keep their entries, which stay exact (no new
//!   version). `top = t`, `version += 1`. A block that is not `top + 1`
//!   clears the cache instead (never happens through the chain; exact
//!   either way).
//! * **Reset** (a rewind, the recovery from a failed write): clear,
//!   `top` = the chain's new top, `version += 1`.
//! * **Read** ([`TipCache::lookup`]) by a view made when the version was
//!   `v`: served only while the version is still `v` (so the view and the
//!   cache describe the same chain: a view made before a rewind or before
//!   the last block never mixes histories) and `since <= at <= top`.
//! * **Fill** ([`TipCache::fill`]): a view that read a missing key at
//!   `at` (from the overlay or the storage) offers `(key, value)`; it is
//!   kept, as `(at, value)`, only if under the write lock the version is
//!   still the view's `v` and `at == top`. Then no block was added or
//!   rewound since the view was made, so what it read at `at` is the
//!   latest version at or below `top`, and no version lies in
//!   `(at, top]`: the entry's meaning holds. A fill that loses a race
//!   with an advance or a reset is dropped (a later read misses, nothing
//!   else). An existing entry is never replaced by a fill (both are
//!   exact; the older `since` serves more reads).
//! * Each later advance keeps every entry exact: a key the block wrote is
//!   replaced, any other gains no version.
//!
//! Executed blocks not yet written (the commit pipeline) are in the cache
//! from their advance on, before the storage holds them; the overlay
//! answers them too. A failed write drops them from the chain, so
//! [`crate::Blockchain::recover`] resets the cache; until then the chain
//! refuses views (and so reads through the cache) altogether.
//!
//! Memory is bounded by `capacity` entries: when an advance or a fill
//! passes it, the least recently used quarter goes (each entry keeps the
//! top at which it was last read or written).
//!
//! The loom model below runs [`Entries`] (the whole protocol but the lock)
//! under loom's lock: a chain advancing while a view reads, misses and
//! fills, and then checks every entry against the chain.

use std::sync::atomic::{AtomicU64, Ordering};

use ahash::RandomState;
use hashbrown::HashMap;

use crate::{ChangeSet, StateKey, StateValue, TopoHeight};

/// A cached key (module doc, "What an entry means").
struct Entry {
    /// The entry answers reads at `since..=top`.
    since: TopoHeight,
    /// The latest version's value at or below `top` (`None`: never written).
    value: Option<StateValue>,
    /// The top at its last read or write (for eviction); Relaxed: a hint.
    used: AtomicU64,
}

/// The cache's state, behind the lock (the whole protocol but the lock).
pub(crate) struct Entries {
    /// The chain top the entries describe (`None`: before genesis).
    top: Option<TopoHeight>,
    /// Bumped by every advance and reset.
    version: u64,
    /// The entries. Invariant: each exact for `top` (module doc).
    map: HashMap<StateKey, Entry, RandomState>,
    /// Entries kept at most (at least 1).
    capacity: usize,
}

impl Entries {
    /// An empty cache of the chain at `top`.
    pub(crate) fn new(capacity: usize, top: Option<TopoHeight>) -> Self {
        Entries {
            top,
            version: 0,
            map: HashMap::default(),
            capacity: capacity.max(1),
        }
    }

    /// The current version (a view keeps it).
    pub(crate) fn version(&self) -> u64 {
        self.version
    }

    /// The value of `key` at `at` for a view of `version`, if the cache
    /// answers it (`Some(None)`: never written).
    pub(crate) fn lookup(
        &self,
        version: u64,
        key: &StateKey,
        at: TopoHeight,
    ) -> Option<Option<StateValue>> {
        if version != self.version || self.top.is_none_or(|top| at > top) {
            return None;
        }
        let e = self.map.get(key)?;
        if e.since > at {
            return None;
        }
        let top = self.top.unwrap_or(0);
        if e.used.load(Ordering::Relaxed) != top {
            e.used.store(top, Ordering::Relaxed);
        }
        Some(e.value.clone())
    }

    /// Whether a view of `version` may fill entries read at `at`.
    pub(crate) fn fillable(&self, version: u64, at: TopoHeight) -> bool {
        version == self.version && self.top == Some(at)
    }

    /// Keeps `(key, value)` read at `at` by a view of `version`, if the
    /// protocol allows (module doc, "Fill"); the caller checked
    /// [`Self::fillable`] under the same lock.
    pub(crate) fn fill(&mut self, key: &StateKey, value: Option<StateValue>, at: TopoHeight) {
        debug_assert_eq!(self.top, Some(at));
        self.map.entry(*key).or_insert(Entry {
            since: at,
            value,
            used: AtomicU64::new(at),
        });
    }

    /// Block `changes.topoheight` was added on top (module doc, "Advance").
    pub(crate) fn advance(&mut self, changes: &ChangeSet) {
        let t = changes.topoheight;
        self.version += 1;
        if self.top.map(|top| top + 1) != Some(t) {
            self.map.clear();
            self.top = Some(t);
            return;
        }
        self.top = Some(t);
        self.map.reserve(changes.len());
        for (key, value) in changes.iter() {
            let entry = Entry {
                since: t,
                value: Some(value.clone()),
                used: AtomicU64::new(t),
            };
            match self.map.get_mut(key) {
                Some(e) => *e = entry,
                None => {
                    self.map.insert(*key, entry);
                }
            }
        }
        self.evict();
    }

    /// The chain changed otherwise (a rewind, a recovery): forget
    /// everything; the chain's top is now `top`.
    pub(crate) fn reset(&mut self, top: Option<TopoHeight>) {
        self.version += 1;
        self.top = top;
        self.map.clear();
    }

    /// Above capacity: drops the least recently used entries down to
    /// three quarters of it.
    pub(crate) fn evict(&mut self) {
        if self.map.len() <= self.capacity {
            return;
        }
        let remove = self.map.len() - self.capacity * 3 / 4;
        let mut used: Vec<u64> = self
            .map
            .values()
            .map(|e| e.used.load(Ordering::Relaxed))
            .collect();
        let (_, &mut cutoff, _) = used.select_nth_unstable(remove - 1);
        self.map
            .retain(|_, e| e.used.load(Ordering::Relaxed) > cutoff);
    }

    /// Entries held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

/// The tip cache of a chain (module doc).
pub(crate) struct TipCache {
    /// Invariant: every entry exact for its `top` (module doc).
    entries: parking_lot::RwLock<Entries>,
}

impl TipCache {
    /// An empty cache of at most `capacity` entries for a chain at `top`.
    pub(crate) fn new(capacity: usize, top: Option<TopoHeight>) -> Self {
        TipCache {
            entries: parking_lot::RwLock::new(Entries::new(capacity, top)),
        }
    }

    /// The version a view made now keeps.
    pub(crate) fn version(&self) -> u64 {
        self.entries.read().version()
    }

    /// Answers what it can of `keys` at `at` for a view of `version`:
    /// `out[i]` is `Some(value)` for a served key and untouched (`None`)
    /// otherwise. Returns how many it served.
    pub(crate) fn lookup(
        &self,
        version: u64,
        keys: &[&StateKey],
        at: TopoHeight,
        out: &mut [Option<Option<StateValue>>],
    ) -> usize {
        let entries = self.entries.read();
        let mut hits = 0;
        for (key, slot) in keys.iter().zip(out.iter_mut()) {
            if let Some(v) = entries.lookup(version, key, at) {
                *slot = Some(v);
                hits += 1;
            }
        }
        hits
    }

    /// Keeps what a view of `version` read at `at` (module doc, "Fill").
    pub(crate) fn fill<'a>(
        &self,
        version: u64,
        at: TopoHeight,
        read: impl IntoIterator<Item = (&'a StateKey, &'a Option<StateValue>)>,
    ) {
        if !self.entries.read().fillable(version, at) {
            return;
        }
        let mut entries = self.entries.write();
        if !entries.fillable(version, at) {
            return;
        }
        for (key, value) in read {
            entries.fill(key, value.clone(), at);
        }
        entries.evict();
    }

    /// Block `changes.topoheight` was added on top of the chain.
    pub(crate) fn advance(&self, changes: &ChangeSet) {
        self.entries.write().advance(changes);
    }

    /// The chain was rewound or recovered; its top is now `top`.
    pub(crate) fn reset(&self, top: Option<TopoHeight>) {
        self.entries.write().reset(top);
    }

    /// Entries held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.read().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PublicKey;

    fn nonce(n: u8) -> StateKey {
        StateKey::Nonce(PublicKey([n; 32]))
    }

    fn block(t: TopoHeight, writes: &[(u8, u64)]) -> ChangeSet {
        let mut c = ChangeSet::new(t);
        for &(n, v) in writes {
            c.set_nonce(PublicKey([n; 32]), v);
        }
        c
    }

    fn one(cache: &TipCache, version: u64, key: &StateKey, at: TopoHeight) -> Option<Option<u64>> {
        let mut out = [None];
        cache.lookup(version, &[key], at, &mut out);
        out[0].clone().map(|v| {
            v.map(|v| match v {
                StateValue::Counter(n) => n,
                _ => unreachable!(),
            })
        })
    }

    #[test]
    fn an_advance_serves_the_block_s_writes_from_its_topoheight_on() {
        let cache = TipCache::new(100, Some(0));
        cache.advance(&block(1, &[(1, 10)]));
        let v = cache.version();
        assert_eq!(one(&cache, v, &nonce(1), 1), Some(Some(10)));
        // Below the version's topoheight: the storage answers.
        assert_eq!(one(&cache, v, &nonce(1), 0), None);
        // Not cached.
        assert_eq!(one(&cache, v, &nonce(2), 1), None);
        cache.advance(&block(2, &[(2, 20)]));
        let v2 = cache.version();
        // Key 1 was not written by block 2: still exact, now up to 2.
        assert_eq!(one(&cache, v2, &nonce(1), 2), Some(Some(10)));
        assert_eq!(one(&cache, v2, &nonce(1), 1), Some(Some(10)));
        // A view of the older version is not served.
        assert_eq!(one(&cache, v, &nonce(1), 1), None);
        // Above the top: never.
        assert_eq!(one(&cache, v2, &nonce(1), 3), None);
    }

    #[test]
    fn a_fill_is_kept_only_at_the_top_of_the_view_s_version() {
        let cache = TipCache::new(100, Some(5));
        let v = cache.version();
        let absent: Option<StateValue> = None;
        // Below the top: dropped (a version may lie above `at`).
        cache.fill(v, 4, [(&nonce(1), &absent)]);
        assert_eq!(cache.len(), 0);
        cache.fill(v, 5, [(&nonce(1), &absent)]);
        assert_eq!(one(&cache, v, &nonce(1), 5), Some(None));
        assert_eq!(one(&cache, v, &nonce(1), 4), None);
        // A fill that lost the race with an advance is dropped.
        cache.advance(&block(6, &[(1, 7)]));
        cache.fill(v, 5, [(&nonce(2), &absent)]);
        let v2 = cache.version();
        assert_eq!(one(&cache, v2, &nonce(2), 6), None);
        assert_eq!(one(&cache, v2, &nonce(1), 6), Some(Some(7)));
        // A fill never replaces an entry.
        let stale = Some(StateValue::Counter(99));
        cache.fill(v2, 6, [(&nonce(1), &stale)]);
        assert_eq!(one(&cache, v2, &nonce(1), 6), Some(Some(7)));
        // A reset at the same top: a view of the version before fills nothing.
        cache.reset(Some(6));
        cache.fill(v2, 6, [(&nonce(3), &stale)]);
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn a_reset_or_a_gap_forgets_everything() {
        let cache = TipCache::new(100, Some(0));
        cache.advance(&block(1, &[(1, 10)]));
        cache.reset(Some(0));
        let v = cache.version();
        assert_eq!(cache.len(), 0);
        assert_eq!(one(&cache, v, &nonce(1), 0), None);
        cache.advance(&block(1, &[(1, 11)]));
        cache.advance(&block(3, &[(2, 30)]));
        assert_eq!(cache.len(), 0);
        assert_eq!(one(&cache, cache.version(), &nonce(1), 3), None);
    }

    /// The memory bound the docs give (`ExecutionConfig::state_cache`):
    /// a table slot of 104 bytes (and a control byte) per entry, with up to
    /// twice as many slots as entries after the table grows.
    #[test]
    fn an_entry_takes_one_104_byte_slot() {
        assert_eq!(std::mem::size_of::<(StateKey, Entry)>(), 104);
    }

    #[test]
    fn eviction_keeps_the_recently_used_and_bounds_memory() {
        let cache = TipCache::new(8, Some(0));
        for t in 1..=20u64 {
            cache.advance(&block(t, &[(t as u8, t)]));
            // Key 1 is read at every top.
            let v = cache.version();
            if t > 1 {
                assert_eq!(one(&cache, v, &nonce(1), t), Some(Some(1)), "at {t}");
            }
            assert!(cache.len() <= 8);
        }
        let v = cache.version();
        assert_eq!(one(&cache, v, &nonce(20), 20), Some(Some(20)));
        assert_eq!(
            one(&cache, v, &nonce(2), 20),
            None,
            "least recently used: gone"
        );
    }
}

/// The cache against a model of the chain (every version of every key),
/// over random histories: blocks, reads that fill, fills of views made
/// before later blocks or rewinds, rewinds, and a capacity small enough
/// that eviction runs. Whatever the cache serves, at any topoheight, is
/// what the chain holds there.
#[cfg(test)]
mod model_tests {
    use super::*;
    use crate::PublicKey;
    use proptest::prelude::*;

    const KEYS: u8 = 4;

    fn key(n: u8) -> StateKey {
        StateKey::Nonce(PublicKey([n; 32]))
    }

    #[derive(Clone, Debug)]
    enum Op {
        /// A block writing these (key, value) pairs.
        Block(Vec<(u8, u64)>),
        /// A view made now reads `key` at `top - back` and fills it.
        Read(u8, u64),
        /// A view made now reads `key` at the top; after `ops` more
        /// operations it reads it again and fills it (stale by then).
        StaleRead(u8, usize),
        /// Rewind `back` blocks.
        Rewind(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => prop::collection::vec((0..KEYS, 0..5u64), 0..3).prop_map(Op::Block),
            3 => (0..KEYS, 0..3u64).prop_map(|(k, b)| Op::Read(k, b)),
            3 => (0..KEYS, 1..4usize).prop_map(|(k, n)| Op::StaleRead(k, n)),
            2 => (0..3u64).prop_map(Op::Rewind),
        ]
    }

    /// The chain: `blocks[t]` is what block `t` wrote (block 0: genesis,
    /// nothing).
    fn value(blocks: &[Vec<(u8, u64)>], k: u8, at: u64) -> Option<StateValue> {
        blocks[..=at as usize]
            .iter()
            .rev()
            .find_map(|b| b.iter().rev().find(|(kk, _)| *kk == k).map(|(_, v)| *v))
            .map(StateValue::Counter)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn the_cache_serves_only_what_the_chain_holds(ops in prop::collection::vec(op(), 1..60)) {
            let cache = TipCache::new(3, Some(0));
            let mut blocks: Vec<Vec<(u8, u64)>> = vec![Vec::new()];
            // Stale fills waiting: (due after this many ops, version, at, key, value).
            let mut waiting: Vec<(usize, u64, u64, u8, Option<StateValue>)> = Vec::new();
            for op in ops {
                let top = blocks.len() as u64 - 1;
                match op {
                    Op::Block(writes) => {
                        // One write per key in a change set: the last wins.
                        let mut c = ChangeSet::new(top + 1);
                        let mut kept: Vec<(u8, u64)> = Vec::new();
                        for (k, v) in writes {
                            kept.retain(|(kk, _)| *kk != k);
                            kept.push((k, v));
                        }
                        for &(k, v) in &kept {
                            c.set_nonce(PublicKey([k; 32]), v);
                        }
                        blocks.push(kept);
                        cache.advance(&c);
                    }
                    Op::Read(k, back) => {
                        let at = top.saturating_sub(back);
                        let version = cache.version();
                        let mut out = [None];
                        cache.lookup(version, &[&key(k)], at, &mut out);
                        let truth = value(&blocks, k, at);
                        match out[0].take() {
                            Some(v) => prop_assert_eq!(v, truth, "served key {} at {}", k, at),
                            None => cache.fill(version, at, [(&key(k), &truth)]),
                        }
                    }
                    Op::StaleRead(k, after) => {
                        waiting.push((after, cache.version(), top, k, value(&blocks, k, top)));
                    }
                    Op::Rewind(back) => {
                        let to = top.saturating_sub(back);
                        blocks.truncate(to as usize + 1);
                        cache.reset(Some(to));
                    }
                }
                for w in waiting.iter_mut() {
                    w.0 = w.0.saturating_sub(1);
                }
                for (_, version, at, k, v) in waiting.extract_if(.., |w| w.0 == 0) {
                    // The stale view reads again first: served only what
                    // its own snapshot holds.
                    let mut out = [None];
                    cache.lookup(version, &[&key(k)], at, &mut out);
                    if let Some(served) = out[0].take() {
                        prop_assert_eq!(&served, &v, "a stale view served key {} at {}", k, at);
                    }
                    cache.fill(version, at, [(&key(k), &v)]);
                }
                prop_assert!(cache.len() <= 3);
                let top = blocks.len() as u64 - 1;
                let version = cache.version();
                for k in 0..KEYS {
                    for at in 0..=top {
                        let mut out = [None];
                        cache.lookup(version, &[&key(k)], at, &mut out);
                        if let Some(v) = out[0].take() {
                            prop_assert_eq!(v, value(&blocks, k, at), "entry of key {} at {}", k, at);
                        }
                    }
                }
            }
        }
    }
}

/// Loom models of the protocol (module doc), on [`Entries`] under loom's
/// lock. In each, the chain changes while a view made before reads two
/// keys at its top, and fills what it missed from its own snapshot: the
/// chain advances and resets (a recovery at the same top), or rewinds and
/// adds another block at the view's top. Under every interleaving every
/// entry the cache keeps is exact for the chain at its top, and every
/// read it serves is what the view's chain holds.
#[cfg(test)]
mod loom_model {
    use super::*;
    use crate::PublicKey;
    use loom::sync::{Arc, RwLock};
    use loom::thread;

    fn key(n: u8) -> StateKey {
        StateKey::Nonce(PublicKey([n; 32]))
    }

    /// The chain's value of key `n` at topoheight `at`: block `t` (1, 2)
    /// writes key `t` := `t`; genesis writes nothing.
    fn chain_value(n: u8, at: TopoHeight) -> Option<StateValue> {
        (u64::from(n) <= at).then_some(StateValue::Counter(u64::from(n)))
    }

    #[test]
    fn fills_racing_advances_keep_every_entry_exact() {
        loom::model(|| {
            let cache = Arc::new(RwLock::new(Entries::new(16, Some(0))));
            // The view: made at top 0, version 0.
            let view_version = cache.read().unwrap().version();
            let reader = {
                let cache = Arc::clone(&cache);
                thread::spawn(move || {
                    for n in [1u8, 2] {
                        let served = cache.read().unwrap().lookup(view_version, &key(n), 0);
                        let value = match served {
                            Some(v) => v,
                            None => {
                                // The view's snapshot: the chain at 0.
                                let v = chain_value(n, 0);
                                let mut e = cache.write().unwrap();
                                if e.fillable(view_version, 0) {
                                    e.fill(&key(n), v.clone(), 0);
                                }
                                v
                            }
                        };
                        assert_eq!(value, chain_value(n, 0), "a read served a wrong value");
                    }
                })
            };
            for t in 1..=2u64 {
                let mut c = ChangeSet::new(t);
                c.set_nonce(PublicKey([t as u8; 32]), t);
                cache.write().unwrap().advance(&c);
                if t == 1 {
                    // A recovery that kept block 1: every entry goes, and a
                    // stale fill must not bring key 1's absence back.
                    cache.write().unwrap().reset(Some(1));
                }
            }
            reader.join().unwrap();
            let e = cache.read().unwrap();
            let top = e.top.unwrap();
            assert_eq!(top, 2);
            for n in [1u8, 2, 3] {
                for at in 0..=top {
                    if let Some(v) = e.lookup(e.version(), &key(n), at) {
                        assert_eq!(v, chain_value(n, at), "entry of key {n} at {at}");
                    }
                }
            }
        });
    }

    /// A view of block 1 (writing key 1) fills while the chain rewinds to
    /// 0 and adds another block 1 (writing key 2): the top is 1 again, but
    /// the view's history is gone, and none of its reads may stay.
    #[test]
    fn a_view_of_a_rewound_history_fills_nothing() {
        loom::model(|| {
            let cache = Arc::new(RwLock::new(Entries::new(16, Some(0))));
            let mut old = ChangeSet::new(1);
            old.set_nonce(PublicKey([1; 32]), 1);
            cache.write().unwrap().advance(&old);
            let view_version = cache.read().unwrap().version();
            // The view's snapshot at 1: key 1 = 1, key 2 never written.
            let snapshot = |n: u8| (n == 1).then_some(StateValue::Counter(1));
            let reader = {
                let cache = Arc::clone(&cache);
                thread::spawn(move || {
                    for n in [1u8, 2] {
                        let served = cache.read().unwrap().lookup(view_version, &key(n), 1);
                        match served {
                            Some(v) => assert_eq!(v, snapshot(n), "a read served a wrong value"),
                            None => {
                                let mut e = cache.write().unwrap();
                                if e.fillable(view_version, 1) {
                                    e.fill(&key(n), snapshot(n), 1);
                                }
                            }
                        }
                    }
                })
            };
            cache.write().unwrap().reset(Some(0));
            let mut new = ChangeSet::new(1);
            new.set_nonce(PublicKey([2; 32]), 2);
            cache.write().unwrap().advance(&new);
            reader.join().unwrap();
            // The chain now: key 1 never written, key 2 = 2 at 1.
            let e = cache.read().unwrap();
            let now = |n: u8| (n == 2).then_some(StateValue::Counter(2));
            for n in [1u8, 2] {
                if let Some(v) = e.lookup(e.version(), &key(n), 1) {
                    assert_eq!(v, now(n), "entry of key {n}");
                }
            }
        });
    }
}
