//! Conflict-free batches: level scheduling over per-key last writers.
//!
//! Transaction `i` goes to batch `1 + max(batch of the last earlier
//! transaction touching each of its keys)` (batch 0 when it shares no key with
//! an earlier one). Hence:
//! * two transactions sharing a key are in different batches, the earlier one
//!   in the lower batch, so every conflicting pair keeps block order;
//! * inside a batch no two transactions share a key, so they can run in any
//!   order, at the same time, and read exactly what sequential execution reads;
//! * the number of batches is the length of the longest dependency chain (the
//!   critical path).

use std::collections::HashMap;

use crate::access::{AccessKey, AccessSet};

/// Batches of transaction indices, each batch in ascending index order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Schedule {
    /// Conflict-free batches; run batch `k` only after batch `k - 1` finished.
    pub batches: Vec<Vec<u32>>,
}

impl Schedule {
    /// Builds the schedule of a block from its access sets (block order).
    pub fn build(access: &[AccessSet]) -> Schedule {
        let mut last: HashMap<AccessKey, u32> = HashMap::with_capacity(access.len() * 2);
        let mut level_of: Vec<u32> = Vec::with_capacity(access.len());
        let mut depth = 0u32;
        for keys in access {
            let level = keys
                .iter()
                .filter_map(|k| last.get(k).map(|l| l + 1))
                .max()
                .unwrap_or(0);
            for k in keys {
                last.insert(*k, level);
            }
            depth = depth.max(level + 1);
            level_of.push(level);
        }
        let mut batches: Vec<Vec<u32>> = vec![Vec::new(); depth as usize];
        for (i, level) in level_of.into_iter().enumerate() {
            batches[level as usize].push(i as u32);
        }
        Schedule { batches }
    }

    /// Transactions in the largest batch.
    pub fn largest_batch(&self) -> usize {
        self.batches.iter().map(Vec::len).max().unwrap_or(0)
    }

    /// Length of the longest dependency chain (= number of batches).
    pub fn critical_path(&self) -> usize {
        self.batches.len()
    }
}
