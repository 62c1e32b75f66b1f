//! Plain chain-state types shared by every storage and by the executors.
//!
//! These live in the storage crate because the [`crate::Storage`] trait speaks
//! in them; `tos_parallel` re-exports them.

use std::collections::BTreeMap;
use std::fmt;

/// Topoheight: the height of a state. Genesis is 0; a block executed on the
/// state at `T` produces `T + 1`.
pub type TopoHeight = u64;

/// A 32-byte Ed25519 public key, compared and ordered by its bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PublicKey(pub [u8; 32]);

/// A 32-byte BLAKE3 digest (also used as an asset id).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hash(pub [u8; 32]);

/// An asset id. The native coin is [`NATIVE_ASSET`].
pub type Asset = Hash;

/// The native asset: 32 zero bytes (SPEC §1).
pub const NATIVE_ASSET: Asset = Hash([0u8; 32]);

macro_rules! hex32 {
    ($t:ident) => {
        impl $t {
            /// Lowercase hex of the 32 bytes.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// Parses exactly 64 hex digits.
            pub fn from_hex(s: &str) -> Result<Self, hex::FromHexError> {
                let mut out = [0u8; 32];
                hex::decode_to_slice(s, &mut out)?;
                Ok($t(out))
            }

            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }
        }

        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($t), &self.to_hex()[..16])
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }
    };
}
hex32!(PublicKey);
hex32!(Hash);

/// A multisig configuration (SPEC §6): `threshold` signatures out of
/// `participants`, which keep payload order (proof ids index it).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MultisigConfig {
    /// Number of participant signatures required (>= 1).
    pub threshold: u8,
    /// Participants in payload order.
    pub participants: Vec<PublicKey>,
}

/// One freeze record (SPEC §6, FreezeTos).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct FreezeRecord {
    /// Native amount still frozen in this record.
    pub amount: u64,
    /// Energy this record still carries.
    pub energy: u64,
    /// First topoheight at which the record may be unfrozen.
    pub unlock_topoheight: TopoHeight,
}

/// An account's energy state. `Default` is the state of an account that never froze.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct EnergyState {
    /// Energy available to pay transfer fees.
    pub available: u64,
    /// Total native amount frozen (sum of record amounts).
    pub frozen: u64,
    /// Freeze records, oldest first.
    pub records: Vec<FreezeRecord>,
}

/// Metadata stored for every topoheight (genesis included).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlockMeta {
    /// Block hash (SPEC §3); for genesis, the genesis hash.
    pub hash: Hash,
    /// Native coins emitted so far (genesis total plus rewards).
    pub emitted_supply: u64,
    /// Native coins burned so far.
    pub burned_supply: u64,
}

/// Chain parameters fixed at genesis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ChainParams {
    /// Blocks per day (SPEC §3), used by FreezeTos.
    pub blocks_per_day: u64,
    /// Hash identifying the genesis this store was initialised with.
    pub genesis_hash: Hash,
}

/// Everything one block (or genesis) writes, applied atomically at `topoheight`.
///
/// Maps are ordered so that two change sets built by different executors
/// compare (and diff) deterministically. Each entry is the final value of a key
/// the block wrote; a key absent from the set keeps its previous version.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ChangeSet {
    /// Topoheight the change set is written at (`parent + 1`, or 0 for genesis).
    pub topoheight: TopoHeight,
    /// New nonces.
    pub nonces: BTreeMap<PublicKey, u64>,
    /// New balances per (account, asset).
    pub balances: BTreeMap<(PublicKey, Asset), u64>,
    /// New multisig configs; `None` deletes the config.
    pub multisigs: BTreeMap<PublicKey, Option<MultisigConfig>>,
    /// New energy states.
    pub energies: BTreeMap<PublicKey, EnergyState>,
}

/// One account as a state dump shows it (SPEC §7).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct AccountSnapshot {
    /// Nonce (0 until the account sends).
    pub nonce: u64,
    /// Every balance entry ever created (also at 0).
    pub balances: BTreeMap<Asset, u64>,
    /// Multisig config, if any.
    pub multisig: Option<MultisigConfig>,
    /// Energy state (default if it never froze).
    pub energy: EnergyState,
}

/// The whole state at one topoheight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateSnapshot {
    /// The topoheight of the snapshot.
    pub topoheight: TopoHeight,
    /// Metadata at that topoheight.
    pub meta: BlockMeta,
    /// Every account listed at that topoheight.
    pub accounts: BTreeMap<PublicKey, AccountSnapshot>,
}

/// What [`crate::Storage::get_batch`] answers, in the order of its request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchRead {
    /// `nonces[i]`: as `get_nonce(accounts[i], at)`.
    pub nonces: Vec<Option<u64>>,
    /// `multisigs[i]`: as `get_multisig(accounts[i], at)`.
    pub multisigs: Vec<Option<MultisigConfig>>,
    /// `balances[j]`: as `get_balance(balances[j].0, balances[j].1, at)`.
    pub balances: Vec<Option<u64>>,
}
