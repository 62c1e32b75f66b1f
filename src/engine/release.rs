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
//! The counter type is a parameter so that the loom model below can run
//! this very code under loom's model checker with loom's atomics.

use std::sync::atomic::{AtomicU32, Ordering};

/// An atomic counter the release protocol can run on.
pub trait Counter {
    /// A counter holding `v`.
    #[cfg_attr(not(test), allow(dead_code))]
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
    #[cfg_attr(not(test), allow(dead_code))]
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

impl PendingCounts<AtomicU32> {
    /// `n` counts at zero, reusing this allocation (the plan counts each
    /// dependency with [`Self::add`] before anything runs).
    pub(crate) fn reset(&mut self, n: usize) {
        self.pending.truncate(n);
        for p in self.pending.iter_mut() {
            *p.get_mut() = 0;
        }
        self.pending.resize_with(n, || AtomicU32::new(0));
    }

    /// One more dependency of `d` (plan time: the join that ends the plan
    /// orders it before every release).
    pub(crate) fn add(&self, d: u32) {
        self.pending[d as usize].fetch_add(1, Ordering::Relaxed);
    }
}

impl<C: Counter> Default for PendingCounts<C> {
    fn default() -> Self {
        PendingCounts {
            pending: Vec::new(),
        }
    }
}

/// Loom model checks of the release protocol, run on the real
/// `PendingCounts` with loom's atomics: under every interleaving loom
/// explores, each transaction is released exactly once, only after all its
/// dependencies, and sees their writes (a missing happens-before would be
/// reported by loom as a data race on the `UnsafeCell`s).
#[cfg(test)]
mod loom_model {
    use super::{Counter, PendingCounts};
    use loom::cell::UnsafeCell;
    use loom::sync::atomic::AtomicU32;
    use loom::sync::Arc;
    use loom::thread;

    struct LoomCounter(AtomicU32);

    impl Counter for LoomCounter {
        fn new(v: u32) -> Self {
            LoomCounter(AtomicU32::new(v))
        }
        fn fetch_sub(&self, v: u32, order: std::sync::atomic::Ordering) -> u32 {
            self.0.fetch_sub(v, order)
        }
    }

    struct Shared {
        pending: PendingCounts<LoomCounter>,
        /// What each transaction wrote (plain, non-atomic memory).
        data: Vec<UnsafeCell<u64>>,
        /// How many times each transaction ran.
        runs: Vec<loom::sync::atomic::AtomicUsize>,
    }

    // SAFETY: the cells are only touched as the protocol allows; loom checks it.
    unsafe impl Sync for Shared {}

    /// Runs transaction `t`: checks its dependencies' writes, writes its own,
    /// then releases its dependents; returns the dependents it released.
    fn run(shared: &Shared, t: usize, deps: &[usize], dependents: &[u32]) -> Vec<u32> {
        shared.runs[t].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        for &d in deps {
            let v = shared.data[d].with(|p| unsafe { *p });
            assert_eq!(v, d as u64 + 1, "dependency {d} not visible to {t}");
        }
        shared.data[t].with_mut(|p| unsafe { *p = t as u64 + 1 });
        dependents
            .iter()
            .copied()
            .filter(|&d| shared.pending.release(d))
            .collect()
    }

    #[test]
    fn diamond_each_released_once_after_its_dependencies() {
        // 0 and 1 are roots; 2 depends on both; 3 depends on 2.
        loom::model(|| {
            let shared = Arc::new(Shared {
                pending: PendingCounts::new(&[0, 0, 2, 1]),
                data: (0..4).map(|_| UnsafeCell::new(0)).collect(),
                runs: (0..4)
                    .map(|_| loom::sync::atomic::AtomicUsize::new(0))
                    .collect(),
            });
            let worker = |root: usize| {
                let shared = Arc::clone(&shared);
                thread::spawn(move || {
                    let mut ready = run(&shared, root, &[], &[2]);
                    while let Some(t) = ready.pop() {
                        ready.extend(match t {
                            2 => run(&shared, 2, &[0, 1], &[3]),
                            3 => run(&shared, 3, &[2], &[]),
                            _ => unreachable!(),
                        });
                    }
                })
            };
            let a = worker(0);
            let b = worker(1);
            a.join().unwrap();
            b.join().unwrap();
            for t in 0..4 {
                assert_eq!(
                    shared.runs[t].load(std::sync::atomic::Ordering::Relaxed),
                    1,
                    "tx {t}"
                );
            }
        });
    }

    #[test]
    fn three_way_join_releases_exactly_once() {
        // 0, 1, 2 are roots all releasing 3.
        loom::model(|| {
            let shared = Arc::new(Shared {
                pending: PendingCounts::new(&[0, 0, 0, 3]),
                data: (0..4).map(|_| UnsafeCell::new(0)).collect(),
                runs: (0..4)
                    .map(|_| loom::sync::atomic::AtomicUsize::new(0))
                    .collect(),
            });
            let handles: Vec<_> = (0..3)
                .map(|root| {
                    let shared = Arc::clone(&shared);
                    thread::spawn(move || {
                        for t in run(&shared, root, &[], &[3]) {
                            run(&shared, t as usize, &[0, 1, 2], &[]);
                        }
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
            assert_eq!(shared.runs[3].load(std::sync::atomic::Ordering::Relaxed), 1);
        });
    }
}
