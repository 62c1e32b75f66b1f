//! Transactions and their canonical wire format (SPEC §2).
//!
//! [`Transaction::decode`] is strict: unknown tags, option flags other than 0/1,
//! truncation, trailing bytes and a version other than 0 are all
//! [`DecodeError`]s (the `malformed` code). [`Transaction::encode`] is its exact
//! inverse, so `encode(decode(b)) == b` for every accepted `b`.

use ed25519_dalek::{Signer, SigningKey};

use super::error::DecodeError;
use crate::{Asset, Hash, PublicKey};

/// How the fee is paid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FeeType {
    /// `fee` in the native asset.
    Native,
    /// Energy: one unit per transfer output; `fee` must be 0.
    Energy,
}

/// One output of a Transfers payload.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TransferOutput {
    /// Asset transferred.
    pub asset: Asset,
    /// Receiver.
    pub destination: PublicKey,
    /// Amount in atomic units.
    pub amount: u64,
    /// Optional opaque data (at most 128 bytes, 4,096 per transaction).
    pub extra_data: Option<Vec<u8>>,
}

/// Energy sub-payloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EnergyPayload {
    /// Freeze `amount` native for `days` days, earning energy.
    FreezeTos {
        /// Native amount (a multiple of `COIN`, at least one coin).
        amount: u64,
        /// Freeze duration, 3..=180.
        days: u32,
    },
    /// Unfreeze `amount` native from unlocked records.
    UnfreezeTos {
        /// Native amount (a multiple of `COIN`, at least one coin).
        amount: u64,
    },
}

/// What a transaction does.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Payload {
    /// Tag 0: destroy `amount` of `asset`.
    Burn {
        /// Asset burned.
        asset: Asset,
        /// Amount burned (non-zero).
        amount: u64,
    },
    /// Tag 1: 1..=255 outputs.
    Transfers(Vec<TransferOutput>),
    /// Tag 2: set (threshold != 0) or delete (threshold 0) the source's multisig config.
    MultiSig {
        /// Signatures required; 0 deletes the config.
        threshold: u8,
        /// Participants (empty when threshold is 0).
        participants: Vec<PublicKey>,
    },
    /// Tag 3: deploys `code` as a new contract (SPEC v2), at the id
    /// [`contract_id`] gives for the source and the transaction's nonce.
    DeployContract {
        /// The code (1..=`MAX_CODE_SIZE` bytes).
        code: Vec<u8>,
    },
    /// Tag 4: runs a contract's code (SPEC v2 §8).
    InvokeContract {
        /// The contract's id.
        contract: PublicKey,
        /// Native units moved from the source to the contract before the
        /// code runs (undone if the code fails).
        deposit: u64,
        /// Gas the code may use (1..=`MAX_GAS`; paid whole in the fee).
        max_gas: u64,
        /// Arguments (at most `MAX_ARGS`).
        args: Vec<Hash>,
    },
    /// Tag 5: freeze or unfreeze native coins for energy.
    Energy(EnergyPayload),
}

/// The id of the contract that `source` deploys with nonce `nonce` (SPEC
/// v2 §6): `blake3("contract" ‖ source ‖ nonce u64)`.
pub fn contract_id(source: &PublicKey, nonce: u64) -> PublicKey {
    let mut h = blake3::Hasher::new();
    h.update(b"contract");
    h.update(&source.0);
    h.update(&nonce.to_be_bytes());
    PublicKey(*h.finalize().as_bytes())
}

/// One participant signature of a multisig proof.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MultiSigSignature {
    /// Index of the participant in the source's config.
    pub id: u8,
    /// Ed25519 signature over `blake3(signing bytes)`.
    pub signature: [u8; 64],
}

/// A multisig proof: at least one participant signature.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MultiSigProof {
    /// The signatures, in encoding order.
    pub signatures: Vec<MultiSigSignature>,
}

/// A transaction (SPEC §2).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Transaction {
    /// Always 0.
    pub version: u8,
    /// Sender and signer.
    pub source: PublicKey,
    /// What it does.
    pub payload: Payload,
    /// Fee in native atomic units (0 for energy fees).
    pub fee: u64,
    /// How the fee is paid.
    pub fee_type: FeeType,
    /// Must equal the source's nonce.
    pub nonce: u64,
    /// Not checked.
    pub reference_hash: Hash,
    /// Must not be above the topoheight the block executes on.
    pub reference_topoheight: u64,
    /// Participant signatures when the source has a multisig config.
    pub multisig: Option<MultiSigProof>,
    /// Source's Ed25519 signature over the signing bytes.
    pub signature: [u8; 64],
}

