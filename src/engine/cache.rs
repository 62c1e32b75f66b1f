//! [`VerificationCache`]: transactions already checked (when they entered
//! the mempool), kept for the block that includes them.
//!
//! Keyed by the transaction's hash (for the SPEC chain: blake3 of its full
//! encoding, so the key covers the signature and every signed byte: one
//! flipped bit is another key, a miss, checked afresh). A chain stores only
//! what passed its checks, together with everything derived from the
//! transaction alone (the decoded transaction, its declared accesses and
//! their hashes), so a hit costs no decode, no signature and no hashing.
//!
//! # Concurrency
//! The entries are split over up to 64 shards by the hash's first bytes,
//! each behind its own `RwLock` (cache-padded): lookups take a shard's read
//! lock, inserts and removals its write lock, each for one map operation;
//! no lock is ever held while another is taken, so no deadlock, and threads
//! working on different transactions rarely meet on one shard. Safe to
//! share between threads and rayon jobs (`&self` everywhere).
//!
//! # Bound
//! `capacity` entries in all, counted across the shards by one atomic (an
//! addition per insertion or removal, no lock): an insertion into a full
//! cache first evicts its shard's oldest entry (a mempool's oldest
//! transaction is the likeliest to be stale). Only when that shard holds
//! nothing to evict does it insert anyway, so the count never exceeds
//! `capacity` plus one entry per other shard (63 at most), and it returns
//! to `capacity` as those shards take insertions. Memory is the count
//! times the size of one entry: the shared value plus
//! [`VerificationCache::entry_overhead`] (a map slot and a queue slot);
//! `tests/cache_memory.rs` measures both at 100,000 entries.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

// ahash: keyed, so chosen hashes cannot degrade a shard's map.
use ahash::AHashMap as HashMap;
use crossbeam_utils::CachePadded;
use parking_lot::RwLock;

/// Most shards a cache splits into.
const MAX_SHARDS: usize = 64;

/// One shard: its entries and their insertion order.
struct Shard<T> {
    /// Entry by hash, with the sequence number of its insertion.
    map: HashMap<[u8; 32], (u64, Arc<T>)>,
    /// Insertions, oldest first: (sequence, hash). An entry whose sequence no
    /// longer matches the map (removed, or inserted again) is skipped.
    order: VecDeque<(u64, [u8; 32])>,
    /// The next sequence number.
    next: u64,
}

impl<T> Default for Shard<T> {
    fn default() -> Self {
        Shard {
            map: HashMap::new(),
            order: VecDeque::new(),
            next: 0,
        }
    }
}

/// A bounded, sharded cache of checked transactions (see the module docs).
pub struct VerificationCache<T> {
    /// Invariant: `shards.len()` is a power of two; hash `h` lives in
    /// `shards[h[0] as usize & (len - 1)]`.
    shards: Box<[CachePadded<RwLock<Shard<T>>>]>,
    /// Entries in all (see the module docs for the bound).
    capacity: usize,
    /// Invariant: the sum of the shards' map sizes (changed under the
    /// shard's write lock together with its map).
    count: CachePadded<AtomicUsize>,
}

impl<T> std::fmt::Debug for VerificationCache<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerificationCache")
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .finish()
    }
}

impl<T> VerificationCache<T> {
    /// A cache holding at most `capacity` entries (0: nothing is kept).
    pub fn new(capacity: usize) -> Self {
        let shards = (capacity / 256)
            .clamp(1, MAX_SHARDS)
            .next_power_of_two()
            .min(MAX_SHARDS);
        VerificationCache {
            shards: (0..shards)
                .map(|_| CachePadded::new(RwLock::new(Shard::default())))
                .collect(),
            capacity,
            count: CachePadded::new(AtomicUsize::new(0)),
        }
    }

    fn shard(&self, hash: &[u8; 32]) -> &RwLock<Shard<T>> {
        &self.shards[hash[0] as usize & (self.shards.len() - 1)]
    }

    /// The entry of `hash`, if cached.
    pub fn get(&self, hash: &[u8; 32]) -> Option<Arc<T>> {
        self.shard(hash)
            .read()
            .map
            .get(hash)
            .map(|(_, v)| Arc::clone(v))
    }

    /// Whether `hash` is cached.
    pub fn contains(&self, hash: &[u8; 32]) -> bool {
        self.shard(hash).read().map.contains_key(hash)
    }

    /// Caches `value` under `hash` (the caller checked it), evicting the
    /// shard's oldest entries while the cache is full. An entry already
    /// cached under `hash` is kept, and returned.
    pub fn insert(&self, hash: [u8; 32], value: Arc<T>) -> Arc<T> {
        if self.capacity == 0 {
            return value;
        }
        let mut shard = self.shard(&hash).write();
        if let Some((_, v)) = shard.map.get(&hash) {
            return Arc::clone(v);
        }
        while self.count.load(Ordering::Relaxed) >= self.capacity {
            let Some((seq, old)) = shard.order.pop_front() else {
                break;
            };
            if shard.map.get(&old).is_some_and(|(s, _)| *s == seq) {
                shard.map.remove(&old);
                self.count.fetch_sub(1, Ordering::Relaxed);
            }
        }
        let seq = shard.next;
        shard.next += 1;
        shard.map.insert(hash, (seq, Arc::clone(&value)));
        self.count.fetch_add(1, Ordering::Relaxed);
        shard.order.push_back((seq, hash));
        // Removals leave stale queue slots; keep the queue within twice the map.
        if shard.order.len() > 2 * shard.map.len().max(16) {
            let Shard { map, order, .. } = &mut *shard;
            order.retain(|(s, h)| map.get(h).is_some_and(|(live, _)| live == s));
        }
        value
    }

    /// Forgets `hash` (its transaction was included in a block).
    pub fn remove(&self, hash: &[u8; 32]) {
        if self.shard(hash).write().map.remove(hash).is_some() {
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Entries cached now.
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entries the cache holds when full (see the module docs).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Forgets everything.
    pub fn clear(&self) {
        for s in self.shards.iter() {
            let mut s = s.write();
            self.count.fetch_sub(s.map.len(), Ordering::Relaxed);
            s.map.clear();
            s.order.clear();
        }
    }

    /// At most this many bytes the cache itself spends per entry beyond
    /// the value: a map slot (hash, sequence, pointer, control byte; the
    /// map's load stays above 7/16, as it doubles when 7/8 full) and its
    /// insertion-queue slots (at most twice the map, stale slots included,
    /// in a queue that doubles). The shared value (`T` behind its `Arc`)
    /// comes on top. `tests/cache_memory.rs` measures the real figure at
    /// 100,000 entries against this bound.
    pub fn entry_overhead() -> usize {
        let slot = std::mem::size_of::<([u8; 32], (u64, Arc<T>))>() + 1;
        let queue = std::mem::size_of::<(u64, [u8; 32])>();
        slot * 16 / 7 + queue * 4
    }
}
