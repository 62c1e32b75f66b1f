//! One test per rule of SPEC.md: the stateless checks of §5 (each code, each
//! `invalid_payload` sub-rule, boundaries, the check order, block rejection),
//! the stateful rules and success effects of §6 run through
//! `Blockchain<MemoryStorage>` (sequential, and the parallel engine with its
//! guards off at 2 and 4 threads on the graph and at 3 threads on the
//! optimistic road, on identical copies: `common::Chain::add` asserts
//! identical outcomes, statuses, rejections and dumps), the block
//! rules of §3/§4, genesis validation and the observable results of §7.

mod common;

use common::*;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde_json::{json, Value};
use tos_parallel::chain::dump::{results_line, state_json};
use tos_parallel::chain::transaction::{
    MultiSigProof, MultiSigSignature, Payload, Transaction, TransferOutput,
};
use tos_parallel::{
    init_genesis, Block, BlockError, DecodeError, EnergyState, FreezeRecord, Genesis, Hash,
    InitError, InputError, MemoryStorage, MultisigConfig, PublicKey, StateRead, StateScan,
    StatelessError, TxFailure, TxStatus, NATIVE_ASSET,
};

/// Parent topoheight for the direct stateless checks.
const T: u64 = 10;

fn alice() -> SigningKey {
    key(1)
}
fn bob() -> SigningKey {
    key(2)
}
fn carol() -> SigningKey {
    key(3)
}
/// Never in any genesis.
fn erin() -> SigningKey {
    key(5)
}
/// Multisig participants.
fn part(i: u8) -> SigningKey {
    key(10 + i)
}
fn dest(i: usize) -> PublicKey {
    pk(&key(100 + i as u8))
}

fn code(tx: &Transaction) -> &'static str {
    stateless_code(tx, T)
}

fn orphaned(f: TxFailure) -> TxStatus {
    TxStatus::Orphaned(f)
}

/// alice: 100 COIN + 1_000 B; bob: 10 COIN; carol: 1_000_000 units + 100 B.
fn std_chain() -> Chain {
    Chain::new(&[
        (
            pk(&alice()),
            &[(NATIVE_ASSET, 100 * COIN), (ASSET_B, 1_000)],
        ),
        (pk(&bob()), &[(NATIVE_ASSET, 10 * COIN)]),
        (pk(&carol()), &[(NATIVE_ASSET, 1_000_000), (ASSET_B, 100)]),
    ])
}

/// The reward of SPEC §4.2, restated.
fn reward(emitted: u64) -> u64 {
    (MAXIMUM_SUPPLY - emitted) >> 20
}

// =====================================================================
// SPEC §5: stateless checks
// =====================================================================

#[test]
fn s5_malformed() {
    let tx = Tx::new(burn(NATIVE_ASSET, 1)).sign(&alice());
    let mut b = tx.encode();
    b[0] = 1;
    assert_eq!(
        stateless_bytes(&b, T).unwrap_err(),
        StatelessError::Malformed(DecodeError::UnsupportedVersion(1))
    );
    assert_eq!(
        stateless_bytes(&[0u8; 10], T).unwrap_err().code(),
        "malformed"
    );
    assert_eq!(code(&tx), "ok");
}

/// Outputs that make a Transfers transaction of exactly `size` bytes, each
/// with `Some` extra data of at most `cap` bytes.
fn sized_outputs(size: usize, cap: usize) -> Vec<TransferOutput> {
    // 155 bytes outside the payload, tag + count, then 75 + len per output.
    let remaining = size - 157;
    let n = remaining.div_ceil(75 + cap);
    assert!(
        (1..=255).contains(&n) && remaining >= 75 * n,
        "size {size} not reachable"
    );
    let mut extra = remaining - 75 * n;
    (0..n)
        .map(|i| {
            let len = extra.min(cap);
            extra -= len;
            TransferOutput {
                extra_data: Some(vec![0x5a; len]),
                ..out(NATIVE_ASSET, dest(i % 5), 1)
            }
        })
        .collect()
}

fn sized_tx(size: usize, cap: usize) -> Transaction {
    let tx = Tx::new(Payload::Transfers(sized_outputs(size, cap))).sign(&alice());
    assert_eq!(tx.encode().len(), size);
    tx
}

#[test]
fn s5_tx_too_large_boundary() {
    const MAX_TX_SIZE: usize = 1_048_576;
    // Exactly the maximum is not too large: the next check (extra data over 128) fails.
    let at_max = sized_tx(MAX_TX_SIZE, 65_535);
    assert_eq!(code(&at_max), "invalid_payload");
    // One byte more still decodes and is too large.
    let over = sized_tx(MAX_TX_SIZE + 1, 65_535);
    assert!(Transaction::decode(&over.encode()).is_ok());
    assert_eq!(
        stateless(&over, T).unwrap_err(),
        StatelessError::TxTooLarge {
            size: MAX_TX_SIZE + 1
        }
    );
    // Much larger (200 outputs of 65_535 bytes, ~13 MB) too.
    let huge = Tx::new(Payload::Transfers(
        (0..200)
            .map(|i| TransferOutput {
                extra_data: Some(vec![1; 65_535]),
                ..out(NATIVE_ASSET, dest(i % 5), 1)
            })
            .collect(),
    ))
    .sign(&alice());
    assert_eq!(code(&huge), "tx_too_large");
}

#[test]
fn s5_invalid_payload_destination_equals_source() {
    let me = pk(&alice());
    let single = Tx::new(transfer(NATIVE_ASSET, me, 1)).sign(&alice());
    assert_eq!(code(&single), "invalid_payload");
    let second = Tx::new(Payload::Transfers(vec![
        out(NATIVE_ASSET, dest(0), 1),
        out(ASSET_B, me, 1),
    ]))
    .sign(&alice());
    assert_eq!(code(&second), "invalid_payload");
    let fine = Tx::new(Payload::Transfers(vec![
        out(NATIVE_ASSET, dest(0), 1),
        out(ASSET_B, dest(0), 1),
    ]))
    .sign(&alice());
    assert_eq!(code(&fine), "ok");
}

fn with_extra(len: usize, to: PublicKey) -> TransferOutput {
    TransferOutput {
        extra_data: Some(vec![7; len]),
        ..out(NATIVE_ASSET, to, 1)
    }
}

#[test]
fn s5_invalid_payload_extra_data_over_128_bytes() {
    let ok = Tx::new(Payload::Transfers(vec![with_extra(128, dest(0))])).sign(&alice());
    assert_eq!(code(&ok), "ok");
    let bad = Tx::new(Payload::Transfers(vec![with_extra(129, dest(0))])).sign(&alice());
    assert_eq!(code(&bad), "invalid_payload");
    let bad_second = Tx::new(Payload::Transfers(vec![
        with_extra(1, dest(0)),
        with_extra(129, dest(1)),
    ]))
    .sign(&alice());
    assert_eq!(code(&bad_second), "invalid_payload");
}

#[test]
fn s5_invalid_payload_extra_data_over_4096_in_total() {
    let mut outs: Vec<TransferOutput> = (0..32).map(|i| with_extra(128, dest(i % 7))).collect();
    let ok = Tx::new(Payload::Transfers(outs.clone())).sign(&alice());
    assert_eq!(code(&ok), "ok", "4_096 bytes in total is allowed");
    outs.push(with_extra(1, dest(0)));
    let bad = Tx::new(Payload::Transfers(outs)).sign(&alice());
    assert_eq!(code(&bad), "invalid_payload", "4_097 bytes in total");
}

#[test]
fn s5_invalid_payload_multisig_count_0() {
    let bad = Tx::new(multisig_set(1, &[])).sign(&alice());
    assert_eq!(&bad.encode()[33..36], &[2, 1, 0]);
    assert_eq!(code(&bad), "invalid_payload");
    // A delete (threshold 0) has no participants and is fine.
    assert_eq!(code(&Tx::new(multisig_delete()).sign(&alice())), "ok");
}

#[test]
fn s5_invalid_payload_multisig_repeated_participant() {
    let bad = Tx::new(multisig_set(1, &[dest(0), dest(1), dest(0)])).sign(&alice());
    assert_eq!(code(&bad), "invalid_payload");
    let ok = Tx::new(multisig_set(1, &[dest(0), dest(1), dest(2)])).sign(&alice());
    assert_eq!(code(&ok), "ok");
}

#[test]
fn s5_invalid_payload_multisig_source_among_participants() {
    let bad = Tx::new(multisig_set(1, &[dest(0), pk(&alice())])).sign(&alice());
    assert_eq!(code(&bad), "invalid_payload");
}

#[test]
fn s5_invalid_payload_multisig_threshold_above_count() {
    let bad = Tx::new(multisig_set(3, &[dest(0), dest(1)])).sign(&alice());
    assert_eq!(code(&bad), "invalid_payload");
    let equal = Tx::new(multisig_set(2, &[dest(0), dest(1)])).sign(&alice());
    assert_eq!(code(&equal), "ok");
    let all: Vec<PublicKey> = (0..=254u8).map(|i| PublicKey([i; 32])).collect();
    let max = Tx::new(multisig_set(255, &all)).sign(&alice());
    assert_eq!(code(&max), "ok", "255 of 255");
}

#[test]
fn s5_invalid_payload_freeze_amount_below_coin() {
    for amount in [0, 1, COIN - 1] {
        let tx = Tx::new(freeze(amount, 3)).sign(&alice());
        assert_eq!(code(&tx), "invalid_payload", "amount {amount}");
    }
    assert_eq!(code(&Tx::new(freeze(COIN, 3)).sign(&alice())), "ok");
}

#[test]
fn s5_invalid_payload_freeze_amount_not_multiple_of_coin() {
    for amount in [COIN + 1, 3 * COIN / 2, 2 * COIN - 1] {
        let tx = Tx::new(freeze(amount, 3)).sign(&alice());
        assert_eq!(code(&tx), "invalid_payload", "amount {amount}");
    }
    assert_eq!(code(&Tx::new(freeze(2 * COIN, 3)).sign(&alice())), "ok");
}

#[test]
fn s5_invalid_payload_freeze_days_outside_3_to_180() {
    for days in [0, 1, 2, 181, u32::MAX] {
        let tx = Tx::new(freeze(COIN, days)).sign(&alice());
        assert_eq!(code(&tx), "invalid_payload", "days {days}");
    }
    for days in [3, 4, 179, 180] {
        let tx = Tx::new(freeze(COIN, days)).sign(&alice());
        assert_eq!(code(&tx), "ok", "days {days}");
    }
}

#[test]
fn s5_invalid_payload_unfreeze_amount_below_coin() {
    for amount in [0, 1, COIN - 1] {
        let tx = Tx::new(unfreeze(amount)).sign(&alice());
        assert_eq!(code(&tx), "invalid_payload", "amount {amount}");
    }
    assert_eq!(code(&Tx::new(unfreeze(COIN)).sign(&alice())), "ok");
}

