//! Criterion benchmarks: stateless verification per transaction, and whole
//! block execution (sequential vs parallel at 1 and 2 threads), throughput
//! in transactions per second, in both signature regimes:
//! * `checked`: every transaction checked at block time (Ed25519 included);
//! * `cached`: the block's transactions admitted into the verification
//!   cache first, as a node's mempool holds them: block execution alone.
//!
//! Blocks:
//! * MemoryStorage, 1,000-transaction blocks, every workload: `uniform` over
//!   10,000 and over 2 accounts, `disjoint` (the no-conflict extreme),
//!   `hot-receiver` h = 0.9, `hot-sender`, `chain` (the all-conflict
//!   extreme), `mixed`; and `uniform` and `disjoint` with 10,000 transactions
//!   (cached);
//! * RocksDB (warm), the extremes and the mixed block: `disjoint`, `chain`,
//!   `uniform` (1,000 and 10,000 transactions), `mixed`.
//!
//! Nothing is committed, so every iteration runs on the same pre-state.
//!
//! `cargo bench --bench execution`; the `tos-parallel bench` command gives
//! the same-run alternating table with phase medians.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use tos_parallel::chain::validation::{check_admission, check_stateless};
use tos_parallel::engine::EngineConfig;
use tos_parallel::pipeline::{execute_block, locate_block, Run, SpecExecutor, TxCache};
use tos_parallel::{
    init_genesis, Block, Genesis, MemoryStorage, RocksConfig, RocksStorage, StateRead,
};
use tos_parallel_tools::generator::{generate, GeneratorConfig, Workload};

fn chain(workload: Workload, accounts: usize, txs: usize) -> (Genesis, Block) {
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
            check_stateless(&block.txs()[i], block.tx_hashes()[i], 0).expect("valid")
        })
    });
    group.finish();
}

/// The block's transactions admitted into a cache (the `cached` regime).
fn admitted(block: &Block) -> TxCache {
    let cache = TxCache::new(block.txs().len());
    for (bytes, hash) in block.txs().iter().zip(block.tx_hashes()) {
        let vtx = check_admission(bytes, *hash).expect("valid");
        cache.insert(hash.0, Arc::new(vtx));
    }
    cache
}

fn run_block<S: StateRead + Clone>(
    c: &mut Criterion,
    name: &str,
    storage: S,
    block: &Block,
    costly_reads: bool,
    cached: bool,
) {
    let pre = locate_block(&storage, block).expect("locate");
    let cache = cached.then(|| admitted(block));
    let config = EngineConfig {
        costly_reads,
        ..EngineConfig::default()
    };
    let sequential = SpecExecutor::on_current_pool(config);
    let mut group = c.benchmark_group(name);
    group.sample_size(10);
    group.throughput(Throughput::Elements(block.txs().len() as u64));
    // Both paths get a fresh clone per iteration (empty LRU caches, as a
    // node's executor does): reusing one clone would let the sequential path
    // run on caches warmed by its previous iterations.
    group.bench_function("sequential", |b| {
        b.iter(|| {
            let s = storage.clone();
            execute_block(
                &sequential,
                &s,
                block,
                &pre,
                cache.as_ref(),
                Run::Sequential,
            )
            .expect("ok")
        })
    });
    for threads in [1, 2] {
        let ex = SpecExecutor::new(threads, config).expect("pool");
        group.bench_with_input(BenchmarkId::new("parallel", threads), &threads, |b, _| {
            b.iter(|| {
                let s = storage.clone();
                execute_block(&ex, &s, block, &pre, cache.as_ref(), Run::Parallel).expect("ok")
            })
        });
    }
    group.finish();
}

fn blocks(c: &mut Criterion) {
    let memory = [
        (Workload::Uniform, 10_000, 1_000, "uniform"),
        (Workload::Uniform, 2, 1_000, "uniform_n2"),
        (Workload::Disjoint, 10_000, 1_000, "disjoint"),
        (
            Workload::HotReceiver { permille: 900 },
            10_000,
            1_000,
            "hot_receiver_0.9",
        ),
        (Workload::HotSender, 10_000, 1_000, "hot_sender"),
        (Workload::Chain, 10_000, 1_000, "chain"),
        (Workload::Mixed, 10_000, 1_000, "mixed"),
        (Workload::Uniform, 10_000, 10_000, "uniform"),
        (Workload::Disjoint, 10_000, 10_000, "disjoint"),
    ];
    for (workload, accounts, txs, name) in memory {
        let (genesis, block) = chain(workload, accounts, txs);
        let mut mem = MemoryStorage::new();
        init_genesis(&mut mem, &genesis).expect("genesis");
        for cached in [true, false] {
            if txs > 1_000 && !cached {
                continue;
            }
            let regime = if cached { "cached" } else { "checked" };
            let group = format!("block_{name}_{txs}tx/memory/{regime}");
            run_block(c, &group, mem.clone(), &block, false, cached);
        }
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
        for cached in [true, false] {
            let regime = if cached { "cached" } else { "checked" };
            let group = format!("block_{name}_{txs}tx/rocksdb/{regime}");
            run_block(c, &group, rocks.clone(), &block, true, cached);
        }
    }
}

criterion_group!(benches, stateless, blocks);
criterion_main!(benches);
