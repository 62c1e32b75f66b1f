//! SPEC v2 contracts, rule by rule: deploy and invoke (§6), the VM (§8),
//! the execution codes that keep the nonce and the fee, `contract_not_found`,
//! the block gas limit (§5) and the dump's `contracts` (§7). Every block
//! goes through `common::Chain::add`: sequential, and the parallel
//! executors (2 and 4 threads, guards off, and the optimistic scheduler at
//! 3) on identical copies, which must agree on statuses, fees and dumps; a
//! block with an invocation must have run on their optimistic path (the
//! optimistic scheduler's copy: every block).
//!
//! Programs are written as bytes here (the assembler lives in the tools
//! crate); each carries its disassembly in a comment.

mod common;

use common::*;
use ed25519_dalek::SigningKey;
use tos_parallel::chain::transaction::{contract_id, Transaction};
use tos_parallel::{
    BlockError, Hash, PublicKey, StateKey, StateRead, StatelessError, NATIVE_ASSET,
};

fn alice() -> SigningKey {
    key(1)
}
fn bob() -> SigningKey {
    key(2)
}

/// alice: 100 COIN; bob: 10 COIN.
fn chain() -> Chain {
    Chain::new(&[
        (pk(&alice()), &[(NATIVE_ASSET, 100 * COIN)]),
        (pk(&bob()), &[(NATIVE_ASSET, 10 * COIN)]),
    ])
}

/// Deploys `code` from alice at nonce `nonce` in a block of its own;
/// returns the contract's id.
fn deployed(c: &Chain, code: &[u8], nonce: u64) -> PublicKey {
    let tx = Tx::new(deploy(code)).nonce(nonce).sign(&alice());
    assert_eq!(c.run(&[tx]), ["ok"]);
    contract_id(&pk(&alice()), nonce)
}

fn call(contract: PublicKey, deposit: u64, max_gas: u64, args: &[Hash]) -> Tx {
    Tx::new(invoke(contract, deposit, max_gas, args))
}

fn slot(c: &Chain, contract: PublicKey, s: u64) -> Option<[u8; 32]> {
    let snap = c.snap();
    snap.contracts
        .get(&contract)
        .and_then(|k| k.storage.get(&word(s)).copied())
}

fn w(n: u64) -> [u8; 32] {
    word(n).0
}

// PUSH1 0 ARG PUSH1 1 ARG SSTORE STOP: slot[arg1] = arg0.
const STORE: &[u8] = &[0x60, 0, 0x35, 0x60, 1, 0x35, 0x55, 0x00];

#[test]
fn deploy_stores_code_at_its_id_and_charges_the_fee() {
    let c = chain();
    let tx = Tx::new(deploy(STORE)).sign(&alice());
    let fee = tx.fee;
    let before = c.native(&pk(&alice()));
    assert_eq!(c.run(&[tx]), ["ok"]);
    let id = contract_id(&pk(&alice()), 0);
    let snap = c.snap();
    assert_eq!(snap.contracts[&id].code, STORE);
    assert!(snap.contracts[&id].storage.is_empty());
    // Deploying lists no account for the contract (no credit yet).
    assert!(!snap.accounts.contains_key(&id));
    assert_eq!(c.native(&pk(&alice())), before - fee);
    assert_eq!(c.nonce(&pk(&alice())), 1);
    // id = blake3("contract" ‖ source ‖ nonce).
    let mut h = blake3::Hasher::new();
    h.update(b"contract");
    h.update(&pk(&alice()).0);
    h.update(&0u64.to_be_bytes());
    assert_eq!(id.0, *h.finalize().as_bytes());
}

#[test]
fn invoke_runs_the_code_and_lists_the_contract_from_its_first_credit() {
    let c = chain();
    let id = deployed(&c, STORE, 0);
    let tx = call(id, 0, 1_000, &[word(42), word(7)])
        .nonce(1)
        .sign(&alice());
    assert_eq!(c.run(&[tx]), ["ok"]);
    assert_eq!(slot(&c, id, 7), Some(w(42)));
    // A deposit of 0 is a credit: the contract's account is listed at 0.
    assert_eq!(c.snap().accounts[&id].balances[&NATIVE_ASSET], 0);
    // Storing the zero word removes the slot from the dump.
    let tx = call(id, 0, 1_000, &[word(0), word(7)])
        .nonce(2)
        .sign(&alice());
    assert_eq!(c.run(&[tx]), ["ok"]);
    assert_eq!(slot(&c, id, 7), None);
}