#[test]
fn s5_invalid_payload_unfreeze_amount_not_multiple_of_coin() {
    for amount in [COIN + 1, 5 * COIN / 2] {
        let tx = Tx::new(unfreeze(amount)).sign(&alice());
        assert_eq!(code(&tx), "invalid_payload", "amount {amount}");
    }
    assert_eq!(code(&Tx::new(unfreeze(3 * COIN)).sign(&alice())), "ok");
}

#[test]
fn s5_invalid_payload_burn_of_0() {
    assert_eq!(
        code(&Tx::new(burn(NATIVE_ASSET, 0)).sign(&alice())),
        "invalid_payload"
    );
    assert_eq!(
        code(&Tx::new(burn(ASSET_B, 0)).sign(&alice())),
        "invalid_payload"
    );
    assert_eq!(code(&Tx::new(burn(ASSET_B, 1)).sign(&alice())), "ok");
}

#[test]
fn s5_invalid_payload_multisig_proof_repeated_id() {
    let (p0, p1) = (part(0), part(1));
    let pay = transfer(NATIVE_ASSET, dest(0), 1);
    let bad = Tx::new(pay.clone()).sign_multi(&alice(), &[(0, &p0), (0, &p1)]);
    assert_eq!(code(&bad), "invalid_payload");
    let bad3 = Tx::new(pay.clone()).sign_multi(&alice(), &[(1, &p0), (2, &p1), (1, &p1)]);
    assert_eq!(code(&bad3), "invalid_payload");
    let ok = Tx::new(pay).sign_multi(&alice(), &[(0, &p0), (1, &p1)]);
    assert_eq!(code(&ok), "ok");
}

#[test]
fn s5_amount_overflow() {
    let max = u64::MAX;
    // Two outputs of one asset whose sum overflows.
    let two = Tx::new(Payload::Transfers(vec![
        out(ASSET_B, dest(0), max),
        out(ASSET_B, dest(1), 1),
    ]))
    .sign(&alice());
    assert_eq!(
        stateless(&two, T).unwrap_err(),
        StatelessError::AmountOverflow
    );
    // The same amounts in two different assets do not.
    let split = Tx::new(Payload::Transfers(vec![
        out(ASSET_B, dest(0), max),
        out(ASSET_C, dest(1), max),
    ]))
    .sign(&alice());
    assert_eq!(code(&split), "ok");
    // The native fee is part of the native spending...
    let with_fee = Tx::new(transfer(NATIVE_ASSET, dest(0), max)).sign(&alice());
    assert_eq!(code(&with_fee), "amount_overflow");
    // ... but an energy fee is not.
    let energy = Tx::new(transfer(NATIVE_ASSET, dest(0), max))
        .energy()
        .sign(&alice());
    assert_eq!(code(&energy), "ok");
    // Burn: native amount + fee overflows; another asset's amount does not add to the fee.
    assert_eq!(
        code(&Tx::new(burn(NATIVE_ASSET, max)).sign(&alice())),
        "amount_overflow"
    );
    assert_eq!(code(&Tx::new(burn(ASSET_B, max)).sign(&alice())), "ok");
    // Freeze: the amount is native spending; the largest multiple of COIN
    // overflows once the fee is added.
    let top = u64::MAX / COIN * COIN;
    assert_eq!(u64::MAX - top, 9_551_615);
    let fits = Tx::new(freeze(top, 3)).fee(u64::MAX - top).sign(&alice());
    assert_eq!(code(&fits), "ok");
    let over = Tx::new(freeze(top, 3))
        .fee(u64::MAX - top + 1)
        .sign(&alice());
    assert_eq!(code(&over), "amount_overflow");
}

#[test]
fn s5_invalid_fee_type_energy_with_other_payload() {
    for payload in [
        burn(NATIVE_ASSET, 1),
        multisig_set(1, &[dest(0)]),
        multisig_delete(),
        freeze(COIN, 3),
        unfreeze(COIN),
    ] {
        let tx = Tx::new(payload.clone()).energy().sign(&alice());
        assert_eq!(
            stateless(&tx, T).unwrap_err(),
            StatelessError::InvalidFeeType,
            "{payload:?}"
        );
    }
    let transfer_ok = Tx::new(transfer(NATIVE_ASSET, dest(0), 1))
        .energy()
        .sign(&alice());
    assert_eq!(code(&transfer_ok), "ok");
}

#[test]
fn s5_invalid_fee_type_energy_with_nonzero_fee() {
    for fee in [1, 15_000, u64::MAX] {
        let tx = Tx::new(transfer(NATIVE_ASSET, dest(0), 1))
            .energy()
            .fee(fee)
            .sign(&alice());
        assert_eq!(code(&tx), "invalid_fee_type", "fee {fee}");
    }
}

/// Checks that `fee = minimum` passes and `minimum - 1` fails for `tx`'s shape.
fn assert_fee_boundary(build: impl Fn(u64) -> Transaction, expected_minimum: u64) {
    let probe = build(0);
    assert_eq!(min_fee(&probe), expected_minimum, "hand-computed minimum");
    let at = build(expected_minimum);
    assert_eq!(code(&at), "ok", "minimum fee");
    let below = build(expected_minimum - 1);
    assert_eq!(
        stateless(&below, T).unwrap_err(),
        StatelessError::FeeTooLow {
            fee: expected_minimum - 1,
            required: expected_minimum
        }
    );
    assert_eq!(code(&build(0)), "fee_too_low");
}

#[test]
fn s5_fee_too_low_simple_transfer() {
    // 230 bytes: 1 KiB + 1 output.
    assert_fee_boundary(
        |fee| {
            Tx::new(transfer(NATIVE_ASSET, dest(0), 1))
                .fee(fee)
                .sign(&alice())
        },
        10_000 + 5_000,
    );
    // Non-transfer payloads count one output.
    assert_fee_boundary(
        |fee| Tx::new(burn(ASSET_B, 1)).fee(fee).sign(&alice()),
        15_000,
    );
    assert_fee_boundary(
        |fee| Tx::new(freeze(COIN, 3)).fee(fee).sign(&alice()),
        15_000,
    );
    // Several outputs: 5_000 each.
    assert_fee_boundary(
        |fee| {
            Tx::new(Payload::Transfers(
                (0..3).map(|i| out(NATIVE_ASSET, dest(i), 1)).collect(),
            ))
            .fee(fee)
            .sign(&alice())
        },
        10_000 + 3 * 5_000,
    );
}

#[test]
fn s5_fee_too_low_per_started_kib() {
    // Exactly 1_024 bytes: one KiB; 1_025 bytes: two. 5 outputs each time.
    assert_fee_boundary(
        |fee| {
            Tx::new(Payload::Transfers(sized_outputs(1_024, 128)))
                .fee(fee)
                .sign(&alice())
        },
        10_000 + 5 * 5_000,
    );
    assert_fee_boundary(
        |fee| {
            Tx::new(Payload::Transfers(sized_outputs(1_025, 128)))
                .fee(fee)
                .sign(&alice())
        },
        2 * 10_000 + 5 * 5_000,
    );
    // 32 outputs of 128 bytes of extra data (4_096 in total): 6_653 bytes, 7 KiB.
    let outs: Vec<TransferOutput> = (0..32).map(|i| with_extra(128, dest(i % 7))).collect();
    let build = |fee| {
        Tx::new(Payload::Transfers(outs.clone()))
            .fee(fee)
            .sign(&alice())
    };
    assert_eq!(build(0).encode().len(), 6_653);
    assert_fee_boundary(build, 7 * 10_000 + 32 * 5_000);
}

#[test]
fn s5_fee_too_low_per_multisig_signature() {
    let (p0, p1, p2) = (part(0), part(1), part(2));
    // 230 + 1 + 3 × 65 = 426 bytes: 1 KiB + 1 output + 3 signatures.
    let build = |fee| {
        Tx::new(transfer(NATIVE_ASSET, dest(0), 1))
            .fee(fee)
            .sign_multi(&alice(), &[(0, &p0), (1, &p1), (2, &p2)])
    };
    assert_eq!(build(0).encode().len(), 426);
    assert_fee_boundary(build, 10_000 + 5_000 + 3 * 5_000);
    // The same fee without a proof is plenty.
    let plain = Tx::new(transfer(NATIVE_ASSET, dest(0), 1))
        .fee(15_000)
        .sign(&alice());
    assert_eq!(code(&plain), "ok");
}

#[test]
fn s5_reference_in_future_boundary() {
    let at = |r| {
        Tx::new(transfer(NATIVE_ASSET, dest(0), 1))
            .reference(r)
            .sign(&alice())
    };
    assert_eq!(code(&at(T)), "ok", "reference = T");
    assert_eq!(code(&at(0)), "ok");
    assert_eq!(
        stateless(&at(T + 1), T).unwrap_err(),
        StatelessError::ReferenceInFuture {
            reference: T + 1,
            parent: T
        }
    );
    assert_eq!(code(&at(u64::MAX)), "reference_in_future");
    assert_eq!(stateless_code(&at(0), 0), "ok", "genesis parent");
    assert_eq!(stateless_code(&at(1), 0), "reference_in_future");
}

#[test]
fn s5_invalid_signature_wrong_key() {
    let tx = Tx::new(transfer(NATIVE_ASSET, dest(0), 1)).sign(&alice());
    assert_eq!(code(&tx), "ok");
    // Signed over the right bytes by another key.
    let mut other = tx.clone();
    other.signature = bob().sign(&tx.signing_bytes()).to_bytes();
    assert_eq!(
        stateless(&other, T).unwrap_err(),
        StatelessError::InvalidSignature
    );
    // Alice's signature presented for bob's key.
    let mut swapped = tx.clone();
    swapped.source = pk(&bob());
    assert_eq!(code(&swapped), "invalid_signature");
    // A proof signature does not replace the source signature.
    let mut by_participant = tx;
    by_participant.signature = part(0)
        .sign(blake3::hash(&by_participant.signing_bytes()).as_bytes())
        .to_bytes();
    assert_eq!(code(&by_participant), "invalid_signature");
}

#[test]
fn s5_invalid_signature_flipped_bit() {
    let tx = Tx::new(transfer(NATIVE_ASSET, dest(0), 1)).sign(&alice());
    for (byte, bit) in [(0, 0), (31, 7), (32, 0), (40, 3), (63, 0)] {
        let mut t = tx.clone();
        t.signature[byte] ^= 1 << bit;
        assert_eq!(
            code(&t),
            "invalid_signature",
            "signature byte {byte} bit {bit}"
        );
    }
    // The signed message changed: the reference hash is not checked by the
    // chain but is signed.
    let mut t = tx.clone();
    t.reference_hash.0[5] ^= 0x10;
    assert_eq!(code(&t), "invalid_signature");
    let mut t = tx;
    t.nonce ^= 1;
    assert_eq!(code(&t), "invalid_signature");
}

