//! Profiling aid: the execute phase alone (plan + execution, no signature
//! verification), repeated on one pre-verified block, so that a profiler
//! sees the executor rather than Ed25519.
//!
//! `cargo run --release --example execute_only -- [workload] [accounts] [txs] [reps] [threads]`
//! e.g. `perf record -g target/release/examples/execute_only uniform 10000 1000 2000 2`.
//! Prints the median time per block of sequential and of parallel execution
//! without signature verification (for parallel: plan, execute, change set),
//! and the parallel phases. `PAR_EXTRA=k` runs the parallel path k more
//! times before each measured run (its workers then start warm, as in a
//! stream of blocks); `UNGUARDED=1` turns the executor's guards off;
//! `BLOCK=n` measures the n-th block of the chain; `SCHEDULER=optimistic`
//! (or `batches`) picks the parallel executor's scheduler;
//! `SPECULATE_ALL=1` makes the optimistic path speculate every
//! transaction, the caller's share too (`EngineConfig::speculate_all`). `HINTS=1` hints
//! every invocation on the block's parent state first (as a node's
//! `admit` does); `HINTS=compare` runs both engines on the block with and
//! without hints, alternating, and prints the four medians. `TRACE=1`
//! prints each run's path and times on stderr (the guarded executor's
//! probes and switches, `calibration.rs`). `COLD=1` writes over twice the
//! last-level cache (`bench::evict_bytes`) on the calling thread before
//! every timed run (`bench::evict`: its core's
//! caches and the shared last-level cache then hold none of the block, as
//! in a node whose admissions ran in between; `bench`'s regime).

use std::time::{Duration, Instant};