#[test]
fn contract_not_found_orphans_and_comes_before_insufficient_funds() {
    let c = chain();
    let nowhere = PublicKey([9; 32]);
    let poor = key(77); // not in genesis: no balance at all
    let tx = call(nowhere, 0, 10, &[]).sign(&poor);
    assert_eq!(c.run(&[tx]), ["contract_not_found"]);
    let tx = call(nowhere, 0, 10, &[]).sign(&alice());
    let before = c.native(&pk(&alice()));
    let outcome = c.apply(&[tx]).expect("block");
    assert_eq!(codes(&outcome), ["contract_not_found"]);
    // Orphaned: no nonce, no fee.
    assert_eq!(outcome.fees, 0);
    assert_eq!(c.native(&pk(&alice())), before);
    assert_eq!(c.nonce(&pk(&alice())), 0);
}

#[test]
fn a_call_before_the_deploy_in_the_same_block_finds_nothing_and_one_after_finds_it() {
    let c = chain();
    let id = contract_id(&pk(&alice()), 0);
    let early = call(id, 0, 1_000, &[word(1), word(1)])
        .nonce(0)
        .sign(&bob());
    let deploy_tx = Tx::new(deploy(STORE)).nonce(0).sign(&alice());
    // bob's early call was orphaned: his nonce is still 0.
    let late = call(id, 0, 1_000, &[word(5), word(5)])
        .nonce(0)
        .sign(&bob());
    assert_eq!(
        c.run(&[early, deploy_tx, late]),
        ["contract_not_found", "ok", "ok"]
    );
    assert_eq!(slot(&c, id, 5), Some(w(5)));
    assert_eq!(slot(&c, id, 1), None);
}

// pay: TRANSFER(arg0 -> account, DEPOSIT / 2), then REVERT if arg1 != 0.
// DEPOSIT PUSH1 2 SWAP1 DIV PUSH1 0 ARG TRANSFER PUSH1 1 ARG PUSH1 16 JUMPI STOP JUMPDEST REVERT
const PAY: &[u8] = &[
    0x34, 0x60, 2, 0x90, 0x04, 0x60, 0, 0x35, 0xF1, 0x60, 1, 0x35, 0x60, 16, 0x57, 0x00, 0x5B, 0xFD,
];

#[test]
fn deposit_and_transfer_stay_on_success_and_are_undone_on_revert() {
    let c = chain();
    let id = deployed(&c, PAY, 0);
    let bob_pk = pk(&bob());
    let to = Hash(bob_pk.0);
    let alice0 = c.native(&pk(&alice()));
    let bob0 = c.native(&bob_pk);
    let ok = call(id, 1_000, 1_000, &[to, word(0)])
        .nonce(1)
        .sign(&alice());
    let ok_fee = ok.fee;
    assert_eq!(c.run(&[ok]), ["ok"]);
    assert_eq!(c.native(&id), 500);
    assert_eq!(c.native(&bob_pk), bob0 + 500);
    assert_eq!(c.native(&pk(&alice())), alice0 - ok_fee - 1_000);
    // Reverted: the deposit and the transfer are undone, nonce and fee kept.
    let bad = call(id, 1_000, 1_000, &[to, word(1)])
        .nonce(2)
        .sign(&alice());
    let bad_fee = bad.fee;
    let outcome = c.apply(&[bad]).expect("block");
    assert_eq!(codes(&outcome), ["contract_reverted"]);
    assert_eq!(
        outcome.fees, bad_fee,
        "a failed invocation's fee goes to the miner"
    );
    assert_eq!(c.native(&id), 500);
    assert_eq!(c.native(&bob_pk), bob0 + 500);
    assert_eq!(c.native(&pk(&alice())), alice0 - ok_fee - 1_000 - bad_fee);
    assert_eq!(c.nonce(&pk(&alice())), 3);
}

