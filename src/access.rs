//! Access sets: which state keys a transaction touches, and how (SPEC §6).
//!
//! A key is either an account's own fields (nonce, multisig, energy: only its
//! own transactions touch them) or one (account, asset) balance. Conflicts
//! are per key: Alice→Bob in one asset and Carol→Bob in another touch
//! different keys and do not conflict.
//!
//! Each access has a mode:
//! * [`AccessMode::ReadWrite`]: the transaction reads the value (a check may
//!   depend on it) and writes it: the source's account and the balances it
//!   spends;
//! * [`AccessMode::Commutative`]: the transaction only adds to it (a
//!   transfer's destination balance: no check reads it and the sum is the
//!   same in any order), or it is part of a covered sender chain
//!   (`coverage.rs`) whose checks pass in any order and whose writes are
//!   deltas. Commutative accesses to one key do not order against each
//!   other, only against read-writes of that key.
//!
//! The set is derived from the transaction alone, never from state, and
//! covers everything the rule engine can touch whatever the state: a failing
//! transaction touches less, never more.

// ahash: keyed (DoS-resistant against chosen keys) and much faster than SipHash on 32-64 byte keys.
use ahash::AHashMap as HashMap;
use smallvec::SmallVec;

use crate::transaction::{EnergyPayload, Payload};
use crate::validation::VerifiedTx;
use crate::{Asset, PublicKey, NATIVE_ASSET};

/// A unit of conflict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AccessKey {
    /// An account's nonce, multisig config and energy state.
    Account(PublicKey),
    /// One balance.
    Balance(PublicKey, Asset),
}

/// How a transaction touches a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AccessMode {
    /// Reads (checks may depend on the value) and writes.
    ReadWrite,
    /// A delta whose checks pass in any order (a credit, or a covered
    /// sender's debit); commutes with other commutative accesses.
    Commutative,
}

/// One access.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Access {
    /// The key.
    pub key: AccessKey,
    /// The mode.
    pub mode: AccessMode,
}

/// The keys one transaction touches (each at most once).
pub type AccessSet = SmallVec<[Access; 4]>;

/// Everything `vtx` may read or write, with the mode of each access.
pub fn access_set(vtx: &VerifiedTx) -> AccessSet {
    let src = vtx.tx.source;
    let mut set = AccessSet::new();
    let rw = |key| Access {
        key,
        mode: AccessMode::ReadWrite,
    };
    set.push(rw(AccessKey::Account(src)));
    for (asset, _) in &vtx.spending {
        set.push(rw(AccessKey::Balance(src, *asset)));
    }
    match &vtx.tx.payload {
        Payload::Transfers(outs) => {
            for o in outs {
                // Destinations differ from the source (SPEC §5), so a credit
                // never lands on a key this transaction also reads.
                let key = AccessKey::Balance(o.destination, o.asset);
                if !set.iter().any(|a| a.key == key) {
                    set.push(Access {
                        key,
                        mode: AccessMode::Commutative,
                    });
                }
            }
        }
        Payload::Energy(EnergyPayload::UnfreezeTos { .. }) => {
            let key = AccessKey::Balance(src, NATIVE_ASSET);
            if !set.iter().any(|a| a.key == key) {
                set.push(rw(key));
            }
        }
        Payload::Burn { .. } | Payload::MultiSig { .. } | Payload::Energy(_) => {}
    }
    set
}

/// Turns a covered transaction's accesses to its own source's keys into
/// commutative ones (see `coverage.rs`).
pub fn make_commutative(set: &mut AccessSet, source: &PublicKey) {
    for a in set.iter_mut() {
        let own = match &a.key {
            AccessKey::Account(k) | AccessKey::Balance(k, _) => k == source,
        };
        if own {
            a.mode = AccessMode::Commutative;
        }
    }
}

/// Dense ids of the keys a block's access sets name, assigned in first-seen
/// order at plan time: the one pass that hashes keys. The state's cell table
/// (`chain_state.rs`) and the graph builder's per-key tracking
/// (`scheduler.rs`) are indexed by these ids.
#[derive(Clone, Debug, Default)]
pub struct KeyIndex {
    /// Invariant: `ids[keys[i]] == i` for every id `i`.
    ids: HashMap<AccessKey, u32>,
    /// The key of each id.
    keys: Vec<AccessKey>,
    /// The id of every access, transaction after transaction, each
    /// transaction's accesses in its access set's order.
    access_ids: Vec<u32>,
    /// Transaction `t`'s ids are `access_ids[offsets[t]..offsets[t + 1]]`.
    offsets: Vec<u32>,
}

impl KeyIndex {
    /// Ids for every key of `access` (block order).
    pub fn build(access: &[AccessSet]) -> KeyIndex {
        let total: usize = access.iter().map(|s| s.len()).sum();
        let mut ids: HashMap<AccessKey, u32> = HashMap::with_capacity(total);
        let mut keys = Vec::with_capacity(total);
        let mut access_ids = Vec::with_capacity(total);
        let mut offsets = Vec::with_capacity(access.len() + 1);
        offsets.push(0);
        for set in access {
            for a in set {
                let next = keys.len() as u32;
                let id = *ids.entry(a.key).or_insert_with(|| {
                    keys.push(a.key);
                    next
                });
                access_ids.push(id);
            }
            offsets.push(access_ids.len() as u32);
        }
        KeyIndex {
            ids,
            keys,
            access_ids,
            offsets,
        }
    }

    /// The id of `key`, if the block names it.
    pub fn get(&self, key: &AccessKey) -> Option<u32> {
        self.ids.get(key).copied()
    }

    /// Every key, by id.
    pub fn keys(&self) -> &[AccessKey] {
        &self.keys
    }

    /// Number of distinct keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when the block names no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The ids of transaction `t`'s accesses, in its access set's order.
    pub fn ids_of(&self, t: usize) -> &[u32] {
        match (self.offsets.get(t), self.offsets.get(t + 1)) {
            (Some(&a), Some(&b)) => &self.access_ids[a as usize..b as usize],
            _ => &[],
        }
    }
}
