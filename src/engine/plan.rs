//! The plan: a key table with one loaded cell per key, the proofs, and the
//! dependency graph, built in one pass per key partition. The only serial
//! step is `Graph::reset` on the calling thread: one pass over each
//! transaction's compact affinity array, for its offsets and its accesses'
//! partition bytes (no key is hashed or compared there).
//!
//! # Partitions and affinity
//! Keys are split into partitions by their *affinity* hash
//! (`Key::affinity`: the SPEC chain gives every key of one account the same
//! affinity, so a sender's nonce, multisig and balances share a partition).
//! There are a few more partitions than participants (`partitions`), so a
//! helper that joins late still finds some to take. Whoever claims a
//! partition ([`plan_partition`]) scans the block's declared accesses in
//! block order and handles only those of its partition: every per-key
//! structure has exactly one writer, and nothing is locked but the
//! partition itself, by its one claimer.
//!
//! One pass per partition does, in order:
//! 1. **Index**: the partition's hash table (hash -> key, probing with the
//!    stored hash: no hashing), per key the list of its accesses in block
//!    order (with their modes), and for every access of its keys the
//!    cell's [`CellRef`] in the block-wide `resolved` table (so execution
//!    never probes).
//! 2. **Prefetch**: every key's block-start value in one batched read
//!    ([`Reader::read_batch`]), and the cells built from them.
//! 3. **Prove**, for each key that is the proof group key of
//!    [`MIN_PROOF_GROUP`] or more transactions: the chain decides whether
//!    the group commutes on the block-start state ([`Chain::prove`]). A
//!    proof may only change the modes of, and read, keys with the group
//!    key's affinity (so everything it needs is in this partition); the
//!    engine refuses a proof that would change another key's mode, or
//!    that reads one, or when a transaction outside the group writes a key
//!    whose mode the proof changes.
//! 4. **Link**: each key with two or more accesses walks its list.
//!    Accesses form *groups*: a run of reads, a run of adds, or a single
//!    write; every access depends on every access of the previous group,
//!    which keeps every order-sensitive pair in block order (reads after
//!    the adds they must see, a write after the reads that must not see
//!    it...). An edge `d -> t` is pushed onto `d`'s lock-free list of
//!    dependents (a CAS on its head; the node lives in the partition's own
//!    arena) and counted in `t`'s pending count. A proven mode is only
//!    ever on a key of the group's own partition, so the proofs this
//!    partition decided are all the link walk needs.
//!
//! Each partition also lists the transactions whose first access is one of
//! its keys (their *home*): the run phase starts those without
//! dependencies. The levels of the graph (and so the critical path) are
//! found while the transactions run (`run.rs`), except for the batch
//! scheduler, which needs them first ([`Graph::levels_in_block_order`]).
//!
//! Every structure is kept across blocks (cleared, not freed).

use std::borrow::Borrow;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;
use hashbrown::HashTable;
use parking_lot::{RwLock, RwLockReadGuard};
use smallvec::SmallVec;

use super::cells::{CellAt, CellRef, CounterCell, RecordCell, Stripe, Stripes};
use super::contract::{
    Accesses, Chain, Key, Mode, ProofView, Reader, StateError, StateResult, Value,
};
use super::release::release;

/// The smallest proof group worth a proof: a proof costs a few hundred
/// nanoseconds (its list walks and block-start reads), while a group of
/// two or three transactions left unproven only chains through its key
/// (measured on `uniform` over 10,000 accounts with 10,000-transaction
/// blocks: 2,700 groups, nearly all of two, made the proofs the plan's
/// largest phase; the critical path does not change).
pub(crate) const MIN_PROOF_GROUP: u32 = 4;

/// No link, no edge.
pub(crate) const NONE: u32 = u32::MAX;
/// Bits of an edge id that index the partition's arena (the rest: the partition).
const ARENA_BITS: u32 = 26;
/// Most partitions a plan splits its keys into.
pub(crate) const MAX_PARTS: usize = if CellRef::MAX_PARTS < (1 << (32 - ARENA_BITS)) {
    CellRef::MAX_PARTS
} else {
    1 << (32 - ARENA_BITS)
};

/// Partitions per participant: enough that a helper joining a little late
/// still finds partitions to take, few enough that the scans (every
/// partition scans every transaction's affinities) stay cheap.
const PARTS_PER_PARTICIPANT: usize = 1;

/// The number of partitions for `participants` working on `txs` transactions.
pub(crate) fn partitions(participants: usize, txs: usize) -> usize {
    if participants <= 1 || txs < 64 {
        return participants.clamp(1, MAX_PARTS);
    }
    (participants * PARTS_PER_PARTICIPANT).clamp(1, MAX_PARTS)
}

/// The partition of an affinity hash among `parts` (multiply-shift on the
/// low 32 bits: the table's own probing uses the top bits for its tags).
#[inline]
pub(crate) fn part_of(affinity: u64, parts: usize) -> usize {
    (((affinity & 0xffff_ffff) * parts as u64) >> 32) as usize
}

