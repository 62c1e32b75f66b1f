//! # tos-parallel
//!
//! Executes the transactions of a block in parallel and gets, bit for bit,
//! the state, statuses and rejections of sequential execution. No async
//! runtime: a blocking rayon pool does the work, so the library links into
//! synchronous node code and rayon-parallel tests.
//!
//! ## The boundary: engine and chain
//! * [`engine`] (`src/engine/`) is chain-agnostic. A chain brings its
//!   transaction type, keys, values, rules and storage through a small
//!   contract (`contract.rs`: [`engine::Chain`], [`engine::Reader`],
//!   [`engine::View`]); the engine plans, schedules and runs blocks on a
//!   rayon pool ([`engine::Executor`]), with a sequential reference engine,
//!   a verify mode's comparison and a verification cache. Its crate-level
//!   docs give the algorithm and the file of each step.
//! * [`chain`] (`src/chain/`) is the SPEC chain (`../shared/SPEC.md`), the
//!   engine's reference instantiation: its wire format, checks, rules,
//!   covered-sender proof, blocks, genesis and observable results.
//! * `node/` is the node API for the SPEC chain: [`Blockchain`] (the node
//!   owns its storage in a `RwLock<S>`; the executor works on a cheap
//!   clone; `admit` feeds the verification cache), [`ExecutionConfig`]
//!   (modes sequential, parallel and verify, `min_txs_for_parallel`), the
//!   block pipeline ([`pipeline`]: locate, check, run, commit),
//!   [`BlockOutcome`] with its [`BlockStats`], and the commit pipeline: a
//!   committer thread writes each executed block (`committer.rs`, one
//!   atomic write per block, in order, a bounded queue) while the next
//!   blocks execute on the storage seen through the queued ones
//!   (`overlay.rs`).
//! * Storage (`tos-storage`, re-exported here) is versioned by topoheight:
//!   [`StateRead`] (what execution reads) apart from [`StateWrite`] (init,
//!   commit, rewind), RocksDB and in-memory.
//!
//! A second chain, deliberately different, runs on the same engine in
//! `examples/token_ledger.rs`. The CLI, workload generator, benchmarks and
//! fuzz helpers are the `tos-parallel-tools` crate (`tools/`): none of them
//! is compiled into a node that depends on this library.
//!
//! ## Features
//! * `rocksdb` (default): `RocksStorage`.
//! * `metrics`: every block's stats through the `metrics` facade (`metrics.rs`).
//! * `fault-injection`: test-only hooks (`fault.rs`: corrupt a verify-mode
//!   result, panic in a rule, fail the `n`-th block write); never in a node.
#![deny(missing_docs)]

pub mod chain;
pub mod engine;
#[cfg(feature = "fault-injection")]
pub mod fault;
#[cfg(feature = "metrics")]
pub mod metrics;
mod node;

pub use chain::block::Block;
pub use chain::error::{DecodeError, InitError, InputError, StatelessError, TxFailure};
pub use chain::genesis::{init_genesis, Genesis, GenesisAccount, InitOutcome};
pub use chain::transaction::Transaction;
pub use chain::{SpecChain, VerifiedTx};
pub use engine::{ExecutionPath, PathReason, Scheduler};
pub use node::blockchain::Blockchain;
pub use node::config::{ExecutionConfig, ExecutionMode};
pub use node::error::BlockError;
pub use node::outcome::{BlockOutcome, BlockStats, TxResult, TxStatus};
pub use node::pipeline;
pub use tos_storage::*;
