//! Value encodings. Every decoder checks lengths exactly and returns
//! [`StorageError::Corrupt`]: a corrupt database gives an error, never a panic.

use std::sync::Arc;

use super::schema::Cf;
use crate::{
    BlockMeta, ChainParams, EnergyState, FreezeRecord, Hash, MultisigConfig, PublicKey, StateValue,
    StorageError,
};

/// Appends the stored encoding of `value` to `out`.
pub(super) fn encode_value_into(value: &StateValue, out: &mut Vec<u8>) {
    match value {
        StateValue::Counter(n) => out.extend_from_slice(&n.to_be_bytes()),
        StateValue::Code(code) => out.extend_from_slice(code),
        StateValue::Word(word) => out.extend_from_slice(&word[..]),
        other => out.extend_from_slice(&encode_value(other)),
    }
}

/// The stored encoding of `value` (checked against its key by `check.rs`).
pub(super) fn encode_value(value: &StateValue) -> Vec<u8> {
    match value {
        StateValue::Counter(n) => n.to_be_bytes().to_vec(),
        StateValue::Multisig(config) => encode_multisig(config.as_deref()),
        StateValue::Energy(energy) => encode_energy(energy),
        StateValue::Code(code) => code.to_vec(),
        StateValue::Word(word) => word.to_vec(),
    }
}

/// Decodes a value of versioned column family `cf`.
pub(super) fn decode_value(cf: Cf, bytes: &[u8]) -> Result<StateValue, StorageError> {
    Ok(match cf {
        Cf::Nonce | Cf::Balance => StateValue::Counter(decode_u64(cf.name(), bytes)?),
        Cf::Multisig => StateValue::Multisig(decode_multisig(bytes)?.map(Arc::new)),
        Cf::Energy => StateValue::Energy(Arc::new(decode_energy(bytes)?)),
        // Any length: stored code was checked when it was deployed.
        Cf::Code => StateValue::Code(Arc::new(bytes.to_vec())),
        Cf::Slot => {
            let mut r = Reader::new(cf.name(), bytes);
            let word = r.array::<32>()?;
            r.finish()?;
            StateValue::Word(Arc::new(word))
        }
        Cf::Meta | Cf::Info | Cf::Changes => {
            return Err(StorageError::Corrupt {
                column: cf.name(),
                reason: "not a versioned column family".into(),
            })
        }
    })
}

/// A bounds-checked cursor over an encoded value.
pub(super) struct Reader<'a> {
    column: &'static str,
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(super) fn new(column: &'static str, bytes: &'a [u8]) -> Self {
        Reader { column, bytes }
    }

    pub(super) fn corrupt(&self, reason: impl Into<String>) -> StorageError {
        StorageError::Corrupt {
            column: self.column,
            reason: reason.into(),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], StorageError> {
        if self.bytes.len() < n {
            return Err(self.corrupt(format!(
                "truncated value: needed {n} more bytes, {} left",
                self.bytes.len()
            )));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], StorageError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, StorageError> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, StorageError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, StorageError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn finish(self) -> Result<(), StorageError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(self.corrupt(format!("{} trailing bytes", self.bytes.len())))
        }
    }
}

pub(super) fn decode_u64(column: &'static str, bytes: &[u8]) -> Result<u64, StorageError> {
    let mut r = Reader::new(column, bytes);
    let v = r.u64()?;
    r.finish()?;
    Ok(v)
}

pub(super) fn encode_multisig(config: Option<&MultisigConfig>) -> Vec<u8> {
    match config {
        None => vec![0],
        Some(config) => {
            let mut out = Vec::with_capacity(3 + 32 * config.participants.len());
            out.push(1);
            out.push(config.threshold);
            // check_commit guarantees at most 255 participants.
            out.push(config.participants.len() as u8);
            for key in &config.participants {
                out.extend_from_slice(&key.0);
            }
            out
        }
    }
}

pub(super) fn decode_multisig(bytes: &[u8]) -> Result<Option<MultisigConfig>, StorageError> {
    let mut r = Reader::new("multisig", bytes);
    let config = match r.u8()? {
        0 => None,
        1 => {
            let threshold = r.u8()?;
            let count = r.u8()?;
            let participants = (0..count)
                .map(|_| r.array().map(PublicKey))
                .collect::<Result<_, _>>()?;
            Some(MultisigConfig {
                threshold,
                participants,
            })
        }
        tag => return Err(r.corrupt(format!("unknown multisig tag {tag}"))),
    };
    r.finish()?;
    Ok(config)
}

pub(super) fn encode_energy(energy: &EnergyState) -> Vec<u8> {
    let mut out = Vec::with_capacity(20 + 24 * energy.records.len());
    out.extend_from_slice(&energy.available.to_be_bytes());
    out.extend_from_slice(&energy.frozen.to_be_bytes());
    // check_commit guarantees the count fits in a u32.
    out.extend_from_slice(&(energy.records.len() as u32).to_be_bytes());
    for record in &energy.records {
        out.extend_from_slice(&record.amount.to_be_bytes());
        out.extend_from_slice(&record.energy.to_be_bytes());
        out.extend_from_slice(&record.unlock_topoheight.to_be_bytes());
    }
    out
}

