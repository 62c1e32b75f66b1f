//! SPEC §2 wire format: the shared test vectors, round trips of every payload
//! kind (and of random transactions), and every way an encoding can be
//! malformed, each with its `DecodeError` and the `malformed` code of SPEC §5.

mod common;

use std::path::PathBuf;

use common::*;
use ed25519_dalek::SigningKey;
use proptest::prelude::*;
use serde_json::Value;
use tos_parallel::chain::transaction::{
    EnergyPayload, FeeType, MultiSigProof, MultiSigSignature, Payload, Transaction, TransferOutput,
    UnsignedTransaction,
};
use tos_parallel::{DecodeError, Hash, PublicKey, StatelessError, NATIVE_ASSET};

// ---------------------------------------------------------------- vectors

fn vectors() -> Vec<Value> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/vectors/transactions.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read the SPEC test vectors at {}: {e}. They are required: \
             restore shared/vectors/transactions.json next to the crate",
            path.display()
        )
    });
    let v: Value = serde_json::from_str(&text).expect("transactions.json is valid JSON");
    let list = v
        .as_array()
        .expect("transactions.json is a JSON array")
        .clone();
    assert!(!list.is_empty(), "transactions.json holds no vector");
    list
}

fn hex_field(v: &Value, name: &str) -> Vec<u8> {
    hex::decode(
        v[name]
            .as_str()
            .unwrap_or_else(|| panic!("field {name} missing")),
    )
    .unwrap_or_else(|e| panic!("field {name}: bad hex: {e}"))
}

fn signing_key(hex_seed: &str) -> SigningKey {
    let seed: [u8; 32] = hex::decode(hex_seed)
        .expect("secret key hex")
        .try_into()
        .expect("secret key is 32 bytes");
    SigningKey::from_bytes(&seed)
}

