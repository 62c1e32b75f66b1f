//! The stateful rules (SPEC §6) and the block hooks (SPEC §4.2, §4.4): the
//! one rule engine every executor runs, on the engine's [`View`].
//!
//! [`execute`] reads what it needs, runs the checks in the written order,
//! and only when all pass performs the writes ([`apply_effects`]), as the
//! deltas SPEC §6 states (`nonce += 1`, `balance -= spending`), so that
//! writes which commute can run in any order. A failing transaction
//! therefore writes nothing. A covered transaction (`covered.rs` proved its
//! checks pass) skips the checks and performs the same writes.

use std::sync::Arc;

use super::constants::*;
use super::error::TxFailure;
use super::invocation::Invocation;
use super::transaction::{EnergyPayload, FeeType, Payload};
use super::validation::{verify_strict, VerifiedTx};
use super::vm::{self, Exit};
use crate::engine::{StateError, StateResult, View};
use crate::{
    EnergyState, FreezeRecord, MultisigConfig, PublicKey, StateKey, StateValue, TopoHeight,
    NATIVE_ASSET,
};

/// Block sum of the native fees of the successful transactions.
pub const SUM_FEES: usize = 0;
/// Block sum of the native amount burned.
pub const SUM_BURNED: usize = 1;

/// What the rules need to know about the block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockContext {
    /// Topoheight of the state the block executes on (T).
    pub parent_topoheight: TopoHeight,
    /// Chain parameter from genesis.
    pub blocks_per_day: u64,
    /// The miner (credited the reward and the fees).
    pub miner: PublicKey,
    /// The block reward (SPEC §4.2, from the parent's emitted supply).
    pub reward: u64,
}

impl BlockContext {
    /// The topoheight the block produces (T + 1).
    pub fn topoheight(&self) -> TopoHeight {
        self.parent_topoheight + 1
    }
}

/// SPEC §4.2: the reward goes to the miner before any transaction.
pub(crate) fn begin_block<V: View<StateKey, StateValue>>(
    block: &BlockContext,
    view: &mut V,
) -> StateResult<(), V::ReadError> {
    view.add(&StateKey::Balance(block.miner, NATIVE_ASSET), block.reward)
}

/// SPEC §4.4: the fees go to the miner after every transaction.
pub(crate) fn end_block<V: View<StateKey, StateValue>>(
    block: &BlockContext,
    sums: &[u64],
    view: &mut V,
) -> StateResult<(), V::ReadError> {
    let fees = sums
        .get(SUM_FEES)
        .copied()
        .ok_or_else(|| StateError::Invariant("no fee sum"))?;
    view.add(&StateKey::Balance(block.miner, NATIVE_ASSET), fees)
}

/// The multisig config a value holds.
fn multisig_of<E>(value: Option<StateValue>) -> StateResult<Option<Arc<MultisigConfig>>, E> {
    match value {
        None | Some(StateValue::Multisig(None)) => Ok(None),
        Some(StateValue::Multisig(Some(c))) => Ok(Some(c)),
        Some(_) => Err(StateError::Invariant("multisig key holds another value")),
    }
}

/// The energy state a value holds.
fn energy_of<E>(value: Option<StateValue>) -> StateResult<EnergyState, E> {
    match value {
        None => Ok(EnergyState::default()),
        Some(StateValue::Energy(e)) => Ok(Arc::unwrap_or_clone(e)),
        Some(_) => Err(StateError::Invariant("energy key holds another value")),
    }
}

