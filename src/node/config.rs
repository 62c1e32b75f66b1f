//! Execution configuration: which path runs a block.

use crate::engine::Scheduler;

/// How blocks are executed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ExecutionMode {
    /// The sequential reference executor only.
    #[default]
    Sequential,
    /// The parallel executor (blocks below `min_txs_for_parallel` run sequentially).
    Parallel,
    /// Shadow mode: run both on the same pre-state, commit the sequential
    /// result, log and count every difference.
    Verify,
}

impl std::str::FromStr for ExecutionMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sequential" => Ok(ExecutionMode::Sequential),
            "parallel" => Ok(ExecutionMode::Parallel),
            "verify" => Ok(ExecutionMode::Verify),
            other => Err(format!(
                "unknown mode `{other}` (expected sequential, parallel or verify)"
            )),
        }
    }
}

/// Configuration of a [`crate::Blockchain`]'s executor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExecutionConfig {
    /// Which path runs blocks.
    pub mode: ExecutionMode,
    /// Blocks with fewer transactions run sequentially even in parallel mode.
    pub min_txs_for_parallel: usize,
    /// Worker threads of the parallel executor (0: the machine's parallelism).
    pub threads: usize,
    /// How the parallel executor orders transactions.
    pub scheduler: Scheduler,
    /// Whether the parallel executor may run a block without useful
    /// parallelism in order (the speed guards of `policy.rs`; default on).
    /// Off, every block at or above `min_txs_for_parallel` runs on the
    /// parallel engine: for tests. Verify mode always runs its parallel
    /// side with the guards off.
    pub guards: bool,
    /// Whether the storage's reads are costly (a database on disk: then even
    /// a block whose first transactions are serial is planned, for the
    /// parallel prefetch, and a block run in order has its keys read by the
    /// pool first when two of its cores are free); default on, off for
    /// in-memory stores.
    pub costly_reads: bool,
    /// Entries of the verification cache (`Blockchain::admit`); 0 keeps none.
    pub cache_capacity: usize,
    /// Whether blocks are written by a committer thread while the next ones
    /// execute (default on). On, `add_new_block` returns once the block is
    /// executed and queued: later blocks, reads through the chain and
    /// verify mode see it at once, the storage holds it once written
    /// (`Blockchain::flush`, `persisted_topoheight`). Off, each block is
    /// written before `add_new_block` returns.
    pub pipeline: bool,
    /// Blocks that may wait for their write at once when pipelined (at
    /// least 1; default 2): `add_new_block` waits for room beyond it, so
    /// memory holds at most this many change sets.
    pub pipeline_depth: usize,
    /// Whether admission hints an invocation (default on): `admit` and
    /// `admit_in_background` run its contract on the state at the tip and
    /// keep the keys it touched with it ([`crate::pipeline::hint`]), so
    /// that its block reads them before it runs, in one batch. Costs one
    /// contract run per admitted invocation; never changes a result.
    pub hints: bool,
    /// The engine's [`EngineConfig::speculate_all`](crate::engine::EngineConfig::speculate_all)
    /// (default off): the optimistic path speculates and validates every
    /// transaction, the calling thread's share too. Results are the same;
    /// for tests of the validation, or a verify-mode node that wants every
    /// speculation checked.
    pub speculate_all: bool,
    /// Entries of the tip cache (default 262,144; 0 turns it off; a
    /// 104-byte table slot per entry, with up to twice as many slots as
    /// entries: 27-55 MB at the default, plus the values of records, which
    /// it shares): the latest values of recently used keys at the chain's top,
    /// kept from block to block and updated with each block's writes, so
    /// that the next block reads them from memory instead of the storage
    /// (a node's storage clones start with empty caches, cleared by every
    /// commit). Worth it on a database; on an in-memory store it only
    /// adds a copy. Never changes a result.
    pub state_cache: usize,
}

impl Default for ExecutionConfig {
    fn default() -> Self {
        ExecutionConfig {
            mode: ExecutionMode::Sequential,
            min_txs_for_parallel: 20,
            threads: 0,
            scheduler: Scheduler::Graph,
            guards: true,
            costly_reads: true,
            cache_capacity: 100_000,
            pipeline: true,
            pipeline_depth: 2,
            hints: true,
            speculate_all: false,
            state_cache: 262_144,
        }
    }
}

impl ExecutionConfig {
    /// The thread count actually used (resolves 0 to the machine's parallelism).
    pub fn effective_threads(&self) -> usize {
        if self.threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            self.threads
        }
    }
}
