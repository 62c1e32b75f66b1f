//! The plan: a key table with one loaded cell per key, the proofs, and the
//! dependency graph, all built in parallel phases with no serial pass over
//! the accesses.
//!
//! # Partitions
//! Keys are split into `P` partitions (one per worker) by their
//! precomputed hash. Each phase runs one job per partition; a job scans the
//! block's declared accesses in block order and handles only those of its
//! own keys, so every per-key structure has exactly one writer and no lock.
//!
//! 1. **Index** ([`Plan::index`]): each partition builds its hash table
//!    (hash → cell, probing with the stored hash: no hashing), one [`Cell`]
//!    per key, and per cell the list of its accesses in block order (an
//!    arena of links); then it loads every cell's block-start value with
//!    one batched read ([`Reader::read_batch`]): the prefetch.
//! 2. **Prove** ([`Graph::prove`], only when some proof group key is shared
//!    by two or more transactions): for each such key, the chain decides
//!    whether the group's transactions commute on the block-start state
//!    ([`Chain::prove`]); the engine refuses a proof when a transaction
//!    outside the group writes a key whose mode the proof changes.
//! 3. **Link** ([`Graph::link`]): each partition walks each of its cells'
//!    access lists. Accesses form *groups*: a run of reads, a run of adds,
//!    or a single write; every access depends on every access of the
//!    previous group, which keeps every order-sensitive pair in block
//!    order (reads after the adds they must see, a write after the reads
//!    that must not see it...). An edge `d -> t` is pushed onto `d`'s
//!    lock-free list of dependents (a CAS on its head; the node lives in
//!    the partition's own arena) and counted in `t`'s pending count.
//! 4. **Sweep** (one pass in block order, O(transactions + edges)): levels,
//!    the critical path, the largest level and the roots.
//!
//! Every structure is kept across blocks (cleared, not freed).

use std::borrow::Borrow;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use hashbrown::HashTable;
use rayon::prelude::*;
use smallvec::SmallVec;

use super::cells::{Cell, StartView};
use super::contract::{Accesses, Chain, Key, Mode, Reader, StateError, StateResult, Value};
use super::release::PendingCounts;

/// No link, no edge.
const NONE: u32 = u32::MAX;
/// Bits of a node id that index the partition's arena (the rest: the partition).
const ARENA_BITS: u32 = 26;
/// Most partitions a plan splits its keys into.
pub(crate) const MAX_PARTS: usize = 1 << (32 - ARENA_BITS);

/// The partition of a key's hash among `parts` (multiply-shift on bits
/// that the hash table's own probing does not use much).
#[inline]
fn part_of(hash: u64, parts: usize) -> usize {
    ((((hash >> 32) & 0xffff_ffff) * parts as u64) >> 32) as usize
}

/// One access in a cell's list: transaction `tx`'s access number `access`.
#[derive(Clone, Copy)]
struct Link {
    tx: u32,
    access: u32,
    next: u32,
}

/// A cell's access list and proof-group count.
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

/// The keys of one partition.
pub(crate) struct Partition<K, V> {
    /// Cell index by key (probed with the stored hash).
    table: HashTable<u32>,
    /// The cells; `lists[i]` belongs to `cells[i]`.
    pub(crate) cells: Vec<Cell<K, V>>,
    lists: Vec<List>,
    /// Arena of every cell's access links.
    links: Vec<Link>,
    /// Cells that are the proof group key of two or more transactions.
    groups: Vec<u32>,
    /// Arena of the edges this partition found.
    pub(crate) edges: Vec<EdgeNode>,
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

    /// Appends transaction `tx`'s access `access` to cell `c`'s list.
    fn link(&mut self, c: u32, tx: u32, access: u32) {
        let at = self.links.len() as u32;
        self.links.push(Link {
            tx,
            access,
            next: NONE,
        });
        let list = &mut self.lists[c as usize];
        if list.tail == NONE {
            list.head = at;
        } else {
            self.links[list.tail as usize].next = at;
        }
        list.tail = at;
        list.len += 1;
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
}

/// The key table of a block: its partitions.
pub(crate) struct Plan<K, V> {
    /// Key with hash `h` lives in `parts[part_of(h, parts.len())]`.
    pub(crate) parts: Vec<Partition<K, V>>,
}

impl<K, V> Default for Plan<K, V> {
    fn default() -> Self {
        Plan { parts: Vec::new() }
    }
}

impl<K: Key, V: Value> Plan<K, V> {
    /// The cell of `key` (whose hash is `hash`), if the block declared it.
    #[inline]
    pub(crate) fn cell(&self, hash: u64, key: &K) -> Option<&Cell<K, V>> {
        let part = self.parts.get(part_of(hash, self.parts.len()))?;
        let i = part
            .table
            .find(hash, |&i| part.cells[i as usize].key == *key)?;
        part.cells.get(*i as usize)
    }

