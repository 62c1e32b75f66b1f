//! The verification cache from admission to block: a block of cached
//! transactions gives exactly what it gives with an empty cache, in every
//! mode and thread count (statuses, rejections with index and code, dumps);
//! a transaction with one flipped bit is a miss and is checked afresh; a
//! rejected transaction is never cached; the cache evicts at capacity; and
//! admissions from many threads while blocks execute change nothing.

mod oracle;

use std::sync::Arc;

use oracle::*;
use tos_parallel::chain::dump::{results_line, state_json_string};
use tos_parallel::chain::transaction::{FeeType, UnsignedTransaction};
use tos_parallel::engine::VerificationCache;
use tos_parallel::{Block, Blockchain, ExecutionConfig, ExecutionMode, Hash, MemoryStorage};

/// A chain of `blocks` chaos blocks over `world` (each built on the state
/// its predecessors leave), then a block whose third transaction refers to
/// a future topoheight, then one whose second has a broken signature.
fn blocks(world: &World, blocks: usize, txs: usize) -> Vec<Block> {
    let builder = Blockchain::new(
        world.storage(1),
        ExecutionConfig {
            mode: ExecutionMode::Sequential,
            ..ExecutionConfig::default()
        },
    )
    .expect("chain");
    let mut r = rng(21);
    let mut out = Vec::new();
    for b in 0..blocks {
        let contention = Contention::Keys([3, 12, 40][b % 3]);
        let block = chaos_block(world, &*builder.storage(), &mut r, txs, contention);
        builder.add_new_block(&block).expect("chaos blocks apply");
        out.push(block);
    }
    let top = builder.top_topoheight().unwrap().unwrap();
    let nonce = |i: usize| {
        use tos_parallel::StateRead;
        builder
            .storage()
            .get_nonce(&world.pubs[i], top)
            .unwrap()
            .unwrap_or(0)
    };
    let future = UnsignedTransaction {
        payload: pay(world, 1, 10),
        fee: 0,
        fee_type: FeeType::Native,
        nonce: nonce(2),
        reference_hash: Hash::default(),
        reference_topoheight: top + 5,
    }
    .sign_with_minimum_fee(&world.keys[2], &[], 0)
    .encode();
    out.push(Block::new(
        Some(top + 1),
        world.pubs[0],
        vec![
            signed_tx(world, 3, nonce(3), pay(world, 4, 1)),
            signed_tx(world, 5, nonce(5), pay(world, 6, 1)),
            future,
        ],
    ));
    let mut broken = signed_tx(world, 7, nonce(7), pay(world, 8, 1));
    let last = broken.len() - 1;
    broken[last] ^= 1;
    out.push(Block::new(
        Some(top + 1),
        world.pubs[0],
        vec![signed_tx(world, 9, nonce(9), pay(world, 10, 1)), broken],
    ));
    out
}

fn chain(
    world: &World,
    mode: ExecutionMode,
    threads: usize,
    cache: usize,
) -> Blockchain<MemoryStorage> {
    Blockchain::new(
        world.storage(1),
        ExecutionConfig {
            mode,
            threads,
            min_txs_for_parallel: 2,
            costly_reads: false,
            cache_capacity: cache,
            // The parallel engine on every block of two or more transactions
            // (asserted in `apply`), whatever the guards would choose.
            guards: false,
            ..ExecutionConfig::default()
        },
    )
    .expect("chain")
}

/// What applying `block` gave: its results line, or the rejection.
fn apply(chain: &Blockchain<MemoryStorage>, block: &Block) -> (String, usize, usize) {
    match chain.add_new_block(block) {
        Ok(outcome) => {
            let engine = chain.config().mode != ExecutionMode::Sequential && block.txs().len() >= 2;
            assert_eq!(
                outcome.stats.parallel_engine,
                engine,
                "{:?}: {:?}",
                chain.config().mode,
                outcome.stats
            );
            (
                results_line(&outcome),
                outcome.stats.cache_hits,
                outcome.stats.cache_misses,
            )
        }
        Err(e) => (format!("rejected: {e}"), 0, 0),
    }
}

#[test]
fn cached_blocks_equal_uncached_in_every_mode_and_thread_count() {
    let world = World::new(40, 5);
    let blocks = blocks(&world, 6, 30);
    for mode in [
        ExecutionMode::Sequential,
        ExecutionMode::Parallel,
        ExecutionMode::Verify,
    ] {
        for threads in [1, 2, 4, 8] {
            let cached = chain(&world, mode, threads, 10_000);
            let fresh = chain(&world, mode, threads, 0);
            for block in &blocks {
                for bytes in block.txs() {
                    // What the mempool refuses is not cached (the broken
                    // signature); the future reference is admitted: only the
                    // block knows its parent.
                    let _ = cached.admit(bytes);
                }
            }
            assert_eq!(
                cached.cache().len(),
                blocks.iter().map(|b| b.txs().len()).sum::<usize>() - 1,
                "every valid transaction admitted, the broken one refused"
            );
            let (mut hits, mut misses) = (0, 0);
            for (b, block) in blocks.iter().enumerate() {
                let (with, h, m) = apply(&cached, block);
                let (without, h0, m0) = apply(&fresh, block);
                assert_eq!(with, without, "{mode:?} {threads} threads, block {b}");
                assert_eq!(h0, 0, "the empty cache has no hit");
                let _ = m0;
                hits += h;
                misses += m;
            }
            assert!(hits > 0 && misses == 0, "hits {hits}, misses {misses}");
            let last = blocks.len() - 2;
            assert!(
                apply(&fresh, &blocks[last])
                    .0
                    .contains("reference_in_future"),
                "{mode:?}: the future reference is rejected with its code"
            );
            let (broken, _, _) = apply(&cached, &blocks[last + 1]);
            assert!(
                broken.contains("transaction 1: invalid_signature"),
                "{broken}"
            );
            assert_eq!(
                state_json_string(&cached.snapshot(None).unwrap()),
                state_json_string(&fresh.snapshot(None).unwrap()),
                "{mode:?} {threads} threads: dumps"
            );
        }
    }
}

