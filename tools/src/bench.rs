//! Benchmark runner behind `tos-parallel bench`: sequential and parallel
//! executions alternate in the same process on identical pre-state, and the
//! table reports medians.
//!
//! For each block of a chain (generated, or a user's genesis and blocks),
//! on the state after the previous block: run the sequential engine, then
//! the parallel one at each thread count (in rotating order), without
//! committing; then commit the sequential change set (timed: the commit
//! phase) and go on. Every parallel result is checked against the
//! sequential one; a difference aborts the benchmark.
//!
//! Every timed run starts on cold caches: [`evict_bytes`] are written
//! over on the calling thread first (twice the machine's last-level
//! cache), as a node's admissions and commits evict a block's state
//! between its blocks. Without it the order of the runs decided who found
//! the block's state warm: the second run of a block ran on what the
//! first one had read, and with an odd count of measured blocks one path
//! went first once more than the other, so its median was a cold run and
//! the other's a warm one; an untimed profile run (`S*`), then run before
//! them, warmed the widest executor alone, and a guarded executor's
//! in-order blocks (the same engine as the sequential run) measured
//! 1.15-1.24x "faster" than the sequential run (benches/README.md).
//!
//! Signatures: `checked` (each timed run checks every transaction afresh,
//! Ed25519 included), or `cached` (every transaction of the block is
//! admitted into a verification cache before the timed runs, as a node's
//! mempool holds it; the timed runs then check only the reference
//! topoheight): the engine measured without the signatures.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use tos_parallel::chain::block::read_blocks_file;
use tos_parallel::chain::validation::check_admission;
use tos_parallel::engine::{EngineConfig, Scheduler};
use tos_parallel::pipeline::{
    differences, execute_block, locate_block, ExecutedBlock, Run, SpecExecutor, TxCache,
};
use tos_parallel::{
    init_genesis, Block, BlockError, Genesis, InputError, MemoryStorage, RocksConfig, RocksStorage,
    StateRead, StateWrite, StorageError,
};

use crate::generator::{generate, GenerateError, GeneratorConfig};

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

/// How the timed runs get their transactions checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Signatures {
    /// Every check at block time, signatures included.
    #[default]
    Checked,
    /// Admitted into the verification cache before the timed runs.
    Cached,
}

impl Signatures {
    /// The name `--signatures` takes.
    pub fn name(self) -> &'static str {
        match self {
            Signatures::Checked => "checked",
            Signatures::Cached => "cached",
        }
    }
}

impl std::str::FromStr for Signatures {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "checked" => Ok(Signatures::Checked),
            "cached" => Ok(Signatures::Cached),
            o => Err(format!("unknown signatures `{o}` (checked or cached)")),
        }
    }
}

/// Medians of one execution path over the measured blocks.
#[derive(Clone, Copy, Debug, Default)]
pub struct PathTimes {
    /// Whole execution (checks + plan + execution + change set), without commit.
    pub total: Duration,
    /// Stateless checks (or cache lookups).
    pub verify: Duration,
    /// The plan phase, wall time.
    pub plan: Duration,
    /// Within the plan, summed over partitions: key table and prefetch.
    pub prefetch: Duration,
    /// Within the plan, summed over partitions: proofs and dependency graph.
    pub schedule: Duration,
    /// Execution (hooks, transactions, change set).
    pub execute: Duration,
}

/// A chain to benchmark: its genesis and blocks.
#[derive(Clone, Debug)]
pub struct Workload {
    /// The row's name (a workload, or a blocks file).
    pub name: String,
    /// Funded accounts (informative).
    pub accounts: usize,
    /// The genesis.
    pub genesis: Genesis,
    /// The blocks, in order.
    pub blocks: Vec<Block>,
}

impl Workload {
    /// A generated workload.
    pub fn generated(gen: &GeneratorConfig) -> Result<Workload, BenchError> {
        let chain = generate(gen)?;
        Ok(Workload {
            name: gen.workload.to_string(),
            accounts: gen.accounts,
            genesis: chain.genesis,
            blocks: chain.blocks,
        })
    }

