//! The assembler's programs and the contract workloads: every program
//! assembles and disassembles back to its bytes, uses the gas its module
//! documents, and the generated `token`, `auction` and `contracts-mixed`
//! chains replay with the statuses the generator intended and the token
//! supply it minted.

use std::collections::{BTreeMap, HashMap};

use ed25519_dalek::SigningKey;
use serde_json::Value;

use tos_parallel::chain::constants::{MAX_BLOCK_GAS, MAX_CODE_SIZE};
use tos_parallel::chain::dump::state_json;
use tos_parallel::chain::transaction::{
    contract_id, public_key_of, FeeType, Payload, Transaction, UnsignedTransaction,
};
use tos_parallel::{
    init_genesis, Block, BlockOutcome, Blockchain, ExecutionConfig, ExecutionMode, Genesis,
    GenesisAccount, Hash, MemoryStorage, PublicKey, NATIVE_ASSET,
};
use tos_parallel_tools::asm::{assemble, disassemble};
use tos_parallel_tools::contracts::{self, account_word, token_slot, word};
use tos_parallel_tools::generator::{
    generate, GeneratedChain, GeneratorConfig, Workload, INVOKE_MAX_GAS, TOKEN_MINT,
};

fn programs() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    vec![
        ("token", contracts::TOKEN_ASM, contracts::token()),
        ("auction", contracts::AUCTION_ASM, contracts::auction()),
        ("probe", contracts::PROBE_ASM, contracts::probe()),
        ("counter", contracts::COUNTER_ASM, contracts::counter()),
    ]
}

#[test]
fn programs_assemble_and_disassemble_to_the_same_bytes() {
    for (name, src, code) in programs() {
        assert_eq!(assemble(src).unwrap(), code, "{name}");
        assert!(!code.is_empty() && code.len() <= MAX_CODE_SIZE, "{name}");
        let text = disassemble(&code);
        assert!(!text.contains("BYTE"), "{name} has invalid bytes:\n{text}");
        assert_eq!(assemble(&text).unwrap(), code, "{name}:\n{text}");
    }
}

/// A chain on `MemoryStorage` in `mode` (parallel: 2 threads, no guards,
/// every block however small).
fn chain(genesis: &Genesis, mode: ExecutionMode) -> Blockchain<MemoryStorage> {
    let mut storage = MemoryStorage::new();
    init_genesis(&mut storage, genesis).unwrap();
    let config = match mode {
        ExecutionMode::Parallel => ExecutionConfig {
            mode,
            threads: 2,
            min_txs_for_parallel: 0,
            guards: false,
            ..ExecutionConfig::default()
        },
        _ => ExecutionConfig::default(),
    };
    Blockchain::new(storage, config).unwrap()
}

fn codes(outcome: &BlockOutcome) -> Vec<&'static str> {
    outcome.results.iter().map(|r| r.status.code()).collect()
}

fn decode(block: &Block) -> Vec<Transaction> {
    block
        .txs()
        .iter()
        .map(|b| Transaction::decode(b).unwrap().0)
        .collect()
}

/// A word of the dump (64 hex digits) as a number; it must fit in u128.
fn word_value(v: &Value) -> u128 {
    let hex = v.as_str().unwrap();
    assert_eq!(hex.len(), 64);
    assert!(hex[..32].bytes().all(|b| b == b'0'), "{hex}");
    u128::from_str_radix(&hex[32..], 16).unwrap()
}

/// The dump's contract whose code is `code`.
fn contract_with_code<'a>(dump: &'a Value, code: &[u8]) -> (&'a String, &'a Value) {
    let want = hex::encode(code);
    let found: Vec<_> = dump["contracts"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, c)| c["code"] == want)
        .collect();
    assert_eq!(found.len(), 1, "one contract with this code");
    found[0]
}

