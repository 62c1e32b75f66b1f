//! The commit pipeline (`ExecutionConfig::pipeline`): blocks execute on
//! the storage seen through executed blocks not yet written, and every
//! mode, thread count and queue depth gives exactly the results and the
//! states of a chain that writes each block before the next (the
//! reference). A gated storage holds the committer's writes back, so the
//! tests know which blocks are unpersisted: blocks executed on top of
//! them, a rewind across them, a snapshot of one of them, the bound of the
//! queue, a storage that panics while writing.

mod oracle;

use std::sync::Arc;
use std::time::Duration;

use oracle::*;
use parking_lot::{Condvar, Mutex};
use tos_parallel::chain::dump::{results_line, state_json_string};
use tos_parallel::{
    Block, BlockError, BlockMeta, Blockchain, ChainParams, ChangeSet, ExecutionConfig,
    ExecutionMode, MemoryStorage, StateKey, StateRead, StateScan, StateSnapshot, StateValue,
    StateWrite, Storage, StorageError, TopoHeight,
};

fn config(mode: ExecutionMode, threads: usize, pipeline: bool, depth: usize) -> ExecutionConfig {
    ExecutionConfig {
        mode,
        min_txs_for_parallel: 1,
        threads,
        pipeline,
        pipeline_depth: depth,
        guards: false,
        costly_reads: false,
        ..ExecutionConfig::default()
    }
}

/// `n` blocks over `world` (transfers and contract calls alternately),
/// built on a scratch chain.
fn blocks(world: &World, n: usize, seed: u64, contention: Contention) -> Vec<Block> {
    let scratch = Blockchain::new(
        world.storage(1),
        config(ExecutionMode::Sequential, 1, false, 1),
    )
    .unwrap();
    let mut r = rng(seed);
    let programs = vec![
        tos_parallel_tools::contracts::token(),
        tos_parallel_tools::contracts::counter(),
        tos_parallel_tools::contracts::probe(),
    ];
    let mut contracts = Vec::new();
    (0..n)
        .map(|i| {
            let storage = scratch.storage().clone();
            let block = if i % 2 == 0 {
                chaos_block(world, &storage, &mut r, 40, contention)
            } else {
                contract_chaos_block(
                    world,
                    &storage,
                    &mut r,
                    30,
                    contention,
                    &programs,
                    &mut contracts,
                )
            };
            scratch.add_new_block(&block).unwrap();
            block
        })
        .collect()
}

/// The reference: results and the dump after every block, each block
/// written before the next.
fn reference(world: &World, blocks: &[Block]) -> (Vec<String>, Vec<String>) {
    let chain = Blockchain::new(
        world.storage(1),
        config(ExecutionMode::Sequential, 1, false, 1),
    )
    .unwrap();
    let results = blocks
        .iter()
        .map(|b| results_line(&chain.add_new_block(b).unwrap()))
        .collect();
    let dumps = (0..=blocks.len() as u64)
        .map(|t| state_json_string(&chain.snapshot(Some(t)).unwrap()))
        .collect();
    (results, dumps)
}

#[test]
fn pipelined_chains_equal_the_reference_in_every_mode_thread_count_and_depth() {
    for (seed, contention) in [
        (1, Contention::Disjoint),
        (2, Contention::Keys(12)),
        (3, Contention::Keys(2)),
    ] {
        let world = World::new(24, seed);
        let blocks = blocks(&world, 8, seed, contention);
        let (results, dumps) = reference(&world, &blocks);
        for mode in [
            ExecutionMode::Sequential,
            ExecutionMode::Parallel,
            ExecutionMode::Verify,
        ] {
            for threads in [1, 2, 4, 8] {
                for depth in [1, 2, 8] {
                    let what = format!("{contention:?} {mode:?} {threads} threads depth {depth}");
                    let chain =
                        Blockchain::new(world.storage(1), config(mode, threads, true, depth))
                            .unwrap();
                    for (i, b) in blocks.iter().enumerate() {
                        let outcome = chain.add_new_block(b).unwrap();
                        assert!(outcome.stats.pipelined, "{what}");
                        assert_eq!(results_line(&outcome), results[i], "{what}: block {i}");
                        // The engine ran where the mode says (guards off).
                        assert_eq!(
                            outcome.stats.parallel_engine,
                            mode != ExecutionMode::Sequential,
                            "{what}: {:?}",
                            outcome.stats
                        );
                        assert_eq!(outcome.stats.mismatches, 0, "{what}");
                    }
                    for (t, dump) in dumps.iter().enumerate() {
                        let got = state_json_string(&chain.snapshot(Some(t as u64)).unwrap());
                        assert_eq!(&got, dump, "{what}: state at {t}");
                    }
                    assert_eq!(
                        chain.persisted_topoheight().unwrap(),
                        Some(blocks.len() as u64)
                    );
                }
            }
        }
    }
}

