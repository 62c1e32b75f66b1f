//! The plan: a key table with one loaded cell per key, the proofs, and the
//! dependency graph, built in parallel phases with no serial pass over the
//! accesses.
//!
//! # Partitions and affinity
//! Keys are split into one partition per worker by their *affinity* hash
//! (`Key::affinity`: the SPEC chain gives every key of one account the same
//! affinity, so a sender's nonce, multisig and balances share a partition).
//! Every phase is a rayon *broadcast*: worker `i` always works on partition
//! `i`, so a partition's cells are built, loaded, linked, executed when
//! they can be, and collected by one core, and stay in its cache. Each
//! phase, each worker scans the block's declared accesses in block order
//! and handles only those of its own partition: every per-key structure
//! has exactly one writer, and no lock is contended (a worker locks its own
//! partition's mutex for a phase; between phases the caller locks them all
//! to share them read-only).
//!
//! 1. **Index** ([`index_partition`]): the partition's hash table (hash ->
//!    cell, probing with the stored hash: no hashing), one [`Cell`] per key,
//!    per cell the list of its accesses in block order (with their modes),
//!    and per access of its keys the cell's index (so execution never
//!    probes); then every cell's block-start value in one batched read
//!    ([`Reader::read_batch`]): the prefetch.
//! 2. **Prove** ([`prove_partition`], only when some proof group key is
//!    shared by [`MIN_PROOF_GROUP`] or more transactions): for each such key, the chain
//!    decides whether the group commutes on the block-start state
//!    ([`Chain::prove`]); the engine refuses a proof when a transaction
//!    outside the group writes a key whose mode the proof changes.
//! 3. **Link** ([`link_partition`]): each cell with two or more accesses
//!    walks its list. Accesses form *groups*: a run of reads, a run of adds,
//!    or a single write; every access depends on every access of the
//!    previous group, which keeps every order-sensitive pair in block order
//!    (reads after the adds they must see, a write after the reads that
//!    must not see it...). An edge `d -> t` is pushed onto `d`'s lock-free
//!    list of dependents (a CAS on its head; the node lives in the
//!    partition's own arena) and counted in `t`'s pending count.
//!
//! Each partition also lists the transactions whose first access is one of
//! its keys (their *home*): its worker runs those without dependencies.
//! The levels of the graph (and so the critical path) are found while the
//! transactions run (`run.rs`), except for the batch scheduler, which
//! needs them first ([`Graph::levels_in_block_order`]).
//!
//! Every structure is kept across blocks (cleared, not freed).

use std::borrow::Borrow;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

use crossbeam_utils::CachePadded;
use hashbrown::HashTable;
use parking_lot::{Mutex, MutexGuard};
use smallvec::SmallVec;

use super::cells::{Cell, StartView};
use super::contract::{Accesses, Chain, Key, Mode, Reader, StateError, StateResult, Value};
use super::release::PendingCounts;

/// The smallest proof group worth a proof: a proof costs a few hundred
/// nanoseconds (its list walks and block-start reads), while a group of
/// two or three transactions left unproven only chains through its key
/// (measured on `uniform` over 10,000 accounts with 10,000-transaction
/// blocks: 2,700 groups, nearly all of two, made the proofs the plan's
/// largest phase; the critical path does not change).
pub(crate) const MIN_PROOF_GROUP: u32 = 4;

/// No link, no edge, no cell.
pub(crate) const NONE: u32 = u32::MAX;
/// Bits of a node id that index the partition's arena (the rest: the partition).
const ARENA_BITS: u32 = 26;
/// Most partitions a plan splits its keys into.
pub(crate) const MAX_PARTS: usize = 1 << (32 - ARENA_BITS);

/// The partition of an affinity hash among `parts` (multiply-shift on the
/// low 32 bits: the table's own probing uses the top bits for its tags).
#[inline]
pub(crate) fn part_of(affinity: u64, parts: usize) -> usize {
    (((affinity & 0xffff_ffff) * parts as u64) >> 32) as usize
}