impl Transaction {
    /// Whether it reads and writes its source's energy state: an energy
    /// payload, or a fee paid in energy (the one rule the declared accesses
    /// and the execution rules both follow).
    pub fn uses_energy(&self) -> bool {
        matches!(self.payload, Payload::Energy(_)) || self.fee_type == FeeType::Energy
    }

    /// The contract a `DeployContract` creates (at its own nonce).
    pub fn deployed_contract(&self) -> Option<PublicKey> {
        matches!(self.payload, Payload::DeployContract { .. })
            .then(|| contract_id(&self.source, self.nonce))
    }

    /// The `max_gas` of an `InvokeContract` (what counts towards the block's
    /// gas limit), 0 for any other payload.
    pub fn max_gas(&self) -> u64 {
        match self.payload {
            Payload::InvokeContract { max_gas, .. } => max_gas,
            _ => 0,
        }
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len_hint());
        self.encode_signing_part(&mut out);
        match &self.multisig {
            None => out.push(0),
            Some(proof) => {
                out.push(1);
                out.push(proof.signatures.len() as u8);
                for s in &proof.signatures {
                    out.push(s.id);
                    out.extend_from_slice(&s.signature);
                }
            }
        }
        out.extend_from_slice(&self.signature);
        out
    }

    /// The bytes the source signs: the encoding from `version` through `reference_topoheight`.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len_hint());
        self.encode_signing_part(&mut out);
        out
    }

    fn encoded_len_hint(&self) -> usize {
        let payload = match &self.payload {
            Payload::Transfers(outs) => outs.len() * 80 + 2,
            Payload::MultiSig { participants, .. } => participants.len() * 32 + 2,
            Payload::DeployContract { code } => code.len() + 3,
            Payload::InvokeContract { args, .. } => args.len() * 32 + 50,
            _ => 48,
        };
        payload + 220
    }

    fn encode_signing_part(&self, out: &mut Vec<u8>) {
        out.push(self.version);
        out.extend_from_slice(&self.source.0);
        match &self.payload {
            Payload::Burn { asset, amount } => {
                out.push(0);
                out.extend_from_slice(&asset.0);
                out.extend_from_slice(&amount.to_be_bytes());
            }
            Payload::Transfers(outs) => {
                out.push(1);
                out.push(outs.len() as u8);
                for o in outs {
                    out.extend_from_slice(&o.asset.0);
                    out.extend_from_slice(&o.destination.0);
                    out.extend_from_slice(&o.amount.to_be_bytes());
                    match &o.extra_data {
                        None => out.push(0),
                        Some(d) => {
                            out.push(1);
                            out.extend_from_slice(&(d.len() as u16).to_be_bytes());
                            out.extend_from_slice(d);
                        }
                    }
                }
            }
            Payload::MultiSig {
                threshold,
                participants,
            } => {
                out.push(2);
                out.push(*threshold);
                if *threshold != 0 {
                    out.push(participants.len() as u8);
                    for p in participants {
                        out.extend_from_slice(&p.0);
                    }
                }
            }
            Payload::DeployContract { code } => {
                out.push(3);
                out.extend_from_slice(&(code.len() as u16).to_be_bytes());
                out.extend_from_slice(code);
            }
            Payload::InvokeContract {
                contract,
                deposit,
                max_gas,
                args,
            } => {
                out.push(4);
                out.extend_from_slice(&contract.0);
                out.extend_from_slice(&deposit.to_be_bytes());
                out.extend_from_slice(&max_gas.to_be_bytes());
                out.push(args.len() as u8);
                for a in args {
                    out.extend_from_slice(&a.0);
                }
            }
            Payload::Energy(e) => {
                out.push(5);
                match e {
                    EnergyPayload::FreezeTos { amount, days } => {
                        out.push(0);
                        out.extend_from_slice(&amount.to_be_bytes());
                        out.extend_from_slice(&days.to_be_bytes());
                    }
                    EnergyPayload::UnfreezeTos { amount } => {
                        out.push(1);
                        out.extend_from_slice(&amount.to_be_bytes());
                    }
                }
            }
        }
        out.extend_from_slice(&self.fee.to_be_bytes());
        out.push(match self.fee_type {
            FeeType::Native => 0,
            FeeType::Energy => 1,
        });
        out.extend_from_slice(&self.nonce.to_be_bytes());
        out.extend_from_slice(&self.reference_hash.0);
        out.extend_from_slice(&self.reference_topoheight.to_be_bytes());
    }

    /// Strictly decodes one transaction. Returns it with the length of its signing bytes.
    pub fn decode(bytes: &[u8]) -> Result<(Transaction, usize), DecodeError> {
        let mut r = Reader { buf: bytes, pos: 0 };
        let version = r.u8()?;
        if version != 0 {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let source = PublicKey(r.arr32()?);
        let payload = match r.u8()? {
            0 => Payload::Burn {
                asset: Hash(r.arr32()?),
                amount: r.u64()?,
            },
            1 => {
                let count = r.u8()?;
                if count == 0 {
                    return Err(DecodeError::NoTransfers);
                }
                let mut outs = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    let asset = Hash(r.arr32()?);
                    let destination = PublicKey(r.arr32()?);
                    let amount = r.u64()?;
                    let extra_data = match r.option_flag()? {
                        false => None,
                        true => {
                            let len = r.u16()? as usize;
                            Some(r.take(len)?.to_vec())
                        }
                    };
                    outs.push(TransferOutput {
                        asset,
                        destination,
                        amount,
                        extra_data,
                    });
                }
                Payload::Transfers(outs)
            }
            2 => {
                let threshold = r.u8()?;
                let mut participants = Vec::new();
                if threshold != 0 {
                    let count = r.u8()?;
                    participants.reserve(count as usize);
                    for _ in 0..count {
                        participants.push(PublicKey(r.arr32()?));
                    }
                }
                Payload::MultiSig {
                    threshold,
                    participants,
                }
            }
            3 => {
                let len = r.u16()? as usize;
                Payload::DeployContract {
                    code: r.take(len)?.to_vec(),
                }
            }
            4 => {
                let contract = PublicKey(r.arr32()?);
                let deposit = r.u64()?;
                let max_gas = r.u64()?;
                let argc = r.u8()?;
                let mut args = Vec::with_capacity(argc as usize);
                for _ in 0..argc {
                    args.push(Hash(r.arr32()?));
                }
                Payload::InvokeContract {
                    contract,
                    deposit,
                    max_gas,
                    args,
                }
            }
            5 => match r.u8()? {
                0 => Payload::Energy(EnergyPayload::FreezeTos {
                    amount: r.u64()?,
                    days: r.u32()?,
                }),
                1 => Payload::Energy(EnergyPayload::UnfreezeTos { amount: r.u64()? }),
                t => return Err(DecodeError::UnknownEnergyTag(t)),
            },
            t => return Err(DecodeError::UnknownPayloadTag(t)),
        };
        let fee = r.u64()?;
        let fee_type = match r.u8()? {
            0 => FeeType::Native,
            1 => FeeType::Energy,
            t => return Err(DecodeError::UnknownFeeType(t)),
        };
        let nonce = r.u64()?;
        let reference_hash = Hash(r.arr32()?);
        let reference_topoheight = r.u64()?;
        let signing_len = r.pos;
        let multisig = match r.option_flag()? {
            false => None,
            true => {
                let count = r.u8()?;
                if count == 0 {
                    return Err(DecodeError::EmptyMultisigProof);
                }
                let mut signatures = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    let id = r.u8()?;
                    let signature = r.arr64()?;
                    signatures.push(MultiSigSignature { id, signature });
                }
                Some(MultiSigProof { signatures })
            }
        };
        let signature = r.arr64()?;
        if r.pos != bytes.len() {
            return Err(DecodeError::TrailingBytes {
                extra: bytes.len() - r.pos,
            });
        }
        let tx = Transaction {
            version,
            source,
            payload,
            fee,
            fee_type,
            nonce,
            reference_hash,
            reference_topoheight,
            multisig,
            signature,
        };
        Ok((tx, signing_len))
    }

    /// Number of outputs for fee purposes: the transfer count for Transfers, else 1.
    pub fn outputs(&self) -> u64 {
        match &self.payload {
            Payload::Transfers(outs) => outs.len() as u64,
            _ => 1,
        }
    }

    /// Number of multisig proof signatures (0 without a proof).
    pub fn multisig_signature_count(&self) -> u64 {
        self.multisig
            .as_ref()
            .map_or(0, |p| p.signatures.len() as u64)
    }
}