use tos_parallel::engine::EngineConfig;
use tos_parallel::pipeline::{check_block, locate_block, run_block, Run, SpecExecutor};
use tos_parallel::{init_genesis, MemoryStorage};
use tos_parallel_tools::bench::{evict, evict_bytes};
use tos_parallel_tools::generator::{generate, GeneratorConfig, Workload};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, d: &str| args.get(i).cloned().unwrap_or_else(|| d.to_string());
    let workload: Workload = arg(0, "uniform").parse()?;
    let accounts: usize = arg(1, "10000").parse()?;
    let txs_per_block: usize = arg(2, "1000").parse()?;
    let reps: usize = arg(3, "200").parse()?;
    let threads: usize = arg(4, "2").parse()?;

    // `BLOCK=n` measures the chain's n-th block (1-based; the earlier ones
    // are applied first): the contract workloads deploy in block 1.
    let at: usize = std::env::var("BLOCK")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    let chain = generate(&GeneratorConfig {
        workload,
        accounts,
        txs_per_block,
        blocks: at,
        seed: 1,
    })?;
    let mut storage = MemoryStorage::new();
    init_genesis(&mut storage, &chain.genesis)?;
    let applier = tos_parallel::Blockchain::new(storage, tos_parallel::ExecutionConfig::default())?;
    for earlier in &chain.blocks[..at - 1] {
        applier.add_new_block(earlier)?;
    }
    let storage = applier.storage().clone();
    let block = &chain.blocks[at - 1];
    let pre = locate_block(&storage, block)?;
    let mut checked = check_block(block, &pre, None, None)?;
    let hints = std::env::var("HINTS").unwrap_or_default();
    let unhinted = checked.clone();
    if !hints.is_empty() {
        let mut n = 0;
        let start = Instant::now();
        let hinter = tos_parallel::pipeline::Hinter::at(&storage, pre.ctx.parent_topoheight);
        for tx in &mut checked.txs {
            let mut vtx = (**tx).clone();
            n += hinter.hint(&mut vtx);
            *tx = std::sync::Arc::new(vtx);
        }
        println!(
            "hints: {n} keys over {} transactions, discovered in {:.3} ms",
            checked.txs.len(),
            start.elapsed().as_secs_f64() * 1e3
        );
    }
    let config = EngineConfig {
        costly_reads: false,
        ..EngineConfig::default()
    };
    let scheduler = std::env::var("SCHEDULER").unwrap_or_else(|_| "graph".into());
    let mut ex = SpecExecutor::new(
        threads,
        EngineConfig {
            scheduler: scheduler.parse()?,
            speculate_all: std::env::var("SPECULATE_ALL").is_ok(),
            ..config
        },
    )?;
    if std::env::var("UNGUARDED").is_ok() {
        ex = ex.always_parallel();
    }
    let sequential = SpecExecutor::on_current_pool(config);

    if hints == "compare" {
        // Four runs in turn: each engine on the hinted and unhinted block.
        let mut t: Vec<Vec<Duration>> = (0..4).map(|_| Vec::with_capacity(reps)).collect();
        for _ in 0..reps {
            for (k, (e, c, run)) in [
                (&sequential, &unhinted, Run::Sequential),
                (&sequential, &checked, Run::Sequential),
                (&ex, &unhinted, Run::Parallel),
                (&ex, &checked, Run::Parallel),
            ]
            .into_iter()
            .enumerate()
            {
                let start = Instant::now();
                run_block(e, &storage, block, &pre, c, run)?;
                t[k].push(start.elapsed());
            }
        }
        let med = |v: &mut Vec<Duration>| {
            v.sort();
            v[v.len() / 2].as_secs_f64() * 1e3
        };
        let m: Vec<f64> = t.iter_mut().map(med).collect();
        println!(
            "{workload} {txs_per_block} txs, {threads} threads: sequential {:.3} ms unhinted, {:.3} ms hinted ({:.2}x); parallel {:.3} ms unhinted, {:.3} ms hinted ({:.2}x); parallel/sequential hinted {:.2}x",
            m[0], m[1], m[0] / m[1], m[2], m[3], m[2] / m[3], m[1] / m[3]
        );
        return Ok(());
    }
    // Sequential and parallel alternate on the same pre-verified
    // transactions, so both run on equally warm caches.
    let mut seq = Vec::with_capacity(reps);
    let mut par = Vec::with_capacity(reps);
    let mut phases = Vec::with_capacity(reps);
    let mut last_path = String::new();
    let trace = std::env::var("TRACE").is_ok();
    // How many runs took each path (a guarded executor may change its
    // mind during the run: `calibration.rs`).
    let mut paths: std::collections::BTreeMap<String, usize> = Default::default();
    let only = std::env::var("ONLY").unwrap_or_default();
    if !only.is_empty() {
        // Profiling aid: one path only, `reps` times (for instruction counts).
        for _ in 0..reps {
            let run = if only == "seq" {
                Run::Sequential
            } else {
                Run::Parallel
            };
            let e = if only == "seq" { &sequential } else { &ex };
            run_block(e, &storage, block, &pre, &checked, run)?;
        }
        return Ok(());
    }
    let cold = std::env::var("COLD").is_ok();
    let mut junk = vec![0u8; if cold { evict_bytes() } else { 0 }];
    for _ in 0..reps {
        evict(&mut junk);
        let start = Instant::now();
        let s = run_block(
            &sequential,
            &storage,
            block,
            &pre,
            &checked,
            Run::Sequential,
        )?;
        let s_time = start.elapsed();
        seq.push(s_time);
        let extra: usize = std::env::var("PAR_EXTRA")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        for _ in 0..extra {
            run_block(&ex, &storage, block, &pre, &checked, Run::Parallel)?;
        }
        evict(&mut junk);
        let start = Instant::now();
        let p = run_block(&ex, &storage, block, &pre, &checked, Run::Parallel)?;
        let p_time = start.elapsed();
        par.push(p_time);
        let st = &p.outcome.stats;
        phases.push((st.plan, st.prefetch, st.execute));
        if trace {
            // One line per run: its path, and both engines' times (µs).
            eprintln!(
                "run {} {} parallel {:.0} sequential {:.0}",
                par.len(),
                st.path.name(),
                p_time.as_secs_f64() * 1e6,
                s_time.as_secs_f64() * 1e6
            );
        }
        *paths
            .entry(format!("{}/{}", st.path.name(), st.reason.name()))
            .or_default() += 1;
        last_path = format!(
            "{}/{} keys {} edges {} cp {} proven {} re-executions {}",
            st.path.name(),
            st.reason.name(),
            st.keys,
            st.edges,
            st.critical_path,
            st.covered,
            st.reexecutions
        );
        if p.changes != s.changes {
            return Err("parallel change set differs from sequential".into());
        }
    }
    let med = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2].as_secs_f64() * 1e3
    };
    println!(
        "parallel phases (medians, ms): plan {:.3} (key table and prefetch, summed over partitions {:.3}), execute {:.3}; path {}",
        med(phases.iter().map(|p| p.0).collect()),
        med(phases.iter().map(|p| p.1).collect()),
        med(phases.iter().map(|p| p.2).collect()),
        last_path,
    );
    let counted: Vec<String> = paths.iter().map(|(p, n)| format!("{p} {n}")).collect();
    println!("paths taken: {}", counted.join(", "));
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
