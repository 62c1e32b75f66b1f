//! # tos-parallel
//!
//! Executes the transactions of a block in parallel and gets, bit for bit,
//! the state, statuses and rejections of sequential execution (the chain's
//! rules are `SPEC.md`). No async runtime: a blocking rayon pool does the work,
//! so the library links into synchronous node code and rayon-parallel tests.
//!
//! ## The algorithm, and where each part lives
//! 1. **Decode and verify** (`transaction.rs`, `validation.rs`): strict
//!    canonical decoding and the SPEC §5 checks in order; any failure rejects
//!    the block with the first failing index. The parallel path runs them on
//!    the pool (`parallel.rs`).
//! 2. **Locate** (`executor.rs`): the block goes on top of the stored state,
//!    or is recognised as already applied (resumed replay), or refused.
//! 3. **Access sets** (`access.rs`): each transaction's keys, derived from
//!    the transaction alone: its source account (nonce, multisig, energy)
//!    and the source's balances of the assets it spends (read-write), and
//!    each destination's balance of the asset it receives (credit). Conflicts
//!    are per (account, asset); credits to one balance commute.
//! 4. **Plan** (`parallel.rs`): a sample of the block's first 64
//!    transactions is checked first; if even it offers no useful
//!    parallelism (too few keys; or, where reads are cheap, a serial
//!    graph), the block runs in order without a plan. Otherwise the
//!    access sets are computed on the pool and their keys get dense ids in
//!    one hashing pass (`KeyIndex`, `access.rs`); the shared state gets a
//!    table with one cell per key, loaded on the pool with batched storage
//!    reads (`Storage::get_batch`) where the storage says reads are costly
//!    (`chain_state.rs`); covered sender chains (a sender whose
//!    transactions provably all succeed in any order) are found
//!    (`coverage.rs`); per-key last-writer tracking over the key ids gives a
//!    dependency graph that keeps every order-sensitive pair in block order,
//!    its levels being the conflict-free batches (`scheduler.rs`).
//! 5. **Execute** (`parallel.rs`, `rules.rs` on `chain_state.rs`): the reward
//!    is credited, then transactions run on the pool as soon as their
//!    dependencies finished (or batch by batch; the lock-free release
//!    protocol is `release.rs`), through the one rule engine against a
//!    [`ParallelChainState`]: lazily loaded per-key cells over a storage
//!    clone read at the parent topoheight (a transaction reaches its cells
//!    through its key ids, without hashing or locking; values are atomics),
//!    a lock-sharded cache for keys outside the plan, and per-worker fee and
//!    burn sums. One thread, or a block whose graph offers no useful
//!    parallelism, runs the sequential engine instead. The sequential
//!    reference (`sequential.rs`) runs the same rule engine over a plain
//!    overlay.
//! 6. **Merge and commit** (`executor.rs`, `blockchain.rs`): fees go to the
//!    miner, the dirty entries become one [`ChangeSet`], committed by the
//!    storage in one atomic write; a failing transaction wrote nothing, so it
//!    is orphaned exactly as the sequential path orphans it.
//! 7. **Modes** (`config.rs`, `shadow.rs`): sequential, parallel, and verify,
//!    which runs both (the parallel side with the speed guards off, so it
//!    always runs the parallel engine), keeps the sequential result and
//!    reports every difference. Blocks below `min_txs_for_parallel` run
//!    sequentially.
//!
//! **Which path a block takes** is decided in one place, `policy.rs`: its
//! docs list every guard (mode, small block, one thread, few keys, serial
//! graph) with its measured justification, and `BlockStats` reports the
//! path, the reason and whether the parallel engine ran.
//!
//! Storage (`tos-storage`, re-exported here) is versioned by topoheight and
//! cheap to clone: the node owns its storage in a `RwLock<S>` inside
//! [`Blockchain`], and the executor works on a clone.
//!
//! Other parts: `block.rs` and `genesis.rs` (SPEC §3 inputs), `outcome.rs`
//! (results and per-block stats: the metrics), `dump.rs` (SPEC §7 JSON),
//! `generator.rs` (deterministic workloads), `bench.rs` (the same-run
//! benchmark; `examples/execute_only.rs` and `examples/verify_scaling.rs`
//! are the profiling and calibration aids), `fuzzing.rs` (checks shared by the fuzz targets and tests),
//! `error.rs` (every error type).
#![deny(missing_docs)]

pub mod access;
#[cfg(feature = "rocksdb")]
pub mod bench;
pub mod block;
pub mod blockchain;
pub mod chain_state;
pub mod config;
pub mod constants;
pub mod coverage;
pub mod dump;
pub mod error;
pub mod executor;
#[cfg(feature = "fault-injection")]
pub mod fault;
#[doc(hidden)]
pub mod fuzzing;
pub mod generator;
pub mod genesis;
pub mod outcome;
pub mod parallel;
pub mod policy;
pub mod release;
pub mod rules;
pub mod scheduler;
pub mod sequential;
pub mod shadow;
pub mod transaction;
pub mod validation;

pub use block::Block;
pub use blockchain::Blockchain;
pub use chain_state::ParallelChainState;
pub use config::{ExecutionConfig, ExecutionMode, Scheduler};
pub use error::{BlockError, DecodeError, InitError, InputError, StatelessError, TxFailure};
pub use genesis::{init_genesis, Genesis, InitOutcome};
pub use outcome::{BlockOutcome, BlockStats, ExecutionPath, TxResult, TxStatus};
pub use parallel::ParallelExecutor;
pub use policy::PathReason;
pub use tos_storage::*;
pub use transaction::Transaction;