/// One access in a cell's list: transaction `tx`'s access number `access`.
#[derive(Clone, Copy)]
struct Link {
    tx: u32,
    next: u32,
    /// The declared mode, and the mode when the transaction is proven.
    mode: Mode,
    proven: Mode,
    /// Whether this is the transaction's proof group access.
    group: bool,
}

/// A cell's access list.
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

/// One dependency edge, in the arena of the partition that found it.
#[derive(Clone, Copy)]
pub(crate) struct EdgeNode {
    /// The dependent.
    pub(crate) to: u32,
    /// The next node of the same dependency's list.
    pub(crate) next: u32,
}

/// The keys of one partition (one worker's).
pub(crate) struct Partition<K, V> {
    /// Cell index by key (probed with the stored hash).
    table: HashTable<u32>,
    /// The cells; `lists[i]` belongs to `cells[i]`.
    pub(crate) cells: Vec<Cell<K, V>>,
    lists: Vec<List>,
    /// Arena of every cell's access links.
    links: Vec<Link>,
    /// Cells that are the proof group key of [`MIN_PROOF_GROUP`] or more
    /// transactions.
    groups: Vec<u32>,
    /// Arena of the edges this partition found.
    pub(crate) edges: Vec<EdgeNode>,
    /// For access `j` of transaction `t` whose key lives here, at
    /// `offsets[t] + j`: the cell's index (other entries: [`NONE`]).
    resolved: Vec<u32>,
    /// Partition 0 only: where each transaction's accesses start in
    /// `resolved` (one more entry: the total).
    offsets: Vec<u32>,
    /// Transactions whose home is this partition (that of their first
    /// access), in block order: its worker runs those without dependencies.
    pub(crate) homes: Vec<u32>,
}

impl<K, V> Default for Partition<K, V> {
    fn default() -> Self {
        Partition {
            table: HashTable::new(),
            cells: Vec::new(),
            lists: Vec::new(),
            links: Vec::new(),
            groups: Vec::new(),
            edges: Vec::new(),
            resolved: Vec::new(),
            offsets: Vec::new(),
            homes: Vec::new(),
        }
    }
}

impl<K: Key, V: Value> Partition<K, V> {
    fn clear(&mut self) {
        self.table.clear();
        self.cells.clear();
        self.lists.clear();
        self.links.clear();
        self.groups.clear();
        self.edges.clear();
        self.resolved.clear();
        self.offsets.clear();
        self.homes.clear();
    }

    /// The cell of `key`, created if new.
    fn insert(&mut self, key: &K, hash: u64) -> u32 {
        let Partition {
            table,
            cells,
            lists,
            ..
        } = self;
        match table.entry(
            hash,
            |&i| cells[i as usize].key == *key,
            |&i| cells[i as usize].hash,
        ) {
            hashbrown::hash_table::Entry::Occupied(e) => *e.get(),
            hashbrown::hash_table::Entry::Vacant(v) => {
                let i = cells.len() as u32;
                v.insert(i);
                cells.push(Cell::new(key.clone(), hash));
                lists.push(List::EMPTY);
                i
            }
        }
    }

    /// Appends `link` to cell `c`'s list.
    fn link(&mut self, c: u32, link: Link) {
        let at = self.links.len() as u32;
        self.links.push(link);
        let list = &mut self.lists[c as usize];
        if list.tail == NONE {
            list.head = at;
        } else {
            self.links[list.tail as usize].next = at;
        }
        list.tail = at;
        list.len += 1;
        if link.group {
            list.group_members += 1;
            if list.group_members == MIN_PROOF_GROUP {
                self.groups.push(c);
            }
        }
    }

    /// Cell `c`'s accesses, in block order.
    fn accesses_of(&self, c: u32) -> impl Iterator<Item = Link> + '_ {
        let mut next = self.lists[c as usize].head;
        std::iter::from_fn(move || {
            let link = *self.links.get(next as usize)?;
            next = link.next;
            Some(link)
        })
    }

    /// The cell of `key` (hash `hash`), if the block declared it.
    fn find(&self, hash: u64, key: &K) -> Option<u32> {
        self.table
            .find(hash, |&i| self.cells[i as usize].key == *key)
            .copied()
    }
}

