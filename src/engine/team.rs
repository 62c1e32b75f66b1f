//! The team: a block's phases run by the calling thread and helper jobs on
//! the pool, the caller working from the first instant.
//!
//! # Why not one pool job per phase
//! Handing a block to the pool from outside it (`ThreadPool::install`)
//! costs a round trip: a sleeping worker takes tens of microseconds to
//! wake, and the caller sleeps until the job ends and takes as long to wake
//! again (82 µs median for an empty `install` on the 2-core reference
//! machine, against 400 µs for executing a 1,000-transaction block). Here
//! the caller spawns `participants - 1` helper jobs into a scope on the
//! pool (`in_place_scope`) and starts on the first phase at once; a helper
//! joins whichever phase is open when it wakes. Every phase hands out its
//! work in claimed pieces (partitions, chunks of transactions), so a helper
//! that wakes late delays nothing: whoever is running takes the pieces.
//!
//! # Phases, and why every wait is bounded
//! The caller ([`Lead::phase`]) opens phase `k`, works on it as participant
//! 0, then waits until [`Work::complete`] says every piece of it finished;
//! between phases it runs the block's serial steps (the hooks). A helper
//! waits for the next phase to open, works on it, and so on. A participant
//! only ever waits for pieces that a *running* participant claimed (or,
//! in the run phase, for transactions whose dependencies a running
//! participant is executing), and a claimed piece never waits for an
//! unclaimed one, so every wait ends when work in progress on another
//! thread ends. A helper that rayon happens to run on a thread already in
//! a team (its own piece below it on the stack: a chain's rules calling
//! into rayon; `IN_TEAMS` says so) gives up after [`HELPER_PATIENCE`]
//! without anything to do and returns, instead of waiting for itself.
//! Any other helper waits for the next phase as long as the team is open:
//! the wait ends when work in progress on another thread (or the caller's
//! serial step) ends, and the team always ends (`Close`); a caller that
//! will open no further phase lets them go at once ([`Lead::close`]: the
//! optimistic path's bound, the rest of the block in order). It gave up after
//! the same patience until the fourteenth session, which measured the
//! cost: on `token` blocks one partition holds every slot of the contract,
//! its plan takes 600-700 µs against 300 µs for the other, and in the
//! processes where the caller planned it, the helper, done 280 µs early,
//! left before the run, which the caller then ran alone (1,000-transaction
//! blocks 0.97-0.98x instead of 1.16-1.26x; which participant plans which
//! partition depends on a per-process hash). The caller never gives up;
//! it is not a pool job of this team, and it only waits once its own
//! pieces are done.
//!
//! # Pre-woken helpers
//! A team starts faster when its helpers' workers are awake: a node may
//! wake them while it checks the block (`prewake.rs`). [`run`] releases them
//! ([`Prewake::release`]) before it queues the helper jobs.
//!
//! # Memory ordering
//! Each participant publishes a finished piece with a `Release` write of a
//! counter its phase's [`Work::complete`] reads with `Acquire`; the caller
//! opens the next phase with a `Release` store of `open`, which helpers
//! read with `Acquire`. Happens-before is transitive, so everything written
//! in phase `k` (by anyone) and in the caller's serial step after it is
//! visible to every participant of phase `k + 1`.
//!
//! # Panics
//! A helper's panic is caught, kept, and stops the team: `open` becomes
//! [`ABORTED`] (a swap, so it takes its place after every value the
//! caller stored), then the work is told ([`Work::abort`]), so nobody waits
//! for the panicked piece; the caller resumes the panic after the scope,
//! where the executor turns it into an error. In that order, a caller
//! whose phase is complete only because the work was aborted (the
//! panicked piece never finished) sees `ABORTED` once it sees the phase
//! complete (the abort's `Release`, read with `Acquire` by
//! [`Work::complete`], carries the earlier store), and returns
//! [`Aborted`] instead of a phase with a piece missing; and the caller
//! opens a phase with a compare-and-swap that never overwrites
//! `ABORTED`, so the signal cannot be lost between its check and its
//! store. A panic of the caller closes the team the same way (a drop
//! guard) before the scope waits for the helpers. The loom model below
//! checks both under every interleaving of a caller and a helper.

use std::any::Any;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use super::prewake::Prewake;
use super::spin::Spin;