/// Executes one stateless-valid transaction (SPEC §6): `Ok(Ok(()))`
/// applied, `Ok(Err(failure))` orphaned (nothing written), `Err(_)` the
/// block is abandoned. `covered`: its sender chain was proven to succeed
/// (`covered.rs`), so the checks are skipped.
pub(crate) fn execute<V: View<StateKey, StateValue>>(
    vtx: &VerifiedTx,
    ctx: &BlockContext,
    covered: bool,
    view: &mut V,
) -> StateResult<Result<(), TxFailure>, V::ReadError> {
    #[cfg(feature = "fault-injection")]
    crate::fault::panic_if_marked(&vtx.hash);
    if covered {
        apply_effects(vtx, ctx, view, None)?;
        return Ok(Ok(()));
    }
    let tx = &vtx.tx;
    let src = tx.source;

    // nonce_mismatch
    let nonce = view.counter(&StateKey::Nonce(src))?;
    if tx.nonce != nonce {
        return Ok(Err(TxFailure::NonceMismatch {
            expected: nonce,
            got: tx.nonce,
        }));
    }

    // multisig_invalid
    let config = multisig_of(view.get(&StateKey::Multisig(src))?)?;
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
    let energy = if tx.uses_energy() {
        Some(energy_of(view.get(&StateKey::Energy(src))?)?)
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

    // contract_not_found
    let code = match &tx.payload {
        Payload::InvokeContract { contract, .. } => match view.get(&StateKey::Code(*contract))? {
            Some(StateValue::Code(code)) => Some(code),
            None => return Ok(Err(TxFailure::ContractNotFound(*contract))),
            Some(_) => return Err(StateError::Invariant("a code key holds another value")),
        },
        _ => None,
    };

    // insufficient_funds
    for (asset, spend) in &vtx.spending {
        let balance = view.counter(&StateKey::Balance(src, *asset))?;
        if balance < *spend {
            return Ok(Err(TxFailure::InsufficientFunds {
                asset: *asset,
                balance,
                required: *spend,
            }));
        }
    }

    if let Some(code) = code {
        return invoke(vtx, ctx, &code, view, false);
    }
    apply_effects(vtx, ctx, view, energy)?;
    Ok(Ok(()))
}

/// Runs `vtx` only to see what it touches ([`Chain::explore`](crate::engine::Chain::explore)): an
/// invocation runs its contract without the checks before it (nonce,
/// multisig, funds) and without charging its nonce and fee (declared
/// keys, never hints), so that one whose nonce is not yet the next, or
/// whose source is funded only later (hints taken on an older state),
/// still gets its contract's keys, and when its code does not succeed,
/// its other branches too (`explore_paths`); anything else executes as
/// in a block.
pub(crate) fn explore<V: View<StateKey, StateValue>>(
    vtx: &VerifiedTx,
    ctx: &BlockContext,
    view: &mut V,
) -> StateResult<(), V::ReadError> {
    if let Payload::InvokeContract { contract, .. } = &vtx.tx.payload {
        if let Some(StateValue::Code(code)) = view.get(&StateKey::Code(*contract))? {
            // A revert or a failure still touched what it touched, hints
            // the slots it read as written (`Invocation::explored`), and
            // walks the code's other branches (`explore_paths`).
            let _status = invoke(vtx, ctx, &code, view, true)?;
        }
        return Ok(());
    }
    execute(vtx, ctx, false, view).map(drop)
}

/// An invocation whose checks passed (SPEC §6 `InvokeContract`, §8): the
/// nonce and the fee are charged for good; the deposit and everything the
/// code does go through an [`Invocation`], written only if the code ends
/// with success.
///
/// `exploring` (for hints, [`explore`]): a run that does not succeed then
/// writes what a success would have written as far as it got
/// ([`Invocation::explored`]).
fn invoke<V: View<StateKey, StateValue>>(
    vtx: &VerifiedTx,
    ctx: &BlockContext,
    code: &[u8],
    view: &mut V,
    exploring: bool,
) -> StateResult<Result<(), TxFailure>, V::ReadError> {
    let tx = &vtx.tx;
    let Payload::InvokeContract {
        contract,
        deposit,
        max_gas,
        args,
    } = &tx.payload
    else {
        return Err(StateError::Invariant("invoke of another payload"));
    };
    let src = tx.source;
    if !exploring {
        view.add(&StateKey::Nonce(src), 1)?;
        view.sub(&StateKey::Balance(src, NATIVE_ASSET), tx.fee)?;
        view.sum(SUM_FEES, tx.fee)?;
    }
    let mut state = Invocation::new(view, *contract);
    pay_deposit(&mut state, &src, contract, *deposit, exploring)?;
    let env = vm::Env {
        contract: *contract,
        caller: src,
        deposit: *deposit,
        args,
        height: ctx.topoheight(),
        max_gas: *max_gas,
    };
    let ended = if exploring {
        explore_paths(code, &env, state, *deposit)?
    } else {
        let ended = vm::run(code, &env, &mut state)?;
        if ended.exit == Exit::Success {
            state.commit()?;
        }
        ended
    };
    Ok(match ended.exit {
        Exit::Success => Ok(()),
        Exit::Reverted => Err(TxFailure::ContractReverted),
        Exit::Failed(fault) => Err(TxFailure::ContractFailed(fault)),
        Exit::OutOfGas => Err(TxFailure::OutOfGas { max_gas: *max_gas }),
    })
}

/// The deposit paid into the contract (a credit even of 0). In a block,
/// the checks proved the source holds it. Explored (`exploring`) where
/// the source cannot pay (hints are often taken on a state older than the
/// block's parent: funds may come later), the contract is credited all
/// the same: its credit is what its block would see.
fn pay_deposit<V: View<StateKey, StateValue>>(
    state: &mut Invocation<'_, V>,
    source: &PublicKey,
    contract: &PublicKey,
    deposit: u64,
    exploring: bool,
) -> StateResult<(), V::ReadError> {
    if !state.pay(source, contract, deposit)? {
        if !exploring {
            return Err(StateError::Invariant("deposit above the checked balance"));
        }
        state.credit(contract, deposit)?;
    }
    Ok(())
}

/// The paths of an invocation being explored (hints, [`explore`]), from
/// `state` (the deposit paid): the natural run, and when it does not
/// succeed, its other branches ([`vm::Paths`], at most [`vm::MAX_RUNS`]
/// runs) until one does. Each run that fails writes what it read or
/// stored ([`Invocation::explored`]); the one that succeeds commits. At
/// the tip a token holder short of the amount reverts at its check; in
/// its block, paid by an earlier transaction, it passes and credits its
/// recipient's slot, which only the branch past the check touches.
/// Returns the natural run's end.
fn explore_paths<V: View<StateKey, StateValue>>(
    code: &[u8],
    env: &vm::Env<'_>,
    state: Invocation<'_, V>,
    deposit: u64,
) -> StateResult<vm::Ended, V::ReadError> {
    let contract = env.contract;
    let mut paths = vm::Paths::new();
    let mut state = Some(state);
    let mut spare: Option<&mut V> = None;
    let mut natural = None;
    while let Some(mut steer) = paths.next_run() {
        let mut run = match state.take() {
            Some(s) => s,
            None => {
                // A later run starts again from the deposit; the view
                // holds what the earlier runs wrote (the keys are what
                // count, not their values).
                let Some(view) = spare.take() else { break };
                let mut s = Invocation::new(view, contract);
                pay_deposit(&mut s, &env.caller, &contract, deposit, true)?;
                s
            }
        };
        let ended = vm::run_steered(code, env, &mut run, &mut steer)?;
        natural.get_or_insert(ended);
        if ended.exit == Exit::Success {
            run.commit()?;
            break;
        }
        paths.ran(&steer);
        spare = Some(run.explored()?);
    }
    natural.ok_or(StateError::Invariant("an exploration without a run"))
}

/// Every write of a successful transaction (SPEC §6 "on success, all at
/// once"), as deltas. `energy` is the source's energy state when the
/// transaction needs it (read by the checks).
fn apply_effects<V: View<StateKey, StateValue>>(
    vtx: &VerifiedTx,
    ctx: &BlockContext,
    view: &mut V,
    mut energy: Option<EnergyState>,
) -> StateResult<(), V::ReadError> {
    let tx = &vtx.tx;
    let src = tx.source;
    view.add(&StateKey::Nonce(src), 1)?;
    for (asset, spend) in &vtx.spending {
        view.sub(&StateKey::Balance(src, *asset), *spend)?;
    }
    if let Payload::Energy(EnergyPayload::UnfreezeTos { amount }) = tx.payload {
        view.add(&StateKey::Balance(src, NATIVE_ASSET), amount)?;
    }

    match &tx.payload {
        Payload::Transfers(outs) => {
            for o in outs {
                view.add(&StateKey::Balance(o.destination, o.asset), o.amount)?;
            }
        }
        Payload::Burn { asset, amount } => {
            if *asset == NATIVE_ASSET {
                view.sum(SUM_BURNED, *amount)?;
            }
        }
        Payload::DeployContract { code } => {
            let id = tx
                .deployed_contract()
                .ok_or_else(|| StateError::Invariant("a deploy without a contract id"))?;
            view.set(
                &StateKey::Code(id),
                StateValue::Code(Arc::new(code.clone())),
            )?;
        }
        Payload::InvokeContract { .. } => {
            return Err(StateError::Invariant("an invocation outside invoke()"));
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
            view.set(&StateKey::Multisig(src), StateValue::Multisig(new))?;
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
        e.available = e
            .available
            .checked_sub(tx.outputs() * ENERGY_PER_TRANSFER)
            .ok_or_else(|| StateError::Invariant("energy below zero"))?;
    } else {
        view.sum(SUM_FEES, tx.fee)?;
    }
    if let Some(e) = energy {
        view.set(&StateKey::Energy(src), StateValue::Energy(Arc::new(e)))?;
    }
    Ok(())
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
