//! Parallel == sequential, property-tested: random blocks over 2 to 1,000
//! accounts with every transaction type, failing transactions, multisig and
//! energy state, and contract blocks (deploys of the workloads' programs
//! and of random code, invocations with random deposits, gas and
//! arguments), at 1, 2, 3, 4 and 8 threads, on every scheduler (the
//! optimistic one on every block, declared or not), contract blocks also
//! hinted as a node admits them (sealed on the graph when the hints hold);
//! verify mode on contract blocks reports no mismatch. Raise the case count with
//! `TOS_PROPTEST_CASES=1000 cargo test --release --test equivalence`.

mod oracle;

use oracle::*;
use proptest::prelude::*;
use tos_parallel::chain::dump::state_json_string;
use tos_parallel::{StateRead, StateScan, StateWrite};

const THREADS: [usize; 5] = [1, 2, 3, 4, 8];

/// Runs `blocks` chaotic blocks, checking every one against the oracle and
/// committing the sequential result, then checks the parallel-committed
/// chain's dump equals the sequential one's.
fn run_chain(accounts: usize, blocks: usize, txs: usize, contention: Contention, seed: u64) {
    let world = World::new(accounts, seed);
    let mut seq_store = world.storage(1);
    let mut par_store = world.storage(1);
    let executors = executors(&THREADS);
    let committer = &executors[executors.len() - PER_THREAD_COUNT + GRAPH_UNGUARDED];
    let mut r = rng(seed);
    for _ in 0..blocks {
        let block = chaos_block(&world, &seq_store, &mut r, txs, contention);
        let seq = assert_equivalent(&seq_store, &block, &executors);
        seq_store.commit(&seq.changes, &seq.meta).unwrap();
        // The parallel chain commits the parallel result (8 threads, guards off).
        let par = run_parallel(committer, &par_store, &block);
        par_store.commit(&par.changes, &par.meta).unwrap();
    }
    let top = seq_store.top_topoheight().unwrap().unwrap();
    assert_eq!(
        state_json_string(&seq_store.snapshot(top).unwrap()),
        state_json_string(&par_store.snapshot(top).unwrap())
    );
}

#[test]
fn contention_matrix() {
    // From "all disjoint" to "two accounts".
    let levels = [
        Contention::Disjoint,
        Contention::Keys(1000),
        Contention::Keys(100),
        Contention::Keys(10),
        Contention::Keys(3),
        Contention::Keys(2),
    ];
    for (k, level) in levels.into_iter().enumerate() {
        run_chain(1000, 4, 120, level, 100 + k as u64);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: proptest_cases(24), ..ProptestConfig::default() })]

    #[test]
    fn random_blocks_agree(
        accounts in prop_oneof![2usize..6, 6usize..40, 40usize..1000],
        keys in 2usize..1000,
        txs in 1usize..150,
        blocks in 1usize..5,
        seed in any::<u64>(),
    ) {
        run_chain(accounts, blocks, txs, Contention::Keys(keys.min(accounts)), seed);
    }
}

/// Hot counters (a hot receiver's balance, a covered hot sender's nonce and
/// balance) are striped per participant: the parallel engine must still
/// equal the sequential one at every thread count, and the stripes must
/// really be used.
#[test]
fn hot_counters_are_striped_and_equal_sequential() {
    use tos_parallel_tools::generator::Workload;
    for workload in [Workload::HotReceiver { permille: 900 }, Workload::HotSender] {
        let (chain, mut storage) = generated(workload, 300, 200, 3, 3);
        let executors = executors(&[1, 2, 3, 4, 8]);
        for block in &chain.blocks {
            let seq = assert_equivalent(&storage, block, &executors);
            // Unguarded, on more than one participant, on the graph: the
            // stripes engaged (the optimistic road has no stripes).
            for ex in executors.iter().filter(|e| {
                !e.config().guards
                    && e.threads() > 1
                    && e.config().scheduler != tos_parallel::engine::Scheduler::Optimistic
            }) {
                let par = run_parallel(ex, &storage, block);
                assert!(par.outcome.stats.parallel_engine);
                assert!(
                    par.outcome.stats.hot_counters >= 1,
                    "{workload}, {} threads: {:?}",
                    ex.threads(),
                    par.outcome.stats
                );
            }
            storage.commit(&seq.changes, &seq.meta).unwrap();
        }
    }
}