#[test]
fn a_credit_undone_lists_no_account_and_one_kept_lists_it_at_zero() {
    let c = chain();
    let id = deployed(&c, PAY, 0);
    let ghost = PublicKey([0x66; 32]);
    // Deposit 1: TRANSFER of 0 to the ghost, then REVERT: nothing listed.
    let undone = call(id, 1, 1_000, &[Hash(ghost.0), word(1)])
        .nonce(1)
        .sign(&alice());
    assert_eq!(c.run(&[undone]), ["contract_reverted"]);
    let snap = c.snap();
    assert!(!snap.accounts.contains_key(&ghost));
    assert!(
        !snap.accounts.contains_key(&id),
        "the deposit was undone too"
    );
    // Kept: the ghost is listed with a balance of 0.
    let kept = call(id, 1, 1_000, &[Hash(ghost.0), word(0)])
        .nonce(2)
        .sign(&alice());
    assert_eq!(c.run(&[kept]), ["ok"]);
    assert_eq!(c.snap().accounts[&ghost].balances[&NATIVE_ASSET], 0);
}

/// `n` instructions of gas 1 (JUMPDEST), then `tail`.
fn padded(n: usize, tail: &[u8]) -> Vec<u8> {
    let mut code = vec![0x5B; n];
    code.extend_from_slice(tail);
    code
}

#[test]
fn gas_boundary_at_the_last_instruction_and_one_unit_more() {
    let c = chain();
    // 10 JUMPDESTs then STOP: 11 gas exactly.
    let code = padded(10, &[0x00]);
    let id = deployed(&c, &code, 0);
    let exact = call(id, 0, 11, &[]).nonce(1).sign(&alice());
    let short = call(id, 0, 10, &[]).nonce(2).sign(&alice());
    assert_eq!(c.run(&[exact, short]), ["ok", "out_of_gas"]);
    // Running past the end costs nothing: 10 JUMPDESTs and no STOP need 10.
    let id2 = deployed(&c, &padded(10, &[]), 3);
    let past = call(id2, 0, 10, &[]).nonce(4).sign(&alice());
    assert_eq!(c.run(&[past]), ["ok"]);
    // The costly instructions, each at its cost and one unit short.
    // PUSH1 0 SLOAD (1 + 50), PUSH1 1 PUSH1 0 SSTORE (1 + 1 + 100),
    // PUSH1 0 PUSH1 0 HASH (1 + 1 + 10), CALLER BALANCE (1 + 50),
    // PUSH1 0 CALLER TRANSFER (1 + 1 + 100).
    let cases: [(&[u8], u64); 5] = [
        (&[0x60, 0, 0x54], 51),
        (&[0x60, 1, 0x60, 0, 0x55], 102),
        (&[0x60, 0, 0x60, 0, 0x20], 12),
        (&[0x33, 0x31], 51),
        (&[0x60, 0, 0x33, 0xF1], 102),
    ];
    let mut nonce = 5;
    for (code, gas) in cases {
        let id = deployed(&c, code, nonce);
        let at = call(id, 0, gas, &[]).nonce(nonce + 1).sign(&alice());
        let under = call(id, 0, gas - 1, &[]).nonce(nonce + 2).sign(&alice());
        assert_eq!(c.run(&[at, under]), ["ok", "out_of_gas"], "{code:02x?}");
        nonce += 3;
    }
}

#[test]
fn every_fault_is_contract_failed() {
    let c = chain();
    let faults: [&[u8]; 7] = [
        &[0x01],                                        // ADD on an empty stack
        &[0xFE],                                        // no instruction
        &[0x60, 4, 0x56, 0x00, 0x00],                   // jump to a byte that is not JUMPDEST
        &[0x60, 9, 0x56],                               // jump past the end
        &[0x60, 1, 0x33, 0xF1],                         // TRANSFER over the contract's balance
        &[0x68, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0x33, 0xF1], // TRANSFER over u64
        &[0x90],                                        // SWAP1 with too few words
    ];
    let mut nonce = 0;
    for code in faults {
        let id = deployed(&c, code, nonce);
        let tx = call(id, 0, 1_000, &[]).nonce(nonce + 1).sign(&alice());
        assert_eq!(c.run(&[tx]), ["contract_failed"], "{code:02x?}");
        nonce += 2;
    }
}