/// The key table of a block: its partitions, one per worker.
pub(crate) struct Plan<K, V> {
    /// Key with affinity `a` lives in `parts[part_of(a, parts.len())]`; each
    /// on its own cache lines (their writers are different workers).
    parts: Vec<CachePadded<Mutex<Partition<K, V>>>>,
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

    /// `parts` empty partitions (reusing the allocations).
    pub(crate) fn reset(&mut self, parts: usize) {
        let parts = parts.clamp(1, MAX_PARTS);
        self.parts.truncate(parts);
        self.parts.resize_with(parts, CachePadded::default);
    }

    /// Partition `i`, for one worker's phase.
    pub(crate) fn part(&self, i: usize) -> MutexGuard<'_, Partition<K, V>> {
        self.parts[i].lock()
    }

    /// Every partition, read-only (the caller holds them for a shared phase).
    pub(crate) fn view(&self) -> PlanView<'_, K, V> {
        PlanView {
            guards: self.parts.iter().map(|p| p.lock()).collect(),
        }
    }
}

/// Every partition of a plan, locked for a read-only phase.
pub(crate) struct PlanView<'p, K, V> {
    guards: Vec<MutexGuard<'p, Partition<K, V>>>,
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

    /// The cell of `key` (hash `hash`, affinity `affinity`), if declared.
    #[inline]
    pub(crate) fn cell(&self, hash: u64, affinity: u64, key: &K) -> Option<&Cell<K, V>> {
        let part = self.part(part_of(affinity, self.guards.len()));
        let i = part.find(hash, key)?;
        part.cells.get(i as usize)
    }

    /// The cell of transaction `t`'s access `j` (affinity `affinity`).
    #[inline]
    pub(crate) fn resolved(&self, t: usize, j: usize, affinity: u64) -> Option<&Cell<K, V>> {
        let at = *self.part(0).offsets.get(t)? as usize + j;
        let part = self.part(part_of(affinity, self.guards.len()));
        let i = *part.resolved.get(at)?;
        part.cells.get(i as usize)
    }

    /// Number of distinct keys.
    pub(crate) fn keys(&self) -> usize {
        self.parts().map(|p| p.cells.len()).sum()
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

/// Phase 1 for partition `p` of `parts`: its key table, links and resolved
/// accesses, for `txs` and the block hooks' `block` accesses, every cell
/// loaded from `reader`.
pub(crate) fn index_partition<C, R, T>(
    part: &mut Partition<C::Key, C::Value>,
    p: usize,
    parts: usize,
    chain: &C,
    block: &Accesses<C::Key>,
    txs: &[T],
    reader: &R,
) -> StateResult<(), R::Error>
where
    C: Chain,
    R: Reader<C::Key, C::Value>,
    T: Borrow<C::Tx> + Sync,
{
    part.clear();
    for a in block.list() {
        if part_of(a.affinity, parts) == p {
            part.insert(&a.key, a.hash);
        }
    }
    let mut offset = 0u32;
    for (t, tx) in txs.iter().enumerate() {
        let accesses = chain.accesses(tx.borrow());
        let affinities = accesses.affinities();
        if p == 0 {
            part.offsets.push(offset);
        }
        let group = accesses.group_index();
        for (j, &affinity) in affinities.iter().enumerate() {
            if part_of(u64::from(affinity), parts) != p {
                continue;
            }
            let a = &accesses.list()[j];
            if j == 0 {
                part.homes.push(t as u32);
            }
            let c = part.insert(&a.key, a.hash);
            let at = (offset as usize) + j;
            if part.resolved.len() <= at {
                part.resolved.resize(at + 1, NONE);
            }
            part.resolved[at] = c;
            part.link(
                c,
                Link {
                    tx: t as u32,
                    next: NONE,
                    mode: a.mode,
                    proven: a.proven,
                    group: group == Some(j),
                },
            );
        }
        offset += affinities.len() as u32;
    }
    if p == 0 {
        part.offsets.push(offset);
    }
    // The prefetch: every cell's block-start value, one batch.
    let mut values = Vec::with_capacity(part.cells.len());
    {
        let keys: Vec<&C::Key> = part.cells.iter().map(|c| &c.key).collect();
        reader
            .read_batch(&keys, &mut values)
            .map_err(StateError::Read)?;
    }
    if values.len() != part.cells.len() {
        return Err(StateError::Invariant(
            "a batch read answered a different count",
        ));
    }
    for (cell, value) in part.cells.iter_mut().zip(values) {
        cell.load(value)?;
    }
    Ok(())
}

/// The dependency graph of a block.
#[derive(Default)]
pub(crate) struct Graph {
    /// Unfinished dependencies of each transaction (`release.rs`).
    pub(crate) pending: PendingCounts,
    /// Head node of each transaction's list of dependents.
    heads: Vec<AtomicU32>,
    /// Whether each transaction's proof group was proven.
    proven: Vec<AtomicBool>,
    /// Whether each transaction has a dependency (set by the link phase;
    /// unlike the pending count, never decremented).
    has_deps: Vec<AtomicBool>,
    /// Level of each transaction: 1 + the highest level of its
    /// dependencies, raised by each dependency before it releases it.
    levels: Vec<AtomicU32>,
    /// Next unclaimed home transaction of each partition (run phase).
    cursors: Vec<CachePadded<AtomicUsize>>,
    /// Number of levels (the critical path, in transactions).
    pub(crate) critical_path: usize,
    /// Size of the largest level.
    pub(crate) largest_level: usize,
    /// Number of edges (duplicates included: one per shared key).
    pub(crate) edges: usize,
    /// Transactions whose proof group was proven.
    pub(crate) proven_count: usize,
}

impl Graph {
    /// Clears the graph for `n` transactions over `parts` partitions.
    pub(crate) fn reset(&mut self, n: usize, parts: usize) {
        self.pending.reset(n);
        reset_atomics(
            &mut self.heads,
            n,
            || AtomicU32::new(NONE),
            |a| *a.get_mut() = NONE,
        );
        reset_atomics(
            &mut self.proven,
            n,
            || AtomicBool::new(false),
            |a| *a.get_mut() = false,
        );
        reset_atomics(
            &mut self.has_deps,
            n,
            || AtomicBool::new(false),
            |a| *a.get_mut() = false,
        );
        reset_atomics(
            &mut self.levels,
            n,
            || AtomicU32::new(0),
            |a| *a.get_mut() = 0,
        );
        reset_atomics(&mut self.cursors, parts, CachePadded::default, |c| {
            *c.get_mut() = 0
        });
        self.critical_path = 0;
        self.largest_level = 0;
        self.edges = 0;
        self.proven_count = 0;
    }

    /// Whether transaction `t` runs with its proof group proven.
    #[inline]
    pub(crate) fn is_proven(&self, t: usize) -> bool {
        self.proven[t].load(Ordering::Relaxed)
    }

    /// The dependents of `t` (a released transaction walks them).
    #[inline]
    pub(crate) fn dependents<'v, K: Key, V: Value>(
        &self,
        view: &'v PlanView<'_, K, V>,
        t: u32,
    ) -> impl Iterator<Item = u32> + 'v {
        let mut next = self.heads[t as usize].load(Ordering::Relaxed);
        std::iter::from_fn(move || {
            let e = view.edge(next)?;
            next = e.next;
            Some(e.to)
        })
    }

    /// The next chunk of up to `chunk` of `homes` (partition `p`'s) nobody
    /// claimed yet.
    #[inline]
    pub(crate) fn claim<'r>(&self, homes: &'r [u32], p: usize, chunk: usize) -> &'r [u32] {
        let start = self.cursors[p].fetch_add(chunk, Ordering::Relaxed);
        homes
            .get(start..(start + chunk).min(homes.len()))
            .unwrap_or(&[])
    }

    /// Whether `t` depends on nothing (a root of the graph).
    #[inline]
    pub(crate) fn is_root(&self, t: u32) -> bool {
        !self.has_deps[t as usize].load(Ordering::Relaxed)
    }

    /// `t`'s level (final once it is released: every dependency raised it
    /// before its releasing decrement).
    #[inline]
    pub(crate) fn level(&self, t: u32) -> u32 {
        self.levels[t as usize].load(Ordering::Relaxed)
    }

    /// Raises dependent `d`'s level to at least `level` (before releasing it).
    #[inline]
    pub(crate) fn raise(&self, d: u32, level: u32) {
        self.levels[d as usize].fetch_max(level, Ordering::Relaxed);
    }

    /// Critical path, largest level and edge count from the levels the run
    /// left (one pass; the edges are counted by the link phase).
    pub(crate) fn measure(&mut self) {
        let mut width: Vec<u32> = Vec::new();
        for l in self.levels.iter_mut() {
            let l = *l.get_mut() as usize;
            if width.len() <= l {
                width.resize(l + 1, 0);
            }
            width[l] += 1;
        }
        self.critical_path = width.len();
        self.largest_level = width.iter().copied().max().unwrap_or(0) as usize;
    }

    /// The levels before anything runs (the batch scheduler needs them):
    /// one pass in block order, every edge going forward.
    pub(crate) fn levels_in_block_order<K: Key, V: Value>(&mut self, plan: &Plan<K, V>) {
        let view = plan.view();
        for t in 0..self.levels.len() {
            let level = *self.levels[t].get_mut();
            let mut next = self.heads[t].load(Ordering::Relaxed);
            while let Some(edge) = view.edge(next) {
                next = edge.next;
                let d = self.levels[edge.to as usize].get_mut();
                *d = (*d).max(level + 1);
            }
        }
    }

    /// The cost-weighted critical path: the largest sum of `costs` along a
    /// dependency chain (edges go forward in block order: one pass).
    pub(crate) fn weighted_critical_path<K: Key, V: Value>(
        &self,
        view: &PlanView<'_, K, V>,
        costs: &[f64],
    ) -> f64 {
        let n = self.heads.len();
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

    /// The transactions of each level, in block order (for the batch
    /// scheduler, after [`Self::levels_in_block_order`]).
    pub(crate) fn batches(&self) -> Vec<Vec<u32>> {
        let mut batches: Vec<Vec<u32>> = Vec::new();
        for (t, l) in self.levels.iter().enumerate() {
            let l = l.load(Ordering::Relaxed) as usize;
            if batches.len() <= l {
                batches.resize_with(l + 1, Vec::new);
            }
            batches[l].push(t as u32);
        }
        batches
    }

    /// Counts the proven transactions (after the proof phase).
    pub(crate) fn count_proven(&mut self) {
        self.proven_count = self
            .proven
            .iter_mut()
            .map(|p| *p.get_mut())
            .filter(|&proven| proven)
            .count();
    }
}

