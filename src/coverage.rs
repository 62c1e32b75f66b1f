//! Covered sender chains: when one sender's transactions in a block provably
//! all succeed in any order, their debits commute and they need not wait for
//! each other.
//!
//! A sender is covered when, reading the state the block starts from:
//! * it has at least two transactions, all Transfers or Burn paying a native
//!   fee, none carrying a multisig proof, and it has no multisig config (so
//!   no multisig check can fail and nothing touches its multisig or energy);
//! * in block order, its `k`-th transaction has nonce `start + k`, where
//!   `start` is its nonce;
//! * for every asset, its total spending in the block is at most its
//!   balance (credits arriving during the block are not counted).
//!
//! Then, in sequential execution, its `k`-th transaction reads nonce
//! `start + k` and a balance of at least its spending, whatever else runs
//! before it: every one succeeds. In any order of execution the balance it
//! reads is still at least `start balance - (total - own spending)`, so every
//! funds check passes, and the writes are deltas (`nonce += 1`,
//! `balance -= spending`) whose sum does not depend on the order. Only the
//! nonce *read* would differ, so a covered transaction reads its own nonce
//! through [`crate::ParallelChainState::tx_view`]. Anything not provably
//! covered keeps the ordered path.

// ahash: keyed (DoS-resistant against chosen keys) and much faster than SipHash on 32-64 byte keys.
use ahash::AHashMap as HashMap;

use smallvec::SmallVec;

use crate::error::StateError;
use crate::rules::TxState;
use crate::transaction::{FeeType, Payload};
use crate::validation::VerifiedTx;
use crate::{Asset, ParallelChainState, PublicKey, Storage};

/// Marks the transactions of covered senders. Call it before any transaction
/// (and before the reward credit) ran on `state`, so it reads the state the
/// block starts from.
pub fn covered_transactions<S: Storage + Clone>(
    txs: &[VerifiedTx],
    state: &ParallelChainState<S>,
) -> Result<Vec<bool>, StateError> {
    let mut by_sender: HashMap<PublicKey, SmallVec<[u32; 4]>> = HashMap::new();
    for (i, vtx) in txs.iter().enumerate() {
        by_sender.entry(vtx.tx.source).or_default().push(i as u32);
    }
    let mut covered = vec![false; txs.len()];
    let mut view = state.view();
    'senders: for (source, idx) in by_sender {
        if idx.len() < 2 {
            continue;
        }
        let mut totals: SmallVec<[(Asset, u128); 2]> = SmallVec::new();
        for i in &idx {
            let tx = &txs[*i as usize];
            let eligible = tx.tx.fee_type == FeeType::Native
                && tx.tx.multisig.is_none()
                && matches!(tx.tx.payload, Payload::Transfers(_) | Payload::Burn { .. });
            if !eligible {
                continue 'senders;
            }
            for (asset, spend) in &tx.spending {
                match totals.iter_mut().find(|(a, _)| a == asset) {
                    Some((_, t)) => *t += u128::from(*spend),
                    None => totals.push((*asset, u128::from(*spend))),
                }
            }
        }
        if view.multisig(&source)?.is_some() {
            continue;
        }
        let start = view.nonce(&source)?;
        let consecutive = idx
            .iter()
            .enumerate()
            .all(|(k, i)| start.checked_add(k as u64) == Some(txs[*i as usize].tx.nonce));
        if !consecutive {
            continue;
        }
        for (asset, total) in &totals {
            if u128::from(view.balance(&source, asset)?) < *total {
                continue 'senders;
            }
        }
        for i in idx {
            covered[i as usize] = true;
        }
    }
    Ok(covered)
}
