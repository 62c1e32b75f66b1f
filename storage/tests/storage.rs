//! Behaviour tests run on both storages: every `check_*` function takes a
//! storage factory and is run on `MemoryStorage` and on `RocksStorage` in a
//! temporary directory.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use proptest::prelude::*;
use tos_storage::{
    AccountSnapshot, Asset, BlockMeta, ChainParams, ChangeSet, EnergyState, FreezeRecord, Hash,
    MemoryStorage, Memtable, MultisigConfig, PublicKey, RocksConfig, RocksStorage, StateKey,
    StateRead, StateScan, StateSnapshot, StateValue, StateWrite, Storage, StorageError, TopoHeight,
    NATIVE_ASSET,
};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn key(n: u8) -> PublicKey {
    PublicKey([n; 32])
}

fn asset(n: u8) -> Asset {
    Hash([n; 32])
}

fn meta(t: TopoHeight) -> BlockMeta {
    BlockMeta {
        hash: Hash([t as u8; 32]),
        emitted_supply: 1000 + t,
        burned_supply: t,
    }
}

fn params() -> ChainParams {
    ChainParams {
        blocks_per_day: 86_400,
        genesis_hash: Hash([0xab; 32]),
    }
}

fn cs(t: TopoHeight) -> ChangeSet {
    ChangeSet::new(t)
}

fn multisig(threshold: u8, n: u8) -> MultisigConfig {
    MultisigConfig {
        threshold,
        participants: (0..n).map(|i| key(100 + i)).collect(),
    }
}

fn energy(available: u64) -> EnergyState {
    EnergyState {
        available,
        frozen: available * 2,
        records: vec![FreezeRecord {
            amount: available * 2,
            energy: available,
            unlock_topoheight: 100 + available,
        }],
    }
}

/// Commits `changes` with the standard meta (genesis: `init` with the params).
fn commit<S: Storage>(s: &mut S, changes: ChangeSet) {
    if changes.topoheight == 0 {
        s.init(&changes, &meta(0), &params()).unwrap();
    } else {
        s.commit(&changes, &meta(changes.topoheight)).unwrap();
    }
}

/// Commits empty blocks until the top is `t`.
fn commit_empty_until<S: Storage>(s: &mut S, t: TopoHeight) {
    let start = s.top_topoheight().unwrap().map_or(0, |top| top + 1);
    for topo in start..=t {
        commit(s, cs(topo));
    }
}

fn rocks_in(dir: &Path) -> RocksStorage {
    RocksStorage::create(&dir.join("db"), RocksConfig::default()).unwrap()
}

/// Runs `check_*` on a fresh `MemoryStorage` and on fresh `RocksStorage`s
/// (default caches, caches disabled, tiny caches with synced writes).
macro_rules! on_both {
    ($check:ident) => {{
        $check(MemoryStorage::new());
        for config in [
            RocksConfig::default(),
            RocksConfig {
                cache_capacity: 0,
                sync_writes: false,
                ..RocksConfig::default()
            },
            RocksConfig {
                cache_capacity: 2,
                sync_writes: true,
                ..RocksConfig::default()
            },
            RocksConfig {
                memtable: Memtable::SkipList,
                ..RocksConfig::default()
            },
        ] {
            let dir = tempfile::tempdir().unwrap();
            $check(RocksStorage::create(&dir.path().join("db"), config).unwrap());
        }
    }};
}

// ---------------------------------------------------------------------------
// Versioned reads
// ---------------------------------------------------------------------------

fn check_versioned_reads<S: Storage>(mut s: S) {
    let a = key(1);
    let b = key(2);
    assert_eq!(s.top_topoheight().unwrap(), None);
    assert_eq!(s.chain_params().unwrap(), None);
    assert_eq!(s.get_nonce(&a, 0).unwrap(), None);

    let mut c = cs(0);
    c.set_nonce(a, 10);
    c.set_balance(a, NATIVE_ASSET, 100);
    commit(&mut s, c);
    let mut c = cs(1);
    c.set_nonce(a, 11);
    c.set_nonce(b, 1);
    c.set_balance(a, NATIVE_ASSET, 90);
    commit(&mut s, c);
    commit(&mut s, cs(2));
    let mut c = cs(3);
    c.set_nonce(a, 13);
    commit(&mut s, c);

    assert_eq!(s.top_topoheight().unwrap(), Some(3));
    assert_eq!(s.chain_params().unwrap(), Some(params()));
    for t in 0..=3 {
        assert_eq!(s.block_meta(t).unwrap(), Some(meta(t)));
    }
    assert_eq!(s.block_meta(4).unwrap(), None);

    let expected_a = [10, 11, 11, 13, 13];
    for (t, want) in expected_a.iter().enumerate() {
        assert_eq!(s.get_nonce(&a, t as u64).unwrap(), Some(*want), "a at {t}");
    }
    // Reading newest first then oldest (cache entries above the read topoheight).
    for t in (0..=4).rev() {
        assert_eq!(s.get_nonce(&a, t).unwrap(), Some(expected_a[t as usize]));
    }
    assert_eq!(s.get_nonce(&b, 0).unwrap(), None);
    for t in 1..=4 {
        assert_eq!(s.get_nonce(&b, t).unwrap(), Some(1));
    }
    assert_eq!(s.get_nonce(&a, u64::MAX).unwrap(), Some(13));
    assert_eq!(s.get_nonce(&key(9), 3).unwrap(), None);
    assert_eq!(s.get_balance(&a, &NATIVE_ASSET, 0).unwrap(), Some(100));
    assert_eq!(s.get_balance(&a, &NATIVE_ASSET, 3).unwrap(), Some(90));
    assert_eq!(s.get_balance(&b, &NATIVE_ASSET, 3).unwrap(), None);
}