#[test]
fn one_flipped_bit_is_a_miss_checked_afresh() {
    let world = World::new(4, 8);
    let chain = chain(&world, ExecutionMode::Parallel, 2, 1_000);
    let bytes = signed_tx(&world, 0, 0, pay(&world, 1, 77));
    let hash = chain.admit(&bytes).expect("valid");
    assert!(chain.cache().contains(&hash.0));
    // The signature's last byte, the amount's first byte, the nonce's byte:
    // each flip is another hash, not in the cache, and fails afresh.
    for at in [bytes.len() - 1, bytes.len() / 2, 40] {
        let mut flipped = bytes.clone();
        flipped[at] ^= 0x10;
        let flipped_hash = Hash(*blake3::hash(&flipped).as_bytes());
        assert!(!chain.cache().contains(&flipped_hash.0), "byte {at}");
        let block = Block::new(Some(1), world.pubs[2], vec![flipped.clone()]);
        let fresh = self::chain(&world, ExecutionMode::Parallel, 2, 0);
        let want = fresh.add_new_block(&block).map(|o| results_line(&o));
        let got = chain.add_new_block(&block).map(|o| results_line(&o));
        assert_eq!(
            format!("{got:?}"),
            format!("{want:?}"),
            "byte {at}: the cached original must not answer for the flipped copy"
        );
        assert!(chain.admit(&flipped).is_err() || chain.cache().contains(&flipped_hash.0));
    }
    // The original is still cached, and still valid.
    let block = Block::new(Some(1), world.pubs[2], vec![bytes]);
    let outcome = chain.add_new_block(&block).expect("valid block");
    assert_eq!(outcome.stats.cache_hits, 1);
    // A one-transaction block is below `min_txs_for_parallel`: this test is
    // about the cache, not the engine (the engine's cache hits are covered
    // by the block tests above, which assert it ran).
    assert_eq!(outcome.stats.reason, tos_parallel::PathReason::SmallBlock);
    assert!(!chain.cache().contains(&hash.0), "included: forgotten");
}

#[test]
fn eviction_at_capacity_keeps_the_newest() {
    let cache: VerificationCache<u64> = VerificationCache::new(1_000);
    let key = |i: u64| *blake3::hash(&i.to_le_bytes()).as_bytes();
    for i in 0..5_000u64 {
        cache.insert(key(i), Arc::new(i));
        assert!(cache.len() <= 1_000 + 63, "{} entries", cache.len());
    }
    assert!(cache.len() >= 1_000 - 63 && cache.len() <= 1_000 + 63);
    // The newest are kept (each shard evicts its oldest first).
    for i in 4_900..5_000u64 {
        assert_eq!(cache.get(&key(i)).as_deref(), Some(&i), "entry {i}");
    }
    // The oldest are gone.
    assert!((0..100u64).all(|i| cache.get(&key(i)).is_none()));
    // Removal and re-insertion keep the count exact.
    cache.remove(&key(4_999));
    assert!(cache.get(&key(4_999)).is_none());
    let before = cache.len();
    cache.insert(key(4_999), Arc::new(4_999));
    assert_eq!(cache.len(), before + 1);
    cache.clear();
    assert!(cache.is_empty());
    // Capacity 0 keeps nothing.
    let none: VerificationCache<u64> = VerificationCache::new(0);
    none.insert(key(1), Arc::new(1));
    assert!(none.is_empty());
}

#[test]
fn concurrent_admissions_while_blocks_execute_change_nothing() {
    let world = World::new(40, 9);
    let blocks = blocks(&world, 8, 40);
    let reference = chain(&world, ExecutionMode::Sequential, 1, 0);
    let want: Vec<String> = blocks.iter().map(|b| apply(&reference, b).0).collect();
    let chain = chain(&world, ExecutionMode::Parallel, 2, 50_000);
    std::thread::scope(|s| {
        // Four mempool threads admit every block's transactions (and junk)
        // in their own orders while the node applies the blocks.
        for t in 0..4usize {
            let (chain, blocks) = (&chain, &blocks);
            s.spawn(move || {
                for round in 0..3 {
                    for b in (0..blocks.len()).rev().skip((t + round) % 3) {
                        for bytes in blocks[b].txs() {
                            let _ = chain.admit(bytes);
                        }
                        let _ = chain.admit(&[t as u8, round as u8, 0xFF]);
                    }
                }
            });
        }
        for (b, block) in blocks.iter().enumerate() {
            assert_eq!(apply(&chain, block).0, want[b], "block {b}");
        }
    });
    assert_eq!(
        state_json_string(&chain.snapshot(None).unwrap()),
        state_json_string(&reference.snapshot(None).unwrap())
    );
}