/// One access in a key's list: transaction `tx`'s.
#[derive(Clone, Copy)]
struct Link {
    tx: u32,
    next: u32,
    /// The declared mode.
    mode: Mode,
    /// The mode when the transaction is proven: its declared proven mode if
    /// the proof may change it here (the key has the group key's affinity),
    /// else `mode`.
    proven: Mode,
    /// Whether this is the transaction's proof group access.
    group: bool,
}

/// A key's access list.
#[derive(Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
    /// Accesses that are their transaction's proof group access.
    group_members: u32,
    /// All accesses.
    len: u32,
}

impl List {
    const EMPTY: List = List {
        head: NONE,
        tail: NONE,
        group_members: 0,
        len: 0,
    };
}

/// One key of a partition.
struct KeyEntry<K> {
    key: K,
    /// `key_hash(&key)` (the table's probes and rehashes).
    hash: u64,
    /// Its cell.
    cell: CellRef,
    /// Its accesses.
    list: List,
}

/// One dependency edge, in the arena of the partition that found it.
#[derive(Clone, Copy)]
pub(crate) struct EdgeNode {
    /// The dependent.
    pub(crate) to: u32,
    /// The next node of the same dependency's list.
    pub(crate) next: u32,
}

/// The keys of one partition.
pub(crate) struct Partition<K, V> {
    /// Key index by key (probed with the stored hash).
    table: HashTable<u32>,
    /// The keys, in first-access order.
    keys: Vec<KeyEntry<K>>,
    /// Arena of every key's access links.
    links: Vec<Link>,
    /// The cells of the counter keys, and of the record keys.
    counters: Vec<CounterCell>,
    records: Vec<RecordCell<V>>,
    /// Keys that are the proof group key of [`MIN_PROOF_GROUP`] or more
    /// transactions.
    groups: Vec<u32>,
    /// Arena of the edges this partition found.
    edges: Vec<EdgeNode>,
    /// Transactions whose home is this partition (that of their first
    /// access), in block order.
    pub(crate) homes: Vec<u32>,
    /// The prefetch's buffer.
    values: Vec<Option<V>>,
    /// The hot counters' stripes (`cells.rs`), `participants` per cell.
    stripes: Vec<Stripe>,
    /// Participants of the block (stripes per hot counter).
    participants: usize,
    /// Time spent on the index and prefetch, and on proofs and links.
    pub(crate) index_time: Duration,
    pub(crate) graph_time: Duration,
}

impl<K, V> Default for Partition<K, V> {
    fn default() -> Self {
        Partition {
            table: HashTable::new(),
            keys: Vec::new(),
            links: Vec::new(),
            counters: Vec::new(),
            records: Vec::new(),
            groups: Vec::new(),
            edges: Vec::new(),
            homes: Vec::new(),
            values: Vec::new(),
            stripes: Vec::new(),
            participants: 1,
            index_time: Duration::ZERO,
            graph_time: Duration::ZERO,
        }
    }
}

impl<K: Key, V: Value> Partition<K, V> {
    fn clear(&mut self) {
        self.table.clear();
        self.keys.clear();
        self.links.clear();
        self.counters.clear();
        self.records.clear();
        self.groups.clear();
        self.edges.clear();
        self.homes.clear();
        self.values.clear();
        self.stripes.clear();
    }

    /// The index of `key` in partition `p`, created if new (its cell is
    /// built by the prefetch).
    #[inline]
    fn insert(&mut self, p: usize, key: &K, hash: u64, counters: &mut usize) -> u32 {
        let Partition { table, keys, .. } = self;
        match table.entry(
            hash,
            |&i| keys[i as usize].key == *key,
            |&i| keys[i as usize].hash,
        ) {
            hashbrown::hash_table::Entry::Occupied(e) => *e.get(),
            hashbrown::hash_table::Entry::Vacant(v) => {
                let i = keys.len() as u32;
                v.insert(i);
                let cell = if key.is_counter() {
                    *counters += 1;
                    CellRef::counter(p, *counters - 1)
                } else {
                    CellRef::record(p, keys.len() - *counters)
                };
                keys.push(KeyEntry {
                    key: key.clone(),
                    hash,
                    cell,
                    list: List::EMPTY,
                });
                i
            }
        }
    }

    /// Appends `link` to key `k`'s list.
    #[inline]
    fn link(&mut self, k: u32, link: Link) {
        let at = self.links.len() as u32;
        self.links.push(link);
        let list = &mut self.keys[k as usize].list;
        if list.tail == NONE {
            list.head = at;
        } else {
            let tail = list.tail as usize;
            self.links[tail].next = at;
        }
        let list = &mut self.keys[k as usize].list;
        list.tail = at;
        list.len += 1;
        if link.group {
            list.group_members += 1;
            if list.group_members == MIN_PROOF_GROUP {
                self.groups.push(k);
            }
        }
    }

