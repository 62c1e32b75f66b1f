//! The state a block executes on in parallel: one cell per key of the
//! plan, and the views transactions reach their cells through.
//!
//! # Layout
//! Every key the block declares gets one [`Cell`] at plan time, in the
//! table of its partition (`plan.rs`), loaded with its block-start value
//! before anything runs. A counter key holds an `AtomicU64`; a record key
//! its stored value, a dirty flag and, once written, the written value
//! under a mutex. A view finds a cell through the declared access's
//! precomputed hash (a probe of a read-only table: no hashing, no lock).
//!
//! # Locking and memory-ordering argument
//! * The tables and the block-start values are built before any worker
//!   runs (the plan's parallel phases end with a join) and only read
//!   afterwards.
//! * The scheduler (`run.rs`) never runs two transactions that touch one
//!   key at the same time unless both accesses are reads, or both are adds
//!   (`Mode`). Adds are atomic read-modify-writes on a counter, so none is
//!   lost and their total does not depend on their order. Reads never run
//!   with a write or an add of the same key, so what they read is stable.
//! * Every other pair of accesses is ordered: a dependency finishes its
//!   writes, then releases its dependents with an `AcqRel` decrement
//!   (`release.rs`), or the batch barrier joins. That happens-before edge is
//!   what makes a later transaction see an earlier one's writes, so the
//!   values and dirty flags themselves use `Relaxed`.
//! * A record's written value sits behind a mutex that the argument above
//!   leaves uncontended (it exists so that no `unsafe` is needed).
//! * Block sums are one row of atomics per worker thread (each on its own
//!   cache lines), updated with `Relaxed` checked additions: addition
//!   commutes, and they are summed after the join. A sum of non-negative
//!   amounts overflows iff some prefix of it does, so the overflow check on
//!   the total rejects exactly the blocks the sequential engine rejects.
//! * Every view checks each operation against the transaction's declared
//!   accesses first, so a chain's wrong declaration is an error
//!   ([`StateError::Undeclared`]), never a data race.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crossbeam_utils::CachePadded;
use parking_lot::Mutex;

use super::contract::{
    Accesses, Chain, Key, ProofView, StateError, StateResult, Value, View, MAX_SUMS,
};
use super::plan::PlanView;
use super::sequential::{counter_of, declared, Need};

/// The value of one key during a block.
#[derive(Debug)]
pub(crate) enum CellValue<V> {
    /// A counter: its current value.
    Counter {
        /// Loaded at plan time, then updated atomically.
        value: AtomicU64,
        /// Invariant: set (never cleared) once the block wrote the key.
        dirty: AtomicBool,
    },
    /// A record.
    Record {
        /// The block-start value, loaded at plan time; never changes after.
        stored: Option<V>,
        /// Invariant: `written` holds `Some` exactly when this is set.
        dirty: AtomicBool,
        /// The value the block wrote.
        written: Mutex<Option<V>>,
    },
}

/// One key of the plan. Aligned so that no two cells share a cache line
/// (workers touching neighbouring cells do not contend).
#[derive(Debug)]
#[repr(align(64))]
pub(crate) struct Cell<K, V> {
    /// The key; never changes.
    pub(crate) key: K,
    /// `key_hash(&key)`; never changes.
    pub(crate) hash: u64,
    /// The value.
    pub(crate) value: CellValue<V>,
}

impl<K: Key, V: Value> Cell<K, V> {
    /// A cell for `key`, not loaded yet (a counter at 0, a record absent).
    pub(crate) fn new(key: K, hash: u64) -> Self {
        let value = if key.is_counter() {
            CellValue::Counter {
                value: AtomicU64::new(0),
                dirty: AtomicBool::new(false),
            }
        } else {
            CellValue::Record {
                stored: None,
                dirty: AtomicBool::new(false),
                written: Mutex::new(None),
            }
        };
        Cell { key, hash, value }
    }

    /// Installs the block-start value (plan time, exclusive access).
    pub(crate) fn load<E>(&mut self, stored: Option<V>) -> StateResult<(), E> {
        match &mut self.value {
            CellValue::Counter { value, .. } => {
                *value.get_mut() = counter_of(&self.key, stored.as_ref())?;
            }
            CellValue::Record { stored: slot, .. } => *slot = stored,
        }
        Ok(())
    }