/// The group order L, little-endian.
const L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

#[test]
fn s5_invalid_signature_non_canonical_s() {
    let tx = Tx::new(transfer(NATIVE_ASSET, dest(0), 1)).sign(&alice());
    assert_eq!(code(&tx), "ok");
    // S + L: the same scalar mod L, but not canonical (S >= L).
    let mut t = tx;
    let mut carry = 0u16;
    for (i, l) in L.iter().enumerate() {
        let v = t.signature[32 + i] as u16 + *l as u16 + carry;
        t.signature[32 + i] = v as u8;
        carry = v >> 8;
    }
    assert_eq!(carry, 0, "S + L fits in 32 bytes");
    assert_eq!(code(&t), "invalid_signature");
}

/// The eight points of small order, as canonical encodings.
const SMALL_ORDER: [&str; 8] = [
    "0100000000000000000000000000000000000000000000000000000000000000",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000080",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
];

fn point(hex_str: &str) -> [u8; 32] {
    hex::decode(hex_str).unwrap().try_into().unwrap()
}

#[test]
fn s5_invalid_signature_small_order_key() {
    // Key = identity, R = identity, S = 0: [0]B = R + [k]A holds for every
    // message, so permissive verification accepts this "signature" by anyone.
    let identity = point(SMALL_ORDER[0]);
    let mut tx = Tx::new(transfer(NATIVE_ASSET, dest(0), 1)).sign(&alice());
    tx.source = PublicKey(identity);
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(&identity);
    tx.signature = sig;
    let vk = VerifyingKey::from_bytes(&identity).expect("identity decompresses");
    assert!(vk.is_weak());
    assert!(
        vk.verify(&tx.signing_bytes(), &Signature::from_bytes(&sig))
            .is_ok(),
        "permissive verification accepts the forgery"
    );
    assert_eq!(code(&tx), "invalid_signature");

    // Key of order 8 with an R of small order: search the message (the
    // unchecked reference hash) until permissive verification accepts.
    let a8 = point(SMALL_ORDER[4]);
    let vk8 = VerifyingKey::from_bytes(&a8).expect("order-8 point decompresses");
    assert!(vk8.is_weak());
    let mut forged = None;
    'search: for salt in 0u8..=255 {
        for r in SMALL_ORDER {
            let mut t = Tx::new(transfer(NATIVE_ASSET, dest(0), 1))
                .reference_hash(Hash([salt; 32]))
                .sign(&alice());
            t.source = PublicKey(a8);
            let mut sig = [0u8; 64];
            sig[..32].copy_from_slice(&point(r));
            t.signature = sig;
            if vk8
                .verify(&t.signing_bytes(), &Signature::from_bytes(&sig))
                .is_ok()
            {
                forged = Some(t);
                break 'search;
            }
        }
    }
    let forged = forged.expect("a permissively valid forgery for the order-8 key");
    assert_eq!(code(&forged), "invalid_signature");
}

#[test]
fn s5_invalid_signature_key_not_on_curve() {
    let bad = (2u8..=255)
        .map(|y| {
            let mut k = [0u8; 32];
            k[0] = y;
            k
        })
        .find(|k| VerifyingKey::from_bytes(k).is_err())
        .expect("some small y is not on the curve");
    let mut tx = Tx::new(transfer(NATIVE_ASSET, dest(0), 1)).sign(&alice());
    tx.source = PublicKey(bad);
    assert_eq!(code(&tx), "invalid_signature");
}

#[test]
fn s5_proof_signatures_are_not_checked_statelessly() {
    // Only the source signature is a §5 check; a garbage proof passes §5.
    let mut tx = Tx::new(transfer(NATIVE_ASSET, dest(0), 1)).sign_multi(&alice(), &[(0, &part(0))]);
    tx.multisig = Some(MultiSigProof {
        signatures: vec![MultiSigSignature {
            id: 0,
            signature: [0xab; 64],
        }],
    });
    assert_eq!(code(&tx), "ok");
}

#[test]
fn s5_check_order() {
    let me = pk(&alice());
    let max = u64::MAX;
    // tx_too_large before invalid_payload (extra data > 128, to self) and fee_too_low.
    let mut outs = sized_outputs(1_048_577, 65_535);
    outs[0].destination = me;
    let t = Tx::new(Payload::Transfers(outs))
        .fee(0)
        .reference(T + 1)
        .sign(&alice());
    assert_eq!(code(&t), "tx_too_large");
    // invalid_payload before amount_overflow.
    let t = Tx::new(Payload::Transfers(vec![
        out(ASSET_B, me, max),
        out(ASSET_B, dest(0), max),
    ]))
    .sign(&alice());
    assert_eq!(code(&t), "invalid_payload");
    // amount_overflow before invalid_fee_type (energy with a fee).
    let t = Tx::new(Payload::Transfers(vec![
        out(ASSET_B, dest(0), max),
        out(ASSET_B, dest(1), 1),
    ]))
    .energy()
    .fee(7)
    .sign(&alice());
    assert_eq!(code(&t), "amount_overflow");
    // amount_overflow before fee_too_low.
    let t = Tx::new(transfer(NATIVE_ASSET, dest(0), max))
        .fee(1)
        .sign(&alice());
    assert_eq!(code(&t), "amount_overflow");
    // invalid_fee_type before reference_in_future.
    let t = Tx::new(burn(NATIVE_ASSET, 1))
        .energy()
        .reference(T + 1)
        .sign(&alice());
    assert_eq!(code(&t), "invalid_fee_type");
    // fee_too_low before reference_in_future.
    let t = Tx::new(burn(NATIVE_ASSET, 1))
        .fee(0)
        .reference(T + 1)
        .sign(&alice());
    assert_eq!(code(&t), "fee_too_low");
    // reference_in_future before invalid_signature.
    let mut t = Tx::new(burn(NATIVE_ASSET, 1))
        .reference(T + 1)
        .sign(&alice());
    t.signature = [0; 64];
    assert_eq!(code(&t), "reference_in_future");
    // Every earlier check before invalid_signature.
    let mut t = Tx::new(burn(NATIVE_ASSET, 0)).fee(0).sign(&alice());
    t.signature = [0; 64];
    assert_eq!(code(&t), "invalid_payload");
    let mut t = Tx::new(burn(NATIVE_ASSET, 1)).fee(0).sign(&alice());
    t.signature = [0; 64];
    assert_eq!(code(&t), "fee_too_low");
}

#[test]
fn s4_block_with_stateless_failure_is_rejected_and_writes_nothing() {
    let c = std_chain();
    c.empty_blocks(2);
    let before = c.snap();
    let top = c.top();
    assert_eq!(top, 2);
    let good = Tx::new(transfer(NATIVE_ASSET, dest(0), COIN))
        .reference(top)
        .sign(&alice());
    let low_fee = Tx::new(transfer(NATIVE_ASSET, dest(1), 1))
        .fee(1)
        .sign(&bob());
    let mut bad_sig = Tx::new(transfer(NATIVE_ASSET, dest(2), 1)).sign(&carol());
    bad_sig.signature[0] ^= 1;
    let future = Tx::new(transfer(NATIVE_ASSET, dest(1), 1))
        .reference(top + 1)
        .sign(&bob());

    match c.apply(&[good.clone(), low_fee.clone(), bad_sig.clone()]) {
        Err(BlockError::InvalidTransaction {
            topoheight,
            index,
            error,
        }) => {
            assert_eq!((topoheight, index), (top + 1, 1));
            assert_eq!(
                error,
                StatelessError::FeeTooLow {
                    fee: 1,
                    required: 15_000
                }
            );
            assert_eq!(error.code(), "fee_too_low");
        }
        other => panic!("expected InvalidTransaction, got {other:?}"),
    }
    match c.apply(&[bad_sig.clone(), good.clone(), low_fee]) {
        Err(BlockError::InvalidTransaction { index, error, .. }) => {
            assert_eq!(index, 0);
            assert_eq!(error, StatelessError::InvalidSignature);
        }
        other => panic!("expected InvalidTransaction, got {other:?}"),
    }
    match c.apply(&[good.clone(), future]) {
        Err(BlockError::InvalidTransaction { index, error, .. }) => {
            assert_eq!(index, 1);
            assert_eq!(error.code(), "reference_in_future");
        }
        other => panic!("expected InvalidTransaction, got {other:?}"),
    }
    // Nothing was written: no reward, no debit, same top, same state.
    assert_eq!(c.top(), top);
    assert_eq!(c.snap(), before);
    assert!(c.chain.storage().block_meta(top + 1).unwrap().is_none());
    // The valid part alone applies (reference = T is allowed).
    assert_eq!(c.run(&[good]), vec!["ok"]);
    assert_eq!(c.top(), top + 1);
}

// =====================================================================
// SPEC §6: stateful rules
// =====================================================================

#[test]
fn s6_nonce_mismatch_and_unknown_account_has_nonce_0() {
    let c = std_chain();
    let e = erin();
    // Unknown account: nonce 1 is a mismatch against 0; nonce 0 passes the
    // nonce check (and fails later, for lack of funds).
    let o = c
        .apply(&[
            Tx::new(transfer(NATIVE_ASSET, dest(0), 1))
                .nonce(1)
                .sign(&e),
            Tx::new(transfer(NATIVE_ASSET, dest(0), 1))
                .nonce(0)
                .sign(&e),
        ])
        .unwrap();
    assert_eq!(
        o.results[0].status,
        orphaned(TxFailure::NonceMismatch {
            expected: 0,
            got: 1
        })
    );
    assert_eq!(o.results[1].status.code(), "insufficient_funds");
    assert!(
        !c.snap().accounts.contains_key(&pk(&e)),
        "failures list nothing"
    );
    // Known account: alice's nonce is 0; 1 fails, 0 passes, then 1 passes.
    let o = c
        .apply(&[
            Tx::new(transfer(NATIVE_ASSET, dest(0), 1))
                .nonce(1)
                .sign(&alice()),
            Tx::new(transfer(NATIVE_ASSET, dest(0), 1))
                .nonce(0)
                .sign(&alice()),
            Tx::new(transfer(NATIVE_ASSET, dest(0), 1))
                .nonce(0)
                .sign(&alice()),
            Tx::new(transfer(NATIVE_ASSET, dest(0), 1))
                .nonce(1)
                .sign(&alice()),
        ])
        .unwrap();
    assert_eq!(
        codes(&o),
        vec!["nonce_mismatch", "ok", "nonce_mismatch", "ok"]
    );
    assert_eq!(
        o.results[2].status,
        orphaned(TxFailure::NonceMismatch {
            expected: 1,
            got: 0
        })
    );
    assert_eq!(c.nonce(&pk(&alice())), 2);
}

