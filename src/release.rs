//! The lock-free part of the graph scheduler: dependency release counters.
//!
//! `pending[d]` starts at the number of dependencies of `d`. Each dependency,
//! after it finished all its writes, calls [`PendingCounts::release`]`(d)`,
//! an `AcqRel` decrement. Exactly one caller sees the count go from 1 to 0
//! (a read-modify-write sequence on one atomic is totally ordered) and gets
//! `true`: it alone starts `d`, so `d` runs once. Because every decrement is
//! a release and the last one is also an acquire of the whole release
//! sequence, everything each dependency wrote happens-before `d` starts.
//!
//! The counter type is a parameter so that `tests/loom_release.rs` can run
//! this very code under loom's model checker with loom's atomics.

use std::sync::atomic::{AtomicU32, Ordering};

/// An atomic counter the release protocol can run on.
pub trait Counter {
    /// A counter holding `v`.
    fn new(v: u32) -> Self;
    /// Atomically subtracts `v`, returning the previous value.
    fn fetch_sub(&self, v: u32, order: Ordering) -> u32;
}

impl Counter for AtomicU32 {
    fn new(v: u32) -> Self {
        AtomicU32::new(v)
    }
    fn fetch_sub(&self, v: u32, order: Ordering) -> u32 {
        AtomicU32::fetch_sub(self, v, order)
    }
}

/// Unfinished-dependency counts of a block's transactions.
pub struct PendingCounts<C: Counter = AtomicU32> {
    /// `pending[d]`: dependencies of `d` that have not released it yet.
    pending: Vec<C>,
}

impl<C: Counter> PendingCounts<C> {
    /// Counts from each transaction's number of dependencies.
    pub fn new(indegrees: &[u32]) -> Self {
        PendingCounts {
            pending: indegrees.iter().map(|&d| C::new(d)).collect(),
        }
    }

    /// Called by each dependency of `d` once it finished; `true` for exactly
    /// one caller, the last, which must then run `d`.
    pub fn release(&self, d: u32) -> bool {
        self.pending[d as usize].fetch_sub(1, Ordering::AcqRel) == 1
    }
}
