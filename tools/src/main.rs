//! The `tos-parallel` command line: init, replay, dump, rewind, generate,
//! bench, demo.

use std::collections::VecDeque;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use tos_parallel::chain::block::read_blocks_file;
use tos_parallel::chain::dump::{results_line, state_json_string};
use tos_parallel::{
    init_genesis, Block, BlockError, Blockchain, ExecutionConfig, ExecutionMode, Genesis,
    InitOutcome, RocksConfig, RocksStorage, Scheduler, StateRead, StateScan, Storage,
};
use tos_parallel_tools::bench::{run_row, BenchRow, RowConfig, Signatures, StorageKind, Workload};
use tos_parallel_tools::generator::{generate, GeneratorConfig, Workload as Kind};

#[derive(Parser)]
#[command(
    name = "tos-parallel",
    version,
    about = "Parallel block execution, equal to sequential bit for bit"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a data dir holding the chain of a genesis file (SPEC §3).
    Init {
        /// Data directory (RocksDB).
        #[arg(long)]
        data_dir: PathBuf,
        /// Genesis JSON file.
        #[arg(long)]
        genesis: PathBuf,
    },
    /// Apply the blocks of a JSON Lines file in order, each committed before the next.
    Replay {
        /// Data directory (created by `init`).
        #[arg(long)]
        data_dir: PathBuf,
        /// Blocks file (JSON Lines).
        #[arg(long)]
        blocks: PathBuf,
        /// sequential, parallel or verify.
        #[arg(long, default_value = "sequential")]
        mode: ExecutionMode,
        /// Worker threads (default: the machine's parallelism).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// Blocks with fewer transactions run sequentially.
        #[arg(long, default_value_t = 20)]
        min_txs_for_parallel: usize,
        /// graph (no barriers), batches (a barrier between conflict-free
        /// batches) or optimistic (every block speculated, then validated in
        /// block order; blocks with contract calls take it whatever this says
        /// when the guards are off or in verify mode).
        #[arg(long, default_value = "graph")]
        scheduler: Scheduler,
        /// Write per-block results (SPEC §7 JSON Lines) to this file.
        #[arg(long)]
        results: Option<PathBuf>,
        /// Write per-block execution stats (one JSON line per applied block:
        /// path, reason, phases) to this file.
        #[arg(long)]
        stats: Option<PathBuf>,
        /// Admit the transactions of the next N blocks into the verification
        /// cache on the pool while a block executes and commits, as a node's
        /// mempool holds them (0: every transaction is checked at block time);
        /// `all`: admit every transaction of the file before the first block
        /// (timed on a line of its own), so the summary times the block loop
        /// alone, as a node with a warm mempool runs it.
        #[arg(long, default_value = "0", value_parser = parse_ahead)]
        admit_ahead: Ahead,
        /// on: each block is written by a committer thread while the next
        /// ones execute (the summary's time includes the final flush); off:
        /// each block is written before the next executes.
        #[arg(long, default_value = "on")]
        pipeline: Switch,
        /// Entries of the tip cache: the latest values of recently used
        /// keys, kept from block to block and updated with each block's
        /// writes, so that a block reads them from memory instead of the
        /// database (0: off).
        #[arg(long, default_value = "262144")]
        state_cache: usize,
    },
    /// Print the state (SPEC §7 JSON) at the top or at an earlier topoheight.
    Dump {
        /// Data directory.
        #[arg(long)]
        data_dir: PathBuf,
        /// Topoheight (default: the top).
        #[arg(long)]
        at: Option<u64>,
    },
    /// Delete every block above a topoheight (for reorgs); replay can then
    /// apply other blocks from there.
    Rewind {
        /// Data directory.
        #[arg(long)]
        data_dir: PathBuf,
        /// Topoheight to keep (must be at most the top).
        #[arg(long)]
        to: u64,
    },
    /// Write genesis.json and blocks.jsonl of a deterministic workload.
    Generate {
        /// uniform, disjoint, hot-receiver\[:H\], hot-sender, chain, mixed,
        /// token, auction or contracts-mixed (the last three deploy their
        /// contracts in block 1).
        #[arg(long, default_value = "uniform")]
        workload: Kind,
        /// Funded accounts.
        #[arg(long, default_value_t = 1000)]
        accounts: usize,
        /// Transactions per block.
        #[arg(long, default_value_t = 100)]
        txs_per_block: usize,
        /// Blocks.
        #[arg(long, default_value_t = 10)]
        blocks: usize,
        /// Seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
    /// Benchmark sequential against parallel execution (same run, alternating,
    /// medians over blocks) and print a table (or JSON lines with --json).
    Bench {
        /// Workloads to run (comma separated; any `generate --workload`).
        #[arg(long, value_delimiter = ',', default_value = "uniform,mixed")]
        workload: Vec<Kind>,
        /// Funded accounts.
        #[arg(long, default_value_t = 10_000)]
        accounts: usize,
        /// Transactions per block.
        #[arg(long, default_value_t = 1_000)]
        txs_per_block: usize,
        /// Blocks measured (after one warm-up block).
        #[arg(long, default_value_t = 10)]
        blocks: usize,
        /// Parallel thread counts (comma separated).
        #[arg(long, value_delimiter = ',', default_value = "1,2")]
        threads: Vec<usize>,
        /// Storages (comma separated): memory, rocks (warm), rocks-cold
        /// (reopened before every timed execution).
        #[arg(long, value_delimiter = ',', default_value = "memory,rocks")]
        storage: Vec<StorageKind>,
        /// Schedulers (comma separated): graph, batches, optimistic (the same
        /// blocks through the dependency graph and through the optimistic road).
        #[arg(long, value_delimiter = ',', default_value = "graph")]
        scheduler: Vec<Scheduler>,
        /// checked: every timed run checks every transaction (Ed25519
        /// included); cached: the block's transactions are admitted into the
        /// verification cache first, as a node's mempool holds them, so the
        /// timed runs measure block execution alone (comma separated: both).
        #[arg(long, value_delimiter = ',', default_value = "checked")]
        signatures: Vec<Signatures>,
        /// With `--signatures cached`: whether admission hints invocations
        /// on the block's parent state, as a node's `admit` does (`on`,
        /// the default), or keeps no hints (`off`).
        #[arg(long, value_enum, default_value_t = Switch::On)]
        hints: Switch,
        /// Benchmark this genesis (with --blocks-file) instead of generated
        /// workloads: any chain a user has, e.g. blocks replayed from a network.
        #[arg(long, requires = "blocks_file")]
        genesis: Option<PathBuf>,
        /// Benchmark this blocks file (JSON Lines, with --genesis).
        #[arg(long, requires = "genesis")]
        blocks_file: Option<PathBuf>,
        /// Seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// One JSON object per row instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Generate a chain into a temporary RocksDB, replay it sequentially and
    /// in parallel, compare the states and print a summary.
    Demo {
        /// Blocks.
        #[arg(long, default_value_t = 30)]
        blocks: usize,
        /// Transactions per block.
        #[arg(long, default_value_t = 500)]
        txs_per_block: usize,
        /// Funded accounts.
        #[arg(long, default_value_t = 2000)]
        accounts: usize,
        /// Worker threads for the parallel replay (default: the machine's parallelism).
        #[arg(long, default_value_t = 0)]
        threads: usize,
    },
}

/// A failure the CLI reports in one line before exiting with status 1.
struct Failure(String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure(e.to_string())
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Init { data_dir, genesis } => cmd_init(&data_dir, &genesis, false),
        Command::Replay {
            data_dir,
            blocks,
            mode,
            threads,
            min_txs_for_parallel,
            scheduler,
            results,
            stats,
            admit_ahead,
            pipeline,
            state_cache,
        } => {
            let config = ExecutionConfig {
                mode,
                min_txs_for_parallel,
                threads,
                scheduler,
                pipeline: pipeline == Switch::On,
                state_cache,
                ..ExecutionConfig::default()
            };
            let outputs = Outputs {
                results: results.as_deref(),
                stats: stats.as_deref(),
                admit_ahead,
            };
            cmd_replay(&data_dir, &blocks, config, outputs).map(|_| ())
        }
        Command::Dump { data_dir, at } => cmd_dump(&data_dir, at),
        Command::Rewind { data_dir, to } => cmd_rewind(&data_dir, to),
        Command::Generate {
            workload,
            accounts,
            txs_per_block,
            blocks,
            seed,
            out,
        } => cmd_generate(
            &GeneratorConfig {
                workload,
                accounts,
                txs_per_block,
                blocks,
                seed,
            },
            &out,
        ),
        Command::Demo {
            blocks,
            txs_per_block,
            accounts,
            threads,
        } => cmd_demo(blocks, txs_per_block, accounts, threads),
        Command::Bench {
            workload,
            accounts,
            txs_per_block,
            blocks,
            threads,
            storage,
            scheduler,
            signatures,
            hints,
            genesis,
            blocks_file,
            seed,
            json,
        } => cmd_bench(&BenchArgs {
            workloads: &workload,
            files: genesis.as_deref().zip(blocks_file.as_deref()),
            accounts,
            txs_per_block,
            blocks,
            threads: &threads,
            storages: &storage,
            schedulers: &scheduler,
            signatures: &signatures,
            hints: hints == Switch::On,
            seed,
            json,
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn read_file(path: &Path) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|e| Failure(format!("{}: {e}", path.display())))
}

fn cmd_init(data_dir: &Path, genesis_path: &Path, quiet: bool) -> Result<(), Failure> {
    let genesis = Genesis::from_json(
        &read_file(genesis_path)?,
        &genesis_path.display().to_string(),
    )?;
    let mut storage = if data_dir.exists() {
        RocksStorage::open(data_dir, RocksConfig::default()).map_err(|e| {
            Failure(format!(
                "{} exists but is not a usable data dir: {e}",
                data_dir.display()
            ))
        })?
    } else {
        RocksStorage::create(data_dir, RocksConfig::default())?
    };
    let outcome = init_genesis(&mut storage, &genesis)?;
    if quiet {
        return Ok(());
    }
    match outcome {
        InitOutcome::Initialised => println!(
            "initialised {} with genesis {} ({} accounts)",
            data_dir.display(),
            genesis.hash(),
            genesis.accounts.len()
        ),
        InitOutcome::AlreadyInitialised => println!(
            "{} already holds genesis {}; nothing to do",
            data_dir.display(),
            genesis.hash()
        ),
    }
    Ok(())
}

/// Totals of a replay.
#[derive(Default)]
struct ReplaySummary {
    blocks: usize,
    skipped: usize,
    txs: usize,
    ok: usize,
    mismatches: usize,
    /// The block loop, the final flush included.
    elapsed: Duration,
    /// The final flush (pipelined: the writes still queued at the end).
    flush: Duration,
    /// Time the loop waited for room in the commit queue.
    commit_wait: Duration,
}

/// How far a replay admits transactions ahead of execution.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Ahead {
    /// Nothing: every transaction is checked when its block executes.
    #[default]
    None,
    /// The transactions of the next N blocks, in the background.
    Blocks(usize),
    /// Every transaction of the file, before the first block.
    All,
}

fn parse_ahead(s: &str) -> Result<Ahead, String> {
    match s {
        "all" => Ok(Ahead::All),
        "0" => Ok(Ahead::None),
        n => n
            .parse::<usize>()
            .map(Ahead::Blocks)
            .map_err(|_| format!("`{n}`: expected a number of blocks or `all`")),
    }
}

/// On or off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Switch {
    /// On.
    On,
    /// Off.
    Off,
}