#[test]
fn a_jump_into_push_data_whose_byte_is_jumpdest_is_allowed() {
    let c = chain();
    // PUSH1 4 JUMP PUSH1 0x5B PUSH1 1 PUSH1 0 SSTORE STOP: lands on the 0x5B data byte.
    let code = [0x60, 4, 0x56, 0x60, 0x5B, 0x60, 1, 0x60, 0, 0x55, 0x00];
    let id = deployed(&c, &code, 0);
    let tx = call(id, 0, 1_000, &[]).nonce(1).sign(&alice());
    assert_eq!(c.run(&[tx]), ["ok"]);
    assert_eq!(slot(&c, id, 0), Some(w(1)));
}

#[test]
fn the_stack_holds_1024_words_and_not_one_more() {
    let c = chain();
    // 1,024 PUSH1s then STOP: ok; 1,025: contract_failed.
    let mut full: Vec<u8> = [0x60, 1].repeat(1_024);
    full.push(0x00);
    let mut over: Vec<u8> = [0x60, 1].repeat(1_025);
    over.push(0x00);
    let a = deployed(&c, &full, 0);
    let b = deployed(&c, &over, 1);
    let ta = call(a, 0, 10_000, &[]).nonce(2).sign(&alice());
    let tb = call(b, 0, 10_000, &[]).nonce(3).sign(&alice());
    assert_eq!(c.run(&[ta, tb]), ["ok", "contract_failed"]);
}

#[test]
fn environment_reads() {
    let c = chain();
    // SELF, CALLER, DEPOSIT, ARGC, HEIGHT, ARG 5 (absent: 0), SELF BALANCE,
    // each stored at slots 1..=7.
    let code = [
        0x30, 0x60, 1, 0x55, // SELF -> 1
        0x33, 0x60, 2, 0x55, // CALLER -> 2
        0x34, 0x60, 3, 0x55, // DEPOSIT -> 3
        0x36, 0x60, 4, 0x55, // ARGC -> 4
        0x43, 0x60, 5, 0x55, // HEIGHT -> 5
        0x60, 5, 0x35, 0x60, 6, 0x55, // ARG 5 -> 6 (argc 1: 0, not listed)
        0x30, 0x31, 0x60, 7, 0x55, // SELF BALANCE -> 7 (the deposit is seen)
        0x00,
    ];
    let id = deployed(&c, &code, 0);
    let tx = call(id, 77, 1_000, &[word(3)]).nonce(1).sign(&alice());
    assert_eq!(c.run(&[tx]), ["ok"]);
    assert_eq!(slot(&c, id, 1), Some(id.0));
    assert_eq!(slot(&c, id, 2), Some(pk(&alice()).0));
    assert_eq!(slot(&c, id, 3), Some(w(77)));
    assert_eq!(slot(&c, id, 4), Some(w(1)));
    assert_eq!(slot(&c, id, 5), Some(w(c.top())));
    assert_eq!(slot(&c, id, 6), None);
    assert_eq!(slot(&c, id, 7), Some(w(77)));
}

#[test]
fn reads_see_earlier_transactions_of_the_block_and_not_the_miners_fees() {
    let c = chain();
    // CALLER BALANCE PUSH1 0 SSTORE; PUSH1 0 ARG BALANCE PUSH1 1 SSTORE STOP
    let code = [
        0x33, 0x31, 0x60, 0, 0x55, 0x60, 0, 0x35, 0x31, 0x60, 1, 0x55, 0x00,
    ];
    let id = deployed(&c, &code, 0);
    let miner = c.miner;
    let top = c.top();
    let miner_before = c
        .chain
        .storage()
        .get_balance(&miner, &NATIVE_ASSET, top)
        .unwrap()
        .unwrap_or(0);
    let pay_bob = Tx::new(transfer(NATIVE_ASSET, pk(&bob()), 123))
        .nonce(1)
        .sign(&alice());
    let tx = call(id, 5, 1_000, &[Hash(miner.0)]).nonce(2).sign(&alice());
    let outcome = c.apply(&[pay_bob, tx]).expect("block");
    assert_eq!(codes(&outcome), ["ok", "ok"]);
    // The caller's balance after the fee and the deposit.
    let alice_now = c.native(&pk(&alice()));
    assert_eq!(slot(&c, id, 0), Some(w(alice_now)));
    // The miner: reward credited before the transactions, fees only after.
    assert_eq!(slot(&c, id, 1), Some(w(miner_before + outcome.reward)));
}

