//! Background admissions in flight ([`crate::Blockchain::admit_in_background`]),
//! so that a chain outlives the jobs it spawned.
//!
//! A background admission hints invocations on a view of the tip, which
//! holds a clone of the storage. If the job outlived the chain, it could
//! drop the last handle of a RocksDB database while the process exits and
//! RocksDB's teardown ran on another thread (seen: heap corruption, a
//! `SIGSEGV` in `~ColumnFamilySet` racing `exit`). So the chain counts its
//! jobs, and its drop waits for them: a job that starts after the chain
//! began to close skips its work, and every job drops its view before it
//! reports its end.
//!
//! # Locking
//! One mutex guards the count and the closing flag; the condition variable
//! is notified (all) whenever the count reaches zero, and the waiter
//! re-checks the count under the mutex, so no wake-up is lost. A wait on a
//! rayon worker thread (a chain dropped inside a pool job) does not block:
//! it runs the pool's pending jobs (`rayon::yield_now`) until the count is
//! zero, so a queued admission job is never left waiting for the one
//! worker that waits for it.

use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

/// The jobs in flight and whether the chain is closing.
#[derive(Debug, Default)]
pub(crate) struct Admissions {
    /// (jobs spawned and not ended, closing). Invariant: the count is the
    /// number of live [`Running`] guards.
    state: Mutex<(usize, bool)>,
    /// Notified whenever the count reaches zero.
    ended: Condvar,
}

/// One job in flight: created before the job is spawned, dropped by the
/// job once it dropped everything it holds of the chain (declare it
/// first in the job, so that it drops last, also when unwinding).
pub(crate) struct Running(Arc<Admissions>);

impl Drop for Running {
    fn drop(&mut self) {
        let mut state = self.0.state.lock();
        state.0 -= 1;
        if state.0 == 0 {
            self.0.ended.notify_all();
        }
    }
}

impl Running {
    /// Whether the chain is closing (a job that has not started its work
    /// skips it).
    pub(crate) fn closing(&self) -> bool {
        self.0.state.lock().1
    }
}

impl Admissions {
    /// Counts a job about to be spawned.
    pub(crate) fn start(self: &Arc<Self>) -> Running {
        self.state.lock().0 += 1;
        Running(Arc::clone(self))
    }

    /// Marks the chain closing and waits until every job ended.
    pub(crate) fn close_and_wait(&self) {
        self.state.lock().1 = true;
        if rayon::current_thread_index().is_some() {
            // On a pool thread: run pending jobs (ours among them) instead
            // of blocking the worker that may have to run them.
            while self.state.lock().0 > 0 {
                if rayon::yield_now() != Some(rayon::Yield::Executed) {
                    std::thread::yield_now();
                }
            }
            return;
        }
        let mut state = self.state.lock();
        while state.0 > 0 {
            self.ended.wait(&mut state);
        }
    }
}

/// Loom model of the protocol above (the count and the closing flag under
/// one mutex, the condition variable notified at zero, the waiter
/// re-checking under the mutex), with loom's mutex and condition variable:
/// under every interleaving, once `close_and_wait` returns, every job has
/// dropped its view of the storage, and a job that starts after the chain
/// began to close skips its work.
#[cfg(test)]
mod loom_model {
    use loom::sync::atomic::{AtomicBool, Ordering};
    use loom::sync::{Arc, Condvar, Mutex};
    use loom::thread;

    struct Model {
        state: Mutex<(usize, bool)>,
        ended: Condvar,
        /// The job's view of the storage is alive.
        view: AtomicBool,
        /// The job did its work (read through the view).
        worked: AtomicBool,
    }

    #[test]
    fn the_drop_returns_only_after_every_job_dropped_its_view() {
        loom::model(|| {
            let m = Arc::new(Model {
                state: Mutex::new((0, false)),
                ended: Condvar::new(),
                view: AtomicBool::new(true),
                worked: AtomicBool::new(false),
            });
            // `start`, before the spawn.
            m.state.lock().unwrap().0 += 1;
            let job = {
                let m = Arc::clone(&m);
                thread::spawn(move || {
                    if !m.state.lock().unwrap().1 {
                        assert!(m.view.load(Ordering::Relaxed), "work on a dropped view");
                        m.worked.store(true, Ordering::Relaxed);
                    }
                    // The view drops, then `Running` ends the job.
                    m.view.store(false, Ordering::Relaxed);
                    let mut state = m.state.lock().unwrap();
                    state.0 -= 1;
                    if state.0 == 0 {
                        m.ended.notify_all();
                    }
                })
            };
            // `close_and_wait`, off the pool.
            m.state.lock().unwrap().1 = true;
            let mut state = m.state.lock().unwrap();
            while state.0 > 0 {
                state = m.ended.wait(state).unwrap();
            }
            drop(state);
            assert!(!m.view.load(Ordering::Relaxed), "a job outlived the chain");
            job.join().unwrap();
        });
    }
}