/// Generates `workload` (200 accounts, 2 blocks of 100 transactions, seed
/// 1), replays it sequentially and in parallel on fresh chains, checks
/// every status is `ok` and the two final states agree; returns the chain
/// and the final dump.
fn generate_and_replay(workload: Workload) -> (GeneratedChain, Value) {
    let generated = generate(&GeneratorConfig {
        workload,
        accounts: 200,
        txs_per_block: 100,
        blocks: 2,
        seed: 1,
    })
    .unwrap();
    assert_eq!(generated.blocks.len(), 2);
    let mut dumps = Vec::new();
    for mode in [ExecutionMode::Sequential, ExecutionMode::Parallel] {
        let chain = chain(&generated.genesis, mode);
        for (b, block) in generated.blocks.iter().enumerate() {
            assert_eq!(block.txs().len(), 100, "{workload} block {b}");
            let outcome = chain.add_new_block(block).unwrap();
            let codes = codes(&outcome);
            assert!(
                codes.iter().all(|c| *c == "ok"),
                "{workload} block {b} ({mode:?}): {codes:?}"
            );
        }
        dumps.push(state_json(&chain.snapshot(None).unwrap()));
    }
    assert_eq!(
        dumps[0], dumps[1],
        "{workload}: sequential and parallel differ"
    );
    let dump = dumps.swap_remove(0);
    for block in &generated.blocks {
        let gas: u64 = decode(block).iter().map(Transaction::max_gas).sum();
        assert!(gas <= MAX_BLOCK_GAS);
    }
    (generated, dump)
}

/// The deploys at the head of block 1, and the ids they create.
fn deployed(generated: &GeneratedChain) -> Vec<(Vec<u8>, PublicKey)> {
    decode(&generated.blocks[0])
        .into_iter()
        .map_while(|tx| match tx.payload {
            Payload::DeployContract { code } => Some((code, contract_id(&tx.source, tx.nonce))),
            _ => None,
        })
        .collect()
}

/// Sum of the minted amounts (selector 0) of the invocations of `token`.
fn minted(generated: &GeneratedChain, token: &PublicKey) -> u128 {
    let mut total = 0u128;
    for block in &generated.blocks {
        for tx in decode(block) {
            if let Payload::InvokeContract { contract, args, .. } = &tx.payload {
                if contract == token && args[0] == word(0) {
                    total += u128::from_be_bytes(args[1].0[16..].try_into().unwrap());
                }
            }
        }
    }
    total
}

/// Checks the token balances in the dump: they sum to what was minted and
/// each sits at the slot of an account.
fn check_token_supply(generated: &GeneratedChain, dump: &Value, id: &PublicKey) {
    let storage = dump["contracts"][id.to_hex()]["storage"]
        .as_object()
        .unwrap();
    let slots: HashMap<String, PublicKey> = generated
        .genesis
        .accounts
        .iter()
        .map(|a| (token_slot(&a.key).to_hex(), a.key))
        .collect();
    let mut sum = 0u128;
    for (slot, w) in storage {
        assert!(
            slots.contains_key(slot),
            "a token slot of no account: {slot}"
        );
        sum += word_value(w);
    }
    let minted = minted(generated, id);
    assert!(minted > 0);
    assert_eq!(minted % TOKEN_MINT as u128, 0);
    assert_eq!(sum, minted, "token balances sum to the minted total");
}

#[test]
fn token_workload_replays_and_keeps_the_supply() {
    let (generated, dump) = generate_and_replay(Workload::Token);
    let deployed = deployed(&generated);
    assert_eq!(deployed.len(), 1);
    assert_eq!(deployed[0].0, contracts::token());
    let (id, _) = contract_with_code(&dump, &contracts::token());
    assert_eq!(id, &deployed[0].1.to_hex());
    check_token_supply(&generated, &dump, &deployed[0].1);
    // Both mints and transfers happened.
    let (mut mints, mut transfers) = (0, 0);
    for block in &generated.blocks {
        for tx in decode(block) {
            if let Payload::InvokeContract { args, max_gas, .. } = tx.payload {
                assert_eq!(max_gas, INVOKE_MAX_GAS);
                match args[0] {
                    w if w == word(0) => mints += 1,
                    w if w == word(1) => transfers += 1,
                    w => panic!("selector {w:?}"),
                }
            }
        }
    }
    assert!(
        mints > 0 && transfers > 0,
        "{mints} mints, {transfers} transfers"
    );
    assert_eq!(mints + transfers, 199);
}

#[test]
fn auction_workload_replays_every_bid_winning() {
    let (generated, dump) = generate_and_replay(Workload::Auction);
    let deployed = deployed(&generated);
    assert_eq!(deployed.len(), 1);
    let id = deployed[0].1;
    let mut last = (0u64, PublicKey::default());
    for block in &generated.blocks {
        for tx in decode(block) {
            if let Payload::InvokeContract {
                contract, deposit, ..
            } = tx.payload
            {
                assert_eq!(contract, id);
                assert!(deposit > last.0, "bids strictly increase");
                last = (deposit, tx.source);
            }
        }
    }
    let storage = &dump["contracts"][id.to_hex()]["storage"];
    let slot = |i: u64| word(i).to_hex();
    assert_eq!(word_value(&storage[slot(0)]), u128::from(last.0));
    assert_eq!(
        storage[slot(1)].as_str().unwrap(),
        account_word(&last.1).to_hex()
    );
    // The contract holds exactly the highest bid: every other was refunded.
    assert_eq!(
        dump["accounts"][id.to_hex()]["balances"][NATIVE_ASSET.to_hex()],
        last.0
    );
}