pub(super) fn decode_energy(bytes: &[u8]) -> Result<EnergyState, StorageError> {
    let mut r = Reader::new("energy", bytes);
    let available = r.u64()?;
    let frozen = r.u64()?;
    let count = r.u32()? as usize;
    if r.bytes.len() != count.saturating_mul(24) {
        return Err(r.corrupt(format!(
            "{count} freeze records but {} bytes left",
            r.bytes.len()
        )));
    }
    let records = (0..count)
        .map(|_| {
            Ok(FreezeRecord {
                amount: r.u64()?,
                energy: r.u64()?,
                unlock_topoheight: r.u64()?,
            })
        })
        .collect::<Result<_, StorageError>>()?;
    r.finish()?;
    Ok(EnergyState {
        available,
        frozen,
        records,
    })
}

pub(super) fn encode_meta(meta: &BlockMeta) -> [u8; 48] {
    let mut out = [0u8; 48];
    out[..32].copy_from_slice(&meta.hash.0);
    out[32..40].copy_from_slice(&meta.emitted_supply.to_be_bytes());
    out[40..].copy_from_slice(&meta.burned_supply.to_be_bytes());
    out
}

pub(super) fn decode_meta(bytes: &[u8]) -> Result<BlockMeta, StorageError> {
    let mut r = Reader::new("meta", bytes);
    let meta = BlockMeta {
        hash: Hash(r.array()?),
        emitted_supply: r.u64()?,
        burned_supply: r.u64()?,
    };
    r.finish()?;
    Ok(meta)
}

pub(super) fn encode_params(params: &ChainParams) -> [u8; 40] {
    let mut out = [0u8; 40];
    out[..8].copy_from_slice(&params.blocks_per_day.to_be_bytes());
    out[8..].copy_from_slice(&params.genesis_hash.0);
    out
}

pub(super) fn decode_params(bytes: &[u8]) -> Result<ChainParams, StorageError> {
    let mut r = Reader::new("info", bytes);
    let params = ChainParams {
        blocks_per_day: r.u64()?,
        genesis_hash: Hash(r.array()?),
    };
    r.finish()?;
    Ok(params)
}

/// Appends one `(cf, prefix)` entry to a `changes` index value.
pub(super) fn push_change(index: &mut Vec<u8>, cf: Cf, prefix: &[u8]) {
    debug_assert_eq!(prefix.len(), cf.prefix_len());
    index.push(cf.id());
    index.extend_from_slice(prefix);
}

/// Decodes a `changes` index value into its `(cf, prefix)` entries.
pub(super) fn decode_changes(bytes: &[u8]) -> Result<Vec<(Cf, &[u8])>, StorageError> {
    let mut r = Reader::new("changes", bytes);
    let mut out = Vec::new();
    while !r.is_empty() {
        let id = r.u8()?;
        let cf = Cf::from_id(id).ok_or_else(|| r.corrupt(format!("unknown column id {id}")))?;
        out.push((cf, r.take(cf.prefix_len())?));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codecs_round_trip() {
        let config = MultisigConfig {
            threshold: 2,
            participants: vec![PublicKey([1; 32]), PublicKey([2; 32]), PublicKey([3; 32])],
        };
        assert_eq!(
            decode_multisig(&encode_multisig(Some(&config))).unwrap(),
            Some(config)
        );
        assert_eq!(decode_multisig(&encode_multisig(None)).unwrap(), None);
        let energy = EnergyState {
            available: 5,
            frozen: 7,
            records: vec![
                FreezeRecord {
                    amount: 7,
                    energy: 5,
                    unlock_topoheight: 99,
                },
                FreezeRecord::default(),
            ],
        };
        assert_eq!(decode_energy(&encode_energy(&energy)).unwrap(), energy);
        let meta = BlockMeta {
            hash: Hash([9; 32]),
            emitted_supply: 1,
            burned_supply: 2,
        };
        assert_eq!(decode_meta(&encode_meta(&meta)).unwrap(), meta);
        let params = ChainParams {
            blocks_per_day: 86_400,
            genesis_hash: Hash([4; 32]),
        };
        assert_eq!(decode_params(&encode_params(&params)).unwrap(), params);
        let mut index = Vec::new();
        push_change(&mut index, Cf::Nonce, &[1; 32]);
        push_change(&mut index, Cf::Balance, &[2; 64]);
        let decoded = decode_changes(&index).unwrap();
        assert_eq!(decoded.len(), 2);
        assert_eq!(decoded[0], (Cf::Nonce, &[1u8; 32][..]));
        assert_eq!(decoded[1], (Cf::Balance, &[2u8; 64][..]));
    }

    #[test]
    fn corrupt_values_are_errors_not_panics() {
        let corrupt = |r: Result<_, StorageError>| matches!(r, Err(StorageError::Corrupt { .. }));
        assert!(corrupt(decode_u64("nonce", &[1, 2, 3]).map(|_| ())));
        assert!(corrupt(decode_u64("nonce", &[0; 9]).map(|_| ())));
        assert!(corrupt(decode_multisig(&[]).map(|_| ())));
        assert!(corrupt(decode_multisig(&[2]).map(|_| ())));
        assert!(corrupt(decode_multisig(&[0, 0]).map(|_| ())));
        assert!(corrupt(decode_multisig(&[1, 1, 2, 0, 0]).map(|_| ())));
        assert!(corrupt(decode_energy(&[0; 19]).map(|_| ())));
        let mut huge = vec![0u8; 16];
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(corrupt(decode_energy(&huge).map(|_| ())));
        assert!(corrupt(decode_meta(&[0; 47]).map(|_| ())));
        assert!(corrupt(decode_params(&[0; 41]).map(|_| ())));
        assert!(corrupt(decode_changes(&[7]).map(|_| ())));
        assert!(corrupt(decode_changes(&[0, 1, 2]).map(|_| ())));
    }
}
