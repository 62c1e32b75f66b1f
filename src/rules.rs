//! The stateful rules (SPEC §6): the one rule engine both executors run.
//!
//! [`apply_transaction`] reads what it needs through a [`TxState`], runs the
//! checks in the written order, and only when all pass performs the writes.
//! A failing transaction therefore writes nothing. The sequential executor
//! (`sequential.rs`) and the parallel one (`chain_state.rs`) differ only in how
//! they implement [`TxState`], never in the rules.

use std::sync::Arc;

use crate::constants::*;
use crate::error::{StateError, TxFailure};
use crate::transaction::{EnergyPayload, FeeType, Payload};
use crate::validation::{verify_strict, VerifiedTx};
use crate::{
    Asset, EnergyState, FreezeRecord, MultisigConfig, PublicKey, TopoHeight, NATIVE_ASSET,
};

/// What the rules need to know about the block.
#[derive(Clone, Copy, Debug)]
pub struct BlockContext {
    /// Topoheight of the state the block executes on (T).
    pub parent_topoheight: TopoHeight,
    /// Chain parameter from genesis.
    pub blocks_per_day: u64,
}

impl BlockContext {
    /// The topoheight the block produces (T + 1).
    pub fn topoheight(&self) -> TopoHeight {
        self.parent_topoheight + 1
    }
}

/// Reads and writes of chain state on behalf of one transaction.
///
/// Reads return the value as left by every earlier transaction of the block
/// (the executor guarantees that); writes are only called after every check passed.
pub trait TxState {
    /// Nonce of `account` (0 if unknown).
    fn nonce(&mut self, account: &PublicKey) -> Result<u64, StateError>;
    /// Balance of (`account`, `asset`) (0 if none).
    fn balance(&mut self, account: &PublicKey, asset: &Asset) -> Result<u64, StateError>;
    /// Multisig config of `account`.
    fn multisig(&mut self, account: &PublicKey) -> Result<Option<Arc<MultisigConfig>>, StateError>;
    /// Energy state of `account` (default if never frozen).
    fn energy(&mut self, account: &PublicKey) -> Result<EnergyState, StateError>;
    /// Adds 1 to the nonce (the rules checked it first).
    fn increment_nonce(&mut self, account: &PublicKey) -> Result<(), StateError>;
    /// Subtracts `amount` from a balance (the rules checked the funds first;
    /// an underflow is an invariant violation).
    fn debit(&mut self, account: &PublicKey, asset: &Asset, amount: u64) -> Result<(), StateError>;
    /// Adds `amount` to a balance. Overflow is an invariant violation.
    fn credit(&mut self, account: &PublicKey, asset: &Asset, amount: u64)
        -> Result<(), StateError>;
    /// Sets (`Some`) or deletes (`None`) the multisig config.
    fn set_multisig(&mut self, account: &PublicKey, config: Option<Arc<MultisigConfig>>);
    /// Sets the energy state.
    fn set_energy(&mut self, account: &PublicKey, energy: EnergyState);
    /// Adds to the native burned supply of the block.
    fn add_burned(&mut self, amount: u64) -> Result<(), StateError>;
    /// Adds to the native fees of the block (credited to the miner at the end).
    fn add_fee(&mut self, amount: u64) -> Result<(), StateError>;
}

