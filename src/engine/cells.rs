//! The state a block executes on in parallel: one cell per key of the
//! plan (the views transactions reach them through: `tx_view.rs`).
//!
//! # Layout
//! Every key the block declares gets one cell at plan time, in its
//! partition (`plan.rs`), loaded with its block-start value before
//! anything runs: a counter key a [`CounterCell`] (16 bytes: four share a
//! cache line), a record key a [`RecordCell`]. A [`CellRef`] names a cell
//! (partition, kind, index); the plan resolves every declared access of
//! every transaction to its cell's reference, so a view never probes a
//! table: it finds the access in the transaction's declaration, then loads
//! one reference.
//!
//! # Locking and memory-ordering argument
//! * The cells and the resolved references are written by the plan phase
//!   (each partition's cells by the one participant that claimed it) and
//!   only read afterwards; the team's phase barrier (`team.rs`) orders the
//!   two.
//! * The scheduler (`run.rs`) never runs two transactions that touch one
//!   key at the same time unless both accesses are reads, or both are adds
//!   (`Mode`). Adds are atomic read-modify-writes on a counter, so none is
//!   lost and their total does not depend on their order. Reads never run
//!   with a write or an add of the same key, so what they read is stable.
//! * Every other pair of accesses is ordered: a dependency finishes its
//!   writes, then releases its dependents with an `AcqRel` decrement
//!   (`release.rs`), or the batch scheduler's counter orders the batches.
//!   That happens-before edge is what makes a later transaction see an
//!   earlier one's writes, so the values and dirty flags use `Relaxed`.
//! * A record's written value sits behind a mutex that the argument above
//!   leaves uncontended (it exists so that no `unsafe` is needed).
//! * Block sums are one row of atomics per participant (each on its own
//!   cache lines), updated with `Relaxed` checked additions: addition
//!   commutes, and they are summed after the phase barrier. A sum of
//!   non-negative amounts overflows iff some prefix of it does, so the
//!   overflow check on the total rejects exactly the blocks the sequential
//!   engine rejects.
//! * Every view checks each operation against the transaction's declared
//!   accesses first (`tx_view.rs`), so a chain's wrong declaration is an
//!   error (`StateError::Undeclared`), never a data race.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crossbeam_utils::CachePadded;
use parking_lot::Mutex;

use super::contract::{Key, StateError, StateResult, Value, MAX_SUMS};
use super::sequential::counter_of;

/// A counter key's cell.
#[derive(Debug)]
pub(crate) struct CounterCell {
    /// Loaded at plan time, then updated atomically (for a striped cell:
    /// the value before its stripes' deltas).
    value: AtomicU64,
    /// Invariant: set (never cleared) once the block wrote the key.
    dirty: AtomicBool,
    /// First of the cell's stripes in its partition, or `u32::MAX`.
    pub(crate) stripe: u32,
}

/// One participant's deltas to a hot counter: what it added, what it
/// subtracted (written by that participant only while adds run
/// concurrently; by whoever holds the key exclusively otherwise).
pub(crate) type Stripe = CachePadded<[AtomicU64; 2]>;

/// A hot counter's stripes: one per participant.
///
/// A counter that many transactions add to (a hot receiver's balance, a
/// covered hot sender's nonce) would have every core's atomic add fight
/// for one cache line. Striped, each participant's adds go to its own
/// stripe (a load and a store: it is the stripe's only writer), and an
/// access ordered after them (a read, a write) folds the stripes into the
/// value. Adds commute, so the total does not depend on their order; it is
/// range-checked when folded (the contract: an `Add` subtraction never
/// goes below zero in any order).
#[derive(Clone, Copy)]
pub(crate) struct Stripes<'a>(pub(crate) &'a [Stripe]);

impl CounterCell {
    /// A cell holding `n` at the block start.
    pub(crate) fn new(n: u64) -> Self {
        CounterCell {
            value: AtomicU64::new(n),
            dirty: AtomicBool::new(false),
            stripe: u32::MAX,
        }
    }

