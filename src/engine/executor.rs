//! [`Executor`]: runs blocks of any chain, with the path `policy.rs`
//! decides, on a rayon pool, its own or the caller's.
//!
//! A parallel block is run by a team (`team.rs`): the calling thread works
//! from the first instant and `threads - 1` helper jobs join it on the
//! pool, through the phases of `phases.rs` (plan, run, writes); the serial
//! steps between them (the guard after the plan, the block's hooks) run on
//! the calling thread. No job is handed to the pool to wait for.
//!
//! Every allocation a block needs (key tables, cells, links, edges,
//! counts, statuses, the sequential overlay) is kept in the executor and
//! reused by the next block. A panic anywhere (a helper's included: the
//! team hands it to the caller) is contained and returned as
//! [`EngineError::Panicked`]; the executor stays usable.

use std::borrow::Borrow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::calibration::{Advice, Calibration, MARGIN};
use super::cells::Sums;
use super::contract::{Accesses, Chain, Reader, StateError, MAX_SUMS};
use super::optimistic::{self, After, SpecScratch};
use super::outcome::{EngineStats, Executed, ExecutionPath, Writes};
use super::phases::{BlockWork, PLAN, RUN, WRITES};
use super::plan::{partitions, sample_shape, Graph, Plan, PlanInput};
use super::policy::{decide, Facts, PathReason, Policy, Shape, GUARD_SAMPLE};
use super::prewake::{Prewake, PREPARE};
use super::run::{BatchPlan, Outcomes, Run, Scheduling};
use super::sealed::{sealable, Backoff, Sealed, SealedTx};
use super::sequential::{self, SeqScratch};
use super::team::{self, Aborted, On};
use super::tx_view::{Resolve, TxView};

/// How the parallel engine orders a block's transactions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Scheduler {
    /// A transaction starts as soon as its dependencies finished (no barriers).
    #[default]
    Graph,
    /// The graph's levels, a barrier between levels.
    Batches,
    /// Every block on the optimistic path (`optimistic.rs`), declared or
    /// not: speculation, then validation in block order (blocks with open
    /// accesses take it whatever the scheduler).
    Optimistic,
}

impl std::str::FromStr for Scheduler {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "graph" => Ok(Scheduler::Graph),
            "batches" => Ok(Scheduler::Batches),
            "optimistic" => Ok(Scheduler::Optimistic),
            other => Err(format!(
                "unknown scheduler `{other}` (graph, batches or optimistic)"
            )),
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
    /// block whose sample is serial is planned, for the parallel prefetch,
    /// and a block the parallel executor runs in order has its keys read
    /// by the pool first (with two or more of its cores free).
    pub costly_reads: bool,
    /// Cores the node keeps busy with other work while blocks execute (a
    /// commit pipeline's writer: `Blockchain` sets 1 when pipelined). With
    /// the guards on, when fewer than two of the pool's cores are left, a
    /// block size's first block runs in order (`PathReason::CoresBusy`)
    /// and the parallel engine must then measure clearly faster to be
    /// taken. Default 0.
    pub reserved_cores: usize,
    /// Whether the optimistic path speculates every transaction of a
    /// chunk, the calling thread's share too, and validates each. Off (the
    /// default), the calling thread executes each chunk's front in block
    /// order on the settled state, which needs no validation and costs what
    /// the sequential engine's step costs, while the helpers speculate the
    /// chunk from its back (`optimistic.rs`). The results are the same
    /// either way; on, every transaction goes through speculation and
    /// validation whatever the helpers' timing (tests and fuzzing of the
    /// validation use it).
    pub speculate_all: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            scheduler: Scheduler::Graph,
            guards: true,
            costly_reads: true,
            reserved_cores: 0,
            speculate_all: false,
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

