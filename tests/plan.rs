//! The plan, seen through the block's stats: one cell per key (the miner's
//! balance included), dependency edges by the per-key group rule (credits
//! to one balance commute; a read-write after them waits for all),
//! covered sender chains proven; and the guards picking the path.

mod oracle;

use oracle::*;
use tos_parallel::{Block, PublicKey};

#[test]
fn keys_edges_and_coverage_of_a_small_block() {
    let world = World::new(8, 7);
    let storage = world.storage(1);
    // 0: 0 -> 1; 1: 2 -> 1 (credit commutes with 0's); 2: 1 -> 3 (reads 1's
    // balance: after both credits); 3: 0 -> 4 (0's second: after 0, through
    // account 0's nonce and balance; two transactions are too few for the
    // engine to try proving the chain covered).
    let txs = vec![
        signed_tx(&world, 0, 0, pay(&world, 1, 5)),
        signed_tx(&world, 2, 0, pay(&world, 1, 5)),
        signed_tx(&world, 1, 0, pay(&world, 3, 5)),
        signed_tx(&world, 0, 1, pay(&world, 4, 5)),
    ];
    let block = Block::new(Some(1), PublicKey([9; 32]), txs);
    let seq = assert_equivalent(&storage, &block, &executors(&[2]));
    assert!(seq.outcome.results.iter().all(|r| r.status.code() == "ok"));
    let par = run_parallel(&executors(&[2])[GRAPH_UNGUARDED], &storage, &block);
    let st = &par.outcome.stats;
    assert!(st.parallel_engine);
    // Nonce and multisig of the senders 0, 1, 2; balances of 0..=4; the miner's.
    assert_eq!(st.keys, 3 + 3 + 5 + 1);
    // 0 -> 2 and 1 -> 2 through account 1's balance; 0 -> 3 through account
    // 0's nonce and through its balance (reads of its multisig commute).
    assert_eq!(st.edges, 4);
    assert_eq!(st.critical_path, 2);
    assert_eq!(st.largest_batch, 2);
    assert_eq!(st.covered, 0);
}

/// The static in-order guards: blocks without useful parallelism (two
/// accounts, a chain, one hot sender) run in order, a disjoint block runs
/// on the graph, `always_parallel` never runs in order; every result
/// equals the sequential one. Each block on a fresh executor: the static
/// guards decide an executor's first block of a size class (later ones
/// follow its measurements, `calibration.rs`, tested there).
#[test]
fn guards_pick_the_path_and_never_change_the_result() {
    use tos_parallel::{ExecutionPath, PathReason, StateWrite};
    use tos_parallel_tools::generator::Workload;
    let cases = [
        (
            Workload::Uniform,
            2,
            ExecutionPath::InOrder,
            PathReason::FewKeys,
        ),
        (
            Workload::Chain,
            400,
            ExecutionPath::InOrder,
            PathReason::SerialGraph,
        ),
        (
            Workload::Disjoint,
            400,
            ExecutionPath::Parallel,
            PathReason::Parallel,
        ),
        // One sender: its sample has about one key per transaction (the
        // sender's three and each receiver's), a small hot state that the
        // parallel engine does not beat (benches/README.md).
        (
            Workload::HotSender,
            400,
            ExecutionPath::InOrder,
            PathReason::FewKeys,
        ),
    ];
    for (workload, accounts, want, reason) in cases {
        // 120 transactions: below twice the guards' sample (64), so the
        // timed prediction (`PathReason::Predicted`, which on a busy host
        // may send a disjoint block in order) stays out of it, and the
        // static guards alone decide.
        let (chain, mut storage) = generated(workload, accounts, 120, 2, 11);
        for block in &chain.blocks {
            let seq = assert_equivalent(&storage, block, &executors(&[2]));
            let fresh = executors(&[2]);
            let (guarded, forced) = (&fresh[0], &fresh[1]);
            let g = run_parallel(guarded, &storage, block);
            assert_eq!(g.outcome.stats.path, want, "{workload}");
            assert_eq!(g.outcome.stats.reason, reason, "{workload}");
            assert_eq!(
                g.outcome.stats.parallel_engine,
                want == ExecutionPath::Parallel
            );
            let f = run_parallel(forced, &storage, block);
            assert_eq!(f.outcome.stats.path, ExecutionPath::Parallel, "{workload}");
            assert!(f.outcome.stats.parallel_engine, "{workload}");
            storage.commit(&seq.changes, &seq.meta).unwrap();
        }
    }
}