    /// The current value (`Read`/`Write` access, or the block start).
    fn current<E>(&self) -> StateResult<Option<V>, E> {
        Ok(match &self.value {
            CellValue::Counter { value, .. } => {
                Some(V::from_counter(value.load(Ordering::Relaxed)))
            }
            CellValue::Record {
                stored,
                dirty,
                written,
            } => {
                if dirty.load(Ordering::Relaxed) {
                    written.lock().clone()
                } else {
                    stored.clone()
                }
            }
        })
    }

    fn counter<E>(&self) -> StateResult<u64, E> {
        match &self.value {
            CellValue::Counter { value, .. } => Ok(value.load(Ordering::Relaxed)),
            CellValue::Record { .. } => Err(StateError::NotCounter(format!(
                "{:?} is a record",
                self.key
            ))),
        }
    }

    fn set<E>(&self, v: V) -> StateResult<(), E> {
        match &self.value {
            CellValue::Counter { value, dirty } => {
                let n = v.as_counter().ok_or_else(|| {
                    StateError::NotCounter(format!("{:?} set to {v:?}", self.key))
                })?;
                value.store(n, Ordering::Relaxed);
                mark(dirty);
            }
            CellValue::Record { dirty, written, .. } => {
                *written.lock() = Some(v);
                dirty.store(true, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    fn update<E>(
        &self,
        f: impl Fn(u64) -> Option<u64>,
        err: impl FnOnce() -> StateError<E>,
    ) -> StateResult<(), E> {
        match &self.value {
            CellValue::Counter { value, dirty } => {
                value
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, f)
                    .map_err(|_| err())?;
                mark(dirty);
                Ok(())
            }
            CellValue::Record { .. } => Err(StateError::NotCounter(format!(
                "{:?} is a record",
                self.key
            ))),
        }
    }

    /// The final value if the block wrote the key (after the run, exclusive).
    pub(crate) fn take_written(&mut self) -> Option<V> {
        match &mut self.value {
            CellValue::Counter { value, dirty } => {
                dirty.get_mut().then(|| V::from_counter(*value.get_mut()))
            }
            CellValue::Record { dirty, written, .. } => {
                if *dirty.get_mut() {
                    written.get_mut().take()
                } else {
                    None
                }
            }
        }
    }
}

/// Marks a counter written: a load first, so that a hot cell's line is not
/// written again once dirty.
fn mark(dirty: &AtomicBool) {
    if !dirty.load(Ordering::Relaxed) {
        dirty.store(true, Ordering::Relaxed);
    }
}

/// One row of block sums: a worker's partial sums.
pub(crate) type SumRow = CachePadded<[AtomicU64; MAX_SUMS]>;

/// Block sums, one row per worker thread plus one for any other thread.
pub(crate) struct Sums {
    /// Row `i` for the pool's thread `i`, the last row for other threads.
    rows: Box<[SumRow]>,
}

impl Sums {
    pub(crate) fn new(threads: usize) -> Self {
        Sums {
            rows: (0..=threads)
                .map(|_| CachePadded::new(std::array::from_fn(|_| AtomicU64::new(0))))
                .collect(),
        }
    }

    fn add<E>(&self, slot: usize, amount: u64) -> StateResult<(), E> {
        let last = self.rows.len() - 1;
        let row = rayon::current_thread_index().map_or(last, |i| i.min(last));
        self.rows[row]
            .get(slot)
            .ok_or_else(|| StateError::Invariant("block sum slot out of range"))?
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                v.checked_add(amount)
            })
            .map(|_| ())
            .map_err(|_| StateError::Overflow("block sum"))
    }

    /// The totals (after the parallel phase); an overflow of a total is the
    /// error the sequential engine raises at the overflowing addition.
    pub(crate) fn totals<E>(&self, sums: usize) -> StateResult<[u64; MAX_SUMS], E> {
        let mut out = [0u64; MAX_SUMS];
        for (slot, total) in out.iter_mut().enumerate().take(sums) {
            for row in self.rows.iter() {
                *total = total
                    .checked_add(row[slot].load(Ordering::Relaxed))
                    .ok_or_else(|| StateError::Overflow("block sum"))?;
            }
        }
        Ok(out)
    }
}

/// The view of one transaction (or block hook) on the plan's cells.
pub(crate) struct TxView<'a, C: Chain, E> {
    plan: &'a PlanView<'a, C::Key, C::Value>,
    accesses: &'a Accesses<C::Key>,
    /// The transaction's index in the block (`None` for a block hook,
    /// whose cells are found by probing).
    tx: Option<usize>,
    proven: bool,
    sums: &'a Sums,
    _error: std::marker::PhantomData<fn() -> E>,
}