#[test]
fn versioned_reads() {
    on_both!(check_versioned_reads);
}

fn check_balances_per_asset<S: Storage>(mut s: S) {
    let a = key(1);
    let b = key(2);
    let mut c = cs(0);
    c.set_balance(a, NATIVE_ASSET, 5);
    c.set_balance(a, asset(7), 70);
    c.set_balance(b, asset(7), 700);
    commit(&mut s, c);
    let mut c = cs(1);
    c.set_balance(a, asset(7), 71);
    commit(&mut s, c);
    let mut c = cs(2);
    c.set_balance(a, NATIVE_ASSET, 0);
    c.set_balance(a, asset(8), 80);
    commit(&mut s, c);

    let bal = |acct, asset: Asset, t| s.get_balance(&acct, &asset, t).unwrap();
    assert_eq!(bal(a, NATIVE_ASSET, 0), Some(5));
    assert_eq!(bal(a, NATIVE_ASSET, 1), Some(5));
    assert_eq!(bal(a, NATIVE_ASSET, 2), Some(0));
    assert_eq!(bal(a, asset(7), 0), Some(70));
    assert_eq!(bal(a, asset(7), 2), Some(71));
    assert_eq!(bal(a, asset(8), 1), None);
    assert_eq!(bal(a, asset(8), 2), Some(80));
    assert_eq!(bal(b, asset(7), 2), Some(700));
    assert_eq!(bal(b, NATIVE_ASSET, 2), None);
    assert_eq!(bal(b, asset(8), 2), None);
}

#[test]
fn balances_per_asset_are_independent() {
    on_both!(check_balances_per_asset);
}

fn check_multisig_and_energy<S: Storage>(mut s: S) {
    let a = key(1);
    let mut c = cs(0);
    c.set_multisig(a, Some(multisig(1, 2)));
    c.set_energy(a, energy(5));
    commit(&mut s, c);
    let mut c = cs(1);
    c.set_multisig(a, None);
    commit(&mut s, c);
    let mut c = cs(2);
    c.set_multisig(a, Some(multisig(3, 255)));
    c.set_energy(a, EnergyState::default());
    commit(&mut s, c);
    let mut c = cs(3);
    c.set_energy(a, energy(9));
    commit(&mut s, c);

    assert_eq!(s.get_multisig(&a, 0).unwrap(), Some(multisig(1, 2)));
    assert_eq!(s.get_multisig(&a, 1).unwrap(), None);
    assert_eq!(s.get_multisig(&a, 2).unwrap(), Some(multisig(3, 255)));
    assert_eq!(s.get_multisig(&a, 3).unwrap(), Some(multisig(3, 255)));
    assert_eq!(s.get_multisig(&a, 1).unwrap(), None);
    assert_eq!(s.get_multisig(&key(2), 3).unwrap(), None);

    assert_eq!(s.get_energy(&a, 0).unwrap(), Some(energy(5)));
    assert_eq!(s.get_energy(&a, 1).unwrap(), Some(energy(5)));
    assert_eq!(s.get_energy(&a, 2).unwrap(), Some(EnergyState::default()));
    assert_eq!(s.get_energy(&a, 3).unwrap(), Some(energy(9)));
    assert_eq!(s.get_energy(&key(2), 3).unwrap(), None);

    let snap = s.snapshot(1).unwrap();
    assert_eq!(snap.accounts[&a].multisig, None);
    assert_eq!(snap.accounts[&a].energy, energy(5));
    let snap = s.snapshot(2).unwrap();
    assert_eq!(snap.accounts[&a].multisig, Some(multisig(3, 255)));
}

#[test]
fn multisig_tombstones_and_energy() {
    on_both!(check_multisig_and_energy);
}

// ---------------------------------------------------------------------------
// Commit validation
// ---------------------------------------------------------------------------