/// What a replay writes (one JSON line per applied block each) and how far
/// it admits ahead.
#[derive(Clone, Copy, Default)]
struct Outputs<'a> {
    /// SPEC §7 per-block results.
    results: Option<&'a Path>,
    /// Execution stats ([`stats_line`]).
    stats: Option<&'a Path>,
    /// Transactions admitted ahead of execution.
    admit_ahead: Ahead,
}

fn create(path: Option<&Path>) -> Result<Option<std::io::BufWriter<std::fs::File>>, Failure> {
    path.map(|p| {
        std::fs::File::create(p)
            .map(std::io::BufWriter::new)
            .map_err(|e| Failure(format!("{}: {e}", p.display())))
    })
    .transpose()
}

/// One `--stats` line: how the block ran (README.md documents every field).
fn stats_line(outcome: &tos_parallel::BlockOutcome) -> serde_json::Value {
    let st = &outcome.stats;
    serde_json::json!({
        "topoheight": outcome.topoheight,
        "path": st.path.name(),
        "reason": st.reason.name(),
        "parallel_engine": st.parallel_engine,
        "optimistic": st.optimistic,
        "validations": st.validations,
        "reexecutions": st.reexecutions,
        "estimates": st.estimates,
        "sealed": st.sealed,
        "escaped": st.escaped,
        "txs": outcome.results.len(),
        "ok": outcome.ok_count(),
        "critical_path": st.critical_path,
        "largest_batch": st.largest_batch,
        "covered": st.covered,
        "hot_counters": st.hot_counters,
        "keys": st.keys,
        "edges": st.edges,
        "cache_hits": st.cache_hits,
        "cache_misses": st.cache_misses,
        "state_cache_hits": st.state_cache_hits,
        "mismatches": st.mismatches,
        "verify_ms": ms(st.verify),
        "plan_ms": ms(st.plan),
        "prefetch_ms": ms(st.prefetch),
        "schedule_ms": ms(st.schedule),
        "execute_ms": ms(st.execute),
        "commit_ms": ms(st.commit),
        "pipelined": st.pipelined,
        "commit_wait_ms": ms(st.commit_wait),
    })
}

