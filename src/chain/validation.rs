//! Stateless checks (SPEC §5), in the written order, and what execution
//! derives from a transaction alone.
//!
//! [`check_stateless`] runs checks 1-8 (a block's transaction not
//! seen before); [`BlockGas`] is check 9 (`block_gas_exceeded`), which
//! depends on the block's earlier invocations, fed in block order; [`check_admission`] every check but `reference_in_future`
//! (which depends on the block's parent, so a transaction admitted into
//! the mempool's verification cache gets it at block time, in its place in
//! the order: [`check_reference`]). A transaction that passed is a
//! [`VerifiedTx`]: the decoded transaction with its spending per asset,
//! multisig digest and declared accesses (with their hashes), computed once.

use ed25519_dalek::{Signature, VerifyingKey};
use smallvec::SmallVec;

use super::constants::*;
use super::error::StatelessError;
// `minimum_fee` lives with the transaction (signing needs it too) and is
// part of this module's checks.
pub use super::transaction::minimum_fee;
use super::transaction::{EnergyPayload, FeeType, Payload, Transaction};
use crate::engine::{Accesses, Mode};
use crate::{Asset, Hash, StateKey, TopoHeight, NATIVE_ASSET};

/// Spending per asset of one transaction.
pub type Spending = SmallVec<[(Asset, u64); 2]>;

/// A transaction that passed the stateless checks, with what execution needs
/// computed once: hash, size, spending per asset, multisig digest, and the
/// keys it may touch ([`Accesses`]; see [`accesses_of`]).
#[derive(Clone, Debug)]
pub struct VerifiedTx {
    /// The decoded transaction.
    pub tx: Transaction,
    /// `blake3(full encoding)`.
    pub hash: Hash,
    /// Encoded size in bytes.
    pub size: usize,
    /// Spending per asset (SPEC §6), each asset once, in first-seen order
    /// (inline for up to two assets: no allocation for almost every transaction).
    pub spending: Spending,
    /// `blake3(signing bytes)` when the transaction carries a multisig proof.
    pub multisig_digest: Option<[u8; 32]>,
    /// What it may read and write, whatever the state.
    pub accesses: Accesses<StateKey>,
}

/// All of SPEC §5 for one transaction of a block executed on the state at
/// `parent_topoheight`. `hash` is `blake3(bytes)` (the block computes it once).
pub fn check_stateless(
    bytes: &[u8],
    hash: Hash,
    parent_topoheight: TopoHeight,
) -> Result<VerifiedTx, StatelessError> {
    check(bytes, hash, Some(parent_topoheight))
}

/// Every SPEC §5 check but `reference_in_future` (for the mempool: a
/// transaction that passes may be cached, and gets [`check_reference`] when
/// a block includes it). A transaction failing it is never cached.
pub fn check_admission(bytes: &[u8], hash: Hash) -> Result<VerifiedTx, StatelessError> {
    check(bytes, hash, None)
}

/// Check 7 (`reference_in_future`) of an admitted transaction, for a block
/// executed on the state at `parent_topoheight`. Every earlier check passed
/// at admission and the later one too, so this is exactly the result of a
/// fresh [`check_stateless`].
pub fn check_reference(
    vtx: &VerifiedTx,
    parent_topoheight: TopoHeight,
) -> Result<(), StatelessError> {
    reference_check(&vtx.tx, parent_topoheight)
}

/// Check 9 (`block_gas_exceeded`), the one block-level check: the running
/// total of the block's invocations' `max_gas`, fed every transaction in
/// block order once its own checks 1-8 passed (fresh or from the cache).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockGas {
    /// `max_gas` of the invocations fed so far.
    total: u64,
}

impl BlockGas {
    /// No invocation yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `tx`'s `max_gas` (0 unless it is an invocation) and fails when
    /// the total passes `MAX_BLOCK_GAS`.
    pub fn check(&mut self, tx: &Transaction) -> Result<(), StatelessError> {
        self.total = self.total.saturating_add(tx.max_gas());
        if self.total > MAX_BLOCK_GAS {
            return Err(StatelessError::BlockGasExceeded {
                total: self.total,
                limit: MAX_BLOCK_GAS,
            });
        }
        Ok(())
    }

    /// The total so far.
    pub fn total(&self) -> u64 {
        self.total
    }
}

/// Check 7 itself: the one rule, for a fresh check and a cached one.
fn reference_check(tx: &Transaction, parent: TopoHeight) -> Result<(), StatelessError> {
    if tx.reference_topoheight > parent {
        return Err(StatelessError::ReferenceInFuture {
            reference: tx.reference_topoheight,
            parent,
        });
    }
    Ok(())
}