#[test]
fn vectors_decode_resign_hash_size_and_stateless_result() {
    let vectors = vectors();
    for v in &vectors {
        let name = v["description"].as_str().unwrap_or("?");
        let tx_bytes = hex_field(v, "tx");
        let signing = hex_field(v, "signing_bytes");
        let (tx, signing_len) =
            Transaction::decode(&tx_bytes).unwrap_or_else(|e| panic!("{name}: decode: {e}"));

        // Signing bytes: the prefix through reference_topoheight.
        assert_eq!(signing_len, signing.len(), "{name}: signing length");
        assert_eq!(tx.signing_bytes(), signing, "{name}: signing bytes");
        assert_eq!(&tx_bytes[..signing_len], &signing[..], "{name}: prefix");

        // Hash and size.
        assert_eq!(
            hex::encode(blake3::hash(&tx_bytes).as_bytes()),
            v["hash"].as_str().unwrap(),
            "{name}: hash"
        );
        assert_eq!(
            tx_bytes.len() as u64,
            v["size"].as_u64().unwrap(),
            "{name}: size"
        );

        // The key in the vector is the source.
        let sk = signing_key(v["secret_key"].as_str().unwrap());
        assert_eq!(pk(&sk), tx.source, "{name}: source");
        assert_eq!(hex::encode(tx.source.0), v["public_key"].as_str().unwrap());

        // Re-signing reproduces the encoding byte for byte (Ed25519 is deterministic).
        let signers: Vec<(u8, SigningKey)> = v["multisig_signers"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|s| {
                        (
                            s["id"].as_u64().unwrap() as u8,
                            signing_key(s["secret_key"].as_str().unwrap()),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let signer_refs: Vec<(u8, &SigningKey)> = signers.iter().map(|(i, k)| (*i, k)).collect();
        let resigned = UnsignedTransaction {
            payload: tx.payload.clone(),
            fee: tx.fee,
            fee_type: tx.fee_type,
            nonce: tx.nonce,
            reference_hash: tx.reference_hash,
            reference_topoheight: tx.reference_topoheight,
        }
        .sign(&sk, &signer_refs);
        assert_eq!(
            hex::encode(resigned.encode()),
            hex::encode(&tx_bytes),
            "{name}: re-signed encoding"
        );
        assert_eq!(resigned, tx, "{name}: re-signed transaction");
        assert_eq!(tx.encode(), tx_bytes, "{name}: re-encoding");

        // Stateless result against the vector's parent topoheight.
        let parent = v["parent_topoheight"].as_u64().unwrap();
        let expected = v["stateless"].as_str().unwrap();
        match stateless_bytes(&tx_bytes, parent) {
            Ok(vtx) => {
                assert_eq!(expected, "ok", "{name}: stateless");
                assert_eq!(hex::encode(vtx.hash.0), v["hash"].as_str().unwrap());
                assert_eq!(vtx.size, tx_bytes.len());
                assert_eq!(vtx.tx, tx);
            }
            Err(e) => assert_eq!(e.code(), expected, "{name}: stateless ({e})"),
        }
    }
    // The file covers both accepted and rejected transactions.
    assert!(vectors.iter().any(|v| v["stateless"] == "ok"));
    assert!(vectors.iter().any(|v| v["stateless"] != "ok"));
}

// ------------------------------------------------------------ round trips

/// SPEC §2 size of everything but the payload and the proof:
/// version 1 + source 32 + fee 8 + fee_type 1 + nonce 8 + reference 32 + 8
/// + option flag 1 + signature 64.
const BASE_SIZE: usize = 155;

fn proof_size(sigs: usize) -> usize {
    if sigs == 0 {
        0
    } else {
        1 + 65 * sigs
    }
}

/// Decodes, re-encodes and checks the layout size; returns the decoded transaction.
fn round_trip(tx: &Transaction, payload_size: usize) -> Transaction {
    let bytes = tx.encode();
    let sigs = tx.multisig.as_ref().map_or(0, |p| p.signatures.len());
    assert_eq!(
        bytes.len(),
        BASE_SIZE + payload_size + proof_size(sigs),
        "size"
    );
    let (decoded, signing_len) = Transaction::decode(&bytes).expect("decodes");
    assert_eq!(&decoded, tx);
    assert_eq!(signing_len, tx.signing_bytes().len());
    assert_eq!(signing_len, bytes.len() - 1 - proof_size(sigs) - 64);
    assert_eq!(&bytes[..signing_len], &tx.signing_bytes()[..]);
    assert_eq!(decoded.encode(), bytes);
    decoded
}

fn a() -> SigningKey {
    key(1)
}

fn dest(i: u8) -> PublicKey {
    pk(&key(100 + i))
}

#[test]
fn round_trip_burn() {
    let tx = Tx::new(burn(ASSET_B, 42)).nonce(7).reference(3).sign(&a());
    let d = round_trip(&tx, 1 + 32 + 8);
    assert_eq!(
        d.payload,
        Payload::Burn {
            asset: ASSET_B,
            amount: 42
        }
    );
    let bytes = tx.encode();
    assert_eq!(bytes[33], 0, "burn tag");
    assert_eq!(&bytes[34..66], &ASSET_B.0);
    assert_eq!(&bytes[66..74], &42u64.to_be_bytes());
    assert!(stateless(&tx, 3).is_ok());
}

#[test]
fn round_trip_transfer_without_extra_data() {
    let tx = Tx::new(transfer(NATIVE_ASSET, dest(0), 5 * COIN)).sign(&a());
    round_trip(&tx, 2 + 73);
    let bytes = tx.encode();
    assert_eq!(&bytes[33..35], &[1, 1], "tag and count");
    assert_eq!(bytes[35 + 72], 0, "extra_data none flag");
    assert!(stateless(&tx, 0).is_ok());
}

#[test]
fn round_trip_transfers_with_extra_data() {
    let outs = vec![
        TransferOutput {
            extra_data: Some(vec![1, 2, 3]),
            ..out(NATIVE_ASSET, dest(0), 1)
        },
        out(ASSET_B, dest(1), 2),
        TransferOutput {
            extra_data: Some(vec![]),
            ..out(ASSET_C, dest(2), 3)
        },
        TransferOutput {
            extra_data: Some(vec![0xee; 128]),
            ..out(NATIVE_ASSET, dest(3), 4)
        },
    ];
    let tx = Tx::new(Payload::Transfers(outs)).sign(&a());
    let payload_size = 2 + 4 * 73 + (2 + 3) + (2 + 128);
    let payload_size = payload_size + 2; // the empty Some(()) still carries its length
    round_trip(&tx, payload_size);
    // The empty extra data stays Some(empty), distinct from None.
    let bytes = tx.encode();
    let first_flag = 35 + 72;
    assert_eq!(&bytes[first_flag..first_flag + 6], &[1, 0, 3, 1, 2, 3]);
    assert!(stateless(&tx, 0).is_ok());
}

#[test]
fn round_trip_255_outputs() {
    let outs: Vec<TransferOutput> = (0..255u32)
        .map(|i| TransferOutput {
            asset: if i % 2 == 0 { NATIVE_ASSET } else { ASSET_B },
            destination: PublicKey([(i % 250) as u8 + 3; 32]),
            amount: i as u64,
            extra_data: (i % 17 == 0).then(|| vec![i as u8; 16]),
        })
        .collect();
    let extra = (0..255u32).filter(|i| i % 17 == 0).count() * (2 + 16);
    let tx = Tx::new(Payload::Transfers(outs)).sign(&a());
    let d = round_trip(&tx, 2 + 255 * 73 + extra);
    assert_eq!(tx.encode()[34], 255, "count byte");
    match d.payload {
        Payload::Transfers(o) => assert_eq!(o.len(), 255),
        other => panic!("{other:?}"),
    }
    assert!(stateless(&tx, 0).is_ok());
}

#[test]
fn round_trip_multisig_set_and_delete() {
    let parts = [dest(0), dest(1), dest(2)];
    let set = Tx::new(multisig_set(2, &parts)).sign(&a());
    let d = round_trip(&set, 3 + 3 * 32);
    assert_eq!(
        d.payload,
        Payload::MultiSig {
            threshold: 2,
            participants: parts.to_vec()
        }
    );
    assert_eq!(&set.encode()[33..36], &[2, 2, 3]);
    assert!(stateless(&set, 0).is_ok());

    let del = Tx::new(multisig_delete()).nonce(1).sign(&a());
    round_trip(&del, 2);
    // Delete has no count byte: the fee follows the threshold directly.
    let bytes = del.encode();
    assert_eq!(&bytes[33..35], &[2, 0]);
    assert_eq!(&bytes[35..43], &del.fee.to_be_bytes());
    assert!(stateless(&del, 0).is_ok());
}

#[test]
fn round_trip_freeze_and_unfreeze() {
    let fr = Tx::new(freeze(3 * COIN, 7)).sign(&a());
    round_trip(&fr, 1 + 1 + 8 + 4);
    let bytes = fr.encode();
    assert_eq!(&bytes[33..35], &[5, 0]);
    assert_eq!(&bytes[35..43], &(3 * COIN).to_be_bytes());
    assert_eq!(&bytes[43..47], &7u32.to_be_bytes());
    assert!(stateless(&fr, 0).is_ok());

    let un = Tx::new(unfreeze(COIN)).sign(&a());
    round_trip(&un, 1 + 1 + 8);
    assert_eq!(&un.encode()[33..35], &[5, 1]);
    assert!(stateless(&un, 0).is_ok());
}

#[test]
fn round_trip_energy_fee() {
    let tx = Tx::new(transfer(NATIVE_ASSET, dest(0), 1))
        .energy()
        .sign(&a());
    let d = round_trip(&tx, 2 + 73);
    assert_eq!(d.fee_type, FeeType::Energy);
    assert_eq!(d.fee, 0);
    let bytes = tx.encode();
    let fee_type_at = tx.signing_bytes().len() - 8 - 32 - 8 - 1;
    assert_eq!(bytes[fee_type_at], 1);
    assert!(stateless(&tx, 0).is_ok());
}

#[test]
fn round_trip_with_multisig_proof() {
    let (p0, p1, p2) = (key(10), key(11), key(12));
    let tx =
        Tx::new(transfer(ASSET_B, dest(0), 9)).sign_multi(&a(), &[(2, &p2), (0, &p0), (1, &p1)]);
    let d = round_trip(&tx, 2 + 73);
    let proof = d.multisig.expect("proof");
    assert_eq!(
        proof.signatures.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![2, 0, 1],
        "encoding order kept"
    );
    // Each proof signature is over blake3(signing bytes).
    let digest = blake3::hash(&tx.signing_bytes());
    for (s, k) in proof.signatures.iter().zip([&p2, &p0, &p1]) {
        assert!(k
            .verifying_key()
            .verify_strict(
                digest.as_bytes(),
                &ed25519_dalek::Signature::from_bytes(&s.signature)
            )
            .is_ok());
    }
    let bytes = tx.encode();
    let at = tx.signing_bytes().len();
    assert_eq!(&bytes[at..at + 3], &[1, 3, 2], "flag, count, first id");
    // The fee pays for the three signatures.
    assert_eq!(tx.fee, 10_000 + 5_000 + 3 * 5_000);
    assert!(stateless(&tx, 0).is_ok());
}

fn arb_bytes32() -> impl Strategy<Value = [u8; 32]> {
    prop::array::uniform32(any::<u8>())
}

fn arb_output() -> impl Strategy<Value = TransferOutput> {
    (
        arb_bytes32(),
        arb_bytes32(),
        any::<u64>(),
        prop::option::of(prop::collection::vec(any::<u8>(), 0..300)),
    )
        .prop_map(|(asset, d, amount, extra_data)| TransferOutput {
            asset: Hash(asset),
            destination: PublicKey(d),
            amount,
            extra_data,
        })
}

fn arb_payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        (arb_bytes32(), any::<u64>()).prop_map(|(a, amount)| Payload::Burn {
            asset: Hash(a),
            amount
        }),
        prop::collection::vec(arb_output(), 1..=255).prop_map(Payload::Transfers),
        Just(multisig_delete()),
        (1u8..=255, prop::collection::vec(arb_bytes32(), 0..=255)).prop_map(|(t, p)| {
            Payload::MultiSig {
                threshold: t,
                participants: p.into_iter().map(PublicKey).collect(),
            }
        }),
        (any::<u64>(), any::<u32>())
            .prop_map(|(amount, days)| Payload::Energy(EnergyPayload::FreezeTos { amount, days })),
        any::<u64>().prop_map(|amount| Payload::Energy(EnergyPayload::UnfreezeTos { amount })),
    ]
}

fn arb_sig() -> impl Strategy<Value = [u8; 64]> {
    prop::collection::vec(any::<u8>(), 64).prop_map(|v| v.try_into().unwrap())
}

fn arb_tx() -> impl Strategy<Value = Transaction> {
    (
        arb_bytes32(),
        arb_payload(),
        any::<u64>(),
        any::<bool>(),
        any::<u64>(),
        arb_bytes32(),
        any::<u64>(),
        prop::option::of(prop::collection::vec((any::<u8>(), arb_sig()), 1..=255)),
        arb_sig(),
    )
        .prop_map(
            |(source, payload, fee, energy, nonce, rh, rt, proof, signature)| Transaction {
                version: 0,
                source: PublicKey(source),
                payload,
                fee,
                fee_type: if energy {
                    FeeType::Energy
                } else {
                    FeeType::Native
                },
                nonce,
                reference_hash: Hash(rh),
                reference_topoheight: rt,
                multisig: proof.map(|s| MultiSigProof {
                    signatures: s
                        .into_iter()
                        .map(|(id, signature)| MultiSigSignature { id, signature })
                        .collect(),
                }),
                signature,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn round_trip_random_transactions(tx in arb_tx()) {
        let bytes = tx.encode();
        let (decoded, signing_len) = Transaction::decode(&bytes).expect("decodes");
        prop_assert_eq!(&decoded, &tx);
        prop_assert_eq!(signing_len, tx.signing_bytes().len());
        prop_assert_eq!(decoded.encode(), bytes.clone());
        // One byte more is always rejected, one byte less always.
        let mut longer = bytes.clone();
        longer.push(0);
        prop_assert_eq!(
            Transaction::decode(&longer).unwrap_err(),
            DecodeError::TrailingBytes { extra: 1 }
        );
        let is_truncated = matches!(
            Transaction::decode(&bytes[..bytes.len() - 1]),
            Err(DecodeError::Truncated { .. })
        );
        prop_assert!(is_truncated);
    }
}

// --------------------------------------------------------------- malformed

/// One valid signed transaction of every shape.
fn valid_samples() -> Vec<(&'static str, Transaction)> {
    let (p0, p1) = (key(10), key(11));
    vec![
        ("burn", Tx::new(burn(NATIVE_ASSET, 5)).sign(&a())),
        (
            "transfers+extra",
            Tx::new(Payload::Transfers(vec![
                out(NATIVE_ASSET, dest(0), 1),
                TransferOutput {
                    extra_data: Some(vec![9; 5]),
                    ..out(ASSET_B, dest(1), 2)
                },
            ]))
            .sign(&a()),
        ),
        (
            "multisig set",
            Tx::new(multisig_set(1, &[dest(0), dest(1)])).sign(&a()),
        ),
        ("multisig delete", Tx::new(multisig_delete()).sign(&a())),
        ("freeze", Tx::new(freeze(COIN, 3)).sign(&a())),
        ("unfreeze", Tx::new(unfreeze(COIN)).sign(&a())),
        (
            "energy fee",
            Tx::new(transfer(NATIVE_ASSET, dest(0), 1))
                .energy()
                .sign(&a()),
        ),
        (
            "with proof",
            Tx::new(transfer(NATIVE_ASSET, dest(0), 1)).sign_multi(&a(), &[(0, &p0), (1, &p1)]),
        ),
    ]
}

fn assert_malformed(bytes: &[u8], expected: DecodeError) {
    assert_eq!(Transaction::decode(bytes).unwrap_err(), expected);
    let err = stateless_bytes(bytes, u64::MAX).unwrap_err();
    assert_eq!(err.code(), "malformed");
    assert_eq!(err, StatelessError::Malformed(expected));
}

#[test]
fn samples_are_valid() {
    for (name, tx) in valid_samples() {
        assert!(stateless(&tx, 0).is_ok(), "{name}");
    }
}

#[test]
fn every_truncation_fails() {
    for (name, tx) in valid_samples() {
        let bytes = tx.encode();
        for n in 0..bytes.len() {
            match Transaction::decode(&bytes[..n]) {
                Err(DecodeError::Truncated { at }) => {
                    assert!(at <= n, "{name}: prefix {n}: truncated at {at}")
                }
                other => panic!("{name}: prefix of {n} bytes: {other:?}"),
            }
            let err = stateless_bytes(&bytes[..n], u64::MAX).unwrap_err();
            assert_eq!(err.code(), "malformed", "{name}: prefix {n}");
        }
        assert!(Transaction::decode(&bytes).is_ok(), "{name}: whole");
    }
}

#[test]
fn empty_input_is_truncated_at_zero() {
    assert_malformed(&[], DecodeError::Truncated { at: 0 });
}

#[test]
fn trailing_byte_fails() {
    for (name, tx) in valid_samples() {
        for extra in [0u8, 1, 0xff] {
            let mut bytes = tx.encode();
            bytes.push(extra);
            assert_eq!(
                Transaction::decode(&bytes).unwrap_err(),
                DecodeError::TrailingBytes { extra: 1 },
                "{name}"
            );
            assert_eq!(stateless_bytes(&bytes, 0).unwrap_err().code(), "malformed");
        }
        let mut bytes = tx.encode();
        bytes.extend_from_slice(&[0; 64]);
        assert_malformed(&bytes, DecodeError::TrailingBytes { extra: 64 });
    }
}

#[test]
fn unknown_payload_tags_fail() {
    let bytes = Tx::new(burn(NATIVE_ASSET, 5)).sign(&a()).encode();
    // SPEC v2: 3 and 4 are contracts; 6 and every other tag are malformed.
    for tag in [6u8, 7, 128, 255] {
        let mut b = bytes.clone();
        b[33] = tag;
        assert_malformed(&b, DecodeError::UnknownPayloadTag(tag));
    }
}

#[test]
fn contract_payloads_round_trip_and_their_truncations_are_malformed() {
    let deploy_tx = Tx::new(deploy(&[0x60, 1, 0x00])).sign(&a());
    let invoke_tx = Tx::new(invoke(PublicKey([4; 32]), 9, 100, &[word(1), word(2)])).sign(&a());
    for tx in [deploy_tx, invoke_tx] {
        let bytes = tx.encode();
        assert_eq!(Transaction::decode(&bytes).unwrap().0, tx);
        // Cut inside the payload: truncated.
        let cut = &bytes[..40];
        assert!(matches!(
            Transaction::decode(cut).unwrap_err(),
            DecodeError::Truncated { .. }
        ));
        assert_eq!(stateless_bytes(cut, 0).unwrap_err().code(), "malformed");
    }
    // A deploy whose code_len runs past the end: truncated, never a panic.
    let mut b = Tx::new(deploy(&[0x00])).sign(&a()).encode();
    b[34] = 0xFF;
    b[35] = 0xFF;
    assert!(matches!(
        Transaction::decode(&b).unwrap_err(),
        DecodeError::Truncated { .. }
    ));
}

#[test]
fn unknown_energy_sub_tag_fails() {
    let bytes = Tx::new(unfreeze(COIN)).sign(&a()).encode();
    assert_eq!(bytes[34], 1);
    for sub in [2u8, 3, 255] {
        let mut b = bytes.clone();
        b[34] = sub;
        assert_malformed(&b, DecodeError::UnknownEnergyTag(sub));
    }
}

#[test]
fn fee_type_2_fails() {
    for (name, tx) in valid_samples() {
        let mut b = tx.encode();
        let at = tx.signing_bytes().len() - 8 - 32 - 8 - 1;
        assert!(b[at] <= 1, "{name}: fee_type byte located");
        for ft in [2u8, 255] {
            b[at] = ft;
            assert_malformed(&b, DecodeError::UnknownFeeType(ft));
        }
    }
}

#[test]
fn option_flag_2_in_extra_data_fails() {
    let tx = Tx::new(Payload::Transfers(vec![
        out(NATIVE_ASSET, dest(0), 1),
        TransferOutput {
            extra_data: Some(vec![7; 4]),
            ..out(NATIVE_ASSET, dest(1), 1)
        },
    ]))
    .sign(&a());
    let bytes = tx.encode();
    // First output's flag (none) and second output's flag (some).
    let first = 35 + 72;
    let second = first + 1 + 72;
    assert_eq!((bytes[first], bytes[second]), (0, 1));
    for at in [first, second] {
        for flag in [2u8, 255] {
            let mut b = bytes.clone();
            b[at] = flag;
            assert_malformed(&b, DecodeError::BadOptionFlag { at, flag });
        }
    }
}

#[test]
fn option_flag_2_for_multisig_proof_fails() {
    for (name, tx) in valid_samples() {
        let at = tx.signing_bytes().len();
        let mut b = tx.encode();
        assert!(b[at] <= 1, "{name}");
        b[at] = 2;
        assert_malformed(&b, DecodeError::BadOptionFlag { at, flag: 2 });
    }
}

#[test]
fn transfer_count_0_fails() {
    let tx = Tx::new(transfer(NATIVE_ASSET, dest(0), 1)).sign(&a());
    let mut b = tx.encode();
    assert_eq!(b[34], 1);
    b[34] = 0;
    assert_malformed(&b, DecodeError::NoTransfers);
    // Also with the output bytes removed (a count-0 list followed by the fee).
    let mut short = tx.encode();
    short.drain(34..35 + 73);
    short.insert(34, 0);
    assert_malformed(&short, DecodeError::NoTransfers);
}

#[test]
fn proof_count_0_fails() {
    let tx = Tx::new(burn(NATIVE_ASSET, 1)).sign(&a());
    let mut b = tx.signing_bytes();
    b.extend_from_slice(&[1, 0]);
    b.extend_from_slice(&tx.signature);
    assert_malformed(&b, DecodeError::EmptyMultisigProof);
}

#[test]
fn version_1_fails() {
    for (_, tx) in valid_samples() {
        for version in [1u8, 2, 255] {
            let mut b = tx.encode();
            b[0] = version;
            assert_malformed(&b, DecodeError::UnsupportedVersion(version));
        }
    }
    // A struct with version 1 encodes, but does not decode.
    let mut tx = Tx::new(burn(NATIVE_ASSET, 1)).sign(&a());
    tx.version = 1;
    assert_malformed(&tx.encode(), DecodeError::UnsupportedVersion(1));
}

#[test]
fn extra_data_length_past_the_end_is_truncated() {
    let tx = Tx::new(Payload::Transfers(vec![TransferOutput {
        extra_data: Some(vec![1, 2]),
        ..out(NATIVE_ASSET, dest(0), 1)
    }]))
    .sign(&a());
    let mut b = tx.encode();
    let len_at = 35 + 72 + 1;
    assert_eq!(&b[len_at..len_at + 2], &[0, 2]);
    b[len_at] = 0xff; // 65_282 bytes claimed, far fewer present
    assert_malformed(&b, DecodeError::Truncated { at: len_at + 2 });
}

#[test]
fn malformed_comes_before_every_other_check() {
    // A transaction failing other checks too (fee 0, future reference, bad
    // signature) still reports malformed when it does not decode.
    let mut tx = Tx::new(burn(NATIVE_ASSET, 0))
        .fee(0)
        .reference(99)
        .sign(&a());
    tx.signature = [0; 64];
    let mut b = tx.encode();
    b.push(0);
    assert_eq!(stateless_bytes(&b, 0).unwrap_err().code(), "malformed");
    b.pop();
    assert_eq!(
        stateless_bytes(&b, 0).unwrap_err().code(),
        "invalid_payload"
    );
}
