//! Genesis (SPEC §3): parsing, validation and the topoheight-0 change set.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use super::constants::{DEFAULT_BLOCKS_PER_DAY, MAXIMUM_SUPPLY};
use super::error::{InitError, InputError};
use crate::{Asset, BlockMeta, ChainParams, ChangeSet, Hash, PublicKey, NATIVE_ASSET};

/// A validated genesis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Genesis {
    /// Blocks per day (default 86,400).
    pub blocks_per_day: u64,
    /// Accounts in file order.
    pub accounts: Vec<GenesisAccount>,
}

/// One genesis account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenesisAccount {
    /// Its key.
    pub key: PublicKey,
    /// Its balances.
    pub balances: BTreeMap<Asset, u64>,
    /// Its nonce (default 0).
    pub nonce: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GenesisJson {
    blocks_per_day: Option<u64>,
    accounts: Vec<AccountJson>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountJson {
    key: String,
    #[serde(default)]
    balances: BTreeMap<String, u64>,
    #[serde(default)]
    nonce: u64,
}

impl Genesis {
    /// Parses and validates a genesis JSON document.
    pub fn from_json(text: &str, what: &str) -> Result<Genesis, InputError> {
        let raw: GenesisJson = serde_json::from_str(text).map_err(|e| InputError::Json {
            what: what.to_string(),
            line: e.line(),
            reason: e.to_string(),
        })?;
        let mut accounts = Vec::with_capacity(raw.accounts.len());
        for (i, a) in raw.accounts.into_iter().enumerate() {
            let key = PublicKey::from_hex(&a.key)
                .map_err(|e| InputError::Genesis(format!("accounts[{i}].key: bad hex key: {e}")))?;
            let mut balances = BTreeMap::new();
            for (asset, amount) in a.balances {
                let asset = Hash::from_hex(&asset).map_err(|e| {
                    InputError::Genesis(format!("accounts[{i}].balances: bad asset hex: {e}"))
                })?;
                balances.insert(asset, amount);
            }
            accounts.push(GenesisAccount {
                key,
                balances,
                nonce: a.nonce,
            });
        }
        let g = Genesis {
            blocks_per_day: raw.blocks_per_day.unwrap_or(DEFAULT_BLOCKS_PER_DAY),
            accounts,
        };
        g.validate()?;
        Ok(g)
    }

    /// SPEC §3: no repeated key, native total <= MAXIMUM_SUPPLY, every asset total <= u64::MAX.
    pub fn validate(&self) -> Result<(), InputError> {
        let mut seen = BTreeSet::new();
        let mut totals: BTreeMap<Asset, u64> = BTreeMap::new();
        for a in &self.accounts {
            if !seen.insert(a.key) {
                return Err(InputError::Genesis(format!("key {} repeats", a.key)));
            }
            for (asset, amount) in &a.balances {
                let t = totals.entry(*asset).or_default();
                *t = t.checked_add(*amount).ok_or_else(|| {
                    InputError::Genesis(format!("total of asset {asset} exceeds u64::MAX"))
                })?;
            }
        }
        let native = self.native_total();
        if native > MAXIMUM_SUPPLY {
            return Err(InputError::Genesis(format!(
                "native total {native} exceeds MAXIMUM_SUPPLY {MAXIMUM_SUPPLY}"
            )));
        }
        Ok(())
    }

    fn native_total(&self) -> u64 {
        self.accounts
            .iter()
            .filter_map(|a| a.balances.get(&NATIVE_ASSET))
            .fold(0u64, |t, v| t.saturating_add(*v))
    }

    /// Identifies this genesis: blake3 of a canonical encoding.
    pub fn hash(&self) -> Hash {
        let mut h = blake3::Hasher::new();
        h.update(b"tos-genesis-v1");
        h.update(&self.blocks_per_day.to_be_bytes());
        h.update(&(self.accounts.len() as u64).to_be_bytes());
        for a in &self.accounts {
            h.update(&a.key.0);
            h.update(&a.nonce.to_be_bytes());
            h.update(&(a.balances.len() as u64).to_be_bytes());
            for (asset, amount) in &a.balances {
                h.update(&asset.0);
                h.update(&amount.to_be_bytes());
            }
        }
        Hash(*h.finalize().as_bytes())
    }

    /// What genesis writes at topoheight 0: every account's nonce and balances.
    pub fn commit_parts(&self) -> (ChangeSet, BlockMeta, ChainParams) {
        let mut changes = ChangeSet::new(0);
        for a in &self.accounts {
            changes.set_nonce(a.key, a.nonce);
            for (asset, amount) in &a.balances {
                changes.set_balance(a.key, *asset, *amount);
            }
        }
        let hash = self.hash();
        let meta = BlockMeta {
            hash,
            emitted_supply: self.native_total(),
            burned_supply: 0,
        };
        let params = ChainParams {
            blocks_per_day: self.blocks_per_day,
            genesis_hash: hash,
        };
        (changes, meta, params)
    }

    /// The genesis as JSON (as `init` reads it).
    pub fn to_json(&self) -> String {
        let accounts: Vec<serde_json::Value> = self
            .accounts
            .iter()
            .map(|a| {
                let balances: serde_json::Map<String, serde_json::Value> = a
                    .balances
                    .iter()
                    .map(|(k, v)| (k.to_hex(), (*v).into()))
                    .collect();
                serde_json::json!({"key": a.key.to_hex(), "balances": balances, "nonce": a.nonce})
            })
            .collect();
        serde_json::to_string_pretty(
            &serde_json::json!({"blocks_per_day": self.blocks_per_day, "accounts": accounts}),
        )
        .expect("serialising JSON values cannot fail")
    }
}

/// Whether [`init_genesis`] wrote the genesis or found it already there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitOutcome {
    /// Genesis written at topoheight 0.
    Initialised,
    /// The store already holds this very genesis; nothing written.
    AlreadyInitialised,
}

/// Writes `genesis` at topoheight 0 of an empty store; refuses a store that
/// holds another chain.
pub fn init_genesis<S: crate::StateRead + crate::StateWrite>(
    storage: &mut S,
    genesis: &Genesis,
) -> Result<InitOutcome, InitError> {
    genesis
        .validate()
        .map_err(|e| InitError::InvalidGenesis(e.to_string()))?;
    let (changes, meta, params) = genesis.commit_parts();
    if let Some(stored) = storage.chain_params()? {
        return if stored.genesis_hash == params.genesis_hash {
            Ok(InitOutcome::AlreadyInitialised)
        } else {
            Err(InitError::OtherChain {
                stored: stored.genesis_hash,
                given: params.genesis_hash,
            })
        };
    }
    storage.init(&changes, &meta, &params)?;
    Ok(InitOutcome::Initialised)
}