    /// Key `k`'s accesses, in block order.
    fn accesses_of(&self, k: u32) -> impl Iterator<Item = Link> + '_ {
        let mut next = self.keys[k as usize].list.head;
        std::iter::from_fn(move || {
            let link = *self.links.get(next as usize)?;
            next = link.next;
            Some(link)
        })
    }

    /// The index of `key` (hash `hash`), if the block declared it here.
    #[inline]
    fn find(&self, hash: u64, key: &K) -> Option<u32> {
        self.table
            .find(hash, |&i| self.keys[i as usize].key == *key)
            .copied()
    }

    /// The cell `r` names, if it is in this partition.
    #[inline]
    fn cell(&self, r: CellRef) -> Option<CellAt<'_, V>> {
        if r.is_record() {
            self.records.get(r.index()).map(CellAt::Record)
        } else {
            let c = self.counters.get(r.index())?;
            Some(CellAt::Counter(c, self.stripes_of(c)))
        }
    }

    /// Hot counters of this partition (striped ones).
    pub(crate) fn hot_counters(&self) -> usize {
        self.stripes.len() / self.participants.max(1)
    }

    /// The stripes of counter cell `c` (none if it is not hot).
    #[inline]
    fn stripes_of(&self, c: &CounterCell) -> Stripes<'_> {
        if c.stripe == u32::MAX {
            return Stripes(&[]);
        }
        let s = c.stripe as usize;
        Stripes(self.stripes.get(s..s + self.participants).unwrap_or(&[]))
    }

    /// Every key the block wrote, with its final value (after the run;
    /// records are taken, so once), appended to `out`.
    pub(crate) fn collect_written<E>(&self, out: &mut Vec<(K, V)>) -> StateResult<(), E> {
        out.reserve(self.keys.len());
        for e in &self.keys {
            let v = if e.cell.is_record() {
                self.records
                    .get(e.cell.index())
                    .and_then(RecordCell::take_written)
            } else {
                match self.counters.get(e.cell.index()) {
                    Some(c) => c.written(self.stripes_of(c))?.map(V::from_counter),
                    None => None,
                }
            };
            if let Some(v) = v {
                out.push((e.key.clone(), v));
            }
        }
        Ok(())
    }
}

/// The key table of a block: its partitions.
pub(crate) struct Plan<K, V> {
    /// Key with affinity `a` lives in `parts[part_of(a, parts.len())]`; each
    /// on its own cache lines (their writers are different participants).
    /// Written by its one claimer in the plan phase, read-only afterwards.
    parts: Vec<CachePadded<RwLock<Partition<K, V>>>>,
}

impl<K, V> Default for Plan<K, V> {
    fn default() -> Self {
        Plan { parts: Vec::new() }
    }
}

impl<K: Key, V: Value> Plan<K, V> {
    /// Number of partitions.
    pub(crate) fn len(&self) -> usize {
        self.parts.len()
    }

    /// `parts` partitions (reusing the allocations; each is cleared by its
    /// claimer).
    pub(crate) fn reset(&mut self, parts: usize) {
        let parts = parts.clamp(1, MAX_PARTS);
        self.parts.truncate(parts);
        self.parts.resize_with(parts, CachePadded::default);
    }

    /// Partition `i`, for its claimer.
    pub(crate) fn part_mut(&self, i: usize) -> parking_lot::RwLockWriteGuard<'_, Partition<K, V>> {
        self.parts[i].write()
    }

    /// Partition `i`, read-only.
    pub(crate) fn view_part(&self, i: usize) -> RwLockReadGuard<'_, Partition<K, V>> {
        self.parts[i].read()
    }

    /// Every partition, read-only.
    pub(crate) fn view(&self) -> PlanView<'_, K, V> {
        PlanView {
            guards: self.parts.iter().map(|p| p.read()).collect(),
        }
    }
}

/// Every partition of a plan, read-only.
pub(crate) struct PlanView<'p, K, V> {
    guards: SmallVec<[RwLockReadGuard<'p, Partition<K, V>>; 8]>,
}

impl<K: Key, V: Value> PlanView<'_, K, V> {
    /// Number of partitions.
    pub(crate) fn len(&self) -> usize {
        self.guards.len()
    }

    /// The partitions.
    pub(crate) fn parts(&self) -> impl Iterator<Item = &Partition<K, V>> {
        self.guards.iter().map(|g| &**g)
    }

    /// Partition `i`.
    #[inline]
    pub(crate) fn part(&self, i: usize) -> &Partition<K, V> {
        &self.guards[i]
    }

    /// The cell `r` names.
    #[inline]
    pub(crate) fn cell(&self, r: CellRef) -> Option<CellAt<'_, V>> {
        self.guards.get(r.part())?.cell(r)
    }

    /// The cell of `key` (hash `hash`, affinity `affinity`), if declared.
    pub(crate) fn find(&self, hash: u64, affinity: u64, key: &K) -> Option<CellAt<'_, V>> {
        let part = self.part(part_of(affinity, self.guards.len()));
        let i = part.find(hash, key)?;
        part.cell(part.keys.get(i as usize)?.cell)
    }

    /// Number of distinct keys.
    pub(crate) fn keys(&self) -> usize {
        self.parts().map(|p| p.keys.len()).sum()
    }

    /// The edge node `id`, if any.
    #[inline]
    fn edge(&self, id: u32) -> Option<EdgeNode> {
        if id == NONE {
            return None;
        }
        let part = self.guards.get((id >> ARENA_BITS) as usize)?;
        part.edges
            .get((id & ((1 << ARENA_BITS) - 1)) as usize)
            .copied()
    }
}