    /// Where a team's helpers run, with the executor's pre-woken helpers.
    fn on<'p>(&'p self, prewake: &'p Prewake) -> On<'p> {
        match self {
            Pool::Own(p) => On::Pool(p, prewake),
            Pool::Shared(p) => On::Pool(p, prewake),
            Pool::Current => On::Current(prewake),
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
/// Typed by the chain's keys, values and failures only, so that a chain
/// adapter with the same ones (`sealed.rs`) runs on the same allocations.
struct Scratch<K, V, F> {
    seq: SeqScratch<K, V>,
    /// The optimistic path's read and write sets, kept across blocks.
    spec: SpecScratch<K, V>,
    plan: Plan<K, V>,
    graph: Graph,
    outcomes: Outcomes<F>,
    sums: Sums,
    /// The current block's hook accesses (set by `block_work`).
    block_accesses: Accesses<K>,
}

/// The scratch of chain `C`.
type ScratchOf<C> = Scratch<<C as Chain>::Key, <C as Chain>::Value, <C as Chain>::Failure>;

impl<K, V, F> Default for Scratch<K, V, F> {
    fn default() -> Self {
        Scratch {
            seq: SeqScratch::<K, V>::default(),
            spec: SpecScratch::default(),
            plan: Plan::default(),
            graph: Graph::default(),
            outcomes: Outcomes::default(),
            sums: Sums::default(),
            block_accesses: Accesses::default(),
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
    scratch: Mutex<Box<ScratchOf<C>>>,
    /// What this executor measured of its own blocks (guards on only).
    calibration: Calibration,
    /// The same for blocks with open accesses: in order against the
    /// optimistic path (guards on only).
    open_calibration: Calibration,
    /// The same for hinted blocks tried sealed (`sealed.rs`): in order
    /// against the graph (guards on only).
    sealed_calibration: Calibration,
    /// Hinted blocks to run as open blocks before the next sealed attempt,
    /// with the guards off: none at first, then after each void attempt.
    backoff: Backoff,
    /// The same with the guards on: a void attempt skips 16, then 32 ...
    /// 512 hinted blocks (as the optimistic path's probes wait), so a node
    /// whose hints do not hold pays for few attempts.
    guarded_backoff: Backoff,
    /// The machine's cores, read once: `available_parallelism` reads the
    /// cgroup's files (34 µs a call on the reference machine), too slow
    /// for every block.
    cores: usize,
    /// The pool's workers kept awake for a coming block (`prewake.rs`).
    prewake: Arc<Prewake>,
    /// The calling thread's time in the last [`Executor::prepare`] that
    /// woke workers, in nanoseconds, until a measured block takes it
    /// (`take_prepared`); 0 when the last `prepare` woke none. A speed
    /// hint (`Relaxed`): a value charged to the wrong block moves one
    /// measurement, never a result.
    prepared: AtomicU64,
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
            calibration: Calibration::default(),
            open_calibration: Calibration::default(),
            sealed_calibration: Calibration::default(),
            backoff: Backoff::default(),
            guarded_backoff: Backoff::guarded(),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            prewake: Arc::default(),
            prepared: AtomicU64::new(0),
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
        // Real work for the pool: pre-woken helpers (`prepare`) make room.
        self.prewake.release();
        self.pool.install(f)
    }

    /// Runs `f` on the executor's pool in the background (the chain's own
    /// work, such as admitting transactions ahead of their block). A panic
    /// in `f` is caught and logged, never propagated to a worker.
    pub fn spawn(&self, f: impl FnOnce() + Send + 'static) {
        self.prewake.release();
        self.pool.spawn(move || {
            if let Err(payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
                log::error!(
                    "background job panicked: {}",
                    panic_message(payload.as_ref())
                );
            }
        });
    }

    /// A block of `txs` transactions is coming (its transactions are about
    /// to be checked): wakes the pool's workers that would help run it, so
    /// that they are running, not asleep, when its team starts
    /// (`prewake.rs`: a sleeping worker joins 20-100 µs late on the
    /// reference machine, as long as a small block's whole plan). Does
    /// nothing when the block will most likely run in order: one thread,
    /// fewer than two free cores, or, with `guards` on, this executor's
    /// measurements of blocks of that size say so. Only speed depends on
    /// it; the workers stop waiting at the block's start, or after
    /// 500 µs.
    pub fn prepare(&self, txs: usize, guards: bool) {
        let start = Instant::now();
        self.prepared.store(0, Ordering::Relaxed);
        let helpers = self.cores_left().saturating_sub(1);
        if helpers == 0 || txs < 2 {
            return;
        }
        if guards {
            // Declared and open blocks (a hinted block tried sealed is
            // rare, and backs off once its attempts fail).
            let cals = [&self.calibration, &self.open_calibration];
            let ways = cals.map(|c| c.likely_in_order(txs));
            let in_order =
                ways.iter().all(|w| w.unwrap_or(true)) && ways.iter().any(|w| w.is_some());
            if in_order {
                return;
            }
        }
        self.prewake
            .wake(helpers, PREPARE, |job| self.pool.spawn(job));
        // What the wake cost the caller (on the reference machine 20-30
        // µs, the wake-up's system call: 5-9% of a 180-transaction block)
        // is part of what the block costs when it runs on the parallel
        // engine; the block's measurement takes it (`take_prepared`).
        let spent = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.prepared.store(spent, Ordering::Relaxed);
    }

    /// What the last [`Self::prepare`] cost the caller, once: the block it
    /// announced adds it to its measurement (`calibration.rs`), so that the
    /// parallel engine's estimate includes the wake-up it caused (a block
    /// the look-ahead saw in order was not prepared and adds nothing).
    fn take_prepared(&self) -> Duration {
        Duration::from_nanos(self.prepared.swap(0, Ordering::Relaxed))
    }

    /// Where a team runs.
    fn on(&self) -> On<'_> {
        self.pool.on(&self.prewake)
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
            optimistic: self.config.scheduler == Scheduler::Optimistic,
        }
    }

    /// For a block size's first block (nothing measured yet): whether its
    /// first [`GUARD_SAMPLE`] transactions predict the parallel engine no
    /// clearly faster than the in-order one. Their in-order cost is timed
    /// by running them on the sequential engine's scratch overlay (the
    /// result is dropped), their plan's cost by the sample guard's graph
    /// (`shape`, built in `plan`); called after the sample guards passed;
    /// the parallel engine is predicted at (plan + in-order) shared by the
    /// free cores, at most the sample's own parallelism (transactions over
    /// critical path). In order unless that is [`MARGIN`] times faster.
    /// Only speed depends on it; a sample that cannot run (a failed read,
    /// a chain error) predicts nothing.
    fn predicts_in_order<D, R, T>(
        &self,
        chain: &D,
        block: &D::Block,
        txs: &[T],
        reader: &R,
        shape: Shape,
        plan: Duration,
    ) -> bool
    where
        D: Chain<Key = C::Key, Value = C::Value, Failure = C::Failure>,
        R: Reader<C::Key, C::Value>,
        T: Borrow<D::Tx> + Sync,
    {
        if txs.len() < 2 * GUARD_SAMPLE {
            return false;
        }
        let sample = &txs[..GUARD_SAMPLE];
        let start = Instant::now();
        let ran = {
            let mut scratch = self.scratch();
            sequential::run(chain, block, sample, reader, &mut scratch.seq, None).is_ok()
        };
        let in_order = start.elapsed().as_secs_f64();
        if !ran {
            return false;
        }
        let cores = self.cores_left() as f64;
        let parallelism = shape.txs as f64 / shape.critical_path.max(1) as f64;
        let parallel = (plan.as_secs_f64() + in_order) / cores.min(parallelism).max(1.0);
        parallel * MARGIN >= in_order
    }

    /// The sealed attempts' backoff for a block with the guards on or off.
    fn backoff_for(&self, guards: bool) -> &Backoff {
        if guards {
            &self.guarded_backoff
        } else {
            &self.backoff
        }
    }

    /// The pool's cores not kept busy by the node: its threads, at most
    /// the machine's cores, less `reserved_cores`.
    fn cores_left(&self) -> usize {
        self.threads()
            .min(self.cores)
            .saturating_sub(self.config.reserved_cores)
    }

    fn scratch(&self) -> parking_lot::MutexGuard<'_, Box<ScratchOf<C>>> {
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
            let open = txs.iter().any(|tx| chain.accesses(tx.borrow()).is_open());
            // Open transactions hinted: tried sealed (`sealed.rs`),
            // unless the executor is optimistic, or its last sealed
            // attempts did not hold (then the block takes the optimistic
            // path, or in order with the guards on, as an open block).
            let sealed = open
                && self.config.scheduler != Scheduler::Optimistic
                && sealable(chain, txs)
                && self.backoff_for(policy.guards).allows();
            let facts = Facts::Block {
                txs: txs.len(),
                open: open && !sealed,
            };
            if let Some(reason) = decide(&policy, facts) {
                if reason == PathReason::Undeclared {
                    return self.open_block(chain, block, txs, reader);
                }
                return self.in_order(chain, block, txs, reader, reason);
            }
            if sealed {
                return self.sealed_block(chain, block, txs, reader, &policy);
            }
            if open || self.config.scheduler == Scheduler::Optimistic {
                return self.optimistic(chain, block, txs, reader);
            }
            let in_order = |reason| self.in_order(chain, block, txs, reader, reason);
            self.declared(
                &self.calibration,
                chain,
                block,
                txs,
                reader,
                &policy,
                &in_order,
            )
        })
    }

    /// A planned block past the block-level guards: with the guards off,
    /// the parallel engine; on, what this executor measured on blocks of
    /// this size in `cal` (`calibration.rs`), else the static guards; then
    /// measured into `cal`.
    #[allow(clippy::too_many_arguments)]
    fn declared<D, R, T>(
        &self,
        cal: &Calibration,
        chain: &D,
        block: &D::Block,
        txs: &[T],
        reader: &R,
        policy: &Policy,
        in_order: &InOrderWith<'_, D, R::Error>,
    ) -> Result<Executed<D>, EngineError<R::Error>>
    where
        D: Chain<Key = C::Key, Value = C::Value, Failure = C::Failure>,
        R: Reader<C::Key, C::Value>,
        T: Borrow<D::Tx> + Sync,
    {
        if !policy.guards {
            return self.parallel(cal, chain, block, txs, reader, policy, in_order);
        }
        let start = Instant::now();
        let out = match cal.advise(txs.len()) {
            Advice::Static if self.cores_left() < 2 => in_order(PathReason::CoresBusy)?,
            Advice::Static => self.parallel(cal, chain, block, txs, reader, policy, in_order)?,
            Advice::InOrder => in_order(PathReason::Measured)?,
            Advice::Parallel => {
                let unguarded = Policy {
                    guards: false,
                    ..*policy
                };
                self.parallel(cal, chain, block, txs, reader, &unguarded, in_order)?
            }
        };
        let spent = start.elapsed() + self.take_prepared();
        cal.record(txs.len(), !out.stats.parallel_engine, spent);
        Ok(out)
    }

    /// A block whose open transactions carry hints, tried sealed
    /// (`sealed.rs`): on the dependency graph, its open transactions'
    /// hints taken as declarations, guarded and measured like a declared
    /// block (in its own calibration). Kept if it held (no transaction
    /// escaped its declarations, no error); otherwise the block runs again
    /// as an open block, whose result (or error) is the sequential one.
    fn sealed_block<R, T>(
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
        // With fewer than two of the pool's cores left, a guarded block
        // runs in order (`CoresBusy`) unless a probe sends it to the graph:
        // no exploration for a graph that will most likely not run (a probe
        // whose unhinted transactions void it only costs its time).
        let explore = !policy.guards || self.cores_left() >= 2;
        let sealed_txs = SealedTx::block(chain, block, txs, reader, explore);
        let adapter = Sealed::new(chain, block, reader, &sealed_txs);
        // A block the guards run in order runs as it is: in order, an open
        // transaction's keys need no declaration.
        let in_order = |reason| {
            self.in_order(chain, block, txs, reader, reason)
                .map(rechain::<C, Sealed<'_, '_, C, R>>)
        };
        let attempt = self.declared(
            &self.sealed_calibration,
            &adapter,
            block,
            &sealed_txs,
            reader,
            policy,
            &in_order,
        );
        match attempt {
            Ok(out) if !adapter.escaped() => {
                self.backoff_for(policy.guards).held();
                let mut out = rechain::<_, C>(out);
                let private = adapter.private_writes();
                if !private.is_empty() {
                    out.writes.parts.push(private);
                }
                if out.stats.parallel_engine {
                    out.stats.sealed = sealed_txs.iter().filter(|t| t.is_open()).count();
                }
                Ok(out)
            }
            _ => {
                self.backoff_for(policy.guards).escaped();
                let mut out = if policy.guards {
                    self.open_block(chain, block, txs, reader)?
                } else {
                    self.optimistic(chain, block, txs, reader)?
                };
                out.stats.escaped = true;
                Ok(out)
            }
        }
    }

    /// A block with open accesses, guards on: in order
    /// ([`PathReason::Undeclared`]), unless this executor measured its
    /// optimistic path [`MARGIN`] times faster on blocks of this size, or
    /// faster in a duel when closer (`calibration.rs`: the optimistic
    /// path is first probed after 16
    /// such blocks, then after 32, ... 512 while it keeps losing, 16 again
    /// once it wins). On 2 cores it loses (benches/README.md); where it
    /// wins (more cores, costlier contracts), the node takes it. With
    /// fewer than two of the pool's cores left to it (the commit
    /// pipeline's writer holds one), it is not even probed.
    fn open_block<R, T>(
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
        if self.cores_left() < 2 {
            // One core for speculation and validation alike: the
            // optimistic path cannot win; not even probed.
            return self.in_order(chain, block, txs, reader, PathReason::Undeclared);
        }
        let start = Instant::now();
        let out = match self.open_calibration.advise(txs.len()) {
            Advice::Parallel => self.optimistic(chain, block, txs, reader)?,
            advice => {
                if advice == Advice::Static {
                    // In order is the prior: the first probe waits.
                    self.open_calibration.defer_probe(txs.len());
                }
                self.in_order(chain, block, txs, reader, PathReason::Undeclared)?
            }
        };
        let spent = start.elapsed() + self.take_prepared();
        self.open_calibration
            .record(txs.len(), !out.stats.parallel_engine, spent);
        Ok(out)
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

    /// The sequential engine, run by the parallel executor because of
    /// `reason` ([`ExecutionPath::InOrder`]). Where reads are costly
    /// ([`EngineConfig::costly_reads`]) and at least two of the pool's
    /// cores are free, the block's keys are read by the pool's team in
    /// pieces first (the optimistic path's preload, [`After::InOrder`]),
    /// then every transaction runs in order on the calling thread: the
    /// sequential engine's overlay, values and steps, its reads shared.
    fn in_order<D, R, T>(
        &self,
        chain: &D,
        block: &D::Block,
        txs: &[T],
        reader: &R,
        reason: PathReason,
    ) -> Result<Executed<D>, EngineError<R::Error>>
    where
        D: Chain<Key = C::Key, Value = C::Value, Failure = C::Failure>,
        R: Reader<C::Key, C::Value>,
        T: Borrow<D::Tx> + Sync,
    {
        // The caller's `prepare` may have woken helpers for nothing.
        self.prewake.release();
        if !self.config.costly_reads || self.cores_left() < 2 {
            return self.sequential(chain, block, txs, reader, ExecutionPath::InOrder, reason);
        }
        let (mut out, _) = self.on_team(chain, block, txs, reader, After::InOrder)?;
        out.stats.path = ExecutionPath::InOrder;
        out.stats.reason = reason;
        Ok(out)
    }

    /// [`optimistic::run`] led by the calling thread (`team.rs`: no
    /// hand-over of the block to the pool, and helpers that stay between
    /// phases), with the stats its two uses share: the preload as the
    /// plan, the team's reads as the prefetch, the rest as execution.
    fn on_team<D, R, T>(
        &self,
        chain: &D,
        block: &D::Block,
        txs: &[T],
        reader: &R,
        after: After,
    ) -> Result<(Executed<D>, optimistic::Counts), EngineError<R::Error>>
    where
        D: Chain<Key = C::Key, Value = C::Value, Failure = C::Failure>,
        R: Reader<C::Key, C::Value>,
        T: Borrow<D::Tx> + Sync,
    {
        let start = Instant::now();
        let mut guard = self.scratch();
        let scratch = &mut *guard;
        let mut counts = optimistic::Counts::default();
        let mut out = optimistic::run(
            chain,
            block,
            txs,
            reader,
            &mut scratch.seq,
            &mut scratch.spec,
            &mut counts,
            self.on(),
            after,
        )?;
        out.stats = EngineStats {
            plan: counts.preload,
            prefetch: counts.read,
            execute: start.elapsed().saturating_sub(counts.preload),
            ..EngineStats::default()
        };
        Ok((out, counts))
    }

    fn sequential<D, R, T>(
        &self,
        chain: &D,
        block: &D::Block,
        txs: &[T],
        reader: &R,
        path: ExecutionPath,
        reason: PathReason,
    ) -> Result<Executed<D>, EngineError<R::Error>>
    where
        D: Chain<Key = C::Key, Value = C::Value, Failure = C::Failure>,
        R: Reader<C::Key, C::Value>,
        T: Borrow<D::Tx> + Sync,
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

    /// The optimistic path (`optimistic.rs`), on the pool.
    fn optimistic<D, R, T>(
        &self,
        chain: &D,
        block: &D::Block,
        txs: &[T],
        reader: &R,
    ) -> Result<Executed<D>, EngineError<R::Error>>
    where
        D: Chain<Key = C::Key, Value = C::Value, Failure = C::Failure>,
        R: Reader<C::Key, C::Value>,
        T: Borrow<D::Tx> + Sync,
    {
        let after = if self.config.speculate_all {
            After::SpeculateAll
        } else {
            After::Chunks
        };
        let (mut out, counts) = self.on_team(chain, block, txs, reader, after)?;
        out.stats = EngineStats {
            path: ExecutionPath::Optimistic,
            reason: if counts.bounded {
                PathReason::Aborts
            } else {
                PathReason::Parallel
            },
            parallel_engine: true,
            optimistic: counts.speculated,
            validations: counts.validations,
            reexecutions: counts.reexecuted,
            estimates: counts.estimates,
            ..out.stats
        };
        Ok(out)
    }

    /// What `txs` offer the parallel engine, measured: each transaction's
    /// execution time in a sequential run (their sum is the work W) and the
    /// cost-weighted critical path C of the dependency graph the parallel
    /// engine would build (after proofs). A benchmark's ideal bound is
    /// `min(threads, W / C)`. A block with open accesses whose hints let
    /// it be tried sealed (`sealed.rs`) is measured on its sealed graph
    /// (the bound of a sealed attempt that holds); any other block with
    /// open accesses has its graph known only by running it: its C is W.
    /// Nothing is written.
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
            let work = costs.iter().sum();
            if txs.iter().any(|tx| chain.accesses(tx.borrow()).is_open()) {
                if !sealable(chain, txs) {
                    // Open accesses: the graph is known only by running the
                    // block (it takes the optimistic path); no bound is
                    // claimed beyond the whole block.
                    return Ok(Profile {
                        work,
                        critical_path: txs.len(),
                        weighted_critical_path: work,
                        costs,
                    });
                }
                let sealed_txs = SealedTx::block(chain, block, txs, reader, true);
                let adapter = Sealed::new(chain, block, reader, &sealed_txs);
                self.plan_only(&adapter, block, &sealed_txs, reader, scratch)?;
            } else {
                self.plan_only(chain, block, txs, reader, scratch)?;
            }
            let seconds: Vec<f64> = costs.iter().map(|d| d.as_secs_f64()).collect();
            let view = scratch.plan.view();
            let weighted = scratch.graph.weighted_critical_path(&view, &seconds);
            scratch.graph.levels_in_block_order(&view);
            drop(view);
            let measured = scratch.graph.measure();
            Ok(Profile {
                work,
                critical_path: measured.critical_path,
                weighted_critical_path: std::time::Duration::from_secs_f64(weighted),
                costs,
            })
        })
    }

    /// Everything after the block-level guard: the sample guard, then the
    /// team (see the module docs).
    #[allow(clippy::too_many_arguments)]
    fn parallel<D, R, T>(
        &self,
        cal: &Calibration,
        chain: &D,
        block: &D::Block,
        txs: &[T],
        reader: &R,
        policy: &Policy,
        in_order: &InOrderWith<'_, D, R::Error>,
    ) -> Result<Executed<D>, EngineError<R::Error>>
    where
        D: Chain<Key = C::Key, Value = C::Value, Failure = C::Failure>,
        R: Reader<C::Key, C::Value>,
        T: Borrow<D::Tx> + Sync,
    {
        // A sample that already shows no useful parallelism: in order,
        // without paying for a plan.
        if policy.guards {
            let start = Instant::now();
            let sample = sample_shape(chain, &txs[..txs.len().min(GUARD_SAMPLE)]);
            // Then, guards on and nothing measured yet (the static way):
            // the prediction; the parallel engine is then probed later.
            let reason = decide(policy, Facts::Sample(sample)).or_else(|| {
                self.predicts_in_order(chain, block, txs, reader, sample, start.elapsed())
                    .then(|| {
                        cal.defer_probe(txs.len());
                        PathReason::Predicted
                    })
            });
            if let Some(reason) = reason {
                return in_order(reason);
            }
        }
        let mut guard = self.scratch();
        let participants = self.threads().max(1);
        let mut work = block_work(chain, block, txs, reader, &mut guard, participants, 3);
        let scheduler = self.config.scheduler;
        // Everything, the results included, is gathered inside the team:
        // the helpers' jobs end while the caller still works, so the
        // scope's end does not wait for them.
        let led = team::run(self.on(), participants - 1, &work, |lead| {
            lead_block(lead, &work, policy, scheduler)
        });
        // The run's own error first: the caller only saw that it failed.
        if let Some(e) = work.run.take_error() {
            return Err(e.into());
        }
        match led {
            Ok(executed) => Ok(executed),
            Err(Led::Aborted(Aborted)) => Err(EngineError::State(StateError::Invariant(
                "a participant of the team stopped",
            ))),
            Err(Led::Failed(e)) => Err(e.into()),
        }
    }

    /// The plan alone, by a team (for [`Self::profile`]).
    fn plan_only<D, R, T>(
        &self,
        chain: &D,
        block: &D::Block,
        txs: &[T],
        reader: &R,
        scratch: &mut ScratchOf<C>,
    ) -> Result<(), EngineError<R::Error>>
    where
        D: Chain<Key = C::Key, Value = C::Value, Failure = C::Failure>,
        R: Reader<C::Key, C::Value>,
        T: Borrow<D::Tx> + Sync,
    {
        let participants = self.threads().max(1);
        let mut work = block_work(chain, block, txs, reader, scratch, participants, 1);
        let planned = team::run(self.on(), participants - 1, &work, |lead| lead.phase(PLAN));
        if planned.is_err() {
            return Err(EngineError::State(StateError::Invariant(
                "a participant of the team stopped",
            )));
        }
        match work.run.take_error() {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }
}

