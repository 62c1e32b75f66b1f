//! One block on the parallel engine: the work of the team's three phases
//! (`team.rs`), and what the caller does between them (`executor.rs`).
//!
//! | phase | pieces | done when |
//! |---|---|---|
//! | [`PLAN`] | one partition each (`plan.rs`: index, prefetch, proofs, links), a participant's own first | every partition planned |
//! | [`RUN`] | chunks of home transactions, released dependents (`run.rs`) | every transaction ran |
//! | [`WRITES`] | one partition each: its written keys and final values | every partition collected |
//!
//! Between the plan and the run the caller decides the order (`policy.rs`
//! may still send the block in order) and runs the block's begin hook;
//! between the run and the writes, the end hook. A fatal error anywhere
//! stops new work: every phase then reports itself complete, and the
//! caller returns the error.

use std::borrow::Borrow;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crossbeam_utils::CachePadded;
use parking_lot::Mutex;

use super::contract::{Chain, Reader};
use super::plan::{plan_partition, Plan, PlanInput};
use super::run::Run;
use super::team::Work;

/// The plan phase.
pub(crate) const PLAN: usize = 0;
/// The run phase.
pub(crate) const RUN: usize = 1;
/// The writes phase.
pub(crate) const WRITES: usize = 2;

/// A partition's claim in the writes phase, and what it collected.
struct Collect<K, V> {
    claimed: AtomicBool,
    writes: Mutex<Vec<(K, V)>>,
}

/// The phases' shared state for one block.
pub(crate) struct BlockWork<'a, C: Chain, R: Reader<C::Key, C::Value>, T> {
    pub(crate) input: PlanInput<'a, C, R, T>,
    pub(crate) plan: &'a Plan<C::Key, C::Value>,
    pub(crate) run: Run<'a, C, T, R::Error>,
    /// Participants (partition preferences).
    participants: usize,
    /// Edges found by the plan.
    edges: CachePadded<AtomicUsize>,
    /// Per partition, for the writes phase; each on its own cache lines
    /// (collected by different participants at once).
    collect: Vec<CachePadded<Collect<C::Key, C::Value>>>,
    /// Partitions collected (`Release` by each collector).
    collected: CachePadded<AtomicUsize>,
    /// Phases the caller will open (all three, or the plan alone).
    phases: usize,
}

impl<'a, C, R, T> BlockWork<'a, C, R, T>
where
    C: Chain,
    R: Reader<C::Key, C::Value>,
    T: Borrow<C::Tx> + Sync,
{
    pub(crate) fn new(
        input: PlanInput<'a, C, R, T>,
        plan: &'a Plan<C::Key, C::Value>,
        run: Run<'a, C, T, R::Error>,
        participants: usize,
        phases: usize,
    ) -> Self {
        let collect = (0..plan.len())
            .map(|_| {
                CachePadded::new(Collect {
                    claimed: AtomicBool::new(false),
                    writes: Mutex::new(Vec::new()),
                })
            })
            .collect();
        BlockWork {
            input,
            plan,
            run,
            participants: participants.max(1),
            edges: CachePadded::new(AtomicUsize::new(0)),
            collect,
            collected: CachePadded::new(AtomicUsize::new(0)),
            phases,
        }
    }

    /// Partitions in participant `me`'s order of preference: `me`,
    /// `me + participants`, ... first, then every other.
    fn preferred(&self, me: usize) -> impl Iterator<Item = usize> {
        let parts = self.plan.len();
        let step = self.participants;
        let own = (me % step..parts).step_by(step);
        let others = (0..parts).filter(move |p| p % step != me % step);
        own.chain(others)
    }

    fn plan_phase(&self, me: usize) {
        let graph = self.input.graph;
        for p in self.preferred(me) {
            if !graph.claim_plan(p, me) {
                continue;
            }
            if !self.run.failed() {
                let mut part = self.plan.part_mut(p);
                match plan_partition(&mut part, p, &self.input) {
                    Ok(edges) => {
                        self.edges.fetch_add(edges, Ordering::Relaxed);
                    }
                    Err(e) => self.run.fail(e),
                }
            }
            graph.plans_done.fetch_add(1, Ordering::Release);
        }
    }

    fn writes_phase(&self, me: usize) {
        let graph = self.input.graph;
        let parts = self.plan.len();
        let mine = (0..parts).filter(|&p| graph.planner(p) == me);
        let others = (0..parts).filter(|&p| graph.planner(p) != me);
        for p in mine.chain(others) {
            let c = &self.collect[p];
            if c.claimed.load(Ordering::Relaxed) || c.claimed.swap(true, Ordering::Relaxed) {
                continue;
            }
            {
                // Into a vector of this participant's own, handed over
                // whole: pushing through the shared slot wrote its length
                // next to another participant's (one cache line for two
                // partitions in about one process in four or five: the
                // writes phase of a 1,000-transfer block took 80 µs
                // instead of 15, the parallel engine 375-390 µs instead of
                // 305-320).
                let part = self.plan.view_part(p);
                let mut out = Vec::new();
                if let Err(e) = part.collect_written(&mut out) {
                    self.run.fail(e);
                }
                *c.writes.lock() = out;
            }
            self.collected.fetch_add(1, Ordering::Release);
        }
    }

    /// Edges of the plan.
    pub(crate) fn edges(&self) -> usize {
        self.edges.load(Ordering::Relaxed)
    }

    /// The collected writes, one part per partition (after the writes phase).
    pub(crate) fn take_writes(&self) -> Vec<Vec<(C::Key, C::Value)>> {
        self.collect
            .iter()
            .map(|c| std::mem::take(&mut *c.writes.lock()))
            .filter(|w| !w.is_empty())
            .collect()
    }
}

impl<C, R, T> Work for BlockWork<'_, C, R, T>
where
    C: Chain,
    R: Reader<C::Key, C::Value>,
    T: Borrow<C::Tx> + Sync,
{
    fn work(&self, phase: usize, me: usize, lead: bool) {
        match phase {
            PLAN => self.plan_phase(me),
            RUN => self.run.work(me, lead),
            WRITES => self.writes_phase(me),
            _ => {}
        }
    }

    fn complete(&self, phase: usize) -> bool {
        let parts = self.plan.len();
        match phase {
            PLAN => {
                self.input.graph.plans_done.load(Ordering::Acquire) >= parts || self.run.failed()
            }
            RUN => self.run.complete(),
            WRITES => self.collected.load(Ordering::Acquire) >= parts || self.run.failed(),
            _ => true,
        }
    }

    fn abort(&self) {
        self.run.stop();
    }

    fn phases(&self) -> usize {
        self.phases
    }
}
