//! The plan's key ids (`access::KeyIndex`) and the dependency graph built
//! over them: ids are dense, first-seen, shared by every access to one key,
//! and the graph's edges follow the per-key rules.

mod oracle;

use oracle::*;
use tos_parallel::access::{access_set, AccessKey, KeyIndex};
use tos_parallel::executor::{locate_block, verify_block_sequential};
use tos_parallel::scheduler::DependencyGraph;
use tos_parallel::{Block, PublicKey};

#[test]
fn key_ids_are_dense_and_shared_and_the_graph_uses_them() {
    let world = World::new(8, 7);
    let storage = world.storage(1);
    // 0: 0 -> 1; 1: 2 -> 1 (credit commutes with 0's); 2: 1 -> 3 (reads 1's
    // balance: after both credits); 3: 0 -> 4 (0's second: after tx 0).
    let txs = vec![
        signed_tx(&world, 0, 0, pay(&world, 1, 5)),
        signed_tx(&world, 2, 0, pay(&world, 1, 5)),
        signed_tx(&world, 1, 0, pay(&world, 3, 5)),
        signed_tx(&world, 0, 1, pay(&world, 4, 5)),
    ];
    let block = Block::new(Some(1), PublicKey([9; 32]), txs);
    let pre = locate_block(&storage, &block).unwrap();
    let verified = verify_block_sequential(&block, &pre).unwrap();
    let access: Vec<_> = verified.iter().map(access_set).collect();
    let index = KeyIndex::build(&access);

    // Every access maps to the id of its own key; ids are dense.
    let mut distinct = std::collections::BTreeSet::new();
    for (t, set) in access.iter().enumerate() {
        let ids = index.ids_of(t);
        assert_eq!(ids.len(), set.len());
        for (a, &id) in set.iter().zip(ids) {
            assert_eq!(index.keys()[id as usize], a.key);
            assert_eq!(index.get(&a.key), Some(id));
            distinct.insert(a.key);
        }
    }
    assert_eq!(index.len(), distinct.len());
    assert!(index.ids_of(access.len()).is_empty());
    assert_eq!(index.get(&AccessKey::Account(PublicKey([9; 32]))), None);
    // Account 0's key is shared by transactions 0 and 3.
    assert_eq!(index.ids_of(0)[0], index.ids_of(3)[0]);

    let graph = DependencyGraph::build(&access, &index);
    assert_eq!(graph.distinct_keys(), index.len());
    assert!(graph.dependents(0).contains(&2));
    assert!(graph.dependents(1).contains(&2));
    assert!(graph.dependents(0).contains(&3));
    assert!(
        !graph.dependents(0).contains(&1),
        "credits to one balance commute"
    );
    assert_eq!(graph.indegrees()[1], 0);
    assert_eq!(graph.critical_path(), 2);
}

/// The in-order guards: blocks without useful parallelism (two accounts, a
/// chain) run in order, a disjoint block runs on the graph, `always_parallel`
/// never runs in order; every result equals the sequential one.
#[test]
fn guards_pick_the_path_and_never_change_the_result() {
    use tos_parallel::generator::{generate, GeneratorConfig, Workload};
    use tos_parallel::PathReason;
    use tos_parallel::{ExecutionPath, ParallelExecutor, Storage};
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
        (
            Workload::HotSender,
            400,
            ExecutionPath::Parallel,
            PathReason::Parallel,
        ),
    ];
    let guarded = ParallelExecutor::new(2).unwrap();
    let forced = ParallelExecutor::new(2).unwrap().always_parallel();
    for (workload, accounts, want, reason) in cases {
        let chain = generate(&GeneratorConfig {
            workload,
            accounts,
            txs_per_block: 150,
            blocks: 2,
            seed: 11,
        })
        .unwrap();
        let mut storage = tos_parallel::MemoryStorage::new();
        tos_parallel::init_genesis(&mut storage, &chain.genesis).unwrap();
        for block in &chain.blocks {
            let seq = assert_equivalent(&storage, block, &executors(&[2]));
            let pre = locate_block(&storage, block).unwrap();
            let g = guarded.execute(storage.clone(), block, &pre).unwrap();
            assert_eq!(g.outcome.stats.path, want, "{workload}");
            assert_eq!(g.outcome.stats.reason, reason, "{workload}");
            assert_eq!(
                g.outcome.stats.parallel_engine,
                want == ExecutionPath::Parallel
            );
            let f = forced.execute(storage.clone(), block, &pre).unwrap();
            assert_eq!(f.outcome.stats.path, ExecutionPath::Parallel, "{workload}");
            assert!(f.outcome.stats.parallel_engine, "{workload}");
            storage.commit(&seq.changes, &seq.meta, None).unwrap();
        }
    }
}