#[cfg(feature = "rocksdb")]
#[test]
fn pipelined_chain_on_rocksdb_equals_the_reference() {
    let world = World::new(24, 9);
    let blocks = blocks(&world, 10, 9, Contention::Keys(8));
    let (results, dumps) = reference(&world, &blocks);
    let dir = tempfile::tempdir().unwrap();
    for (i, mode) in [ExecutionMode::Sequential, ExecutionMode::Parallel]
        .into_iter()
        .enumerate()
    {
        let mut s = tos_parallel::RocksStorage::create(
            &dir.path().join(i.to_string()),
            tos_parallel::RocksConfig::default(),
        )
        .unwrap();
        tos_parallel::init_genesis(&mut s, &world.genesis(1)).unwrap();
        let chain = Blockchain::new(s, config(mode, 2, true, 2)).unwrap();
        for (i, b) in blocks.iter().enumerate() {
            assert_eq!(results_line(&chain.add_new_block(b).unwrap()), results[i]);
        }
        chain.flush().unwrap();
        for (t, dump) in dumps.iter().enumerate() {
            let storage = chain.storage();
            assert_eq!(
                &state_json_string(&storage.snapshot(t as u64).unwrap()),
                dump
            );
        }
    }
}

/// A memory storage whose commits wait while the gate is closed (and
/// panic when told to).
#[derive(Clone)]
struct Gated {
    inner: MemoryStorage,
    gate: Arc<Gate>,
}

#[derive(Default)]
struct Gate {
    /// (open, panic on the next commit)
    state: Mutex<(bool, bool)>,
    changed: Condvar,
}

impl Gate {
    fn set(&self, open: bool) {
        self.state.lock().0 = open;
        self.changed.notify_all();
    }

    /// Opens the gate after `delay`, from another thread.
    fn open_after(self: &Arc<Self>, delay: Duration) -> std::thread::JoinHandle<()> {
        let gate = Arc::clone(self);
        std::thread::spawn(move || {
            std::thread::sleep(delay);
            gate.set(true);
        })
    }
}

impl Gated {
    fn new(world: &World) -> Gated {
        Gated {
            inner: world.storage(1),
            gate: Arc::new(Gate::default()),
        }
    }
}

impl StateRead for Gated {
    fn top_topoheight(&self) -> Result<Option<TopoHeight>, StorageError> {
        self.inner.top_topoheight()
    }
    fn chain_params(&self) -> Result<Option<ChainParams>, StorageError> {
        self.inner.chain_params()
    }
    fn block_meta(&self, t: TopoHeight) -> Result<Option<BlockMeta>, StorageError> {
        self.inner.block_meta(t)
    }
    fn get(&self, key: &StateKey, t: TopoHeight) -> Result<Option<StateValue>, StorageError> {
        self.inner.get(key, t)
    }
}

impl StateWrite for Gated {
    fn init(
        &mut self,
        genesis: &ChangeSet,
        meta: &BlockMeta,
        params: &ChainParams,
    ) -> Result<(), StorageError> {
        self.inner.init(genesis, meta, params)
    }
    fn commit(&mut self, changes: &ChangeSet, meta: &BlockMeta) -> Result<(), StorageError> {
        let mut state = self.gate.state.lock();
        while !state.0 {
            self.gate.changed.wait(&mut state);
        }
        if std::mem::take(&mut state.1) {
            panic!("the disk caught fire");
        }
        drop(state);
        self.inner.commit(changes, meta)
    }
    fn rewind_to(&mut self, t: TopoHeight) -> Result<(), StorageError> {
        self.inner.rewind_to(t)
    }
}

impl StateScan for Gated {
    fn snapshot(&self, t: TopoHeight) -> Result<StateSnapshot, StorageError> {
        self.inner.snapshot(t)
    }
}

fn gated_chain<S: Storage>(storage: S, mode: ExecutionMode, depth: usize) -> Blockchain<S> {
    Blockchain::new(storage, config(mode, 2, true, depth)).unwrap()
}