fn check_commit_validation<S: Storage>(mut s: S) {
    let a = key(1);
    let mut c = cs(0);
    c.set_nonce(a, 1);
    // A block commit before genesis.
    assert!(matches!(
        s.commit(&c, &meta(0)),
        Err(StorageError::Genesis(_))
    ));
    // A genesis not at topoheight 0.
    let mut c1 = cs(1);
    c1.set_nonce(a, 2);
    assert!(matches!(
        s.init(&c1, &meta(1), &params()),
        Err(StorageError::NotNextTopoheight {
            expected: None,
            got: 1
        })
    ));
    assert_eq!(s.top_topoheight().unwrap(), None);
    assert_eq!(s.chain_params().unwrap(), None);
    assert_eq!(s.get_nonce(&a, 5).unwrap(), None);
    assert_eq!(s.block_meta(0).unwrap(), None);

    commit(&mut s, c.clone());
    let before = s.snapshot(0).unwrap();

    // A second genesis.
    assert!(matches!(
        s.init(&c, &meta(0), &params()),
        Err(StorageError::Genesis(_))
    ));
    // Wrong topoheights.
    for t in [0, 2, 5] {
        let mut c = c1.clone();
        c.topoheight = t;
        assert!(matches!(
            s.commit(&c, &meta(t)),
            Err(StorageError::NotNextTopoheight { expected: Some(1), got }) if got == t
        ));
    }
    // Too many multisig participants: rejected as a whole.
    let mut bad = c1.clone();
    bad.set_balance(a, NATIVE_ASSET, 9);
    bad.set_multisig(
        key(2),
        Some(MultisigConfig {
            threshold: 1,
            participants: vec![key(3); 256],
        }),
    );
    assert!(matches!(
        s.commit(&bad, &meta(1)),
        Err(StorageError::InvalidValue { .. })
    ));

    assert_eq!(s.top_topoheight().unwrap(), Some(0));
    assert_eq!(s.block_meta(1).unwrap(), None);
    assert_eq!(s.get_nonce(&a, 1).unwrap(), Some(1));
    assert_eq!(s.get_balance(&a, &NATIVE_ASSET, 1).unwrap(), None);
    assert_eq!(s.get_multisig(&key(2), 1).unwrap(), None);
    assert_eq!(s.snapshot(0).unwrap(), before);
    assert!(matches!(
        s.snapshot(1),
        Err(StorageError::MissingTopoheight {
            topoheight: 1,
            top: Some(0)
        })
    ));

    s.commit(&c1, &meta(1)).unwrap();
    assert_eq!(s.get_nonce(&a, 1).unwrap(), Some(2));
}

#[test]
fn commit_validation_is_all_or_nothing() {
    on_both!(check_commit_validation);
}

// ---------------------------------------------------------------------------
// Rewind
// ---------------------------------------------------------------------------

fn check_rewind<S: Storage>(mut s: S) {
    let a = key(1);
    let b = key(2);
    assert!(matches!(
        s.rewind_to(0),
        Err(StorageError::RewindAboveTop {
            target: 0,
            top: None
        })
    ));
    for t in 0..=5u64 {
        let mut c = cs(t);
        c.set_nonce(a, t * 10);
        c.set_balance(a, asset(1), t);
        if t >= 3 {
            c.set_nonce(b, t);
            c.set_multisig(b, Some(multisig(1, t as u8)));
            c.set_energy(b, energy(t));
        }
        if t == 4 {
            c.set_multisig(a, Some(multisig(1, 1)));
        }
        commit(&mut s, c);
    }
    // Warm any cache at the top.
    assert_eq!(s.get_nonce(&a, 5).unwrap(), Some(50));
    assert_eq!(s.get_nonce(&b, 5).unwrap(), Some(5));
    let snap2 = s.snapshot(2).unwrap();
    let snap4 = s.snapshot(4).unwrap();

    assert!(matches!(
        s.rewind_to(6),
        Err(StorageError::RewindAboveTop {
            target: 6,
            top: Some(5)
        })
    ));
    s.rewind_to(5).unwrap(); // no-op
    assert_eq!(s.top_topoheight().unwrap(), Some(5));

    s.rewind_to(4).unwrap();
    assert_eq!(s.top_topoheight().unwrap(), Some(4));
    assert_eq!(s.block_meta(5).unwrap(), None);
    assert_eq!(s.block_meta(4).unwrap(), Some(meta(4)));
    assert_eq!(s.get_nonce(&a, 5).unwrap(), Some(40));
    assert_eq!(s.get_nonce(&a, 100).unwrap(), Some(40));
    assert_eq!(s.snapshot(4).unwrap(), snap4);

    s.rewind_to(2).unwrap();
    assert_eq!(s.top_topoheight().unwrap(), Some(2));
    for t in 3..=6 {
        assert_eq!(s.block_meta(t).unwrap(), None);
        assert_eq!(s.get_nonce(&a, t).unwrap(), Some(20));
        assert_eq!(s.get_balance(&a, &asset(1), t).unwrap(), Some(2));
        assert_eq!(s.get_nonce(&b, t).unwrap(), None);
        assert_eq!(s.get_multisig(&a, t).unwrap(), None);
        assert_eq!(s.get_multisig(&b, t).unwrap(), None);
        assert_eq!(s.get_energy(&b, t).unwrap(), None);
    }
    assert_eq!(s.get_nonce(&a, 1).unwrap(), Some(10));
    assert_eq!(s.snapshot(2).unwrap(), snap2);
    assert!(!s.snapshot(2).unwrap().accounts.contains_key(&b));
    assert!(matches!(
        s.snapshot(3),
        Err(StorageError::MissingTopoheight { .. })
    ));
    assert_eq!(s.chain_params().unwrap(), Some(params()));

    // Commit again after the rewind.
    assert!(matches!(
        s.commit(&cs(5), &meta(5)),
        Err(StorageError::NotNextTopoheight {
            expected: Some(3),
            got: 5
        })
    ));
    let mut c = cs(3);
    c.set_nonce(a, 333);
    commit(&mut s, c);
    assert_eq!(s.get_nonce(&a, 3).unwrap(), Some(333));
    assert_eq!(s.get_nonce(&a, 2).unwrap(), Some(20));
    assert_eq!(s.get_nonce(&b, 3).unwrap(), None);
    assert_eq!(s.block_meta(3).unwrap(), Some(meta(3)));

    s.rewind_to(0).unwrap();
    assert_eq!(s.get_nonce(&a, 9).unwrap(), Some(0));
    assert_eq!(s.top_topoheight().unwrap(), Some(0));
    assert_eq!(s.snapshot(0).unwrap().accounts.len(), 1);
}

