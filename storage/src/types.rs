//! Plain chain-state types shared by every storage and by the executors.
//!
//! These live in the storage crate because its traits speak in them;
//! `tos_parallel` re-exports them, and its SPEC chain executes on
//! [`StateKey`]s and [`StateValue`]s directly.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// Topoheight: the height of a state. Genesis is 0; a block executed on the
/// state at `T` produces `T + 1`.
pub type TopoHeight = u64;

/// A 32-byte Ed25519 public key, compared and ordered by its bytes.
#[derive(Clone, Copy, Eq, PartialOrd, Ord, Default)]
pub struct PublicKey(pub [u8; 32]);

/// A 32-byte BLAKE3 digest (also used as an asset id).
#[derive(Clone, Copy, Eq, PartialOrd, Ord, Default)]
pub struct Hash(pub [u8; 32]);

/// The 32 bytes as four words: equality in four compares, inline (a byte
/// comparison of 32 bytes is a `memcmp` call, and keys are compared on every
/// probe of every state table).
#[inline(always)]
fn words(b: &[u8; 32]) -> [u64; 4] {
    let mut w = [0u64; 4];
    for (word, chunk) in w.iter_mut().zip(b.chunks_exact(8)) {
        let mut c = [0u8; 8];
        c.copy_from_slice(chunk);
        *word = u64::from_ne_bytes(c);
    }
    w
}

/// An asset id. The native coin is [`NATIVE_ASSET`].
pub type Asset = Hash;

/// The native asset: 32 zero bytes (SPEC §1).
pub const NATIVE_ASSET: Asset = Hash([0u8; 32]);

macro_rules! hex32 {
    ($t:ident) => {
        impl PartialEq for $t {
            #[inline(always)]
            fn eq(&self, other: &Self) -> bool {
                words(&self.0) == words(&other.0)
            }
        }

        impl std::hash::Hash for $t {
            #[inline]
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                self.0.hash(state)
            }
        }

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

/// A unit of chain state (the SPEC chain's schema): what a block reads and
/// writes, one versioned entry per key.
// The manual `PartialEq` is the structural one (inlined), so the derived
// `Hash` agrees with it.
#[allow(clippy::derived_hash_with_manual_eq)]
#[derive(Clone, Copy, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum StateKey {
    /// An account's nonce (a counter; absent reads 0).
    Nonce(PublicKey),
    /// One (account, asset) balance (a counter; absent reads 0).
    Balance(PublicKey, Asset),
    /// An account's multisig config (absent or deleted: no config).
    Multisig(PublicKey),
    /// An account's energy state (absent: never froze).
    Energy(PublicKey),
    /// A contract's code (SPEC v2 §6 `DeployContract`), keyed by the
    /// contract's id; absent: no contract there. Written once.
    Code(PublicKey),
    /// One storage slot of a contract (SPEC v2 §8): a 32-byte word, keyed
    /// by the contract's id and the slot; absent reads as the zero word.
    Slot(PublicKey, Hash),
}

impl PartialEq for StateKey {
    /// Inline: keys are compared on every probe of every state table and
    /// on every search of a declaration (the derived comparison is a call).
    #[inline(always)]
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (StateKey::Nonce(a), StateKey::Nonce(b))
            | (StateKey::Multisig(a), StateKey::Multisig(b))
            | (StateKey::Energy(a), StateKey::Energy(b))
            | (StateKey::Code(a), StateKey::Code(b)) => a == b,
            (StateKey::Balance(a, x), StateKey::Balance(b, y))
            | (StateKey::Slot(a, x), StateKey::Slot(b, y)) => a == b && x == y,
            _ => false,
        }
    }
}

impl StateKey {
    /// The account the key belongs to (a contract's code and slots: the
    /// contract's id, which is also the account of its native balance).
    pub fn account(&self) -> &PublicKey {
        match self {
            StateKey::Nonce(a)
            | StateKey::Balance(a, _)
            | StateKey::Multisig(a)
            | StateKey::Energy(a)
            | StateKey::Code(a)
            | StateKey::Slot(a, _) => a,
        }
    }
}

impl fmt::Display for StateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateKey::Nonce(a) => write!(f, "nonce({a})"),
            StateKey::Balance(a, asset) => write!(f, "balance({a}, {asset})"),
            StateKey::Multisig(a) => write!(f, "multisig({a})"),
            StateKey::Energy(a) => write!(f, "energy({a})"),
            StateKey::Code(c) => write!(f, "code({c})"),
            StateKey::Slot(c, slot) => write!(f, "slot({c}, {slot})"),
        }
    }
}

/// The value of a [`StateKey`].
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum StateValue {
    /// A nonce or a balance.
    Counter(u64),
    /// A multisig config; `None` deletes it (a tombstone version).
    Multisig(Option<Arc<MultisigConfig>>),
    /// An energy state.
    Energy(Arc<EnergyState>),
    /// A contract's code (shared: every invocation reads it whole).
    /// Behind one thin pointer, as the word: a `StateValue` stays 16 bytes,
    /// the size every engine table and cell is laid out for (inline, the
    /// word made it 40 and the sequential engine 20-30% slower).
    Code(Arc<Vec<u8>>),
    /// A contract slot's word, 32 big-endian bytes (the zero word is kept
    /// as a version: it hides an older non-zero word).
    Word(Arc<[u8; 32]>),
}

/// One contract as a state dump shows it (SPEC v2 §7).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ContractSnapshot {
    /// Its code.
    pub code: Vec<u8>,
    /// Its non-zero slots.
    pub storage: BTreeMap<Hash, [u8; 32]>,
}