#[test]
fn s6_nonce_from_genesis() {
    let mut g = genesis(86_400, &[(pk(&alice()), &[(NATIVE_ASSET, 10 * COIN)])]);
    g.accounts[0].nonce = 5;
    let c = Chain::from_genesis(&g);
    let t = |n| Tx::new(burn(NATIVE_ASSET, 1)).nonce(n).sign(&alice());
    let o = c.apply(&[t(0), t(4), t(6), t(5), t(6)]).unwrap();
    assert_eq!(
        codes(&o),
        vec![
            "nonce_mismatch",
            "nonce_mismatch",
            "nonce_mismatch",
            "ok",
            "ok"
        ]
    );
    assert_eq!(
        o.results[1].status,
        orphaned(TxFailure::NonceMismatch {
            expected: 5,
            got: 4
        })
    );
    assert_eq!(c.nonce(&pk(&alice())), 7);
}

/// alice with a 2-of-3 config [p0, p1, p2] set in block 1; her next nonce is 1.
fn multisig_chain() -> Chain {
    let c = std_chain();
    let parts: Vec<PublicKey> = (0..3).map(|i| pk(&part(i))).collect();
    assert_eq!(
        c.run(&[Tx::new(multisig_set(2, &parts)).sign(&alice())]),
        vec!["ok"]
    );
    let cfg = c.snap().accounts[&pk(&alice())].multisig.clone();
    assert_eq!(
        cfg,
        Some(MultisigConfig {
            threshold: 2,
            participants: parts
        })
    );
    c
}

fn pay() -> Tx {
    Tx::new(transfer(NATIVE_ASSET, dest(0), COIN)).nonce(1)
}

fn assert_multisig_invalid(c: &Chain, tx: Transaction) {
    let before = c.snap();
    let o = c.apply(&[tx]).unwrap();
    assert!(
        matches!(
            o.results[0].status,
            TxStatus::Orphaned(TxFailure::MultisigInvalid(_))
        ),
        "{:?}",
        o.results[0].status
    );
    assert_eq!(c.nonce(&pk(&alice())), 1);
    assert_eq!(
        c.snap().accounts[&pk(&alice())],
        before.accounts[&pk(&alice())],
        "nothing of alice changed"
    );
}

#[test]
fn s6_multisig_valid_proof_passes() {
    let c = multisig_chain();
    let (p0, p2) = (part(0), part(2));
    let a0 = c.native(&pk(&alice()));
    let t1 = pay().sign_multi(&alice(), &[(0, &p0), (2, &p2)]);
    // Proof entries in any order: ids index the participants.
    let t2 = pay().nonce(2).sign_multi(&alice(), &[(2, &p2), (0, &p0)]);
    assert_eq!(c.run(&[t1.clone(), t2.clone()]), vec!["ok", "ok"]);
    assert_eq!(c.native(&pk(&alice())), a0 - 2 * COIN - t1.fee - t2.fee);
    assert_eq!(t1.fee, 10_000 + 5_000 + 2 * 5_000);
}

#[test]
fn s6_multisig_invalid_no_proof_with_config() {
    let c = multisig_chain();
    assert_multisig_invalid(&c, pay().sign(&alice()));
}

#[test]
fn s6_multisig_invalid_wrong_signature_count() {
    let c = multisig_chain();
    let (p0, p1, p2) = (part(0), part(1), part(2));
    assert_multisig_invalid(&c, pay().sign_multi(&alice(), &[(1, &p1)]));
    assert_multisig_invalid(
        &c,
        pay().sign_multi(&alice(), &[(0, &p0), (1, &p1), (2, &p2)]),
    );
}

#[test]
fn s6_multisig_invalid_id_out_of_range() {
    let c = multisig_chain();
    let (p0, p1) = (part(0), part(1));
    assert_multisig_invalid(&c, pay().sign_multi(&alice(), &[(0, &p0), (3, &p1)]));
    assert_multisig_invalid(&c, pay().sign_multi(&alice(), &[(255, &p0), (1, &p1)]));
}

#[test]
fn s6_multisig_invalid_bad_signature() {
    let c = multisig_chain();
    let (p0, p1, outsider) = (part(0), part(1), part(3));
    // A non-participant signs.
    assert_multisig_invalid(&c, pay().sign_multi(&alice(), &[(0, &p0), (1, &outsider)]));
    // Participants under the wrong ids.
    assert_multisig_invalid(&c, pay().sign_multi(&alice(), &[(0, &p1), (1, &p0)]));
    // Signatures over the signing bytes instead of blake3(signing bytes).
    let mut t = pay().sign_multi(&alice(), &[(0, &p0), (1, &p1)]);
    let msg = t.signing_bytes();
    t.multisig = Some(MultiSigProof {
        signatures: vec![
            MultiSigSignature {
                id: 0,
                signature: p0.sign(&msg).to_bytes(),
            },
            MultiSigSignature {
                id: 1,
                signature: p1.sign(&msg).to_bytes(),
            },
        ],
    });
    assert_eq!(code(&t), "ok", "the proof is not a stateless check");
    assert_multisig_invalid(&c, t);
    // A flipped bit in one proof signature.
    let mut t = pay().sign_multi(&alice(), &[(0, &p0), (1, &p1)]);
    t.multisig.as_mut().unwrap().signatures[1].signature[3] ^= 4;
    assert_multisig_invalid(&c, t);
}

#[test]
fn s6_multisig_invalid_proof_without_config() {
    let c = std_chain();
    let t = Tx::new(transfer(NATIVE_ASSET, dest(0), 1)).sign_multi(&bob(), &[(0, &part(0))]);
    let o = c.apply(&[t]).unwrap();
    assert!(matches!(
        o.results[0].status,
        TxStatus::Orphaned(TxFailure::MultisigInvalid(_))
    ));
    assert_eq!(codes(&o), vec!["multisig_invalid"]);
    assert_eq!(c.nonce(&pk(&bob())), 0);
}

#[test]
fn s6_multisig_not_configured() {
    let c = std_chain();
    let o = c.apply(&[Tx::new(multisig_delete()).sign(&bob())]).unwrap();
    assert_eq!(
        o.results[0].status,
        orphaned(TxFailure::MultisigNotConfigured)
    );
    assert_eq!(c.nonce(&pk(&bob())), 0);
    assert_eq!(c.snap().accounts[&pk(&bob())].multisig, None);
}

#[test]
fn s6_multisig_delete_with_config_and_next_tx() {
    let c = multisig_chain();
    let (p0, p1) = (part(0), part(1));
    let del = Tx::new(multisig_delete())
        .nonce(1)
        .sign_multi(&alice(), &[(0, &p0), (1, &p1)]);
    // After the delete (same block): no proof needed; a proof is now invalid.
    let plain = Tx::new(transfer(NATIVE_ASSET, dest(0), 1))
        .nonce(2)
        .sign(&alice());
    let proved = Tx::new(transfer(NATIVE_ASSET, dest(0), 1))
        .nonce(3)
        .sign_multi(&alice(), &[(0, &p0), (1, &p1)]);
    assert_eq!(
        c.run(&[del, plain, proved]),
        vec!["ok", "ok", "multisig_invalid"]
    );
    assert_eq!(c.snap().accounts[&pk(&alice())].multisig, None);
    // Deleting again: not configured.
    let again = Tx::new(multisig_delete()).nonce(3).sign(&alice());
    assert_eq!(c.run(&[again]), vec!["multisig_not_configured"]);
}

#[test]
fn s6_multisig_applies_from_the_next_transaction() {
    let c = std_chain();
    let (p0, p1) = (part(0), part(1));
    let set = Tx::new(multisig_set(1, &[pk(&p0)])).sign(&alice());
    let plain = Tx::new(transfer(NATIVE_ASSET, dest(0), 1))
        .nonce(1)
        .sign(&alice());
    let proved = Tx::new(transfer(NATIVE_ASSET, dest(0), 1))
        .nonce(1)
        .sign_multi(&alice(), &[(0, &p0)]);
    // The set itself needs no proof; the next transaction in the same block does.
    assert_eq!(
        c.run(&[set, plain, proved]),
        vec!["ok", "multisig_invalid", "ok"]
    );
    // A new config is authorised by the old one and applies from the next transaction.
    let reset = Tx::new(multisig_set(1, &[pk(&p1)]))
        .nonce(2)
        .sign_multi(&alice(), &[(0, &p0)]);
    let old = Tx::new(transfer(NATIVE_ASSET, dest(0), 1))
        .nonce(3)
        .sign_multi(&alice(), &[(0, &p0)]);
    let new = Tx::new(transfer(NATIVE_ASSET, dest(0), 1))
        .nonce(3)
        .sign_multi(&alice(), &[(0, &p1)]);
    assert_eq!(
        c.run(&[reset, old, new]),
        vec!["ok", "multisig_invalid", "ok"]
    );
    assert_eq!(
        c.snap().accounts[&pk(&alice())].multisig,
        Some(MultisigConfig {
            threshold: 1,
            participants: vec![pk(&p1)]
        })
    );
}

#[test]
fn s6_insufficient_unlocked_frozen_locked_record() {
    // blocks_per_day 2: a 3-day freeze in the block producing 1 unlocks at 1 + 6 = 7.
    let c = Chain::with_blocks_per_day(2, &[(pk(&alice()), &[(NATIVE_ASSET, 100 * COIN)])]);
    assert_eq!(
        c.run(&[Tx::new(freeze(2 * COIN, 3)).sign(&alice())]),
        vec!["ok"]
    );
    assert_eq!(c.energy(&pk(&alice())).records[0].unlock_topoheight, 7);
    c.empty_blocks(4);
    assert_eq!(c.top(), 5);
    // Block producing 6: still locked.
    let o = c
        .apply(&[Tx::new(unfreeze(COIN)).nonce(1).sign(&alice())])
        .unwrap();
    assert_eq!(
        o.results[0].status,
        orphaned(TxFailure::InsufficientUnlockedFrozen {
            unlocked: 0,
            requested: COIN
        })
    );
    // Block producing 7 = unlock_topoheight: eligible.
    assert_eq!(
        c.run(&[Tx::new(unfreeze(COIN)).nonce(1).sign(&alice())]),
        vec!["ok"]
    );
    assert_eq!(c.energy(&pk(&alice())).frozen, COIN);
}

