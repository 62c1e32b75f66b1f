//! Blocks built to break an optimistic executor, each modelled on a bug
//! another one shipped. Every block goes through `common::Chain::add`
//! (the sequential engine against the optimistic path at 2 and 4 threads,
//! guards off; the 2-thread copy admits first, so its invocations carry
//! hints from the tip), which must agree on every status and the whole
//! state; each test also checks the result it expects by hand, and that
//! the optimistic path really had to execute something again.
//!
//! The third bug the issue names (cosmos-sdk #26583: a "done" flag latched
//! while a validation was still running) has no counterpart to test here:
//! the optimistic path has no "done" flag; a chunk is complete when its
//! per-phase counter says every speculation was published, and validation
//! runs only on the calling thread after that (`src/engine/optimistic.rs`,
//! "Synchronisation", argued there and checked by its loom model).
//!
//! A declared transaction is a known writer: a call that reads what a
//! declared transaction before it writes stops at an estimate instead of
//! guessing (`src/engine/known.rs`); the tests whose block has one assert
//! that it happened.

mod common;

use common::*;
use ed25519_dalek::SigningKey;
use tos_parallel::chain::transaction::{contract_id, Transaction};
use tos_parallel::engine::EngineConfig;
use tos_parallel::pipeline::{check_block, locate_block, run_block, Run, SpecExecutor};
use tos_parallel::{Block, Hash, PublicKey, StateKey, StateRead, NATIVE_ASSET};
use tos_parallel_tools::asm::assemble;
use tos_parallel_tools::contracts::{probe, token_slot};

/// A contract of three calls on its own slots:
/// * `arg0 = 0`: `slot[arg2] := arg1`;
/// * `arg0 = 1`: `p := slot[0]; slot[p] := slot[p] + 1` (its second key
///   depends on what it read first);
/// * `arg0 = 2`: `slot[arg2] := slot[arg1]`.
const SLOTS_ASM: &str = "
        PUSH 0 ARG              ; [sel]
        DUP1 ISZERO             ; [sel, sel == 0]
        PUSH @set JUMPI         ; [sel]
        PUSH 1 EQ               ; [sel == 1]
        PUSH @incr JUMPI        ; []
        PUSH 1 ARG SLOAD        ; [slot[arg1]]
        PUSH 2 ARG SSTORE       ; []            slot[arg2] := slot[arg1]
        STOP
set:                            ; [sel]
        POP
        PUSH 1 ARG PUSH 2 ARG   ; [arg1, arg2]
        SSTORE                  ; []            slot[arg2] := arg1
        STOP
incr:                           ; []
        PUSH 0 SLOAD            ; [p]
        DUP1 SLOAD              ; [p, v]
        PUSH 1 ADD              ; [p, v + 1]
        SWAP1 SSTORE            ; []            slot[p] := v + 1
        STOP
";

/// Reads `BALANCE(arg0)` and `slot[0]` twice each; stores in slot 1 whether
/// both balance reads agreed, in slot 2 whether both slot reads agreed, in
/// slot 3 the balance.
const TWICE_ASM: &str = "
        PUSH 0 ARG BALANCE      ; [b1]
        PUSH 0 ARG BALANCE      ; [b1, b2]
        DUP2 EQ                 ; [b1, b1 == b2]
        PUSH 1 SSTORE           ; [b1]          slot 1 := (b1 == b2)
        PUSH 3 SSTORE           ; []            slot 3 := b1
        PUSH 0 SLOAD            ; [s1]
        PUSH 0 SLOAD            ; [s1, s2]
        EQ                      ; [s1 == s2]
        PUSH 2 SSTORE           ; []            slot 2 := (s1 == s2)
        STOP
";

const GAS: u64 = 2_000;

fn accounts() -> Vec<SigningKey> {
    (1..=8).map(key).collect()
}

/// A chain where every account of [`accounts`] holds 1,000 COIN.
fn chain() -> Chain {
    let keys = accounts();
    let funded: Vec<(PublicKey, &[(tos_parallel::Asset, u64)])> = keys
        .iter()
        .map(|k| (pk(k), &[(NATIVE_ASSET, 1_000 * COIN)][..]))
        .collect();
    Chain::new(&funded)
}

