//! The view a transaction of a planned block (or a block hook) reaches
//! its cells through (`cells.rs`), as the plan resolved them (`plan.rs`).
//!
//! # Locking and memory-ordering argument
//! A view holds no lock and orders nothing itself: it checks each
//! operation against the transaction's declared accesses first (so a
//! chain's wrong declaration is an error, [`StateError::Undeclared`],
//! never a data race), then loads the cell's reference the plan resolved
//! (`Relaxed`: written by the plan phase, which the team's phase barrier
//! orders before the run phase, `team.rs`) and operates on the cell,
//! whose own argument (`cells.rs`) covers the rest. Block sums go to the
//! participant's own row with `Relaxed` checked additions (summed after
//! the phase barrier: `cells.rs`, `Sums`).

use std::sync::atomic::{AtomicU32, Ordering};

use super::cells::{CellAt, CellRef, SumRow};
use super::contract::{Accesses, Chain, Mode, StateError, StateResult, View};
use super::plan::PlanView;
use super::sequential::{declared, permitted, Need};

fn add_to_row<E>(row: &SumRow, slot: usize, amount: u64) -> StateResult<(), E> {
    row.get(slot)
        .ok_or_else(|| StateError::Invariant("block sum slot out of range"))?
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
            v.checked_add(amount)
        })
        .map(|_| ())
        .map_err(|_| StateError::Overflow("block sum"))
}

/// How a view finds its cells.
#[derive(Clone, Copy)]
pub(crate) enum Resolve<'a> {
    /// A transaction's: the references the plan resolved for its accesses.
    Resolved(&'a [AtomicU32]),
    /// A block hook's: by probing the partition's table.
    Probe,
}

/// The view of one transaction (or block hook) on the plan's cells.
pub(crate) struct TxView<'a, 'p, C: Chain, E> {
    plan: &'a PlanView<'p, C::Key, C::Value>,
    accesses: &'a Accesses<C::Key>,
    resolve: Resolve<'a>,
    proven: bool,
    /// The participant running it (its stripe of a hot counter).
    me: usize,
    sums: &'a SumRow,
    _error: std::marker::PhantomData<fn() -> E>,
}

impl<'a, 'p, C: Chain, E> TxView<'a, 'p, C, E> {
    pub(crate) fn new(
        plan: &'a PlanView<'p, C::Key, C::Value>,
        accesses: &'a Accesses<C::Key>,
        resolve: Resolve<'a>,
        proven: bool,
        me: usize,
        sums: &'a SumRow,
    ) -> Self {
        TxView {
            plan,
            accesses,
            resolve,
            proven,
            me,
            sums,
            _error: std::marker::PhantomData,
        }
    }

    /// The cell of declared `key` and the access's effective mode, if the
    /// mode allows `need` (the hot path: no error value is built here).
    #[inline(always)]
    fn locate(&self, key: &C::Key, need: Need) -> Option<(CellAt<'a, C::Value>, Mode)> {
        let (j, a, mode) = permitted(self.accesses, self.proven, key, need)?;
        let cell = match self.resolve {
            Resolve::Resolved(refs) => self
                .plan
                .cell(CellRef(refs.get(j)?.load(Ordering::Relaxed))),
            Resolve::Probe => self.plan.find(a.hash, a.affinity, key),
        }?;
        Some((cell, mode))
    }

    /// Why [`Self::locate`] found nothing.
    #[cold]
    #[inline(never)]
    fn refused(&self, key: &C::Key, need: Need) -> StateError<E> {
        match declared::<C::Key, E>(self.accesses, self.proven, key, need) {
            Err(e) => e,
            Ok(_) => StateError::Invariant("a declared key has no cell"),
        }
    }
}

impl<C: Chain, E: std::error::Error + Send + Sync + 'static> View<C::Key, C::Value>
    for TxView<'_, '_, C, E>
{
    type ReadError = E;

    fn get(&mut self, key: &C::Key) -> StateResult<Option<C::Value>, E> {
        match self.locate(key, Need::Read) {
            Some((cell, _)) => cell.get(),
            None => Err(self.refused(key, Need::Read)),
        }
    }

    fn counter(&mut self, key: &C::Key) -> StateResult<u64, E> {
        match self.locate(key, Need::Read) {
            Some((cell, _)) => cell.counter(key),
            None => Err(self.refused(key, Need::Read)),
        }
    }

    fn set(&mut self, key: &C::Key, value: C::Value) -> StateResult<(), E> {
        match self.locate(key, Need::Write) {
            Some((cell, _)) => cell.set(key, value),
            None => Err(self.refused(key, Need::Write)),
        }
    }

    fn add(&mut self, key: &C::Key, amount: u64) -> StateResult<(), E> {
        match self.locate(key, Need::Add) {
            Some((cell, mode)) => cell.apply(key, self.me, mode == Mode::Write, false, amount),
            None => Err(self.refused(key, Need::Add)),
        }
    }

    fn sub(&mut self, key: &C::Key, amount: u64) -> StateResult<(), E> {
        match self.locate(key, Need::Add) {
            Some((cell, mode)) => cell.apply(key, self.me, mode == Mode::Write, true, amount),
            None => Err(self.refused(key, Need::Add)),
        }
    }

    fn sum(&mut self, slot: usize, amount: u64) -> StateResult<(), E> {
        add_to_row(self.sums, slot, amount)
    }
}