#[test]
fn rewind() {
    on_both!(check_rewind);
}

// ---------------------------------------------------------------------------
// Snapshots
// ---------------------------------------------------------------------------

fn check_snapshots<S: Storage>(mut s: S) {
    let a = key(1);
    let b = key(2);
    let c_ = key(3);
    let mut c = cs(0);
    c.set_balance(a, NATIVE_ASSET, 100);
    commit(&mut s, c);
    let mut c = cs(1);
    c.set_nonce(a, 1);
    c.set_balance(a, NATIVE_ASSET, 0);
    c.set_balance(b, NATIVE_ASSET, 100);
    commit(&mut s, c);
    let mut c = cs(2);
    c.set_multisig(c_, None);
    c.set_energy(b, energy(3));
    c.set_balance(b, asset(5), 0);
    commit(&mut s, c);

    let s0 = s.snapshot(0).unwrap();
    assert_eq!(s0.topoheight, 0);
    assert_eq!(s0.meta, meta(0));
    let mut want = BTreeMap::new();
    want.insert(
        a,
        AccountSnapshot {
            nonce: 0,
            balances: [(NATIVE_ASSET, 100)].into_iter().collect(),
            multisig: None,
            energy: EnergyState::default(),
        },
    );
    assert_eq!(s0.accounts, want);

    let s1 = s.snapshot(1).unwrap();
    want.insert(
        a,
        AccountSnapshot {
            nonce: 1,
            balances: [(NATIVE_ASSET, 0)].into_iter().collect(),
            ..AccountSnapshot::default()
        },
    );
    want.insert(
        b,
        AccountSnapshot {
            balances: [(NATIVE_ASSET, 100)].into_iter().collect(),
            ..AccountSnapshot::default()
        },
    );
    assert_eq!(s1.accounts, want);
    assert_eq!(s1.meta, meta(1));

    let s2 = s.snapshot(2).unwrap();
    want.insert(
        b,
        AccountSnapshot {
            balances: [(NATIVE_ASSET, 100), (asset(5), 0)].into_iter().collect(),
            energy: energy(3),
            ..AccountSnapshot::default()
        },
    );
    // An account whose only write is a multisig deletion still exists.
    want.insert(c_, AccountSnapshot::default());
    assert_eq!(s2.accounts, want);
    assert!(matches!(
        s.snapshot(3),
        Err(StorageError::MissingTopoheight {
            topoheight: 3,
            top: Some(2)
        })
    ));
}

#[test]
fn snapshots() {
    on_both!(check_snapshots);
    assert!(matches!(
        MemoryStorage::new().snapshot(0),
        Err(StorageError::MissingTopoheight {
            topoheight: 0,
            top: None
        })
    ));
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        rocks_in(dir.path()).snapshot(0),
        Err(StorageError::MissingTopoheight {
            topoheight: 0,
            top: None
        })
    ));
}

// ---------------------------------------------------------------------------
// Clones and caches
// ---------------------------------------------------------------------------