    /// Number of distinct keys.
    pub(crate) fn keys(&self) -> usize {
        self.parts.iter().map(|p| p.cells.len()).sum()
    }

    /// Phase 1 (on the current pool): the key table of `txs` and the block
    /// hooks' `block` accesses, in `parts` partitions, every cell loaded
    /// from `reader`.
    pub(crate) fn index<C, R, T>(
        &mut self,
        chain: &C,
        block: &Accesses<K>,
        txs: &[T],
        reader: &R,
        parts: usize,
    ) -> StateResult<(), R::Error>
    where
        C: Chain<Key = K, Value = V>,
        R: Reader<K, V>,
        T: Borrow<C::Tx> + Sync,
    {
        let parts = parts.clamp(1, MAX_PARTS);
        self.parts.truncate(parts);
        self.parts.resize_with(parts, Partition::default);
        self.parts
            .par_iter_mut()
            .enumerate()
            .try_for_each(|(p, part)| {
                part.clear();
                for a in block.list() {
                    if part_of(a.hash, parts) == p {
                        part.insert(&a.key, a.hash);
                    }
                }
                for (t, tx) in txs.iter().enumerate() {
                    let accesses = chain.accesses(tx.borrow());
                    let group = accesses.group_index();
                    for (j, a) in accesses.list().iter().enumerate() {
                        if part_of(a.hash, parts) != p {
                            continue;
                        }
                        let c = part.insert(&a.key, a.hash);
                        part.link(c, t as u32, j as u32);
                        if group == Some(j) {
                            let list = &mut part.lists[c as usize];
                            list.group_members += 1;
                            if list.group_members == 2 {
                                part.groups.push(c);
                            }
                        }
                    }
                }
                // The prefetch: every cell's block-start value, one batch.
                let mut values = Vec::with_capacity(part.cells.len());
                {
                    let keys: Vec<&K> = part.cells.iter().map(|c| &c.key).collect();
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
            })
    }
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
    /// Level of each transaction (1 + the highest level of its dependencies).
    levels: Vec<u32>,
    /// Transactions without dependencies, in block order.
    pub(crate) roots: Vec<u32>,
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
    /// Clears the graph for `n` transactions.
    pub(crate) fn reset(&mut self, n: usize) {
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
        self.levels.clear();
        self.roots.clear();
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

    /// Phase 2 (on the current pool): the proofs of every group key shared
    /// by two or more transactions.
    pub(crate) fn prove<C, R, T>(
        &mut self,
        chain: &C,
        block: &C::Block,
        plan: &Plan<C::Key, C::Value>,
        txs: &[T],
    ) -> StateResult<(), R::Error>
    where
        C: Chain,
        R: Reader<C::Key, C::Value>,
        T: Borrow<C::Tx> + Sync,
    {
        if plan.parts.iter().all(|p| p.groups.is_empty()) {
            return Ok(());
        }
        let proven = &self.proven;
        plan.parts.par_iter().try_for_each(|part| {
            let mut members: Vec<u32> = Vec::new();
            let mut refs: Vec<&C::Tx> = Vec::new();
            for &c in &part.groups {
                members.clear();
                // Every access to the group key must be a member's group
                // access: another access could change what the proof read.
                let mut foreign = false;
                for link in part.accesses_of(c) {
                    let accesses = chain.accesses(txs[link.tx as usize].borrow());
                    if accesses.group_index() == Some(link.access as usize) {
                        members.push(link.tx);
                    } else {
                        foreign = true;
                    }
                }
                if foreign || members.len() < 2 {
                    continue;
                }
                if !Self::only_members_write(chain, plan, txs, &members) {
                    continue;
                }
                refs.clear();
                refs.extend(members.iter().map(|&t| txs[t as usize].borrow()));
                let mut view = StartView::<C::Key, C::Value, R::Error> {
                    plan,
                    _error: std::marker::PhantomData,
                };
                if chain.prove(block, &refs, &mut view)? {
                    for &t in &members {
                        proven[t as usize].store(true, Ordering::Relaxed);
                    }
                }
            }
            Ok(())
        })?;
        self.proven_count = self
            .proven
            .iter()
            .filter(|p| p.load(Ordering::Relaxed))
            .count();
        Ok(())
    }

    /// Whether no transaction outside `members` writes a key whose mode a
    /// member's proof changes (then the proof may be used).
    fn only_members_write<C, T>(
        chain: &C,
        plan: &Plan<C::Key, C::Value>,
        txs: &[T],
        members: &[u32],
    ) -> bool
    where
        C: Chain,
        T: Borrow<C::Tx> + Sync,
    {
        for &m in members {
            for a in chain.accesses(txs[m as usize].borrow()).list() {
                if a.mode == a.proven {
                    continue;
                }
                let part = &plan.parts[part_of(a.hash, plan.parts.len())];
                let Some(&c) = part
                    .table
                    .find(a.hash, |&i| part.cells[i as usize].key == a.key)
                else {
                    return false;
                };
                for link in part.accesses_of(c) {
                    let mode = chain.accesses(txs[link.tx as usize].borrow()).list()
                        [link.access as usize]
                        .mode;
                    if mode == Mode::Write && members.binary_search(&link.tx).is_err() {
                        return false;
                    }
                }
            }
        }
        true
    }

    /// Phases 3 and 4: the edges (on the current pool), then the sweep.
    pub(crate) fn link<C, T>(&mut self, chain: &C, plan: &mut Plan<C::Key, C::Value>, txs: &[T])
    where
        C: Chain,
        T: Borrow<C::Tx> + Sync,
    {
        let Graph {
            pending,
            heads,
            proven,
            ..
        } = &*self;
        plan.parts.par_iter_mut().enumerate().for_each(|(p, part)| {
            let Partition {
                lists,
                links,
                edges,
                ..
            } = part;
            let base = (p as u32) << ARENA_BITS;
            let mut prev: SmallVec<[u32; 8]> = SmallVec::new();
            let mut cur: SmallVec<[u32; 8]> = SmallVec::new();
            for list in lists.iter() {
                prev.clear();
                cur.clear();
                let mut cur_mode: Option<Mode> = None;
                let mut next = list.head;
                while let Some(link) = links.get(next as usize) {
                    next = link.next;
                    let t = link.tx;
                    let a = &chain.accesses(txs[t as usize].borrow()).list()[link.access as usize];
                    let mode = if proven[t as usize].load(Ordering::Relaxed) {
                        a.proven
                    } else {
                        a.mode
                    };
                    if cur_mode != Some(mode) || mode == Mode::Write {
                        std::mem::swap(&mut prev, &mut cur);
                        cur.clear();
                        cur_mode = Some(mode);
                    }
                    for &d in &prev {
                        let id = base | edges.len() as u32;
                        let head = &heads[d as usize];
                        let mut old = head.load(Ordering::Relaxed);
                        edges.push(EdgeNode { to: t, next: old });
                        let node = edges.len() - 1;
                        // Lock-free push; the join that ends this phase
                        // publishes the lists before anything reads them.
                        while let Err(now) = head.compare_exchange_weak(
                            old,
                            id,
                            Ordering::Relaxed,
                            Ordering::Relaxed,
                        ) {
                            old = now;
                            edges[node].next = old;
                        }
                        pending.add(t);
                    }
                    cur.push(t);
                }
            }
        });
        self.sweep(plan, txs.len());
    }

    /// Levels, critical path, largest level, edge count and roots, in one
    /// pass in block order (every edge goes forward in block order).
    fn sweep<K, V>(&mut self, plan: &Plan<K, V>, n: usize) {
        self.levels.clear();
        self.levels.resize(n, 0);
        let mut width: Vec<u32> = Vec::new();
        for t in 0..n {
            let level = self.levels[t];
            if self.pending.get(t as u32) == 0 {
                self.roots.push(t as u32);
            }
            if width.len() <= level as usize {
                width.resize(level as usize + 1, 0);
            }
            width[level as usize] += 1;
            let mut next = self.heads[t].load(Ordering::Relaxed);
            while let Some(edge) = edge(plan, next) {
                next = edge.next;
                let d = &mut self.levels[edge.to as usize];
                *d = (*d).max(level + 1);
                self.edges += 1;
            }
        }
        self.critical_path = width.len();
        self.largest_level = width.iter().copied().max().unwrap_or(0) as usize;
    }

    /// The dependents of `t` (a released transaction walks them).
    #[inline]
    pub(crate) fn dependents<'p, K, V>(
        &self,
        plan: &'p Plan<K, V>,
        t: u32,
    ) -> impl Iterator<Item = u32> + 'p {
        let mut next = self.heads[t as usize].load(Ordering::Relaxed);
        std::iter::from_fn(move || {
            let e = edge(plan, next)?;
            next = e.next;
            Some(e.to)
        })
    }

