//! [`ParallelExecutor`]: verifies and executes a block on a rayon pool.
//!
//! The path of each block (the parallel engine, or the sequential engine
//! in order) is decided by `policy.rs`, which lists every guard.
//!
//! 1. Stateless checks of every transaction run on the pool; the block is
//!    rejected with the first failing index (block order), as sequentially.
//!    A one-thread executor runs everything on the calling thread: the
//!    sequential path's verification and engine.
//! 2. Access sets (`access.rs`, on the pool) and their dense key ids
//!    (`KeyIndex`, the one pass that hashes keys); the shared state gets a
//!    table with a cell per key, loaded on the pool where the storage says
//!    reads are costly (prefetch, `chain_state.rs`); covered sender chains
//!    are found (`coverage.rs`) and the dependency graph is built over the
//!    key ids (`scheduler.rs`).
//! 3. The reward is credited on the calling thread, then the transactions run
//!    against a [`ParallelChainState`] (`chain_state.rs`) through the one rule
//!    engine (`rules.rs`), in one of three ways:
//!    * **graph** (default): a transaction starts as soon as its dependencies
//!      finished, without barriers;
//!    * **batches**: the graph's levels, a barrier between levels;
//!    * **in order**, by the sequential engine (`sequential.rs`), when a
//!      guard of `policy.rs` fires (one thread, too few keys, a serial
//!      graph), before or after the plan.
//!
//! A panic anywhere in a block's execution (a job on the pool included:
//! rayon hands it to the joining thread) is contained by
//! [`ParallelExecutor::execute`] and reported as `BlockError::Panicked`.
//! 4. Fees are credited and the change set is built (`executor.rs`), the same
//!    code the sequential path uses.
//!
//! # Never blocking inside a job
//! In graph mode no job ever waits for another: a job runs a transaction,
//! then decrements the pending counter of each dependent; the job that brings
//! a counter to zero runs that dependent itself (the first one) or spawns it
//! (the others) into the same `rayon::scope`. The only wait is the scope's
//! own completion, on the calling thread, outside the pool's jobs.
//!
//! # Memory ordering
//! `pending[d]` is decremented with `AcqRel` by each dependency of `d` after
//! it finished its writes; the decrement that reaches zero therefore
//! acquires every dependency's writes (a release sequence on one atomic)
//! before `d` runs (`release.rs`, model-checked with loom). That edge is
//! what lets the state's cells use `Relaxed` atomics (`chain_state.rs`
//! gives the argument). Statuses are written once into `OnceLock`s and read after the
//! scope returned (the scope's join happens-after every job).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

use rayon::prelude::*;

use crate::access::{access_set, make_commutative, AccessSet, KeyIndex};
use crate::block::Block;
use crate::chain_state::ParallelChainState;
use crate::config::Scheduler;
use crate::coverage::covered_transactions;
use crate::error::{contain_panics, BlockError, StateError};
use crate::executor::{
    credit_reward, finish_block, timed, verify_block_sequential, ExecutedBlock, PreState,
};
use crate::outcome::{BlockStats, ExecutionPath, TxResult, TxStatus};
use crate::policy::{decide, Facts, PathReason, Policy, Shape, GUARD_SAMPLE};
use crate::release::PendingCounts;
use crate::rules::apply_transaction;
use crate::scheduler::DependencyGraph;
use crate::sequential::execute_sequential_verified;
use crate::validation::{check_stateless, VerifiedTx};
use crate::Storage;

/// Executes blocks on its own rayon thread pool.
pub struct ParallelExecutor {
    /// The pool every phase runs on.
    pool: rayon::ThreadPool,
    /// Number of threads of `pool`.
    threads: usize,
    /// How transactions are ordered.
    scheduler: Scheduler,
    /// Whether blocks without useful parallelism run in order (the default).
    guards: bool,
}

impl std::fmt::Debug for ParallelExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParallelExecutor")
            .field("threads", &self.threads)
            .field("scheduler", &self.scheduler)
            .field("guards", &self.guards)
            .finish()
    }
}

