//! The path a guarded executor (a node's default) takes for blocks with
//! open accesses: in order (`undeclared`) while it has not measured its
//! optimistic path faster, which it first probes on a block-size class's
//! 18th open block (`calibration.rs`); every block's result is the
//! sequential engine's whichever path ran.

use tos_parallel::engine::EngineConfig;
use tos_parallel::pipeline::{
    check_block, differences, locate_block, run_block, Run, SpecExecutor,
};
use tos_parallel::{init_genesis, ExecutionPath, MemoryStorage, PathReason, StateWrite};
use tos_parallel_tools::generator::{generate, GeneratorConfig, Workload};

#[test]
fn open_blocks_run_in_order_until_the_optimistic_path_is_probed() {
    let chain = generate(&GeneratorConfig {
        workload: Workload::Token,
        accounts: 200,
        txs_per_block: 40,
        blocks: 24,
        seed: 4,
    })
    .unwrap();
    let config = EngineConfig {
        costly_reads: false,
        ..EngineConfig::default()
    };
    let reference = SpecExecutor::on_current_pool(config);
    let guarded = SpecExecutor::new(2, config).unwrap();
    let mut storage = MemoryStorage::new();
    init_genesis(&mut storage, &chain.genesis).unwrap();
    let mut paths = Vec::new();
    for block in &chain.blocks {
        let pre = locate_block(&storage, block).unwrap();
        let checked = check_block(block, &pre, None, None).unwrap();
        let want = run_block(&reference, &storage, block, &pre, &checked, Run::Sequential).unwrap();
        let got = run_block(&guarded, &storage, block, &pre, &checked, Run::Parallel).unwrap();
        assert_eq!(differences(&want, &got), Vec::<String>::new());
        let open = checked.txs.iter().any(|t| t.accesses.is_open());
        let stats = &got.outcome.stats;
        if open {
            paths.push(stats.path);
            if stats.path != ExecutionPath::Optimistic {
                assert_eq!(stats.reason, PathReason::Undeclared, "{stats:?}");
                assert!(!stats.parallel_engine);
            }
        }
        storage.commit(&want.changes, &want.meta).unwrap();
    }
    // Block 1 deploys; every later block is a class of 40 open transactions.
    assert!(paths.len() >= 20, "{} open blocks", paths.len());
    let first_probe = paths.iter().position(|p| *p == ExecutionPath::Optimistic);
    assert_eq!(first_probe, Some(17), "{paths:?}");
}

/// Where reads are costly (a database), a guarded executor that runs an
/// open block in order has the pool read the block's keys first (the
/// optimistic path's preload, `After::InOrder`), then runs every
/// transaction in order: the stats show the team's reads (`prefetch`),
/// and every block equals the sequential engine's. On one thread, or
/// where reads are cheap, the block runs on the sequential engine alone.
#[test]
fn open_blocks_in_order_share_their_reads_where_reads_are_costly() {
    let chain = generate(&GeneratorConfig {
        workload: Workload::ContractsMixed,
        accounts: 500,
        txs_per_block: 300,
        blocks: 5,
        seed: 9,
    })
    .unwrap();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let costly = EngineConfig {
        costly_reads: true,
        ..EngineConfig::default()
    };
    let cheap = EngineConfig {
        costly_reads: false,
        ..EngineConfig::default()
    };
    let reference = SpecExecutor::on_current_pool(cheap);
    // (executor, whether the pool reads the keys)
    let executors = [
        (SpecExecutor::new(2, costly).unwrap(), cores >= 2),
        (SpecExecutor::new(4, costly).unwrap(), cores >= 2),
        (SpecExecutor::new(1, costly).unwrap(), false),
        (SpecExecutor::new(2, cheap).unwrap(), false),
    ];
    let mut storage = MemoryStorage::new();
    init_genesis(&mut storage, &chain.genesis).unwrap();
    let mut open_blocks = 0;
    for block in &chain.blocks {
        let pre = locate_block(&storage, block).unwrap();
        let checked = check_block(block, &pre, None, None).unwrap();
        let want = run_block(&reference, &storage, block, &pre, &checked, Run::Sequential).unwrap();
        let open = checked.txs.iter().any(|t| t.accesses.is_open());
        open_blocks += usize::from(open);
        for (i, (executor, shared)) in executors.iter().enumerate() {
            let got = run_block(executor, &storage, block, &pre, &checked, Run::Parallel).unwrap();
            assert_eq!(
                differences(&want, &got),
                Vec::<String>::new(),
                "executor {i}"
            );
            let stats = &got.outcome.stats;
            if open {
                assert_eq!(
                    stats.path,
                    ExecutionPath::InOrder,
                    "executor {i}: {stats:?}"
                );
                assert!(!stats.parallel_engine, "executor {i}");
                assert_eq!(
                    stats.prefetch > std::time::Duration::ZERO,
                    *shared,
                    "executor {i}: the pool's reads {stats:?}"
                );
            }
        }
        storage.commit(&want.changes, &want.meta).unwrap();
    }
    assert!(open_blocks >= 3, "{open_blocks} open blocks");
}