fn cmd_replay(
    data_dir: &Path,
    blocks_path: &Path,
    config: ExecutionConfig,
    outputs: Outputs<'_>,
) -> Result<ReplaySummary, Failure> {
    let mut config = config;
    let mut preread = None;
    if outputs.admit_ahead == Ahead::All {
        // Every transaction of the file is admitted before the first block:
        // the verification cache must hold them all, or the first blocks'
        // entries are evicted by the last ones before they run (and each
        // block then checks every transaction again).
        let blocks = read_all_blocks(blocks_path)?;
        let txs = blocks.iter().map(|(_, b)| b.txs().len()).sum::<usize>();
        config.cache_capacity = config.cache_capacity.max(txs);
        preread = Some(blocks);
    }
    let storage = RocksStorage::open(data_dir, RocksConfig::default())?;
    let chain = Blockchain::new(storage, config)?;
    let summary = replay_into(&chain, blocks_path, preread, outputs, false)?;
    let tps = summary.txs as f64 / summary.elapsed.as_secs_f64().max(1e-9);
    if summary.skipped > 0 {
        eprintln!(
            "skipped {} block(s) already applied (resumed replay)",
            summary.skipped
        );
    }
    eprintln!(
        "applied {} block(s), {} transaction(s) ({} ok, {} orphaned) in {:.2?} ({tps:.0} tx/s), mode {:?}{}",
        summary.blocks,
        summary.txs,
        summary.ok,
        summary.txs - summary.ok,
        summary.elapsed,
        config.mode,
        if config.mode == ExecutionMode::Verify {
            format!(", {} mismatch(es)", summary.mismatches)
        } else {
            String::new()
        }
    );
    if config.pipeline {
        eprintln!(
            "pipeline on: the loop waited {:.2?} for the committer, the final flush took {:.2?}",
            summary.commit_wait, summary.flush
        );
    } else {
        eprintln!("pipeline off: each block was written before the next executed");
    }
    Ok(summary)
}

