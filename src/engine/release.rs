//! The lock-free part of the graph scheduler: dependency release counts.
//!
//! A transaction's pending count starts at its number of dependencies
//! (counted by the plan). Each dependency, after it finished all its
//! writes, calls [`release`] on it, an `AcqRel` decrement. Exactly one
//! caller sees the count go from 1 to 0 (a read-modify-write sequence on
//! one atomic is totally ordered) and gets `true`: it alone starts the
//! transaction, so it runs once. Because every decrement is a release and
//! the last one is also an acquire of the whole release sequence,
//! everything each dependency wrote happens-before the transaction starts.
//!
//! The counter type is a parameter so that the loom model below can run
//! this very code under loom's model checker with loom's atomics.

use std::sync::atomic::{AtomicU32, Ordering};

/// An atomic counter the release protocol can run on.
pub(crate) trait Counter {
    /// Atomically subtracts `v`, returning the previous value.
    fn fetch_sub(&self, v: u32, order: Ordering) -> u32;
}

impl Counter for AtomicU32 {
    #[inline]
    fn fetch_sub(&self, v: u32, order: Ordering) -> u32 {
        AtomicU32::fetch_sub(self, v, order)
    }
}

/// Called by each dependency of a transaction once it finished, on the
/// transaction's pending count: `true` for exactly one caller, the last,
/// which must then run it.
#[inline]
pub(crate) fn release<C: Counter>(count: &C) -> bool {
    count.fetch_sub(1, Ordering::AcqRel) == 1
}

/// Loom model checks of the release protocol, run on the real
/// [`release`] with loom's atomics: under every interleaving loom
/// explores, each transaction is released exactly once, only after all its
/// dependencies, and sees their writes (a missing happens-before would be
/// reported by loom as a data race on the `UnsafeCell`s).
#[cfg(test)]
mod loom_model {
    use super::{release, Counter};
    use loom::cell::UnsafeCell;
    use loom::sync::atomic::AtomicU32;
    use loom::sync::Arc;
    use loom::thread;

    struct LoomCounter(AtomicU32);

    impl Counter for LoomCounter {
        fn fetch_sub(&self, v: u32, order: std::sync::atomic::Ordering) -> u32 {
            self.0.fetch_sub(v, order)
        }
    }

    struct Shared {
        pending: Vec<LoomCounter>,
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
            .filter(|&d| release(&shared.pending[d as usize]))
            .collect()
    }

    #[test]
    fn diamond_each_released_once_after_its_dependencies() {
        // 0 and 1 are roots; 2 depends on both; 3 depends on 2.
        loom::model(|| {
            let shared = Arc::new(Shared {
                pending: [0, 0, 2, 1]
                    .iter()
                    .map(|&v| LoomCounter(AtomicU32::new(v)))
                    .collect(),
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
                pending: [0, 0, 0, 3]
                    .iter()
                    .map(|&v| LoomCounter(AtomicU32::new(v)))
                    .collect(),
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
