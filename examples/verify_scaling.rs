//! Calibration: how stateless verification (embarrassingly parallel Ed25519
//! work) scales from 1 to 2 threads on this machine, through the executor's
//! rayon pool and through two plain threads, in the same run.
//!
//! `cargo run --release --example verify_scaling -- [txs] [reps]`

use std::time::{Duration, Instant};

use tos_parallel::chain::validation::check_stateless;
use tos_parallel::engine::EngineConfig;
use tos_parallel::pipeline::{check_block, locate_block, SpecExecutor};
use tos_parallel::{init_genesis, MemoryStorage};
use tos_parallel_tools::generator::{generate, GeneratorConfig, Workload};

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e3
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let txs: usize = args.first().map_or(Ok(1000), |a| a.parse())?;
    let reps: usize = args.get(1).map_or(Ok(20), |a| a.parse())?;
    let chain = generate(&GeneratorConfig {
        workload: Workload::Uniform,
        accounts: 10_000,
        txs_per_block: txs,
        blocks: 1,
        seed: 1,
    })?;
    let block = &chain.blocks[0];
    let mut storage = MemoryStorage::new();
    init_genesis(&mut storage, &chain.genesis)?;
    let pre = locate_block(&storage, block)?;
    let p1 = SpecExecutor::new(1, EngineConfig::default())?;
    let p2 = SpecExecutor::new(2, EngineConfig::default())?;
    let (mut seq, mut r1, mut r2, mut t2) = (vec![], vec![], vec![], vec![]);
    for _ in 0..reps {
        let s = Instant::now();
        check_block(block, &pre, None, None)?;
        seq.push(s.elapsed());
        let s = Instant::now();
        check_block(block, &pre, None, Some(&p1))?;
        r1.push(s.elapsed());
        let s = Instant::now();
        check_block(block, &pre, None, Some(&p2))?;
        r2.push(s.elapsed());
        let s = Instant::now();
        let half = block.txs().len() / 2;
        std::thread::scope(|scope| {
            for (lo, hi) in [(0, half), (half, block.txs().len())] {
                scope.spawn(move || {
                    for i in lo..hi {
                        let _ = check_stateless(&block.txs()[i], block.tx_hashes()[i], 0);
                    }
                });
            }
        });
        t2.push(s.elapsed());
    }
    let (s, a, b, c) = (median(seq), median(r1), median(r2), median(t2));
    println!("{txs} txs, medians of {reps}: calling thread {s:.2} ms; pool(1) {a:.2} ms; pool(2) {b:.2} ms ({:.2}x over pool(1)); two plain threads {c:.2} ms ({:.2}x over the calling thread)", a / b, s / c);
    Ok(())
}
