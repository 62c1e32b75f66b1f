//! The dependency graph of a block, and the two ways to run it.
//!
//! # Edges (per-key last-writer tracking)
//! Walking the block in order, each key remembers its last read-write access
//! and the credits since then. Transaction `t`:
//! * read-write on `k`: depends on the last read-write of `k` and on every
//!   credit to `k` since (the value it reads must include them);
//! * commutative on `k` (a credit, or a covered sender's debit): depends on
//!   the last read-write of `k` only; commutative accesses to one key do not
//!   depend on each other (see `access.rs`, `coverage.rs`).
//!
//! Every pair of transactions whose order could change a status or a value
//! is therefore connected by a path in block order, and any execution that
//! respects the edges gives the sequential result.
//!
//! # Running it
//! * **Graph** (`parallel.rs`): a transaction starts as soon as all its
//!   dependencies finished (a counter per transaction; the last dependency
//!   to finish releases it), no barriers.
//! * **Batches**: level `L(t) = 1 + max L(dependency)`; level `k` runs after
//!   level `k - 1` finished. Within a level there is no edge.
//!
//! The critical path is the number of levels (the longest chain of
//! dependencies, in transactions).

use smallvec::SmallVec;

use crate::access::{AccessMode, AccessSet, KeyIndex};

/// The dependency graph of a block (indices in block order).
#[derive(Clone, Debug, Default)]
pub struct DependencyGraph {
    /// `dependents[offsets[i]..offsets[i + 1]]` are the transactions waiting for `i`.
    offsets: Vec<u32>,
    /// Concatenated dependents (CSR).
    dependents: Vec<u32>,
    /// Number of distinct dependencies of each transaction.
    indegree: Vec<u32>,
    /// Level of each transaction (0 for those without dependency).
    levels: Vec<u32>,
    /// Number of levels.
    depth: u32,
    /// Number of distinct keys the block touches.
    keys: usize,
}

#[derive(Default)]
struct KeyState {
    last_rw: Option<u32>,
    credits: SmallVec<[u32; 2]>,
}

impl DependencyGraph {
    /// Builds the graph of a block from its access sets (block order) and
    /// their key ids (`index`, built from the same keys; no hashing here).
    pub fn build(access: &[AccessSet], index: &KeyIndex) -> DependencyGraph {
        let n = access.len();
        let mut keys: Vec<KeyState> = Vec::with_capacity(index.len());
        keys.resize_with(index.len(), KeyState::default);
        let mut edges: Vec<(u32, u32)> = Vec::with_capacity(n * 2);
        let mut indegree = vec![0u32; n];
        let mut levels = vec![0u32; n];
        let mut depth = 0u32;
        let mut deps: SmallVec<[u32; 8]> = SmallVec::new();
        for (t, set) in access.iter().enumerate() {
            let t = t as u32;
            deps.clear();
            for (a, &id) in set.iter().zip(index.ids_of(t as usize)) {
                let k = &mut keys[id as usize];
                deps.extend(k.last_rw);
                match a.mode {
                    AccessMode::ReadWrite => {
                        deps.extend(k.credits.drain(..));
                        k.last_rw = Some(t);
                    }
                    AccessMode::Commutative => k.credits.push(t),
                }
            }
            deps.sort_unstable();
            deps.dedup();
            let mut level = 0;
            for &d in &deps {
                edges.push((d, t));
                level = level.max(levels[d as usize] + 1);
            }
            indegree[t as usize] = deps.len() as u32;
            levels[t as usize] = level;
            depth = depth.max(level + 1);
        }
        // CSR by source (counting sort; edges of one source stay in block order).
        let mut offsets = vec![0u32; n + 1];
        for &(d, _) in &edges {
            offsets[d as usize + 1] += 1;
        }
        for i in 0..n {
            offsets[i + 1] += offsets[i];
        }
        let mut fill = offsets.clone();
        let mut dependents = vec![0u32; edges.len()];
        for &(d, t) in &edges {
            dependents[fill[d as usize] as usize] = t;
            fill[d as usize] += 1;
        }
        DependencyGraph {
            offsets,
            dependents,
            indegree,
            levels,
            depth,
            keys: index.len(),
        }
    }

    /// Number of distinct keys the block touches.
    pub fn distinct_keys(&self) -> usize {
        self.keys
    }

    /// Number of transactions.
    pub fn len(&self) -> usize {
        self.indegree.len()
    }

    /// True for an empty block.
    pub fn is_empty(&self) -> bool {
        self.indegree.is_empty()
    }

    /// Transactions waiting for `i`.
    pub fn dependents(&self, i: u32) -> &[u32] {
        &self.dependents[self.offsets[i as usize] as usize..self.offsets[i as usize + 1] as usize]
    }

    /// Number of dependencies of each transaction.
    pub fn indegrees(&self) -> &[u32] {
        &self.indegree
    }

    /// Length of the longest dependency chain, in transactions (0 for an empty block).
    pub fn critical_path(&self) -> usize {
        self.depth as usize
    }

    /// The cost-weighted critical path: the largest sum of `costs` along a
    /// dependency chain (edges go from lower to higher indices, so one pass
    /// in block order suffices).
    pub fn weighted_critical_path(&self, costs: &[f64]) -> f64 {
        let mut start = vec![0f64; self.len()];
        let mut longest = 0f64;
        for t in 0..self.len() {
            let finish = start[t] + costs.get(t).copied().unwrap_or(0.0);
            longest = longest.max(finish);
            for &d in self.dependents(t as u32) {
                let d = d as usize;
                start[d] = start[d].max(finish);
            }
        }
        longest
    }

    /// The levels as batches: batch `k` holds the transactions of level `k`, in block order.
    pub fn batches(&self) -> Vec<Vec<u32>> {
        let mut batches = vec![Vec::new(); self.depth as usize];
        for (i, &l) in self.levels.iter().enumerate() {
            batches[l as usize].push(i as u32);
        }
        batches
    }

    /// Size of the largest level.
    pub fn largest_level(&self) -> usize {
        let mut counts = vec![0usize; self.depth as usize];
        for &l in &self.levels {
            counts[l as usize] += 1;
        }
        counts.into_iter().max().unwrap_or(0)
    }
}