#[test]
fn blocks_execute_on_unpersisted_blocks_and_a_snapshot_waits_for_them() {
    let world = World::new(16, 4);
    let blocks = blocks(&world, 6, 4, Contention::Keys(6));
    let (results, dumps) = reference(&world, &blocks);
    for mode in [ExecutionMode::Sequential, ExecutionMode::Verify] {
        let storage = Gated::new(&world);
        let gate = Arc::clone(&storage.gate);
        let chain = gated_chain(storage, mode, blocks.len());
        // Gate closed: nothing is written, every block executes on the ones
        // before it through the overlay, and re-adding one is recognised.
        for (i, b) in blocks.iter().enumerate() {
            assert_eq!(results_line(&chain.add_new_block(b).unwrap()), results[i]);
        }
        assert!(matches!(
            chain.add_new_block(&blocks[2]),
            Err(BlockError::AlreadyApplied { topoheight: 3 })
        ));
        assert_eq!(chain.persisted_topoheight().unwrap(), Some(0));
        assert_eq!(chain.top_topoheight().unwrap(), Some(blocks.len() as u64));
        assert_eq!(chain.commit_time(1), None);
        // A snapshot of a persisted topoheight does not wait.
        assert_eq!(
            state_json_string(&chain.snapshot(Some(0)).unwrap()),
            dumps[0]
        );
        // A snapshot of an unpersisted topoheight waits for the writes.
        let opener = gate.open_after(Duration::from_millis(30));
        assert_eq!(
            state_json_string(&chain.snapshot(Some(3)).unwrap()),
            dumps[3]
        );
        assert!(chain.persisted_topoheight().unwrap() >= Some(3));
        opener.join().unwrap();
        chain.flush().unwrap();
        assert_eq!(
            chain.persisted_topoheight().unwrap(),
            Some(blocks.len() as u64)
        );
        assert!(chain.commit_time(blocks.len() as u64).is_some());
        assert_eq!(
            state_json_string(&chain.snapshot(None).unwrap()),
            dumps[blocks.len()]
        );
    }
}

#[test]
fn the_queue_bound_holds_a_block_back_until_a_write_makes_room() {
    let world = World::new(16, 5);
    let blocks = blocks(&world, 3, 5, Contention::Keys(6));
    let storage = Gated::new(&world);
    let gate = Arc::clone(&storage.gate);
    let chain = gated_chain(storage, ExecutionMode::Parallel, 2);
    chain.add_new_block(&blocks[0]).unwrap();
    chain.add_new_block(&blocks[1]).unwrap();
    assert_eq!(chain.persisted_topoheight().unwrap(), Some(0));
    // Two pending: the third can only be queued once block 1 is written.
    let opener = gate.open_after(Duration::from_millis(30));
    let outcome = chain.add_new_block(&blocks[2]).unwrap();
    assert!(chain.persisted_topoheight().unwrap() >= Some(1));
    assert!(outcome.stats.commit_wait > Duration::ZERO);
    opener.join().unwrap();
}

#[test]
fn a_rewind_across_unpersisted_blocks_equals_a_chain_that_never_saw_them() {
    let world = World::new(16, 6);
    let base = blocks(&world, 5, 6, Contention::Keys(6));
    let (_, dumps) = reference(&world, &base);
    let storage = Gated::new(&world);
    let gate = Arc::clone(&storage.gate);
    let chain = gated_chain(storage, ExecutionMode::Parallel, 8);
    for b in &base {
        chain.add_new_block(b).unwrap();
    }
    assert_eq!(chain.persisted_topoheight().unwrap(), Some(0));
    let opener = gate.open_after(Duration::from_millis(30));
    chain.rewind_to(2).unwrap();
    opener.join().unwrap();
    assert_eq!(chain.top_topoheight().unwrap(), Some(2));
    assert_eq!(state_json_string(&chain.snapshot(None).unwrap()), dumps[2]);
    // And the same blocks again give the same states.
    for b in &base[2..] {
        chain.add_new_block(b).unwrap();
    }
    assert_eq!(state_json_string(&chain.snapshot(None).unwrap()), dumps[5]);
}

#[test]
fn a_storage_panicking_in_a_write_stops_the_chain_whole_until_recovered() {
    let world = World::new(16, 7);
    let blocks = blocks(&world, 5, 7, Contention::Keys(6));
    let (results, dumps) = reference(&world, &blocks);
    let storage = Gated::new(&world);
    let gate = Arc::clone(&storage.gate);
    let chain = gated_chain(storage, ExecutionMode::Parallel, 8);
    chain.add_new_block(&blocks[0]).unwrap();
    gate.set(true);
    chain.flush().unwrap();
    // Block 2's write panics; 3 is queued behind it.
    gate.set(false);
    gate.state.lock().1 = true;
    chain.add_new_block(&blocks[1]).unwrap();
    chain.add_new_block(&blocks[2]).unwrap();
    gate.set(true);
    let err = chain.flush().unwrap_err();
    assert!(
        matches!(err, BlockError::PersistFailed { topoheight: 2, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("the disk caught fire"), "{err}");
    // Refused until recovered; the storage holds block 1 whole.
    assert!(matches!(
        chain.add_new_block(&blocks[3]),
        Err(BlockError::PersistFailed { topoheight: 2, .. })
    ));
    assert_eq!(chain.persisted_topoheight().unwrap(), Some(1));
    assert_eq!(chain.recover().unwrap(), Some(1));
    assert_eq!(chain.top_topoheight().unwrap(), Some(1));
    assert_eq!(state_json_string(&chain.snapshot(None).unwrap()), dumps[1]);
    for (i, b) in blocks.iter().enumerate().skip(1) {
        assert_eq!(results_line(&chain.add_new_block(b).unwrap()), results[i]);
    }
    assert_eq!(state_json_string(&chain.snapshot(None).unwrap()), dumps[5]);
}