#[test]
fn s6_insufficient_unlocked_frozen_partial() {
    let c = Chain::with_blocks_per_day(1, &[(pk(&alice()), &[(NATIVE_ASSET, 100 * COIN)])]);
    // Block 1: 2 COIN for 3 days (unlock 4), 3 COIN for 10 days (unlock 11).
    assert_eq!(
        c.run(&[
            Tx::new(freeze(2 * COIN, 3)).sign(&alice()),
            Tx::new(freeze(3 * COIN, 10)).nonce(1).sign(&alice()),
        ]),
        vec!["ok", "ok"]
    );
    c.empty_blocks(2);
    let o = c
        .apply(&[
            Tx::new(unfreeze(3 * COIN)).nonce(2).sign(&alice()),
            Tx::new(unfreeze(2 * COIN)).nonce(2).sign(&alice()),
            Tx::new(unfreeze(COIN)).nonce(3).sign(&alice()),
        ])
        .unwrap();
    assert_eq!(o.topoheight, 4);
    assert_eq!(
        o.results[0].status,
        orphaned(TxFailure::InsufficientUnlockedFrozen {
            unlocked: 2 * COIN,
            requested: 3 * COIN
        })
    );
    assert_eq!(o.results[1].status, TxStatus::Ok);
    // The eligible record is used up; the locked one is not touched.
    assert_eq!(
        o.results[2].status,
        orphaned(TxFailure::InsufficientUnlockedFrozen {
            unlocked: 0,
            requested: COIN
        })
    );
    let e = c.energy(&pk(&alice()));
    assert_eq!(e.frozen, 3 * COIN);
    assert_eq!(
        e.records,
        vec![FreezeRecord {
            amount: 3 * COIN,
            energy: 60,
            unlock_topoheight: 11
        }]
    );
}

#[test]
fn s6_insufficient_energy() {
    let c = std_chain();
    let outs =
        |n: usize| Payload::Transfers((0..n).map(|i| out(NATIVE_ASSET, dest(i), 1)).collect());
    // Never froze: 0 available.
    let o = c.apply(&[Tx::new(outs(1)).energy().sign(&bob())]).unwrap();
    assert_eq!(
        o.results[0].status,
        orphaned(TxFailure::InsufficientEnergy {
            available: 0,
            required: 1
        })
    );
    // 1 COIN for 3 days: 6 energy; 7 outputs need 7, 6 need 6.
    assert_eq!(
        c.run(&[Tx::new(freeze(COIN, 3)).sign(&alice())]),
        vec!["ok"]
    );
    assert_eq!(c.energy(&pk(&alice())).available, 6);
    let o = c
        .apply(&[
            Tx::new(outs(7)).energy().nonce(1).sign(&alice()),
            Tx::new(outs(6)).energy().nonce(1).sign(&alice()),
            Tx::new(outs(1)).energy().nonce(2).sign(&alice()),
        ])
        .unwrap();
    assert_eq!(
        o.results[0].status,
        orphaned(TxFailure::InsufficientEnergy {
            available: 6,
            required: 7
        })
    );
    assert_eq!(o.results[1].status, TxStatus::Ok);
    assert_eq!(
        o.results[2].status,
        orphaned(TxFailure::InsufficientEnergy {
            available: 0,
            required: 1
        })
    );
    assert_eq!(c.energy(&pk(&alice())).available, 0);
}

#[test]
fn s6_insufficient_funds_per_asset() {
    let c = std_chain();
    let a = pk(&alice());
    let o = c
        .apply(&[
            // B: 1_000 held.
            Tx::new(transfer(ASSET_B, dest(0), 1_001)).sign(&alice()),
            // Two outputs of B summing over the balance.
            Tx::new(Payload::Transfers(vec![
                out(ASSET_B, dest(0), 600),
                out(ASSET_B, dest(1), 401),
            ]))
            .sign(&alice()),
            // An asset never held.
            Tx::new(transfer(ASSET_C, dest(0), 1)).sign(&alice()),
            // Burn and freeze count as spending.
            Tx::new(burn(ASSET_B, 1_001)).sign(&alice()),
            Tx::new(freeze(100 * COIN, 3)).sign(&alice()),
            // Exactly the B balance is fine.
            Tx::new(Payload::Transfers(vec![
                out(ASSET_B, dest(0), 600),
                out(ASSET_B, dest(1), 400),
            ]))
            .sign(&alice()),
        ])
        .unwrap();
    let fee = 10_000 + 5_000;
    assert_eq!(
        o.results[0].status,
        orphaned(TxFailure::InsufficientFunds {
            asset: ASSET_B,
            balance: 1_000,
            required: 1_001
        })
    );
    assert_eq!(o.results[1].status.code(), "insufficient_funds");
    assert_eq!(
        o.results[2].status,
        orphaned(TxFailure::InsufficientFunds {
            asset: ASSET_C,
            balance: 0,
            required: 1
        })
    );
    assert_eq!(o.results[3].status.code(), "insufficient_funds");
    assert_eq!(
        o.results[4].status,
        orphaned(TxFailure::InsufficientFunds {
            asset: NATIVE_ASSET,
            balance: 100 * COIN,
            required: 100 * COIN + fee
        })
    );
    assert_eq!(o.results[5].status, TxStatus::Ok);
    assert_eq!(c.balance(&a, &ASSET_B), 0);
    assert_eq!(c.balance(&dest(0), &ASSET_B), 600);
}

#[test]
fn s6_insufficient_funds_fee_short_by_1() {
    // carol: 1_000_000 native, 100 B.
    let c = std_chain();
    let k = pk(&carol());
    let fee = 15_000;
    let o = c
        .apply(&[
            Tx::new(transfer(NATIVE_ASSET, dest(0), 1_000_000 - fee + 1)).sign(&carol()),
            Tx::new(transfer(NATIVE_ASSET, dest(0), 1_000_000 - fee)).sign(&carol()),
        ])
        .unwrap();
    assert_eq!(
        o.results[0].status,
        orphaned(TxFailure::InsufficientFunds {
            asset: NATIVE_ASSET,
            balance: 1_000_000,
            required: 1_000_001
        })
    );
    assert_eq!(o.results[1].status, TxStatus::Ok);
    assert_eq!(c.native(&k), 0);
    // Now the native fee alone is short, even for a transfer of B.
    let o = c
        .apply(&[Tx::new(transfer(ASSET_B, dest(0), 1))
            .nonce(1)
            .sign(&carol())])
        .unwrap();
    assert_eq!(
        o.results[0].status,
        orphaned(TxFailure::InsufficientFunds {
            asset: NATIVE_ASSET,
            balance: 0,
            required: fee
        })
    );
    assert_eq!(c.balance(&k, &ASSET_B), 100);
}

#[test]
fn s6_check_order() {
    let c = multisig_chain(); // alice configured, nonce 1
    let e = erin(); // unknown: no funds, no energy, no config
    let o = c
        .apply(&[
            // nonce_mismatch before multisig_invalid.
            Tx::new(transfer(NATIVE_ASSET, dest(0), 1))
                .nonce(7)
                .sign(&alice()),
            // multisig_invalid before insufficient_energy / insufficient_funds.
            Tx::new(transfer(NATIVE_ASSET, dest(0), u64::MAX))
                .energy()
                .nonce(1)
                .sign(&alice()),
            // multisig_invalid (proof without config) before multisig_not_configured.
            Tx::new(multisig_delete()).sign_multi(&bob(), &[(0, &part(0))]),
            // nonce_mismatch before insufficient_unlocked_frozen.
            Tx::new(unfreeze(COIN)).nonce(1).sign(&e),
            // multisig_not_configured before insufficient_funds.
            Tx::new(multisig_delete()).sign(&e),
            // insufficient_unlocked_frozen before insufficient_funds.
            Tx::new(unfreeze(COIN)).sign(&e),
            // insufficient_energy before insufficient_funds.
            Tx::new(transfer(NATIVE_ASSET, dest(0), 5))
                .energy()
                .sign(&e),
            // insufficient_funds last.
            Tx::new(transfer(NATIVE_ASSET, dest(0), 5)).sign(&e),
        ])
        .unwrap();
    assert_eq!(
        codes(&o),
        vec![
            "nonce_mismatch",
            "multisig_invalid",
            "multisig_invalid",
            "nonce_mismatch",
            "multisig_not_configured",
            "insufficient_unlocked_frozen",
            "insufficient_energy",
            "insufficient_funds",
        ]
    );
}

#[test]
fn s6_failing_transactions_change_nothing() {
    let c = std_chain();
    assert_eq!(
        c.run(&[Tx::new(freeze(COIN, 3)).sign(&alice())]),
        vec!["ok"]
    );
    let before = c.snap();
    let miner_before = c.native(&c.miner);
    let e = erin();
    let o = c
        .apply(&[
            Tx::new(transfer(NATIVE_ASSET, pk(&e), COIN))
                .nonce(5)
                .sign(&alice()),
            Tx::new(transfer(NATIVE_ASSET, pk(&e), 11 * COIN)).sign(&bob()),
            Tx::new(burn(NATIVE_ASSET, 11 * COIN)).sign(&bob()),
            Tx::new(freeze(10 * COIN, 3)).sign(&bob()),
            Tx::new(multisig_set(1, &[dest(0)])).nonce(3).sign(&bob()),
            Tx::new(multisig_delete()).sign(&bob()),
            Tx::new(unfreeze(COIN)).nonce(1).sign(&alice()),
            Tx::new(Payload::Transfers(
                (0..7).map(|i| out(NATIVE_ASSET, pk(&e), i)).collect(),
            ))
            .energy()
            .nonce(1)
            .sign(&alice()),
            Tx::new(transfer(NATIVE_ASSET, pk(&e), 1)).sign_multi(&carol(), &[(0, &part(0))]),
        ])
        .unwrap();
    assert_eq!(o.ok_count(), 0, "{:?}", codes(&o));
    assert_eq!((o.fees, o.burned), (0, 0));
    let after = c.snap();
    // Only the reward moved.
    let r = reward(before.meta.emitted_supply);
    assert_eq!(o.reward, r);
    assert_eq!(c.native(&c.miner), miner_before + r);
    assert_eq!(after.meta.emitted_supply, before.meta.emitted_supply + r);
    assert_eq!(after.meta.burned_supply, before.meta.burned_supply);
    let strip = |mut s: tos_parallel::StateSnapshot| {
        s.accounts.remove(&c.miner);
        s.accounts
    };
    assert_eq!(strip(after), strip(before));
    assert!(
        !c.snap().accounts.contains_key(&pk(&e)),
        "failed transfers list no destination"
    );
}