fn check_clones<S: Storage + Clone>(mut a_store: S) {
    let a = key(1);
    let x = asset(4);
    let mut b_store = a_store.clone();

    let mut c = cs(0);
    c.set_nonce(a, 1);
    c.set_balance(a, x, 10);
    c.set_multisig(a, Some(multisig(1, 1)));
    c.set_energy(a, energy(1));
    commit(&mut a_store, c);

    // B sees A's genesis, and fills its caches.
    assert_eq!(b_store.top_topoheight().unwrap(), Some(0));
    assert_eq!(b_store.get_nonce(&a, 0).unwrap(), Some(1));
    assert_eq!(b_store.get_balance(&a, &x, 0).unwrap(), Some(10));
    assert_eq!(b_store.get_multisig(&a, 0).unwrap(), Some(multisig(1, 1)));
    assert_eq!(b_store.get_energy(&a, 0).unwrap(), Some(energy(1)));
    assert_eq!(b_store.get_nonce(&key(2), 0).unwrap(), None); // cached as absent
                                                              // A fills its caches too.
    assert_eq!(a_store.get_nonce(&a, 0).unwrap(), Some(1));
    assert_eq!(a_store.get_nonce(&key(2), 0).unwrap(), None);

    // Commit via A; B reads the new values at the new top.
    let mut c = cs(1);
    c.set_nonce(a, 2);
    c.set_nonce(key(2), 7);
    c.set_balance(a, x, 20);
    c.set_multisig(a, None);
    c.set_energy(a, energy(2));
    commit(&mut a_store, c);
    for st in [&a_store, &b_store] {
        assert_eq!(st.top_topoheight().unwrap(), Some(1));
        assert_eq!(st.get_nonce(&a, 1).unwrap(), Some(2));
        assert_eq!(st.get_nonce(&key(2), 1).unwrap(), Some(7));
        assert_eq!(st.get_nonce(&key(2), 0).unwrap(), None);
        assert_eq!(st.get_balance(&a, &x, 1).unwrap(), Some(20));
        assert_eq!(st.get_multisig(&a, 1).unwrap(), None);
        assert_eq!(st.get_energy(&a, 1).unwrap(), Some(energy(2)));
        assert_eq!(st.get_nonce(&a, 0).unwrap(), Some(1));
        assert_eq!(st.get_multisig(&a, 0).unwrap(), Some(multisig(1, 1)));
    }

    // Commit via B (vice versa); A's write-through caches must not hide it.
    let mut c = cs(2);
    c.set_nonce(a, 3);
    commit(&mut b_store, c);
    assert_eq!(a_store.get_nonce(&a, 2).unwrap(), Some(3));
    assert_eq!(a_store.get_balance(&a, &x, 2).unwrap(), Some(20));

    // A commits on top of B's commit, then reads (write-through path).
    let mut c = cs(3);
    c.set_nonce(a, 4);
    c.set_balance(a, x, 40);
    commit(&mut a_store, c);
    assert_eq!(a_store.get_nonce(&a, 3).unwrap(), Some(4));
    assert_eq!(a_store.get_nonce(&a, 2).unwrap(), Some(3));
    assert_eq!(b_store.get_nonce(&a, 3).unwrap(), Some(4));
    let mut c = cs(4);
    c.set_nonce(a, 5);
    commit(&mut a_store, c);
    assert_eq!(a_store.get_nonce(&a, 4).unwrap(), Some(5));
    assert_eq!(a_store.get_nonce(&a, 3).unwrap(), Some(4));
    assert_eq!(a_store.get_balance(&a, &x, 4).unwrap(), Some(40));
    assert_eq!(b_store.get_nonce(&a, 4).unwrap(), Some(5));

    // Rewind via A; B (with warm caches) sees the old values.
    a_store.rewind_to(1).unwrap();
    for st in [&a_store, &b_store] {
        assert_eq!(st.top_topoheight().unwrap(), Some(1));
        assert_eq!(st.get_nonce(&a, 4).unwrap(), Some(2));
        assert_eq!(st.get_balance(&a, &x, 4).unwrap(), Some(20));
    }
    // Rewind via B below what A cached; then A commits a different branch.
    b_store.rewind_to(0).unwrap();
    assert_eq!(a_store.get_nonce(&key(2), 5).unwrap(), None);
    assert_eq!(a_store.get_multisig(&a, 5).unwrap(), Some(multisig(1, 1)));
    let mut c = cs(1);
    c.set_nonce(a, 100);
    commit(&mut a_store, c);
    for st in [&a_store, &b_store] {
        assert_eq!(st.get_nonce(&a, 1).unwrap(), Some(100));
        assert_eq!(st.get_nonce(&key(2), 1).unwrap(), None);
        assert_eq!(st.get_multisig(&a, 1).unwrap(), Some(multisig(1, 1)));
        assert_eq!(st.get_energy(&a, 1).unwrap(), Some(energy(1)));
    }

    // A clone made now, and a clone dropped, change nothing.
    let c_store = b_store.clone();
    drop(b_store);
    assert_eq!(c_store.get_nonce(&a, 1).unwrap(), Some(100));
    assert_eq!(c_store.snapshot(1).unwrap(), a_store.snapshot(1).unwrap());
}

#[test]
fn clones_share_data_and_caches_never_go_stale() {
    on_both!(check_clones);
}

