//! A long randomized run: thousands of blocks through `Blockchain` in
//! sequential, parallel (8 threads) and verify mode end in the same state,
//! with identical outcomes for every block, and verify mode reports no mismatch.

mod oracle;

use oracle::*;
use tos_parallel::chain::dump::{results_line, state_json_string};
use tos_parallel::{Blockchain, ExecutionConfig, ExecutionMode};

fn chain(world: &World, mode: ExecutionMode) -> Blockchain<tos_parallel::MemoryStorage> {
    Blockchain::new(
        world.storage(1),
        ExecutionConfig {
            mode,
            min_txs_for_parallel: 1,
            threads: 8,
            ..ExecutionConfig::default()
        },
    )
    .unwrap()
}

#[test]
fn thousands_of_blocks_parallel_and_verify_equal_sequential() {
    let blocks: usize = std::env::var("TOS_LONG_RUN_BLOCKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let world = World::new(40, 7);
    let seq = chain(&world, ExecutionMode::Sequential);
    let par = chain(&world, ExecutionMode::Parallel);
    let ver = chain(&world, ExecutionMode::Verify);
    let mut r = rng(7);
    let mut orphaned = 0;
    // [in order, graph]: both paths must be exercised.
    let mut paths = [0usize; 2];
    for b in 0..blocks {
        // Contention cycles from 2 accounts to all 40.
        let contention = Contention::Keys([2, 5, 40][b % 3]);
        let block = {
            let storage = seq.storage();
            chaos_block(&world, &*storage, &mut r, 25, contention)
        };
        let s = seq.add_new_block(&block).unwrap();
        let p = par.add_new_block(&block).unwrap();
        let v = ver.add_new_block(&block).unwrap();
        assert_eq!(results_line(&s), results_line(&p), "block {b}");
        assert_eq!(results_line(&s), results_line(&v), "block {b}");
        assert_eq!(v.stats.mismatches, 0, "block {b}");
        // Verify mode compared against the parallel engine itself, never
        // the sequential engine against itself.
        assert!(v.stats.parallel_engine, "block {b}: {:?}", v.stats.reason);
        assert!(matches!(
            p.stats.path,
            tos_parallel::ExecutionPath::Parallel | tos_parallel::ExecutionPath::InOrder
        ));
        paths[(p.stats.path == tos_parallel::ExecutionPath::Parallel) as usize] += 1;
        orphaned += s.results.len() - s.ok_count();
    }
    assert!(paths[0] > 0 && paths[1] > 0, "paths taken: {paths:?}");
    // The workload really exercises failures.
    assert!(orphaned > blocks, "only {orphaned} orphaned transactions");
    let dump = state_json_string(&seq.snapshot(None).unwrap());
    assert_eq!(dump, state_json_string(&par.snapshot(None).unwrap()));
    assert_eq!(dump, state_json_string(&ver.snapshot(None).unwrap()));
}

#[test]
fn small_blocks_take_the_sequential_path() {
    let world = World::new(10, 3);
    let par = Blockchain::new(
        world.storage(1),
        ExecutionConfig {
            mode: ExecutionMode::Parallel,
            min_txs_for_parallel: 20,
            threads: 2,
            // Pipelined, 2 threads keep one core for the writer, and a
            // block size's first block runs in order (`cores-busy`): this
            // test is about the small-block threshold alone.
            pipeline: false,
            ..ExecutionConfig::default()
        },
    )
    .unwrap();
    let mut r = rng(3);
    use tos_parallel::{ExecutionPath, PathReason};
    for (txs, path, reason) in [
        (19, ExecutionPath::Sequential, PathReason::SmallBlock),
        (20, ExecutionPath::Parallel, PathReason::Parallel),
    ] {
        let block = chaos_block(&world, &*par.storage(), &mut r, txs, Contention::Keys(10));
        let stats = par.add_new_block(&block).unwrap().stats;
        assert_eq!((stats.path, stats.reason), (path, reason));
        assert_eq!(stats.parallel_engine, path == ExecutionPath::Parallel);
    }
}
