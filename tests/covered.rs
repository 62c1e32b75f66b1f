//! Covered sender chains (payouts, airdrops): run in any order, yet every
//! status and the state equal sequential execution. Senders that are *not*
//! provably covered (a nonce gap, spending over the balance, a multisig
//! config, an energy transaction) keep the ordered path.

mod oracle;

use oracle::*;
use tos_parallel::chain::constants::COIN;
use tos_parallel::chain::transaction::{EnergyPayload, Payload};
use tos_parallel::{Block, PublicKey, StateWrite, NATIVE_ASSET};

fn tx(world: &World, from: usize, nonce: u64, payload: Payload) -> Vec<u8> {
    signed_tx(world, from, nonce, payload)
}

#[test]
fn payout_chains_run_out_of_order_and_equal_sequential() {
    let world = World::new(60, 9);
    let mut storage = world.storage(1);
    // Give account 3 a multisig config first (its chain must not be covered).
    let setup = Block::new(
        Some(1),
        PublicKey([1; 32]),
        vec![tx(
            &world,
            3,
            0,
            Payload::MultiSig {
                threshold: 1,
                participants: vec![world.pubs[4]],
            },
        )],
    );
    let r = run_sequential(&storage, &setup);
    storage.commit(&r.changes, &r.meta).unwrap();

    let mut txs = Vec::new();
    // 0: a covered payout chain of 120 transfers (+ a burn), interleaved with
    //    credits to account 0 from others (not counted for coverage).
    for k in 0..120u64 {
        txs.push(tx(
            &world,
            0,
            k,
            pay(&world, 10 + (k as usize % 40), 1_000 + k),
        ));
        if k % 10 == 0 {
            txs.push(tx(
                &world,
                50 + (k as usize / 10) % 10,
                0,
                pay(&world, 0, 7),
            ));
        }
    }
    txs.push(tx(
        &world,
        0,
        120,
        Payload::Burn {
            asset: NATIVE_ASSET,
            amount: 5,
        },
    ));
    // (Every chain below has at least four transactions: the engine does
    // not try to prove smaller groups, `plan::MIN_PROOF_GROUP`.)
    // 1: a nonce gap (0, 1, 2, 4): not covered; the last fails.
    for n in [0, 1, 2, 4] {
        txs.push(tx(&world, 1, n, pay(&world, 20, 1)));
    }
    // 2: spends more than its balance in total: not covered; later ones fail.
    // (30, 10, 10, 1 coins of 50: in block order the third fails; in another
    // order another one would.)
    for (n, coins) in [(0, 30), (1, 10), (2, 10), (3, 1)] {
        txs.push(tx(&world, 2, n, pay(&world, 21, coins * COIN)));
    }
    // 3: multisig config (no proof given): not covered; all fail.
    for n in 1..5 {
        txs.push(tx(&world, 3, n, pay(&world, 22, 1)));
    }
    // 5: a freeze in the chain: not covered.
    txs.push(tx(&world, 5, 0, pay(&world, 23, 1)));
    txs.push(tx(&world, 5, 1, pay(&world, 23, 1)));
    txs.push(tx(
        &world,
        5,
        2,
        Payload::Energy(EnergyPayload::FreezeTos {
            amount: COIN,
            days: 3,
        }),
    ));
    txs.push(tx(&world, 5, 3, pay(&world, 23, 1)));
    // 6: a covered four-transaction chain spending all but the fees' margin.
    for n in 0..4 {
        txs.push(tx(&world, 6, n, pay(&world, 24, 12 * COIN)));
    }

    let block = Block::new(Some(2), PublicKey([2; 32]), txs);
    let seq = assert_equivalent(&storage, &block, &executors(&[1, 2, 3, 4, 8]));
    let codes: Vec<&str> = seq
        .outcome
        .results
        .iter()
        .map(|r| r.status.code())
        .collect();
    assert!(codes.contains(&"nonce_mismatch"));
    assert!(codes.contains(&"insufficient_funds"));
    assert!(codes.contains(&"multisig_invalid"));

    // The parallel engine with its guards off (the plan always runs).
    let par = run_parallel(&executors(&[2])[GRAPH_UNGUARDED], &storage, &block);
    assert!(par.outcome.stats.parallel_engine);
    // Exactly the chains of accounts 0 (121 txs) and 6 (4 txs) are covered.
    assert_eq!(par.outcome.stats.covered, 125);
    // The payout chain no longer forms a dependency chain.
    assert!(
        par.outcome.stats.critical_path < 20,
        "{}",
        par.outcome.stats.critical_path
    );
}

#[test]
fn hot_sender_workload_is_covered() {
    let (chain, mut storage) = generated(
        tos_parallel_tools::generator::Workload::HotSender,
        200,
        300,
        2,
        4,
    );
    let executors = executors(&[2, 4]);
    for block in &chain.blocks {
        let seq = assert_equivalent(&storage, block, &executors);
        let par = run_parallel(&executors[GRAPH_UNGUARDED], &storage, block);
        assert!(par.outcome.stats.parallel_engine);
        assert_eq!(par.outcome.stats.covered, 300);
        assert_eq!(par.outcome.stats.critical_path, 1);
        storage.commit(&seq.changes, &seq.meta).unwrap();
    }
}
