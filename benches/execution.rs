//! Criterion benchmarks: stateless verification per transaction, and whole
//! block execution (sequential vs parallel at 1 and 2 threads), throughput
//! in transactions per second:
//! * MemoryStorage, 1,000-transaction blocks, every workload: `uniform` over
//!   10,000 and over 2 accounts, `disjoint` (the no-conflict extreme),
//!   `hot-receiver` h = 0.9, `hot-sender`, `chain` (the all-conflict
//!   extreme), `mixed`;
//! * RocksDB (warm), the extremes and the mixed block: `disjoint`, `chain`,
//!   `uniform` (1,000 and 10,000 transactions), `mixed`.
//!
//! Nothing is committed, so every iteration runs on the same pre-state.
//!
//! `cargo bench --bench execution`; the `tos-parallel bench` command gives
//! the same-run alternating table with phase medians.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use tos_parallel::executor::locate_block;
use tos_parallel::generator::{generate, GeneratorConfig, Workload};
use tos_parallel::sequential::execute_sequential;
use tos_parallel::validation::check_stateless;
use tos_parallel::{
    init_genesis, Block, MemoryStorage, ParallelExecutor, RocksConfig, RocksStorage, Storage,
};

fn chain(workload: Workload, accounts: usize, txs: usize) -> (tos_parallel::Genesis, Block) {
    let g = generate(&GeneratorConfig {
        workload,
        accounts,
        txs_per_block: txs,
        blocks: 1,
        seed: 1,
    })
    .expect("generate");
    (g.genesis, g.blocks.into_iter().next().expect("one block"))
}

fn stateless(c: &mut Criterion) {
    let (_, block) = chain(Workload::Uniform, 1000, 256);
    let mut group = c.benchmark_group("stateless_verify");
    group.throughput(Throughput::Elements(1));
    let mut i = 0;
    group.bench_function("one_tx_one_core", |b| {
        b.iter(|| {
            i = (i + 1) % block.txs().len();
            check_stateless(block.txs()[i].clone(), block.tx_hashes()[i], 0).expect("valid")
        })
    });
    group.finish();
}

fn run_block<S: Storage + Clone>(c: &mut Criterion, name: &str, storage: S, block: &Block) {
    let pre = locate_block(&storage, block).expect("locate");
    let mut group = c.benchmark_group(name);
    group.sample_size(10);
    group.throughput(Throughput::Elements(block.txs().len() as u64));
    // Both paths get a fresh clone per iteration (empty LRU caches, as a
    // node's executor does): reusing one clone would let the sequential path
    // run on caches warmed by its previous iterations.
    group.bench_function("sequential", |b| {
        b.iter(|| {
            let s = storage.clone();
            execute_sequential(&s, block, &pre, tos_parallel::PathReason::SequentialMode)
                .expect("ok")
        })
    });
    for threads in [1, 2] {
        let ex = ParallelExecutor::new(threads).expect("pool");
        group.bench_with_input(BenchmarkId::new("parallel", threads), &threads, |b, _| {
            b.iter(|| ex.execute(storage.clone(), block, &pre).expect("ok"))
        });
    }
    group.finish();
}

fn blocks(c: &mut Criterion) {
    let memory = [
        (Workload::Uniform, 10_000, "uniform"),
        (Workload::Uniform, 2, "uniform_n2"),
        (Workload::Disjoint, 10_000, "disjoint"),
        (
            Workload::HotReceiver { permille: 900 },
            10_000,
            "hot_receiver_0.9",
        ),
        (Workload::HotSender, 10_000, "hot_sender"),
        (Workload::Chain, 10_000, "chain"),
        (Workload::Mixed, 10_000, "mixed"),
    ];
    for (workload, accounts, name) in memory {
        let (genesis, block) = chain(workload, accounts, 1_000);
        let mut mem = MemoryStorage::new();
        init_genesis(&mut mem, &genesis).expect("genesis");
        run_block(c, &format!("block_{name}_1000tx/memory"), mem, &block);
    }
    let rocksdb = [
        (Workload::Disjoint, 1_000, "disjoint"),
        (Workload::Chain, 1_000, "chain"),
        (Workload::Uniform, 1_000, "uniform"),
        (Workload::Uniform, 10_000, "uniform"),
        (Workload::Mixed, 1_000, "mixed"),
    ];
    for (workload, txs, name) in rocksdb {
        let (genesis, block) = chain(workload, 10_000, txs);
        let dir = tempfile::tempdir().expect("tempdir");
        let mut rocks = RocksStorage::create(dir.path(), RocksConfig::default()).expect("rocks");
        init_genesis(&mut rocks, &genesis).expect("genesis");
        run_block(c, &format!("block_{name}_{txs}tx/rocksdb"), rocks, &block);
    }
}

criterion_group!(benches, stateless, blocks);
criterion_main!(benches);
