//! The verification cache's memory at 100,000 entries, measured with a
//! counting allocator (its own test binary: no other test allocates
//! meanwhile): the cache's own bytes per entry stay within
//! `VerificationCache::entry_overhead`, and a SPEC transfer costs what the
//! cache documentation states.

mod oracle;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;

use oracle::{pay, signed_tx, World};
use tos_parallel::chain::validation::check_admission;
use tos_parallel::engine::VerificationCache;
use tos_parallel::pipeline::TxCache;
use tos_parallel::Hash;

/// The system allocator, counting the bytes currently allocated.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call forwards to `System` with the caller's own arguments,
// so `System`'s guarantees are this allocator's; the counter has no effect
// on the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged (see the impl).
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged (see the impl).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: forwarded unchanged (see the impl).
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const ENTRIES: usize = 100_000;

/// A well spread key for entry `i` (the shard is chosen by the first byte).
fn key(i: usize) -> [u8; 32] {
    *blake3::hash(&(i as u64).to_le_bytes()).as_bytes()
}

#[test]
fn memory_at_100k_entries() {
    // The cache alone: values of 8 bytes behind their `Arc`.
    let before = LIVE.load(Ordering::Relaxed);
    let cache: VerificationCache<u64> = VerificationCache::new(ENTRIES);
    for i in 0..ENTRIES {
        cache.insert(key(i), Arc::new(i as u64));
    }
    assert_eq!(
        cache.len(),
        ENTRIES,
        "a cache of its capacity keeps every entry"
    );
    let bytes = (LIVE.load(Ordering::Relaxed) - before) as usize;
    let arc_u64 = 2 * std::mem::size_of::<usize>() + std::mem::size_of::<u64>();
    let own = bytes / ENTRIES - arc_u64;
    let bound = VerificationCache::<u64>::entry_overhead();
    println!("cache overhead: {own} bytes per entry (bound {bound})");
    assert!(own <= bound, "{own} bytes per entry, bound {bound}");
    drop(cache);

    // SPEC transfers, as a node's mempool holds them: the decoded
    // transaction, its spending, its declared accesses (keys and hashes).
    let world = World::new(2, 1);
    let bytes = signed_tx(&world, 0, 0, pay(&world, 1, 5));
    let hash = Hash(*blake3::hash(&bytes).as_bytes());
    let vtx = check_admission(&bytes, hash).expect("a valid transfer");
    let before = LIVE.load(Ordering::Relaxed);
    let cache = TxCache::new(ENTRIES);
    for i in 0..ENTRIES {
        cache.insert(key(i), Arc::new(vtx.clone()));
    }
    assert_eq!(cache.len(), ENTRIES);
    let per_tx = (LIVE.load(Ordering::Relaxed) - before) as usize / ENTRIES;
    println!(
        "a cached SPEC transfer: {per_tx} bytes ({} MB at {ENTRIES} entries)",
        per_tx * ENTRIES / 1_000_000
    );
    // What the documentation states (src/engine/cache.rs, README.md).
    assert!(per_tx <= 1_200, "{per_tx} bytes per cached transfer");
}