    /// A user's chain: a genesis file and a blocks file (JSON Lines).
    pub fn from_files(genesis: &Path, blocks: &Path) -> Result<Workload, BenchError> {
        let text = std::fs::read_to_string(genesis).map_err(|source| InputError::Io {
            path: genesis.display().to_string(),
            source,
        })?;
        let genesis_value = Genesis::from_json(&text, &genesis.display().to_string())?;
        let blocks: Vec<Block> = read_blocks_file(blocks)?
            .map(|r| r.map(|(_, b)| b))
            .collect::<Result<_, _>>()?;
        Ok(Workload {
            name: blocks_name(blocks.len()),
            accounts: genesis_value.accounts.len(),
            genesis: genesis_value,
            blocks,
        })
    }

    /// Median transactions per block.
    pub fn txs_per_block(&self) -> usize {
        crate::median(self.blocks.iter().map(|b| b.txs().len()).collect())
    }
}

fn blocks_name(n: usize) -> String {
    format!("file ({n} blocks)")
}

/// One row of the table.
#[derive(Clone, Debug)]
pub struct BenchRow {
    /// Workload name.
    pub workload: String,
    /// Accounts.
    pub accounts: usize,
    /// Transactions per block (median).
    pub txs: usize,
    /// Storage regime.
    pub storage: StorageKind,
    /// Scheduler of the parallel runs.
    pub scheduler: Scheduler,
    /// Signature regime.
    pub signatures: Signatures,
    /// Whether admission hinted the invocations (only with cached signatures).
    pub hints: bool,
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
    /// Median of W / C: the per-transaction execution costs measured in a
    /// sequential run over the cost-weighted critical path of the engine's
    /// dependency graph (the parallelism the block offers).
    pub work_over_path: f64,
    /// The path each thread count's last measured block took (`path/reason`).
    pub paths: Vec<(usize, String)>,
    /// How many measured blocks took each path (`path/reason`), per thread
    /// count: a guarded executor may change its way during a row.
    pub path_counts: Vec<(usize, BTreeMap<String, usize>)>,
}

impl BenchRow {
    /// Ideal execute-phase speedup at `threads`: `S* = min(threads, W / C)`.
    pub fn ideal(&self, threads: usize) -> f64 {
        (threads as f64).min(self.work_over_path)
    }

    fn par(&self, threads: usize) -> Option<&PathTimes> {
        self.parallel
            .iter()
            .find(|(t, _)| *t == threads)
            .map(|(_, p)| p)
    }

    /// Speedup of the whole execution at `threads` over sequential (same run).
    pub fn speedup(&self, threads: usize) -> Option<f64> {
        self.par(threads)
            .map(|p| ratio(self.sequential.total, p.total))
    }

    /// Speedup of the whole block at `threads`: checks + execution + commit
    /// (the commit is the same atomic write for both paths, timed once).
    pub fn block_speedup(&self, threads: usize) -> Option<f64> {
        self.par(threads)
            .map(|p| ratio(self.sequential.total + self.commit, p.total + self.commit))
    }