/// Resets `scratch` for `txs` and lays out the work of `phases` phases
/// over it (the plan's partitions, the graph, the run's per-participant
/// rows): what the parallel path and the plan-only profile share.
fn block_work<'a, C, R, T>(
    chain: &'a C,
    block: &'a C::Block,
    txs: &'a [T],
    reader: &'a R,
    scratch: &'a mut ScratchOf<C>,
    participants: usize,
    phases: usize,
) -> BlockWork<'a, C, R, T>
where
    C: Chain,
    R: Reader<C::Key, C::Value>,
    T: Borrow<C::Tx> + Sync,
{
    let parts = partitions(participants, txs.len());
    scratch.plan.reset(parts);
    scratch.graph.reset(chain, txs, parts);
    scratch.outcomes.reset(participants);
    scratch.sums.reset(participants);
    scratch.block_accesses = chain.block_accesses(block);
    let Scratch {
        plan,
        graph,
        outcomes,
        sums,
        block_accesses,
        ..
    } = scratch;
    let input = PlanInput {
        chain,
        block,
        block_accesses,
        txs,
        reader,
        graph,
        parts,
        participants,
    };
    let run = Run::new(chain, block, txs, plan, graph, sums, outcomes);
    BlockWork::new(input, plan, run, participants, phases)
}