#[test]
fn contracts_mixed_workload_replays() {
    let (generated, dump) = generate_and_replay(Workload::ContractsMixed);
    let deployed = deployed(&generated);
    let codes: Vec<Vec<u8>> = deployed.iter().map(|(c, _)| c.clone()).collect();
    assert_eq!(
        codes,
        vec![contracts::token(), contracts::counter(), contracts::probe()]
    );
    let (token, counter, probe) = (deployed[0].1, deployed[1].1, deployed[2].1);
    check_token_supply(&generated, &dump, &token);
    let mut calls: BTreeMap<&str, u64> = BTreeMap::new();
    for block in &generated.blocks {
        for tx in decode(block) {
            let kind = match tx.payload {
                Payload::DeployContract { .. } => "deploy",
                Payload::Transfers(_) => "transfer",
                Payload::InvokeContract { contract, .. } if contract == token => "token",
                Payload::InvokeContract { contract, .. } if contract == counter => "counter",
                Payload::InvokeContract { contract, .. } if contract == probe => "probe",
                p => panic!("unexpected payload {p:?}"),
            };
            *calls.entry(kind).or_default() += 1;
        }
    }
    for kind in ["token", "transfer", "probe", "counter"] {
        assert!(calls.get(kind).copied().unwrap_or(0) > 0, "{calls:?}");
    }
    assert!(calls["token"] > calls["probe"] && calls["transfer"] > calls["probe"]);
    let counted = &dump["contracts"][counter.to_hex()]["storage"][word(0).to_hex()];
    assert_eq!(word_value(counted), u128::from(calls["counter"]));
}

#[test]
fn new_workloads_parse_and_print() {
    for name in ["token", "auction", "contracts-mixed"] {
        let w: Workload = name.parse().unwrap();
        assert_eq!(w.to_string(), name);
    }
    let err = "nope".parse::<Workload>().unwrap_err();
    assert!(
        err.contains("contracts-mixed") && err.contains("auction"),
        "{err}"
    );
}

#[test]
fn generation_is_deterministic() {
    let cfg = GeneratorConfig {
        workload: Workload::ContractsMixed,
        accounts: 50,
        txs_per_block: 40,
        blocks: 2,
        seed: 9,
    };
    let a = generate(&cfg).unwrap();
    let b = generate(&cfg).unwrap();
    for (x, y) in a.blocks.iter().zip(&b.blocks) {
        assert_eq!(x.txs(), y.txs());
    }
}

/// Signs invocations and deploys for the gas test, tracking nonces.
struct Wallet {
    keys: Vec<SigningKey>,
    nonces: Vec<u64>,
}

impl Wallet {
    fn tx(&mut self, i: usize, payload: Payload) -> Vec<u8> {
        let nonce = self.nonces[i];
        self.nonces[i] += 1;
        UnsignedTransaction {
            payload,
            fee: 0,
            fee_type: FeeType::Native,
            nonce,
            reference_hash: Hash::default(),
            reference_topoheight: 0,
        }
        .sign_with_minimum_fee(&self.keys[i], &[], 0)
        .encode()
    }

    fn invoke(
        &mut self,
        i: usize,
        contract: PublicKey,
        deposit: u64,
        max_gas: u64,
        args: Vec<Hash>,
    ) -> Vec<u8> {
        let payload = Payload::InvokeContract {
            contract,
            deposit,
            max_gas,
            args,
        };
        self.tx(i, payload)
    }
}

