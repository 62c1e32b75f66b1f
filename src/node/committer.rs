//! The commit pipeline: one committer thread writes executed blocks to the
//! storage, in order, while [`crate::Blockchain`] executes the next ones
//! on a [`Layered`](crate::node::overlay::Layered) view. When the committer
//! is behind (a block is still pending as the next one is queued), the
//! chain's thread also builds the next block's write ahead
//! ([`StateWrite::prepare_commit`], kept in the pending block), so the
//! committer, which then sets the block rate, only writes it
//! ([`StateWrite::commit_prepared`]); when it keeps up, it builds the
//! write itself, off the chain's thread.
//!
//! # Protocol
//! All shared state is one [`Queue`] behind one lock with one condition
//! variable (the [`Monitor`]); nothing is read outside the lock.
//! * The chain ([`Queue::push`]) appends an executed block to `pending`,
//!   waiting while `bound` blocks are already pending (back-pressure:
//!   memory is bounded by `bound` change sets), and refuses while `failed`.
//! * The committer ([`Queue::next`]) takes the oldest pending block
//!   *without removing it*, writes it (one atomic storage commit holding
//!   its writes and metadata, whose key is its topoheight), then
//!   ([`Queue::done`]) removes it from `pending`. So a block is in
//!   `pending` until the storage holds it: a view made at any moment
//!   (under the lock: `pending` plus a storage clone) sees every executed
//!   block, in the overlay or in the storage or both.
//!   The write happens-before the removal (same thread), the removal
//!   happens-before any later lock of the queue (the lock's release and
//!   acquire), so a reader that finds the block gone reads it from the
//!   storage.
//! * A failed write sets `failed` and empties `pending`: the blocks after
//!   it cannot be written in order, so they are dropped, never half
//!   applied; the storage holds the state after the last written block.
//!   Pushes fail with that error until the node calls
//!   [`Queue::recover`]; [`Queue::wait_until`] returns it too, so a
//!   waiter never waits for a block that will not come.
//! * [`Queue::close`] (when the chain is dropped) lets the committer finish
//!   `pending` and exit.
//!
//! Every wait re-checks its condition under the lock after each wake-up,
//! and every change of `pending`, `failed` or `closing` notifies all
//! waiters, so no wake-up is lost. There is one committer, so blocks are
//! written in `pending`'s order, which is block order: `push` is called
//! under the chain's writer lock, in topoheight order.
//!
//! The loom model below runs this very code (through the `Monitor` trait)
//! with loom's mutex and condition variable: a chain pushing three blocks
//! with a bound of one, a committer, and a reader that checks, under every
//! interleaving, that a view never misses a pushed block; and a failure
//! that drops what follows and is seen by the waiters.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::node::overlay::PendingBlock;
use crate::{BlockMeta, ChangeSet, PreparedCommit, StateWrite, Storage, StorageError};

/// A lock with a condition variable (parking_lot's for the chain, loom's
/// in the model).
pub(crate) trait Monitor<T>: Send + Sync {
    /// A monitor guarding `value`.
    fn new(value: T) -> Self;
    /// Waits (releasing the lock) while `blocked` holds, then runs `f`
    /// under the lock.
    fn when<R>(&self, blocked: impl FnMut(&T) -> bool, f: impl FnOnce(&mut T) -> R) -> R;
    /// Wakes every waiter.
    fn notify_all(&self);
}

/// The chain's monitor.
pub(crate) struct Parking<T> {
    lock: parking_lot::Mutex<T>,
    changed: parking_lot::Condvar,
}

impl<T: Send> Monitor<T> for Parking<T> {
    fn new(value: T) -> Self {
        Parking {
            lock: parking_lot::Mutex::new(value),
            changed: parking_lot::Condvar::new(),
        }
    }

    fn when<R>(&self, mut blocked: impl FnMut(&T) -> bool, f: impl FnOnce(&mut T) -> R) -> R {
        let mut guard = self.lock.lock();
        while blocked(&guard) {
            self.changed.wait(&mut guard);
        }
        f(&mut guard)
    }

    fn notify_all(&self) {
        self.changed.notify_all();
    }
}

/// A block the queue can carry.
pub(crate) trait Topo {
    /// The topoheight the block produces.
    fn topo(&self) -> u64;
}

