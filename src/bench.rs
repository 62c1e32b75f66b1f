//! Benchmark runner behind `tos-parallel bench`: sequential and parallel
//! executions alternate in the same process on identical pre-state, and the
//! table reports medians.
//!
//! For each block of a generated chain, on the state after the previous block:
//! run the sequential executor, then the parallel one at each thread count
//! (in rotating order, so neither always runs on a warmer cache), without
//! committing; then commit the sequential change set (timed: the commit
//! phase) and go on. Every parallel result is checked against the sequential
//! one; a difference aborts the benchmark.

use std::time::{Duration, Instant};

use crate::block::Block;
use crate::config::Scheduler;
use crate::error::BlockError;
use crate::executor::{locate_block, ExecutedBlock};
use crate::generator::{generate, GenerateError, GeneratorConfig};
use crate::genesis::init_genesis;
use crate::parallel::ParallelExecutor;
use crate::policy::PathReason;
use crate::sequential::{execute_sequential, sequential_tx_costs};
use crate::shadow::compare;
use crate::{MemoryStorage, RocksConfig, RocksStorage, Storage};

/// Which storage a benchmark runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageKind {
    /// `MemoryStorage`: executor cost alone.
    Memory,
    /// RocksDB in a temp dir, warm. Each execution gets a fresh clone (empty
    /// LRU caches, as `Blockchain` does); RocksDB's block cache and the OS
    /// page cache are warm, since the paths run one after the other on the
    /// same keys.
    Rocks,
    /// RocksDB, cold: the database is closed and reopened before every timed
    /// execution, so RocksDB's block cache and table readers and the clone's
    /// LRU caches all start empty (the OS page cache stays warm: dropping it
    /// needs root and would also slow the other tenants' runs).
    RocksCold,
}

impl StorageKind {
    /// The name `--storage` takes and the table prints.
    pub fn name(self) -> &'static str {
        match self {
            StorageKind::Memory => "memory",
            StorageKind::Rocks => "rocks",
            StorageKind::RocksCold => "rocks-cold",
        }
    }
}

impl std::str::FromStr for StorageKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "memory" => Ok(StorageKind::Memory),
            "rocks" => Ok(StorageKind::Rocks),
            "rocks-cold" => Ok(StorageKind::RocksCold),
            o => Err(format!(
                "unknown storage `{o}` (memory, rocks or rocks-cold)"
            )),
        }
    }
}

/// Medians of one execution path over the measured blocks.
#[derive(Clone, Copy, Debug, Default)]
pub struct PathTimes {
    /// Whole execution (verify + schedule + execute), without commit.
    pub total: Duration,
    /// Stateless verification.
    pub verify: Duration,
    /// Prefetch of every touched key.
    pub prefetch: Duration,
    /// Coverage and dependency graph.
    pub schedule: Duration,
    /// Execution.
    pub execute: Duration,
}

/// One row of the table.
#[derive(Clone, Debug)]
pub struct BenchRow {
    /// Workload name.
    pub workload: String,
    /// Accounts.
    pub accounts: usize,
    /// Transactions per block.
    pub txs: usize,
    /// Storage regime.
    pub storage: StorageKind,
    /// Scheduler of the parallel runs.
    pub scheduler: Scheduler,
    /// Blocks measured.
    pub blocks: usize,
    /// Sequential medians.
    pub sequential: PathTimes,
    /// Parallel medians per thread count.
    pub parallel: Vec<(usize, PathTimes)>,
    /// Median commit time.
    pub commit: Duration,
    /// Median critical path (transactions on the longest dependency chain).
    pub critical_path: usize,
    /// Median of W / C: total per-transaction execution cost measured in a
    /// sequential run over the cost-weighted critical path of the block's
    /// dependency graph (the parallelism the block offers).
    pub work_over_path: f64,
}

impl BenchRow {
    /// Ideal execute-phase speedup at `threads`: `S* = min(threads, W / C)`.
    pub fn ideal(&self, threads: usize) -> f64 {
        (threads as f64).min(self.work_over_path)
    }

    /// Speedup of the whole execution at `threads` over sequential (same run).
    pub fn speedup(&self, threads: usize) -> Option<f64> {
        self.parallel
            .iter()
            .find(|(t, _)| *t == threads)
            .map(|(_, p)| ratio(self.sequential.total, p.total))
    }