/// Readers on several clones race a writer; a read at a top the reader has
/// already observed must return that block's value, never an older cached one.
fn check_concurrent_readers<S: Storage + Clone + 'static>(mut writer: S) {
    let a = key(1);
    commit(&mut writer, {
        let mut c = cs(0);
        c.set_nonce(a, 0);
        c
    });
    let blocks = 200u64;
    std::thread::scope(|scope| {
        for _ in 0..3 {
            let reader = writer.clone();
            scope.spawn(move || loop {
                let top = reader.top_topoheight().unwrap().unwrap();
                // The nonce written at topoheight t is t; a stale cache entry
                // would answer an older one.
                let n = reader.get_nonce(&a, top).unwrap().unwrap();
                assert_eq!(n, top, "stale read at top {top}");
                if top == blocks {
                    break;
                }
            });
        }
        for t in 1..=blocks {
            let mut c = cs(t);
            c.set_nonce(a, t);
            commit(&mut writer, c);
            // Let the readers fill their caches between commits.
            std::thread::sleep(std::time::Duration::from_micros(100));
        }
    });
}

#[test]
fn concurrent_readers_never_see_stale_values() {
    check_concurrent_readers(MemoryStorage::new());
    let dir = tempfile::tempdir().unwrap();
    check_concurrent_readers(rocks_in(dir.path()));
}

// ---------------------------------------------------------------------------
// RocksDB specifics
// ---------------------------------------------------------------------------

fn populate<S: Storage>(s: &mut S) {
    for t in 0..=4u64 {
        let mut c = cs(t);
        c.set_nonce(key(1), t);
        c.set_balance(key(1), asset(t as u8 % 2), t * 3);
        c.set_multisig(key(2), (t % 2 == 0).then(|| multisig(1, t as u8 + 1)));
        c.set_energy(key(3), energy(t));
        commit(s, c);
    }
}

#[test]
fn rocks_reopen_reads_everything_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut mem = MemoryStorage::new();
    populate(&mut mem);
    {
        let mut s = RocksStorage::create(&path, RocksConfig::default()).unwrap();
        assert_eq!(s.path(), path);
        populate(&mut s);
        s.rewind_to(3).unwrap();
        let clone = s.clone();
        drop(s);
        drop(clone);
    }
    mem.rewind_to(3).unwrap();
    // Written with the hash memtable, read back with RocksDB's skiplist
    // (`RocksConfig::memtable`: a choice of speed only), then the other
    // way round below.
    let skiplist = RocksConfig {
        memtable: Memtable::SkipList,
        ..RocksConfig::default()
    };
    let s = RocksStorage::open(&path, skiplist.clone()).unwrap();
    assert_eq!(s.top_topoheight().unwrap(), Some(3));
    assert_eq!(s.chain_params().unwrap(), Some(params()));
    for t in 0..=3 {
        assert_eq!(s.snapshot(t).unwrap(), mem.snapshot(t).unwrap());
        assert_eq!(s.block_meta(t).unwrap(), Some(meta(t)));
        assert_eq!(s.get_nonce(&key(1), t).unwrap(), Some(t));
        assert_eq!(
            s.get_multisig(&key(2), t).unwrap(),
            mem.get_multisig(&key(2), t).unwrap()
        );
        assert_eq!(s.get_energy(&key(3), t).unwrap(), Some(energy(t)));
    }
    // `create` on an existing database opens it.
    drop(s);
    let mut s = RocksStorage::create(&path, skiplist).unwrap();
    assert_eq!(s.top_topoheight().unwrap(), Some(3));
    commit_empty_until(&mut s, 5);
    assert_eq!(s.get_nonce(&key(1), 5).unwrap(), Some(3));
    drop(s);
    let s = RocksStorage::open(&path, RocksConfig::default()).unwrap();
    assert_eq!(s.top_topoheight().unwrap(), Some(5));
    for t in 0..=3 {
        assert_eq!(s.snapshot(t).unwrap(), mem.snapshot(t).unwrap());
    }
    assert_eq!(s.get_nonce(&key(1), 5).unwrap(), Some(3));
    // An initialised but never committed database opens as empty.
    let empty = dir.path().join("nested/empty");
    drop(RocksStorage::create(&empty, RocksConfig::default()).unwrap());
    let e = RocksStorage::open(&empty, RocksConfig::default()).unwrap();
    assert_eq!(e.top_topoheight().unwrap(), None);
}

/// Every file under `dir` with its contents.
fn dir_contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        if path.is_dir() {
            for (k, v) in dir_contents(&path) {
                out.insert(format!("{}/{k}", entry.file_name().to_string_lossy()), v);
            }
        } else {
            out.insert(
                entry.file_name().to_string_lossy().into_owned(),
                std::fs::read(&path).unwrap(),
            );
        }
    }
    out
}

