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
//! argument). Statuses are written once into `OnceLock`s and read after the
//! scope returned (the scope's join happens-after every job).

use std::borrow::Borrow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use rayon::prelude::*;

use super::cells::{Sums, TxView};
use super::contract::{Chain, StateError, StateResult};
use super::plan::{Graph, Plan};

/// A status slot per transaction.
pub(crate) type Statuses<F> = [OnceLock<Result<(), F>>];

/// Shared, read-only context of one run.
pub(crate) struct Run<'a, C: Chain, T, E> {
    pub(crate) chain: &'a C,
    pub(crate) block: &'a C::Block,
    pub(crate) txs: &'a [T],
    pub(crate) plan: &'a Plan<C::Key, C::Value>,
    pub(crate) graph: &'a Graph,
    pub(crate) sums: &'a Sums,
    /// Each transaction's status, set once when it ran.
    pub(crate) statuses: &'a Statuses<C::Failure>,
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
        let mut view = TxView::<C, E>::new(self.plan, self.chain.accesses(tx), proven, self.sums);
        match self.chain.execute(self.block, tx, proven, &mut view) {
            Ok(status) => {
                // Set exactly once: `t` is released exactly once.
                let _ = self.statuses[t].set(status);
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
            for d in self.graph.dependents(self.plan, t) {
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

    /// The graph scheduler, on the current pool.
    pub(crate) fn graph(&self) {
        rayon::scope(|scope| {
            self.graph
                .roots
                .par_iter()
                .with_min_len(8)
                .for_each(|&t| self.run_from(scope, t));
        });
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

/// The statuses of a finished run (every transaction ran).
pub(crate) fn take_statuses<F, E>(
    statuses: &mut [OnceLock<Result<(), F>>],
) -> StateResult<Vec<Result<(), F>>, E> {
    statuses
        .iter_mut()
        .map(|s| {
            s.take()
                .ok_or(StateError::Invariant("a transaction was never released"))
        })
        .collect()
}
