//! What the engine returns for a block: statuses, sums, writes, stats.

use std::time::Duration;

use super::contract::Chain;
use super::policy::PathReason;

/// Which engine produced the result of a block (see `policy.rs` for why).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ExecutionPath {
    /// The sequential reference engine (mode `sequential`, or a block below
    /// `min_txs_for_parallel`).
    #[default]
    Sequential,
    /// The parallel executor chose to run the block in order (one thread,
    /// few keys, serial graph: see the stats' `reason`).
    InOrder,
    /// The parallel engine (dependency graph or batch scheduler).
    Parallel,
    /// The parallel engine's optimistic path (`optimistic.rs`):
    /// speculation in parallel, validation and commit in block order.
    Optimistic,
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
            ExecutionPath::Optimistic => "optimistic",
            ExecutionPath::Verify => "verify",
        }
    }
}

/// How the engine ran a block (measurements; not part of the result).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Engine whose result was kept.
    pub path: ExecutionPath,
    /// Why (the guard that fired, or [`PathReason::Parallel`]); in verify
    /// mode, the path the parallel side took.
    pub reason: PathReason,
    /// True iff the parallel engine (dependency-graph or batch scheduler,
    /// or its optimistic path) executed the block in this run; in verify
    /// mode, on the parallel side.
    pub parallel_engine: bool,
    /// Transactions speculated by the optimistic path (0 off it).
    pub optimistic: usize,
    /// Speculations the optimistic path validated.
    pub validations: usize,
    /// Transactions the optimistic path executed a second time (a failed
    /// validation, or a speculation that met an error): incarnations
    /// beyond the first, i.e. aborts.
    pub reexecutions: usize,
    /// Speculations the optimistic path stopped at an estimate (a first
    /// read of a key that a declared transaction before it in its chunk
    /// writes); each is among the `reexecutions`.
    pub estimates: usize,
    /// Open transactions the dependency graph ran by their hints, in a
    /// block tried sealed that held (`sealed.rs`; 0 otherwise).
    pub sealed: usize,
    /// The block was tried sealed and the attempt did not hold (a
    /// transaction escaped its hints, or an error): it ran again as an
    /// open block, on the path shown.
    pub escaped: bool,
    /// Distinct keys of the plan (0 without a plan).
    pub keys: usize,
    /// Dependency edges of the plan (0 without a plan).
    pub edges: usize,
    /// Longest chain of dependent transactions (0 without a plan).
    pub critical_path: usize,
    /// Transactions in the largest level of the dependency graph (the
    /// largest batch the batch scheduler runs; 0 without a plan).
    pub largest_batch: usize,
    /// Barrier-separated batches actually run (batch scheduler only).
    pub batches: usize,
    /// Transactions whose proof group was proven to commute (covered).
    pub proven: usize,
    /// Hot counters: keys enough transactions add to that each participant
    /// adds to its own stripe of them (`cells.rs`).
    pub hot_counters: usize,
    /// The plan phase, wall time: key table, prefetch, proofs and graph
    /// (one pass per partition, `plan.rs`). On the optimistic path, and
    /// for a block run in order whose keys the pool read: the preload
    /// (keys listed and read, the overlay filled, the begin hook), wall
    /// time.
    pub plan: Duration,
    /// Within the plan, summed over its partitions (CPU time): the key
    /// table, its accesses and the loading of every key's value (the
    /// prefetch). On the optimistic path, and for a block run in order
    /// whose keys the pool read: the team's reads, wall time.
    pub prefetch: Duration,
    /// Within the plan, summed over its partitions (CPU time): proofs and
    /// the dependency graph.
    pub schedule: Duration,
    /// Execution: the block hooks and every transaction, and the change set.
    pub execute: Duration,
}

/// The writes of a block: the final value of every key it wrote, each key
/// once, in parts (one per worker of the parallel engine) and in no
/// particular order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Writes<K, V> {
    /// The parts.
    pub parts: Vec<Vec<(K, V)>>,
}

impl<K: Ord + Clone, V: Clone> Writes<K, V> {
    /// Every write.
    pub fn iter(&self) -> impl Iterator<Item = &(K, V)> {
        self.parts.iter().flatten()
    }

    /// Number of writes.
    pub fn len(&self) -> usize {
        self.parts.iter().map(Vec::len).sum()
    }

    /// True when nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The writes sorted by key (a copy, for comparisons).
    pub fn sorted(&self) -> Vec<(K, V)> {
        let mut all: Vec<(K, V)> = self.iter().cloned().collect();
        all.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        all
    }
}

/// A block executed by the engine (nothing written anywhere yet).
pub struct Executed<C: Chain> {
    /// Each transaction's status, in block order.
    pub statuses: Vec<Result<(), C::Failure>>,
    /// The block sums ([`Chain::SUMS`] of them).
    pub sums: Vec<u64>,
    /// What to commit.
    pub writes: Writes<C::Key, C::Value>,
    /// How it ran.
    pub stats: EngineStats,
}

impl<C: Chain> std::fmt::Debug for Executed<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executed")
            .field("statuses", &self.statuses)
            .field("sums", &self.sums)
            .field("writes", &self.writes.len())
            .field("stats", &self.stats)
            .finish()
    }
}