impl Topo for PendingBlock {
    fn topo(&self) -> u64 {
        self.topoheight()
    }
}

/// The queue's state (behind the monitor).
pub(crate) struct State<B, E> {
    /// Executed blocks not yet in the storage, oldest first; the front is
    /// the one the committer writes. Invariant: consecutive topoheights,
    /// the last at the chain's top; empty while `failed`.
    pending: VecDeque<Arc<B>>,
    /// The error of a failed write, until `recover`.
    failed: Option<(u64, E)>,
    /// Set once: the committer exits when `pending` is empty.
    closing: bool,
    /// Committer time of the most recent writes, oldest first (bounded).
    times: VecDeque<(u64, Duration)>,
}

/// Committer times kept for [`Queue::commit_time`].
const TIMES_KEPT: usize = 4096;

/// The pipeline's queue (protocol in the module doc).
pub(crate) struct Queue<B, E, M: Monitor<State<B, E>> = Parking<State<B, E>>> {
    /// The whole shared state. Invariant: only touched under its lock.
    monitor: M,
    /// Blocks that may be pending at once (at least 1).
    bound: usize,
    _marker: std::marker::PhantomData<fn() -> (B, E)>,
}

impl<B: Topo, E: Clone, M: Monitor<State<B, E>>> Queue<B, E, M> {
    /// An empty queue holding at most `bound` (at least 1) blocks.
    pub(crate) fn new(bound: usize) -> Self {
        Queue {
            monitor: M::new(State {
                pending: VecDeque::new(),
                failed: None,
                closing: false,
                times: VecDeque::new(),
            }),
            bound: bound.max(1),
            _marker: std::marker::PhantomData,
        }
    }

    /// The pending blocks, newest first, or the failure that stops the chain.
    pub(crate) fn view(&self) -> Result<Vec<Arc<B>>, (u64, E)> {
        self.monitor.when(
            |_| false,
            |s| match &s.failed {
                Some(f) => Err(f.clone()),
                None => Ok(s.pending.iter().rev().cloned().collect()),
            },
        )
    }

    /// Blocks pending now (the committer's backlog, the one it writes
    /// included).
    pub(crate) fn backlog(&self) -> usize {
        self.monitor.when(|_| false, |s| s.pending.len())
    }

    /// Appends `block` once fewer than `bound` blocks are pending; returns
    /// how long it waited, or the failure that stops the chain.
    pub(crate) fn push(&self, block: Arc<B>) -> Result<Duration, (u64, E)> {
        let start = Instant::now();
        let bound = self.bound;
        let r = self.monitor.when(
            |s| s.failed.is_none() && s.pending.len() >= bound,
            |s| match &s.failed {
                Some(f) => Err(f.clone()),
                None => {
                    s.pending.push_back(block);
                    Ok(())
                }
            },
        );
        self.monitor.notify_all();
        r.map(|()| start.elapsed())
    }

    /// The committer's next block (left in `pending` until [`Self::done`]),
    /// or `None` once closing with nothing left.
    pub(crate) fn next(&self) -> Option<Arc<B>> {
        self.monitor.when(
            |s| s.pending.is_empty() && !s.closing,
            |s| s.pending.front().cloned(),
        )
    }

    /// The committer wrote the front block (`Ok`, taking `took`) or failed
    /// to (`Err`: everything pending is dropped and the chain stops).
    pub(crate) fn done(&self, result: Result<Duration, E>) {
        self.monitor.when(
            |_| false,
            |s| {
                let Some(front) = s.pending.front() else {
                    return;
                };
                let topo = front.topo();
                match result {
                    Ok(took) => {
                        s.pending.pop_front();
                        if s.times.len() == TIMES_KEPT {
                            s.times.pop_front();
                        }
                        s.times.push_back((topo, took));
                    }
                    Err(e) => {
                        s.pending.clear();
                        s.failed = Some((topo, e));
                    }
                }
            },
        );
        self.monitor.notify_all();
    }

    /// Waits until no pending block is at or below `topo` (all of them:
    /// `u64::MAX`), or returns the failure that stopped the chain.
    pub(crate) fn wait_until(&self, topo: u64) -> Result<(), (u64, E)> {
        self.monitor.when(
            |s| s.failed.is_none() && s.pending.front().is_some_and(|b| b.topo() <= topo),
            |s| match &s.failed {
                Some(f) => Err(f.clone()),
                None => Ok(()),
            },
        )
    }