/// A transaction's graph state (16 bytes: four share a cache line).
#[derive(Default)]
pub(crate) struct TxState {
    /// Unfinished dependencies (`release.rs`).
    pending: AtomicU32,
    /// Head node of its list of dependents.
    head: AtomicU32,
    /// 1 + the highest level of its dependencies, raised by each dependency
    /// before it releases it.
    level: AtomicU32,
    /// [`PROVEN`] and [`HAS_DEPS`].
    flags: AtomicU32,
}

/// Its proof group was proven.
const PROVEN: u32 = 1;
/// It has a dependency (set by the link walks; unlike the pending count,
/// never decremented).
const HAS_DEPS: u32 = 2;

impl TxState {
    fn empty() -> Self {
        TxState {
            pending: AtomicU32::new(0),
            head: AtomicU32::new(NONE),
            level: AtomicU32::new(0),
            flags: AtomicU32::new(0),
        }
    }
}

/// The dependency graph of a block, and what the phases share about it.
#[derive(Default)]
pub(crate) struct Graph {
    /// Per transaction.
    txs: Vec<TxState>,
    /// Where each transaction's accesses start in `resolved` (one more
    /// entry: the total).
    offsets: Vec<u32>,
    /// For access `j` of transaction `t`, at `offsets[t] + j`: its cell
    /// (written once by the partition that owns the key, in the plan phase).
    resolved: Vec<AtomicU32>,
    /// For access `j` of transaction `t`, at `offsets[t] + j`: the partition
    /// of its key (what each partition scans: a byte per access in one
    /// array, instead of every transaction's declaration).
    parts_of: Vec<u8>,
    /// Per partition: claimed for the plan phase, and by whom.
    planned: Vec<CachePadded<PartClaim>>,
    /// Next unclaimed home transaction of each partition (run phase).
    cursors: Vec<CachePadded<AtomicUsize>>,
    /// Partitions whose plan finished (`Release` by each claimer).
    pub(crate) plans_done: CachePadded<AtomicUsize>,
}

/// The shape of a block's graph, measured after its run.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Measured {
    /// Number of levels (the critical path, in transactions).
    pub(crate) critical_path: usize,
    /// Size of the largest level.
    pub(crate) largest_level: usize,
    /// Transactions whose proof group was proven.
    pub(crate) proven: usize,
}

/// A partition's claim for one phase.
#[derive(Default)]
pub(crate) struct PartClaim {
    claimed: AtomicBool,
    /// Participant that planned it.
    owner: AtomicUsize,
}

impl Graph {
    /// Clears the graph for `txs` over `parts` partitions: per-transaction
    /// state, and where each transaction's accesses start (one serial
    /// pass over the transactions' access counts).
    pub(crate) fn reset<C, T>(&mut self, chain: &C, txs: &[T], parts: usize)
    where
        C: Chain,
        T: Borrow<C::Tx>,
    {
        let n = txs.len();
        self.txs.clear();
        self.txs.resize_with(n, TxState::empty);
        self.offsets.clear();
        self.parts_of.clear();
        let mut total = 0u32;
        for tx in txs {
            self.offsets.push(total);
            let affinities = chain.accesses(tx.borrow()).affinities();
            total += affinities.len() as u32;
            self.parts_of.extend(
                affinities
                    .iter()
                    .map(|&a| part_of(u64::from(a), parts) as u8),
            );
        }
        self.offsets.push(total);
        // Every entry is written by the plan before it is read: no clearing.
        if self.resolved.len() < total as usize {
            self.resolved
                .resize_with(total as usize, || AtomicU32::new(NONE));
        }
        reset_atomics(&mut self.planned, parts, CachePadded::default, |c| {
            *c.claimed.get_mut() = false;
        });
        reset_atomics(&mut self.cursors, parts, CachePadded::default, |c| {
            *c.get_mut() = 0
        });
        *self.plans_done.get_mut() = 0;
    }

    /// Claims partition `p` for planning by participant `me`.
    pub(crate) fn claim_plan(&self, p: usize, me: usize) -> bool {
        let c = &self.planned[p];
        if c.claimed.load(Ordering::Relaxed) || c.claimed.swap(true, Ordering::Relaxed) {
            return false;
        }
        c.owner.store(me, Ordering::Relaxed);
        true
    }

    /// The participant that planned partition `p`.
    pub(crate) fn planner(&self, p: usize) -> usize {
        self.planned[p].owner.load(Ordering::Relaxed)
    }

    /// The resolved cells of transaction `t`'s accesses.
    #[inline]
    pub(crate) fn resolved(&self, t: usize) -> &[AtomicU32] {
        let start = self.offsets[t] as usize;
        let end = self.offsets[t + 1] as usize;
        &self.resolved[start..end]
    }