/// What [`ParallelExecutor::plan`] prepares before execution.
pub struct Plan<S: Storage + Clone> {
    /// The block's state: a cell for every key the block touches (loaded
    /// where the storage says the prefetch pays).
    pub state: ParallelChainState<S>,
    /// Transactions of covered sender chains.
    pub covered: Vec<bool>,
    /// The dependency graph.
    pub graph: DependencyGraph,
    /// Time for the access sets, the key index and the cell table (and the
    /// prefetch where it pays).
    pub prefetch: std::time::Duration,
    /// Coverage and graph time.
    pub schedule: std::time::Duration,
}

/// Shared, read-only context of one graph execution.
struct GraphRun<'a, S: Storage + Clone> {
    state: &'a ParallelChainState<S>,
    txs: &'a [VerifiedTx],
    /// Transactions of covered sender chains (`coverage.rs`).
    covered: &'a [bool],
    graph: &'a DependencyGraph,
    pre: &'a PreState,
    /// Unfinished dependencies of each transaction (`release.rs`).
    pending: PendingCounts,
    /// Each transaction's status, set once when it ran.
    statuses: Vec<OnceLock<TxStatus>>,
    /// The first storage failure or broken invariant; set once, stops new work.
    error: OnceLock<StateError>,
    /// `error.get().is_some()`, readable without synchronising on the lock.
    failed: AtomicBool,
}

impl ParallelExecutor {
    /// A pool of `threads` workers (at least 1) using the graph scheduler.
    pub fn new(threads: usize) -> Result<Self, BlockError> {
        Self::with_scheduler(threads, Scheduler::Graph)
    }

