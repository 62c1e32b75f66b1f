//! Reorgs: rewinding k blocks and replaying the same blocks gives identical
//! dumps and results; rewinding and applying *different* blocks gives the
//! state of a fresh chain that only ever saw those. Property-tested on
//! MemoryStorage and RocksStorage, in sequential and parallel mode, with
//! storage clones whose caches were warmed before the rewind.

mod oracle;

use oracle::*;
use proptest::prelude::*;
use tos_parallel::chain::dump::{results_line, state_json_string};
use tos_parallel::{
    Block, Blockchain, ExecutionConfig, ExecutionMode, RocksConfig, RocksStorage, Storage,
    NATIVE_ASSET,
};

fn config(mode: ExecutionMode) -> ExecutionConfig {
    ExecutionConfig {
        mode,
        min_txs_for_parallel: 1,
        threads: 3,
        ..ExecutionConfig::default()
    }
}

/// Builds `n` chaotic blocks on top of `storage` (using a scratch chain).
fn blocks_on(world: &World, base: &[Block], n: usize, seed: u64) -> Vec<Block> {
    let scratch = Blockchain::new(world.storage(1), config(ExecutionMode::Sequential)).unwrap();
    for b in base {
        scratch.add_new_block(b).unwrap();
    }
    let mut r = rng(seed);
    let mut out = Vec::new();
    for _ in 0..n {
        let block = chaos_block(world, &*scratch.storage(), &mut r, 20, Contention::Keys(6));
        scratch.add_new_block(&block).unwrap();
        out.push(block);
    }
    out
}

fn apply_all<S: Storage + Clone>(chain: &Blockchain<S>, blocks: &[Block]) -> Vec<String> {
    blocks
        .iter()
        .map(|b| results_line(&chain.add_new_block(b).unwrap()))
        .collect()
}

/// Every (account, asset) balance and nonce of the world, read through `s` at its top.
fn point_reads<S: Storage>(world: &World, s: &S) -> Vec<(Option<u64>, Option<u64>, Option<u64>)> {
    let top = s.top_topoheight().unwrap().unwrap();
    world
        .pubs
        .iter()
        .map(|p| {
            (
                s.get_nonce(p, top).unwrap(),
                s.get_balance(p, &NATIVE_ASSET, top).unwrap(),
                s.get_balance(p, &ASSET_B, top).unwrap(),
            )
        })
        .collect()
}

fn check_reorg<S: Storage + Clone>(
    make: impl Fn() -> S,
    world: &World,
    mode: ExecutionMode,
    prefix: usize,
    k: usize,
    seed: u64,
) {
    let base = blocks_on(world, &[], prefix, seed);
    let tail = blocks_on(world, &base, k, seed ^ 1);
    let other = blocks_on(world, &base, k + 1, seed ^ 2);

    let chain = Blockchain::new(make(), config(mode)).unwrap();
    let first = apply_all(&chain, &base);
    let tail_results = apply_all(&chain, &tail);
    let full_dump = state_json_string(&chain.snapshot(None).unwrap());
    // A clone whose caches hold values of the blocks about to be rewound.
    let warm = chain.storage().clone();
    let before_rewind = point_reads(world, &warm);

    // Rewind k and replay the same blocks: identical results and dump.
    chain.rewind_to(prefix as u64).unwrap();
    assert_eq!(chain.top_topoheight().unwrap(), Some(prefix as u64));
    assert_eq!(apply_all(&chain, &tail), tail_results);
    assert_eq!(state_json_string(&chain.snapshot(None).unwrap()), full_dump);
    assert_eq!(point_reads(world, &warm), before_rewind);

    // Rewind k and apply different blocks: equal to a fresh chain that only saw those.
    chain.rewind_to(prefix as u64).unwrap();
    let other_results = apply_all(&chain, &other);
    let fresh = Blockchain::new(make(), config(ExecutionMode::Sequential)).unwrap();
    assert_eq!(apply_all(&fresh, &base), first);
    assert_eq!(apply_all(&fresh, &other), other_results);
    assert_eq!(
        state_json_string(&chain.snapshot(None).unwrap()),
        state_json_string(&fresh.snapshot(None).unwrap())
    );
    // The warm clone never serves a value of a rewound block.
    assert_eq!(
        point_reads(world, &warm),
        point_reads(world, &*fresh.storage())
    );
    // Past states are intact too.
    for t in 0..=prefix as u64 {
        assert_eq!(
            state_json_string(&chain.storage().snapshot(t).unwrap()),
            state_json_string(&fresh.storage().snapshot(t).unwrap())
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: proptest_cases(6), ..ProptestConfig::default() })]

    #[test]
    fn reorg_on_memory(prefix in 0usize..4, k in 1usize..4, seed in any::<u64>(), parallel in any::<bool>()) {
        let world = World::new(8, seed);
        let mode = if parallel { ExecutionMode::Parallel } else { ExecutionMode::Sequential };
        check_reorg(|| world.storage(1), &world, mode, prefix, k, seed);
    }

    #[test]
    fn reorg_on_rocksdb(prefix in 0usize..4, k in 1usize..4, seed in any::<u64>(), parallel in any::<bool>()) {
        let world = World::new(8, seed);
        let mode = if parallel { ExecutionMode::Parallel } else { ExecutionMode::Sequential };
        let dir = tempfile::tempdir().unwrap();
        let counter = std::cell::Cell::new(0);
        check_reorg(
            || {
                counter.set(counter.get() + 1);
                let mut s = RocksStorage::create(&dir.path().join(counter.get().to_string()), RocksConfig::default()).unwrap();
                tos_parallel::init_genesis(&mut s, &world.genesis(1)).unwrap();
                s
            },
            &world,
            mode,
            prefix,
            k,
            seed,
        );
    }
}

#[test]
fn rewind_above_top_is_refused_and_changes_nothing() {
    let world = World::new(4, 1);
    let chain = Blockchain::new(world.storage(1), config(ExecutionMode::Sequential)).unwrap();
    apply_all(&chain, &blocks_on(&world, &[], 2, 1));
    let dump = state_json_string(&chain.snapshot(None).unwrap());
    assert!(chain.rewind_to(3).is_err());
    assert_eq!(state_json_string(&chain.snapshot(None).unwrap()), dump);
}
