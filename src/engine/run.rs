//! Running a planned block: the graph scheduler, the batch scheduler, and
//! the in-order run on the plan.
//!
//! # Never blocking inside a job
//! In graph mode no job ever waits for another: a job runs a transaction,
//! then decrements the pending count of each dependent; the job that brings
//! a count to zero runs that dependent itself (the first one: a chain of
//! dependencies costs no spawn) or spawns it (the others) into the same
//! `rayon::scope`. The only wait is the scope's own completion, on the
//! calling thread, outside the pool's jobs.
//!
//! # Memory ordering
//! `pending[d]` is decremented with `AcqRel` by each dependency of `d` after
//! it finished its writes; the decrement that reaches zero therefore
//! acquires every dependency's writes (a release sequence on one atomic)
//! before `d` runs (`release.rs`, model-checked with loom). That edge is
//! what lets the cells use `Relaxed` atomics (`cells.rs` gives the
//! argument). Each worker records the failures of the transactions it ran
//! in its own row ([`Outcomes`]), read after the scope returned (the
//! scope's join happens-after every job); a successful transaction only
//! counts itself there, so no two workers write one cache line.

use std::borrow::Borrow;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;

use crossbeam_utils::CachePadded;
use parking_lot::Mutex;

use rayon::prelude::*;

use super::cells::{Sums, TxView};
use super::contract::{Chain, StateError, StateResult};
use super::plan::{Graph, PlanView};

/// Home transactions a worker claims at a time.
const ROOT_CHUNK: usize = 16;

/// One worker's record of the transactions it ran.
pub(crate) struct Row<F> {
    /// The orphaned ones, with their failures.
    failures: Mutex<Vec<(u32, F)>>,
    /// How many ran.
    ran: AtomicUsize,
}

/// What the transactions of a run gave, one row per worker thread (and one
/// for any other thread), kept across blocks.
pub(crate) struct Outcomes<F> {
    rows: Vec<CachePadded<Row<F>>>,
}

impl<F> Default for Outcomes<F> {
    fn default() -> Self {
        Outcomes { rows: Vec::new() }
    }
}

impl<F: Clone> Outcomes<F> {
    /// Empty rows for `threads` workers.
    pub(crate) fn reset(&mut self, threads: usize) {
        self.rows.truncate(threads + 1);
        for row in self.rows.iter_mut() {
            row.failures.get_mut().clear();
            *row.ran.get_mut() = 0;
        }
        self.rows.resize_with(threads + 1, || {
            CachePadded::new(Row {
                failures: Mutex::new(Vec::new()),
                ran: AtomicUsize::new(0),
            })
        });
    }

    fn record(&self, t: u32, status: Result<(), F>) {
        let last = self.rows.len() - 1;
        let row = &self.rows[rayon::current_thread_index().map_or(last, |i| i.min(last))];
        row.ran.fetch_add(1, Ordering::Relaxed);
        if let Err(f) = status {
            row.failures.lock().push((t, f));
        }
    }

    /// The statuses of `n` transactions, in block order, once every one ran.
    pub(crate) fn statuses<E>(&mut self, n: usize) -> StateResult<Vec<Result<(), F>>, E> {
        let ran: usize = self.rows.iter_mut().map(|r| *r.ran.get_mut()).sum();
        if ran != n {
            return Err(StateError::Invariant("a transaction was never released"));
        }
        let mut statuses = vec![Ok(()); n];
        for row in self.rows.iter_mut() {
            for (t, f) in row.failures.get_mut().drain(..) {
                statuses[t as usize] = Err(f);
            }
        }
        Ok(statuses)
    }
}