    /// Clears a failure (the node has handled it); returns it.
    pub(crate) fn recover(&self) -> Option<(u64, E)> {
        let r = self.monitor.when(|_| false, |s| s.failed.take());
        self.monitor.notify_all();
        r
    }

    /// Lets the committer finish what is pending and exit.
    pub(crate) fn close(&self) {
        self.monitor.when(|_| false, |s| s.closing = true);
        self.monitor.notify_all();
    }

    /// The committer's time for the block at `topo`, if it was written
    /// recently (the last 4,096 writes are kept).
    pub(crate) fn commit_time(&self, topo: u64) -> Option<Duration> {
        self.monitor.when(
            |_| false,
            |s| {
                s.times
                    .iter()
                    .rev()
                    .find(|(t, _)| *t == topo)
                    .map(|(_, d)| *d)
            },
        )
    }
}

/// The SPEC chain's queue: executed blocks, and the error of a failed write.
pub(crate) type BlockQueue = Queue<PendingBlock, Arc<StorageError>>;

/// The committer thread and its queue. Dropping it lets the thread write
/// what is pending, then joins it.
pub(crate) struct Committer {
    /// Shared with the thread. Invariant: the thread is its only `next`/`done` caller.
    pub(crate) queue: Arc<BlockQueue>,
    /// The thread, until it is joined.
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Committer {
    /// Starts the committer thread writing through `storage` (a clone of
    /// the node's storage: the data is shared, and the thread takes no lock
    /// the node's readers wait on), with at most `bound` blocks pending.
    pub(crate) fn spawn<S: Storage>(mut storage: S, bound: usize) -> Result<Self, std::io::Error> {
        let queue = Arc::new(BlockQueue::new(bound));
        let shared = Arc::clone(&queue);
        let handle = std::thread::Builder::new()
            .name("tos-committer".into())
            .spawn(move || {
                while let Some(block) = shared.next() {
                    let start = Instant::now();
                    let prepared = block.take_prepared();
                    let written = write_block(&mut storage, &block.changes, &block.meta, prepared)
                        .map(|()| start.elapsed());
                    #[cfg(feature = "metrics")]
                    if let Ok(took) = &written {
                        crate::metrics::record_commit(*took);
                    }
                    if let Err(e) = &written {
                        log::error!(
                            "committer: writing block {} failed: {e}; the chain accepts no block until recovered",
                            block.topoheight()
                        );
                    }
                    shared.done(written.map_err(Arc::new));
                }
            })?;
        Ok(Committer {
            queue,
            handle: Some(handle),
        })
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        self.queue.close();
        if let Some(handle) = self.handle.take() {
            // The thread contains its panics (`write_block`): a join error
            // cannot carry anything to report.
            let _ = handle.join();
        }
    }
}

/// Writes one block's change set and metadata in one atomic commit. A panic inside the storage is contained and
/// reported as [`StorageError::Backend`] (nothing of the block is then
/// known to be written: the store's commit is atomic).
pub(crate) fn write_block<S: StateWrite>(
    storage: &mut S,
    changes: &ChangeSet,
    meta: &BlockMeta,
    prepared: PreparedCommit,
) -> Result<(), StorageError> {
    #[cfg(feature = "fault-injection")]
    if crate::fault::write_fails() {
        return Err(StorageError::Backend(
            format!(
                "fault injection: the write of block {} failed",
                changes.topoheight
            )
            .into(),
        ));
    }
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        storage.commit_prepared(changes, meta, prepared)
    }))
    .unwrap_or_else(|payload| {
        Err(StorageError::Backend(
            format!(
                "the storage panicked writing block {}: {}",
                changes.topoheight,
                crate::engine::panic_message(payload.as_ref())
            )
            .into(),
        ))
    })
}

/// Loom model checks of the queue, on the real [`Queue`] with loom's mutex
/// and condition variable (module doc).
#[cfg(test)]
mod loom_model {
    use super::{Monitor, Queue, State, Topo};
    use loom::sync::{Arc, Condvar, Mutex};
    use loom::thread;
    use std::sync::Arc as BlockArc;

    struct LoomMonitor<T> {
        lock: Mutex<T>,
        changed: Condvar,
    }