    /// Whether transaction `t` runs with its proof group proven.
    #[inline]
    pub(crate) fn is_proven(&self, t: usize) -> bool {
        self.txs[t].flags.load(Ordering::Relaxed) & PROVEN != 0
    }

    /// Whether `t` depends on nothing (a root of the graph).
    #[inline]
    pub(crate) fn is_root(&self, t: u32) -> bool {
        self.txs[t as usize].flags.load(Ordering::Relaxed) & HAS_DEPS == 0
    }

    /// Called by each dependency of `d` once it finished; `true` for exactly
    /// one caller, the last, which must then run `d` (`release.rs`).
    #[inline]
    pub(crate) fn release(&self, d: u32) -> bool {
        release(&self.txs[d as usize].pending)
    }

    /// The dependents of `t` (a released transaction walks them).
    #[inline]
    pub(crate) fn dependents<'v, 'p: 'v, K: Key, V: Value>(
        &self,
        view: &'v PlanView<'p, K, V>,
        t: u32,
    ) -> impl Iterator<Item = u32> + use<'v, 'p, K, V> {
        let mut next = self.txs[t as usize].head.load(Ordering::Relaxed);
        std::iter::from_fn(move || {
            let e = view.edge(next)?;
            next = e.next;
            Some(e.to)
        })
    }

    /// The next chunk of up to `chunk` of `homes` (partition `p`'s) nobody
    /// claimed yet.
    #[inline]
    pub(crate) fn claim_homes<'r>(&self, homes: &'r [u32], p: usize, chunk: usize) -> &'r [u32] {
        if self.cursors[p].load(Ordering::Relaxed) >= homes.len() {
            return &[];
        }
        let start = self.cursors[p].fetch_add(chunk, Ordering::Relaxed);
        homes
            .get(start..(start + chunk).min(homes.len()))
            .unwrap_or(&[])
    }

    /// `t`'s level (final once it is released: every dependency raised it
    /// before its releasing decrement).
    #[inline]
    pub(crate) fn level(&self, t: u32) -> u32 {
        self.txs[t as usize].level.load(Ordering::Relaxed)
    }

    /// Raises dependent `d`'s level to at least `level` (before releasing it).
    #[inline]
    pub(crate) fn raise(&self, d: u32, level: u32) {
        let l = &self.txs[d as usize].level;
        if l.load(Ordering::Relaxed) < level {
            l.fetch_max(level, Ordering::Relaxed);
        }
    }

    /// Critical path, largest level (from the levels the run left) and
    /// proven count: one pass.
    pub(crate) fn measure(&self) -> Measured {
        let mut width: Vec<u32> = Vec::new();
        let mut proven = 0;
        for s in self.txs.iter() {
            let l = s.level.load(Ordering::Relaxed) as usize;
            if width.len() <= l {
                width.resize(l + 1, 0);
            }
            width[l] += 1;
            proven += usize::from(s.flags.load(Ordering::Relaxed) & PROVEN != 0);
        }
        Measured {
            critical_path: width.len(),
            largest_level: width.iter().copied().max().unwrap_or(0) as usize,
            proven,
        }
    }

    /// The levels before anything runs (the batch scheduler needs them):
    /// one pass in block order, every edge going forward.
    pub(crate) fn levels_in_block_order<K: Key, V: Value>(&self, view: &PlanView<'_, K, V>) {
        for t in 0..self.txs.len() {
            let level = self.txs[t].level.load(Ordering::Relaxed);
            for d in self.dependents(view, t as u32) {
                let l = &self.txs[d as usize].level;
                if l.load(Ordering::Relaxed) < level + 1 {
                    l.store(level + 1, Ordering::Relaxed);
                }
            }
        }
    }

    /// The transactions of each level, in block order, flattened, with
    /// where each level starts (after [`Self::levels_in_block_order`]).
    pub(crate) fn batches(&self, order: &mut Vec<u32>, starts: &mut Vec<u32>) {
        let mut width: Vec<u32> = Vec::new();
        for s in &self.txs {
            let l = s.level.load(Ordering::Relaxed) as usize;
            if width.len() <= l {
                width.resize(l + 1, 0);
            }
            width[l] += 1;
        }
        starts.clear();
        let mut at = 0u32;
        for w in &width {
            starts.push(at);
            at += w;
        }
        starts.push(at);
        let mut fill: Vec<u32> = starts[..width.len()].to_vec();
        order.clear();
        order.resize(self.txs.len(), 0);
        for (t, s) in self.txs.iter().enumerate() {
            let l = s.level.load(Ordering::Relaxed) as usize;
            order[fill[l] as usize] = t as u32;
            fill[l] += 1;
        }
    }

    /// The cost-weighted critical path: the largest sum of `costs` along a
    /// dependency chain (edges go forward in block order: one pass).
    pub(crate) fn weighted_critical_path<K: Key, V: Value>(
        &self,
        view: &PlanView<'_, K, V>,
        costs: &[f64],
    ) -> f64 {
        let n = self.txs.len();
        let mut start = vec![0f64; n];
        let mut longest = 0f64;
        for t in 0..n {
            let finish = start[t] + costs.get(t).copied().unwrap_or(0.0);
            longest = longest.max(finish);
            for d in self.dependents(view, t as u32) {
                let d = d as usize;
                start[d] = start[d].max(finish);
            }
        }
        longest
    }
}