#[test]
fn s6_later_transactions_see_earlier_effects() {
    let c = std_chain();
    let e = erin();
    let a = pk(&alice());
    let o = c
        .apply(&[
            // Nonce chain within one block.
            Tx::new(transfer(NATIVE_ASSET, pk(&e), 3 * COIN))
                .nonce(0)
                .sign(&alice()),
            Tx::new(transfer(ASSET_B, pk(&e), 10))
                .nonce(1)
                .sign(&alice()),
            // erin, unknown at the parent, spends what she received earlier in the block.
            Tx::new(Payload::Transfers(vec![
                out(NATIVE_ASSET, dest(0), 2 * COIN),
                out(ASSET_B, dest(0), 10),
            ]))
            .sign(&e),
            // ... and cannot spend it twice.
            Tx::new(transfer(NATIVE_ASSET, dest(0), 2 * COIN))
                .nonce(1)
                .sign(&e),
            // bob spends more than his genesis balance, thanks to alice's transfer before.
            Tx::new(transfer(NATIVE_ASSET, pk(&bob()), 5 * COIN))
                .nonce(2)
                .sign(&alice()),
            Tx::new(transfer(NATIVE_ASSET, dest(1), 14 * COIN)).sign(&bob()),
        ])
        .unwrap();
    assert_eq!(
        codes(&o),
        vec!["ok", "ok", "ok", "insufficient_funds", "ok", "ok"]
    );
    assert_eq!(c.nonce(&a), 3);
    assert_eq!(c.nonce(&pk(&e)), 1);
    assert_eq!(c.native(&pk(&e)), 3 * COIN - 2 * COIN - 20_000);
    assert_eq!(c.balance(&pk(&e), &ASSET_B), 0);
    assert_eq!(c.native(&dest(0)), 2 * COIN);
    assert_eq!(c.native(&pk(&bob())), 15 * COIN - 14 * COIN - 15_000);
    // A debit earlier in the block leaves too little for a later one.
    let o = c
        .apply(&[
            Tx::new(transfer(NATIVE_ASSET, dest(2), 50 * COIN))
                .nonce(3)
                .sign(&alice()),
            Tx::new(transfer(NATIVE_ASSET, dest(2), 50 * COIN))
                .nonce(4)
                .sign(&alice()),
        ])
        .unwrap();
    assert_eq!(codes(&o), vec!["ok", "insufficient_funds"]);
}

#[test]
fn s6_freeze_record_energy_and_unlock_math() {
    let c = Chain::with_blocks_per_day(10, &[(pk(&alice()), &[(NATIVE_ASSET, 100 * COIN)])]);
    let a = pk(&alice());
    let f1 = Tx::new(freeze(5 * COIN, 7)).sign(&alice());
    assert_eq!(c.run(std::slice::from_ref(&f1)), vec!["ok"]);
    // Block producing 1: energy 5 × 2 × 7 = 70, unlock 1 + 7 × 10 = 71.
    let r1 = FreezeRecord {
        amount: 5 * COIN,
        energy: 70,
        unlock_topoheight: 71,
    };
    assert_eq!(
        c.energy(&a),
        EnergyState {
            available: 70,
            frozen: 5 * COIN,
            records: vec![r1]
        }
    );
    assert_eq!(c.native(&a), 100 * COIN - 5 * COIN - f1.fee);
    c.empty_blocks(1);
    // Block producing 3: two more records, appended in order.
    let f2 = Tx::new(freeze(COIN, 180)).nonce(1).sign(&alice());
    let f3 = Tx::new(freeze(2 * COIN, 3)).nonce(2).sign(&alice());
    assert_eq!(c.run(&[f2.clone(), f3.clone()]), vec!["ok", "ok"]);
    let r2 = FreezeRecord {
        amount: COIN,
        energy: 360,
        unlock_topoheight: 3 + 1_800,
    };
    let r3 = FreezeRecord {
        amount: 2 * COIN,
        energy: 12,
        unlock_topoheight: 3 + 30,
    };
    assert_eq!(
        c.energy(&a),
        EnergyState {
            available: 70 + 360 + 12,
            frozen: 8 * COIN,
            records: vec![r1, r2, r3]
        }
    );
    assert_eq!(c.native(&a), 92 * COIN - f1.fee - f2.fee - f3.fee);
}

#[test]
fn s6_freeze_with_default_blocks_per_day() {
    let c = std_chain(); // 86_400 blocks per day
    assert_eq!(
        c.run(&[Tx::new(freeze(3 * COIN, 4)).sign(&alice())]),
        vec!["ok"]
    );
    assert_eq!(
        c.energy(&pk(&alice())).records,
        vec![FreezeRecord {
            amount: 3 * COIN,
            energy: 24,
            unlock_topoheight: 1 + 4 * 86_400
        }]
    );
}

#[test]
fn s6_unfreeze_oldest_first_partial_takes() {
    let c = Chain::with_blocks_per_day(1, &[(pk(&alice()), &[(NATIVE_ASSET, 100 * COIN)])]);
    let a = pk(&alice());
    // Block 1: a long freeze first (locked), then two short ones.
    assert_eq!(
        c.run(&[
            Tx::new(freeze(COIN, 180)).sign(&alice()),
            Tx::new(freeze(2 * COIN, 3)).nonce(1).sign(&alice()),
            Tx::new(freeze(3 * COIN, 5)).nonce(2).sign(&alice()),
        ]),
        vec!["ok", "ok", "ok"]
    );
    let locked = FreezeRecord {
        amount: COIN,
        energy: 360,
        unlock_topoheight: 181,
    };
    assert_eq!(c.energy(&a).available, 360 + 12 + 30);
    c.empty_blocks(4);
    let native_before = c.native(&a);
    // Block producing 6: both short records eligible, the long one not.
    let un = Tx::new(unfreeze(3 * COIN)).nonce(3).sign(&alice());
    assert_eq!(c.run(std::slice::from_ref(&un)), vec!["ok"]);
    // The 2-COIN record is removed (-12 energy); 1 COIN of the 3-COIN record
    // is taken: 30 × 1 / 3 = 10 energy lost.
    assert_eq!(
        c.energy(&a),
        EnergyState {
            available: 402 - 12 - 10,
            frozen: 3 * COIN,
            records: vec![
                locked,
                FreezeRecord {
                    amount: 2 * COIN,
                    energy: 20,
                    unlock_topoheight: 6
                }
            ]
        }
    );
    assert_eq!(c.native(&a), native_before + 3 * COIN - un.fee);
    // The rest of the eligible record.
    let un2 = Tx::new(unfreeze(2 * COIN)).nonce(4).sign(&alice());
    assert_eq!(c.run(&[un2]), vec!["ok"]);
    assert_eq!(
        c.energy(&a),
        EnergyState {
            available: 360,
            frozen: COIN,
            records: vec![locked]
        }
    );
}

#[test]
fn s6_unfreeze_energy_loss_is_exact_for_large_records() {
    // 100M COIN for 3 days: energy 6e8; taking half loses 3e8 exactly
    // (energy × take = 3e24 does not fit in u64).
    let big = 100_000_000 * COIN;
    let c = Chain::with_blocks_per_day(1, &[(pk(&alice()), &[(NATIVE_ASSET, big + COIN)])]);
    let a = pk(&alice());
    assert_eq!(c.run(&[Tx::new(freeze(big, 3)).sign(&alice())]), vec!["ok"]);
    assert_eq!(c.energy(&a).available, 600_000_000);
    c.empty_blocks(3);
    assert_eq!(
        c.run(&[Tx::new(unfreeze(big / 2)).nonce(1).sign(&alice())]),
        vec!["ok"]
    );
    assert_eq!(
        c.energy(&a),
        EnergyState {
            available: 300_000_000,
            frozen: big / 2,
            records: vec![FreezeRecord {
                amount: big / 2,
                energy: 300_000_000,
                unlock_topoheight: 4
            }]
        }
    );
}

#[test]
fn s6_unfreeze_available_energy_not_below_0() {
    let c = Chain::with_blocks_per_day(1, &[(pk(&alice()), &[(NATIVE_ASSET, 10 * COIN)])]);
    let a = pk(&alice());
    assert_eq!(
        c.run(&[Tx::new(freeze(COIN, 3)).sign(&alice())]),
        vec!["ok"]
    );
    // Spend 4 of the 6 energy.
    let spend = Tx::new(Payload::Transfers(
        (0..4).map(|i| out(NATIVE_ASSET, dest(i), 1)).collect(),
    ))
    .energy()
    .nonce(1)
    .sign(&alice());
    assert_eq!(c.run(&[spend]), vec!["ok"]);
    assert_eq!(c.energy(&a).available, 2);
    c.empty_blocks(2);
    // The record carries 6 energy, only 2 are available: 0, not negative.
    assert_eq!(
        c.run(&[Tx::new(unfreeze(COIN)).nonce(2).sign(&alice())]),
        vec!["ok"]
    );
    assert_eq!(c.energy(&a), EnergyState::default());
}

#[test]
fn s6_energy_fee_decrements_energy_and_pays_no_fee() {
    let c = std_chain();
    let a = pk(&alice());
    let fr = Tx::new(freeze(COIN, 3)).sign(&alice());
    assert_eq!(c.run(std::slice::from_ref(&fr)), vec!["ok"]);
    let native = c.native(&a);
    let miner = c.native(&c.miner);
    let t = Tx::new(Payload::Transfers(
        (0..3).map(|i| out(NATIVE_ASSET, dest(i), 100)).collect(),
    ))
    .energy()
    .nonce(1)
    .sign(&alice());
    let o = c.apply(&[t]).unwrap();
    assert_eq!(codes(&o), vec!["ok"]);
    assert_eq!(o.fees, 0);
    assert_eq!(c.energy(&a).available, 6 - 3);
    assert_eq!(c.energy(&a).frozen, COIN);
    assert_eq!(c.native(&a), native - 300);
    assert_eq!(c.nonce(&a), 2);
    assert_eq!(c.native(&c.miner), miner + o.reward);
}

#[test]
fn s6_burn_native_and_other_asset() {
    let c = std_chain();
    let a = pk(&alice());
    let b1 = Tx::new(burn(NATIVE_ASSET, 3 * COIN)).sign(&alice());
    let o = c.apply(std::slice::from_ref(&b1)).unwrap();
    assert_eq!(codes(&o), vec!["ok"]);
    assert_eq!(o.burned, 3 * COIN);
    let meta = c.snap().meta;
    assert_eq!(meta.burned_supply, 3 * COIN);
    assert_eq!(
        meta.emitted_supply,
        100 * COIN + 10 * COIN + 1_000_000 + o.reward
    );
    assert_eq!(c.native(&a), 97 * COIN - b1.fee);

    let b2 = Tx::new(burn(ASSET_B, 10)).nonce(1).sign(&alice());
    let failed = Tx::new(burn(NATIVE_ASSET, 1_000 * COIN))
        .nonce(2)
        .sign(&alice());
    let o = c.apply(&[b2.clone(), failed]).unwrap();
    assert_eq!(codes(&o), vec!["ok", "insufficient_funds"]);
    assert_eq!(o.burned, 0);
    assert_eq!(c.snap().meta.burned_supply, 3 * COIN);
    assert_eq!(c.balance(&a, &ASSET_B), 990);
    assert_eq!(c.native(&a), 97 * COIN - b1.fee - b2.fee);
    let line: Value = serde_json::from_str(&results_line(&o)).unwrap();
    assert_eq!(line["burned"], json!(0));
}