// Teams the current thread is a participant of (the caller of [`run`] or
// a helper): a helper job that finds itself on a thread already in one
// runs above that participant's piece and must not wait for it.
thread_local! {
    static IN_TEAMS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Counts the current thread in a team until dropped (unwinding included).
struct InTeam;

impl InTeam {
    /// Enters; returns the guard and whether the thread was already in one.
    fn enter() -> (Self, bool) {
        let before = IN_TEAMS.with(|n| n.replace(n.get() + 1));
        (InTeam, before > 0)
    }
}

impl Drop for InTeam {
    fn drop(&mut self) {
        IN_TEAMS.with(|n| n.set(n.get().saturating_sub(1)));
    }
}

/// How long a helper on a thread already in a team spins before it leaves
/// (and, in the run phase, how long any helper waits for a released
/// transaction before it goes on to the next phase).
pub(crate) const HELPER_PATIENCE: Duration = Duration::from_micros(200);

/// `open` once the team is closed (the block is done or failed).
const CLOSED: usize = usize::MAX;
/// `open` once a participant panicked.
const ABORTED: usize = usize::MAX - 1;

/// The pieces of work of a block, by phase.
pub(crate) trait Work: Sync {
    /// Works on phase `phase` as participant `me` (0: the caller) until
    /// nothing is left to claim; `lead` is true for the caller, which must
    /// not return while work of the phase may still appear (the run phase's
    /// released transactions). Returns early once [`Self::complete`] holds.
    fn work(&self, phase: usize, me: usize, lead: bool);

    /// Whether every piece of `phase` finished (or the block failed and
    /// nothing new starts): an `Acquire` read of what the pieces published.
    fn complete(&self, phase: usize) -> bool;

    /// A participant panicked: every phase must stop handing out work and
    /// report itself complete. A `Release` store that [`Self::complete`]
    /// reads with `Acquire`: the team publishes `ABORTED` before calling
    /// it, so a caller that finds a phase complete because of it also
    /// finds the team aborted.
    fn abort(&self);

    /// Number of phases: a helper leaves once it worked on the last, so
    /// that its job has ended by the time the caller ends the scope.
    fn phases(&self) -> usize;
}

/// The team's shared state.
struct Team {
    /// 0 before any phase, `k + 1` once phase `k` is open, or [`CLOSED`] /
    /// [`ABORTED`]. Written by the caller (a compare-and-swap that never
    /// replaces [`ABORTED`]) and by a panicking participant (a swap to
    /// [`ABORTED`], before the work's abort); `Release`/`Acquire`.
    open: AtomicUsize,
    /// Helpers that joined; each takes its participant number from it.
    joined: AtomicUsize,
    /// Helpers that will not touch the work again.
    left: AtomicUsize,
    /// The first panic of a helper.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

impl Team {
    fn aborted(&self) -> bool {
        self.open.load(Ordering::Acquire) == ABORTED
    }
}

/// The caller's handle on a running team.
pub(crate) struct Lead<'t, W> {
    team: &'t Team,
    work: &'t W,
}

/// The team stopped because a participant panicked (the panic is resumed
/// when the team ends).
#[derive(Debug)]
pub(crate) struct Aborted;

impl<W: Work> Lead<'_, W> {
    /// Opens `phase`, works on it, and waits until it is complete.
    pub(crate) fn phase(&self, phase: usize) -> Result<(), Aborted> {
        self.phase_with(phase, || {})
    }

    /// [`Self::phase`], the caller running `own` first, once the phase is
    /// open (its own share, which the helpers must leave to it).
    pub(crate) fn phase_with(&self, phase: usize, own: impl FnOnce()) -> Result<(), Aborted> {
        // Never over a helper's `ABORTED` (a plain store could erase it
        // between a check and the store).
        let opened = self
            .team
            .open
            .fetch_update(Ordering::Release, Ordering::Acquire, |o| {
                (o != ABORTED).then_some(phase + 1)
            });
        if opened.is_err() {
            return Err(Aborted);
        }
        own();
        self.work.work(phase, 0, true);
        let mut spin = Spin::new();
        while !self.work.complete(phase) {
            if self.team.aborted() {
                return Err(Aborted);
            }
            spin.wait();
        }
        if self.team.aborted() {
            return Err(Aborted);
        }
        Ok(())
    }
}

impl<W: Work> Lead<'_, W> {
    /// The caller will open no further phase (it finishes the block on
    /// its own): the helpers waiting for one leave now instead of when
    /// the team ends. Never over `ABORTED`; [`Self::phase`] is not called
    /// after it.
    pub(crate) fn close(&self) {
        let _ = self
            .team
            .open
            .fetch_update(Ordering::Release, Ordering::Relaxed, |o| {
                (o != ABORTED).then_some(CLOSED)
            });
    }
}