#[test]
fn block_gas_limit_at_the_exact_sum_and_one_unit_over() {
    let c = chain();
    let id = PublicKey([1; 32]);
    // Orphaned by contract_not_found, so every one keeps nonce 0.
    let big = |gas| call(id, 0, gas, &[]).sign(&alice());
    // Five invocations of MAX_GAS: exactly MAX_BLOCK_GAS.
    let at: Vec<Transaction> = (0..5).map(|_| big(10_000_000)).collect();
    let outcome = c.apply(&at);
    assert_eq!(
        codes(&outcome.expect("accepted")),
        ["contract_not_found"; 5]
    );
    // Plus one unit: rejected at the sixth, and nothing is written.
    let mut over: Vec<Transaction> = (0..5).map(|_| big(10_000_000)).collect();
    over.push(big(1));
    let top = c.top();
    match c.apply(&over) {
        Err(BlockError::InvalidTransaction { index, error, .. }) => {
            assert_eq!(index, 5);
            assert!(matches!(error, StatelessError::BlockGasExceeded { .. }));
            assert_eq!(error.code(), "block_gas_exceeded");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.top(), top);
}

#[test]
fn stateless_rules_of_contract_payloads() {
    let t = 10;
    let code = |tx: &Transaction| stateless_code(tx, t);
    assert_eq!(
        code(&Tx::new(deploy(&[])).sign(&alice())),
        "invalid_payload"
    );
    assert_eq!(code(&Tx::new(deploy(&[0; 4_096])).sign(&alice())), "ok");
    assert_eq!(
        code(&Tx::new(deploy(&[0; 4_097])).sign(&alice())),
        "invalid_payload"
    );
    let id = PublicKey([1; 32]);
    assert_eq!(code(&call(id, 0, 0, &[]).sign(&alice())), "invalid_payload");
    assert_eq!(code(&call(id, 0, 10_000_000, &[]).sign(&alice())), "ok");
    assert_eq!(
        code(&call(id, 0, 10_000_001, &[]).sign(&alice())),
        "invalid_payload"
    );
    assert_eq!(code(&call(id, 0, 1, &[word(0); 16]).sign(&alice())), "ok");
    assert_eq!(
        code(&call(id, 0, 1, &[word(0); 17]).sign(&alice())),
        "invalid_payload"
    );
    // The fee covers max_gas × 10: one unit less is fee_too_low.
    let tx = call(id, 0, 1_000, &[]).sign(&alice());
    let low = call(id, 0, 1_000, &[]).fee(tx.fee - 1).sign(&alice());
    assert_eq!(code(&low), "fee_too_low");
    // Energy fees are for transfers only.
    assert_eq!(
        code(&call(id, 0, 1, &[]).energy().sign(&alice())),
        "invalid_fee_type"
    );
    // Deposit + fee over u64.
    assert_eq!(
        code(&call(id, u64::MAX, 1, &[]).fee(1).sign(&alice())),
        "amount_overflow"
    );
}

#[test]
fn contract_state_keys_are_versioned_and_rewound() {
    let c = chain();
    let id = deployed(&c, STORE, 0);
    let at = c.top();
    let tx = call(id, 0, 1_000, &[word(9), word(1)])
        .nonce(1)
        .sign(&alice());
    assert_eq!(c.run(&[tx]), ["ok"]);
    let key = StateKey::Slot(id, word(1));
    let storage = c.chain.storage();
    assert!(storage.get(&key, at).unwrap().is_none());
    assert!(storage.get(&key, at + 1).unwrap().is_some());
    drop(storage);
    for chain in std::iter::once(&c.chain).chain(&c.parallel) {
        chain.rewind_to(at).unwrap();
    }
    assert_eq!(slot(&c, id, 1), None);
    assert!(c.snap().contracts.contains_key(&id));
}
