//! The path policy: the one place that decides how a block runs.
//!
//! Every block is executed by one of two engines: the sequential reference
//! engine (`sequential.rs`) or the parallel engine (plan, dependency graph
//! and scheduler: `plan.rs`, `run.rs`), which may also run a block in
//! order on its plan. Choosing either for a block is only ever a speed
//! decision: every path gives the same result. [`decide`] is called up to three times per block, each time with
//! more facts ([`Facts`]), and answers either "stop here, in order, for this
//! reason" or "go on". The guards, in the order they are consulted:
//!
//! | stage | guard | reason | why (measured, benches/README.md) |
//! |---|---|---|---|
//! | block | mode `sequential` | [`PathReason::SequentialMode`] | the node asked for it |
//! | block | fewer than `min_txs_for_parallel` transactions | [`PathReason::SmallBlock`] | a pool hand-off costs more than a small block's execution (default 20) |
//! | block | one worker thread | [`PathReason::OneThread`] | nothing can overlap; the calling thread verifies and runs the sequential engine (a one-thread pool measured 4-12% slower) |
//! | block | a transaction with open accesses (scheduler not `Optimistic`) | [`PathReason::Undeclared`] | the optimistic path, the only parallel road for such a block, measured slower than the sequential engine (`token` 0.64x at 2 threads: benches/README.md); with the guards on the executor probes it on its own open blocks and takes it once measured 1.25x faster, or 1.05x in a duel of alternating blocks (`Executor::open_block`) |
//! | sample (first 64 txs) | fewer than 8 distinct keys per thread, or fewer than 1.5 per transaction ([`MIN_KEYS_PER_TX_TENTHS`]) | [`PathReason::FewKeys`] | a small state is hot and cheap to execute, and its transactions contend: the plan costs more than it saves (`uniform` over 10 and 30 accounts: 0.51x and 0.46x on the parallel engine) |
//! | sample | critical path over 90% of the sample, where reads are cheap | [`PathReason::SerialGraph`] | a serial block gains nothing from a plan; on RocksDB the batched prefetch still pays (`chain`: 1.76x execute phase), so there it goes on |
//! | plan (whole block) | fewer than 8 distinct keys per thread | [`PathReason::FewKeys`] | as above; the block then runs in order on the plan's cells (already loaded) |
//!
//! A block holding a transaction with open accesses, past the block-level
//! guards, takes the optimistic path (`optimistic.rs`): the sample and
//! plan guards count declared keys, which such a block does not have all
//! of. Its own bound (a chunk that mostly aborts: the rest in order) is
//! reported as [`PathReason::Aborts`].
//!
//! With the guards on, past the block-level guards, the executor's own
//! measurements (`calibration.rs`) take over from the sample and plan
//! guards once it has timed both ways on blocks of the block's size: the
//! way measured faster runs ([`PathReason::Measured`] when it is in
//! order), the other is probed again after 16 blocks, then 32, ... 512
//! while it keeps losing; when a probe finds the two closer than its
//! margin can tell, a duel (two blocks of each way in turn, four rounds)
//! picks the faster. The static guards below are the prior: they
//! decide each size class's first block, after two more checks of the
//! executor's: when the node keeps a core busy (the commit pipeline's
//! writer) and fewer than two of the pool's are left, the first block runs
//! in order ([`PathReason::CoresBusy`]); when the block's first 64
//! transactions, timed in order and planned, predict the parallel engine
//! not 1.25x faster, it runs in order and the parallel engine is first
//! probed 16 blocks later ([`PathReason::Predicted`]).
//!
//! After the plan, the graph's critical path is not known yet: the engine
//! finds the levels while the transactions run (`run.rs`), and a serial
//! graph costs the graph scheduler little (each transaction releases the
//! next inline, on one worker).
//! | - | none fired | [`PathReason::Parallel`] | the parallel engine runs the block |
//!
//! With the guards off ([`Policy::guards`] false: verify mode's parallel
//! side, `ParallelExecutor::always_parallel`, the tests and the fuzz
//! targets) only the mode and `min_txs_for_parallel` are consulted, so the
//! parallel engine runs every block at or above `min_txs_for_parallel`,
//! even on one thread.

