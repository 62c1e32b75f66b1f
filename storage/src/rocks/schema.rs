//! The database layout: one column family per kind of value.
//!
//! | CF         | key                                   | value                                  |
//! |------------|---------------------------------------|----------------------------------------|
//! | `nonce`    | account ‖ !topo                       | u64                                    |
//! | `balance`  | account ‖ asset ‖ !topo               | u64                                    |
//! | `multisig` | account ‖ !topo                       | 0 (deleted) or 1, threshold, n, keys   |
//! | `energy`   | account ‖ !topo                       | available, frozen, n: u32, records     |
//! | `code`     | contract ‖ !topo                      | the code's bytes                       |
//! | `slot`     | contract ‖ slot ‖ !topo               | the word (32 bytes)                    |
//! | `meta`     | topo                                  | hash ‖ emitted ‖ burned                |
//! | `info`     | `top` / `params`                      | u64 / blocks_per_day ‖ genesis hash    |
//! | `changes`  | topo                                  | (cf id, key prefix)* written at topo   |
//!
//! Integers are big-endian; `!topo` is the bitwise complement of the
//! topoheight, so the versions of one key sort newest first and "latest
//! version `<= T`" is a single forward seek to `prefix ‖ !T`. The `changes`
//! index lets a rewind delete exactly the versions written above its target
//! without scanning.

use crate::{Hash, PublicKey, StateKey, StorageError, TopoHeight};

/// Key of the top topoheight in the `info` column family.
pub(super) const INFO_TOP: &[u8] = b"top";
/// Key of the chain parameters in the `info` column family.
pub(super) const INFO_PARAMS: &[u8] = b"params";

/// The column families of a tos-parallel database.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Cf {
    Nonce,
    Balance,
    Multisig,
    Energy,
    Code,
    Slot,
    Meta,
    Info,
    Changes,
}

impl Cf {
    pub(super) const ALL: [Cf; 9] = [
        Cf::Nonce,
        Cf::Balance,
        Cf::Multisig,
        Cf::Energy,
        Cf::Code,
        Cf::Slot,
        Cf::Meta,
        Cf::Info,
        Cf::Changes,
    ];

    /// The versioned column families, one per [`StateKey`] kind, in the
    /// order of their ids.
    pub(super) const VERSIONED: [Cf; 6] = [
        Cf::Nonce,
        Cf::Balance,
        Cf::Multisig,
        Cf::Energy,
        Cf::Code,
        Cf::Slot,
    ];

    /// The column families SPEC v2 added (contracts): a database written
    /// before v2 lacks them, and opening it creates them (empty).
    pub(super) const ADDED_IN_V2: [Cf; 2] = [Cf::Code, Cf::Slot];

    pub(super) fn name(self) -> &'static str {
        match self {
            Cf::Nonce => "nonce",
            Cf::Balance => "balance",
            Cf::Multisig => "multisig",
            Cf::Energy => "energy",
            Cf::Code => "code",
            Cf::Slot => "slot",
            Cf::Meta => "meta",
            Cf::Info => "info",
            Cf::Changes => "changes",
        }
    }

    /// Id of a versioned column family in the `changes` index (its index
    /// in [`Cf::VERSIONED`]; the other families never appear there).
    pub(super) fn id(self) -> u8 {
        match self {
            Cf::Nonce => 0,
            Cf::Balance => 1,
            Cf::Multisig => 2,
            Cf::Energy => 3,
            Cf::Code => 4,
            Cf::Slot => 5,
            Cf::Meta | Cf::Info | Cf::Changes => u8::MAX,
        }
    }

    pub(super) fn from_id(id: u8) -> Option<Cf> {
        Cf::VERSIONED.get(id as usize).copied()
    }

    /// Length of the key prefix (everything but the version) of a versioned column family.
    pub(super) fn prefix_len(self) -> usize {
        match self {
            Cf::Balance | Cf::Slot => 64,
            _ => 32,
        }
    }
}

/// The key prefix of a [`StateKey`] in its column family.
#[derive(Clone, Copy)]
pub(super) struct Prefix {
    bytes: [u8; 64],
    len: u8,
}