    /// The current value: the value plus every stripe's deltas.
    #[inline]
    fn total<E>(&self, stripes: Stripes<'_>) -> StateResult<u64, E> {
        let base = self.value.load(Ordering::Relaxed);
        if stripes.0.is_empty() {
            return Ok(base);
        }
        let mut total = i128::from(base);
        for s in stripes.0 {
            total += i128::from(s[0].load(Ordering::Relaxed));
            total -= i128::from(s[1].load(Ordering::Relaxed));
        }
        if total < 0 {
            return Err(StateError::Underflow("counter sub"));
        }
        u64::try_from(total).map_err(|_| StateError::Overflow("counter add"))
    }

    /// Folds the stripes into the value (exclusive access only).
    #[inline]
    fn fold<E>(&self, stripes: Stripes<'_>) -> StateResult<(), E> {
        if !stripes.0.is_empty() {
            let total = self.total(stripes)?;
            for s in stripes.0 {
                s[0].store(0, Ordering::Relaxed);
                s[1].store(0, Ordering::Relaxed);
            }
            self.value.store(total, Ordering::Relaxed);
        }
        Ok(())
    }

    #[inline]
    fn set<E>(&self, stripes: Stripes<'_>, n: u64) -> StateResult<(), E> {
        self.fold(stripes)?;
        self.value.store(n, Ordering::Relaxed);
        self.mark();
        Ok(())
    }

    /// Adds (`sub` false) or subtracts `amount`: on participant `me`'s
    /// stripe if the cell has stripes and the access is not exclusive,
    /// else on the value, checked.
    #[inline]
    fn apply<E>(
        &self,
        stripes: Stripes<'_>,
        me: usize,
        exclusive: bool,
        sub: bool,
        amount: u64,
    ) -> StateResult<(), E> {
        let fail = || {
            if sub {
                StateError::Underflow("counter sub")
            } else {
                StateError::Overflow("counter add")
            }
        };
        if !stripes.0.is_empty() {
            if !exclusive {
                let s = &stripes.0[me.min(stripes.0.len() - 1)][usize::from(sub)];
                let n = s
                    .load(Ordering::Relaxed)
                    .checked_add(amount)
                    .ok_or_else(fail)?;
                s.store(n, Ordering::Relaxed);
                self.mark();
                return Ok(());
            }
            self.fold(stripes)?;
        }
        self.value
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                if sub {
                    v.checked_sub(amount)
                } else {
                    v.checked_add(amount)
                }
            })
            .map_err(|_| fail())?;
        self.mark();
        Ok(())
    }

    /// Marks the cell written: a load first, so that a hot cell's line is
    /// not written again once dirty.
    #[inline]
    fn mark(&self) {
        if !self.dirty.load(Ordering::Relaxed) {
            self.dirty.store(true, Ordering::Relaxed);
        }
    }

    /// The final value if the block wrote the key (after the run).
    pub(crate) fn written<E>(&self, stripes: Stripes<'_>) -> StateResult<Option<u64>, E> {
        if !self.dirty.load(Ordering::Relaxed) {
            return Ok(None);
        }
        self.total(stripes).map(Some)
    }
}

/// A record key's cell.
#[derive(Debug)]
pub(crate) struct RecordCell<V> {
    /// The block-start value, loaded at plan time; never changes after.
    stored: Option<V>,
    /// Invariant: `written` holds what the block wrote exactly when set.
    dirty: AtomicBool,
    /// The value the block wrote.
    written: Mutex<Option<V>>,
}

impl<V: Value> RecordCell<V> {
    /// A cell holding `stored` at the block start.
    pub(crate) fn new(stored: Option<V>) -> Self {
        RecordCell {
            stored,
            dirty: AtomicBool::new(false),
            written: Mutex::new(None),
        }
    }

    /// The current value.
    pub(crate) fn get(&self) -> Option<V> {
        if self.dirty.load(Ordering::Relaxed) {
            self.written.lock().clone()
        } else {
            self.stored.clone()
        }
    }

    fn set(&self, v: V) {
        *self.written.lock() = Some(v);
        self.dirty.store(true, Ordering::Relaxed);
    }

    /// The final value if the block wrote the key (after the run; once).
    pub(crate) fn take_written(&self) -> Option<V> {
        if self.dirty.load(Ordering::Relaxed) {
            self.written.lock().take()
        } else {
            None
        }
    }
}