#[test]
fn s4_reward_formula_and_emitted_supply() {
    let g = 1_000 * COIN;
    let c = Chain::new(&[(pk(&alice()), &[(NATIVE_ASSET, g)])]);
    assert_eq!(c.snap().meta.emitted_supply, g);
    let o1 = c.apply(&[]).unwrap();
    assert_eq!(
        o1.reward, 17_547_512_054,
        "(MAXIMUM_SUPPLY - 1_000 COIN) >> 20"
    );
    assert_eq!(o1.reward, reward(g));
    assert_eq!(c.snap().meta.emitted_supply, g + o1.reward);
    let o2 = c.apply(&[]).unwrap();
    assert_eq!(o2.reward, reward(g + o1.reward));
    assert!(o2.reward < o1.reward);
    assert_eq!(c.snap().meta.emitted_supply, g + o1.reward + o2.reward);
    assert_eq!(c.native(&c.miner), o1.reward + o2.reward);
    // With nothing emitted at genesis: MAXIMUM_SUPPLY >> 20.
    let c0 = Chain::new(&[(pk(&alice()), &[(ASSET_B, 5)])]);
    assert_eq!(c0.apply(&[]).unwrap().reward, 17_547_607_421);
}

#[test]
fn s4_reward_is_credited_before_transactions_and_fees_after() {
    // The miner has nothing at genesis and spends its reward in its own block.
    let c = Chain::new(&[(pk(&alice()), &[(NATIVE_ASSET, 10 * COIN)])]);
    let miner_key = key(250);
    assert_eq!(pk(&miner_key), c.miner);
    let r = reward(10 * COIN);
    let fee = 15_000;
    let alice_tx = Tx::new(transfer(NATIVE_ASSET, dest(0), 1)).sign(&alice());
    // Spending reward + alice's fee would need the fees before step 4: it fails.
    let too_much = Tx::new(transfer(NATIVE_ASSET, dest(0), r - fee + 1)).sign(&miner_key);
    let exact = Tx::new(transfer(NATIVE_ASSET, dest(0), r - fee)).sign(&miner_key);
    let o = c.apply(&[alice_tx, too_much, exact]).unwrap();
    assert_eq!(o.reward, r);
    assert_eq!(codes(&o), vec!["ok", "insufficient_funds", "ok"]);
    assert_eq!(o.fees, 2 * fee);
    // The miner ends with the two fees (its own included).
    assert_eq!(c.native(&c.miner), 2 * fee);
}

#[test]
fn s4_reward_zero_at_maximum_supply_still_lists_miner() {
    let c = Chain::new(&[(pk(&alice()), &[(NATIVE_ASSET, MAXIMUM_SUPPLY)])]);
    let o = c.apply(&[]).unwrap();
    assert_eq!(o.reward, 0);
    let s = c.snap();
    assert_eq!(s.meta.emitted_supply, MAXIMUM_SUPPLY);
    assert_eq!(s.accounts[&c.miner].balances.get(&NATIVE_ASSET), Some(&0));
}

#[test]
fn s4_fees_credited_only_for_successful_native_fee_transactions() {
    let c = std_chain();
    assert_eq!(
        c.run(&[Tx::new(freeze(COIN, 3)).sign(&carol())]),
        vec!["insufficient_funds"]
    );
    assert_eq!(
        c.run(&[Tx::new(freeze(COIN, 3)).sign(&alice())]),
        vec!["ok"]
    );
    let miner = c.native(&c.miner);
    let ok_native = Tx::new(transfer(NATIVE_ASSET, dest(0), 1))
        .fee(123_456)
        .nonce(1)
        .sign(&alice());
    let failed_native = Tx::new(transfer(NATIVE_ASSET, dest(0), 1))
        .fee(777_777)
        .nonce(9)
        .sign(&bob());
    let ok_energy = Tx::new(transfer(NATIVE_ASSET, dest(0), 1))
        .energy()
        .nonce(2)
        .sign(&alice());
    let ok_native2 = Tx::new(burn(ASSET_B, 1)).fee(20_000).sign(&carol());
    let o = c
        .apply(&[ok_native, failed_native, ok_energy, ok_native2])
        .unwrap();
    assert_eq!(codes(&o), vec!["ok", "nonce_mismatch", "ok", "ok"]);
    assert_eq!(o.fees, 123_456 + 20_000);
    assert_eq!(c.native(&c.miner), miner + o.reward + 123_456 + 20_000);
    assert_eq!(
        c.native(&pk(&bob())),
        10 * COIN,
        "the failed fee is not taken"
    );
}

// =====================================================================
// SPEC §7: listing and dump
// =====================================================================

#[test]
fn s7_balances_at_0_stay_listed() {
    let c = std_chain();
    let k = pk(&carol());
    let t = Tx::new(Payload::Transfers(vec![
        out(NATIVE_ASSET, dest(0), 1_000_000 - 20_000),
        out(ASSET_B, dest(0), 100),
    ]))
    .sign(&carol());
    assert_eq!(t.fee, 20_000);
    assert_eq!(c.run(&[t]), vec!["ok"]);
    c.empty_blocks(2);
    let s = c.snap();
    let acc = &s.accounts[&k];
    assert_eq!(acc.balances.get(&NATIVE_ASSET), Some(&0));
    assert_eq!(acc.balances.get(&ASSET_B), Some(&0));
    assert_eq!(acc.nonce, 1);
    let dump = state_json(&s);
    assert_eq!(
        dump["accounts"][k.to_hex()]["balances"],
        json!({ NATIVE_ASSET.to_hex(): 0, ASSET_B.to_hex(): 0 })
    );
}

#[test]
fn s7_account_listing_rules() {
    // A genesis entry with no balance is listed.
    let empty = pk(&key(40));
    let c = Chain::new(&[(pk(&alice()), &[(NATIVE_ASSET, 10 * COIN)]), (empty, &[])]);
    let s = c.snap();
    assert_eq!(s.accounts[&empty], tos_parallel::AccountSnapshot::default());
    assert!(!s.accounts.contains_key(&c.miner), "no block yet");
    // A credit of 0 lists the destination; an untouched key is not listed;
    // the miner is listed by its reward; an account that only received B
    // has only a B balance.
    let zero = pk(&key(41));
    let only_b = pk(&key(42));
    let o = c
        .apply(&[
            Tx::new(transfer(NATIVE_ASSET, zero, 0)).sign(&alice()),
            Tx::new(transfer(ASSET_B, only_b, 0))
                .nonce(1)
                .sign(&alice()),
        ])
        .unwrap();
    assert_eq!(codes(&o), vec!["ok", "ok"]);
    let s = c.snap();
    let listed_zero = &s.accounts[&zero];
    assert_eq!(listed_zero.nonce, 0);
    assert_eq!(
        listed_zero.balances.iter().collect::<Vec<_>>(),
        vec![(&NATIVE_ASSET, &0)]
    );
    assert_eq!(listed_zero.multisig, None);
    assert_eq!(listed_zero.energy, EnergyState::default());
    assert_eq!(
        s.accounts[&only_b].balances.iter().collect::<Vec<_>>(),
        vec![(&ASSET_B, &0)]
    );
    assert!(!s.accounts.contains_key(&pk(&key(43))));
    assert!(s.accounts.contains_key(&c.miner));
    assert_eq!(s.accounts.len(), 5);
}

#[test]
fn s7_dump_json_shape() {
    let c = Chain::with_blocks_per_day(
        10,
        &[
            (pk(&alice()), &[(NATIVE_ASSET, 100 * COIN), (ASSET_B, 50)]),
            (pk(&bob()), &[(NATIVE_ASSET, 10 * COIN)]),
        ],
    );
    let (a, b, p0, fresh) = (pk(&alice()), pk(&bob()), part(0), pk(&key(60)));
    let t0 = Tx::new(multisig_set(1, &[pk(&p0)])).sign(&alice());
    let t1 = Tx::new(freeze(2 * COIN, 3))
        .nonce(1)
        .sign_multi(&alice(), &[(0, &p0)]);
    let t2 = Tx::new(transfer(ASSET_B, fresh, 0))
        .nonce(2)
        .sign_multi(&alice(), &[(0, &p0)]);
    let t3 = Tx::new(burn(NATIVE_ASSET, COIN)).sign(&bob());
    let t4 = Tx::new(burn(NATIVE_ASSET, COIN)).nonce(5).sign(&bob());
    let o = c
        .apply(&[t0.clone(), t1.clone(), t2.clone(), t3.clone(), t4.clone()])
        .unwrap();
    assert_eq!(codes(&o), vec!["ok", "ok", "ok", "ok", "nonce_mismatch"]);
    let r = reward(110 * COIN);
    let fees = t0.fee + t1.fee + t2.fee + t3.fee;
    let dump = state_json(&c.snap());
    let default_energy = json!({"available": 0, "frozen": 0, "records": []});
    let mut expected = json!({
        "topoheight": 1,
        "emitted_supply": 110 * COIN + r,
        "burned_supply": COIN,
        "accounts": {
            a.to_hex(): {
                "nonce": 3,
                "balances": {
                    NATIVE_ASSET.to_hex(): 100 * COIN - 2 * COIN - t0.fee - t1.fee - t2.fee,
                    ASSET_B.to_hex(): 50,
                },
                "multisig": {"threshold": 1, "participants": [pk(&p0).to_hex()]},
                "energy": {
                    "available": 12,
                    "frozen": 2 * COIN,
                    "records": [{"amount": 2 * COIN, "energy": 12, "unlock_topoheight": 31}],
                },
            },
            b.to_hex(): {
                "nonce": 1,
                "balances": {NATIVE_ASSET.to_hex(): 9 * COIN - t3.fee},
                "multisig": null,
                "energy": default_energy.clone(),
            },
            fresh.to_hex(): {
                "nonce": 0,
                "balances": {ASSET_B.to_hex(): 0},
                "multisig": null,
                "energy": default_energy.clone(),
            },
            c.miner.to_hex(): {
                "nonce": 0,
                "balances": {NATIVE_ASSET.to_hex(): r + fees},
                "multisig": null,
                "energy": default_energy.clone(),
            },
        },
    });
    // SPEC v2: no contract yet.
    expected["contracts"] = json!({});
    assert_eq!(dump, expected);
    // Keys are lowercase hex, sorted.
    let text = serde_json::to_string(&dump).unwrap();
    let keys: Vec<&String> = dump["accounts"].as_object().unwrap().keys().collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    let positions: Vec<usize> = keys
        .iter()
        .map(|k| text.find(k.as_str()).unwrap())
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "sorted in the text"
    );
    for k in &keys {
        assert_eq!(k.len(), 64);
        assert!(k
            .chars()
            .all(|ch| ch.is_ascii_digit() || ('a'..='f').contains(&ch)));
    }
    let top_keys: Vec<&String> = dump.as_object().unwrap().keys().collect();
    assert_eq!(
        top_keys,
        vec![
            "accounts",
            "burned_supply",
            "contracts",
            "emitted_supply",
            "topoheight"
        ]
    );

    // The results line of the same block.
    let line = results_line(&o);
    assert!(!line.contains('\n'));
    let parsed: Value = serde_json::from_str(&line).unwrap();
    let hash = |t: &Transaction| hex::encode(blake3::hash(&t.encode()).as_bytes());
    assert_eq!(
        parsed,
        json!({
            "topoheight": 1,
            "reward": r,
            "fees": fees,
            "burned": COIN,
            "results": [
                {"tx": hash(&t0), "status": "ok"},
                {"tx": hash(&t1), "status": "ok"},
                {"tx": hash(&t2), "status": "ok"},
                {"tx": hash(&t3), "status": "ok"},
                {"tx": hash(&t4), "status": "nonce_mismatch"},
            ],
        })
    );
}