/// Fields of a transaction before signing; [`UnsignedTransaction::sign`] makes
/// a [`Transaction`]. For tests, the generator and wallets.
#[derive(Clone, Debug)]
pub struct UnsignedTransaction {
    /// What it does.
    pub payload: Payload,
    /// Fee in native atomic units.
    pub fee: u64,
    /// How the fee is paid.
    pub fee_type: FeeType,
    /// The source's nonce.
    pub nonce: u64,
    /// Not checked by the chain.
    pub reference_hash: Hash,
    /// At most the parent topoheight of the block.
    pub reference_topoheight: u64,
}

impl UnsignedTransaction {
    /// Signs as `source`; each `(id, key)` in `multisig_signers` adds a proof
    /// signature over `blake3(signing bytes)` (no proof when empty).
    pub fn sign(self, source: &SigningKey, multisig_signers: &[(u8, &SigningKey)]) -> Transaction {
        let mut tx = Transaction {
            version: 0,
            source: PublicKey(source.verifying_key().to_bytes()),
            payload: self.payload,
            fee: self.fee,
            fee_type: self.fee_type,
            nonce: self.nonce,
            reference_hash: self.reference_hash,
            reference_topoheight: self.reference_topoheight,
            multisig: None,
            signature: [0u8; 64],
        };
        let signing = tx.signing_bytes();
        tx.signature = source.sign(&signing).to_bytes();
        if !multisig_signers.is_empty() {
            let digest = blake3::hash(&signing);
            tx.multisig = Some(MultiSigProof {
                signatures: multisig_signers
                    .iter()
                    .map(|(id, key)| MultiSigSignature {
                        id: *id,
                        signature: key.sign(digest.as_bytes()).to_bytes(),
                    })
                    .collect(),
            });
        }
        tx
    }
}