impl Prefix {
    pub(super) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

/// The column family `key` lives in.
pub(super) fn cf_of(key: &StateKey) -> Cf {
    match key {
        StateKey::Nonce(_) => Cf::Nonce,
        StateKey::Balance(..) => Cf::Balance,
        StateKey::Multisig(_) => Cf::Multisig,
        StateKey::Energy(_) => Cf::Energy,
        StateKey::Code(_) => Cf::Code,
        StateKey::Slot(..) => Cf::Slot,
    }
}

/// The first 64 bits of `key`'s place in the database's order: its column
/// family's id, then the first 7 bytes of its prefix (every prefix starts
/// with an account or contract key). Keys with different heads are in the
/// order of their heads; keys with equal heads need the whole comparison
/// (`StateKey`'s `Ord`, which is the database's order).
pub(super) fn sort_head(key: &StateKey) -> u64 {
    let account = match key {
        StateKey::Nonce(a)
        | StateKey::Multisig(a)
        | StateKey::Energy(a)
        | StateKey::Code(a)
        | StateKey::Balance(a, _)
        | StateKey::Slot(a, _) => a,
    };
    let mut head = [0u8; 8];
    head[0] = cf_of(key).id();
    head[1..].copy_from_slice(&account.0[..7]);
    u64::from_be_bytes(head)
}

/// The indexes of `items` in the database's order of their keys (`key`
/// of each): sorted on [`sort_head`]s in one contiguous array, the whole
/// keys compared only on a tie (sorting the items by reference chased a
/// pointer on every comparison: 17% of a commit of 1,000 transfers).
pub(super) fn key_order<T>(items: &[T], key: impl Fn(&T) -> &StateKey) -> Vec<usize> {
    let mut order: Vec<(u64, usize)> = items
        .iter()
        .enumerate()
        .map(|(i, item)| (sort_head(key(item)), i))
        .collect();
    order.sort_unstable_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| key(&items[a.1]).cmp(key(&items[b.1])))
    });
    order.into_iter().map(|(_, i)| i).collect()
}

/// Where `key` lives: its column family and key prefix.
pub(super) fn locate(key: &StateKey) -> (Cf, Prefix) {
    let mut bytes = [0u8; 64];
    let len = match key {
        StateKey::Nonce(a) | StateKey::Multisig(a) | StateKey::Energy(a) | StateKey::Code(a) => {
            bytes[..32].copy_from_slice(&a.0);
            32
        }
        StateKey::Balance(a, second) | StateKey::Slot(a, second) => {
            bytes[..32].copy_from_slice(&a.0);
            bytes[32..].copy_from_slice(&second.0);
            64
        }
    };
    (cf_of(key), Prefix { bytes, len })
}

/// The [`StateKey`] of a prefix of versioned column family `cf`.
pub(super) fn state_key(cf: Cf, prefix: &[u8]) -> Result<StateKey, StorageError> {
    let corrupt = || StorageError::Corrupt {
        column: cf.name(),
        reason: format!("key prefix of {} bytes", prefix.len()),
    };
    if prefix.len() != cf.prefix_len() {
        return Err(corrupt());
    }
    let mut account = [0u8; 32];
    account.copy_from_slice(&prefix[..32]);
    let account = PublicKey(account);
    Ok(match cf {
        Cf::Nonce => StateKey::Nonce(account),
        Cf::Multisig => StateKey::Multisig(account),
        Cf::Energy => StateKey::Energy(account),
        Cf::Code => StateKey::Code(account),
        Cf::Balance | Cf::Slot => {
            let mut second = [0u8; 32];
            second.copy_from_slice(&prefix[32..]);
            if cf == Cf::Slot {
                StateKey::Slot(account, Hash(second))
            } else {
                StateKey::Balance(account, Hash(second))
            }
        }
        Cf::Meta | Cf::Info | Cf::Changes => return Err(corrupt()),
    })
}

/// `prefix ‖ !topoheight` (big-endian).
pub(super) fn versioned_key(prefix: &[u8], topoheight: TopoHeight) -> Vec<u8> {
    let mut key = Vec::with_capacity(prefix.len() + 8);
    key.extend_from_slice(prefix);
    key.extend_from_slice(&(!topoheight).to_be_bytes());
    key
}