/// Resizes a vector to `n`, resetting the kept entries in place.
fn reset_atomics<A>(v: &mut Vec<A>, n: usize, new: impl Fn() -> A, reset: impl Fn(&mut A)) {
    v.truncate(n);
    v.iter_mut().for_each(reset);
    v.resize_with(n, new);
}

/// What the plan of one partition reads.
pub(crate) struct PlanInput<'a, C: Chain, R, T> {
    pub(crate) chain: &'a C,
    pub(crate) block: &'a C::Block,
    pub(crate) block_accesses: &'a Accesses<C::Key>,
    pub(crate) txs: &'a [T],
    pub(crate) reader: &'a R,
    pub(crate) graph: &'a Graph,
    /// Number of partitions.
    pub(crate) parts: usize,
    /// Number of participants.
    pub(crate) participants: usize,
}

/// The whole plan of partition `p` (see the module docs): index, prefetch,
/// proofs, links. Returns the number of edges it found.
pub(crate) fn plan_partition<C, R, T>(
    part: &mut Partition<C::Key, C::Value>,
    p: usize,
    input: &PlanInput<'_, C, R, T>,
) -> StateResult<usize, R::Error>
where
    C: Chain,
    R: Reader<C::Key, C::Value>,
    T: Borrow<C::Tx> + Sync,
{
    let start = Instant::now();
    index(part, p, input);
    prefetch(part, input.reader)?;
    let indexed = Instant::now();
    if !part.groups.is_empty() {
        prove(part, input)?;
    }
    part.participants = input.participants.max(1);
    let edges = link(part, p, input.graph);
    part.index_time = indexed - start;
    part.graph_time = indexed.elapsed();
    Ok(edges)
}

