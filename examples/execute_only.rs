//! Profiling aid: the execute phase alone (plan + execution, no signature
//! verification), repeated on one pre-verified block, so that a profiler
//! sees the executor rather than Ed25519.
//!
//! `cargo run --release --example execute_only -- [workload] [accounts] [txs] [reps] [threads]`
//! e.g. `perf record -g target/release/examples/execute_only uniform 10000 1000 2000 2`.
//! Prints the median time per block of sequential and of parallel execution
//! without signature verification (for parallel: plan, execute, change set),
//! and the parallel phases.

use std::time::{Duration, Instant};

use tos_parallel::executor::{locate_block, verify_block_sequential};
use tos_parallel::generator::{generate, GeneratorConfig, Workload};
use tos_parallel::outcome::BlockStats;
use tos_parallel::sequential::execute_sequential_verified;
use tos_parallel::{init_genesis, MemoryStorage, ParallelExecutor};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, d: &str| args.get(i).cloned().unwrap_or_else(|| d.to_string());
    let workload: Workload = arg(0, "uniform").parse()?;
    let accounts: usize = arg(1, "10000").parse()?;
    let txs_per_block: usize = arg(2, "1000").parse()?;
    let reps: usize = arg(3, "200").parse()?;
    let threads: usize = arg(4, "2").parse()?;

    let chain = generate(&GeneratorConfig {
        workload,
        accounts,
        txs_per_block,
        blocks: 1,
        seed: 1,
    })?;
    let block = &chain.blocks[0];
    let mut storage = MemoryStorage::new();
    init_genesis(&mut storage, &chain.genesis)?;
    let pre = locate_block(&storage, block)?;
    let txs = verify_block_sequential(block, &pre)?;
    let ex = ParallelExecutor::new(threads)?;

    // Sequential and parallel alternate on the same pre-verified
    // transactions, so both run on equally warm caches.
    let mut seq = Vec::with_capacity(reps);
    let mut par = Vec::with_capacity(reps);
    let mut phases = Vec::with_capacity(reps);
    for _ in 0..reps {
        let start = Instant::now();
        let s = execute_sequential_verified(&storage, block, &txs, &pre, BlockStats::default())?;
        seq.push(start.elapsed());
        let start = Instant::now();
        let p = ex.execute_verified(storage.clone(), block, &txs, &pre, Duration::ZERO)?;
        par.push(start.elapsed());
        let st = &p.outcome.stats;
        phases.push((st.prefetch, st.schedule, st.execute));
        if p.changes != s.changes {
            return Err("parallel change set differs from sequential".into());
        }
    }
    let med = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2].as_secs_f64() * 1e3
    };
    println!(
        "parallel phases (medians, ms): resolve/prefetch {:.3}, schedule {:.3}, execute {:.3}; the rest is the change set and teardown",
        med(phases.iter().map(|p| p.0).collect()),
        med(phases.iter().map(|p| p.1).collect()),
        med(phases.iter().map(|p| p.2).collect()),
    );
    seq.sort();
    par.sort();
    let (s, p) = (seq[reps / 2], par[reps / 2]);
    println!(
        "{workload} N={accounts} {txs_per_block} txs, {threads} threads: without verification, sequential {:.3} ms, parallel {:.3} ms ({:.2}x)",
        s.as_secs_f64() * 1e3,
        p.as_secs_f64() * 1e3,
        s.as_secs_f64() / p.as_secs_f64()
    );
    Ok(())
}
