//! SPEC v2 (contracts): the shared vectors of `../shared/vectors/v2/`.
//!
//! * `transactions.json`: each DeployContract and InvokeContract encoding
//!   decodes, re-signs byte for byte, has its hash and size, and gets its
//!   stateless result.
//! * `blocks.jsonl` on `genesis.json`: exactly `expected_results.jsonl` and
//!   `expected_dump.json`, in every mode (sequential, parallel with the
//!   guards on and off, verify) at 1, 2, 4 and 8 threads. Blocks holding
//!   invocations (keys known only by running them) take the optimistic
//!   path with the guards off and in verify mode (asserted); with the
//!   guards on they run in order, and say why (`undeclared`, `one-thread`).
//! * `rejected_blocks.json`: each block, applied on the genesis, rejected
//!   with the index and code the vector names, in every mode.

use std::path::PathBuf;

use ed25519_dalek::{Signer, SigningKey};
use serde_json::Value;
use tos_parallel::chain::dump::{results_line, state_json};
use tos_parallel::chain::transaction::{Payload, Transaction};
use tos_parallel::chain::validation::check_stateless;
use tos_parallel::{
    init_genesis, Block, BlockError, Blockchain, ExecutionConfig, ExecutionMode, Genesis, Hash,
    MemoryStorage, PathReason,
};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/vectors/v2")
}

fn read(name: &str) -> String {
    let path = dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read the SPEC v2 vectors at {}: {e}. They are required: \
             restore shared/vectors/v2 next to the crate",
            path.display()
        )
    })
}