/// Step 1: the partition's keys, lists and resolved accesses.
fn index<C, R, T>(part: &mut Partition<C::Key, C::Value>, p: usize, input: &PlanInput<'_, C, R, T>)
where
    C: Chain,
    T: Borrow<C::Tx>,
{
    let parts = input.parts;
    let graph = input.graph;
    part.clear();
    let mut counters = 0usize;
    for a in input.block_accesses.list() {
        if part_of(a.affinity, parts) == p {
            part.insert(p, &a.key, a.hash, &mut counters);
        }
    }
    let p8 = p as u8;
    for (t, tx) in input.txs.iter().enumerate() {
        let base = graph.offsets[t] as usize;
        let end = graph.offsets[t + 1] as usize;
        let Some(mine) = graph.parts_of.get(base..end) else {
            continue;
        };
        if !mine.contains(&p8) {
            continue;
        }
        let accesses = input.chain.accesses(tx.borrow());
        let group = accesses.group_index();
        let group_affinity = accesses.group().map(|g| g.affinity);
        for (j, a) in accesses.list().iter().enumerate() {
            if mine.get(j) != Some(&p8) {
                continue;
            }
            if j == 0 {
                part.homes.push(t as u32);
            }
            let k = part.insert(p, &a.key, a.hash, &mut counters);
            if let Some(slot) = graph.resolved.get(base + j) {
                slot.store(part.keys[k as usize].cell.0, Ordering::Relaxed);
            }
            let proven = if group_affinity == Some(a.affinity) {
                a.proven
            } else {
                a.mode
            };
            part.link(
                k,
                Link {
                    tx: t as u32,
                    next: NONE,
                    mode: a.mode,
                    proven,
                    group: group == Some(j),
                },
            );
        }
    }
}

/// Step 2: every key's block-start value in one batch, and the cells.
fn prefetch<K: Key, V: Value, R: Reader<K, V>>(
    part: &mut Partition<K, V>,
    reader: &R,
) -> StateResult<(), R::Error> {
    let Partition {
        keys,
        counters,
        records,
        values,
        ..
    } = part;
    if keys.len() >= CellRef::MAX_INDEX {
        return Err(StateError::Invariant("too many keys in one partition"));
    }
    values.clear();
    {
        let refs: Vec<&K> = keys.iter().map(|e| &e.key).collect();
        reader.read_batch(&refs, values).map_err(StateError::Read)?;
    }
    if values.len() != keys.len() {
        return Err(StateError::Invariant(
            "a batch read answered a different count",
        ));
    }
    for (e, value) in keys.iter().zip(values.drain(..)) {
        if e.cell.is_record() {
            records.push(RecordCell::new(value));
        } else {
            counters.push(CounterCell::new(super::sequential::counter_of(
                &e.key,
                value.as_ref(),
            )?));
        }
    }
    Ok(())
}

/// Step 3: the proofs of the partition's group keys.
fn prove<C, R, T>(
    part: &mut Partition<C::Key, C::Value>,
    input: &PlanInput<'_, C, R, T>,
) -> StateResult<(), R::Error>
where
    C: Chain,
    R: Reader<C::Key, C::Value>,
    T: Borrow<C::Tx>,
{
    let part = &*part;
    let mut members: Vec<u32> = Vec::new();
    let mut refs: Vec<&C::Tx> = Vec::new();
    for &k in &part.groups {
        members.clear();
        // Every access to the group key must be a member's group access:
        // another access could change what the proof read.
        let mut foreign = false;
        for link in part.accesses_of(k) {
            if link.group {
                members.push(link.tx);
            } else {
                foreign = true;
            }
        }
        let affinity = part.keys[k as usize].key.affinity();
        if foreign
            || members.len() < MIN_PROOF_GROUP as usize
            || !provable_here(part, input, &members, affinity)
        {
            continue;
        }
        refs.clear();
        refs.extend(members.iter().map(|&t| input.txs[t as usize].borrow()));
        let mut start = StartView::<C, R::Error> {
            part,
            chain: input.chain,
            group: &refs,
            affinity,
            strayed: false,
            _error: std::marker::PhantomData,
        };
        if input.chain.prove(input.block, &refs, &mut start)? && !start.strayed {
            for &t in &members {
                input.graph.txs[t as usize]
                    .flags
                    .fetch_or(PROVEN, Ordering::Relaxed);
            }
        }
    }
    Ok(())
}

/// Whether the proof of `members` (group key affinity `affinity`) may be
/// used: every access whose mode it changes has the group's affinity (so
/// lives here), and no transaction outside `members` writes one of them.
fn provable_here<C, R, T>(
    part: &Partition<C::Key, C::Value>,
    input: &PlanInput<'_, C, R, T>,
    members: &[u32],
    affinity: u64,
) -> bool
where
    C: Chain,
    T: Borrow<C::Tx>,
{
    let mut keys: SmallVec<[(u64, &C::Key); 4]> = SmallVec::new();
    for &m in members {
        let accesses = input.chain.accesses(input.txs[m as usize].borrow());
        // The group key itself was checked: only members access it.
        let group = accesses.group_index();
        for (j, a) in accesses.list().iter().enumerate() {
            if a.mode == a.proven || Some(j) == group {
                continue;
            }
            if a.affinity != affinity {
                return false;
            }
            if !keys.iter().any(|(h, k)| *h == a.hash && **k == a.key) {
                keys.push((a.hash, &a.key));
            }
        }
    }
    keys.into_iter().all(|(hash, key)| {
        part.find(hash, key).is_some_and(|k| {
            part.accesses_of(k)
                .all(|l| l.mode != Mode::Write || members.binary_search(&l.tx).is_ok())
        })
    })
}

/// Adds to one counter from this many transactions make it hot: its adds
/// go to per-participant stripes (`cells.rs`) instead of one contended
/// cache line.
const HOT_ADDS: u32 = 8;

/// Step 4: the edges of the partition's keys with two or more accesses,
/// and the stripes of its hot counters.
fn link<K: Key, V: Value>(part: &mut Partition<K, V>, p: usize, graph: &Graph) -> usize {
    let Partition {
        keys,
        links,
        edges,
        counters,
        stripes,
        participants,
        ..
    } = part;
    let base = (p as u32) << ARENA_BITS;
    let mut prev: SmallVec<[u32; 8]> = SmallVec::new();
    let mut cur: SmallVec<[u32; 8]> = SmallVec::new();
    for entry in keys.iter().filter(|e| e.list.len > 1) {
        let list = entry.list;
        prev.clear();
        cur.clear();
        let mut cur_mode: Option<Mode> = None;
        let mut adds = 0u32;
        let mut next = list.head;
        while let Some(link) = links.get(next as usize) {
            next = link.next;
            let t = link.tx;
            let state = &graph.txs[t as usize];
            let mode =
                if link.proven != link.mode && state.flags.load(Ordering::Relaxed) & PROVEN != 0 {
                    link.proven
                } else {
                    link.mode
                };
            adds += u32::from(mode == Mode::Add);
            if cur_mode != Some(mode) || mode == Mode::Write {
                std::mem::swap(&mut prev, &mut cur);
                cur.clear();
                cur_mode = Some(mode);
            }
            if !prev.is_empty() {
                for &d in &prev {
                    let id = base | edges.len() as u32;
                    let head = &graph.txs[d as usize].head;
                    let mut old = head.load(Ordering::Relaxed);
                    edges.push(EdgeNode { to: t, next: old });
                    let node = edges.len() - 1;
                    // Lock-free push; the plan phase's barrier publishes
                    // the lists before anything reads them.
                    while let Err(now) =
                        head.compare_exchange_weak(old, id, Ordering::Relaxed, Ordering::Relaxed)
                    {
                        old = now;
                        edges[node].next = old;
                    }
                    state.pending.fetch_add(1, Ordering::Relaxed);
                }
                if state.flags.load(Ordering::Relaxed) & HAS_DEPS == 0 {
                    state.flags.fetch_or(HAS_DEPS, Ordering::Relaxed);
                }
            }
            cur.push(t);
        }
        if adds >= HOT_ADDS && *participants > 1 && !entry.cell.is_record() {
            if let Some(c) = counters.get_mut(entry.cell.index()) {
                c.stripe = stripes.len() as u32;
                stripes.resize_with(stripes.len() + *participants, Stripe::default);
            }
        }
    }
    edges.len()
}

/// Block-start reads for a proof, of keys with the group key's affinity
/// that the group declared (found through their declarations, with the
/// hashes computed at admission: a proof hashes nothing). A read of any
/// other key marks the proof as strayed: it is then not used.
struct StartView<'a, C: Chain, E> {
    part: &'a Partition<C::Key, C::Value>,
    chain: &'a C,
    group: &'a [&'a C::Tx],
    affinity: u64,
    strayed: bool,
    _error: std::marker::PhantomData<fn() -> E>,
}

