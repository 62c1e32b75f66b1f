//! Blocks (SPEC §3): JSON form, hash, and the JSON Lines blocks file.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::error::InputError;
use crate::{Hash, PublicKey, TopoHeight};

/// A block: a miner and the encoded transactions, in order.
///
/// Transaction hashes are computed once, when the block is built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    topoheight: Option<TopoHeight>,
    miner: PublicKey,
    txs: Vec<Arc<[u8]>>,
    tx_hashes: Vec<Hash>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BlockJson {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    topoheight: Option<u64>,
    miner: String,
    txs: Vec<String>,
}

impl Block {
    /// A block producing `topoheight` (or on top of the current state when `None`).
    pub fn new(topoheight: Option<TopoHeight>, miner: PublicKey, txs: Vec<Vec<u8>>) -> Block {
        let txs: Vec<Arc<[u8]>> = txs.into_iter().map(Arc::from).collect();
        let tx_hashes = txs
            .iter()
            .map(|t| Hash(*blake3::hash(t).as_bytes()))
            .collect();
        Block {
            topoheight,
            miner,
            txs,
            tx_hashes,
        }
    }

    /// The topoheight the block says it produces, if it says.
    pub fn topoheight(&self) -> Option<TopoHeight> {
        self.topoheight
    }

    /// The miner.
    pub fn miner(&self) -> &PublicKey {
        &self.miner
    }

    /// Encoded transactions in block order.
    pub fn txs(&self) -> &[Arc<[u8]>] {
        &self.txs
    }

    /// `blake3` of each encoded transaction, in block order.
    pub fn tx_hashes(&self) -> &[Hash] {
        &self.tx_hashes
    }

    /// Block hash (SPEC §3) when the block produces `topoheight`.
    pub fn hash_at(&self, topoheight: TopoHeight) -> Hash {
        let mut h = blake3::Hasher::new();
        h.update(&topoheight.to_be_bytes());
        h.update(&self.miner.0);
        h.update(&(self.txs.len() as u32).to_be_bytes());
        for t in &self.tx_hashes {
            h.update(&t.0);
        }
        Hash(*h.finalize().as_bytes())
    }

    /// Parses one block from JSON; `line` (1-based) is used in errors.
    pub fn from_json(text: &str, what: &str, line: usize) -> Result<Block, InputError> {
        let err = |reason: String| InputError::Json {
            what: what.to_string(),
            line,
            reason,
        };
        let raw: BlockJson = serde_json::from_str(text).map_err(|e| err(e.to_string()))?;
        let miner =
            PublicKey::from_hex(&raw.miner).map_err(|e| err(format!("miner: bad hex key: {e}")))?;
        let mut txs = Vec::with_capacity(raw.txs.len());
        for (i, t) in raw.txs.iter().enumerate() {
            txs.push(hex::decode(t).map_err(|e| err(format!("txs[{i}]: bad hex: {e}")))?);
        }
        Ok(Block::new(raw.topoheight, miner, txs))
    }

    /// The block as one JSON line (no newline).
    pub fn to_json(&self) -> String {
        let raw = BlockJson {
            topoheight: self.topoheight,
            miner: self.miner.to_hex(),
            txs: self.txs.iter().map(hex::encode).collect(),
        };
        serde_json::to_string(&raw).expect("serialising plain strings cannot fail")
    }
}

/// Reads a JSON Lines blocks file lazily: yields `(line number, block)` per
/// non-empty line, or the first error (with its line number), then stops.
pub fn read_blocks_file(
    path: &std::path::Path,
) -> Result<impl Iterator<Item = Result<(usize, Block), InputError>>, InputError> {
    use std::io::BufRead;
    let what = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| InputError::Io {
        path: what.clone(),
        source,
    })?;
    let mut lines = std::io::BufReader::new(file).lines().enumerate();
    let mut failed = false;
    Ok(std::iter::from_fn(move || loop {
        if failed {
            return None;
        }
        let (i, line) = lines.next()?;
        let line_no = i + 1;
        let line = match line {
            Ok(l) => l,
            Err(source) => {
                failed = true;
                return Some(Err(InputError::Io {
                    path: format!("{what}, line {line_no}"),
                    source,
                }));
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let r = Block::from_json(&line, &what, line_no).map(|b| (line_no, b));
        failed = r.is_err();
        return Some(r);
    }))
}