/// Closes the team when the caller is done with it, or unwinds.
struct Close<'t, W: Work>(&'t Team, &'t W);

impl<W: Work> Drop for Close<'_, W> {
    fn drop(&mut self) {
        let team = self.0;
        if std::thread::panicking() {
            team.open.swap(ABORTED, Ordering::AcqRel);
            self.1.abort();
            return;
        }
        // A helper may have aborted meanwhile: keep that.
        let _ = team
            .open
            .fetch_update(Ordering::Release, Ordering::Relaxed, |o| {
                (o != ABORTED).then_some(CLOSED)
            });
        // Every helper that joined is at most a few instructions from
        // leaving: waiting here keeps the scope's own wait (a sleep on a
        // condition variable when the caller is not a pool thread) short.
        let mut spin = Spin::new();
        while team.left.load(Ordering::Acquire) < team.joined.load(Ordering::Acquire) {
            spin.wait();
        }
    }
}

/// Where the team's helpers run, with the pre-woken helpers of the
/// executor that runs it.
pub(crate) enum On<'p> {
    /// This pool.
    Pool(&'p rayon::ThreadPool, &'p Prewake),
    /// Whatever pool the calling thread is in (the global one outside any).
    Current(&'p Prewake),
}

impl On<'_> {
    /// The pool's worker threads.
    pub(crate) fn threads(&self) -> usize {
        match self {
            On::Pool(pool, _) => pool.current_num_threads(),
            On::Current(_) => rayon::current_num_threads(),
        }
    }

    /// The pre-woken helpers.
    pub(crate) fn prewake(&self) -> &Prewake {
        match self {
            On::Pool(_, p) | On::Current(p) => p,
        }
    }
}

/// Runs `lead` on the calling thread with `helpers` helper jobs spawned on
/// the pool, working on `work`'s phases as `lead` opens them. A helper's
/// panic is resumed here once every helper stopped.
pub(crate) fn run<W: Work, R: Send>(
    on: On<'_>,
    helpers: usize,
    work: &W,
    lead: impl FnOnce(&Lead<'_, W>) -> R + Send,
) -> R {
    // Before the helpers are queued (`Prewake::release`).
    on.prewake().release();
    let _in_team = InTeam::enter();
    let team = Team {
        open: AtomicUsize::new(0),
        joined: AtomicUsize::new(0),
        left: AtomicUsize::new(0),
        panic: Mutex::new(None),
    };
    let out = match on {
        On::Pool(pool, _) => {
            pool.in_place_scope(|scope| lead_team(scope, &team, helpers, work, lead))
        }
        On::Current(_) => {
            rayon::in_place_scope(|scope| lead_team(scope, &team, helpers, work, lead))
        }
    };
    if let Some(payload) = team.panic.lock().take() {
        std::panic::resume_unwind(payload);
    }
    out
}

/// The caller's side: spawns the helpers, then leads.
fn lead_team<'s, W: Work, R>(
    scope: &rayon::Scope<'s>,
    team: &'s Team,
    helpers: usize,
    work: &'s W,
    lead: impl FnOnce(&Lead<'_, W>) -> R,
) -> R {
    for _ in 0..helpers {
        scope.spawn(move |_| help(team, work));
    }
    let _close = Close(team, work);
    lead(&Lead { team, work })
}

/// One helper: joins, then works on every phase the caller opens until the
/// team closes, or, on a thread already in a team, it has waited
/// [`HELPER_PATIENCE`] for nothing.
fn help<W: Work>(team: &Team, work: &W) {
    let (_in_team, nested) = InTeam::enter();
    let me = 1 + team.joined.fetch_add(1, Ordering::AcqRel);
    let mut next = 1;
    loop {
        let mut spin = Spin::new();
        let open = loop {
            let open = team.open.load(Ordering::Acquire);
            if open >= next || open >= ABORTED {
                break open;
            }
            if nested && spin.waited() > HELPER_PATIENCE {
                break CLOSED;
            }
            spin.wait();
        };
        if open >= ABORTED {
            break;
        }
        let phase = open - 1;
        let ran =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work.work(phase, me, false)));
        if let Err(payload) = ran {
            team.panic.lock().get_or_insert(payload);
            // `ABORTED` first: the work then reports every phase complete
            // (`abort`, a `Release` store read with `Acquire` by
            // `complete`), and a caller that sees it so also sees
            // `ABORTED` and returns `Aborted`, never a phase that is
            // complete only because a piece was given up.
            team.open.swap(ABORTED, Ordering::AcqRel);
            work.abort();
            break;
        }
        if open >= work.phases() {
            break;
        }
        next = open + 1;
    }
    team.left.fetch_add(1, Ordering::Release);
}

