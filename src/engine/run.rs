//! Running a planned block: the graph scheduler, the batch scheduler, and
//! the in-order run on the plan, as the team's run phase (`team.rs`).
//!
//! # Graph scheduler
//! Each participant goes through the home transactions of the partitions
//! it planned first (their cells are in its cache), claiming them in
//! chunks and running those without dependencies, then through the
//! others' (so one busy partition, a hot sender's, is shared, and a late
//! helper delays nothing). A transaction that finishes decrements the
//! pending count of each dependent; the participant that brings a count to
//! zero runs that dependent itself (the first one: a chain of
//! dependencies costs nothing to hand over) or pushes it on the shared
//! ready stack (the others), which idle participants drain. Nobody waits
//! for a transaction that is not running or ready, so the only wait, an
//! idle participant's, ends when a running one releases work or the last
//! transaction finishes. Each dependency raises its dependents' levels
//! before releasing them, so the levels (and the critical path) come out
//! of the run itself.
//!
//! # Memory ordering
//! `pending[d]` is decremented with `AcqRel` by each dependency of `d` after
//! it finished its writes; the decrement that reaches zero therefore
//! acquires every dependency's writes (a release sequence on one atomic)
//! before `d` runs (`release.rs`, model-checked with loom); a dependent
//! handed over through the ready stack is pushed and popped under its
//! mutex, which extends that edge to the participant that pops it. That is
//! what lets the cells use `Relaxed` atomics (`cells.rs`). Each participant
//! records what its transactions gave in its own row ([`Outcomes`]): the
//! failures under the row's mutex, and the count of transactions it ran as
//! a `Release` store read with `Acquire` by [`Run::complete`], so the
//! phase is complete exactly when every transaction's writes are visible.
//! The batch scheduler orders its batches with one counter of finished
//! transactions (`AcqRel` increments, `Acquire` waits).

use std::borrow::Borrow;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::OnceLock;

use crossbeam_utils::CachePadded;
use parking_lot::Mutex;
use smallvec::SmallVec;

use super::cells::Sums;
use super::contract::{Chain, StateError, StateResult};
use super::plan::{Graph, Plan, PlanView};
use super::spin::Spin;
use super::team::HELPER_PATIENCE;
use super::tx_view::{Resolve, TxView};

/// Home transactions a participant claims at a time.
const HOME_CHUNK: usize = 16;
/// Most released transactions a participant takes from the ready stack at a time.
const READY_CHUNK: usize = 8;

/// One participant's record of the transactions it ran.
pub(crate) struct Row<F> {
    /// The orphaned ones, with their failures.
    failures: Mutex<Vec<(u32, F)>>,
    /// How many ran (written by its participant only; `Release`).
    ran: AtomicUsize,
}

/// What the transactions of a run gave, one row per participant, kept
/// across blocks.
pub(crate) struct Outcomes<F> {
    rows: Vec<CachePadded<Row<F>>>,
}

impl<F> Default for Outcomes<F> {
    fn default() -> Self {
        Outcomes { rows: Vec::new() }
    }
}

impl<F: Clone> Outcomes<F> {
    /// Empty rows for `participants`.
    pub(crate) fn reset(&mut self, participants: usize) {
        self.rows.truncate(participants);
        for row in self.rows.iter_mut() {
            row.failures.get_mut().clear();
            *row.ran.get_mut() = 0;
        }
        self.rows.resize_with(participants, || {
            CachePadded::new(Row {
                failures: Mutex::new(Vec::new()),
                ran: AtomicUsize::new(0),
            })
        });
    }

    #[inline]
    fn record(&self, me: usize, t: u32, status: Result<(), F>) {
        let row = &self.rows[me.min(self.rows.len() - 1)];
        if let Err(f) = status {
            row.failures.lock().push((t, f));
        }
        // Only `me` writes this count.
        let ran = row.ran.load(Ordering::Relaxed);
        row.ran.store(ran + 1, Ordering::Release);
    }

    /// Transactions run so far (`Acquire`: their writes are visible).
    fn ran(&self) -> usize {
        self.rows
            .iter()
            .map(|r| r.ran.load(Ordering::Acquire))
            .sum()
    }

    /// The statuses of `n` transactions, in block order, once every one ran.
    pub(crate) fn statuses<E>(&self, n: usize) -> StateResult<Vec<Result<(), F>>, E> {
        if self.ran() != n {
            return Err(StateError::Invariant("a transaction was never released"));
        }
        let mut statuses = vec![Ok(()); n];
        for row in self.rows.iter() {
            for (t, f) in row.failures.lock().drain(..) {
                statuses[t as usize] = Err(f);
            }
        }
        Ok(statuses)
    }
}

