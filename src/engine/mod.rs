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
//!    sample of its first transactions and then its plan, whether the
//!    block runs in order (and why) or on the parallel engine; with the
//!    guards on, once the executor has measured both ways on blocks of the
//!    block's size (`calibration.rs`), the faster way runs instead, the
//!    other re-probed now and then.
//! 3. **Team** (`team.rs`): the calling thread works from the first instant
//!    and `threads - 1` helper jobs on the pool join it; every phase hands
//!    out its work in claimed pieces, so a helper that wakes late delays
//!    nothing, and every wait is bounded by work in progress on a running
//!    thread. The phases and what runs between them: `phases.rs`. A node
//!    about to check a block may wake the helpers' workers first
//!    (`Executor::prepare`, `prewake.rs`: a sleeping worker joins 20-100 µs
//!    late on a VM).
//! 4. **Plan** (`plan.rs`), one pass per key partition (keys grouped by
//!    [`Key::affinity`]: a SPEC account's keys together): the partition's
//!    key table and each access's cell (`cells.rs`), the block-start values
//!    in one batched read (the prefetch), the chain's proofs that groups of
//!    transactions commute on the block-start state (the SPEC chain's
//!    covered sender chains), and the dependency graph (per key, each
//!    access depends on the previous group of conflicting accesses) as
//!    lock-free lists of dependents and pending counts. Counters enough
//!    transactions add to are *striped*: each participant adds to its own
//!    stripe, folded when read.
//! 5. **Run** (`run.rs`): the block's begin hook, then the transactions as
//!    soon as their dependencies finished (the release protocol is
//!    `release.rs`, model-checked with loom), or batch by batch, or in
//!    order on the plan; each through a view on its own cells
//!    (`tx_view.rs` over `cells.rs`), checked against its declaration.
//!    Then the end hook.
//! 6. **Writes** (`phases.rs`): every written cell, collected per partition
//!    ([`Writes`]).
//!
//! 7. **Optimistic path** (`optimistic.rs`): a block holding a transaction
//!    with open accesses (keys known only by running it: contract calls),
//!    or any block under [`Scheduler::Optimistic`], first reads its
//!    declared and hinted keys in parallel pieces (which is also how a
//!    block the executor runs in order reads them where reads are costly),
//!    then runs in chunks: the calling thread executes each chunk's front
//!    in block order (the sequential engine's step, on a private delta
//!    over the state the previous chunks left) while the helpers
//!    speculate the chunk from its back on that state, recording their
//!    first reads and keeping their writes local; then the front is merged
//!    and, in block order, each speculation is validated (its first reads
//!    equal the current state) and applied, or executed again on the
//!    sequential overlay. Declared transactions are known writers for
//!    the open ones (`known.rs`): a read of a key that one before it in
//!    its chunk writes stops the speculation (an estimate) instead of
//!    guessing.
//!    A block that keeps aborting finishes in order.
//!    The module's docs give the correctness argument. It runs with the
//!    guards off and under `Scheduler::Optimistic`; with the guards on an
//!    open block runs in order (`PathReason::Undeclared`: the optimistic
//!    path measured slower than the sequential engine on 2 cores,
//!    benches/README.md) unless the executor measured it 1.25x
//!    faster on its own open blocks of that size (`calibration.rs`; its
//!    first probe is a size's 18th open block).
//!
//! 8. **Hints** (`hints.rs`): an open transaction may carry keys the node
//!    expects it to touch, learned before the block ([`discover`]: the
//!    transaction run on the tip at admission). Never enforced, they are
//!    read in the block's batch read with the declared keys, so a first
//!    touch finds them loaded; a wrong hint costs one read.
//!
//! 9. **Sealed blocks** (`sealed.rs`): a block whose open transactions
//!    carry hints is first tried on the dependency graph (steps 2 to 6)
//!    with each hint taken as a declaration, through a chain adapter. An
//!    access beyond them is served as the transaction's private key when
//!    no declaration of the block names the key, or voids the attempt;
//!    a void attempt runs the block again as an open block (step 7, or in
//!    order), and the next hinted blocks skip the attempt for a while. A
//!    few open transactions that came without hints are explored on the
//!    block-start state first; a block with many is not tried. The
//!    module's docs give the argument.
//!
//! The sequential reference engine (`sequential.rs`) runs the same rules
//! through a view on a plain overlay, loaded with every declared key in one
//! batch read before the block runs; [`Executor`] (`executor.rs`) runs
//! either, on its own rayon pool or the caller's, reusing every allocation
//! across blocks, and contains panics. Verify mode's comparison is
//! `verify.rs`.

mod cache;
mod calibration;
mod cells;
mod contract;
mod executor;
mod hints;
mod known;
mod optimistic;
mod outcome;
mod phases;
mod plan;
pub mod policy;
mod prewake;
mod release;
mod run;
mod sealed;
mod sequential;
mod spin;
mod team;
mod tx_view;
mod verify;

pub use cache::VerificationCache;
pub use contract::{
    key_hash, Access, Accesses, Chain, Key, Mode, ProofView, Reader, StateError, StateResult,
    Value, View, MAX_HINTS, MAX_SUMS,
};
pub(crate) use executor::panic_message;
pub use executor::{EngineConfig, EngineError, Executor, PoolError, Profile, Scheduler};
pub use hints::discover;
pub use outcome::{EngineStats, Executed, ExecutionPath, Writes};
pub use policy::PathReason;
pub use verify::{compare, Mismatch, MismatchOf};
