//! Verify (shadow) mode: run the sequential and the parallel executor on the
//! same pre-state, keep the sequential result, and report every difference.

use crate::access::{access_set, AccessKey};
use crate::block::Block;
use crate::error::{contain_panics, BlockError};
use crate::executor::{ExecutedBlock, PreState};
use crate::outcome::ExecutionPath;
use crate::parallel::ParallelExecutor;
use crate::policy::PathReason;
use crate::sequential::execute_sequential;
use crate::validation::check_stateless;
use crate::Storage;

/// One difference between the sequential (reference) and the parallel result.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mismatch {
    /// A transaction's status differs.
    Status {
        /// Transaction index.
        index: usize,
        /// Sequential status code.
        sequential: String,
        /// Parallel status code.
        parallel: String,
    },
    /// A block total (reward, fees, burned, emitted or burned supply) differs.
    Total {
        /// Which total.
        what: &'static str,
        /// Sequential value.
        sequential: u64,
        /// Parallel value.
        parallel: u64,
    },
    /// A written key differs (absent on one side shows as `None`).
    Key {
        /// First transaction (block order) that touches the key, if any.
        first_tx: Option<usize>,
        /// The key, e.g. `balance(<account>, <asset>)`.
        key: String,
        /// Sequential value.
        sequential: Option<String>,
        /// Parallel value.
        parallel: Option<String>,
    },
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mismatch::Status {
                index,
                sequential,
                parallel,
            } => write!(
                f,
                "tx {index}: status sequential={sequential} parallel={parallel}"
            ),
            Mismatch::Total {
                what,
                sequential,
                parallel,
            } => write!(f, "{what}: sequential={sequential} parallel={parallel}"),
            Mismatch::Key {
                first_tx,
                key,
                sequential,
                parallel,
            } => write!(
                f,
                "tx {}: {key}: sequential={} parallel={}",
                first_tx.map_or("-".to_string(), |i| i.to_string()),
                sequential.as_deref().unwrap_or("(not written)"),
                parallel.as_deref().unwrap_or("(not written)")
            ),
        }
    }
}

/// Every difference between `seq` (the reference) and `par`, block order first.
pub fn compare(
    block: &Block,
    pre: &PreState,
    seq: &ExecutedBlock,
    par: &ExecutedBlock,
) -> Vec<Mismatch> {
    let mut out = Vec::new();
    let (so, po) = (&seq.outcome, &par.outcome);
    for (index, (s, p)) in so.results.iter().zip(&po.results).enumerate() {
        if s != p {
            out.push(Mismatch::Status {
                index,
                sequential: s.status.code().to_string(),
                parallel: p.status.code().to_string(),
            });
        }
    }
    if so.results.len() != po.results.len() {
        out.push(Mismatch::Total {
            what: "result count",
            sequential: so.results.len() as u64,
            parallel: po.results.len() as u64,
        });
    }
    let totals = [
        ("reward", so.reward, po.reward),
        ("fees", so.fees, po.fees),
        ("burned", so.burned, po.burned),
        (
            "emitted_supply",
            seq.meta.emitted_supply,
            par.meta.emitted_supply,
        ),
        (
            "burned_supply",
            seq.meta.burned_supply,
            par.meta.burned_supply,
        ),
    ];
    for (what, s, p) in totals {
        if s != p {
            out.push(Mismatch::Total {
                what,
                sequential: s,
                parallel: p,
            });
        }
    }
    let mut keys = Vec::new();
    diff_map(&seq.changes.nonces, &par.changes.nonces, &mut keys, |k| {
        (format!("nonce({k})"), AccessKey::Account(*k))
    });
    diff_map(
        &seq.changes.balances,
        &par.changes.balances,
        &mut keys,
        |(a, s)| (format!("balance({a}, {s})"), AccessKey::Balance(*a, *s)),
    );
    diff_map(
        &seq.changes.multisigs,
        &par.changes.multisigs,
        &mut keys,
        |k| (format!("multisig({k})"), AccessKey::Account(*k)),
    );
    diff_map(
        &seq.changes.energies,
        &par.changes.energies,
        &mut keys,
        |k| (format!("energy({k})"), AccessKey::Account(*k)),
    );
    if !keys.is_empty() {
        let first = first_touch(block, pre, keys.iter().map(|k| k.1).collect());
        let mut keyed: Vec<Mismatch> = keys
            .into_iter()
            .map(|(key, access, s, p)| Mismatch::Key {
                first_tx: first.iter().find(|(k, _)| *k == access).map(|(_, i)| *i),
                key,
                sequential: s,
                parallel: p,
            })
            .collect();
        keyed.sort_by_key(|m| match m {
            Mismatch::Key { first_tx, .. } => first_tx.unwrap_or(usize::MAX),
            _ => usize::MAX,
        });
        out.extend(keyed);
    }
    if seq.meta.hash != par.meta.hash {
        out.push(Mismatch::Key {
            first_tx: None,
            key: "block hash".into(),
            sequential: Some(seq.meta.hash.to_hex()),
            parallel: Some(par.meta.hash.to_hex()),
        });
    }
    out
}

