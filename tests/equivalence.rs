//! Parallel == sequential, property-tested: random blocks over 2 to 1,000
//! accounts with every transaction type, failing transactions, multisig and
//! energy state, at 1, 2, 3, 4 and 8 threads. Raise the case count with
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
    let committer = &executors[executors.len() - 2];
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
    use tos_parallel_tools::generator::{generate, GeneratorConfig, Workload};
    for workload in [Workload::HotReceiver { permille: 900 }, Workload::HotSender] {
        let chain = generate(&GeneratorConfig {
            workload,
            accounts: 300,
            txs_per_block: 200,
            blocks: 3,
            seed: 3,
        })
        .unwrap();
        let mut storage = tos_parallel::MemoryStorage::new();
        tos_parallel::init_genesis(&mut storage, &chain.genesis).unwrap();
        let executors = executors(&[1, 2, 3, 4, 8]);
        for block in &chain.blocks {
            let seq = assert_equivalent(&storage, block, &executors);
            // Unguarded, on more than one participant: the stripes engaged.
            for ex in executors
                .iter()
                .filter(|e| !e.config().guards && e.threads() > 1)
            {
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