    impl<T: Send> Monitor<T> for LoomMonitor<T> {
        fn new(value: T) -> Self {
            LoomMonitor {
                lock: Mutex::new(value),
                changed: Condvar::new(),
            }
        }

        fn when<R>(&self, mut blocked: impl FnMut(&T) -> bool, f: impl FnOnce(&mut T) -> R) -> R {
            let mut guard = self.lock.lock().unwrap();
            while blocked(&guard) {
                guard = self.changed.wait(guard).unwrap();
            }
            f(&mut guard)
        }

        fn notify_all(&self) {
            self.changed.notify_all();
        }
    }

    struct Block(u64);

    impl Topo for Block {
        fn topo(&self) -> u64 {
            self.0
        }
    }

    type Q = Queue<Block, &'static str, LoomMonitor<State<Block, &'static str>>>;

    /// The "storage": the topoheight of the last written block (blocks are
    /// written in order, so that is the whole of it).
    type Store = Arc<Mutex<u64>>;

    /// The committer loop of `blockchain.rs`, on the model's store; fails
    /// the write of `fail_at` if given.
    fn committer(queue: Arc<Q>, store: Store, fail_at: Option<u64>) -> thread::JoinHandle<()> {
        thread::spawn(move || {
            while let Some(block) = queue.next() {
                if Some(block.0) == fail_at {
                    queue.done(Err("write failed"));
                    continue;
                }
                {
                    let mut top = store.lock().unwrap();
                    assert_eq!(*top + 1, block.0, "written out of order");
                    *top = block.0;
                }
                queue.done(Ok(std::time::Duration::ZERO));
            }
        })
    }

    /// What a view made now sees as the top: the newest pending block, else
    /// the storage's top. Taken in the chain's order: pending, then storage.
    fn view_top(queue: &Q, store: &Store) -> Option<u64> {
        let pending = queue.view().ok()?;
        let stored = *store.lock().unwrap();
        if let Some(newest) = pending.first() {
            // Consecutive, newest first, and the oldest right above the store
            // or already written (it leaves only after its write).
            for w in pending.windows(2) {
                assert_eq!(w[0].0, w[1].0 + 1, "pending not consecutive");
            }
            let oldest = pending.last().map(|b| b.0).unwrap_or(0);
            assert!(oldest <= stored + 1, "a gap between storage and overlay");
            Some(newest.0)
        } else {
            Some(stored)
        }
    }

    #[test]
    fn a_view_never_misses_a_pushed_block_and_blocks_are_written_in_order() {
        loom::model(|| {
            let queue: Arc<Q> = Arc::new(Queue::new(1));
            let store: Store = Arc::new(Mutex::new(0));
            let c = committer(Arc::clone(&queue), Arc::clone(&store), None);
            // The chain: pushes 1, 2 (bound 1: waits for 1's write), checks a
            // view after each push.
            for t in 1..=2 {
                queue.push(BlockArc::new(Block(t))).unwrap();
                assert_eq!(view_top(&queue, &store), Some(t), "view after push {t}");
            }
            queue.wait_until(u64::MAX).unwrap();
            assert_eq!(*store.lock().unwrap(), 2, "flush returned before the write");
            queue.close();
            c.join().unwrap();
        });
    }

    #[test]
    fn a_failed_write_drops_what_follows_and_is_seen_by_waiters() {
        loom::model(|| {
            let queue: Arc<Q> = Arc::new(Queue::new(2));
            let store: Store = Arc::new(Mutex::new(0));
            let c = committer(Arc::clone(&queue), Arc::clone(&store), Some(1));
            // Block 1 fails; block 2 may be pushed before or after that.
            queue.push(BlockArc::new(Block(1))).unwrap();
            let second = queue.push(BlockArc::new(Block(2)));
            let waited = queue.wait_until(u64::MAX);
            assert_eq!(waited, Err((1, "write failed")));
            if let Err(e) = second {
                assert_eq!(e, (1, "write failed"));
            }
            // Nothing was written, nothing is pending; refused until recover.
            assert_eq!(*store.lock().unwrap(), 0);
            assert!(queue.view().is_err());
            assert_eq!(queue.recover(), Some((1, "write failed")));
            assert_eq!(queue.view().map(|v| v.len()), Ok(0));
            queue.close();
            c.join().unwrap();
        });
    }
}