/// Deploys `code` from account 1 at `nonce`; returns its id.
fn deployed(c: &Chain, code: &[u8], nonce: u64) -> PublicKey {
    let owner = key(1);
    let tx = Tx::new(deploy(code)).nonce(nonce).sign(&owner);
    assert_eq!(c.run(&[tx]), ["ok"]);
    contract_id(&pk(&owner), nonce)
}

fn call(from: &SigningKey, nonce: u64, contract: PublicKey, args: &[Hash]) -> Transaction {
    Tx::new(invoke(contract, 0, GAS, args))
        .nonce(nonce)
        .sign(from)
}

fn w(n: u64) -> Hash {
    word(n)
}

fn slot(c: &Chain, contract: PublicKey, s: Hash) -> [u8; 32] {
    c.chain
        .storage()
        .get(&StateKey::Slot(contract, s), c.top())
        .unwrap()
        .map_or([0; 32], |v| match v {
            tos_parallel::StateValue::Word(w) => *w,
            other => panic!("slot holds {other:?}"),
        })
}

/// Adds a block of `txs` (after checking that the optimistic path, run
/// alone at 2 threads, executes at least one of them again) and returns
/// the statuses.
fn adversarial(c: &Chain, txs: &[Transaction]) -> Vec<&'static str> {
    adversarial_stats(c, txs).0
}

/// As [`adversarial`], with the stats of the optimistic path's run.
fn adversarial_stats(
    c: &Chain,
    txs: &[Transaction],
) -> (Vec<&'static str>, tos_parallel::BlockStats) {
    let block = Block::new(None, c.miner, txs.iter().map(|t| t.encode()).collect());
    let storage = c.chain.storage().clone();
    let pre = locate_block(&storage, &block).unwrap();
    let checked = check_block(&block, &pre, None, None).unwrap();
    // Every transaction speculated and validated, the calling thread's
    // share too: these blocks are small enough for the caller to execute
    // them alone, in order, before a helper arrives.
    let config = EngineConfig {
        speculate_all: true,
        ..EngineConfig::default()
    };
    let ex = SpecExecutor::new(2, config).unwrap().always_parallel();
    let got = run_block(&ex, &storage, &block, &pre, &checked, Run::Parallel).unwrap();
    assert_eq!(
        got.outcome.stats.path,
        tos_parallel::ExecutionPath::Optimistic
    );
    assert!(
        got.outcome.stats.reexecutions > 0,
        "the block did not make the optimistic path execute anything again: {:?}",
        got.outcome.stats
    );
    drop(storage);
    (
        codes(&c.add(&block).expect("block accepted")),
        got.outcome.stats,
    )
}

#[test]
fn every_call_reads_what_the_previous_one_wrote() {
    let c = chain();
    let counter = deployed(&c, &tos_parallel_tools::contracts::counter(), 0);
    let keys = accounts();
    // 8 senders, 6 calls each: 48 increments of one slot, all in one block.
    let txs: Vec<Transaction> = (0..6)
        .flat_map(|n| keys.iter().map(move |k| (k.clone(), n)))
        .map(|(k, n)| {
            let nonce = if pk(&k) == pk(&key(1)) { n + 1 } else { n };
            call(&k, nonce, counter, &[])
        })
        .collect();
    assert!(adversarial(&c, &txs).iter().all(|s| *s == "ok"));
    assert_eq!(slot(&c, counter, w(0)), w(48).0);
}

#[test]
fn a_read_set_that_changes_between_incarnations() {
    let c = chain();
    let slots = deployed(&c, &assemble(SLOTS_ASM).unwrap(), 0);
    let (a, b, d) = (key(2), key(3), key(4));
    // slot 0 points at slot 3 before the block.
    assert_eq!(c.run(&[call(&a, 0, slots, &[w(0), w(3), w(0)])]), ["ok"]);
    // In the block: an increment through the pointer (slot 3), the pointer
    // moved to slot 7, an increment through it (now slot 7): the last call's
    // speculation read slot 0 = 3 and incremented slot 3; executed again,
    // it reads slot 0 = 7 and touches slot 7 instead.
    let txs = [
        call(&b, 0, slots, &[w(1)]),
        call(&a, 1, slots, &[w(0), w(7), w(0)]),
        call(&d, 0, slots, &[w(1)]),
    ];
    assert_eq!(adversarial(&c, &txs), ["ok", "ok", "ok"]);
    assert_eq!(slot(&c, slots, w(0)), w(7).0);
    assert_eq!(slot(&c, slots, w(3)), w(1).0, "only the first increment");
    assert_eq!(slot(&c, slots, w(7)), w(1).0);
}