/// [`versioned_key`] in a stack buffer (a prefix is at most 64 bytes): for
/// reads, which seek once per key and keep nothing.
pub(super) fn versioned_key_on_stack(prefix: &[u8], topoheight: TopoHeight) -> ([u8; 72], usize) {
    debug_assert!(prefix.len() <= 64, "prefixes are 32 or 64 bytes");
    let mut key = [0u8; 72];
    let n = prefix.len().min(64);
    key[..n].copy_from_slice(&prefix[..n]);
    key[n..n + 8].copy_from_slice(&(!topoheight).to_be_bytes());
    (key, n + 8)
}

/// Splits a versioned key of `cf` into its prefix and topoheight.
pub(super) fn split_versioned_key(cf: Cf, key: &[u8]) -> Result<(&[u8], TopoHeight), StorageError> {
    let n = cf.prefix_len();
    if key.len() != n + 8 {
        return Err(StorageError::Corrupt {
            column: cf.name(),
            reason: format!("key of {} bytes, expected {}", key.len(), n + 8),
        });
    }
    let (prefix, version) = key.split_at(n);
    let mut v = [0u8; 8];
    v.copy_from_slice(version);
    Ok((prefix, !u64::from_be_bytes(v)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versioned_keys_sort_newest_first() {
        let p = [5u8; 32];
        assert!(versioned_key(&p, 10) < versioned_key(&p, 9));
        assert!(versioned_key(&p, 0) < versioned_key(&[6u8; 32], TopoHeight::MAX));
        assert_eq!(
            split_versioned_key(Cf::Nonce, &versioned_key(&p, 42)).unwrap(),
            (&p[..], 42)
        );
        assert!(split_versioned_key(Cf::Nonce, &[0; 39]).is_err());
    }

    #[test]
    fn every_state_key_round_trips_through_its_prefix() {
        let a = PublicKey([1; 32]);
        for key in [
            StateKey::Nonce(a),
            StateKey::Balance(a, Hash([2; 32])),
            StateKey::Multisig(a),
            StateKey::Energy(a),
            StateKey::Code(a),
            StateKey::Slot(a, Hash([3; 32])),
        ] {
            let (cf, prefix) = locate(&key);
            assert_eq!(prefix.as_bytes().len(), cf.prefix_len());
            assert_eq!(Cf::from_id(cf.id()), Some(cf));
            assert_eq!(state_key(cf, prefix.as_bytes()).unwrap(), key);
        }
    }

    /// `key_order` (heads, then the whole key on a tie) gives the
    /// keys' own order, which is the database's: column family, then the
    /// prefix's bytes. Accounts share their first bytes often (ties) and
    /// differ anywhere after them.
    #[test]
    fn sort_heads_order_keys_as_the_database_does() {
        use proptest::prelude::*;
        let byte_choices = prop::sample::select(vec![0u8, 1, 7, 0x80, 0xff]);
        let bytes32 = prop::collection::vec(byte_choices, 32).prop_map(|v| {
            let mut b = [0u8; 32];
            b.copy_from_slice(&v);
            b
        });
        let key = (0u8..6, bytes32.clone(), bytes32).prop_map(|(kind, a, b)| {
            let a = PublicKey(a);
            match kind {
                0 => StateKey::Nonce(a),
                1 => StateKey::Balance(a, Hash(b)),
                2 => StateKey::Multisig(a),
                3 => StateKey::Energy(a),
                4 => StateKey::Code(a),
                _ => StateKey::Slot(a, Hash(b)),
            }
        });
        proptest!(|(keys in prop::collection::vec(key, 0..64))| {
            let by_heads: Vec<StateKey> =
                key_order(&keys, |k| k).into_iter().map(|i| keys[i]).collect();
            let mut by_bytes = keys.clone();
            by_bytes.sort_by_key(|k| {
                let (cf, prefix) = locate(k);
                (cf.id(), prefix.as_bytes().to_vec())
            });
            prop_assert_eq!(&by_heads, &by_bytes);
            let mut by_keys = keys;
            by_keys.sort_unstable();
            prop_assert_eq!(by_heads, by_keys);
        });
    }
}