/// Loom model of the team's protocol (`open`, `joined`, `left`, the
/// abort, [`Lead::phase`], `help` and `Close`, with loom's atomics in the
/// same orderings) over a work of two phases of two pieces each: under
/// every interleaving of the caller and one helper (up to three
/// preemptions), every phase the caller sees complete without `Aborted`
/// has all its pieces finished and their writes visible; each piece runs
/// once; the team closes with every helper that joined gone; and a helper
/// that panics on a piece (it never finishes it) makes the caller get
/// `Aborted`, never a phase with that piece missing.
#[cfg(test)]
mod loom_model {
    use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use loom::sync::{Arc, Mutex};
    use loom::thread;

    const PHASES: usize = 2;
    const PIECES: usize = 2;
    const CLOSED: usize = usize::MAX;
    const ABORTED: usize = usize::MAX - 1;

    struct Model {
        // The team.
        open: AtomicUsize,
        joined: AtomicUsize,
        left: AtomicUsize,
        // The work: per phase, claimed and finished pieces, each piece's
        // write and how often it ran; the abort flag.
        claimed: [AtomicUsize; PHASES],
        finished: [AtomicUsize; PHASES],
        written: [[Mutex<Option<usize>>; PIECES]; PHASES],
        runs: [[AtomicUsize; PIECES]; PHASES],
        aborted: AtomicBool,
        /// Where the helper panics, if it does.
        panics: Panic,
        /// Whether it panicked holding a piece.
        panicked: AtomicBool,
    }

    #[derive(Clone, Copy, PartialEq)]
    enum Panic {
        Never,
        /// On the first piece it claims in phase 1 (never finished).
        InPiece,
        /// Once it worked on phase 0, holding no piece (the caller may
        /// then be opening phase 1).
        AfterPhase0,
    }

    impl Model {
        fn new(panics: Panic) -> Self {
            Model {
                open: AtomicUsize::new(0),
                joined: AtomicUsize::new(0),
                left: AtomicUsize::new(0),
                claimed: [AtomicUsize::new(0), AtomicUsize::new(0)],
                finished: [AtomicUsize::new(0), AtomicUsize::new(0)],
                written: Default::default(),
                runs: Default::default(),
                aborted: AtomicBool::new(false),
                panics,
                panicked: AtomicBool::new(false),
            }
        }

        /// `Work::work`: claims and runs pieces; `Err` where the helper
        /// panics (holding a piece it never finishes).
        fn work(&self, phase: usize, helper: bool) -> Result<(), ()> {
            loop {
                if self.aborted.load(Ordering::Relaxed) {
                    return Ok(());
                }
                let i = self.claimed[phase].fetch_add(1, Ordering::Relaxed);
                if i >= PIECES {
                    return Ok(());
                }
                if helper && self.panics == Panic::InPiece && phase == 1 {
                    self.panicked.store(true, Ordering::Relaxed);
                    return Err(());
                }
                self.runs[phase][i].fetch_add(1, Ordering::Relaxed);
                *self.written[phase][i].lock().unwrap() = Some(10 * phase + i);
                self.finished[phase].fetch_add(1, Ordering::Release);
            }
        }

        /// `Work::complete`.
        fn complete(&self, phase: usize) -> bool {
            self.aborted.load(Ordering::Acquire)
                || self.finished[phase].load(Ordering::Acquire) >= PIECES
        }

        /// `Lead::phase`.
        fn phase(&self, phase: usize) -> Result<(), ()> {
            let opened = self
                .open
                .fetch_update(Ordering::Release, Ordering::Acquire, |o| {
                    (o != ABORTED).then_some(phase + 1)
                });
            if opened.is_err() {
                return Err(());
            }
            let _ = self.work(phase, false);
            while !self.complete(phase) {
                if self.open.load(Ordering::Acquire) == ABORTED {
                    return Err(());
                }
                thread::yield_now();
            }
            if self.open.load(Ordering::Acquire) == ABORTED {
                return Err(());
            }
            Ok(())
        }

