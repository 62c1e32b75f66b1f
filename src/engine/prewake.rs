//! Pre-woken helpers: a pool's workers kept awake for a block that is
//! about to start, so that its team (`team.rs`) starts with them.
//!
//! # Why
//! A worker asleep when a team spawns its helper job joins late, and the
//! spawn itself costs the caller: on the 2-core reference machine (a VM) a
//! `futex` wake costs the waking thread about 10 µs, the woken vCPU takes
//! 20-100 µs to run the job (the longer after milliseconds of other work:
//! `bench`'s cache eviction), and rayon's pickup heuristic (a thread that
//! finds work wakes up to two sleepers) wakes the pool's other worker too,
//! which then preempts the caller or the helper for its idle rounds.
//! Measured on 180-transaction blocks (benches/README.md, fourteenth
//! session): the caller's spawn 45-80 µs and the helper's join 50-100 µs
//! after it, against 170-230 µs for the whole block in order; pre-woken,
//! the spawn takes 1-5 µs. The plan has one partition per participant, so
//! a late helper delays the whole phase.
//!
//! # What it does
//! [`Prewake::wake`] spawns, onto the pool, as many spinning jobs as the
//! block's team will have helpers (fewer when some still spin). Each spins
//! ([`Spin`]: pauses, and a yield every 64 of them, so that a thread with
//! real work on the core gets it) until the pool's next block starts
//! ([`Prewake::release`]: a team, or a run in order) or the wake's
//! deadline passes, then returns; its worker, awake, takes the team's
//! helper job from the pool's queue at once. `Executor::prepare` wakes
//! them when a block is about to be checked ([`PREPARE`]); a later wake
//! extends the deadline of the spinners already there.
//!
//! Tried and dropped: keeping them awake for 300 µs after every block, for
//! the next block of a replay. On warm back-to-back 1,000-transfer blocks
//! (five processes of 600 blocks each way) the parallel engine took
//! 292-313 µs with it against 306-313 µs without, within noise, for a
//! core spinning after every block; on 180-transfer blocks 59-60 against
//! 57-59 µs. (The processes of those runs whose parallel engine ran at
//! 365-390 µs throughout came from false sharing in the writes phase,
//! since fixed: `phases.rs`.)
//!
//! # Why it needs no ordering (and no loom model)
//! It is a speed hint, not synchronisation: a spinning job touches no
//! block data and no team, only this state's counters, all `Relaxed`
//! (they order nothing: the helper job itself reaches the worker through
//! rayon's queue, as without a pre-wake). Whatever a spinner reads, it
//! returns by its deadline (read every 256 steps), and no participant of a
//! team ever waits for a helper to join (a phase's pieces are claimed by
//! whoever runs): a spinner that misses a release, counts that race (more
//! or fewer spinners than helpers), or a pool whose only worker spins,
//! cost time, never a result. There is no interleaving to check, only a
//! bounded loop; `team.rs`'s tests run teams on pools whose every worker
//! was pre-woken, and a spinner that is never released.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::spin::Spin;

/// How long spinners wait for a block announced by `Executor::prepare`:
/// longer than checking a 1,000-transaction block's signatures from the
/// cache (about 150 µs cold), short enough that a wake for a block that
/// then runs otherwise costs a core little.
pub(crate) const PREPARE: Duration = Duration::from_micros(500);

/// One pool's pre-woken helpers.
#[derive(Debug)]
pub(crate) struct Prewake {
    /// Blocks started on the pool (teams and runs in order): a spinner
    /// returns once it changes. Only ever compared for a change.
    started: AtomicU64,
    /// Spinning jobs spawned and not yet returned (queued ones included).
    spinners: AtomicUsize,
    /// Nanoseconds after `epoch` until which spinners wait: the latest
    /// deadline of any wake (`fetch_max`).
    until: AtomicU64,
    /// The origin of `until`.
    epoch: Instant,
}

impl Default for Prewake {
    fn default() -> Self {
        Prewake {
            started: AtomicU64::new(0),
            spinners: AtomicUsize::new(0),
            until: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }
}

impl Prewake {
    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Keeps `helpers` of the pool's workers awake for up to `patience`
    /// (or until the next block starts), spawning spinners with `spawn`
    /// where fewer are there.
    pub(crate) fn wake(
        self: &Arc<Self>,
        helpers: usize,
        patience: Duration,
        spawn: impl Fn(Box<dyn FnOnce() + Send>),
    ) {
        let patience = u64::try_from(patience.as_nanos()).unwrap_or(u64::MAX);
        self.until
            .fetch_max(self.now().saturating_add(patience), Ordering::Relaxed);
        let seen = self.started.load(Ordering::Relaxed);
        while self.spinners.load(Ordering::Relaxed) < helpers {
            self.spinners.fetch_add(1, Ordering::Relaxed);
            let state = Arc::clone(self);
            spawn(Box::new(move || state.spin(seen)));
        }
    }

    /// A spinner's wait: until a block starts after `seen`, or the deadline.
    fn spin(&self, seen: u64) {
        let mut spin = Spin::new();
        while self.started.load(Ordering::Relaxed) == seen {
            if spin.checkpoint() && self.now() > self.until.load(Ordering::Relaxed) {
                break;
            }
            spin.wait();
        }
        self.spinners.fetch_sub(1, Ordering::Relaxed);
    }

    /// A block starts on the pool (a team, about to queue its helpers: a
    /// spinner's worker is then looking for work, awake, when they arrive,
    /// so the pool need not wake a sleeping one), or the pool is given
    /// other work: spinners return.
    pub(crate) fn release(&self) {
        self.started.fetch_add(1, Ordering::Relaxed);
    }
}