impl<'a, C: Chain, E> TxView<'a, C, E> {
    pub(crate) fn new(
        plan: &'a PlanView<'a, C::Key, C::Value>,
        accesses: &'a Accesses<C::Key>,
        tx: Option<usize>,
        proven: bool,
        sums: &'a Sums,
    ) -> Self {
        TxView {
            plan,
            accesses,
            tx,
            proven,
            sums,
            _error: std::marker::PhantomData,
        }
    }

    /// The cell of declared `key`, if the declared mode allows `need`: the
    /// one the plan resolved for this access (no probing).
    fn cell(&self, key: &C::Key, need: Need) -> StateResult<&'a Cell<C::Key, C::Value>, E> {
        let (j, a) = declared(self.accesses, self.proven, key, need)?;
        let found = match self.tx {
            Some(t) => self.plan.resolved(t, j, a.affinity),
            None => self.plan.cell(a.hash, a.affinity, key),
        };
        found.ok_or_else(|| StateError::Invariant("a declared key has no cell"))
    }
}

impl<C: Chain, E: std::error::Error + Send + Sync + 'static> View<C::Key, C::Value>
    for TxView<'_, C, E>
{
    type ReadError = E;

    fn get(&mut self, key: &C::Key) -> StateResult<Option<C::Value>, E> {
        self.cell(key, Need::Read)?.current()
    }

    fn counter(&mut self, key: &C::Key) -> StateResult<u64, E> {
        self.cell(key, Need::Read)?.counter()
    }

    fn set(&mut self, key: &C::Key, value: C::Value) -> StateResult<(), E> {
        self.cell(key, Need::Write)?.set(value)
    }

    fn add(&mut self, key: &C::Key, amount: u64) -> StateResult<(), E> {
        self.cell(key, Need::Add)?.update(
            |v| v.checked_add(amount),
            || StateError::Overflow("counter add"),
        )
    }

    fn sub(&mut self, key: &C::Key, amount: u64) -> StateResult<(), E> {
        self.cell(key, Need::Add)?.update(
            |v| v.checked_sub(amount),
            || StateError::Underflow("counter sub"),
        )
    }

    fn sum(&mut self, slot: usize, amount: u64) -> StateResult<(), E> {
        self.sums.add(slot, amount)
    }
}

/// Block-start reads for a proof (before anything ran), of any key the
/// group's transactions declared: found through their declarations (with
/// the hashes computed at admission), so a proof hashes nothing.
pub(crate) struct StartView<'a, 'p, C: Chain, E> {
    plan: &'a PlanView<'p, C::Key, C::Value>,
    chain: &'a C,
    group: &'a [&'a C::Tx],
    _error: std::marker::PhantomData<fn() -> E>,
}

impl<'a, 'p, C: Chain, E> StartView<'a, 'p, C, E> {
    pub(crate) fn new(
        plan: &'a PlanView<'p, C::Key, C::Value>,
        chain: &'a C,
        group: &'a [&'a C::Tx],
    ) -> Self {
        StartView {
            plan,
            chain,
            group,
            _error: std::marker::PhantomData,
        }
    }

    fn cell(&self, key: &C::Key) -> StateResult<&Cell<C::Key, C::Value>, E> {
        let access = self.group.iter().find_map(|tx| {
            let accesses = self.chain.accesses(tx);
            accesses.find(key).map(|j| &accesses.list()[j])
        });
        access
            .and_then(|a| self.plan.cell(a.hash, a.affinity, key))
            .ok_or_else(|| StateError::Undeclared(format!("{key:?} is not declared by the group")))
    }
}

impl<C: Chain, E: std::error::Error + Send + Sync + 'static> ProofView<C::Key, C::Value>
    for StartView<'_, '_, C, E>
{
    type ReadError = E;

    fn get(&mut self, key: &C::Key) -> StateResult<Option<C::Value>, E> {
        self.cell(key)?.current()
    }

    fn counter(&mut self, key: &C::Key) -> StateResult<u64, E> {
        self.cell(key)?.counter()
    }
}