/// Why a block took the path it took (reported in `BlockStats::reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum PathReason {
    /// The execution mode is `sequential`.
    #[default]
    SequentialMode,
    /// The block has fewer transactions than `min_txs_for_parallel`.
    SmallBlock,
    /// The parallel executor has a single worker thread.
    OneThread,
    /// The block (or its first transactions) names too few distinct keys
    /// per worker thread.
    FewKeys,
    /// The dependency graph of the block (or of its first transactions) is
    /// nearly serial: its critical path is over 90% of its transactions.
    SerialGraph,
    /// No guard fired: the parallel engine ran the block.
    Parallel,
    /// The executor measured, on its recent blocks of this size, the
    /// sequential engine faster than the parallel engine
    /// (`calibration.rs`): in order. (When it measured the parallel engine
    /// faster, the static sample and plan guards are skipped and the
    /// reason is [`PathReason::Parallel`].)
    Measured,
    /// A transaction of the block has open accesses (keys found only by
    /// running it: contract calls), and the guards are on: the block runs
    /// in order, because the optimistic path (the only parallel road for
    /// such a block) measured slower than the sequential engine on every
    /// contract workload on 2 cores (benches/README.md); the executor
    /// takes its optimistic path instead once it measured it 1.25x faster
    /// on its own open blocks of the size (`calibration.rs`: first probed
    /// on a size's 18th open block). With the guards off (verify mode's
    /// parallel side, tests, fuzzing) and under `Scheduler::Optimistic`,
    /// it takes the optimistic path.
    Undeclared,
    /// The node keeps a core busy with other work while blocks execute
    /// (the commit pipeline's writer: `EngineConfig::reserved_cores`), so
    /// fewer than two of the pool's cores are left: the first block of a
    /// size runs in order, and the executor then measures the parallel
    /// engine on the next one and takes it only if clearly faster
    /// (`calibration.rs`). Measured: 20 pipelined RocksDB blocks of 1,000
    /// `uniform` transfers on 2 cores, the parallel engine's loop ran
    /// 0.89x the in-order loop (its extra work took the writer's core).
    CoresBusy,
    /// Nothing measured yet for blocks of this size, and the block's first
    /// transactions, timed in order and planned, predict the parallel
    /// engine no clearly faster (cheap rules: the plan costs as much as
    /// the execution): in order; the executor probes the parallel engine
    /// after 16 blocks of the size (`calibration.rs`).
    Predicted,
    /// The optimistic path re-executed more than half the transactions of
    /// a chunk (they depend on each other: one hot contract), so the rest
    /// of the block ran in order on its overlay, without speculation.
    Aborts,
}

impl PathReason {
    /// The name `replay --stats` prints.
    pub fn name(self) -> &'static str {
        match self {
            PathReason::SequentialMode => "sequential-mode",
            PathReason::SmallBlock => "small-block",
            PathReason::OneThread => "one-thread",
            PathReason::FewKeys => "few-keys",
            PathReason::SerialGraph => "serial-graph",
            PathReason::Parallel => "parallel",
            PathReason::Aborts => "aborts",
            PathReason::Measured => "measured",
            PathReason::Undeclared => "undeclared",
            PathReason::CoresBusy => "cores-busy",
            PathReason::Predicted => "predicted",
        }
    }
}

/// Sample size of the pre-plan guard: the block's first transactions.
pub const GUARD_SAMPLE: usize = 64;

/// Below this many distinct keys per worker thread, a block runs in order.
pub const MIN_KEYS_PER_THREAD: usize = 8;

/// Below this many distinct keys per transaction of the sample (in tenths:
/// 1.5), the block's state is small: hot in the cache, its transactions
/// cheap (0.1 µs each for `uniform` over 10 accounts) and contending, and
/// the plan's per-key cost as large as their execution (`tos-parallel
/// bench --signatures cached`, 1,000-transaction blocks, 2 threads, on the
/// parallel engine: 10 accounts 0.51x, 30 accounts 0.46x, 100 accounts
/// 0.87x, 10,000 accounts 1.58x; the sample of 64 has 0.5, 1.4, 2.8 and 4
/// keys per transaction).
pub const MIN_KEYS_PER_TX_TENTHS: usize = 15;

/// What the policy is configured with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// The node asked for sequential execution only.
    pub sequential_mode: bool,
    /// Blocks with fewer transactions run sequentially.
    pub min_txs_for_parallel: usize,
    /// Worker threads of the parallel executor.
    pub threads: usize,
    /// Whether the speed guards (one thread, few keys, serial graph) apply.
    pub guards: bool,
    /// Whether storage reads are costly enough that planning pays even for
    /// a serial block (the batched prefetch).
    pub reads_costly: bool,
    /// The executor's scheduler is `Optimistic`: blocks with open accesses
    /// take the optimistic path even with the guards on.
    pub optimistic: bool,
}

/// The shape of a dependency graph: of the sample, or of the whole block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Transactions.
    pub txs: usize,
    /// Longest dependency chain, in transactions.
    pub critical_path: usize,
    /// Distinct keys touched.
    pub distinct_keys: usize,
}

/// What is known about a block when [`decide`] is called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Facts {
    /// Before anything ran: the number of transactions, and whether one
    /// of them has open accesses.
    Block {
        /// Transactions in the block.
        txs: usize,
        /// Whether a transaction's accesses are open.
        open: bool,
    },
    /// Before planning: the graph of the block's first [`GUARD_SAMPLE`]
    /// transactions (coverage assumed for every repeated sender).
    Sample(Shape),
    /// After planning: the block's distinct keys.
    Plan {
        /// Distinct keys of the plan.
        keys: usize,
    },
}