#[test]
fn rocks_open_refuses_what_is_not_a_database() {
    let dir = tempfile::tempdir().unwrap();

    // Missing directory: error, and nothing is created.
    let missing = dir.path().join("missing");
    let err = RocksStorage::open(&missing, RocksConfig::default()).unwrap_err();
    assert!(matches!(err, StorageError::NotFound { .. }), "{err}");
    assert!(!missing.exists());

    // A file, not a directory.
    let file = dir.path().join("file");
    std::fs::write(&file, b"hello").unwrap();
    let err = RocksStorage::open(&file, RocksConfig::default()).unwrap_err();
    assert!(matches!(err, StorageError::NotFound { .. }), "{err}");

    // A directory of random files, without and then with a `CURRENT` file.
    let junk = dir.path().join("junk");
    std::fs::create_dir(&junk).unwrap();
    std::fs::write(junk.join("notes.txt"), b"not a database").unwrap();
    std::fs::write(junk.join("000001.log"), [0xde, 0xad, 0xbe, 0xef]).unwrap();
    std::fs::create_dir(junk.join("sub")).unwrap();
    std::fs::write(junk.join("sub/x"), b"x").unwrap();
    let before = dir_contents(&junk);
    let err = RocksStorage::open(&junk, RocksConfig::default()).unwrap_err();
    assert!(matches!(err, StorageError::NotFound { .. }), "{err}");
    assert_eq!(dir_contents(&junk), before);

    std::fs::write(junk.join("CURRENT"), b"garbage").unwrap();
    let before = dir_contents(&junk);
    let err = RocksStorage::open(&junk, RocksConfig::default()).unwrap_err();
    assert!(matches!(err, StorageError::NotFound { .. }), "{err}");
    assert_eq!(dir_contents(&junk), before);
    std::fs::write(junk.join("CURRENT"), b"MANIFEST-000001\n").unwrap();
    let before = dir_contents(&junk);
    let err = RocksStorage::open(&junk, RocksConfig::default()).unwrap_err();
    assert!(matches!(err, StorageError::NotFound { .. }), "{err}");
    assert_eq!(dir_contents(&junk), before);

    // Another RocksDB database (only the default column family): `open`
    // refuses it; a database with a foreign column family is refused by `create` too.
    let other = dir.path().join("other");
    {
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        let db = rocksdb::DB::open_cf(&opts, &other, ["theirs"]).unwrap();
        db.put(b"k", b"v").unwrap();
    }
    let err = RocksStorage::open(&other, RocksConfig::default()).unwrap_err();
    assert!(matches!(err, StorageError::NotFound { .. }), "{err}");
    let err = RocksStorage::create(&other, RocksConfig::default()).unwrap_err();
    assert!(matches!(err, StorageError::NotFound { .. }), "{err}");
}

#[test]
fn rocks_corrupt_database_is_an_error() {
    let dir = tempfile::tempdir().unwrap();

    // A corrupt value: reads fail with `Corrupt`, no panic.
    let path = dir.path().join("values");
    {
        let mut s = RocksStorage::create(&path, RocksConfig::default()).unwrap();
        populate(&mut s);
    }
    {
        let cfs = rocksdb::DB::list_cf(&rocksdb::Options::default(), &path).unwrap();
        let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), &path, cfs).unwrap();
        let mut k = key(1).0.to_vec();
        k.extend_from_slice(&(!2u64).to_be_bytes());
        db.put_cf(db.cf_handle("nonce").unwrap(), k, [1, 2, 3])
            .unwrap();
        db.put_cf(db.cf_handle("energy").unwrap(), [7u8; 3], [0u8; 20])
            .unwrap();
    }
    let s = RocksStorage::open(&path, RocksConfig::default()).unwrap();
    assert_eq!(s.get_nonce(&key(1), 4).unwrap(), Some(4));
    assert!(matches!(
        s.get_nonce(&key(1), 2),
        Err(StorageError::Corrupt {
            column: "nonce",
            ..
        })
    ));
    assert_eq!(s.get_nonce(&key(1), 1).unwrap(), Some(1));
    assert!(matches!(s.snapshot(2), Err(StorageError::Corrupt { .. })));
    assert!(matches!(s.snapshot(4), Err(StorageError::Corrupt { .. })));
    drop(s);

    // A corrupt manifest: `open` fails cleanly.
    let path = dir.path().join("manifest");
    {
        let mut s = RocksStorage::create(&path, RocksConfig::default()).unwrap();
        populate(&mut s);
    }
    for entry in std::fs::read_dir(&path).unwrap() {
        let p = entry.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("MANIFEST")
        {
            std::fs::write(&p, b"\x01\x02\x03").unwrap();
        }
    }
    let result = std::panic::catch_unwind(|| {
        RocksStorage::open(&path, RocksConfig::default()).and_then(|s| s.snapshot(4))
    });
    assert!(matches!(result, Ok(Err(_))), "{result:?}");
}

// ---------------------------------------------------------------------------
// Model test: MemoryStorage and RocksStorage side by side
// ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Op {
    Commit(ChangeSet),
    Rewind(TopoHeight),
}

