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