    /// A pool of `threads` workers (at least 1) using `scheduler`.
    pub fn with_scheduler(threads: usize, scheduler: Scheduler) -> Result<Self, BlockError> {
        let threads = threads.max(1);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("tos-exec-{i}"))
            .build()
            .map_err(|e| BlockError::ThreadPool(e.to_string()))?;
        Ok(ParallelExecutor {
            pool,
            threads,
            scheduler,
            guards: true,
        })
    }

    /// Turns the in-order guards off: every block runs on the scheduler,
    /// even on one thread or with no useful parallelism. Results are the
    /// same; this is for testing and measuring the parallel machinery itself.
    pub fn always_parallel(mut self) -> Self {
        self.guards = false;
        self
    }

    /// Whether the speed guards of `policy.rs` apply (off after
    /// [`Self::always_parallel`]).
    pub fn guards(&self) -> bool {
        self.guards
    }

    /// Worker threads.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The scheduler.
    pub fn scheduler(&self) -> Scheduler {
        self.scheduler
    }

    /// Stateless checks of the whole block on the pool; the error names the
    /// first failing index, exactly as [`crate::executor::verify_block_sequential`].
    pub fn verify_block(
        &self,
        block: &Block,
        pre: &PreState,
    ) -> Result<Vec<VerifiedTx>, BlockError> {
        let parent = pre.ctx.parent_topoheight;
        let checked: Vec<_> = self.pool.install(|| {
            block
                .txs()
                .par_iter()
                .zip(block.tx_hashes().par_iter())
                .map(|(bytes, hash)| check_stateless(bytes.clone(), *hash, parent))
                .collect()
        });
        checked
            .into_iter()
            .enumerate()
            .map(|(index, r)| {
                r.map_err(|error| BlockError::InvalidTransaction {
                    topoheight: pre.topoheight(),
                    index,
                    error,
                })
            })
            .collect()
    }

    /// Executes `block` on `storage` (a clone the executor owns) at `pre`.
    /// Nothing is written; commit the returned change set. The path is
    /// decided by `policy.rs` (guards on unless [`Self::always_parallel`]).
    /// A panic inside the executor (a bug) is contained and reported as
    /// [`BlockError::Panicked`].
    pub fn execute<S: Storage + Clone>(
        &self,
        storage: S,
        block: &Block,
        pre: &PreState,
    ) -> Result<ExecutedBlock, BlockError> {
        self.execute_with(storage, block, pre, self.guards)
    }

    /// [`Self::execute`] with the speed guards on or off (verify mode runs
    /// the parallel side with them off, on the same pool).
    pub(crate) fn execute_with<S: Storage + Clone>(
        &self,
        storage: S,
        block: &Block,
        pre: &PreState,
        guards: bool,
    ) -> Result<ExecutedBlock, BlockError> {
        contain_panics(|| {
            let policy = self.policy(guards, storage.prefetch_pays());
            // One thread: nothing to overlap, so the calling thread does it
            // all, exactly as the sequential path.
            if let Some(reason) = decide(
                &policy,
                Facts::Block {
                    txs: block.txs().len(),
                },
            ) {
                let (txs, verify) = timed(|| verify_block_sequential(block, pre));
                let stats = BlockStats::chosen(ExecutionPath::InOrder, reason, verify);
                return execute_sequential_verified(&storage, block, &txs?, pre, stats);
            }
            // The whole block runs inside the pool: the serial steps (key
            // index, graph, change set) run on a worker while the other
            // workers wait for work, instead of on the calling thread
            // competing with them for the cores. Nested `install`s run inline.
            self.pool.install(|| {
                let (txs, verify) = timed(|| self.verify_block(block, pre));
                self.plan_and_run(storage, block, &txs?, pre, verify, &policy)
            })
        })
    }

    /// [`Self::execute`] after verification: `txs` must be what
    /// [`Self::verify_block`] returned for `block` (unchecked). For profiling
    /// the execute phase alone (`examples/execute_only.rs`); not a node API.
    #[doc(hidden)]
    pub fn execute_verified<S: Storage + Clone>(
        &self,
        storage: S,
        block: &Block,
        txs: &[VerifiedTx],
        pre: &PreState,
        verify: std::time::Duration,
    ) -> Result<ExecutedBlock, BlockError> {
        contain_panics(|| {
            let policy = self.policy(self.guards, storage.prefetch_pays());
            if let Some(reason) = decide(&policy, Facts::Block { txs: txs.len() }) {
                let stats = BlockStats::chosen(ExecutionPath::InOrder, reason, verify);
                return execute_sequential_verified(&storage, block, txs, pre, stats);
            }
            // On a pool thread (inline when already on one, as from `execute`).
            self.pool
                .install(|| self.plan_and_run(storage, block, txs, pre, verify, &policy))
        })
    }

    /// The policy of this executor (`policy.rs`); it runs whatever block it
    /// is given, so `min_txs_for_parallel` is the caller's business.
    fn policy(&self, guards: bool, reads_costly: bool) -> Policy {
        Policy {
            sequential_mode: false,
            min_txs_for_parallel: 0,
            threads: self.threads,
            guards,
            reads_costly,
        }
    }

    /// Everything after the block-level guards, on a pool thread.
    fn plan_and_run<S: Storage + Clone>(
        &self,
        storage: S,
        block: &Block,
        txs: &[VerifiedTx],
        pre: &PreState,
        verify: std::time::Duration,
        policy: &Policy,
    ) -> Result<ExecutedBlock, BlockError> {
        // A sample that already shows no useful parallelism: in order, without
        // paying for a plan (which costs more than executing such a block).
        if policy.guards {
            let sample = Self::sample_shape(&txs[..txs.len().min(GUARD_SAMPLE)]);
            if let Some(reason) = decide(policy, Facts::Sample(sample)) {
                let stats = BlockStats::chosen(ExecutionPath::InOrder, reason, verify);
                return execute_sequential_verified(&storage, block, txs, pre, stats);
            }
        }

        let n = txs.len();
        let Plan {
            mut state,
            covered,
            graph,
            prefetch,
            schedule,
        } = self.plan(storage, txs, pre)?;
        let shape = Shape {
            txs: n,
            critical_path: graph.critical_path(),
            distinct_keys: graph.distinct_keys(),
        };
        let planned = |path, reason| BlockStats {
            largest_batch: graph.largest_level(),
            critical_path: graph.critical_path(),
            covered: covered.iter().filter(|c| **c).count(),
            prefetch,
            schedule,
            ..BlockStats::chosen(path, reason, verify)
        };
        // No useful parallelism: the sequential engine, on the clone the
        // prefetch warmed.
        if let Some(reason) = decide(policy, Facts::Graph(shape)) {
            let stats = planned(ExecutionPath::InOrder, reason);
            return execute_sequential_verified(state.storage(), block, txs, pre, stats);
        }

        let (run, execute) = timed(|| -> Result<_, BlockError> {
            let reward = credit_reward(&mut state, block, pre)?;
            let statuses = match self.scheduler {
                Scheduler::Graph => self.run_graph(&state, txs, &covered, &graph, pre)?,
                Scheduler::Batches => self.run_batches(&state, txs, &covered, &graph, pre)?,
            };
            // The per-worker fee and burn sums overflow only if the totals do.
            state.check_totals()?;
            Ok((reward, statuses))
        });
        let (reward, statuses) = run?;
        let results = txs
            .iter()
            .zip(statuses)
            .map(|(vtx, status)| TxResult {
                hash: vtx.hash,
                status,
            })
            .collect();
        let stats = BlockStats {
            parallel_engine: true,
            batches: if self.scheduler == Scheduler::Batches {
                graph.critical_path()
            } else {
                0
            },
            execute,
            ..planned(ExecutionPath::Parallel, PathReason::Parallel)
        };
        finish_block(state, block, pre, reward, results, stats)
    }

    /// The graph of a sample (the block's first transactions), before any
    /// plan. Coverage is unknown yet, so it assumes the best: a sender with
    /// several transactions in the sample might be covered, and its own
    /// accesses are taken as commutative. What remains serial in the sample
    /// (chains through balances, a handful of keys) is serial in the block.
    fn sample_shape(sample: &[VerifiedTx]) -> Shape {
        let mut senders: Vec<&crate::PublicKey> = sample.iter().map(|v| &v.tx.source).collect();
        senders.sort_unstable();
        let repeated = |k: &crate::PublicKey| {
            let i = senders.partition_point(|s| *s < k);
            senders.get(i + 1) == Some(&k)
        };
        let access: Vec<AccessSet> = sample
            .iter()
            .map(|vtx| {
                let mut set = access_set(vtx);
                if repeated(&vtx.tx.source) {
                    make_commutative(&mut set, &vtx.tx.source);
                }
                set
            })
            .collect();
        let index = KeyIndex::build(&access);
        let graph = DependencyGraph::build(&access, &index);
        Shape {
            txs: sample.len(),
            critical_path: graph.critical_path(),
            distinct_keys: graph.distinct_keys(),
        }
    }

    /// Everything before execution: access sets and key ids, a state over
    /// `storage` with a cell per key (prefetched where the storage says it
    /// pays), covered sender chains, the dependency graph.
    pub fn plan<S: Storage + Clone>(
        &self,
        storage: S,
        txs: &[VerifiedTx],
        pre: &PreState,
    ) -> Result<Plan<S>, StateError> {
        let start = Instant::now();
        // Access sets on the pool; key ids in one pass (the only hashing of
        // keys); a cell per key, loaded on the pool where reads are costly.
        let mut access: Vec<AccessSet> = self
            .pool
            .install(|| txs.par_iter().with_min_len(256).map(access_set).collect());
        let index = KeyIndex::build(&access);
        let state =
            ParallelChainState::with_keys(storage, pre.ctx.parent_topoheight, self.threads, index);
        if state.prefetch_pays() {
            self.pool.install(|| state.prefetch())?;
        }
        let prefetch = start.elapsed();
        let start = Instant::now();
        let covered = covered_transactions(txs, &state)?;
        for (i, set) in access.iter_mut().enumerate() {
            if covered[i] {
                make_commutative(set, &txs[i].tx.source);
            }
        }
        let graph = DependencyGraph::build(&access, state.index());
        Ok(Plan {
            state,
            covered,
            graph,
            prefetch,
            schedule: start.elapsed(),
        })
    }

    fn run_one<S: Storage + Clone>(
        state: &ParallelChainState<S>,
        t: usize,
        vtx: &VerifiedTx,
        covered: bool,
        pre: &PreState,
    ) -> Result<TxStatus, StateError> {
        let covered = covered.then_some((vtx.tx.source, vtx.tx.nonce));
        let mut view = state.tx_view(t, covered);
        Ok(match apply_transaction(vtx, &pre.ctx, &mut view)? {
            Ok(()) => TxStatus::Ok,
            Err(f) => TxStatus::Orphaned(f),
        })
    }

    fn run_batches<S: Storage + Clone>(
        &self,
        state: &ParallelChainState<S>,
        txs: &[VerifiedTx],
        covered: &[bool],
        graph: &DependencyGraph,
        pre: &PreState,
    ) -> Result<Vec<TxStatus>, StateError> {
        let mut statuses: Vec<Option<TxStatus>> = vec![None; txs.len()];
        self.pool.install(|| -> Result<(), StateError> {
            for batch in graph.batches() {
                if batch.len() == 1 {
                    let i = batch[0] as usize;
                    statuses[i] = Some(Self::run_one(state, i, &txs[i], covered[i], pre)?);
                    continue;
                }
                let out: Vec<Result<TxStatus, StateError>> = batch
                    .par_iter()
                    .map(|&i| {
                        let i = i as usize;
                        Self::run_one(state, i, &txs[i], covered[i], pre)
                    })
                    .collect();
                for (&i, r) in batch.iter().zip(out) {
                    statuses[i as usize] = Some(r?);
                }
            }
            Ok(())
        })?;
        // Every index is in exactly one batch, so every status is set.
        statuses
            .into_iter()
            .map(|s| s.ok_or(StateError::Internal("a transaction was not scheduled")))
            .collect()
    }

    fn run_graph<S: Storage + Clone>(
        &self,
        state: &ParallelChainState<S>,
        txs: &[VerifiedTx],
        covered: &[bool],
        graph: &DependencyGraph,
        pre: &PreState,
    ) -> Result<Vec<TxStatus>, StateError> {
        let run = GraphRun {
            state,
            txs,
            covered,
            graph,
            pre,
            pending: PendingCounts::new(graph.indegrees()),
            statuses: (0..txs.len()).map(|_| OnceLock::new()).collect(),
            error: OnceLock::new(),
            failed: AtomicBool::new(false),
        };
        let roots: Vec<u32> = graph
            .indegrees()
            .iter()
            .enumerate()
            .filter(|(_, &d)| d == 0)
            .map(|(i, _)| i as u32)
            .collect();
        self.pool.scope(|scope| {
            let run = &run;
            roots
                .par_iter()
                .with_min_len(16)
                .for_each(|&i| run.run_from(scope, i));
        });
        let GraphRun {
            statuses, error, ..
        } = run;
        if let Some(e) = error.into_inner() {
            return Err(e);
        }
        statuses
            .into_iter()
            .map(|s| {
                s.into_inner()
                    .ok_or(StateError::Internal("a transaction was never released"))
            })
            .collect()
    }
}

impl<'a, S: Storage + Clone> GraphRun<'a, S> {
    /// Runs transaction `i`, then every dependent it releases: the first
    /// inline (a chain of dependencies costs no spawn), the others spawned.
    fn run_from<'s>(&'s self, scope: &rayon::Scope<'s>, i: u32)
    where
        'a: 's,
    {
        let mut next = Some(i);
        while let Some(i) = next.take() {
            if self.failed.load(Ordering::Relaxed) {
                return;
            }
            let k = i as usize;
            let status =
                ParallelExecutor::run_one(self.state, k, &self.txs[k], self.covered[k], self.pre);
            match status {
                Ok(status) => {
                    // Set exactly once: `i` is released exactly once.
                    let _ = self.statuses[i as usize].set(status);
                }
                Err(e) => {
                    let _ = self.error.set(e);
                    self.failed.store(true, Ordering::Relaxed);
                    return;
                }
            }
            for &d in self.graph.dependents(i) {
                if self.pending.release(d) {
                    if next.is_none() {
                        next = Some(d);
                    } else {
                        scope.spawn(move |scope| self.run_from(scope, d));
                    }
                }
            }
        }
    }
}