/// Everything one block (or genesis) writes, applied atomically at
/// `topoheight`: the final value of every key the block wrote, each key at
/// most once, in no particular order (executors build it in parts, one per
/// worker, and nothing needs it sorted; [`ChangeSet::sorted`] sorts a copy,
/// and equality ignores the order). A key absent from the set keeps its
/// previous version.
#[derive(Clone, Debug, Default)]
pub struct ChangeSet {
    /// Topoheight the change set is written at (`parent + 1`, or 0 for genesis).
    pub topoheight: TopoHeight,
    /// The writes, in parts (each part a plain list).
    parts: Vec<Vec<(StateKey, StateValue)>>,
}

impl ChangeSet {
    /// An empty change set at `topoheight`.
    pub fn new(topoheight: TopoHeight) -> Self {
        ChangeSet {
            topoheight,
            parts: Vec::new(),
        }
    }

    /// A change set made of `parts` (no key in two places).
    pub fn from_parts(topoheight: TopoHeight, parts: Vec<Vec<(StateKey, StateValue)>>) -> Self {
        ChangeSet { topoheight, parts }
    }

    /// Records the final value of `key` (a key must be recorded once).
    pub fn push(&mut self, key: StateKey, value: StateValue) {
        match self.parts.last_mut() {
            Some(part) => part.push((key, value)),
            None => self.parts.push(vec![(key, value)]),
        }
    }

    /// Sets `account`'s nonce.
    pub fn set_nonce(&mut self, account: PublicKey, nonce: u64) {
        self.push(StateKey::Nonce(account), StateValue::Counter(nonce));
    }

    /// Sets the (`account`, `asset`) balance.
    pub fn set_balance(&mut self, account: PublicKey, asset: Asset, balance: u64) {
        self.push(
            StateKey::Balance(account, asset),
            StateValue::Counter(balance),
        );
    }

    /// Sets (`Some`) or deletes (`None`) `account`'s multisig config.
    pub fn set_multisig(&mut self, account: PublicKey, config: Option<MultisigConfig>) {
        self.push(
            StateKey::Multisig(account),
            StateValue::Multisig(config.map(Arc::new)),
        );
    }

    /// Sets `account`'s energy state.
    pub fn set_energy(&mut self, account: PublicKey, energy: EnergyState) {
        self.push(
            StateKey::Energy(account),
            StateValue::Energy(Arc::new(energy)),
        );
    }

    /// Every write, part after part.
    pub fn iter(&self) -> impl Iterator<Item = &(StateKey, StateValue)> {
        self.parts.iter().flatten()
    }

    /// The writes as they were recorded, part by part.
    pub fn parts(&self) -> &[Vec<(StateKey, StateValue)>] {
        &self.parts
    }

    /// Number of writes.
    pub fn len(&self) -> usize {
        self.parts.iter().map(Vec::len).sum()
    }

    /// True when the block writes nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The writes sorted by key (a copy: for comparisons and diffs).
    pub fn sorted(&self) -> Vec<(StateKey, StateValue)> {
        let mut all: Vec<(StateKey, StateValue)> = self.iter().cloned().collect();
        all.sort_unstable_by_key(|(k, _)| *k);
        all
    }
}

/// Same topoheight and same writes, in any order.
impl PartialEq for ChangeSet {
    fn eq(&self, other: &Self) -> bool {
        self.topoheight == other.topoheight
            && self.len() == other.len()
            && self.sorted() == other.sorted()
    }
}

impl Eq for ChangeSet {}

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
    /// Every contract deployed at that topoheight, by id.
    pub contracts: BTreeMap<PublicKey, ContractSnapshot>,
}

impl StateSnapshot {
    /// No account and no contract yet.
    pub fn empty(topoheight: TopoHeight, meta: BlockMeta) -> Self {
        StateSnapshot {
            topoheight,
            meta,
            accounts: BTreeMap::new(),
            contracts: BTreeMap::new(),
        }
    }
}

/// Puts the latest version of `key` into the snapshot (every store builds
/// its snapshot through this one function). A contract's code and slots go
/// to its contract (a zero word is not listed); everything else to its account.
pub(crate) fn apply_to_snapshot(
    snapshot: &mut StateSnapshot,
    key: &StateKey,
    value: StateValue,
) -> Result<(), crate::StorageError> {
    match (key, value) {
        (StateKey::Code(c), StateValue::Code(code)) => {
            snapshot.contracts.entry(*c).or_default().code = Arc::unwrap_or_clone(code);
        }
        (StateKey::Slot(c, slot), StateValue::Word(word)) => {
            let word = *word;
            if word != [0u8; 32] {
                snapshot
                    .contracts
                    .entry(*c)
                    .or_default()
                    .storage
                    .insert(*slot, word);
            }
        }
        (StateKey::Nonce(a), StateValue::Counter(n)) => {
            snapshot.accounts.entry(*a).or_default().nonce = n
        }
        (StateKey::Balance(a, asset), StateValue::Counter(n)) => {
            snapshot
                .accounts
                .entry(*a)
                .or_default()
                .balances
                .insert(*asset, n);
        }
        (StateKey::Multisig(a), StateValue::Multisig(c)) => {
            snapshot.accounts.entry(*a).or_default().multisig = c.map(Arc::unwrap_or_clone)
        }
        (StateKey::Energy(a), StateValue::Energy(e)) => {
            snapshot.accounts.entry(*a).or_default().energy = Arc::unwrap_or_clone(e);
        }
        (key, value) => {
            return Err(crate::StorageError::Corrupt {
                column: "state",
                reason: format!("{key} holds {value:?}"),
            })
        }
    }
    Ok(())
}