    /// Speedup of execution at `threads`: the sequential execute phase over
    /// everything the parallel path does instead (the plan, which does the
    /// reads the sequential phase does inline, and the execution).
    pub fn execute_speedup(&self, threads: usize) -> Option<f64> {
        self.par(threads)
            .map(|p| ratio(self.sequential.execute, p.plan + p.execute))
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
    /// Reading the user's chain failed.
    #[error(transparent)]
    Input(#[from] InputError),
    /// Executing failed.
    #[error(transparent)]
    Block(#[from] BlockError),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Parallel and sequential results differ: a bug, never a benchmark result.
    #[error("parallel result differs from sequential at topoheight {topoheight}: {first}")]
    Mismatch {
        /// The block.
        topoheight: u64,
        /// The first difference.
        first: String,
    },
    /// Temp dir, pool or genesis.
    #[error("{0}")]
    Setup(String),
}

/// What one row is run with.
#[derive(Clone, Copy, Debug)]
pub struct RowConfig<'a> {
    /// Storage regime.
    pub storage: StorageKind,
    /// Parallel thread counts.
    pub threads: &'a [usize],
    /// Scheduler.
    pub scheduler: Scheduler,
    /// Signature regime.
    pub signatures: Signatures,
    /// Leading blocks not measured.
    pub warmup: usize,
    /// With `cached` signatures: admission also hints each invocation on
    /// the block's parent state (`pipeline::hint`), as a node's `admit` does.
    pub hints: bool,
}

/// Runs one row on `workload`.
pub fn run_row(workload: &Workload, cfg: &RowConfig<'_>) -> Result<BenchRow, BenchError> {
    let engine = EngineConfig {
        scheduler: cfg.scheduler,
        costly_reads: cfg.storage != StorageKind::Memory,
        ..EngineConfig::default()
    };
    let executors: Vec<SpecExecutor> = cfg
        .threads
        .iter()
        .map(|&t| SpecExecutor::new(t, engine))
        .collect::<Result<_, _>>()
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    let sequential = SpecExecutor::on_current_pool(engine);
    let setup = |e: &dyn std::fmt::Display| BenchError::Setup(e.to_string());
    let run = Runs {
        executors: &executors,
        sequential: &sequential,
        signatures: cfg.signatures,
        warmup: cfg.warmup,
        hints: cfg.hints,
    };
    let m = match cfg.storage {
        StorageKind::Memory => {
            let mut s = MemoryStorage::new();
            init_genesis(&mut s, &workload.genesis).map_err(|e| setup(&e))?;
            run.measure(s, &workload.blocks, None)?
        }
        StorageKind::Rocks | StorageKind::RocksCold => {
            let tmp = tempfile::tempdir().map_err(|e| setup(&e))?;
            let mut s = RocksStorage::create(tmp.path(), RocksConfig::default())?;
            init_genesis(&mut s, &workload.genesis).map_err(|e| setup(&e))?;
            let path = tmp.path().to_path_buf();
            let reopen = move || RocksStorage::open(&path, RocksConfig::default());
            let cold = cfg.storage == StorageKind::RocksCold;
            run.measure(
                s,
                &workload.blocks,
                cold.then_some(&reopen as &dyn Fn() -> Result<_, _>),
            )?
        }
    };
    Ok(BenchRow {
        workload: workload.name.clone(),
        accounts: workload.accounts,
        txs: workload.txs_per_block(),
        storage: cfg.storage,
        scheduler: cfg.scheduler,
        signatures: cfg.signatures,
        hints: cfg.hints && cfg.signatures == Signatures::Cached,
        blocks: m.blocks,
        sequential: m.sequential,
        parallel: cfg.threads.iter().copied().zip(m.parallel).collect(),
        commit: m.commit,
        critical_path: m.critical_path,
        work_over_path: m.work_over_path,
        paths: cfg.threads.iter().copied().zip(m.paths).collect(),
        path_counts: cfg.threads.iter().copied().zip(m.path_counts).collect(),
    })
}

/// The executors and regime of one row.
struct Runs<'a> {
    executors: &'a [SpecExecutor],
    sequential: &'a SpecExecutor,
    signatures: Signatures,
    warmup: usize,
    hints: bool,
}

/// Medians of one row.
struct Measured {
    sequential: PathTimes,
    parallel: Vec<PathTimes>,
    commit: Duration,
    critical_path: usize,
    work_over_path: f64,
    blocks: usize,
    paths: Vec<String>,
    path_counts: Vec<BTreeMap<String, usize>>,
}

impl Runs<'_> {
    /// Admits every transaction of `block` into a fresh cache (untimed),
    /// hinting invocations on `parent` (the state at `at`, the block's
    /// parent) when the row says so.
    fn admitted<S: StateRead + Clone>(
        &self,
        block: &Block,
        parent: &S,
        at: tos_parallel::TopoHeight,
    ) -> Option<TxCache> {
        if self.signatures == Signatures::Checked {
            return None;
        }
        // Room to spare: the cache is sharded and each shard evicts at its
        // share of the capacity, so a cache exactly the block's size could
        // evict some of its transactions (then checked afresh, signatures
        // included, in the timed runs).
        let cache = TxCache::new((4 * block.txs().len()).max(1024));
        let hinter = self
            .hints
            .then(|| tos_parallel::pipeline::Hinter::at(parent, at));
        for (bytes, hash) in block.txs().iter().zip(block.tx_hashes()) {
            // A transaction the mempool refuses stays out of the cache: it is
            // checked at block time (and rejects the block there, as without it).
            if let Ok(mut vtx) = check_admission(bytes, *hash) {
                if let Some(hinter) = &hinter {
                    hinter.hint(&mut vtx);
                }
                cache.insert(hash.0, std::sync::Arc::new(vtx));
            }
        }
        Some(cache)
    }