/// Executes one stateless-valid transaction against `state`.
///
/// `Ok(Ok(()))`: applied. `Ok(Err(failure))`: orphaned, nothing written.
/// `Err(_)`: storage failure or broken invariant; the block must be abandoned.
pub fn apply_transaction<S: TxState>(
    vtx: &VerifiedTx,
    ctx: &BlockContext,
    state: &mut S,
) -> Result<Result<(), TxFailure>, StateError> {
    #[cfg(feature = "fault-injection")]
    crate::fault::panic_if_marked(&vtx.hash);
    let tx = &vtx.tx;
    let src = &tx.source;

    // nonce_mismatch
    let nonce = state.nonce(src)?;
    if tx.nonce != nonce {
        return Ok(Err(TxFailure::NonceMismatch {
            expected: nonce,
            got: tx.nonce,
        }));
    }

    // multisig_invalid
    let config = state.multisig(src)?;
    if let Err(f) = check_multisig(vtx, config.as_deref()) {
        return Ok(Err(f));
    }

    // multisig_not_configured
    if let Payload::MultiSig { threshold: 0, .. } = tx.payload {
        if config.is_none() {
            return Ok(Err(TxFailure::MultisigNotConfigured));
        }
    }

    // insufficient_unlocked_frozen / insufficient_energy: read energy only when needed.
    let needs_energy = matches!(tx.payload, Payload::Energy(_)) || tx.fee_type == FeeType::Energy;
    let mut energy = if needs_energy {
        Some(state.energy(src)?)
    } else {
        None
    };
    if let (Payload::Energy(EnergyPayload::UnfreezeTos { amount }), Some(e)) =
        (&tx.payload, &energy)
    {
        let unlocked = e
            .records
            .iter()
            .filter(|r| r.unlock_topoheight <= ctx.topoheight())
            .fold(0u64, |acc, r| acc.saturating_add(r.amount));
        if *amount > unlocked {
            return Ok(Err(TxFailure::InsufficientUnlockedFrozen {
                unlocked,
                requested: *amount,
            }));
        }
    }
    if tx.fee_type == FeeType::Energy {
        let required = tx.outputs() * ENERGY_PER_TRANSFER;
        let available = energy.as_ref().map_or(0, |e| e.available);
        if available < required {
            return Ok(Err(TxFailure::InsufficientEnergy {
                available,
                required,
            }));
        }
    }

    // insufficient_funds
    for (asset, spend) in &vtx.spending {
        let balance = state.balance(src, asset)?;
        if balance < *spend {
            return Ok(Err(TxFailure::InsufficientFunds {
                asset: *asset,
                balance,
                required: *spend,
            }));
        }
    }

    // Success: every write at once, as the deltas SPEC §6 states (nonce += 1,
    // balance -= spending), so that writes which commute can run in any order.
    state.increment_nonce(src)?;
    for (asset, spend) in &vtx.spending {
        state.debit(src, asset, *spend)?;
    }
    if let Payload::Energy(EnergyPayload::UnfreezeTos { amount }) = tx.payload {
        state.credit(src, &NATIVE_ASSET, amount)?;
    }

    match &tx.payload {
        Payload::Transfers(outs) => {
            for o in outs {
                state.credit(&o.destination, &o.asset, o.amount)?;
            }
        }
        Payload::Burn { asset, amount } => {
            if *asset == NATIVE_ASSET {
                state.add_burned(*amount)?;
            }
        }
        Payload::MultiSig {
            threshold,
            participants,
        } => {
            let new = (*threshold != 0).then(|| {
                Arc::new(MultisigConfig {
                    threshold: *threshold,
                    participants: participants.clone(),
                })
            });
            state.set_multisig(src, new);
        }
        Payload::Energy(EnergyPayload::FreezeTos { amount, days }) => {
            let e = energy.get_or_insert_with(EnergyState::default);
            let record_energy = (amount / COIN)
                .saturating_mul(ENERGY_PER_COIN_DAY)
                .saturating_mul(*days as u64);
            e.records.push(FreezeRecord {
                amount: *amount,
                energy: record_energy,
                unlock_topoheight: ctx
                    .topoheight()
                    .saturating_add((*days as u64).saturating_mul(ctx.blocks_per_day)),
            });
            e.available = e.available.saturating_add(record_energy);
            e.frozen = e.frozen.saturating_add(*amount);
        }
        Payload::Energy(EnergyPayload::UnfreezeTos { amount }) => {
            let e = energy.get_or_insert_with(EnergyState::default);
            let mut remaining = *amount;
            let mut removed_energy = 0u64;
            for r in e.records.iter_mut() {
                if remaining == 0 {
                    break;
                }
                if r.unlock_topoheight > ctx.topoheight() || r.amount == 0 {
                    continue;
                }
                let take = remaining.min(r.amount);
                let lost = ((r.energy as u128 * take as u128) / r.amount as u128) as u64;
                r.energy -= lost;
                r.amount -= take;
                removed_energy = removed_energy.saturating_add(lost);
                remaining -= take;
            }
            e.records.retain(|r| r.amount != 0);
            e.available = e.available.saturating_sub(removed_energy);
            e.frozen = e.frozen.saturating_sub(*amount);
        }
    }

    if tx.fee_type == FeeType::Energy {
        let e = energy.get_or_insert_with(EnergyState::default);
        e.available -= tx.outputs() * ENERGY_PER_TRANSFER;
    } else {
        state.add_fee(tx.fee)?;
    }
    if let Some(e) = energy {
        state.set_energy(src, e);
    }
    Ok(Ok(()))
}

fn check_multisig(vtx: &VerifiedTx, config: Option<&MultisigConfig>) -> Result<(), TxFailure> {
    use TxFailure::MultisigInvalid as Bad;
    match (config, &vtx.tx.multisig, &vtx.multisig_digest) {
        (None, None, _) => Ok(()),
        (None, Some(_), _) => Err(Bad("proof present but no multisig config")),
        (Some(_), None, _) => Err(Bad("multisig config requires a proof")),
        (Some(_), Some(_), None) => Err(Bad("missing signing digest")),
        (Some(cfg), Some(proof), Some(digest)) => {
            if proof.signatures.len() != cfg.threshold as usize {
                return Err(Bad("signature count differs from threshold"));
            }
            for s in &proof.signatures {
                let Some(key) = cfg.participants.get(s.id as usize) else {
                    return Err(Bad("participant id out of range"));
                };
                if !verify_strict(&key.0, digest, &s.signature) {
                    return Err(Bad("participant signature does not verify"));
                }
            }
            Ok(())
        }
    }
}