impl UnsignedTransaction {
    /// Signs with the smallest native fee the rules accept for the signed
    /// size (SPEC §5), plus `extra`; an energy-fee transaction keeps its fee.
    /// The fee is a fixed-width field, so the size does not depend on it.
    pub fn sign_with_minimum_fee(
        mut self,
        source: &SigningKey,
        multisig_signers: &[(u8, &SigningKey)],
        extra: u64,
    ) -> Transaction {
        if self.fee_type == FeeType::Native {
            let probe = self.clone().sign(source, multisig_signers);
            self.fee = minimum_fee(&probe, probe.encode().len()) + extra;
        }
        self.sign(source, multisig_signers)
    }
}

/// The minimum native fee (SPEC §5, `fee_too_low`): an invocation adds
/// its `max_gas` × `FEE_PER_GAS` (saturating: `invalid_payload` bounds
/// `max_gas` before this check runs).
pub fn minimum_fee(tx: &Transaction, size: usize) -> u64 {
    use super::constants::{FEE_PER_GAS, FEE_PER_KB, FEE_PER_TRANSFER};
    let kb = (size as u64).div_ceil(1024);
    (kb * FEE_PER_KB
        + tx.outputs() * FEE_PER_TRANSFER
        + tx.multisig_signature_count() * FEE_PER_TRANSFER)
        .saturating_add(tx.max_gas().saturating_mul(FEE_PER_GAS))
}

/// The signers a multisig `config` needs: its first `threshold` participants,
/// with their proof ids, as `key_of` finds their keys (unknown keys are left out).
pub fn config_signers<'k>(
    config: &crate::MultisigConfig,
    key_of: impl Fn(&PublicKey) -> Option<&'k SigningKey>,
) -> Vec<(u8, &'k SigningKey)> {
    config
        .participants
        .iter()
        .take(config.threshold as usize)
        .enumerate()
        .filter_map(|(id, p)| key_of(p).map(|k| (id as u8, k)))
        .collect()
}

/// The public key of a signing key.
pub fn public_key_of(key: &SigningKey) -> PublicKey {
    PublicKey(key.verifying_key().to_bytes())
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or(DecodeError::Truncated { at: self.pos })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        let mut b = [0u8; 2];
        b.copy_from_slice(self.take(2)?);
        Ok(u16::from_be_bytes(b))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(b))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(b))
    }
    fn arr32(&mut self) -> Result<[u8; 32], DecodeError> {
        let mut b = [0u8; 32];
        b.copy_from_slice(self.take(32)?);
        Ok(b)
    }
    fn arr64(&mut self) -> Result<[u8; 64], DecodeError> {
        let mut b = [0u8; 64];
        b.copy_from_slice(self.take(64)?);
        Ok(b)
    }
    fn option_flag(&mut self) -> Result<bool, DecodeError> {
        let at = self.pos;
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            flag => Err(DecodeError::BadOptionFlag { at, flag }),
        }
    }
}
