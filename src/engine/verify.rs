//! Verify (shadow) mode's comparison: every difference between the
//! reference (sequential) result of a block and the parallel one.

use std::borrow::Borrow;
use std::fmt;

use super::contract::Chain;
use super::outcome::Executed;

/// One difference between the sequential (reference) and the parallel result.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Mismatch<K, V, F> {
    /// A transaction's status differs.
    Status {
        /// Transaction index.
        index: usize,
        /// Sequential status.
        sequential: Result<(), F>,
        /// Parallel status.
        parallel: Result<(), F>,
    },
    /// The number of statuses differs.
    Count {
        /// Sequential count.
        sequential: usize,
        /// Parallel count.
        parallel: usize,
    },
    /// A block sum differs.
    Sum {
        /// Which sum.
        slot: usize,
        /// Sequential value.
        sequential: u64,
        /// Parallel value.
        parallel: u64,
    },
    /// A written key differs (`None`: not written on that side).
    Write {
        /// First transaction (block order) that declares the key, if any.
        first_tx: Option<usize>,
        /// The key.
        key: K,
        /// Sequential value.
        sequential: Option<V>,
        /// Parallel value.
        parallel: Option<V>,
    },
}

impl<K: fmt::Debug, V: fmt::Debug, F: fmt::Debug> fmt::Display for Mismatch<K, V, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Status {
                index,
                sequential,
                parallel,
            } => write!(
                f,
                "tx {index}: status sequential={sequential:?} parallel={parallel:?}"
            ),
            Mismatch::Count {
                sequential,
                parallel,
            } => write!(
                f,
                "status count: sequential={sequential} parallel={parallel}"
            ),
            Mismatch::Sum {
                slot,
                sequential,
                parallel,
            } => write!(
                f,
                "block sum {slot}: sequential={sequential} parallel={parallel}"
            ),
            Mismatch::Write {
                first_tx,
                key,
                sequential,
                parallel,
            } => {
                let side = |v: &Option<V>| match v {
                    Some(v) => format!("{v:?}"),
                    None => "(not written)".into(),
                };
                write!(
                    f,
                    "tx {}: {key:?}: sequential={} parallel={}",
                    first_tx.map_or("-".to_string(), |i| i.to_string()),
                    side(sequential),
                    side(parallel)
                )
            }
        }
    }
}

/// The mismatch type of chain `C`.
pub type MismatchOf<C> = Mismatch<<C as Chain>::Key, <C as Chain>::Value, <C as Chain>::Failure>;

/// Every difference between `seq` (the reference) and `par`, statuses and
/// sums first, then written keys in the block order of their first
/// declaring transaction.
pub fn compare<C: Chain, T: Borrow<C::Tx>>(
    chain: &C,
    txs: &[T],
    seq: &Executed<C>,
    par: &Executed<C>,
) -> Vec<MismatchOf<C>> {
    let mut out = Vec::new();
    for (index, (s, p)) in seq.statuses.iter().zip(&par.statuses).enumerate() {
        if s != p {
            out.push(Mismatch::Status {
                index,
                sequential: s.clone(),
                parallel: p.clone(),
            });
        }
    }
    if seq.statuses.len() != par.statuses.len() {
        out.push(Mismatch::Count {
            sequential: seq.statuses.len(),
            parallel: par.statuses.len(),
        });
    }
    for (slot, (s, p)) in seq.sums.iter().zip(&par.sums).enumerate() {
        if s != p {
            out.push(Mismatch::Sum {
                slot,
                sequential: *s,
                parallel: *p,
            });
        }
    }
    let (s, p) = (seq.writes.sorted(), par.writes.sorted());
    let mut keyed = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < s.len() || j < p.len() {
        let order = match (s.get(i), p.get(j)) {
            (Some(a), Some(b)) => a.0.cmp(&b.0),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        let (key, sv, pv) = match order {
            std::cmp::Ordering::Less => {
                i += 1;
                (s[i - 1].0.clone(), Some(s[i - 1].1.clone()), None)
            }
            std::cmp::Ordering::Greater => {
                j += 1;
                (p[j - 1].0.clone(), None, Some(p[j - 1].1.clone()))
            }
            std::cmp::Ordering::Equal => {
                i += 1;
                j += 1;
                if s[i - 1].1 == p[j - 1].1 {
                    continue;
                }
                (
                    s[i - 1].0.clone(),
                    Some(s[i - 1].1.clone()),
                    Some(p[j - 1].1.clone()),
                )
            }
        };
        let first_tx = txs
            .iter()
            .position(|tx| chain.accesses(tx.borrow()).find(&key).is_some());
        keyed.push(Mismatch::Write {
            first_tx,
            key,
            sequential: sv,
            parallel: pv,
        });
    }
    keyed.sort_by_key(|m| match m {
        Mismatch::Write { first_tx, .. } => first_tx.unwrap_or(usize::MAX),
        _ => usize::MAX,
    });
    out.extend(keyed);
    out
}
