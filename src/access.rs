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
