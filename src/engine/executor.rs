//! [`Executor`]: runs blocks of any chain on a rayon pool, its own or the
//! caller's, with the path `policy.rs` decides.
//!
//! A block's phases on the pool: the sample guard (`plan.rs`,
//! `sample_shape`), the plan (`plan.rs`: index and prefetch, proofs,
//! graph), the graph guard, the block's begin hook, the transactions
//! (`run.rs`), the end hook and the writes (one part per partition, built
//! in parallel). The whole block runs inside the pool: serial steps run on
//! a worker instead of on the calling thread competing with the workers.
//!
//! Every allocation a block needs (key tables, cells, links, edges,
//! counts, statuses, the sequential overlay) is kept in the executor and
//! reused by the next block. A panic anywhere (a pool job included: rayon
//! hands it to the joining thread) is contained and returned as
//! [`EngineError::Panicked`]; the executor stays usable.

use std::borrow::Borrow;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use parking_lot::Mutex;

use super::cells::{Sums, TxView};
use super::contract::{Chain, Reader, StateError, MAX_SUMS};
use super::outcome::{EngineStats, Executed, ExecutionPath, Writes};
use super::plan::{
    has_groups, index_partition, link_partition, prove_partition, sample_shape, Graph, Plan,
    MAX_PARTS,
};
use super::policy::{decide, Facts, PathReason, Policy, GUARD_SAMPLE};
use super::run::{Outcomes, Run};
use super::sequential::{self, SeqScratch};

/// How the parallel engine orders a block's transactions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Scheduler {
    /// A transaction starts as soon as its dependencies finished (no barriers).
    #[default]
    Graph,
    /// The graph's levels, a barrier between levels.
    Batches,
}

impl std::str::FromStr for Scheduler {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "graph" => Ok(Scheduler::Graph),
            "batches" => Ok(Scheduler::Batches),
            other => Err(format!("unknown scheduler `{other}` (graph or batches)")),
        }
    }
}

/// Settings of an [`Executor`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    /// How transactions are ordered.
    pub scheduler: Scheduler,
    /// Whether the speed guards of `policy.rs` apply (one thread, few
    /// keys, serial graph). Off, every block runs on the parallel engine.
    pub guards: bool,
    /// Whether the reader's reads are costly (a database): then even a
    /// block whose sample is serial is planned, for the parallel prefetch.
    pub costly_reads: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            scheduler: Scheduler::Graph,
            guards: true,
            costly_reads: true,
        }
    }
}

/// Why the engine could not execute a block (nothing was written).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError<E: std::error::Error + Send + Sync + 'static> {
    /// A read failed or an invariant broke.
    #[error(transparent)]
    State(#[from] StateError<E>),
    /// A panic inside the engine or the chain's rules was contained.
    #[error("block execution panicked: {message}")]
    Panicked {
        /// The panic's message.
        message: String,
    },
}

/// The pool could not be built.
#[derive(Debug, thiserror::Error)]
#[error("thread pool: {0}")]
pub struct PoolError(#[source] pub rayon::ThreadPoolBuildError);

/// Where an executor runs its jobs.
enum Pool {
    /// Its own pool.
    Own(rayon::ThreadPool),
    /// A pool the caller shares with it.
    Shared(Arc<rayon::ThreadPool>),
    /// Whatever pool the calling thread is in (the global one outside any).
    Current,
}

impl Pool {
    fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match self {
            Pool::Own(p) => p.install(f),
            Pool::Shared(p) => p.install(f),
            Pool::Current => f(),
        }
    }

    fn spawn(&self, f: impl FnOnce() + Send + 'static) {
        match self {
            Pool::Own(p) => p.spawn(f),
            Pool::Shared(p) => p.spawn(f),
            Pool::Current => rayon::spawn(f),
        }
    }

    fn threads(&self) -> usize {
        match self {
            Pool::Own(p) => p.current_num_threads(),
            Pool::Shared(p) => p.current_num_threads(),
            Pool::Current => rayon::current_num_threads(),
        }
    }
}