        /// `help`.
        fn help(&self) {
            self.joined.fetch_add(1, Ordering::AcqRel);
            let mut next = 1;
            loop {
                let open = loop {
                    let open = self.open.load(Ordering::Acquire);
                    if open >= next || open >= ABORTED {
                        break open;
                    }
                    thread::yield_now();
                };
                if open >= ABORTED {
                    break;
                }
                let worked = self.work(open - 1, true);
                if worked.is_err() || (self.panics == Panic::AfterPhase0 && open == 1) {
                    self.open.swap(ABORTED, Ordering::AcqRel);
                    self.aborted.store(true, Ordering::Release);
                    break;
                }
                if open >= PHASES {
                    break;
                }
                next = open + 1;
            }
            self.left.fetch_add(1, Ordering::Release);
        }

        /// `Close` (the caller did not panic).
        fn close(&self) {
            let _ = self
                .open
                .fetch_update(Ordering::Release, Ordering::Relaxed, |o| {
                    (o != ABORTED).then_some(CLOSED)
                });
            while self.left.load(Ordering::Acquire) < self.joined.load(Ordering::Acquire) {
                thread::yield_now();
            }
        }
    }

    fn check(panics: Panic) {
        let mut model = loom::model::Builder::new();
        model.preemption_bound = Some(3);
        model.check(move || {
            let m = Arc::new(Model::new(panics));
            let helper = {
                let m = Arc::clone(&m);
                thread::spawn(move || m.help())
            };
            let mut failed = false;
            for phase in 0..PHASES {
                if m.phase(phase).is_err() {
                    failed = true;
                    break;
                }
                // Complete without `Aborted`: every piece finished, once,
                // its write visible.
                for i in 0..PIECES {
                    assert_eq!(m.runs[phase][i].load(Ordering::Relaxed), 1, "{phase}/{i}");
                    let w = *m.written[phase][i].lock().unwrap();
                    assert_eq!(w, Some(10 * phase + i), "phase {phase} piece {i}");
                }
            }
            m.close();
            helper.join().unwrap();
            assert_eq!(
                m.left.load(Ordering::Relaxed),
                m.joined.load(Ordering::Relaxed)
            );
            // A helper that panicked holding a piece always surfaces as
            // `Aborted` (one that panicked elsewhere may do so after the
            // caller finished: its panic is resumed after the team).
            if m.panicked.load(Ordering::Relaxed) {
                assert!(failed, "a phase ended without the panicked piece");
            }
        });
    }

    #[test]
    fn every_phase_complete_and_every_helper_gone() {
        check(Panic::Never);
    }

    #[test]
    fn a_helper_panicking_on_a_piece_is_always_reported() {
        check(Panic::InPiece);
    }

