//! What executing a block returns: per-transaction statuses, totals and stats.

use std::time::Duration;

use crate::chain::error::TxFailure;
use crate::engine::{EngineStats, ExecutionPath, PathReason};
use crate::{Hash, TopoHeight};

/// Status of one transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxStatus {
    /// Applied.
    Ok,
    /// Orphaned: it failed a stateful rule and changed nothing.
    Orphaned(TxFailure),
    /// An invocation that ended with a contract execution code (SPEC §8:
    /// `contract_reverted`, `contract_failed`, `out_of_gas`): its nonce and
    /// fee stay charged (the fee counts in the block's fees), everything
    /// else it did was undone.
    Failed(TxFailure),
}

impl TxStatus {
    /// The status of a transaction that ended with `result`.
    pub fn of(result: Result<(), TxFailure>) -> Self {
        match result {
            Ok(()) => TxStatus::Ok,
            Err(f) if f.keeps_fee() => TxStatus::Failed(f),
            Err(f) => TxStatus::Orphaned(f),
        }
    }
}

impl TxStatus {
    /// `"ok"` or the SPEC §6 code.
    pub fn code(&self) -> &'static str {
        match self {
            TxStatus::Ok => "ok",
            TxStatus::Orphaned(f) | TxStatus::Failed(f) => f.code(),
        }
    }
}

/// One transaction's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxResult {
    /// Transaction hash.
    pub hash: Hash,
    /// Its status.
    pub status: TxStatus,
}

/// Measurements of one block's execution (not part of the result's identity).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlockStats {
    /// Engine whose result was kept.
    pub path: ExecutionPath,
    /// Why (the guard that fired, or [`PathReason::Parallel`]); in verify
    /// mode, the path the parallel side took.
    pub reason: PathReason,
    /// True iff the parallel engine (dependency-graph or batch scheduler,
    /// or its optimistic path) executed the block in this run; in verify
    /// mode, on the parallel side.
    pub parallel_engine: bool,
    /// Transactions the optimistic path speculated (0 off that path).
    pub optimistic: usize,
    /// Speculations the optimistic path validated.
    pub validations: usize,
    /// Transactions the optimistic path executed again (aborts:
    /// incarnations beyond the first).
    pub reexecutions: usize,
    /// Speculations the optimistic path stopped at an estimate (a read of
    /// a key that an earlier declared transaction of the chunk writes);
    /// each is among the `reexecutions`.
    pub estimates: usize,
    /// Open transactions the dependency graph ran by their hints (a block
    /// tried sealed that held; 0 otherwise).
    pub sealed: usize,
    /// The block was tried sealed and did not hold (a transaction escaped
    /// its hints): it ran again as an open block.
    pub escaped: bool,
    /// Distinct keys of the plan (0 when no plan was built).
    pub keys: usize,
    /// Dependency edges of the plan.
    pub edges: usize,
    /// Barrier-separated batches actually run (batch scheduler only).
    pub batches: usize,
    /// Transactions in the largest level of the dependency graph.
    pub largest_batch: usize,
    /// Longest chain of dependent transactions (0 when no plan was built).
    pub critical_path: usize,
    /// Transactions of covered sender chains (0 when no plan was built).
    pub covered: usize,
    /// Hot counters striped per worker (0 when no plan was built).
    pub hot_counters: usize,
    /// Transactions found checked in the verification cache.
    pub cache_hits: usize,
    /// Transactions checked at block time (not in the cache).
    pub cache_misses: usize,
    /// Key reads the chain's tip cache served ([`crate::ExecutionConfig::state_cache`];
    /// the others went to the executed blocks not yet written or the storage).
    pub state_cache_hits: usize,
    /// Stateless verification (cache lookups and fresh checks).
    pub verify: Duration,
    /// The plan phase, wall time (key table, prefetch, proofs, graph; on
    /// the optimistic path, and for a block run in order whose keys the
    /// pool read, the preload).
    pub plan: Duration,
    /// Within the plan, summed over its partitions: the key table and the
    /// loading of every key (the prefetch; on the optimistic path, and for
    /// a block run in order whose keys the pool read, the team's reads,
    /// wall time).
    pub prefetch: Duration,
    /// Within the plan, summed over its partitions: proofs (coverage) and
    /// the dependency graph.
    pub schedule: Duration,
    /// Execution: the reward, every transaction, the fees, the change set.
    pub execute: Duration,
    /// The write of the block, when it was inline (`pipelined` false);
    /// zero for a pipelined block, whose write the committer thread times
    /// ([`crate::Blockchain::commit_time`]).
    pub commit: Duration,
    /// True when the block was handed to the committer thread (the commit
    /// pipeline of [`crate::ExecutionConfig::pipeline`]) instead of
    /// written before `add_new_block` returned.
    pub pipelined: bool,
    /// Time `add_new_block` waited for room in the commit queue (its
    /// back-pressure; zero when not pipelined).
    pub commit_wait: Duration,
    /// Differences found in verify mode (0 otherwise).
    pub mismatches: usize,
}

impl BlockStats {
    /// The node's stats of a block the engine ran as `engine` says.
    pub fn from_engine(engine: &EngineStats) -> Self {
        BlockStats {
            path: engine.path,
            reason: engine.reason,
            parallel_engine: engine.parallel_engine,
            optimistic: engine.optimistic,
            validations: engine.validations,
            reexecutions: engine.reexecutions,
            estimates: engine.estimates,
            sealed: engine.sealed,
            escaped: engine.escaped,
            keys: engine.keys,
            edges: engine.edges,
            batches: engine.batches,
            largest_batch: engine.largest_batch,
            critical_path: engine.critical_path,
            covered: engine.proven,
            hot_counters: engine.hot_counters,
            plan: engine.plan,
            prefetch: engine.prefetch,
            schedule: engine.schedule,
            execute: engine.execute,
            ..BlockStats::default()
        }
    }
}

/// The result of applying a block.
#[derive(Clone, Debug)]
pub struct BlockOutcome {
    /// Topoheight the block produced.
    pub topoheight: TopoHeight,
    /// Block hash.
    pub hash: Hash,
    /// Reward credited to the miner.
    pub reward: u64,
    /// Native fees credited to the miner.
    pub fees: u64,
    /// Native amount burned by the block.
    pub burned: u64,
    /// One result per transaction, in block order.
    pub results: Vec<TxResult>,
    /// Measurements.
    pub stats: BlockStats,
}

impl BlockOutcome {
    /// The orphaned transactions: (index, hash, failure); not the
    /// invocations that failed with an execution code (they were applied:
    /// nonce and fee).
    pub fn orphaned(&self) -> impl Iterator<Item = (usize, &Hash, &TxFailure)> {
        self.results
            .iter()
            .enumerate()
            .filter_map(|(i, r)| match &r.status {
                TxStatus::Orphaned(f) => Some((i, &r.hash, f)),
                TxStatus::Ok | TxStatus::Failed(_) => None,
            })
    }

    /// Number of applied transactions.
    pub fn ok_count(&self) -> usize {
        self.results
            .iter()
            .filter(|r| r.status == TxStatus::Ok)
            .count()
    }

    /// True when both outcomes are the same result (stats excluded).
    pub fn same_result(&self, other: &BlockOutcome) -> bool {
        self.topoheight == other.topoheight
            && self.hash == other.hash
            && self.reward == other.reward
            && self.fees == other.fees
            && self.burned == other.burned
            && self.results == other.results
    }
}
