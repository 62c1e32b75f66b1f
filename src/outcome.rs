//! What executing a block returns: per-transaction statuses, totals and stats.

use std::time::Duration;

use crate::error::TxFailure;
use crate::policy::PathReason;
use crate::{Hash, TopoHeight};

/// Status of one transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxStatus {
    /// Applied.
    Ok,
    /// Orphaned: it failed a stateful rule and changed nothing.
    Orphaned(TxFailure),
}

impl TxStatus {
    /// `"ok"` or the SPEC §6 code.
    pub fn code(&self) -> &'static str {
        match self {
            TxStatus::Ok => "ok",
            TxStatus::Orphaned(f) => f.code(),
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

/// Which engine produced the result of a block (see `policy.rs` for why).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ExecutionPath {
    /// The sequential reference engine, on the calling thread (mode
    /// `sequential`, or a block below `min_txs_for_parallel`).
    #[default]
    Sequential,
    /// The parallel executor chose to run the block in order with the
    /// sequential engine (one thread, few keys, serial graph: `reason`).
    InOrder,
    /// The parallel engine (dependency graph or batch scheduler).
    Parallel,
    /// Verify mode: both engines ran; the sequential result was kept.
    Verify,
}

impl ExecutionPath {
    /// The name `replay --stats` prints.
    pub fn name(self) -> &'static str {
        match self {
            ExecutionPath::Sequential => "sequential",
            ExecutionPath::InOrder => "in-order",
            ExecutionPath::Parallel => "parallel",
            ExecutionPath::Verify => "verify",
        }
    }
}

/// Measurements of one block's execution (not part of the result's identity).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlockStats {
    /// Engine whose result was kept.
    pub path: ExecutionPath,
    /// Why (the guard that fired, or [`PathReason::Parallel`]); in verify
    /// mode, the path the parallel side took.
    pub reason: PathReason,
    /// True iff the parallel engine (dependency-graph or batch scheduler)
    /// executed the block in this run; in verify mode, on the parallel side.
    pub parallel_engine: bool,
    /// Barrier-separated batches actually run (batch scheduler only; 0 for
    /// the graph scheduler, the in-order path and sequential execution).
    pub batches: usize,
    /// Transactions in the largest level of the dependency graph (the
    /// largest batch the batch scheduler would run).
    pub largest_batch: usize,
    /// Longest chain of dependent transactions (parallel path; 0 when the
    /// in-order guard ran the block before planning).
    pub critical_path: usize,
    /// Transactions of covered sender chains (parallel path, as above).
    pub covered: usize,
    /// Stateless verification time.
    pub verify: Duration,
    /// Plan time before scheduling: access sets, key ids and the cell
    /// table, plus loading every key on the pool where the storage says the
    /// prefetch pays.
    pub prefetch: Duration,
    /// Coverage and dependency-graph time.
    pub schedule: Duration,
    /// Execution time.
    pub execute: Duration,
    /// Commit time.
    pub commit: Duration,
    /// Differences found in verify mode (0 otherwise).
    pub mismatches: usize,
}

impl BlockStats {
    /// The stats of a block that takes `path` for `reason`, after `verify`
    /// of stateless verification (everything else zero).
    pub fn chosen(path: ExecutionPath, reason: PathReason, verify: Duration) -> Self {
        BlockStats {
            path,
            reason,
            verify,
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
    /// The orphaned transactions: (index, hash, failure).
    pub fn orphaned(&self) -> impl Iterator<Item = (usize, &Hash, &TxFailure)> {
        self.results
            .iter()
            .enumerate()
            .filter_map(|(i, r)| match &r.status {
                TxStatus::Orphaned(f) => Some((i, &r.hash, f)),
                TxStatus::Ok => None,
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