/// Whether some partition of `view` has a proof group to decide.
pub(crate) fn has_groups<K: Key, V: Value>(view: &PlanView<'_, K, V>) -> bool {
    view.parts().any(|p| !p.groups.is_empty())
}

/// Phase 2 for partition `p`: the proofs of its group keys shared by two or
/// more transactions.
pub(crate) fn prove_partition<C, R, T>(
    graph: &Graph,
    view: &PlanView<'_, C::Key, C::Value>,
    p: usize,
    chain: &C,
    block: &C::Block,
    txs: &[T],
) -> StateResult<(), R::Error>
where
    C: Chain,
    R: Reader<C::Key, C::Value>,
    T: Borrow<C::Tx> + Sync,
{
    let part = view.part(p);
    let mut members: Vec<u32> = Vec::new();
    let mut refs: Vec<&C::Tx> = Vec::new();
    for &c in &part.groups {
        members.clear();
        // Every access to the group key must be a member's group access:
        // another access could change what the proof read.
        let mut foreign = false;
        for link in part.accesses_of(c) {
            if link.group {
                members.push(link.tx);
            } else {
                foreign = true;
            }
        }
        if foreign
            || members.len() < MIN_PROOF_GROUP as usize
            || !only_members_write(chain, view, txs, &members)
        {
            continue;
        }
        refs.clear();
        refs.extend(members.iter().map(|&t| txs[t as usize].borrow()));
        let mut start = StartView::<C, R::Error>::new(view, chain, &refs);
        if chain.prove(block, &refs, &mut start)? {
            for &t in &members {
                graph.proven[t as usize].store(true, Ordering::Relaxed);
            }
        }
    }
    Ok(())
}