/// How a path runs a block in order, for a reason (the sequential engine
/// on the block as it is, whatever chain adapter the path runs).
type InOrderWith<'a, D, E> = dyn Fn(PathReason) -> Result<Executed<D>, EngineError<E>> + 'a;

/// A block's result under chain `D`, as chain `C`'s (the same keys,
/// values and failures: `sealed.rs`'s adapter).
fn rechain<D, C>(out: Executed<D>) -> Executed<C>
where
    D: Chain,
    C: Chain<Key = D::Key, Value = D::Value, Failure = D::Failure>,
{
    Executed {
        statuses: out.statuses,
        sums: out.sums,
        writes: out.writes,
        stats: out.stats,
    }
}

/// Why the caller's part stopped.
enum Led<E: std::error::Error + Send + Sync + 'static> {
    Aborted(Aborted),
    Failed(StateError<E>),
}

impl<E: std::error::Error + Send + Sync + 'static> From<Aborted> for Led<E> {
    fn from(a: Aborted) -> Self {
        Led::Aborted(a)
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<StateError<E>> for Led<E> {
    fn from(e: StateError<E>) -> Self {
        Led::Failed(e)
    }
}

/// The caller's part of a parallel block: the phases, the serial steps
/// between them (the post-plan guard and the order, the hooks), and the
/// results.
fn lead_block<C, R, T>(
    lead: &team::Lead<'_, BlockWork<'_, C, R, T>>,
    work: &BlockWork<'_, C, R, T>,
    policy: &Policy,
    scheduler: Scheduler,
) -> Result<Executed<C>, Led<R::Error>>
where
    C: Chain,
    R: Reader<C::Key, C::Value>,
    T: Borrow<C::Tx> + Sync,
{
    let start = Instant::now();
    lead.phase(PLAN)?;
    if work.run.failed() {
        return Err(Led::Failed(StateError::Invariant("plan failed")));
    }
    let plan_time = start.elapsed();
    let start = Instant::now();
    let chain = work.input.chain;
    let block = work.input.block;
    let view = work.plan.view();
    let keys = view.keys();
    let decided = decide(policy, Facts::Plan { keys });
    let order = match (decided, scheduler) {
        (Some(_), _) => Scheduling::InOrder,
        // An optimistic executor sends no block here (`execute_with`).
        (None, Scheduler::Graph | Scheduler::Optimistic) => Scheduling::Graph,
        (None, Scheduler::Batches) => {
            let graph = work.input.graph;
            graph.levels_in_block_order(&view);
            let mut plan = BatchPlan {
                order: Vec::new(),
                starts: Vec::new(),
            };
            graph.batches(&mut plan.order, &mut plan.starts);
            let _ = work.run.batches.set(plan);
            Scheduling::Batches
        }
    };
    work.run.order.store(order as u8, Ordering::Relaxed);
    let sums = work.run.sums;
    {
        let mut hook = TxView::<C, R::Error>::new(
            &view,
            work.input.block_accesses,
            Resolve::Probe,
            false,
            0,
            sums.row(0),
        );
        chain.begin_block(block, &mut hook)?;
    }
    lead.phase(RUN)?;
    if work.run.failed() {
        return Err(Led::Failed(StateError::Invariant("run failed")));
    }
    let totals = sums.totals::<R::Error>(C::SUMS)?;
    {
        let mut hook = TxView::<C, R::Error>::new(
            &view,
            work.input.block_accesses,
            Resolve::Probe,
            false,
            0,
            sums.row(0),
        );
        chain.end_block(block, &totals[..C::SUMS], &mut hook)?;
    }
    let totals = sums.totals::<R::Error>(C::SUMS)?;
    drop(view);
    lead.phase(WRITES)?;
    if work.run.failed() {
        return Err(Led::Failed(StateError::Invariant("writes failed")));
    }
    let writes = work.take_writes();
    let statuses = work.run.outcomes.statuses(work.input.txs.len())?;
    let execute = start.elapsed();
    let batches = work
        .run
        .batches
        .get()
        .map_or(0, |b| b.starts.len().saturating_sub(1));
    // In order on the plan, nothing raised the levels: they stay 0.
    let measured = work.input.graph.measure();
    let (prefetch, schedule, hot_counters) = work
        .plan
        .view()
        .parts()
        .fold((Duration::ZERO, Duration::ZERO, 0), |(i, g, h), p| {
            (i + p.index_time, g + p.graph_time, h + p.hot_counters())
        });
    let (path, reason, parallel_engine) = match decided {
        Some(reason) => (ExecutionPath::InOrder, reason, false),
        None => (ExecutionPath::Parallel, PathReason::Parallel, true),
    };
    Ok(Executed {
        statuses,
        sums: totals[..C::SUMS.min(MAX_SUMS)].to_vec(),
        writes: Writes { parts: writes },
        stats: EngineStats {
            path,
            reason,
            parallel_engine,
            keys,
            edges: work.edges(),
            critical_path: measured.critical_path,
            largest_batch: measured.largest_level,
            batches,
            proven: measured.proven,
            hot_counters,
            plan: plan_time,
            prefetch,
            schedule,
            execute,
            optimistic: 0,
            validations: 0,
            reexecutions: 0,
            estimates: 0,
            sealed: 0,
            escaped: false,
        },
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::SpecChain;

    fn executor(threads: usize) -> Executor<SpecChain> {
        Executor::new(threads, EngineConfig::default()).expect("pool")
    }

    #[test]
    fn a_prepare_that_woke_workers_is_charged_to_one_block() {
        let ex = executor(2);
        ex.prepare(1000, false);
        if ex.cores_left() < 2 {
            // A one-core machine: nobody was woken, nothing to charge.
            assert_eq!(ex.take_prepared(), Duration::ZERO);
            return;
        }
        // The wake's system call took the caller some time, which the
        // next measured block takes, once.
        assert!(ex.take_prepared() > Duration::ZERO);
        assert_eq!(ex.take_prepared(), Duration::ZERO, "charged twice");
        // A prepare that wakes nobody (one transaction) clears a charge
        // left by a block that never ran (its check failed, say).
        ex.prepare(1000, false);
        ex.prepare(1, false);
        assert_eq!(ex.take_prepared(), Duration::ZERO, "a stale wake charged");
    }

    #[test]
    fn a_prepare_on_one_thread_charges_nothing() {
        let ex = executor(1);
        ex.prepare(1000, false);
        assert_eq!(ex.take_prepared(), Duration::ZERO);
    }
}