/// What a block needs, kept across blocks.
struct Scratch<C: Chain> {
    seq: SeqScratch<C::Key, C::Value>,
    plan: Plan<C::Key, C::Value>,
    graph: Graph,
    outcomes: Outcomes<C::Failure>,
}

impl<C: Chain> Default for Scratch<C> {
    fn default() -> Self {
        Scratch {
            seq: SeqScratch::<C::Key, C::Value>::default(),
            plan: Plan::default(),
            graph: Graph::default(),
            outcomes: Outcomes::default(),
        }
    }
}

/// Executes blocks of chain `C` (see the module docs).
pub struct Executor<C: Chain> {
    /// Where the jobs run.
    pool: Pool,
    /// Settings.
    config: EngineConfig,
    /// Reused allocations; a block running while another holds them gets fresh ones.
    scratch: Mutex<Box<Scratch<C>>>,
}

impl<C: Chain> std::fmt::Debug for Executor<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("threads", &self.threads())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<C: Chain> Executor<C> {
    /// An executor with its own pool of `threads` workers (at least 1).
    pub fn new(threads: usize, config: EngineConfig) -> Result<Self, PoolError> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|i| format!("tos-exec-{i}"))
            .build()
            .map_err(PoolError)?;
        Ok(Self::with(Pool::Own(pool), config))
    }

    /// An executor on a pool the caller owns (and may use for other work).
    pub fn on_pool(pool: Arc<rayon::ThreadPool>, config: EngineConfig) -> Self {
        Self::with(Pool::Shared(pool), config)
    }

    /// An executor on the pool of whichever thread calls it: the caller's
    /// rayon pool (a rayon-parallel test, say), or the global pool.
    pub fn on_current_pool(config: EngineConfig) -> Self {
        Self::with(Pool::Current, config)
    }

    fn with(pool: Pool, config: EngineConfig) -> Self {
        Executor {
            pool,
            config,
            scratch: Mutex::new(Box::default()),
        }
    }

    /// Worker threads of the pool the executor runs on.
    pub fn threads(&self) -> usize {
        self.pool.threads()
    }

    /// The settings.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The same executor with the speed guards off (every block on the
    /// parallel engine): verify mode's parallel side, tests, fuzzing.
    pub fn always_parallel(mut self) -> Self {
        self.config.guards = false;
        self
    }

    /// Runs `f` on the executor's pool (the chain's own parallel work, such
    /// as checking a block's transactions, on the same workers).
    pub fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        self.pool.install(f)
    }

    /// Runs `f` on the executor's pool in the background (the chain's own
    /// work, such as admitting transactions ahead of their block). A panic
    /// in `f` is caught and logged, never propagated to a worker.
    pub fn spawn(&self, f: impl FnOnce() + Send + 'static) {
        self.pool.spawn(move || {
            if let Err(payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
                log::error!(
                    "background job panicked: {}",
                    panic_message(payload.as_ref())
                );
            }
        });
    }

    /// The policy for a block (`policy.rs`); the executor runs whatever
    /// block it is given, so `min_txs_for_parallel` is the caller's.
    fn policy(&self, guards: bool) -> Policy {
        Policy {
            sequential_mode: false,
            min_txs_for_parallel: 0,
            threads: self.threads(),
            guards,
            reads_costly: self.config.costly_reads,
        }
    }

    fn scratch(&self) -> parking_lot::MutexGuard<'_, Box<Scratch<C>>> {
        // A concurrent block on the same executor waits for the scratch: a
        // node runs one block at a time, so this is never contended there.
        self.scratch.lock()
    }

    /// Executes `txs` of `block` on `reader` (the state at the block's
    /// parent) with the path the policy decides. Nothing is written: commit
    /// the returned writes.
    pub fn execute<R, T>(
        &self,
        chain: &C,
        block: &C::Block,
        txs: &[T],
        reader: &R,
    ) -> Result<Executed<C>, EngineError<R::Error>>
    where
        R: Reader<C::Key, C::Value>,
        T: Borrow<C::Tx> + Sync,
    {
        self.execute_with(chain, block, txs, reader, self.config.guards)
    }

    /// [`Self::execute`] with the guards on or off.
    pub fn execute_with<R, T>(
        &self,
        chain: &C,
        block: &C::Block,
        txs: &[T],
        reader: &R,
        guards: bool,
    ) -> Result<Executed<C>, EngineError<R::Error>>
    where
        R: Reader<C::Key, C::Value>,
        T: Borrow<C::Tx> + Sync,
    {
        contain_panics(|| {
            let policy = self.policy(guards);
            // One thread: nothing to overlap, so the calling thread runs
            // the sequential engine, exactly as the sequential path.
            if let Some(reason) = decide(&policy, Facts::Block { txs: txs.len() }) {
                return self.sequential(chain, block, txs, reader, ExecutionPath::InOrder, reason);
            }
            self.pool
                .install(|| self.parallel(chain, block, txs, reader, &policy))
        })
    }

    /// The sequential reference engine, on the calling thread.
    pub fn execute_sequential<R, T>(
        &self,
        chain: &C,
        block: &C::Block,
        txs: &[T],
        reader: &R,
    ) -> Result<Executed<C>, EngineError<R::Error>>
    where
        R: Reader<C::Key, C::Value>,
        T: Borrow<C::Tx> + Sync,
    {
        contain_panics(|| {
            self.sequential(
                chain,
                block,
                txs,
                reader,
                ExecutionPath::Sequential,
                PathReason::SequentialMode,
            )
        })
    }

    fn sequential<R, T>(
        &self,
        chain: &C,
        block: &C::Block,
        txs: &[T],
        reader: &R,
        path: ExecutionPath,
        reason: PathReason,
    ) -> Result<Executed<C>, EngineError<R::Error>>
    where
        R: Reader<C::Key, C::Value>,
        T: Borrow<C::Tx> + Sync,
    {
        let start = Instant::now();
        let mut scratch = self.scratch();
        let mut out = sequential::run(chain, block, txs, reader, &mut scratch.seq, None)?;
        out.stats = EngineStats {
            path,
            reason,
            execute: start.elapsed(),
            ..EngineStats::default()
        };
        Ok(out)
    }

    /// What `txs` offer the parallel engine, measured: each transaction's
    /// execution time in a sequential run (their sum is the work W) and the
    /// cost-weighted critical path C of the dependency graph the parallel
    /// engine would build (after proofs). A benchmark's ideal bound is
    /// `min(threads, W / C)`. Nothing is written.
    pub fn profile<R, T>(
        &self,
        chain: &C,
        block: &C::Block,
        txs: &[T],
        reader: &R,
    ) -> Result<Profile, EngineError<R::Error>>
    where
        R: Reader<C::Key, C::Value>,
        T: Borrow<C::Tx> + Sync,
    {
        contain_panics(|| {
            let mut costs = Vec::with_capacity(txs.len());
            let mut guard = self.scratch();
            let scratch = &mut **guard;
            sequential::run(
                chain,
                block,
                txs,
                reader,
                &mut scratch.seq,
                Some(&mut costs),
            )?;
            self.pool
                .install(|| plan_block(chain, block, txs, reader, scratch))?;
            let seconds: Vec<f64> = costs.iter().map(|d| d.as_secs_f64()).collect();
            let view = scratch.plan.view();
            let weighted = scratch.graph.weighted_critical_path(&view, &seconds);
            drop(view);
            scratch.graph.levels_in_block_order(&scratch.plan);
            scratch.graph.measure();
            Ok(Profile {
                work: costs.iter().sum(),
                critical_path: scratch.graph.critical_path,
                weighted_critical_path: std::time::Duration::from_secs_f64(weighted),
                costs,
            })
        })
    }

    /// Everything after the block-level guard, on a pool thread.
    fn parallel<R, T>(
        &self,
        chain: &C,
        block: &C::Block,
        txs: &[T],
        reader: &R,
        policy: &Policy,
    ) -> Result<Executed<C>, EngineError<R::Error>>
    where
        R: Reader<C::Key, C::Value>,
        T: Borrow<C::Tx> + Sync,
    {
        // Wake every worker now: the plan's first phase needs them all, and
        // a sleeping one takes tens of microseconds to start.
        rayon::spawn_broadcast(|_| {});
        // A sample that already shows no useful parallelism: in order,
        // without paying for a plan.
        if policy.guards {
            let sample = sample_shape(chain, &txs[..txs.len().min(GUARD_SAMPLE)]);
            if let Some(reason) = decide(policy, Facts::Sample(sample)) {
                return self.sequential(chain, block, txs, reader, ExecutionPath::InOrder, reason);
            }
        }
        let n = txs.len();
        let mut guard = self.scratch();
        let scratch = &mut **guard;
        let (prefetch, schedule) = plan_block(chain, block, txs, reader, scratch)?;
        let Scratch {
            plan,
            graph,
            outcomes,
            ..
        } = scratch;

        if self.config.scheduler == Scheduler::Batches {
            graph.levels_in_block_order(plan);
        }
        let view = plan.view();
        let keys = view.keys();
        let decided = decide(policy, Facts::Plan { keys });
        let start = Instant::now();
        outcomes.reset(rayon::current_num_threads());
        let sums = Sums::new(rayon::current_num_threads());
        let block_accesses = chain.block_accesses(block);
        {
            let mut hook = TxView::<C, R::Error>::new(&view, &block_accesses, None, false, &sums);
            chain.begin_block(block, &mut hook)?;
        }
        let run = Run {
            chain,
            block,
            txs,
            plan: &view,
            graph,
            sums: &sums,
            outcomes,
            error: OnceLock::new(),
            failed: AtomicBool::new(false),
        };
        let mut batches = 0;
        match (decided, self.config.scheduler) {
            (Some(_), _) => run.in_order(),
            (None, Scheduler::Graph) => run.graph(),
            (None, Scheduler::Batches) => batches = run.batches(),
        }
        if let Some(e) = run.into_error() {
            return Err(e.into());
        }
        let statuses = outcomes.statuses(n)?;
        // In order on the plan, nothing raised the levels: they stay 0.
        if decided.is_none() {
            graph.measure();
        }
        let totals = sums.totals::<R::Error>(C::SUMS)?;
        {
            let mut hook = TxView::<C, R::Error>::new(&view, &block_accesses, None, false, &sums);
            chain.end_block(block, &totals[..C::SUMS], &mut hook)?;
        }
        let totals = sums.totals::<R::Error>(C::SUMS)?;
        drop(view);
        // Each worker collects its own partition's writes.
        let parts = each_partition(plan.len(), |p| {
            let mut part = plan.part(p);
            part.cells
                .iter_mut()
                .filter_map(|c| c.take_written().map(|v| (c.key.clone(), v)))
                .collect::<Vec<_>>()
        });
        let execute = start.elapsed();
        let (path, reason, parallel_engine) = match decided {
            Some(reason) => (ExecutionPath::InOrder, reason, false),
            None => (ExecutionPath::Parallel, PathReason::Parallel, true),
        };
        Ok(Executed {
            statuses,
            sums: totals[..C::SUMS.min(MAX_SUMS)].to_vec(),
            writes: Writes { parts },
            stats: EngineStats {
                path,
                reason,
                parallel_engine,
                keys,
                edges: graph.edges,
                critical_path: graph.critical_path,
                largest_batch: graph.largest_level,
                batches,
                proven: graph.proven_count,
                prefetch,
                schedule,
                execute,
            },
        })
    }
}