    /// Speedup of the whole block at `threads`: verify + execute + commit
    /// (the commit is the same atomic write for both paths, timed once).
    pub fn block_speedup(&self, threads: usize) -> Option<f64> {
        self.parallel
            .iter()
            .find(|(t, _)| *t == threads)
            .map(|(_, p)| ratio(self.sequential.total + self.commit, p.total + self.commit))
    }

    /// Speedup of execution at `threads`: sequential execute phase over
    /// everything the parallel path does instead: key table and prefetch
    /// (which does the storage reads the sequential execute phase does
    /// inline), coverage and graph, execution.
    pub fn execute_speedup(&self, threads: usize) -> Option<f64> {
        self.parallel
            .iter()
            .find(|(t, _)| *t == threads)
            .map(|(_, p)| ratio(self.sequential.execute, p.prefetch + p.schedule + p.execute))
    }
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-12)
}

/// Why a benchmark failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// Generating the workload failed.
    #[error(transparent)]
    Generate(#[from] GenerateError),
    /// Executing failed.
    #[error(transparent)]
    Block(#[from] BlockError),
    /// Planning failed.
    #[error(transparent)]
    State(#[from] crate::error::StateError),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] crate::StorageError),
    /// Parallel and sequential results differ: a bug, never a benchmark result.
    #[error("parallel result differs from sequential at topoheight {topoheight}: {first}")]
    Mismatch {
        /// The block.
        topoheight: u64,
        /// The first difference.
        first: String,
    },
    /// Temp dir or genesis.
    #[error("{0}")]
    Setup(String),
}

/// Runs one row: `blocks` blocks of the workload (the first `warmup` not measured).
pub fn run_row(
    gen: &GeneratorConfig,
    storage: StorageKind,
    threads: &[usize],
    scheduler: Scheduler,
    warmup: usize,
) -> Result<BenchRow, BenchError> {
    let chain = generate(gen)?;
    let executors: Vec<ParallelExecutor> = threads
        .iter()
        .map(|&t| ParallelExecutor::with_scheduler(t, scheduler))
        .collect::<Result<_, _>>()?;
    let setup = |e: &dyn std::fmt::Display| BenchError::Setup(e.to_string());
    let row = match storage {
        StorageKind::Memory => {
            let mut s = MemoryStorage::new();
            init_genesis(&mut s, &chain.genesis).map_err(|e| setup(&e))?;
            measure(s, &chain.blocks, &executors, warmup, None)?
        }
        StorageKind::Rocks | StorageKind::RocksCold => {
            let tmp = tempfile::tempdir().map_err(|e| setup(&e))?;
            let mut s = RocksStorage::create(tmp.path(), RocksConfig::default())?;
            init_genesis(&mut s, &chain.genesis).map_err(|e| setup(&e))?;
            let path = tmp.path().to_path_buf();
            let reopen = move || RocksStorage::open(&path, RocksConfig::default());
            let cold = storage == StorageKind::RocksCold;
            measure(
                s,
                &chain.blocks,
                &executors,
                warmup,
                cold.then_some(&reopen as &dyn Fn() -> Result<_, _>),
            )?
        }
    };
    let (sequential, parallel, commit, critical_path, work_over_path, blocks) = row;
    Ok(BenchRow {
        workload: gen.workload.to_string(),
        accounts: gen.accounts,
        txs: gen.txs_per_block,
        storage,
        scheduler,
        blocks,
        sequential,
        parallel: threads.iter().copied().zip(parallel).collect(),
        commit,
        critical_path,
        work_over_path,
    })
}

type Measured = (PathTimes, Vec<PathTimes>, Duration, usize, f64, usize);

/// With `reopen` (the cold regime), the storage is closed and reopened
/// before every timed execution.
fn measure<S: Storage + Clone>(
    storage: S,
    blocks: &[Block],
    executors: &[ParallelExecutor],
    warmup: usize,
    reopen: Option<&dyn Fn() -> Result<S, crate::StorageError>>,
) -> Result<Measured, BenchError> {
    // `None` only while reopening: every other handle is dropped by then.
    let mut storage = Some(storage);
    let fresh = |storage: &mut Option<S>| -> Result<S, BenchError> {
        if let Some(reopen) = reopen {
            *storage = None;
            *storage = Some(reopen()?);
        }
        storage
            .clone()
            .ok_or_else(|| BenchError::Setup("storage closed".into()))
    };
    let mut seq_samples: Vec<PathTimes> = Vec::new();
    let mut par_samples: Vec<Vec<PathTimes>> = vec![Vec::new(); executors.len()];
    let mut commits = Vec::new();
    let mut critical = Vec::new();
    let mut parallelism = Vec::new();
    for (b, block) in blocks.iter().enumerate() {
        let base = fresh(&mut storage)?;
        let pre = locate_block(&base, block)?;
        // W and C, from an extra (untimed) sequential run and the executor's own plan.
        let (txs, costs) = sequential_tx_costs(&base, block, &pre)?;
        let costs: Vec<f64> = costs.iter().map(Duration::as_secs_f64).collect();
        let plan = executors[executors.len() - 1].plan(base.clone(), &txs, &pre)?;
        let w: f64 = costs.iter().sum();
        let c = plan.graph.weighted_critical_path(&costs);
        drop(plan);
        drop(base);
        let mut seq: Option<(ExecutedBlock, Duration)> = None;
        let mut par_times = vec![PathTimes::default(); executors.len()];
        let mut cp = 0;
        // Rotate who goes first so neither path always runs second on warmer caches.
        let order: Vec<usize> = (0..=executors.len())
            .map(|k| (k + b) % (executors.len() + 1))
            .collect();
        let mut pars: Vec<Option<ExecutedBlock>> = vec![None; executors.len()];
        for who in order {
            let s = fresh(&mut storage)?;
            if who == executors.len() {
                let start = Instant::now();
                let r = execute_sequential(&s, block, &pre, PathReason::SequentialMode)?;
                seq = Some((r, start.elapsed()));
            } else {
                let start = Instant::now();
                let r = executors[who].execute(s, block, &pre)?;
                let total = start.elapsed();
                par_times[who] = PathTimes {
                    total,
                    verify: r.outcome.stats.verify,
                    prefetch: r.outcome.stats.prefetch,
                    schedule: r.outcome.stats.schedule,
                    execute: r.outcome.stats.execute,
                };
                cp = cp.max(r.outcome.stats.critical_path);
                pars[who] = Some(r);
            }
        }
        let (seq, seq_total) = seq.ok_or_else(|| BenchError::Setup("no sequential run".into()))?;
        for p in pars.iter().flatten() {
            let diffs = compare(block, &pre, &seq, p);
            if let Some(first) = diffs.first() {
                return Err(BenchError::Mismatch {
                    topoheight: pre.topoheight(),
                    first: first.to_string(),
                });
            }
        }
        let mut target = fresh(&mut storage)?;
        let start = Instant::now();
        target.commit(&seq.changes, &seq.meta, None)?;
        let commit = start.elapsed();
        drop(target);
        if b >= warmup {
            seq_samples.push(PathTimes {
                total: seq_total,
                verify: seq.outcome.stats.verify,
                prefetch: Duration::ZERO,
                schedule: Duration::ZERO,
                execute: seq.outcome.stats.execute,
            });
            for (k, t) in par_times.into_iter().enumerate() {
                par_samples[k].push(t);
            }
            commits.push(commit);
            critical.push(cp);
            // Ordered as integers (x1000) for the median.
            parallelism.push(((w / c.max(1e-12)) * 1000.0) as u64);
        }
    }
    let n = seq_samples.len();
    Ok((
        median_times(&seq_samples),
        par_samples.iter().map(|s| median_times(s)).collect(),
        median(commits),
        median(critical),
        median(parallelism) as f64 / 1000.0,
        n,
    ))
}

/// Median of a sample (the upper one for even sizes); default for an empty one.
pub fn median<T: Ord + Copy + Default>(mut v: Vec<T>) -> T {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn median_times(s: &[PathTimes]) -> PathTimes {
    PathTimes {
        total: median(s.iter().map(|t| t.total).collect()),
        verify: median(s.iter().map(|t| t.verify).collect()),
        prefetch: median(s.iter().map(|t| t.prefetch).collect()),
        schedule: median(s.iter().map(|t| t.schedule).collect()),
        execute: median(s.iter().map(|t| t.execute).collect()),
    }
}