impl<'a, C: Chain, E> StartView<'a, C, E> {
    fn cell(&mut self, key: &C::Key) -> Option<CellAt<'a, C::Value>> {
        let access = self.group.iter().find_map(|tx| {
            let accesses = self.chain.accesses(tx);
            accesses.find(key).map(|j| &accesses.list()[j])
        });
        let found = access
            .filter(|a| a.affinity == self.affinity)
            .and_then(|a| self.part.find(a.hash, key))
            .and_then(|k| self.part.cell(self.part.keys.get(k as usize)?.cell));
        if found.is_none() {
            self.strayed = true;
        }
        found
    }
}

impl<C: Chain, E: std::error::Error + Send + Sync + 'static> ProofView<C::Key, C::Value>
    for StartView<'_, C, E>
{
    type ReadError = E;

    fn get(&mut self, key: &C::Key) -> StateResult<Option<C::Value>, E> {
        match self.cell(key) {
            Some(c) => c.get(),
            None => Ok(None),
        }
    }

    fn counter(&mut self, key: &C::Key) -> StateResult<u64, E> {
        match self.cell(key) {
            Some(c) => c.counter(key),
            None => Ok(0),
        }
    }
}

/// The shape of the graph of a block's first transactions, before any plan
/// (the sample guard of `policy.rs`), by the same group rule as
/// `link`: every proof group key shared in the sample is
/// assumed proven (coverage is unknown yet; what remains serial is serial
/// in the block).
pub(crate) fn sample_shape<C, T>(chain: &C, sample: &[T]) -> super::policy::Shape
where
    C: Chain,
    T: Borrow<C::Tx>,
{
    /// A key's current group: its mode, the highest level of its members,
    /// and the lowest level a new member may take (after the previous
    /// group); `shared` counts the transactions whose group key it is.
    struct Group<'k, K> {
        key: &'k K,
        hash: u64,
        mode: Option<Mode>,
        top: u32,
        start: u32,
        shared: u32,
    }
    let mut keys: HashTable<Group<'_, C::Key>> = HashTable::with_capacity(sample.len() * 4);
    let find = |keys: &HashTable<Group<'_, C::Key>>, a: &super::contract::Access<C::Key>| {
        keys.find(a.hash, |g| g.hash == a.hash && *g.key == a.key)
            .map(|g| (g.mode, g.top, g.start, g.shared))
    };
    for tx in sample {
        let accesses = chain.accesses(tx.borrow());
        for a in accesses.list() {
            let group = keys
                .entry(a.hash, |g| g.hash == a.hash && *g.key == a.key, |g| g.hash)
                .or_insert_with(|| Group {
                    key: &a.key,
                    hash: a.hash,
                    mode: None,
                    top: 0,
                    start: 0,
                    shared: 0,
                })
                .into_mut();
            if accesses
                .group()
                .is_some_and(|g| g.hash == a.hash && g.key == a.key)
            {
                group.shared += 1;
            }
        }
    }
    let joins = |mode: Option<Mode>, m: Mode| mode == Some(m) && m != Mode::Write;
    let mut depth = 0u32;
    for tx in sample {
        let accesses = chain.accesses(tx.borrow());
        let proven = accesses
            .group()
            .and_then(|g| find(&keys, g))
            .is_some_and(|(_, _, _, shared)| shared >= MIN_PROOF_GROUP);
        let mode_of = |a: &super::contract::Access<C::Key>| a.mode_when(proven);
        let level = accesses
            .list()
            .iter()
            .map(|a| match find(&keys, a) {
                Some((None, ..)) | None => 0,
                Some((mode, _, start, _)) if joins(mode, mode_of(a)) => start,
                Some((_, top, _, _)) => top + 1,
            })
            .max()
            .unwrap_or(0);
        for a in accesses.list() {
            let m = mode_of(a);
            if let Some(g) = keys.find_mut(a.hash, |x| x.hash == a.hash && *x.key == a.key) {
                if g.mode.is_none() {
                    g.mode = Some(m);
                    g.top = level;
                } else if joins(g.mode, m) {
                    g.top = g.top.max(level);
                } else {
                    g.start = g.top + 1;
                    g.top = level;
                    g.mode = Some(m);
                }
            }
        }
        depth = depth.max(level + 1);
    }
    super::policy::Shape {
        txs: sample.len(),
        critical_path: if sample.is_empty() { 0 } else { depth as usize },
        distinct_keys: keys.len(),
    }
}