/// How the run phase orders the transactions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Scheduling {
    /// The graph scheduler.
    Graph = 0,
    /// The batch scheduler.
    Batches = 1,
    /// In block order, by the caller alone, on the plan's cells.
    InOrder = 2,
}

/// The batch scheduler's plan: the transactions level by level, and where
/// each level starts (one more entry: the total).
pub(crate) struct BatchPlan {
    pub(crate) order: Vec<u32>,
    pub(crate) starts: Vec<u32>,
}

/// Shared context of one block's run phase.
pub(crate) struct Run<'a, C: Chain, T, E> {
    pub(crate) chain: &'a C,
    pub(crate) block: &'a C::Block,
    pub(crate) txs: &'a [T],
    pub(crate) plan: &'a Plan<C::Key, C::Value>,
    pub(crate) graph: &'a Graph,
    pub(crate) sums: &'a Sums,
    /// What each transaction gave, per participant.
    pub(crate) outcomes: &'a Outcomes<C::Failure>,
    /// A [`Scheduling`], chosen by the caller before the phase opens.
    pub(crate) order: AtomicU8,
    /// Set by the caller before the phase opens, for [`Scheduling::Batches`].
    pub(crate) batches: OnceLock<BatchPlan>,
    /// Next unclaimed position of `batches.order`.
    pub(crate) batch_next: CachePadded<AtomicUsize>,
    /// Transactions of the batch scheduler that finished.
    pub(crate) batch_done: CachePadded<AtomicUsize>,
    /// Released transactions waiting for a participant.
    pub(crate) ready: Mutex<Vec<u32>>,
    /// `ready.len()`, readable without the lock.
    pub(crate) ready_len: AtomicUsize,
    /// The first storage failure or broken invariant; set once, stops new work.
    pub(crate) error: OnceLock<StateError<E>>,
    /// `error.get().is_some()`, readable without synchronising on the lock.
    pub(crate) failed: AtomicBool,
}