    #[test]
    fn a_helper_panicking_between_phases_never_completes_one() {
        check(Panic::AfterPhase0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::prewake::PREPARE;
    use std::sync::Arc;

    /// Two phases of `PIECES` pieces each, every piece counted once run.
    struct Pieces {
        claimed: [AtomicUsize; 2],
        ran: [AtomicUsize; 2],
    }

    const PIECES: usize = 64;

    impl Work for Pieces {
        fn work(&self, phase: usize, _me: usize, _lead: bool) {
            while self.claimed[phase].fetch_add(1, Ordering::Relaxed) < PIECES {
                self.ran[phase].fetch_add(1, Ordering::Release);
            }
        }
        fn complete(&self, phase: usize) -> bool {
            self.ran[phase].load(Ordering::Acquire) >= PIECES
        }
        fn abort(&self) {}
        fn phases(&self) -> usize {
            2
        }
    }

    fn pieces() -> Pieces {
        Pieces {
            claimed: Default::default(),
            ran: Default::default(),
        }
    }

    /// A team of `helpers` helpers on `on` through both phases of `work`.
    fn both_phases<W: Work>(on: On<'_>, helpers: usize, work: &W) -> Result<(), Aborted> {
        run(on, helpers, work, |lead| {
            lead.phase(0)?;
            lead.phase(1)
        })
    }

    /// Every piece of both phases ran, once.
    fn every_piece_ran(pieces: &Pieces) {
        for phase in 0..2 {
            assert_eq!(pieces.ran[phase].load(Ordering::Acquire), PIECES);
        }
    }

    fn pool(threads: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("pool")
    }

    #[test]
    fn a_pre_woken_worker_takes_no_piece_and_keeps_no_team_waiting() {
        // Every worker of the pool pre-woken before each team (and one
        // team in two after it too: a spinner left over): every phase
        // complete with every piece run once.
        for threads in [1, 2] {
            let pool = pool(threads);
            let prewake = Arc::new(Prewake::default());
            for round in 0..50 {
                prewake.wake(threads, PREPARE, |job| pool.spawn(job));
                let work = pieces();
                let led = both_phases(On::Pool(&pool, &prewake), threads, &work);
                assert!(led.is_ok());
                every_piece_ran(&work);
                if round % 2 == 0 {
                    prewake.wake(threads, PREPARE, |job| pool.spawn(job));
                }
            }
        }
    }

    /// Two phases whose every piece first calls `each` (a chain's rules
    /// calling into rayon).
    struct Calling(Pieces, fn());

    impl Work for Calling {
        fn work(&self, phase: usize, _me: usize, _lead: bool) {
            while self.0.claimed[phase].fetch_add(1, Ordering::Relaxed) < PIECES {
                (self.1)();
                self.0.ran[phase].fetch_add(1, Ordering::Release);
            }
        }
        fn complete(&self, phase: usize) -> bool {
            self.0.complete(phase)
        }
        fn abort(&self) {}
        fn phases(&self) -> usize {
            2
        }
    }

    /// A `join` whose halves a waiting participant's thread may leave to
    /// others while it runs a queued job (our helper job, say).
    fn join() {
        let (a, b) = rayon::join(|| (0..200).sum::<u64>(), || (0..300).sum::<u64>());
        assert_eq!(a + b, 19_900 + 44_850);
    }

    /// Runs a pending job of the pool on this thread, if any.
    fn yield_to_rayon() {
        let _ = rayon::yield_now();
    }

    #[test]
    fn teams_whose_pieces_call_into_rayon_finish() {
        // Led from inside the pool (a rayon-parallel caller: every worker
        // but the caller's is a helper) and from outside it, with the
        // helpers pre-woken or not: every team finishes with every piece
        // run once. A helper that finds its thread already in a team (it
        // was stolen by a participant waiting in `join`) gives up instead
        // of waiting for the piece below it.
        for threads in [2, 3] {
            let pool = pool(threads);
            let prewake = Arc::new(Prewake::default());
            for round in 0..40 {
                let work = Calling(pieces(), join);
                if round % 2 == 0 {
                    prewake.wake(threads, PREPARE, |job| pool.spawn(job));
                }
                let led = if round % 4 < 2 {
                    pool.install(|| both_phases(On::Current(&prewake), threads - 1, &work))
                } else {
                    both_phases(On::Pool(&pool, &prewake), threads - 1, &work)
                };
                assert!(led.is_ok());
                every_piece_ran(&work.0);
            }
        }
    }

    #[test]
    fn a_helper_run_above_its_own_team_gives_up() {
        // A pool of two, one worker held by another job: the caller leads
        // from the other worker, its helper job queued on that worker's
        // own deque, and its first piece yields to rayon, which runs the
        // helper job right there, above the piece. The helper must give
        // up (the piece below it cannot finish while it waits); waiting
        // for the next phase as other helpers do would hang this test.
        let pool = pool(2);
        let held = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let release = Arc::new(std::sync::atomic::AtomicBool::new(false));
        {
            let (held, release) = (Arc::clone(&held), Arc::clone(&release));
            pool.spawn(move || {
                held.store(true, Ordering::Release);
                while !release.load(Ordering::Acquire) {
                    std::thread::yield_now();
                }
            });
        }
        while !held.load(Ordering::Acquire) {
            std::thread::yield_now();
        }
        let prewake = Prewake::default();
        let work = Calling(pieces(), yield_to_rayon);
        let led = pool.install(|| both_phases(On::Current(&prewake), 1, &work));
        release.store(true, Ordering::Release);
        assert!(led.is_ok());
        every_piece_ran(&work.0);
    }

    #[test]
    fn a_pre_woken_worker_never_released_gives_its_worker_back() {
        // No block ever comes: the spinning job returns on its own, so the
        // pool's only worker runs the next job.
        let pool = pool(1);
        let prewake = Arc::new(Prewake::default());
        prewake.wake(1, PREPARE, |job| pool.spawn(job));
        assert_eq!(pool.install(|| 7), 7);
    }
}