/// Replays the blocks file at `blocks_path` into `chain` (`preread`: its
/// blocks, already read, for `--admit-ahead all`).
fn replay_into<S: Storage>(
    chain: &Blockchain<S>,
    blocks_path: &Path,
    preread: Option<VecDeque<(usize, Block)>>,
    outputs: Outputs<'_>,
    quiet: bool,
) -> Result<ReplaySummary, Failure> {
    let mut out = create(outputs.results)?;
    let mut stats_out = create(outputs.stats)?;
    let progress = if !quiet && std::io::stderr().is_terminal() {
        let pb = ProgressBar::new_spinner();
        pb.set_style(
            ProgressStyle::with_template("{spinner} {pos} blocks {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        Some(pb)
    } else {
        None
    };
    let mut summary = ReplaySummary::default();
    let mut file = read_blocks_file(blocks_path)?;
    // Blocks read but not applied yet, oldest first; every one of them but
    // the next had its transactions handed to admission.
    let mut ahead: VecDeque<(usize, Block)> = VecDeque::new();
    let mut file_done = false;
    let window = match outputs.admit_ahead {
        Ahead::None => 0,
        Ahead::Blocks(n) => n,
        Ahead::All => {
            ahead = match preread {
                Some(blocks) => blocks,
                None => read_all_blocks(blocks_path)?,
            };
            file_done = true;
            let start = Instant::now();
            let txs = admit_all(chain, &ahead);
            if !quiet {
                eprintln!(
                    "admitted {txs} transaction(s) of {} block(s) ahead in {:.2?}",
                    ahead.len(),
                    start.elapsed()
                );
            }
            0
        }
    };
    // Stats lines of pipelined blocks wait for their write's time.
    let mut unwritten: VecDeque<(u64, serde_json::Value)> = VecDeque::new();
    let start = Instant::now();
    loop {
        while !file_done && ahead.len() <= window {
            match file.next() {
                Some(item) => {
                    let (line, block) = item?;
                    if !ahead.is_empty() {
                        chain.admit_in_background(&block);
                    }
                    ahead.push_back((line, block));
                }
                None => file_done = true,
            }
        }
        let Some((line, block)) = ahead.pop_front() else {
            break;
        };
        match chain.add_new_block(&block) {
            Ok(outcome) => {
                summary.blocks += 1;
                summary.txs += outcome.results.len();
                summary.ok += outcome.ok_count();
                summary.mismatches += outcome.stats.mismatches;
                summary.commit_wait += outcome.stats.commit_wait;
                if let Some(w) = out.as_mut() {
                    writeln!(w, "{}", results_line(&outcome))?;
                }
                if let Some(w) = stats_out.as_mut() {
                    unwritten.push_back((outcome.topoheight, stats_line(&outcome)));
                    write_stats(chain, w, &mut unwritten, false)?;
                }
                if let Some(pb) = &progress {
                    pb.inc(1);
                    pb.set_message(format!("{} txs", summary.txs));
                }
            }
            Err(BlockError::AlreadyApplied { .. }) => summary.skipped += 1,
            Err(BlockError::InvalidTransaction {
                topoheight,
                index,
                error,
            }) => {
                chain.flush()?;
                return Err(Failure(format!(
                    "block at topoheight {topoheight} (line {line}) rejected: transaction {index}: {}: {error}",
                    error.code()
                )));
            }
            Err(e) => {
                // What was executed before is written before the exit.
                let _ = chain.flush();
                return Err(Failure(format!("block at line {line}: {e}")));
            }
        }
    }
    let flush = Instant::now();
    chain.flush()?;
    summary.flush = flush.elapsed();
    summary.elapsed = start.elapsed();
    if let Some(w) = stats_out.as_mut() {
        write_stats(chain, w, &mut unwritten, true)?;
    }
    if let Some(pb) = progress {
        pb.finish_and_clear();
    }
    for w in [out, stats_out].into_iter().flatten() {
        w.into_inner().map_err(|e| Failure(e.to_string()))?;
    }
    Ok(summary)
}

/// Every block of the blocks file at `path`, with its line number.
fn read_all_blocks(path: &Path) -> Result<VecDeque<(usize, Block)>, Failure> {
    Ok(read_blocks_file(path)?.collect::<Result<_, _>>()?)
}

/// Admits every transaction of `blocks` on all cores; returns how many.
fn admit_all<S: Storage>(chain: &Blockchain<S>, blocks: &VecDeque<(usize, Block)>) -> usize {
    use rayon::prelude::*;
    let txs: Vec<&[u8]> = blocks
        .iter()
        .flat_map(|(_, b)| b.txs().iter().map(|t| &t[..]))
        .collect();
    // A transaction that fails a check is not cached: its block checks it
    // again and rejects it with its code.
    txs.par_iter().for_each(|tx| {
        let _ = chain.admit(tx);
    });
    txs.len()
}

/// Writes the stats lines whose block is written (all of them when `all`,
/// after the flush), with the committer's time as `commit_ms`.
fn write_stats<S: Storage>(
    chain: &Blockchain<S>,
    w: &mut impl Write,
    unwritten: &mut VecDeque<(u64, serde_json::Value)>,
    all: bool,
) -> Result<(), Failure> {
    while let Some((topoheight, line)) = unwritten.front_mut() {
        if line["pipelined"] == serde_json::Value::Bool(true) {
            match chain.commit_time(*topoheight) {
                Some(took) => line["commit_ms"] = serde_json::json!(ms(took)),
                None if !all => break,
                None => {}
            }
        }
        writeln!(w, "{line}")?;
        unwritten.pop_front();
    }
    Ok(())
}

fn cmd_dump(data_dir: &Path, at: Option<u64>) -> Result<(), Failure> {
    let storage = RocksStorage::open(data_dir, RocksConfig::default())?;
    let top = storage
        .top_topoheight()?
        .ok_or_else(|| Failure(format!("{} holds no chain", data_dir.display())))?;
    let at = at.unwrap_or(top);
    if at > top {
        return Err(Failure(format!(
            "--at {at} is above the top topoheight {top}"
        )));
    }
    println!("{}", state_json_string(&storage.snapshot(at)?));
    Ok(())
}

fn cmd_rewind(data_dir: &Path, to: u64) -> Result<(), Failure> {
    let storage = RocksStorage::open(data_dir, RocksConfig::default())?;
    let chain = Blockchain::new(storage, ExecutionConfig::default())?;
    let top = chain
        .top_topoheight()?
        .ok_or_else(|| Failure(format!("{} holds no chain", data_dir.display())))?;
    if to > top {
        return Err(Failure(format!(
            "--to {to} is above the top topoheight {top}"
        )));
    }
    chain.rewind_to(to)?;
    eprintln!(
        "rewound {} from topoheight {top} to {to}",
        data_dir.display()
    );
    Ok(())
}

fn cmd_generate(cfg: &GeneratorConfig, out: &Path) -> Result<(), Failure> {
    let chain = generate(cfg)?;
    std::fs::create_dir_all(out).map_err(|e| Failure(format!("{}: {e}", out.display())))?;
    let write = |name: &str, text: String| -> Result<(), Failure> {
        let p = out.join(name);
        std::fs::write(&p, text).map_err(|e| Failure(format!("{}: {e}", p.display())))
    };
    write("genesis.json", chain.genesis.to_json() + "\n")?;
    let mut lines = String::new();
    for b in &chain.blocks {
        lines.push_str(&b.to_json());
        lines.push('\n');
    }
    write("blocks.jsonl", lines)?;
    let mut sizes: Vec<usize> = chain.blocks.iter().map(|b| b.txs().len()).collect();
    sizes.sort_unstable();
    let (min, median, max) = (
        sizes.first().copied().unwrap_or(0),
        sizes.get(sizes.len() / 2).copied().unwrap_or(0),
        sizes.last().copied().unwrap_or(0),
    );
    let shape = if min == max {
        format!("{} blocks of {min} transactions", sizes.len())
    } else {
        format!(
            "{} blocks of {min} to {max} transactions, median {median}; {} asked: too few senders can still send",
            sizes.len(),
            cfg.txs_per_block
        )
    };
    eprintln!(
        "wrote {} and {} ({shape})",
        out.join("genesis.json").display(),
        out.join("blocks.jsonl").display(),
    );
    Ok(())
}

fn cmd_demo(
    blocks: usize,
    txs_per_block: usize,
    accounts: usize,
    threads: usize,
) -> Result<(), Failure> {
    let dir = tempfile::tempdir()?;
    let cfg = GeneratorConfig {
        workload: Kind::Mixed,
        accounts,
        txs_per_block,
        blocks,
        seed: 42,
    };
    eprintln!(
        "generating {blocks} blocks of {txs_per_block} transactions over {accounts} accounts (mixed workload)..."
    );
    cmd_generate(&cfg, dir.path())?;
    let genesis_path = dir.path().join("genesis.json");
    let blocks_path = dir.path().join("blocks.jsonl");
    let mut dumps = Vec::new();
    let mut rows = Vec::new();
    for mode in [ExecutionMode::Sequential, ExecutionMode::Parallel] {
        let data_dir = dir.path().join(format!("{mode:?}").to_lowercase());
        cmd_init(&data_dir, &genesis_path, true)?;
        let config = ExecutionConfig {
            mode,
            threads,
            ..ExecutionConfig::default()
        };
        let storage = RocksStorage::open(&data_dir, RocksConfig::default())?;
        let chain = Blockchain::new(storage, config)?;
        eprintln!(
            "replaying into RocksDB at {} ({mode:?})...",
            data_dir.display()
        );
        let s = replay_into(&chain, &blocks_path, None, Outputs::default(), false)?;
        dumps.push(state_json_string(&chain.snapshot(None)?));
        rows.push((mode, s, config.effective_threads()));
    }
    println!("tos-parallel demo: {blocks} blocks x {txs_per_block} transactions, {accounts} accounts, RocksDB in a temp dir");
    for (mode, s, threads) in &rows {
        let tps = s.txs as f64 / s.elapsed.as_secs_f64().max(1e-9);
        println!(
            "  {:<10} blocks {:>4}  txs {:>7}  ok {:>7}  orphaned {:>6}  {:>8.2?}  {:>9.0} tx/s{}",
            format!("{mode:?}").to_lowercase(),
            s.blocks,
            s.txs,
            s.ok,
            s.txs - s.ok,
            s.elapsed,
            tps,
            if *mode == ExecutionMode::Sequential {
                String::new()
            } else {
                format!("  ({threads} threads)")
            }
        );
    }
    let same = dumps.windows(2).all(|w| w[0] == w[1]);
    println!(
        "  final states identical: {}",
        if same {
            "yes"
        } else {
            "NO (bug: please report)"
        }
    );
    if !same {
        return Err(Failure("sequential and parallel states differ".into()));
    }
    Ok(())
}

/// What `bench` was asked.
struct BenchArgs<'a> {
    workloads: &'a [Kind],
    /// A user's chain instead of generated workloads: (genesis, blocks).
    files: Option<(&'a Path, &'a Path)>,
    accounts: usize,
    txs_per_block: usize,
    blocks: usize,
    threads: &'a [usize],
    storages: &'a [StorageKind],
    schedulers: &'a [Scheduler],
    signatures: &'a [Signatures],
    hints: bool,
    seed: u64,
    json: bool,
}

fn cmd_bench(a: &BenchArgs<'_>) -> Result<(), Failure> {
    let chains: Vec<Workload> = match a.files {
        Some((genesis, blocks)) => vec![Workload::from_files(genesis, blocks)?],
        None => a
            .workloads
            .iter()
            .map(|&w| {
                Workload::generated(&GeneratorConfig {
                    workload: w,
                    accounts: a.accounts,
                    txs_per_block: a.txs_per_block,
                    blocks: a.blocks + 1,
                    seed: a.seed,
                })
            })
            .collect::<Result<_, _>>()?,
    };
    if !a.json {
        println!(
            "machine: {} logical CPUs; medians over the blocks after the first (warm-up); times in ms",
            std::thread::available_parallelism().map_or(1, |n| n.get())
        );
        println!(
            "{:<18} {:>8} {:>6} {:<10} {:<7} {:<7} {:>8} {:>8} {:>7} | {}",
            "workload",
            "accounts",
            "txs",
            "storage",
            "sched",
            "sigs",
            "seq",
            "seq exec",
            "commit",
            a.threads
                .iter()
                .map(|t| format!(
                    "{:>8} {:>7} {:>7} {:>8} {:>7} {:>6} {:>5}",
                    format!("par@{t}"),
                    "speedup",
                    "blk-sp",
                    "exec",
                    "exec-sp",
                    "S*",
                    "eff"
                ))
                .collect::<Vec<_>>()
                .join(" | ")
        );
        println!("(seq, par@N: whole execution incl. checks, without commit; blk-sp: whole block incl. the commit; exec: execute phase; exec-sp: seq exec / (parallel key table+prefetch + schedule + execute); S* = min(threads, W/C); eff = exec-sp / S*)");
    }
    for chain in &chains {
        for &st in a.storages {
            for &sched in a.schedulers {
                for &signatures in a.signatures {
                    let cfg = RowConfig {
                        storage: st,
                        threads: a.threads,
                        scheduler: sched,
                        signatures,
                        warmup: 1,
                        hints: a.hints,
                    };
                    print_row(&run_row(chain, &cfg)?, a.json);
                }
            }
        }
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn print_row(row: &BenchRow, json: bool) {
    if json {
        let par: Vec<serde_json::Value> = row
            .parallel
            .iter()
            .map(|(t, p)| {
                serde_json::json!({
                    "threads": t,
                    "median_ms": ms(p.total),
                    "verify_ms": ms(p.verify),
                    "plan_ms": ms(p.plan),
                    "schedule_ms": ms(p.schedule),
                    "execute_ms": ms(p.execute),
                    "prefetch_ms": ms(p.prefetch),
                    "speedup": row.speedup(*t),
                    "block_speedup": row.block_speedup(*t),
                    "execute_speedup": row.execute_speedup(*t),
                    "ideal": row.ideal(*t),
                    "execute_efficiency": row.execute_speedup(*t).map(|s| s / row.ideal(*t)),
                    "path": row.paths.iter().find(|(pt, _)| pt == t).map(|(_, p)| p.clone()),
                    "paths": row.path_counts.iter().find(|(pt, _)| pt == t).map(|(_, c)| c.clone()),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "workload": row.workload,
                "accounts": row.accounts,
                "txs": row.txs,
                "storage": row.storage.name(),
                "scheduler": format!("{:?}", row.scheduler).to_lowercase(),
                "signatures": row.signatures.name(),
                "hints": row.hints,
                "blocks": row.blocks,
                "critical_path": row.critical_path,
                "work_over_critical_path": row.work_over_path,
                "sequential": {
                    "median_ms": ms(row.sequential.total),
                    "verify_ms": ms(row.sequential.verify),
                    "execute_ms": ms(row.sequential.execute),
                    "tx_per_s": row.txs as f64 / row.sequential.total.as_secs_f64().max(1e-12),
                },
                "commit_ms": ms(row.commit),
                "parallel": par,
            })
        );
        return;
    }
    let cols: Vec<String> = row
        .parallel
        .iter()
        .map(|(t, p)| {
            let sp = row.speedup(*t).unwrap_or(0.0);
            let blk = row.block_speedup(*t).unwrap_or(0.0);
            let ex = row.execute_speedup(*t).unwrap_or(0.0);
            let ideal = row.ideal(*t);
            format!(
                "{:>8.3} {:>6.2}x {:>6.2}x {:>8.3} {:>6.2}x {:>5.2}x {:>5.2}",
                ms(p.total),
                sp,
                blk,
                ms(p.execute),
                ex,
                ideal,
                ex / ideal
            )
        })
        .collect();
    println!(
        "{:<18} {:>8} {:>6} {:<10} {:<7} {:<7} {:>8.3} {:>8.3} {:>7.3} | {}",
        row.workload,
        row.accounts,
        row.txs,
        row.storage.name(),
        format!("{:?}", row.scheduler).to_lowercase(),
        if row.hints {
            format!("{}+h", row.signatures.name())
        } else {
            row.signatures.name().to_string()
        },
        ms(row.sequential.total),
        ms(row.sequential.execute),
        ms(row.commit),
        cols.join(" | ")
    );
}