/// Whether no transaction outside `members` writes a key whose mode a
/// member's proof changes (then the proof may be used). Each such key's
/// list is walked once.
fn only_members_write<C, T>(
    chain: &C,
    view: &PlanView<'_, C::Key, C::Value>,
    txs: &[T],
    members: &[u32],
) -> bool
where
    C: Chain,
    T: Borrow<C::Tx> + Sync,
{
    let mut keys: SmallVec<[(u64, u64, &C::Key); 4]> = SmallVec::new();
    for &m in members {
        let accesses = chain.accesses(txs[m as usize].borrow());
        // The group key itself was checked: only members access it.
        let group = accesses.group_index();
        for (j, a) in accesses.list().iter().enumerate() {
            if a.mode != a.proven
                && Some(j) != group
                && !keys.iter().any(|(h, _, k)| *h == a.hash && **k == a.key)
            {
                keys.push((a.hash, a.affinity, &a.key));
            }
        }
    }
    for (hash, affinity, key) in keys {
        let part = view.part(part_of(affinity, view.guards.len()));
        let Some(c) = part.find(hash, key) else {
            return false;
        };
        for link in part.accesses_of(c) {
            if link.mode == Mode::Write && members.binary_search(&link.tx).is_err() {
                return false;
            }
        }
    }
    true
}