fn json(name: &str) -> Value {
    serde_json::from_str(&read(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn hex_of(v: &Value, field: &str) -> Vec<u8> {
    hex::decode(v[field].as_str().unwrap_or_else(|| panic!("no {field}"))).expect("hex")
}

#[test]
fn v2_transactions_decode_resign_and_check() {
    let list = json("transactions.json");
    let list = list.as_array().expect("an array");
    assert!(list.len() >= 9);
    for v in list {
        let what = v["description"].as_str().unwrap_or("?");
        let bytes = hex_of(v, "tx");
        let hash = Hash(*blake3::hash(&bytes).as_bytes());
        assert_eq!(hex::encode(hash.0), v["hash"].as_str().unwrap(), "{what}");
        assert_eq!(bytes.len() as u64, v["size"].as_u64().unwrap(), "{what}");
        let parent = v["parent_topoheight"].as_u64().unwrap();
        let got = match check_stateless(&bytes, hash, parent) {
            Ok(_) => "ok",
            Err(e) => e.code(),
        };
        assert_eq!(got, v["stateless"].as_str().unwrap(), "{what}");
        // Every v2 vector decodes (its failures are later checks).
        let (tx, signing_len) = Transaction::decode(&bytes).expect(what);
        assert!(matches!(
            tx.payload,
            Payload::DeployContract { .. } | Payload::InvokeContract { .. }
        ));
        assert_eq!(tx.encode(), bytes, "{what}: encode(decode(b)) == b");
        assert_eq!(
            &bytes[..signing_len],
            &hex_of(v, "signing_bytes")[..],
            "{what}"
        );
        let seed: [u8; 32] = hex_of(v, "secret_key").try_into().expect("32 bytes");
        let key = SigningKey::from_bytes(&seed);
        assert_eq!(
            key.sign(&bytes[..signing_len]).to_bytes(),
            tx.signature,
            "{what}"
        );
    }
}

fn genesis() -> Genesis {
    Genesis::from_json(&read("genesis.json"), "genesis.json").expect("genesis")
}

fn blocks(text: &str) -> Vec<Block> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| Block::from_json(l, "blocks.jsonl", i + 1).expect("block"))
        .collect()
}

/// Every executor a node can run: mode, threads, guards.
fn configs() -> Vec<(String, ExecutionConfig)> {
    let mut out = vec![(
        "sequential".to_string(),
        ExecutionConfig {
            mode: ExecutionMode::Sequential,
            ..ExecutionConfig::default()
        },
    )];
    for threads in [1, 2, 4, 8] {
        for (mode, guards) in [
            (ExecutionMode::Parallel, true),
            (ExecutionMode::Parallel, false),
            (ExecutionMode::Verify, true),
        ] {
            out.push((
                format!("{mode:?} threads={threads} guards={guards}"),
                ExecutionConfig {
                    mode,
                    threads,
                    guards,
                    min_txs_for_parallel: 0,
                    ..ExecutionConfig::default()
                },
            ));
        }
    }
    out
}

fn chain(config: ExecutionConfig) -> Blockchain<MemoryStorage> {
    let mut storage = MemoryStorage::new();
    init_genesis(&mut storage, &genesis()).expect("init");
    Blockchain::new(storage, config).expect("chain")
}

fn has_invocation(block: &Block) -> bool {
    block.txs().iter().any(|b| {
        Transaction::decode(b)
            .is_ok_and(|(tx, _)| matches!(tx.payload, Payload::InvokeContract { .. }))
    })
}

#[test]
fn v2_chain_replays_exactly_in_every_mode() {
    let blocks = blocks(&read("blocks.jsonl"));
    assert_eq!(blocks.len(), 2);
    let want_results: Vec<Value> = read("expected_results.jsonl")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("results line"))
        .collect();
    let want_dump = json("expected_dump.json");
    for (name, config) in configs() {
        let chain = chain(config);
        for (block, want) in blocks.iter().zip(&want_results) {
            let outcome = chain
                .add_new_block(block)
                .unwrap_or_else(|e| panic!("{name}: block refused: {e}"));
            let got: Value = serde_json::from_str(&results_line(&outcome)).unwrap();
            assert_eq!(
                &got, want,
                "{name}: results of block {}",
                outcome.topoheight
            );
            let stats = &outcome.stats;
            // Verify mode's parallel side runs unguarded: the optimistic
            // path. With the guards on, an open block runs in order.
            let engine_expected = match config.mode {
                ExecutionMode::Sequential => false,
                ExecutionMode::Verify => true,
                _ => !config.guards,
            };
            assert!(has_invocation(block));
            assert_eq!(stats.parallel_engine, engine_expected, "{name}: {stats:?}");
            if engine_expected && has_invocation(block) {
                // Every transaction speculated, unless the abort bound
                // (a chunk mostly re-executed) ran the rest in order.
                assert!(stats.optimistic > 0, "{name}: {stats:?}");
                assert_eq!(
                    stats.optimistic == block.txs().len(),
                    stats.reason != PathReason::Aborts,
                    "{name}: {stats:?}"
                );
            }
            if !engine_expected && config.mode == ExecutionMode::Parallel {
                let why = if config.threads == 1 {
                    PathReason::OneThread
                } else {
                    PathReason::Undeclared
                };
                assert_eq!(stats.reason, why, "{name}");
            }
            assert_eq!(stats.mismatches, 0, "{name}");
        }
        let dump = state_json(&chain.snapshot(None).expect("snapshot"));
        assert_eq!(dump, want_dump, "{name}: state dump");
    }
}

#[test]
fn v2_rejected_blocks_name_their_index_and_code() {
    let list = json("rejected_blocks.json");
    let list = list.as_array().expect("an array");
    assert_eq!(list.len(), 3);
    for v in list {
        let what = v["description"].as_str().unwrap_or("?");
        let block = Block::from_json(&v["block"].to_string(), what, 1).expect("block");
        let index = v["rejected"]["index"].as_u64().unwrap() as usize;
        let code = v["rejected"]["code"].as_str().unwrap();
        for (name, config) in configs() {
            let chain = chain(config);
            match chain.add_new_block(&block) {
                Err(BlockError::InvalidTransaction {
                    index: i, error, ..
                }) => {
                    assert_eq!((i, error.code()), (index, code), "{what}: {name}");
                }
                other => panic!("{what}: {name}: {other:?}"),
            }
            assert_eq!(chain.top_topoheight().unwrap(), Some(0), "nothing written");
        }
    }
}