/// The checks in order; check 7 only with a parent topoheight.
fn check(
    bytes: &[u8],
    hash: Hash,
    parent_topoheight: Option<TopoHeight>,
) -> Result<VerifiedTx, StatelessError> {
    let (tx, signing_len) = Transaction::decode(bytes).map_err(StatelessError::Malformed)?;
    let size = bytes.len();
    if size > MAX_TX_SIZE {
        return Err(StatelessError::TxTooLarge { size });
    }
    check_payload(&tx)?;
    let spending = spending_of(&tx).ok_or(StatelessError::AmountOverflow)?;
    if tx.fee_type == FeeType::Energy
        && (!matches!(tx.payload, Payload::Transfers(_)) || tx.fee != 0)
    {
        return Err(StatelessError::InvalidFeeType);
    }
    if tx.fee_type == FeeType::Native {
        let required = minimum_fee(&tx, size);
        if tx.fee < required {
            return Err(StatelessError::FeeTooLow {
                fee: tx.fee,
                required,
            });
        }
    }
    if let Some(parent) = parent_topoheight {
        reference_check(&tx, parent)?;
    }
    let signing = &bytes[..signing_len];
    if !verify_strict(&tx.source.0, signing, &tx.signature) {
        return Err(StatelessError::InvalidSignature);
    }
    let multisig_digest = tx
        .multisig
        .as_ref()
        .map(|_| *blake3::hash(signing).as_bytes());
    let accesses = accesses_of(&tx, &spending);
    Ok(VerifiedTx {
        hash,
        tx,
        size,
        spending,
        multisig_digest,
        accesses,
    })
}

/// Everything a transaction may read or write (SPEC §6), derived from the
/// transaction alone; a failing transaction touches less, never more.
///
/// * its source's nonce: written (its proof group key: the covered sender
///   chains of `covered.rs`, where it becomes an add);
/// * its source's multisig config: read (written by a MultiSig payload);
/// * its source's energy: written, by energy payloads and energy fees only;
/// * its source's balance of each asset it spends: written (an add, i.e. a
///   subtraction, when covered); an unfreeze writes its native balance;
/// * each destination's balance of the asset it receives: an add (credits
///   commute: no check reads them);
/// * a deploy: the new contract's code, written (its id depends only on
///   the source and the nonce, which the transaction names);
/// * an invocation: the contract's code, read (`contract_not_found`); and
///   its accesses are *open* ([`Accesses::set_open`]): the contract's
///   slots, its balance, the accounts its code reads with `BALANCE` and
///   those it pays with `TRANSFER` depend on the state, so the engine
///   finds them by running it. Its declared keys stay enforced: its
///   source's native balance is declared `Write`, which covers a
///   `BALANCE` of the caller and a `TRANSFER` to it.
pub fn accesses_of(tx: &Transaction, spending: &Spending) -> Accesses<StateKey> {
    let src = tx.source;
    let mut a = Accesses::new();
    a.push_group(StateKey::Nonce(src), Mode::Write, Mode::Add);
    let multisig = if matches!(tx.payload, Payload::MultiSig { .. }) {
        Mode::Write
    } else {
        Mode::Read
    };
    a.push(StateKey::Multisig(src), multisig);
    if tx.uses_energy() {
        a.push(StateKey::Energy(src), Mode::Write);
    }
    for (asset, _) in spending {
        a.push_provable(StateKey::Balance(src, *asset), Mode::Write, Mode::Add);
    }
    match &tx.payload {
        Payload::Transfers(outs) => {
            for o in outs {
                // Destinations differ from the source (SPEC §5), so a credit
                // never lands on a key this transaction also reads.
                a.push(StateKey::Balance(o.destination, o.asset), Mode::Add);
            }
        }
        Payload::Energy(EnergyPayload::UnfreezeTos { .. }) => {
            a.push(StateKey::Balance(src, NATIVE_ASSET), Mode::Write);
        }
        Payload::DeployContract { .. } => {
            let id = super::transaction::contract_id(&src, tx.nonce);
            a.push(StateKey::Code(id), Mode::Write);
        }
        Payload::InvokeContract { contract, .. } => {
            // Its native balance is declared above (the fee is native).
            a.push(StateKey::Code(*contract), Mode::Read);
            a.set_open();
        }
        Payload::Burn { .. } | Payload::MultiSig { .. } | Payload::Energy(_) => {}
    }
    a
}

