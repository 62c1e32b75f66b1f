//! Covered sender chains: the SPEC chain's proof ([`crate::engine::Chain::prove`])
//! that one sender's transactions in a block all succeed in any order, so
//! their debits commute and they need not wait for each other.
//!
//! The engine hands over every transaction of the block whose proof group
//! key is one sender's nonce (all of the sender's transactions, block
//! order, at least two). They are covered when, reading the state the block
//! starts from:
//! * all are Transfers or Burn paying a native fee, none carrying a
//!   multisig proof, and the sender has no multisig config (so no multisig
//!   check can fail and nothing touches its multisig or energy);
//! * in block order, the `k`-th has nonce `start + k`, where `start` is the
//!   sender's nonce;
//! * for every asset, the sender's total spending in the block is at most
//!   its balance (credits arriving during the block are not counted).
//!
//! Then, in sequential execution, the `k`-th transaction reads nonce
//! `start + k` and a balance of at least its spending, whatever else runs
//! before it (other transactions only credit the sender: no one else
//! writes its keys, which the engine checks): every one succeeds. In any
//! order, the writes are deltas (`nonce += 1`, `balance -= spending`) whose
//! sum does not depend on the order, and never go below zero (the total is
//! covered). So covered transactions skip the checks (`rules.rs`) and their
//! accesses to the sender's nonce and balances become adds.

use smallvec::SmallVec;

use super::transaction::{FeeType, Payload};
use super::validation::VerifiedTx;
use crate::engine::{ProofView, StateResult};
use crate::{Asset, StateKey, StateValue};

/// Whether `group` (one sender's transactions, block order) is covered.
pub(crate) fn covered<R: ProofView<StateKey, StateValue>>(
    group: &[&VerifiedTx],
    view: &mut R,
) -> StateResult<bool, R::ReadError> {
    let Some(first) = group.first() else {
        return Ok(false);
    };
    let source = first.tx.source;
    let mut totals: SmallVec<[(Asset, u128); 2]> = SmallVec::new();
    for vtx in group {
        let eligible = vtx.tx.source == source
            && vtx.tx.fee_type == FeeType::Native
            && vtx.tx.multisig.is_none()
            && matches!(vtx.tx.payload, Payload::Transfers(_) | Payload::Burn { .. });
        if !eligible {
            return Ok(false);
        }
        for (asset, spend) in &vtx.spending {
            match totals.iter_mut().find(|(a, _)| a == asset) {
                Some((_, t)) => *t += u128::from(*spend),
                None => totals.push((*asset, u128::from(*spend))),
            }
        }
    }
    match view.get(&StateKey::Multisig(source))? {
        None | Some(StateValue::Multisig(None)) => {}
        Some(_) => return Ok(false),
    }
    let start = view.counter(&StateKey::Nonce(source))?;
    let consecutive = group
        .iter()
        .enumerate()
        .all(|(k, vtx)| start.checked_add(k as u64) == Some(vtx.tx.nonce));
    if !consecutive {
        return Ok(false);
    }
    for (asset, total) in &totals {
        if u128::from(view.counter(&StateKey::Balance(source, *asset))?) < *total {
            return Ok(false);
        }
    }
    Ok(true)
}