/// Decides whether the block stops here and runs in order (`Some(reason)`)
/// or goes on towards the parallel engine (`None`). See the module docs
/// for the table of guards.
pub fn decide(policy: &Policy, facts: Facts) -> Option<PathReason> {
    let serial = |s: &Shape| s.critical_path * 10 > s.txs * 9;
    let few_keys = |s: &Shape| {
        s.distinct_keys < MIN_KEYS_PER_THREAD * policy.threads
            || s.distinct_keys * 10 < s.txs * MIN_KEYS_PER_TX_TENTHS
    };
    match facts {
        Facts::Block { txs, open } => {
            if policy.sequential_mode {
                Some(PathReason::SequentialMode)
            } else if txs < policy.min_txs_for_parallel {
                Some(PathReason::SmallBlock)
            } else if policy.guards && policy.threads <= 1 {
                Some(PathReason::OneThread)
            } else if policy.guards && open && !policy.optimistic {
                Some(PathReason::Undeclared)
            } else {
                None
            }
        }
        _ if !policy.guards => None,
        Facts::Sample(s) if s.txs == 0 => None,
        Facts::Sample(s) if few_keys(&s) => Some(PathReason::FewKeys),
        Facts::Sample(s) if serial(&s) && !policy.reads_costly => Some(PathReason::SerialGraph),
        Facts::Sample(_) => None,
        Facts::Plan { keys } if keys < MIN_KEYS_PER_THREAD * policy.threads => {
            Some(PathReason::FewKeys)
        }
        Facts::Plan { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(guards: bool) -> Policy {
        Policy {
            sequential_mode: false,
            min_txs_for_parallel: 20,
            threads: 2,
            guards,
            reads_costly: false,
            optimistic: false,
        }
    }

    #[test]
    fn every_guard_and_its_reason() {
        let p = policy(true);
        let seq = Policy {
            sequential_mode: true,
            ..p
        };
        assert_eq!(
            decide(
                &seq,
                Facts::Block {
                    txs: 100,
                    open: false
                }
            ),
            Some(PathReason::SequentialMode)
        );
        assert_eq!(
            decide(
                &p,
                Facts::Block {
                    txs: 19,
                    open: false
                }
            ),
            Some(PathReason::SmallBlock)
        );
        assert_eq!(
            decide(
                &p,
                Facts::Block {
                    txs: 20,
                    open: false
                }
            ),
            None
        );
        let one = Policy { threads: 1, ..p };
        assert_eq!(
            decide(
                &one,
                Facts::Block {
                    txs: 20,
                    open: false
                }
            ),
            Some(PathReason::OneThread)
        );
        let shape = |txs, critical_path, distinct_keys| Shape {
            txs,
            critical_path,
            distinct_keys,
        };
        assert_eq!(
            decide(&p, Facts::Sample(shape(8, 2, 15))),
            Some(PathReason::FewKeys)
        );
        assert_eq!(decide(&p, Facts::Sample(shape(8, 2, 16))), None);
        // Fewer than 1.5 keys per transaction: a small, hot state.
        assert_eq!(
            decide(&p, Facts::Sample(shape(64, 2, 95))),
            Some(PathReason::FewKeys)
        );
        assert_eq!(decide(&p, Facts::Sample(shape(64, 2, 96))), None);
        assert_eq!(
            decide(&p, Facts::Sample(shape(64, 60, 200))),
            Some(PathReason::SerialGraph)
        );
        let costly = Policy {
            reads_costly: true,
            ..p
        };
        assert_eq!(decide(&costly, Facts::Sample(shape(64, 60, 200))), None);
        assert_eq!(decide(&p, Facts::Plan { keys: 16 }), None);
        assert_eq!(
            decide(&p, Facts::Plan { keys: 15 }),
            Some(PathReason::FewKeys)
        );
    }

    #[test]
    fn open_blocks_run_in_order_with_the_guards_on_only() {
        let open = Facts::Block {
            txs: 1000,
            open: true,
        };
        assert_eq!(decide(&policy(true), open), Some(PathReason::Undeclared));
        assert_eq!(decide(&policy(false), open), None);
        let optimistic = Policy {
            optimistic: true,
            ..policy(true)
        };
        assert_eq!(decide(&optimistic, open), None);
        // One thread comes first.
        let one = Policy {
            threads: 1,
            ..policy(true)
        };
        assert_eq!(decide(&one, open), Some(PathReason::OneThread));
    }

    #[test]
    fn guards_off_only_mode_and_size_count() {
        let p = Policy {
            threads: 1,
            ..policy(false)
        };
        assert_eq!(
            decide(
                &p,
                Facts::Block {
                    txs: 1,
                    open: false
                }
            ),
            Some(PathReason::SmallBlock)
        );
        assert_eq!(
            decide(
                &p,
                Facts::Block {
                    txs: 20,
                    open: false
                }
            ),
            None
        );
        let tiny = Shape {
            txs: 64,
            critical_path: 64,
            distinct_keys: 1,
        };
        assert_eq!(decide(&p, Facts::Sample(tiny)), None);
        assert_eq!(decide(&p, Facts::Plan { keys: 1 }), None);
    }
}