/// The optimistic road keeps each transaction index's read and write set
/// buffer across blocks, for the first 4,096 indexes only: blocks larger
/// than that, run one after the other by one executor at 1, 2 and 4
/// threads (the buffers then come back from the previous block, and the
/// later transactions allocate theirs), equal the sequential engine. Every
/// transaction is speculated (`speculate_all`: the buffers are what is
/// tested; by default the calling thread executes its share of each chunk
/// in order, with no buffer).
#[test]
fn the_optimistic_road_on_blocks_larger_than_its_kept_buffers() {
    use tos_parallel::engine::{EngineConfig, Scheduler};
    use tos_parallel::pipeline::SpecExecutor;
    use tos_parallel_tools::generator::Workload;
    let (chain, mut storage) = generated(Workload::Uniform, 3_000, 5_000, 2, 11);
    let executors: Vec<SpecExecutor> = [1, 2, 4]
        .into_iter()
        .map(|t| {
            let config = EngineConfig {
                scheduler: Scheduler::Optimistic,
                speculate_all: true,
                ..EngineConfig::default()
            };
            SpecExecutor::new(t, config).unwrap().always_parallel()
        })
        .collect();
    for block in &chain.blocks {
        let seq = assert_equivalent(&storage, block, &executors);
        for ex in &executors {
            let par = run_parallel(ex, &storage, block);
            assert_eq!(
                par.outcome.stats.path,
                tos_parallel::ExecutionPath::Optimistic,
                "{} threads",
                ex.threads()
            );
            assert_eq!(par.outcome.stats.optimistic, 5_000);
        }
        storage.commit(&seq.changes, &seq.meta).unwrap();
    }
}

/// The programs contract blocks deploy besides random code: the workloads'
/// contracts and the fuzz target's.
fn programs() -> Vec<Vec<u8>> {
    use tos_parallel_tools::contracts;
    let mut p = vec![
        contracts::token(),
        contracts::auction(),
        contracts::probe(),
        contracts::counter(),
    ];
    p.extend(
        tos_parallel_tools::fuzzing::PROGRAMS
            .iter()
            .map(|c| c.to_vec()),
    );
    p
}

/// Runs `blocks` contract blocks (the first mostly deploys), each checked
/// on every executor and in verify mode, committing the sequential result.
fn run_contract_chain(
    accounts: usize,
    blocks: usize,
    txs: usize,
    contention: Contention,
    seed: u64,
) {
    use tos_parallel::pipeline::{execute_block, locate_block, Run};
    let world = World::new(accounts, seed);
    let mut store = world.storage(1);
    let executors = executors(&THREADS);
    let programs = programs();
    let mut contracts = Vec::new();
    let mut r = rng(seed);
    for _ in 0..blocks {
        let block = contract_chaos_block(
            &world,
            &store,
            &mut r,
            txs,
            contention,
            &programs,
            &mut contracts,
        );
        let seq = assert_equivalent(&store, &block, &executors);
        // Verify mode (parallel side unguarded): no mismatch, the sequential result kept.
        let pre = locate_block(&store, &block).unwrap();
        let verified = execute_block(
            &executors[GRAPH_UNGUARDED],
            &store,
            &block,
            &pre,
            None,
            Run::Verify,
        )
        .unwrap();
        assert_eq!(verified.outcome.stats.mismatches, 0);
        assert!(verified.outcome.same_result(&seq.outcome));
        assert_eq!(verified.changes, seq.changes);
        store.commit(&seq.changes, &seq.meta).unwrap();
    }
}

#[test]
fn contract_contention_matrix() {
    let levels = [
        Contention::Disjoint,
        Contention::Keys(100),
        Contention::Keys(10),
        Contention::Keys(2),
    ];
    for (k, level) in levels.into_iter().enumerate() {
        run_contract_chain(200, 3, 80, level, 500 + k as u64);
    }
    // The hinted runs (`assert_equivalent`) held sealed on the graph at
    // least once, not only void attempts.
    let sealed = SEALED.with(|n| n.get());
    assert!(sealed > 0, "no hinted block ran sealed");
    eprintln!("contract contention matrix: {sealed} hinted runs sealed on the graph");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: proptest_cases(12), ..ProptestConfig::default() })]

    #[test]
    fn random_contract_blocks_agree(
        accounts in prop_oneof![2usize..6, 6usize..200],
        keys in 2usize..200,
        txs in 1usize..80,
        blocks in 1usize..4,
        seed in any::<u64>(),
    ) {
        run_contract_chain(accounts, blocks, txs, Contention::Keys(keys.min(accounts)), seed);
    }
}