    /// With `reopen` (the cold regime), the storage is closed and reopened
    /// before every timed execution.
    fn measure<S: StateRead + StateWrite + Clone>(
        &self,
        storage: S,
        blocks: &[Block],
        reopen: Option<&dyn Fn() -> Result<S, StorageError>>,
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
        let n = self.executors.len();
        let mut seq_samples: Vec<PathTimes> = Vec::new();
        let mut par_samples: Vec<Vec<PathTimes>> = vec![Vec::new(); n];
        let mut commits = Vec::new();
        let mut critical = Vec::new();
        let mut parallelism = Vec::new();
        let mut paths = vec![String::new(); n];
        let mut path_counts = vec![BTreeMap::new(); n];
        let mut junk = vec![0u8; evict_bytes()];
        for (b, block) in blocks.iter().enumerate() {
            let base = fresh(&mut storage)?;
            let pre = locate_block(&base, block)?;
            let cache = self.admitted(block, &base, pre.ctx.parent_topoheight);
            drop(base);
            let mut seq: Option<(ExecutedBlock, PathTimes)> = None;
            let mut par_times = vec![PathTimes::default(); n];
            // Rotate who goes first (each run starts cold: `evict`).
            let order: Vec<usize> = (0..=n).map(|k| (k + b) % (n + 1)).collect();
            let mut pars: Vec<Option<ExecutedBlock>> = vec![None; n];
            for who in order {
                let s = fresh(&mut storage)?;
                evict(&mut junk);
                let (ex, run) = match self.executors.get(who) {
                    Some(ex) => (ex, Run::Parallel),
                    None => (self.sequential, Run::Sequential),
                };
                let start = Instant::now();
                let r = execute_block(ex, &s, block, &pre, cache.as_ref(), run)?;
                let total = start.elapsed();
                let st = &r.outcome.stats;
                let times = PathTimes {
                    total,
                    verify: st.verify,
                    plan: st.plan,
                    prefetch: st.prefetch,
                    schedule: st.schedule,
                    execute: st.execute,
                };
                if who == n {
                    seq = Some((r, times));
                } else {
                    paths[who] = format!("{}/{}", st.path.name(), st.reason.name());
                    if b >= self.warmup {
                        *path_counts[who].entry(paths[who].clone()).or_insert(0) += 1;
                    }
                    par_times[who] = times;
                    pars[who] = Some(r);
                }
            }
            // W and C, from an extra (untimed) profile run of the widest
            // executor, after the timed runs: run before them, it warmed
            // that executor's scratch and the block's state for its timed
            // run alone (the sequential executor's scratch stayed cold),
            // and a guarded executor's in-order blocks measured 1.1-1.25x
            // faster than the same engine's sequential run.
            let (w, c, cp) = match self.executors.last() {
                Some(ex) => {
                    let base = fresh(&mut storage)?;
                    let checked =
                        tos_parallel::pipeline::check_block(block, &pre, cache.as_ref(), None)?;
                    let reader = tos_parallel::chain::StoreReader {
                        storage: base.clone(),
                        at: pre.ctx.parent_topoheight,
                    };
                    let p = ex
                        .profile(&tos_parallel::SpecChain, &pre.ctx, &checked.txs, &reader)
                        .map_err(BlockError::from)?;
                    (
                        p.work.as_secs_f64(),
                        p.weighted_critical_path.as_secs_f64(),
                        p.critical_path,
                    )
                }
                None => (0.0, 0.0, 0),
            };
            let (seq, seq_times) =
                seq.ok_or_else(|| BenchError::Setup("no sequential run".into()))?;
            for p in pars.iter().flatten() {
                if let Some(first) = differences(&seq, p).into_iter().next() {
                    return Err(BenchError::Mismatch {
                        topoheight: pre.topoheight(),
                        first,
                    });
                }
            }
            let mut target = fresh(&mut storage)?;
            let start = Instant::now();
            target.commit(&seq.changes, &seq.meta)?;
            let commit = start.elapsed();
            drop(target);
            if b >= self.warmup {
                seq_samples.push(seq_times);
                for (k, t) in par_times.into_iter().enumerate() {
                    par_samples[k].push(t);
                }
                commits.push(commit);
                critical.push(cp);
                // Ordered as integers (x1000) for the median.
                parallelism.push(((w / c.max(1e-12)) * 1000.0) as u64);
            }
        }
        Ok(Measured {
            blocks: seq_samples.len(),
            sequential: median_times(&seq_samples),
            parallel: par_samples.iter().map(|s| median_times(s)).collect(),
            commit: crate::median(commits),
            critical_path: crate::median(critical),
            work_over_path: crate::median(parallelism) as f64 / 1000.0,
            paths,
            path_counts,
        })
    }
}

