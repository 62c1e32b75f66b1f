//! The chain-agnostic engine: executes the transactions of a block in
//! parallel and gets, bit for bit, what executing them in block order gets.
//!
//! A chain brings its types and rules through the contract
//! (`contract.rs`: [`Chain`], [`Key`], [`Value`], [`Accesses`], [`View`],
//! [`Reader`]); the engine knows nothing of its transactions, keys or
//! storage. The SPEC chain (`crate::chain`) is its reference instantiation;
//! `examples/token_ledger.rs` is a second, different one.
//!
//! # The algorithm, and where each part lives
//! 1. **Declared accesses** (`contract.rs`): each transaction declares the
//!    keys it touches and how (read, write, commutative add to a counter),
//!    with each key's hash computed once, when the transaction was checked
//!    (at admission: [`VerificationCache`], `cache.rs`).
//! 2. **Path** (`policy.rs`): one function decides, from the block, a
//!    sample of its first transactions and then its graph, whether the
//!    block runs in order (and why) or on the parallel engine.
//! 3. **Plan** (`plan.rs`), in parallel phases, one job per key partition:
//!    a key table with one cell per key (`cells.rs`), loaded with one
//!    batched read per partition (the prefetch); the chain's proofs that
//!    some groups of transactions commute on the block-start state (the
//!    SPEC chain's covered sender chains); the dependency graph (per key,
//!    each access depends on the previous group of conflicting accesses),
//!    as lock-free lists of dependents and pending counts.
//! 4. **Run** (`run.rs`): the block's begin hook, then the transactions on
//!    the pool as soon as their dependencies finished (the release
//!    protocol is `release.rs`, model-checked with loom), or batch by
//!    batch, or in order on the plan when the graph offers no useful
//!    parallelism; each through a view on its own cells (`cells.rs`),
//!    checked against its declaration. Then the end hook.
//! 5. **Writes** (`executor.rs`): every written cell, collected per
//!    partition in parallel ([`Writes`]).
//!
//! The sequential reference engine (`sequential.rs`) runs the same rules
//! through a view on a plain overlay; [`Executor`] (`executor.rs`) runs
//! either, on its own rayon pool or the caller's, reusing every allocation
//! across blocks, and contains panics. Verify mode's comparison is
//! `verify.rs`.

mod cache;
mod cells;
mod contract;
mod executor;
mod outcome;
mod phases;
mod plan;
pub mod policy;
mod release;
mod run;
mod sequential;
mod team;
mod verify;

pub use cache::VerificationCache;
pub use contract::{
    key_hash, Access, Accesses, Chain, Key, Mode, ProofView, Reader, StateError, StateResult,
    Value, View, MAX_SUMS,
};
pub(crate) use executor::panic_message;
pub use executor::{EngineConfig, EngineError, Executor, PoolError, Profile, Scheduler};
pub use outcome::{EngineStats, Executed, ExecutionPath, Writes};
pub use policy::PathReason;
pub use verify::{compare, Mismatch, MismatchOf};