/// The name of a cell: its partition, kind and index, in 32 bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CellRef(pub(crate) u32);

impl CellRef {
    /// Bits of the index within the partition's cells of one kind.
    const INDEX_BITS: u32 = 25;
    /// The kind bit: set for a record.
    const RECORD: u32 = 1 << Self::INDEX_BITS;
    /// The partition starts here.
    const PART_SHIFT: u32 = Self::INDEX_BITS + 1;
    /// Most cells of one kind a partition may hold.
    pub(crate) const MAX_INDEX: usize = 1 << Self::INDEX_BITS;
    /// Most partitions.
    pub(crate) const MAX_PARTS: usize = 1 << (32 - Self::PART_SHIFT);

    #[inline]
    pub(crate) fn counter(part: usize, index: usize) -> Self {
        CellRef(((part as u32) << Self::PART_SHIFT) | index as u32)
    }

    #[inline]
    pub(crate) fn record(part: usize, index: usize) -> Self {
        CellRef(((part as u32) << Self::PART_SHIFT) | Self::RECORD | index as u32)
    }

    #[inline]
    pub(crate) fn part(self) -> usize {
        (self.0 >> Self::PART_SHIFT) as usize
    }

    #[inline]
    pub(crate) fn is_record(self) -> bool {
        self.0 & Self::RECORD != 0
    }

    #[inline]
    pub(crate) fn index(self) -> usize {
        (self.0 & (Self::RECORD - 1)) as usize
    }
}

/// A cell, borrowed from the plan.
pub(crate) enum CellAt<'a, V> {
    Counter(&'a CounterCell, Stripes<'a>),
    Record(&'a RecordCell<V>),
}

impl<'a, V: Value> CellAt<'a, V> {
    /// The current value (a counter as `V::from_counter`).
    #[inline]
    pub(crate) fn get<E>(&self) -> StateResult<Option<V>, E> {
        match self {
            CellAt::Counter(c, s) => Ok(Some(V::from_counter(c.total(*s)?))),
            CellAt::Record(r) => Ok(r.get()),
        }
    }

    /// The current counter.
    #[inline]
    pub(crate) fn counter<K: Key, E>(&self, key: &K) -> StateResult<u64, E> {
        match self {
            CellAt::Counter(c, s) => c.total(*s),
            CellAt::Record(r) => counter_of(key, r.get().as_ref()),
        }
    }

    #[inline]
    pub(crate) fn set<K: Key, E>(&self, key: &K, v: V) -> StateResult<(), E> {
        match self {
            CellAt::Counter(c, s) => {
                let n = v
                    .as_counter()
                    .ok_or_else(|| StateError::NotCounter(format!("{key:?} set to {v:?}")))?;
                c.set(*s, n)
            }
            CellAt::Record(r) => {
                r.set(v);
                Ok(())
            }
        }
    }

    #[inline]
    pub(crate) fn apply<K: Key, E>(
        &self,
        key: &K,
        me: usize,
        exclusive: bool,
        sub: bool,
        amount: u64,
    ) -> StateResult<(), E> {
        match self {
            CellAt::Counter(c, s) => c.apply(*s, me, exclusive, sub, amount),
            CellAt::Record(_) => Err(super::sequential::record_key(key)),
        }
    }
}

/// One row of block sums: a participant's partial sums.
pub(crate) type SumRow = CachePadded<[AtomicU64; MAX_SUMS]>;

/// Block sums, one row per participant, kept across blocks.
#[derive(Default)]
pub(crate) struct Sums {
    rows: Vec<SumRow>,
}

impl Sums {
    /// Zeroed rows for `participants`.
    pub(crate) fn reset(&mut self, participants: usize) {
        self.rows.truncate(participants);
        for row in self.rows.iter_mut() {
            for s in row.iter_mut() {
                *s.get_mut() = 0;
            }
        }
        self.rows.resize_with(participants, || {
            CachePadded::new(std::array::from_fn(|_| AtomicU64::new(0)))
        });
    }

    /// Participant `me`'s row.
    #[inline]
    pub(crate) fn row(&self, me: usize) -> &SumRow {
        &self.rows[me.min(self.rows.len().saturating_sub(1))]
    }

    /// The totals (after the phase barrier); an overflow of a total is the
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