/// The fewest bytes written over before every timed run ([`evict_bytes`]):
/// twice the last-level cache of the machine `bench` was first measured
/// on (32 MiB), and what is used where the cache's size cannot be read.
pub const EVICT_BYTES: usize = 64 << 20;

/// The most bytes written over before a timed run (a machine reporting a
/// larger last-level cache keeps some of a block in it).
const MAX_EVICT_BYTES: usize = 1 << 30;

/// Bytes to write over before every timed run: twice this machine's
/// largest CPU cache as Linux reports it (the last-level one, shared by
/// the cores), at least [`EVICT_BYTES`] and at most 1 GiB. Machines
/// differ here: one reference machine had a 32 MiB last level, another
/// reports 260 MiB, where 64 MiB would have left a block's state in it.
pub fn evict_bytes() -> usize {
    largest_cache()
        .map_or(EVICT_BYTES, |bytes| bytes.saturating_mul(2))
        .clamp(EVICT_BYTES, MAX_EVICT_BYTES)
}

/// The largest cache of CPU 0 (`/sys/devices/system/cpu/cpu0/cache`,
/// sizes such as `266240K`), if Linux says.
fn largest_cache() -> Option<usize> {
    let dir = std::fs::read_dir("/sys/devices/system/cpu/cpu0/cache").ok()?;
    dir.filter_map(|entry| {
        let size = std::fs::read_to_string(entry.ok()?.path().join("size")).ok()?;
        parse_cache_size(size.trim())
    })
    .max()
}

/// `48K`, `2048K`, `32M`, `1G` or plain bytes.
fn parse_cache_size(s: &str) -> Option<usize> {
    let (digits, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.split_at(i),
        None => (s, ""),
    };
    let n: usize = digits.parse().ok()?;
    let scale = match unit {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(scale)
}

/// Writes over `junk` (one byte per cache line; [`evict_bytes`] long for
/// `bench`), so that the caches hold none of what the last run touched:
/// the calling core's own and the shared last-level cache.
pub fn evict(junk: &mut [u8]) {
    for b in junk.iter_mut().step_by(64) {
        *b = b.wrapping_add(1);
    }
    std::hint::black_box(&*junk);
}

fn median_times(s: &[PathTimes]) -> PathTimes {
    PathTimes {
        total: crate::median(s.iter().map(|t| t.total).collect()),
        verify: crate::median(s.iter().map(|t| t.verify).collect()),
        plan: crate::median(s.iter().map(|t| t.plan).collect()),
        prefetch: crate::median(s.iter().map(|t| t.prefetch).collect()),
        schedule: crate::median(s.iter().map(|t| t.schedule).collect()),
        execute: crate::median(s.iter().map(|t| t.execute).collect()),
    }
}

#[cfg(test)]
mod evict_tests {
    use super::*;

    #[test]
    fn cache_sizes_parse_as_linux_writes_them() {
        assert_eq!(parse_cache_size("48K"), Some(48 << 10));
        assert_eq!(parse_cache_size("266240K"), Some(266_240 << 10));
        assert_eq!(parse_cache_size("32M"), Some(32 << 20));
        assert_eq!(parse_cache_size("1G"), Some(1 << 30));
        assert_eq!(parse_cache_size("512"), Some(512));
        assert_eq!(parse_cache_size("12Q"), None);
        assert_eq!(parse_cache_size("K"), None);
    }

    #[test]
    fn the_eviction_is_bounded() {
        let n = evict_bytes();
        assert!((EVICT_BYTES..=MAX_EVICT_BYTES).contains(&n), "{n}");
    }
}