/// Ed25519 verification as SPEC §2 defines it (ed25519-dalek's `verify_strict`:
/// canonical S, no small-order key or R).
pub fn verify_strict(public_key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
    let Ok(key) = VerifyingKey::from_bytes(public_key) else {
        return false;
    };
    key.verify_strict(message, &Signature::from_bytes(signature))
        .is_ok()
}

fn check_payload(tx: &Transaction) -> Result<(), StatelessError> {
    use StatelessError::InvalidPayload as Bad;
    match &tx.payload {
        Payload::Transfers(outs) => {
            let mut total_extra = 0usize;
            for o in outs {
                if o.destination == tx.source {
                    return Err(Bad("a destination equals the source"));
                }
                if let Some(d) = &o.extra_data {
                    if d.len() > EXTRA_DATA_LIMIT_PER_OUTPUT {
                        return Err(Bad("extra_data over 128 bytes"));
                    }
                    total_extra += d.len();
                }
            }
            if total_extra > EXTRA_DATA_LIMIT_PER_TX {
                return Err(Bad("extra_data over 4096 bytes in total"));
            }
        }
        Payload::MultiSig {
            threshold,
            participants,
        } => {
            if *threshold != 0 {
                if participants.is_empty() {
                    return Err(Bad("multisig with no participant"));
                }
                if participants.len() > MAX_MULTISIG_PARTICIPANTS {
                    return Err(Bad("too many multisig participants"));
                }
                for (i, p) in participants.iter().enumerate() {
                    if participants[..i].contains(p) {
                        return Err(Bad("repeated multisig participant"));
                    }
                }
                if participants.contains(&tx.source) {
                    return Err(Bad("source among multisig participants"));
                }
                if *threshold as usize > participants.len() {
                    return Err(Bad("multisig threshold above participant count"));
                }
            }
        }
        Payload::Energy(EnergyPayload::FreezeTos { amount, days }) => {
            if *amount < COIN || amount % COIN != 0 {
                return Err(Bad("freeze amount not a positive multiple of COIN"));
            }
            if !(MIN_FREEZE_DAYS..=MAX_FREEZE_DAYS).contains(days) {
                return Err(Bad("freeze days outside 3..=180"));
            }
        }
        Payload::Energy(EnergyPayload::UnfreezeTos { amount }) => {
            if *amount < COIN || amount % COIN != 0 {
                return Err(Bad("unfreeze amount not a positive multiple of COIN"));
            }
        }
        Payload::Burn { amount, .. } => {
            if *amount == 0 {
                return Err(Bad("burn of 0"));
            }
        }
        Payload::DeployContract { code } => {
            if code.is_empty() || code.len() > MAX_CODE_SIZE {
                return Err(Bad("code of 0 bytes or over MAX_CODE_SIZE"));
            }
        }
        Payload::InvokeContract { max_gas, args, .. } => {
            if *max_gas == 0 || *max_gas > MAX_GAS {
                return Err(Bad("max_gas of 0 or over MAX_GAS"));
            }
            if args.len() > MAX_ARGS {
                return Err(Bad("more than MAX_ARGS arguments"));
            }
        }
    }
    if let Some(proof) = &tx.multisig {
        for (i, s) in proof.signatures.iter().enumerate() {
            if proof.signatures[..i].iter().any(|o| o.id == s.id) {
                return Err(Bad("repeated multisig proof id"));
            }
        }
    }
    Ok(())
}

/// Spending per asset (SPEC §6), or `None` when a total overflows u64.
fn spending_of(tx: &Transaction) -> Option<Spending> {
    let mut totals = Spending::new();
    let mut add = |asset: Asset, amount: u64| -> Option<()> {
        match totals.iter_mut().find(|(a, _)| *a == asset) {
            Some((_, t)) => *t = t.checked_add(amount)?,
            None => totals.push((asset, amount)),
        }
        Some(())
    };
    match &tx.payload {
        Payload::Transfers(outs) => {
            for o in outs {
                add(o.asset, o.amount)?;
            }
        }
        Payload::Burn { asset, amount } => add(*asset, *amount)?,
        Payload::Energy(EnergyPayload::FreezeTos { amount, .. }) => add(NATIVE_ASSET, *amount)?,
        Payload::InvokeContract { deposit, .. } => add(NATIVE_ASSET, *deposit)?,
        Payload::Energy(EnergyPayload::UnfreezeTos { .. })
        | Payload::MultiSig { .. }
        | Payload::DeployContract { .. } => {}
    }
    if tx.fee_type == FeeType::Native {
        add(NATIVE_ASSET, tx.fee)?;
    }
    Some(totals)
}