/// Phase 3 for partition `p`: the edges of its cells with two or more
/// accesses.
pub(crate) fn link_partition<K: Key, V: Value>(
    part: &mut Partition<K, V>,
    p: usize,
    graph: &Graph,
) -> usize {
    let Partition {
        lists,
        links,
        edges,
        ..
    } = part;
    let base = (p as u32) << ARENA_BITS;
    let mut prev: SmallVec<[u32; 8]> = SmallVec::new();
    let mut cur: SmallVec<[u32; 8]> = SmallVec::new();
    for list in lists.iter().filter(|l| l.len > 1) {
        prev.clear();
        cur.clear();
        let mut cur_mode: Option<Mode> = None;
        let mut next = list.head;
        while let Some(link) = links.get(next as usize) {
            next = link.next;
            let t = link.tx;
            let mode = if graph.proven[t as usize].load(Ordering::Relaxed) {
                link.proven
            } else {
                link.mode
            };
            if cur_mode != Some(mode) || mode == Mode::Write {
                std::mem::swap(&mut prev, &mut cur);
                cur.clear();
                cur_mode = Some(mode);
            }
            for &d in &prev {
                let id = base | edges.len() as u32;
                let head = &graph.heads[d as usize];
                let mut old = head.load(Ordering::Relaxed);
                edges.push(EdgeNode { to: t, next: old });
                let node = edges.len() - 1;
                // Lock-free push; the end of this phase (its broadcast's
                // join) publishes the lists before anything reads them.
                while let Err(now) =
                    head.compare_exchange_weak(old, id, Ordering::Relaxed, Ordering::Relaxed)
                {
                    old = now;
                    edges[node].next = old;
                }
                graph.pending.add(t);
                graph.has_deps[t as usize].store(true, Ordering::Relaxed);
            }
            cur.push(t);
        }
    }
    edges.len()
}

/// Resizes a vector to `n`, resetting the kept entries in place.
fn reset_atomics<A>(v: &mut Vec<A>, n: usize, new: impl Fn() -> A, reset: impl Fn(&mut A)) {
    v.truncate(n);
    v.iter_mut().for_each(reset);
    v.resize_with(n, new);
}

/// The shape of the graph of a block's first transactions, before any plan
/// (the sample guard of `policy.rs`), by the same group rule as
/// [`link_partition`]: every proof group key shared in the sample is
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
        let mode_of = |a: &super::contract::Access<C::Key>| if proven { a.proven } else { a.mode };
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