    /// The cost-weighted critical path: the largest sum of `costs` along a
    /// dependency chain (edges go forward in block order: one pass).
    pub(crate) fn weighted_critical_path<K, V>(&self, plan: &Plan<K, V>, costs: &[f64]) -> f64 {
        let n = self.heads.len();
        let mut start = vec![0f64; n];
        let mut longest = 0f64;
        for t in 0..n {
            let finish = start[t] + costs.get(t).copied().unwrap_or(0.0);
            longest = longest.max(finish);
            for d in self.dependents(plan, t as u32) {
                let d = d as usize;
                start[d] = start[d].max(finish);
            }
        }
        longest
    }

    /// The transactions of each level, in block order (for the batch scheduler).
    pub(crate) fn batches(&self) -> Vec<Vec<u32>> {
        let mut batches = vec![Vec::new(); self.critical_path];
        for (t, &l) in self.levels.iter().enumerate() {
            batches[l as usize].push(t as u32);
        }
        batches
    }
}

/// The edge node `id`, if any.
#[inline]
fn edge<K, V>(plan: &Plan<K, V>, id: u32) -> Option<EdgeNode> {
    if id == NONE {
        return None;
    }
    let part = plan.parts.get((id >> ARENA_BITS) as usize)?;
    part.edges
        .get((id & ((1 << ARENA_BITS) - 1)) as usize)
        .copied()
}

/// Resizes a vector of atomics to `n`, resetting the kept ones in place.
fn reset_atomics<A>(v: &mut Vec<A>, n: usize, new: impl Fn() -> A, reset: impl Fn(&mut A)) {
    v.truncate(n);
    v.iter_mut().for_each(reset);
    v.resize_with(n, new);
}

/// The shape of the graph of a block's first transactions, before any plan
/// (the sample guard of `policy.rs`), by the same group rule as
/// [`Graph::link`]: every proof group key shared in the sample is assumed
/// proven (coverage is unknown yet; what remains serial is serial in the
/// block).
pub(crate) fn sample_shape<C, T>(chain: &C, sample: &[T]) -> super::policy::Shape
where
    C: Chain,
    T: Borrow<C::Tx>,
{
    /// A key's current group: its mode, the highest level of its members,
    /// and the lowest level a new member may take (after the previous group).
    struct Group {
        mode: Mode,
        top: u32,
        start: u32,
    }
    let mut keys: ahash::AHashMap<&C::Key, Group> = ahash::AHashMap::new();
    let mut shared: ahash::AHashMap<&C::Key, u32> = ahash::AHashMap::new();
    for tx in sample {
        if let Some(g) = chain.accesses(tx.borrow()).group() {
            *shared.entry(&g.key).or_default() += 1;
        }
    }
    let mut depth = 0u32;
    for tx in sample {
        let accesses = chain.accesses(tx.borrow());
        let proven = accesses
            .group()
            .is_some_and(|g| shared.get(&g.key).copied().unwrap_or(0) > 1);
        let mode_of = |a: &super::contract::Access<C::Key>| if proven { a.proven } else { a.mode };
        let joins = |g: &Group, mode: Mode| g.mode == mode && mode != Mode::Write;
        let level = accesses
            .list()
            .iter()
            .map(|a| match keys.get(&a.key) {
                None => 0,
                Some(g) if joins(g, mode_of(a)) => g.start,
                Some(g) => g.top + 1,
            })
            .max()
            .unwrap_or(0);
        for a in accesses.list() {
            let mode = mode_of(a);
            match keys.get_mut(&a.key) {
                None => {
                    keys.insert(
                        &a.key,
                        Group {
                            mode,
                            top: level,
                            start: 0,
                        },
                    );
                }
                Some(g) if joins(g, mode) => g.top = g.top.max(level),
                Some(g) => {
                    *g = Group {
                        mode,
                        top: level,
                        start: g.top + 1,
                    }
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
