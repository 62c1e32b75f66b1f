//! The spin-then-yield wait of every participant that waits for work in
//! progress on another thread (`team.rs`, `run.rs`) or for a block to
//! start (`prewake.rs`): a pause per step, and a yield every 64 steps, so
//! that a descheduled thread gets the core back on a busy machine.

use std::time::{Duration, Instant};

/// A spin-then-yield wait.
pub(crate) struct Spin {
    spins: u32,
    start: Option<Instant>,
}

impl Spin {
    pub(crate) fn new() -> Self {
        Spin {
            spins: 0,
            start: None,
        }
    }

    /// One step of waiting: a pause, and from time to time a yield (so that
    /// a descheduled participant gets the core back on a busy machine).
    #[inline]
    pub(crate) fn wait(&mut self) {
        self.spins = self.spins.wrapping_add(1);
        if self.spins.is_multiple_of(64) {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }

    /// Whether this step is one of every 256 (for checks that cost more
    /// than a step, such as reading the clock).
    #[inline]
    pub(crate) fn checkpoint(&self) -> bool {
        self.spins.is_multiple_of(256)
    }

    /// How long this wait has lasted (checked every few hundred steps).
    pub(crate) fn waited(&mut self) -> Duration {
        if !self.spins.is_multiple_of(256) {
            return Duration::ZERO;
        }
        self.start.get_or_insert_with(Instant::now).elapsed()
    }
}