type KeyDiff = (String, AccessKey, Option<String>, Option<String>);

fn diff_map<K: Ord, V: PartialEq + std::fmt::Debug>(
    seq: &std::collections::BTreeMap<K, V>,
    par: &std::collections::BTreeMap<K, V>,
    out: &mut Vec<KeyDiff>,
    name: impl Fn(&K) -> (String, AccessKey),
) {
    for (k, sv) in seq {
        let pv = par.get(k);
        if pv != Some(sv) {
            let (n, a) = name(k);
            out.push((n, a, Some(format!("{sv:?}")), pv.map(|v| format!("{v:?}"))));
        }
    }
    for (k, pv) in par {
        if !seq.contains_key(k) {
            let (n, a) = name(k);
            out.push((n, a, None, Some(format!("{pv:?}"))));
        }
    }
}

/// For each key, the first transaction (block order) whose access set holds it.
fn first_touch(block: &Block, pre: &PreState, keys: Vec<AccessKey>) -> Vec<(AccessKey, usize)> {
    let mut found = Vec::new();
    for (i, (bytes, hash)) in block.txs().iter().zip(block.tx_hashes()).enumerate() {
        let Ok(vtx) = check_stateless(bytes.clone(), *hash, pre.ctx.parent_topoheight) else {
            continue;
        };
        for k in access_set(&vtx).into_iter().map(|a| a.key) {
            if keys.contains(&k) && !found.iter().any(|(f, _)| *f == k) {
                found.push((k, i));
            }
        }
    }
    found
}

/// Runs both executors on clones of `storage` at `pre`; returns the
/// sequential result with `stats.mismatches` set and every difference logged.
/// The parallel side runs with the speed guards off (`policy.rs`), so the
/// parallel engine (plan and scheduler) executes every block given here,
/// whatever the guards would choose; its path is recorded in the stats
/// (`reason`, `parallel_engine`).
pub fn execute_verify<S: Storage + Clone>(
    parallel: &ParallelExecutor,
    storage: S,
    block: &Block,
    pre: &PreState,
) -> Result<ExecutedBlock, BlockError> {
    let mut seq =
        contain_panics(|| execute_sequential(&storage, block, pre, PathReason::SequentialMode))?;
    let par = parallel.execute_with(storage.clone(), block, pre, false);
    let stats = &mut seq.outcome.stats;
    stats.path = ExecutionPath::Verify;
    let par = match par {
        Ok(p) => p,
        Err(e) => {
            log::error!(
                "verify: block {} ({}): the parallel executor failed where the sequential one succeeded: {e}",
                pre.topoheight(),
                pre.hash
            );
            stats.mismatches = 1;
            return Ok(seq);
        }
    };
    #[cfg(feature = "fault-injection")]
    let par = crate::fault::corrupt(par);
    let mismatches = compare(block, pre, &seq, &par);
    if !mismatches.is_empty() {
        log::error!(
            "verify: block {} ({}): {} mismatch(es) between sequential and parallel; first: {}",
            pre.topoheight(),
            pre.hash,
            mismatches.len(),
            mismatches[0]
        );
        for m in &mismatches {
            log::error!("verify: block {}: {m}", pre.topoheight());
        }
    }
    let p = &par.outcome.stats;
    let stats = &mut seq.outcome.stats;
    stats.mismatches = mismatches.len();
    stats.reason = p.reason;
    stats.parallel_engine = p.parallel_engine;
    stats.batches = p.batches;
    stats.largest_batch = p.largest_batch;
    stats.critical_path = p.critical_path;
    stats.covered = p.covered;
    stats.prefetch = p.prefetch;
    stats.schedule = p.schedule;
    Ok(seq)
}