/// The plan of a block (on the current pool: one broadcast per phase, worker
/// `i` on partition `i`): index and prefetch, proofs, links, sweep. Returns
/// the time of the index and prefetch, and of the rest.
fn plan_block<C, R, T>(
    chain: &C,
    block: &C::Block,
    txs: &[T],
    reader: &R,
    scratch: &mut Scratch<C>,
) -> Result<(std::time::Duration, std::time::Duration), EngineError<R::Error>>
where
    C: Chain,
    R: Reader<C::Key, C::Value>,
    T: Borrow<C::Tx> + Sync,
{
    let Scratch { plan, graph, .. } = scratch;
    let parts = rayon::current_num_threads().min(MAX_PARTS);
    let start = Instant::now();
    plan.reset(parts);
    let block_accesses = chain.block_accesses(block);
    let plan = &*plan;
    each_partition(parts, |p| {
        index_partition(
            &mut plan.part(p),
            p,
            parts,
            chain,
            &block_accesses,
            txs,
            reader,
        )
    })
    .into_iter()
    .collect::<Result<(), _>>()?;
    let prefetch = start.elapsed();

    let start = Instant::now();
    graph.reset(txs.len(), parts);
    {
        let view = plan.view();
        if has_groups(&view) {
            let shared = &*graph;
            each_partition(parts, |p| {
                prove_partition::<C, R, T>(shared, &view, p, chain, block, txs)
            })
            .into_iter()
            .collect::<Result<(), _>>()?;
            graph.count_proven();
        }
    }
    {
        let shared = &*graph;
        let edges = each_partition(parts, |p| link_partition(&mut plan.part(p), p, shared));
        graph.edges = edges.into_iter().sum();
    }
    Ok((prefetch, start.elapsed()))
}
/// What a block offers the parallel engine ([`Executor::profile`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    /// Each transaction's execution time in a sequential run.
    pub costs: Vec<std::time::Duration>,
    /// Their sum: the work W.
    pub work: std::time::Duration,
    /// The dependency graph's critical path, in transactions.
    pub critical_path: usize,
    /// Its cost-weighted critical path C.
    pub weighted_critical_path: std::time::Duration,
}

