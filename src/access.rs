//! Access sets: which state keys a transaction touches (SPEC §6).
//!
//! Conflicts are per key, and a key is either an account's own fields
//! (nonce, multisig, energy: only its source transactions touch them) or one
//! (account, asset) balance. Alice→Bob in one asset and Carol→Bob in another
//! touch different keys and do not conflict.
//!
//! The set is derived from the transaction alone, never from state, and it is
//! a superset of what the rule engine can touch whatever the state is: a
//! failing transaction touches less, never more.

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

/// The keys one transaction reads and writes (each at most once).
pub type AccessSet = SmallVec<[AccessKey; 4]>;

/// Everything `vtx` may read or write.
pub fn access_set(vtx: &VerifiedTx) -> AccessSet {
    let src = vtx.tx.source;
    let mut keys = AccessSet::new();
    keys.push(AccessKey::Account(src));
    for (asset, _) in &vtx.spending {
        keys.push(AccessKey::Balance(src, *asset));
    }
    match &vtx.tx.payload {
        Payload::Transfers(outs) => {
            for o in outs {
                let k = AccessKey::Balance(o.destination, o.asset);
                if !keys.contains(&k) {
                    keys.push(k);
                }
            }
        }
        Payload::Energy(EnergyPayload::UnfreezeTos { .. }) => {
            let k = AccessKey::Balance(src, NATIVE_ASSET);
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        Payload::Burn { .. } | Payload::MultiSig { .. } | Payload::Energy(_) => {}
    }
    keys
}