impl<'a, C, T, E> Run<'a, C, T, E>
where
    C: Chain,
    T: Borrow<C::Tx> + Sync,
    E: std::error::Error + Send + Sync + 'static,
{
    /// A run over `plan` and `graph` (graph scheduler unless told otherwise).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        chain: &'a C,
        block: &'a C::Block,
        txs: &'a [T],
        plan: &'a Plan<C::Key, C::Value>,
        graph: &'a Graph,
        sums: &'a Sums,
        outcomes: &'a Outcomes<C::Failure>,
    ) -> Self {
        Run {
            chain,
            block,
            txs,
            plan,
            graph,
            sums,
            outcomes,
            order: AtomicU8::new(Scheduling::Graph as u8),
            batches: OnceLock::new(),
            batch_next: CachePadded::new(AtomicUsize::new(0)),
            batch_done: CachePadded::new(AtomicUsize::new(0)),
            ready: Mutex::new(Vec::new()),
            ready_len: AtomicUsize::new(0),
            error: OnceLock::new(),
            failed: AtomicBool::new(false),
        }
    }

    /// Records a fatal error (the first one is kept) and stops new work.
    pub(crate) fn fail(&self, e: StateError<E>) {
        let _ = self.error.set(e);
        self.failed.store(true, Ordering::Release);
    }

    /// Stops new work without an error of its own (a participant
    /// panicked; the panic is what the caller reports).
    pub(crate) fn stop(&self) {
        self.failed.store(true, Ordering::Release);
    }

    /// Whether the block failed.
    pub(crate) fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// Whether every transaction ran (or the block failed).
    pub(crate) fn complete(&self) -> bool {
        self.failed() || self.outcomes.ran() >= self.txs.len()
    }

    /// The order chosen for the phase.
    fn order(&self) -> Scheduling {
        match self.order.load(Ordering::Relaxed) {
            0 => Scheduling::Graph,
            1 => Scheduling::Batches,
            _ => Scheduling::InOrder,
        }
    }

    /// Participant `me`'s part of the run phase.
    pub(crate) fn work(&self, me: usize, lead: bool) {
        let view = self.plan.view();
        match self.order() {
            Scheduling::InOrder => {
                if lead {
                    for t in 0..self.txs.len() {
                        if !self.run_one(&view, t, me) {
                            return;
                        }
                    }
                }
            }
            Scheduling::Batches => self.batches(&view, me),
            Scheduling::Graph => self.graph(&view, me, lead),
        }
    }

    /// Runs transaction `t` and records its status; false on a fatal error.
    #[inline]
    fn run_one(&self, view: &PlanView<'_, C::Key, C::Value>, t: usize, me: usize) -> bool {
        let tx = self.txs[t].borrow();
        let proven = self.graph.is_proven(t);
        let mut tx_view = TxView::<C, E>::new(
            view,
            self.chain.accesses(tx),
            Resolve::Resolved(self.graph.resolved(t)),
            proven,
            me,
            self.sums.row(me),
        );
        match self.chain.execute(self.block, tx, proven, &mut tx_view) {
            Ok(status) => {
                // Once: `t` is released exactly once.
                self.outcomes.record(me, t as u32, status);
                true
            }
            Err(e) => {
                self.fail(e);
                false
            }
        }
    }

    /// Runs `t`, then every dependent it releases: the first inline, the
    /// others through the ready stack (pushed under one lock per
    /// transaction, however many it released).
    fn run_from(&self, view: &PlanView<'_, C::Key, C::Value>, t: u32, me: usize) {
        let mut next = Some(t);
        let mut extra: SmallVec<[u32; 16]> = SmallVec::new();
        while let Some(t) = next.take() {
            if self.failed.load(Ordering::Relaxed) || !self.run_one(view, t as usize, me) {
                return;
            }
            let level = self.graph.level(t) + 1;
            for d in self.graph.dependents(view, t) {
                // Raised before the releasing decrement, which publishes it.
                self.graph.raise(d, level);
                if self.graph.release(d) {
                    if next.is_none() {
                        next = Some(d);
                    } else {
                        extra.push(d);
                    }
                }
            }
            if !extra.is_empty() {
                let mut ready = self.ready.lock();
                ready.extend(extra.drain(..));
                self.ready_len.store(ready.len(), Ordering::Relaxed);
            }
        }
    }

    /// Runs released transactions until none is waiting, taking a few at a
    /// time; false if there was none.
    fn drain_ready(&self, view: &PlanView<'_, C::Key, C::Value>, me: usize) -> bool {
        let mut any = false;
        let mut taken: SmallVec<[u32; READY_CHUNK]> = SmallVec::new();
        while self.ready_len.load(Ordering::Relaxed) > 0 {
            {
                let mut ready = self.ready.lock();
                // Half of what waits (at least one, at most a chunk): the
                // other participants find the rest.
                let take = ready.len().div_ceil(2).min(READY_CHUNK);
                let from = ready.len() - take;
                taken.extend(ready.drain(from..));
                self.ready_len.store(ready.len(), Ordering::Relaxed);
            }
            if taken.is_empty() {
                break;
            }
            any = true;
            for t in taken.drain(..) {
                self.run_from(view, t, me);
            }
        }
        any
    }

    /// The graph scheduler (see the module docs).
    fn graph(&self, view: &PlanView<'_, C::Key, C::Value>, me: usize, lead: bool) {
        let parts = view.len();
        for mine in [true, false] {
            for p in 0..parts {
                if (self.graph.planner(p) == me) != mine {
                    continue;
                }
                let homes = &view.part(p).homes;
                loop {
                    if self.failed.load(Ordering::Relaxed) {
                        return;
                    }
                    let chunk = self.graph.claim_homes(homes, p, HOME_CHUNK);
                    if chunk.is_empty() {
                        break;
                    }
                    for &t in chunk {
                        if self.graph.is_root(t) {
                            self.run_from(view, t, me);
                        }
                    }
                    self.drain_ready(view, me);
                }
            }
        }
        // Only released transactions are left.
        let mut spin = Spin::new();
        loop {
            if self.drain_ready(view, me) {
                spin = Spin::new();
                continue;
            }
            if self.complete() || (!lead && spin.waited() > HELPER_PATIENCE) {
                return;
            }
            spin.wait();
        }
    }

    /// The batch scheduler: the graph's levels in order, each transaction
    /// of a level starting once every earlier level finished.
    fn batches(&self, view: &PlanView<'_, C::Key, C::Value>, me: usize) {
        let Some(plan) = self.batches.get() else {
            self.fail(StateError::Invariant("batch plan missing"));
            return;
        };
        loop {
            if self.failed.load(Ordering::Relaxed) {
                return;
            }
            let i = self.batch_next.fetch_add(1, Ordering::Relaxed);
            let Some(&t) = plan.order.get(i) else {
                return;
            };
            let level = plan.starts.partition_point(|&s| s as usize <= i) - 1;
            let earlier = plan.starts[level] as usize;
            // Every earlier transaction was claimed by a running
            // participant, which does not wait for this one.
            let mut spin = Spin::new();
            while self.batch_done.load(Ordering::Acquire) < earlier {
                if self.failed.load(Ordering::Relaxed) {
                    return;
                }
                spin.wait();
            }
            if !self.run_one(view, t as usize, me) {
                return;
            }
            self.batch_done.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// The first fatal error of the run, if any.
    pub(crate) fn take_error(&mut self) -> Option<StateError<E>> {
        self.error.take()
    }
}