impl Profile {
    /// The ideal speedup at `threads`: `min(threads, W / C)`.
    pub fn ideal(&self, threads: usize) -> f64 {
        let c = self.weighted_critical_path.as_secs_f64();
        if c <= 0.0 {
            return threads as f64;
        }
        (threads as f64).min(self.work.as_secs_f64() / c)
    }
}

/// Runs `f(p)` for every partition `p` of `parts` on the current pool and
/// returns the results in partition order: one job per partition, each
/// claiming the partition of the worker it runs on if still free (worker
/// `i` builds, links and collects partition `i`, whose cells stay in its
/// cache), else the next free one, so a worker still waking up delays
/// nothing: whoever is running takes its share. No job waits for another.
pub(crate) fn each_partition<R: Send>(parts: usize, f: impl Fn(usize) -> R + Sync) -> Vec<R> {
    let claimed: Vec<AtomicBool> = (0..parts).map(|_| AtomicBool::new(false)).collect();
    let results: Vec<Mutex<Option<R>>> = (0..parts).map(|_| Mutex::new(None)).collect();
    let job = || {
        let me = rayon::current_thread_index().unwrap_or(0);
        let first = (0..parts)
            .map(|k| (me + k) % parts)
            .find(|&p| !claimed[p].swap(true, std::sync::atomic::Ordering::Relaxed));
        if let Some(p) = first {
            *results[p].lock() = Some(f(p));
        }
    };
    rayon::scope(|s| {
        for _ in 1..parts {
            s.spawn(|_| job());
        }
        job();
    });
    // Every job claimed a distinct partition: there are as many as partitions.
    results.into_iter().filter_map(Mutex::into_inner).collect()
}

/// Runs `f`, turning a panic (on this thread or in any pool job it waits
/// for) into [`EngineError::Panicked`], so the caller's thread never unwinds.
pub(crate) fn contain_panics<T, E: std::error::Error + Send + Sync + 'static>(
    f: impl FnOnce() -> Result<T, EngineError<E>>,
) -> Result<T, EngineError<E>> {
    // AssertUnwindSafe: on a panic every partial result is dropped, nothing
    // was committed, and the executor's scratch is cleared before its next
    // use, so no invariant a half-run block could break survives it.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        Err(EngineError::Panicked {
            message: panic_message(payload.as_ref()),
        })
    })
}

/// The message of a panic payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with a non-string payload".to_string())
}
