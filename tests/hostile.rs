//! Hostile input: the largest and strangest blocks the rules allow, and
//! broken data dirs. Every execution is checked against the sequential oracle.

mod oracle;

use std::path::Path;

use oracle::*;
use tos_parallel::chain::constants::{COIN, MAX_TX_SIZE};
use tos_parallel::chain::dump::state_json_string;
use tos_parallel::chain::transaction::{Payload, TransferOutput};
use tos_parallel::{
    Block, BlockError, Blockchain, ExecutionConfig, ExecutionMode, PublicKey, StateScan,
    StateWrite, NATIVE_ASSET,
};

fn signed(world: &World, from: usize, nonce: u64, payload: Payload) -> Vec<u8> {
    signed_tx(world, from, nonce, payload)
}

fn fresh_key(i: u64) -> PublicKey {
    PublicKey(*blake3::hash(&i.to_be_bytes()).as_bytes())
}

fn outputs(n: usize, extra: usize, dest: impl Fn(usize) -> PublicKey) -> Payload {
    Payload::Transfers(
        (0..n)
            .map(|k| TransferOutput {
                asset: NATIVE_ASSET,
                destination: dest(k),
                amount: 1,
                extra_data: (extra > 0).then(|| vec![0xEE; extra]),
            })
            .collect(),
    )
}

#[test]
fn max_outputs_max_extra_data_and_thousands_of_new_accounts() {
    let world = World::new(30, 1);
    let storage = world.storage(1);
    let mut txs = Vec::new();
    // 20 transactions of 255 outputs to fresh accounts: 5,100 new accounts.
    for i in 0..20 {
        txs.push(signed(
            &world,
            i,
            0,
            outputs(255, 0, |k| fresh_key((i * 1000 + k) as u64)),
        ));
    }
    // Maximum extra data: 32 outputs x 128 bytes = 4,096 bytes.
    txs.push(signed(
        &world,
        20,
        0,
        outputs(32, 128, |k| world.pubs[(k % 9) + 21]),
    ));
    let block = Block::new(Some(1), PublicKey([1; 32]), txs);
    let seq = assert_equivalent(&storage, &block, &executors(&[1, 2, 8]));
    assert_eq!(seq.outcome.ok_count(), 21);
    let mut s = storage.clone();
    s.commit(&seq.changes, &seq.meta).unwrap();
    assert_eq!(s.snapshot(1).unwrap().accounts.len(), 30 + 5_100 + 1);
}

#[test]
fn extra_data_limits_and_oversized_transactions_reject_the_block() {
    let world = World::new(4, 2);
    let chain = Blockchain::new(world.storage(1), ExecutionConfig::default()).unwrap();
    let before = state_json_string(&chain.snapshot(None).unwrap());
    let cases: Vec<(Vec<u8>, &str)> = vec![
        // 4,097 bytes of extra data in total.
        (
            signed(&world, 0, 0, {
                let Payload::Transfers(mut o) = outputs(33, 128, |_| world.pubs[1]) else {
                    unreachable!()
                };
                o[32].extra_data = Some(vec![1]);
                Payload::Transfers(o)
            }),
            "invalid_payload",
        ),
        // An output with 129 bytes.
        (
            signed(&world, 0, 0, outputs(1, 129, |_| world.pubs[1])),
            "invalid_payload",
        ),
        // Over 1 MiB: decodes, then tx_too_large comes before invalid_payload.
        (
            signed(&world, 0, 0, outputs(17, 65_535, |_| world.pubs[1])),
            "tx_too_large",
        ),
    ];
    for (tx, code) in cases {
        if code == "tx_too_large" {
            assert!(tx.len() > MAX_TX_SIZE);
        }
        let ok_tx = signed(&world, 1, 0, outputs(1, 0, |_| world.pubs[2]));
        let block = Block::new(Some(1), PublicKey([1; 32]), vec![ok_tx, tx]);
        for mode in [ExecutionMode::Sequential, ExecutionMode::Parallel] {
            let chain_m = Blockchain::new(
                world.storage(1),
                ExecutionConfig {
                    mode,
                    min_txs_for_parallel: 1,
                    threads: 2,
                    ..ExecutionConfig::default()
                },
            )
            .unwrap();
            match chain_m.add_new_block(&block) {
                Err(BlockError::InvalidTransaction { index, error, .. }) => {
                    assert_eq!((index, error.code()), (1, code));
                }
                other => panic!("expected rejection {code}, got {other:?}"),
            }
            assert_eq!(chain_m.top_topoheight().unwrap(), Some(0));
        }
        assert!(chain.add_new_block(&block).is_err());
    }
    assert_eq!(state_json_string(&chain.snapshot(None).unwrap()), before);
}

#[test]
fn duplicate_transactions_in_a_block() {
    let world = World::new(6, 3);
    let storage = world.storage(1);
    let tx = signed(&world, 0, 0, outputs(1, 0, |_| world.pubs[1]));
    let block = Block::new(
        Some(1),
        PublicKey([1; 32]),
        vec![tx.clone(), tx.clone(), tx],
    );
    let seq = assert_equivalent(&storage, &block, &executors(&[1, 2, 4, 8]));
    let codes: Vec<&str> = seq
        .outcome
        .results
        .iter()
        .map(|r| r.status.code())
        .collect();
    assert_eq!(codes, ["ok", "nonce_mismatch", "nonce_mismatch"]);
}

#[test]
fn a_100_000_transaction_block() {
    // 2,000 senders x 50 transactions each, to 1,000 receivers, plus conflicts.
    let world = World::new(3_000, 4);
    let storage = world.storage(1);
    let mut txs = Vec::with_capacity(100_000);
    for round in 0..50u64 {
        for i in 0..2_000usize {
            let to = 2_000 + (i * 7 + round as usize) % 1_000;
            txs.push(signed(&world, i, round, outputs(1, 0, |_| world.pubs[to])));
        }
    }
    let block = Block::new(Some(1), PublicKey([1; 32]), txs);
    let seq = assert_equivalent(&storage, &block, &executors(&[2, 8]));
    assert_eq!(seq.outcome.ok_count(), 100_000);
    assert!(seq.outcome.fees > 100_000 * COIN / 10_000);
}

fn file_digests(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.display().to_string(),
                std::fs::read(&p).unwrap_or_default(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn corrupt_data_dirs_give_errors_and_stay_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(4, 5);
    let data = dir.path().join("data");
    {
        let mut s = tos_parallel::RocksStorage::create(&data, Default::default()).unwrap();
        tos_parallel::init_genesis(&mut s, &world.genesis(1)).unwrap();
    }
    // CURRENT points at a manifest that does not exist.
    std::fs::write(data.join("CURRENT"), "MANIFEST-999999\n").unwrap();
    let before = file_digests(&data);
    let err = tos_parallel::RocksStorage::open(&data, Default::default()).unwrap_err();
    assert!(!err.to_string().is_empty());
    // (The CLI on the same data dir: `tools/tests/cli.rs`.)
    assert_eq!(
        file_digests(&data),
        before,
        "a failed open modified the data dir"
    );
}