/// Each documented gas count is exact: `max_gas` = the count succeeds (or
/// reverts, for a low bid), one less runs out of gas.
#[test]
fn programs_use_the_documented_gas() {
    let keys: Vec<SigningKey> = (0..4u8)
        .map(|i| SigningKey::from_bytes(&[i + 1; 32]))
        .collect();
    let pubs: Vec<PublicKey> = keys.iter().map(public_key_of).collect();
    let genesis = Genesis {
        blocks_per_day: 86_400,
        accounts: pubs
            .iter()
            .enumerate()
            .map(|(i, k)| GenesisAccount {
                key: *k,
                balances: [(NATIVE_ASSET, 10_000_000 + i as u64)].into(),
                nonce: 0,
            })
            .collect(),
    };
    let chain = chain(&genesis, ExecutionMode::Sequential);
    let mut w = Wallet {
        keys,
        nonces: vec![0; 4],
    };
    let ids: Vec<PublicKey> = (0..4).map(|n| contract_id(&pubs[0], n)).collect();
    let deploys: Vec<Vec<u8>> = programs()
        .into_iter()
        .map(|(_, _, code)| w.tx(0, Payload::DeployContract { code }))
        .collect();
    let miner = PublicKey([9u8; 32]);
    let outcome = chain
        .add_new_block(&Block::new(Some(1), miner, deploys))
        .unwrap();
    assert_eq!(codes(&outcome), vec!["ok"; 4]);
    let (token, auction, probe, counter) = (ids[0], ids[1], ids[2], ids[3]);
    let (a, b, watched) = (1, 2, 3);
    let mint = vec![word(0), word(1_000)];
    let send = vec![word(1), account_word(&pubs[b]), word(10)];
    let g = contracts::TOKEN_MINT_GAS;
    let t = contracts::TOKEN_TRANSFER_GAS;
    let (f, r, l) = (
        contracts::AUCTION_FIRST_BID_GAS,
        contracts::AUCTION_BID_GAS,
        contracts::AUCTION_LOW_BID_GAS,
    );
    let watch = vec![account_word(&pubs[watched])];
    let txs = vec![
        w.invoke(a, token, 0, g - 1, mint.clone()),
        w.invoke(a, token, 0, g, mint),
        w.invoke(a, token, 0, t - 1, send.clone()),
        w.invoke(a, token, 0, t, send),
        // More than the balance, and an unknown selector: reverted.
        w.invoke(
            a,
            token,
            0,
            1_000,
            vec![word(1), account_word(&pubs[b]), word(991)],
        ),
        w.invoke(a, token, 0, 1_000, vec![word(2)]),
        w.invoke(a, auction, 500, f - 1, vec![]),
        w.invoke(a, auction, 500, f, vec![]),
        w.invoke(b, auction, 700, r - 1, vec![]),
        w.invoke(b, auction, 700, r, vec![]),
        w.invoke(a, auction, 700, l - 1, vec![]),
        w.invoke(a, auction, 700, l, vec![]),
        w.invoke(b, probe, 0, contracts::PROBE_GAS - 1, watch.clone()),
        w.invoke(b, probe, 0, contracts::PROBE_GAS, watch),
        w.invoke(b, counter, 0, contracts::COUNTER_GAS - 1, vec![]),
        w.invoke(b, counter, 0, contracts::COUNTER_GAS, vec![]),
    ];
    let outcome = chain
        .add_new_block(&Block::new(Some(2), miner, txs))
        .unwrap();
    let oog = "out_of_gas";
    let rev = "contract_reverted";
    assert_eq!(
        codes(&outcome),
        vec![oog, "ok", oog, "ok", rev, rev, oog, "ok", oog, "ok", oog, rev, oog, "ok", oog, "ok"]
    );
    let dump = state_json(&chain.snapshot(None).unwrap());
    let storage = |id: &PublicKey| dump["contracts"][id.to_hex()]["storage"].clone();
    let token_storage = storage(&token);
    assert_eq!(
        word_value(&token_storage[token_slot(&pubs[a]).to_hex()]),
        990
    );
    assert_eq!(
        word_value(&token_storage[token_slot(&pubs[b]).to_hex()]),
        10
    );
    let auction_storage = storage(&auction);
    assert_eq!(word_value(&auction_storage[word(0).to_hex()]), 700);
    assert_eq!(
        auction_storage[word(1).to_hex()].as_str().unwrap(),
        account_word(&pubs[b]).to_hex()
    );
    let native = NATIVE_ASSET.to_hex();
    assert_eq!(dump["accounts"][auction.to_hex()]["balances"][native], 700);
    // The probe recorded the untouched account's genesis balance.
    assert_eq!(
        word_value(&storage(&probe)[token_slot(&pubs[watched]).to_hex()]),
        10_000_003
    );
    assert_eq!(word_value(&storage(&counter)[word(0).to_hex()]), 1);
}