fn arb_changes() -> impl Strategy<Value = ChangeSet> {
    let acct = (0u8..5).prop_map(key);
    let ast = (0u8..3).prop_map(asset);
    (
        prop::collection::btree_map(acct.clone(), 0u64..4, 0..3),
        prop::collection::btree_map((acct.clone(), ast), 0u64..4, 0..4),
        prop::collection::btree_map(
            acct.clone(),
            prop::option::of((1u8..3, 0u8..4).prop_map(|(t, n)| multisig(t, n))),
            0..2,
        ),
        prop::collection::btree_map(acct, (0u64..3).prop_map(energy), 0..2),
    )
        .prop_map(|(nonces, balances, multisigs, energies)| {
            let mut c = ChangeSet::new(0);
            for (k, v) in nonces {
                c.set_nonce(k, v);
            }
            for ((k, a), v) in balances {
                c.set_balance(k, a, v);
            }
            for (k, v) in multisigs {
                c.set_multisig(k, v);
            }
            for (k, v) in energies {
                c.set_energy(k, v);
            }
            c
        })
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => arb_changes().prop_map(Op::Commit),
        1 => (0u64..12).prop_map(Op::Rewind),
    ]
}

fn assert_same(
    mem: &MemoryStorage,
    rocks: &[&RocksStorage],
    probes: &[(u8, u8, TopoHeight)],
) -> Result<(), TestCaseError> {
    let top = mem.top_topoheight().unwrap();
    for r in rocks {
        prop_assert_eq!(r.top_topoheight().unwrap(), top);
        prop_assert_eq!(r.chain_params().unwrap(), mem.chain_params().unwrap());
    }
    let Some(top) = top else { return Ok(()) };
    for t in 0..=top {
        let want: StateSnapshot = mem.snapshot(t).unwrap();
        for r in rocks {
            prop_assert_eq!(r.snapshot(t).unwrap(), want.clone());
            prop_assert_eq!(r.block_meta(t).unwrap(), mem.block_meta(t).unwrap());
        }
    }
    // Batched reads answer what the single reads answer, on warm clones and
    // on a fresh one (cold caches), at every probed topoheight.
    let ts: BTreeSet<TopoHeight> = probes.iter().map(|p| p.2).collect();
    for t in ts {
        let keys: Vec<StateKey> = probes
            .iter()
            .flat_map(|p| {
                [
                    StateKey::Nonce(key(p.0)),
                    StateKey::Multisig(key(p.0)),
                    StateKey::Energy(key(p.0)),
                    StateKey::Balance(key(p.0), asset(p.1)),
                ]
            })
            .collect();
        let refs: Vec<&StateKey> = keys.iter().collect();
        let want: Vec<Option<StateValue>> = keys.iter().map(|k| mem.get(k, t).unwrap()).collect();
        let batch = |s: &dyn Fn(&mut Vec<Option<StateValue>>)| {
            let mut out = Vec::new();
            s(&mut out);
            out
        };
        prop_assert_eq!(
            batch(&|out| mem.get_batch(&refs, t, out).unwrap()),
            want.clone()
        );
        for r in rocks {
            prop_assert_eq!(
                batch(&|out| r.get_batch(&refs, t, out).unwrap()),
                want.clone()
            );
            let fresh = (*r).clone();
            prop_assert_eq!(
                batch(&|out| fresh.get_batch(&refs, t, out).unwrap()),
                want.clone()
            );
        }
    }
    for &(k, a, t) in probes {
        let (k, a) = (key(k), asset(a));
        for r in rocks {
            prop_assert_eq!(r.get_nonce(&k, t).unwrap(), mem.get_nonce(&k, t).unwrap());
            prop_assert_eq!(
                r.get_balance(&k, &a, t).unwrap(),
                mem.get_balance(&k, &a, t).unwrap()
            );
            prop_assert_eq!(
                r.get_multisig(&k, t).unwrap(),
                mem.get_multisig(&k, t).unwrap()
            );
            prop_assert_eq!(r.get_energy(&k, t).unwrap(), mem.get_energy(&k, t).unwrap());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn memory_and_rocks_agree(
        ops in prop::collection::vec(arb_op(), 1..16),
        probes in prop::collection::vec((0u8..6, 0u8..3, 0u64..14), 1..24),
        tiny_cache in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let config = RocksConfig {
            cache_capacity: if tiny_cache { 3 } else { 1024 },
            sync_writes: false,
            memtable: if tiny_cache { Memtable::SkipList } else { Memtable::HashPerKey },
        };
        let mut mem = MemoryStorage::new();
        let mut rocks = RocksStorage::create(&dir.path().join("db"), config).unwrap();
        // A second clone that only reads, to exercise its caches across writes.
        let reader = rocks.clone();
        for op in ops {
            match op {
                Op::Commit(mut changes) => {
                    changes.topoheight = mem.top_topoheight().unwrap().map_or(0, |t| t + 1);
                    commit(&mut mem, changes.clone());
                    commit(&mut rocks, changes);
                }
                Op::Rewind(t) => {
                    let m = mem.rewind_to(t);
                    let r = rocks.rewind_to(t);
                    prop_assert_eq!(m.is_ok(), r.is_ok());
                }
            }
            assert_same(&mem, &[&rocks, &reader], &probes)?;
        }
        drop(rocks);
        drop(reader);
        let reopened = RocksStorage::open(&dir.path().join("db"), RocksConfig::default()).unwrap();
        assert_same(&mem, &[&reopened], &probes)?;
    }
}