#[test]
fn a_declared_writer_between_two_optimistic_readers() {
    let c = chain();
    // Two copies of the probe: each stores BALANCE(arg0) in slot HASH(arg0, 0).
    let p1 = deployed(&c, &probe(), 0);
    let p2 = deployed(&c, &probe(), 1);
    let (alice, bob, carol, dave) = (key(2), key(3), key(4), key(5));
    let before = c.native(&pk(&alice));
    let target = tos_parallel_tools::contracts::account_word(&pk(&alice));
    let pay = Tx::new(transfer(NATIVE_ASSET, pk(&carol), 5 * COIN)).sign(&alice);
    let fee = pay.fee;
    let txs = [
        call(&bob, 0, p1, &[target]),
        pay,
        call(&dave, 0, p2, &[target]),
    ];
    let (statuses, stats) = adversarial_stats(&c, &txs);
    assert_eq!(statuses, ["ok", "ok", "ok"]);
    // The payment declares Alice's balance written: the second probe's
    // read of it is an estimate, not a guess.
    assert_eq!(stats.estimates, 1, "{stats:?}");
    let after = before - 5 * COIN - fee;
    assert_eq!(c.native(&pk(&alice)), after);
    let seen = |p| {
        u64::from_be_bytes(
            slot(&c, p, token_slot(&pk(&alice)))[24..]
                .try_into()
                .unwrap(),
        )
    };
    assert_eq!(seen(p1), before, "the first probe ran before the payment");
    assert_eq!(seen(p2), after, "the second one after it");
}

#[test]
fn one_key_read_twice_in_a_call_sees_one_value() {
    // bor #2270: a transaction read one key twice and saw two versions.
    let c = chain();
    let slots = deployed(&c, &assemble(SLOTS_ASM).unwrap(), 0);
    let twice = deployed(&c, &assemble(TWICE_ASM).unwrap(), 1);
    let (a, b, d) = (key(2), key(3), key(4));
    let target = tos_parallel_tools::contracts::account_word(&pk(&d));
    // Earlier in the block: a payment to the account the last call reads
    // twice, and a write of slot 0 of the slots contract (not of the one
    // the last call reads: its own slot 0 stays absent, read twice too).
    let txs = [
        Tx::new(transfer(NATIVE_ASSET, pk(&d), 3 * COIN)).sign(&a),
        call(&b, 0, slots, &[w(0), w(5), w(0)]),
        call(&d, 0, twice, &[target]),
    ];
    let (statuses, stats) = adversarial_stats(&c, &txs);
    assert_eq!(statuses, ["ok", "ok", "ok"]);
    assert_eq!(
        stats.estimates, 1,
        "the payment to d is a known writer: {stats:?}"
    );
    assert_eq!(slot(&c, twice, w(1)), w(1).0, "both balance reads agreed");
    assert_eq!(slot(&c, twice, w(2)), w(1).0, "both slot reads agreed");
    let paid = 1_000 * COIN + 3 * COIN;
    // The balance it saw: the payment's credit, before its own fee.
    assert_eq!(slot(&c, twice, w(3)), w(paid - fee_of(&c, &d)).0);
}

/// The fee account `d`'s call paid (its only transaction so far).
fn fee_of(c: &Chain, d: &SigningKey) -> u64 {
    1_000 * COIN + 3 * COIN - c.native(&pk(d))
}

#[test]
fn a_read_of_a_key_absent_at_the_block_start_is_validated() {
    // bor #2210: a read of a missing key was not recorded, so validation
    // could not see that an earlier transaction of the block created it.
    let c = chain();
    let slots = deployed(&c, &assemble(SLOTS_ASM).unwrap(), 0);
    let (a, b) = (key(2), key(3));
    // Slot 9 never existed; the first call creates it, the second copies it.
    let txs = [
        call(&a, 0, slots, &[w(0), w(42), w(9)]),
        call(&b, 0, slots, &[w(2), w(9), w(10)]),
    ];
    assert_eq!(adversarial(&c, &txs), ["ok", "ok"]);
    assert_eq!(slot(&c, slots, w(10)), w(42).0);
}
