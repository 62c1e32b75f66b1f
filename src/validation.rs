//! Stateless checks (SPEC §5), in the written order.
//!
//! [`precheck`] runs every check but the signature, [`verify_signature`] the
//! last one; [`check_stateless`] runs both. The parallel executor runs them on
//! the pool and reports the first failing index, exactly like the sequential path.

use std::sync::Arc;

use ed25519_dalek::{Signature, VerifyingKey};
use smallvec::SmallVec;

use crate::constants::*;
use crate::error::StatelessError;
use crate::transaction::{EnergyPayload, FeeType, Payload, Transaction};
use crate::{Asset, Hash, NATIVE_ASSET};

/// Spending per asset of one transaction.
pub type Spending = SmallVec<[(Asset, u64); 2]>;

/// A transaction that passed the stateless checks, with what execution needs
/// precomputed once (hash, size, spending per asset, multisig digest).
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
}

/// A transaction that decoded and passed checks 1-7 but whose source signature
/// is not yet verified.
#[derive(Clone, Debug)]
pub struct PrecheckedTx {
    verified: VerifiedTx,
    bytes: Arc<[u8]>,
    signing_len: usize,
}

impl PrecheckedTx {
    /// The signing bytes.
    pub fn signing_bytes(&self) -> &[u8] {
        &self.bytes[..self.signing_len]
    }
}

/// Checks 1-7 of SPEC §5 (everything but the source signature) against the
/// state at `parent_topoheight`.
/// `hash` is `blake3(bytes)` (the block computes it once).
pub fn precheck(
    bytes: Arc<[u8]>,
    hash: Hash,
    parent_topoheight: u64,
) -> Result<PrecheckedTx, StatelessError> {
    let (tx, signing_len) = Transaction::decode(&bytes).map_err(StatelessError::Malformed)?;
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
    if tx.reference_topoheight > parent_topoheight {
        return Err(StatelessError::ReferenceInFuture {
            reference: tx.reference_topoheight,
            parent: parent_topoheight,
        });
    }
    let multisig_digest = tx
        .multisig
        .as_ref()
        .map(|_| *blake3::hash(&bytes[..signing_len]).as_bytes());
    Ok(PrecheckedTx {
        verified: VerifiedTx {
            hash,
            tx,
            size,
            spending,
            multisig_digest,
        },
        bytes,
        signing_len,
    })
}

/// Check 8 of SPEC §5: the source signature, under `verify_strict` rules.
pub fn verify_signature(pre: PrecheckedTx) -> Result<VerifiedTx, StatelessError> {
    if verify_strict(
        &pre.verified.tx.source.0,
        pre.signing_bytes(),
        &pre.verified.tx.signature,
    ) {
        Ok(pre.verified)
    } else {
        Err(StatelessError::InvalidSignature)
    }
}

/// All of SPEC §5 for one transaction.
pub fn check_stateless(
    bytes: Arc<[u8]>,
    hash: Hash,
    parent_topoheight: u64,
) -> Result<VerifiedTx, StatelessError> {
    verify_signature(precheck(bytes, hash, parent_topoheight)?)
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

/// The minimum native fee (SPEC §5, `fee_too_low`).
pub fn minimum_fee(tx: &Transaction, size: usize) -> u64 {
    let kb = (size as u64).div_ceil(1024);
    kb * FEE_PER_KB
        + tx.outputs() * FEE_PER_TRANSFER
        + tx.multisig_signature_count() * FEE_PER_TRANSFER
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
        Payload::Energy(EnergyPayload::UnfreezeTos { .. }) | Payload::MultiSig { .. } => {}
    }
    if tx.fee_type == FeeType::Native {
        add(NATIVE_ASSET, tx.fee)?;
    }
    Some(totals)
}