/// Shared, read-only context of one run.
pub(crate) struct Run<'a, C: Chain, T, E> {
    pub(crate) chain: &'a C,
    pub(crate) block: &'a C::Block,
    pub(crate) txs: &'a [T],
    pub(crate) plan: &'a PlanView<'a, C::Key, C::Value>,
    pub(crate) graph: &'a Graph,
    pub(crate) sums: &'a Sums,
    /// What each transaction gave, per worker.
    pub(crate) outcomes: &'a Outcomes<C::Failure>,
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
    /// Runs transaction `t` and records its status; false on a fatal error.
    fn run_one(&self, t: usize) -> bool {
        let tx = self.txs[t].borrow();
        let proven = self.graph.is_proven(t);
        let mut view = TxView::<C, E>::new(
            self.plan,
            self.chain.accesses(tx),
            Some(t),
            proven,
            self.sums,
        );
        match self.chain.execute(self.block, tx, proven, &mut view) {
            Ok(status) => {
                // Once: `t` is released exactly once.
                self.outcomes.record(t as u32, status);
                true
            }
            Err(e) => {
                let _ = self.error.set(e);
                self.failed.store(true, Ordering::Relaxed);
                false
            }
        }
    }

    /// Runs `t`, then every dependent it releases: the first inline, the
    /// others spawned.
    fn run_from<'s>(&'s self, scope: &rayon::Scope<'s>, t: u32)
    where
        'a: 's,
    {
        let mut next = Some(t);
        while let Some(t) = next.take() {
            if self.failed.load(Ordering::Relaxed) || !self.run_one(t as usize) {
                return;
            }
            let level = self.graph.level(t) + 1;
            for d in self.graph.dependents(self.plan, t) {
                // Raised before the releasing decrement, which publishes it.
                self.graph.raise(d, level);
                if self.graph.pending.release(d) {
                    if next.is_none() {
                        next = Some(d);
                    } else {
                        scope.spawn(move |scope| self.run_from(scope, d));
                    }
                }
            }
        }
    }

    /// The graph scheduler, on the current pool: one runner job per
    /// partition; a runner goes through the home transactions of its own
    /// worker's partition first (their cells are in that worker's cache),
    /// claiming them in chunks and running those without dependencies, then
    /// helps with the others' (so one busy partition, a hot sender's, is
    /// shared, and a late worker delays nothing); a released dependent runs
    /// on the worker that released it. Each dependency raises its
    /// dependents' levels before releasing them, so the levels (and the
    /// critical path) come out of the run itself.
    pub(crate) fn graph(&self) {
        let parts = self.plan.len();
        rayon::scope(|scope| {
            for _ in 1..parts {
                scope.spawn(move |scope| self.runner(scope));
            }
            self.runner(scope);
        });
    }

    /// One runner of [`Self::graph`].
    fn runner<'s>(&'s self, scope: &rayon::Scope<'s>)
    where
        'a: 's,
    {
        let parts = self.plan.len();
        let me = rayon::current_thread_index().unwrap_or(0);
        for k in 0..parts {
            let p = (me + k) % parts;
            let homes = &self.plan.part(p).homes;
            loop {
                let chunk = self.graph.claim(homes, p, ROOT_CHUNK);
                if chunk.is_empty() {
                    break;
                }
                for &t in chunk {
                    if self.graph.is_root(t) {
                        self.run_from(scope, t);
                    }
                }
            }
        }
    }

    /// The batch scheduler (the graph's levels, a barrier between them), on
    /// the current pool; returns the number of batches run.
    pub(crate) fn batches(&self) -> usize {
        let batches = self.graph.batches();
        for batch in &batches {
            if self.failed.load(Ordering::Relaxed) {
                break;
            }
            if let [t] = batch[..] {
                self.run_one(t as usize);
            } else {
                batch.par_iter().for_each(|&t| {
                    if !self.failed.load(Ordering::Relaxed) {
                        self.run_one(t as usize);
                    }
                });
            }
        }
        batches.len()
    }

    /// Every transaction in block order, on the calling thread.
    pub(crate) fn in_order(&self) {
        for t in 0..self.txs.len() {
            if !self.run_one(t) {
                return;
            }
        }
    }

    /// The first fatal error of the run, if any.
    pub(crate) fn into_error(self) -> Option<StateError<E>> {
        self.error.into_inner()
    }
}
