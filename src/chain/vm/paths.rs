//! Steered runs: the interpreter with its conditional jumps decided from
//! outside, and a depth-first walk over a code's paths, for hints.
//!
//! A node explores an invocation at the tip to learn the keys it will
//! touch in its block (`rules.rs`, `explore`). A run that fails there
//! (a token holder short of the amount at the tip, paid earlier in its
//! block) stops at the check that failed and never reaches the keys a
//! success would touch: its recipient's slot. [`Paths`] walks the code's
//! other branches after such a run, the deepest decision first (the check
//! that failed is usually the last jump taken), until one succeeds or
//! [`MAX_RUNS`] runs were made; the caller keeps the union of what every
//! run touched.
//!
//! Only hints depend on this: a run whose jumps are forced is never a
//! transaction's outcome, and a hint that is wrong costs time, never a
//! result. [`Natural`] is what [`run`](super::run) uses: each jump as the
//! code decides it, inlined away.

/// Who decides a conditional jump (`JUMPI`).
pub(crate) trait Jumps {
    /// Whether the jump is taken, given the code's own decision.
    fn decide(&mut self, natural: bool) -> bool;
}

/// Every jump as the code decides it (a transaction's run).
pub(crate) struct Natural;

impl Jumps for Natural {
    #[inline(always)]
    fn decide(&mut self, natural: bool) -> bool {
        natural
    }
}

/// At most this many runs explore one invocation (the natural run
/// included): what a failing call may cost a node at admission.
pub const MAX_RUNS: usize = 4;

/// Decisions recorded per run at most; jumps past them follow the code
/// (a loop's thousands of back edges are not alternatives worth a run).
const MAX_DECISIONS: usize = 64;

/// One run's jumps: the first `forced.len()` decided by `forced`, the
/// rest by the code; every decision recorded in `taken` (up to
/// 64: jumps past them follow the code).
#[derive(Debug, Default)]
pub struct Steer {
    forced: Vec<bool>,
    taken: Vec<bool>,
}

impl Steer {
    /// The decisions this run took, in order (the forced ones first).
    pub fn taken(&self) -> &[bool] {
        &self.taken
    }
}

impl Jumps for Steer {
    fn decide(&mut self, natural: bool) -> bool {
        let k = self.taken.len();
        if k >= MAX_DECISIONS {
            return natural;
        }
        let d = self.forced.get(k).copied().unwrap_or(natural);
        self.taken.push(d);
        d
    }
}

/// A depth-first walk over a code's paths: [`Paths::next_run`] gives the next
/// run's [`Steer`], [`Paths::ran`] takes it back with its decisions.
/// Every path is run at most once; at most [`MAX_RUNS`] runs in all.
#[derive(Debug)]
pub struct Paths {
    /// Decision prefixes not yet run, the next on top: each a run's
    /// decisions up to one jump, then that jump the other way.
    pending: Vec<Vec<bool>>,
    /// Runs handed out so far.
    runs: usize,
}

impl Default for Paths {
    fn default() -> Self {
        Self::new()
    }
}

impl Paths {
    /// A walk whose first run is the natural one.
    pub fn new() -> Self {
        Paths {
            pending: vec![Vec::new()],
            runs: 0,
        }
    }

    /// The next run to make, or `None` when the walk is over.
    pub fn next_run(&mut self) -> Option<Steer> {
        if self.runs >= MAX_RUNS {
            return None;
        }
        let forced = self.pending.pop()?;
        self.runs += 1;
        Some(Steer {
            forced,
            taken: Vec::new(),
        })
    }

    /// A run made: its unforced decisions, each the other way, become
    /// paths to run (the deepest first).
    pub fn ran(&mut self, run: &Steer) {
        let taken = run.taken();
        for i in run.forced.len().min(taken.len())..taken.len() {
            let mut other = taken[..i].to_vec();
            other.push(!taken[i]);
            self.pending.push(other);
        }
    }
}