// =====================================================================
// SPEC §3: genesis and blocks
// =====================================================================

fn genesis_json(accounts: &[(PublicKey, &[(tos_parallel::Asset, u64)])]) -> String {
    let list: Vec<Value> = accounts
        .iter()
        .map(|(k, b)| {
            let balances: serde_json::Map<String, Value> =
                b.iter().map(|(a, v)| (a.to_hex(), json!(v))).collect();
            json!({"key": k.to_hex(), "balances": balances})
        })
        .collect();
    json!({ "accounts": list }).to_string()
}

fn assert_genesis_rejected(text: &str) {
    match Genesis::from_json(text, "test") {
        Err(InputError::Genesis(_)) => {}
        other => panic!("expected a genesis rejection, got {other:?}"),
    }
}

#[test]
fn s3_genesis_defaults() {
    let g =
        Genesis::from_json(&genesis_json(&[(pk(&alice()), &[(NATIVE_ASSET, 5)])]), "t").unwrap();
    assert_eq!(g.blocks_per_day, 86_400);
    assert_eq!(g.accounts[0].nonce, 0);
    assert_eq!(g.accounts[0].balances[&NATIVE_ASSET], 5);
    let mut storage = MemoryStorage::new();
    init_genesis(&mut storage, &g).unwrap();
    let s = storage.snapshot(0).unwrap();
    assert_eq!((s.meta.emitted_supply, s.meta.burned_supply), (5, 0));
    assert_eq!(
        storage.chain_params().unwrap().unwrap().blocks_per_day,
        86_400
    );
}

#[test]
fn s3_genesis_rejects_repeated_key() {
    let a = pk(&alice());
    assert_genesis_rejected(&genesis_json(&[
        (a, &[(NATIVE_ASSET, 1)]),
        (a, &[(ASSET_B, 1)]),
    ]));
    let g = genesis(1, &[(a, &[]), (pk(&bob()), &[]), (a, &[])]);
    assert!(matches!(g.validate(), Err(InputError::Genesis(_))));
}

#[test]
fn s3_genesis_rejects_native_total_over_maximum_supply() {
    let (a, b) = (pk(&alice()), pk(&bob()));
    let half = MAXIMUM_SUPPLY / 2;
    assert_genesis_rejected(&genesis_json(&[
        (a, &[(NATIVE_ASSET, half)]),
        (b, &[(NATIVE_ASSET, MAXIMUM_SUPPLY - half + 1)]),
    ]));
    assert_genesis_rejected(&genesis_json(&[(a, &[(NATIVE_ASSET, u64::MAX)])]));
    // Native totals that overflow u64 are rejected too.
    assert_genesis_rejected(&genesis_json(&[
        (a, &[(NATIVE_ASSET, u64::MAX)]),
        (b, &[(NATIVE_ASSET, 1)]),
    ]));
    // Exactly MAXIMUM_SUPPLY is accepted.
    let ok = genesis_json(&[
        (a, &[(NATIVE_ASSET, half)]),
        (b, &[(NATIVE_ASSET, MAXIMUM_SUPPLY - half)]),
    ]);
    assert!(Genesis::from_json(&ok, "t").is_ok());
}

#[test]
fn s3_genesis_rejects_asset_total_overflow() {
    let (a, b) = (pk(&alice()), pk(&bob()));
    assert_genesis_rejected(&genesis_json(&[
        (a, &[(ASSET_B, u64::MAX)]),
        (b, &[(ASSET_B, 1)]),
    ]));
    assert_genesis_rejected(&genesis_json(&[
        (a, &[(ASSET_B, u64::MAX / 2 + 1)]),
        (b, &[(ASSET_B, u64::MAX / 2 + 1)]),
    ]));
    // Exactly u64::MAX in total, and u64::MAX in each of two assets, are fine.
    let ok = genesis_json(&[
        (a, &[(ASSET_B, u64::MAX - 1), (ASSET_C, u64::MAX)]),
        (b, &[(ASSET_B, 1)]),
    ]);
    let g = Genesis::from_json(&ok, "t").unwrap();
    assert_eq!(g.accounts[0].balances[&ASSET_C], u64::MAX);
    let c = Chain::from_genesis(&g);
    assert_eq!(c.balance(&a, &ASSET_B), u64::MAX - 1);
    assert_eq!(c.snap().meta.emitted_supply, 0);
}

#[test]
fn s3_init_genesis_rejects_invalid_genesis_value() {
    // A `Genesis` built in code (not parsed) is validated by `init_genesis`
    // too, and nothing is written.
    let (a, b) = (pk(&alice()), pk(&bob()));
    let invalid = [
        genesis(1, &[(a, &[(NATIVE_ASSET, 1)]), (a, &[(NATIVE_ASSET, 2)])]),
        genesis(1, &[(a, &[(NATIVE_ASSET, MAXIMUM_SUPPLY + 1)])]),
        genesis(1, &[(a, &[(ASSET_B, u64::MAX)]), (b, &[(ASSET_B, 1)])]),
    ];
    for g in invalid {
        let mut storage = MemoryStorage::new();
        match init_genesis(&mut storage, &g) {
            Err(InitError::InvalidGenesis(_)) => {}
            other => panic!("expected InvalidGenesis, got {other:?}"),
        }
        assert_eq!(storage.top_topoheight().unwrap(), None, "nothing written");
        assert_eq!(storage.chain_params().unwrap(), None);
    }
}

fn block_hash(topoheight: u64, miner: &PublicKey, txs: &[Vec<u8>]) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(&topoheight.to_be_bytes());
    h.update(&miner.0);
    h.update(&(txs.len() as u32).to_be_bytes());
    for t in txs {
        h.update(blake3::hash(t).as_bytes());
    }
    Hash(*h.finalize().as_bytes())
}

#[test]
fn s3_block_topoheight_rules() {
    let c = std_chain();
    let tx = Tx::new(transfer(NATIVE_ASSET, dest(0), 1))
        .sign(&alice())
        .encode();
    let genesis_snap = c.snap();
    // A gap: the next topoheight is 1.
    match c.add(&Block::new(Some(2), c.miner, vec![tx.clone()])) {
        Err(BlockError::TopoheightGap { next, got }) => assert_eq!((next, got), (1, 2)),
        other => panic!("{other:?}"),
    }
    assert_eq!(c.snap(), genesis_snap);
    // At the next topoheight: applied, with the SPEC block hash.
    let block = Block::new(Some(1), c.miner, vec![tx.clone()]);
    let o = c.add(&block).unwrap();
    let h1 = block_hash(1, &c.miner, std::slice::from_ref(&tx));
    assert_eq!(o.hash, h1);
    assert_eq!(c.chain.storage().block_meta(1).unwrap().unwrap().hash, h1);
    let after_1 = c.snap();
    // The same block again: already applied, nothing written.
    match c.add(&block) {
        Err(BlockError::AlreadyApplied { topoheight }) => assert_eq!(topoheight, 1),
        other => panic!("{other:?}"),
    }
    assert_eq!(c.top(), 1);
    assert_eq!(c.snap(), after_1);
    // A different block at an applied topoheight: an error naming the stored hash.
    for other_block in [
        Block::new(Some(1), c.miner, vec![]),
        Block::new(Some(1), dest(3), vec![tx.clone()]),
    ] {
        match c.add(&other_block) {
            Err(BlockError::ConflictingBlock { topoheight, stored }) => {
                assert_eq!((topoheight, stored), (1, h1))
            }
            other => panic!("{other:?}"),
        }
    }
    // Topoheight 0 is genesis, never a block.
    assert!(matches!(
        c.add(&Block::new(Some(0), c.miner, vec![])),
        Err(BlockError::ConflictingBlock { topoheight: 0, .. })
    ));
    assert_eq!(c.snap(), after_1);
    // Without a topoheight, the block goes on top; its hash uses the produced topoheight.
    let o2 = c.add(&Block::new(None, c.miner, vec![])).unwrap();
    assert_eq!(o2.topoheight, 2);
    assert_eq!(o2.hash, block_hash(2, &c.miner, &[]));
    // A block applied without a topoheight is recognised when replayed with it.
    match c.add(&Block::new(Some(2), c.miner, vec![])) {
        Err(BlockError::AlreadyApplied { topoheight }) => assert_eq!(topoheight, 2),
        other => panic!("{other:?}"),
    }
    assert_eq!(c.top(), 2);
}

/// SPEC §6 reading (pinned here, stated in the issue note): "each asset
/// balance -= its spending" writes every asset of the spending map, so a
/// transfer of 0 in an asset the sender never held creates the sender's
/// balance entry at 0 (like a credit of 0 creates the receiver's, SPEC §7).
#[test]
fn zero_spend_in_an_unheld_asset_creates_the_senders_entry() {
    let (a, b) = (key(1), key(2));
    let other = Hash([0x42; 32]);
    let c = Chain::new(&[(pk(&a), &[(NATIVE_ASSET, 10 * COIN)])]);
    let tx = Tx::new(transfer(other, pk(&b), 0)).sign(&a);
    assert_eq!(c.run(&[tx]), vec!["ok"]);
    let snap = c.snap();
    assert_eq!(snap.accounts[&pk(&a)].balances.get(&other), Some(&0));
    assert_eq!(snap.accounts[&pk(&b)].balances.get(&other), Some(&0));
}
