//! Hinted accesses (`Accesses::hint`, `engine::discover`, `pipeline::hint`):
//! what exploring an invocation on the tip finds, and that no hint, right,
//! stale or wrong, changes any result of any engine, mode or thread count.

use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tos_parallel::chain::transaction::{contract_id, Payload, Transaction};
use tos_parallel::chain::validation::check_admission;
use tos_parallel::engine::{EngineConfig, Mode, MAX_HINTS};
use tos_parallel::pipeline::{
    check_block, differences, hint, locate_block, run_block, CheckedBlock, Hinter, Run,
    SpecExecutor,
};
use tos_parallel::{
    init_genesis, Blockchain, ExecutionConfig, ExecutionPath, Hash, MemoryStorage, PublicKey,
    StateKey, StateWrite, VerifiedTx, NATIVE_ASSET,
};
use tos_parallel_tools::contracts::{account_word, token, token_slot, word};
use tos_parallel_tools::generator::{generate, GeneratorConfig, Workload};

mod common;

/// The hints of `vtx`, as (key, mode), sorted.
fn hints_of(vtx: &VerifiedTx) -> Vec<(StateKey, Mode)> {
    let mut h: Vec<(StateKey, Mode)> = vtx
        .accesses
        .hints()
        .iter()
        .map(|a| (a.key, a.mode))
        .collect();
    h.sort_by_key(|x| x.0);
    h
}

#[test]
fn exploring_a_token_call_on_the_tip_hints_its_slots_in_the_modes_it_uses() {
    let alice = common::key(1);
    let bob = common::key(2);
    let (a, b) = (common::pk(&alice), common::pk(&bob));
    let chain = common::Chain::new(&[
        (a, &[(NATIVE_ASSET, 100 * common::COIN)]),
        (b, &[(NATIVE_ASSET, 10 * common::COIN)]),
    ]);
    let deploy = common::Tx::new(common::deploy(&token())).sign(&alice);
    assert_eq!(chain.run(&[deploy]), ["ok"]);
    let t = contract_id(&a, 0);
    let mint = common::Tx::new(common::invoke(t, 0, 10_000, &[word(0), word(100)]))
        .nonce(1)
        .sign(&alice);
    assert_eq!(chain.run(&[mint]), ["ok"]);
    let storage = chain.chain.storage().clone();
    let top = chain.top();
    let admitted = |tx: &Transaction| {
        let bytes = tx.encode();
        let mut vtx = check_admission(&bytes, Hash(*blake3::hash(&bytes).as_bytes())).unwrap();
        let n = hint(&mut vtx, &storage, top);
        assert_eq!(n, vtx.accesses.hints().len());
        vtx
    };
    let slot = |who: &PublicKey| StateKey::Slot(t, token_slot(who));
    let transfer = |amount: u64, nonce: u64| {
        common::Tx::new(common::invoke(
            t,
            0,
            10_000,
            &[word(1), account_word(&b), word(amount)],
        ))
        .nonce(nonce)
        .sign(&alice)
    };

    // A transfer that succeeds on the tip reads and writes both balances,
    // and credits its deposit (0) to the contract.
    let ok = admitted(&transfer(10, 2));
    let mut want = vec![
        (slot(&a), Mode::Write),
        (slot(&b), Mode::Write),
        (StateKey::Balance(t, NATIVE_ASSET), Mode::Add),
    ];
    want.sort_by_key(|x| x.0);
    assert_eq!(hints_of(&ok), want);
    // Its declared keys (nonce, balance, code) are never hints.
    for h in ok.accesses.hints() {
        assert!(ok.accesses.find(&h.key).is_none());
    }
    // One the tip cannot afford reverts there after reading the sender's
    // balance. In its block, paid earlier, it may get past that check: the
    // exploration walks the branch past it (`vm/paths.rs`), so it hints
    // what a success writes, the recipient's slot included (the dependency
    // graph, running it by its hints, lets it write them then), and its
    // deposit's credit to the contract.
    assert_eq!(hints_of(&admitted(&transfer(1_000, 2))), want);
    // A nonce that is not yet the next one: the contract still runs.
    assert_eq!(hints_of(&admitted(&transfer(10, 7))), want);
    // A native transfer declares everything: nothing to hint.
    let plain = common::Tx::new(common::transfer(NATIVE_ASSET, b, 5))
        .nonce(2)
        .sign(&alice);
    assert!(hints_of(&admitted(&plain)).is_empty());
    // A call to no contract keeps no hints.
    let nowhere = common::Tx::new(common::invoke(PublicKey([9; 32]), 0, 10_000, &[word(0)]))
        .nonce(2)
        .sign(&alice);
    assert!(hints_of(&admitted(&nowhere)).is_empty());
}

#[test]
fn hint_merges_modes_ignores_declared_keys_and_closed_accesses_and_is_bounded() {
    let key = |i: u8| StateKey::Slot(PublicKey([1; 32]), Hash([i; 32]));
    let mut closed = tos_parallel::engine::Accesses::<StateKey>::new();
    closed.hint(key(1), Mode::Read);
    assert!(
        closed.hints().is_empty(),
        "a closed transaction declares all"
    );

    let mut open = tos_parallel::engine::Accesses::<StateKey>::new();
    open.push(key(0), Mode::Read);
    open.set_open();
    open.hint(key(0), Mode::Write);
    assert!(open.hints().is_empty(), "a declared key is not a hint");
    open.hint(key(1), Mode::Read);
    open.hint(key(1), Mode::Add);
    assert_eq!(open.hints().len(), 1);
    assert_eq!(open.hints()[0].mode, Mode::Write, "read then add: write");
    // Declared later: no longer a hint.
    open.push(key(1), Mode::Read);
    assert!(open.hints().is_empty());
    for i in 0..=255u8 {
        open.hint(key(i), Mode::Read);
    }
    assert_eq!(open.hints().len(), MAX_HINTS);
    open.clear_hints();
    assert!(open.hints().is_empty());
}

/// How a block's invocations are hinted before it runs.
#[derive(Clone, Copy, Debug)]
enum Hints {
    /// On the block's parent state (a mempool at the tip).
    Tip,
    /// On the genesis state (hints many blocks stale).
    Genesis,
    /// Random keys of every kind, in random modes, as many as allowed.
    Wrong,
}

fn random_key(rng: &mut ChaCha8Rng, contracts: &[PublicKey]) -> StateKey {
    let account = PublicKey(rng.gen());
    let contract = if contracts.is_empty() || rng.gen_bool(0.3) {
        account
    } else {
        contracts[rng.gen_range(0..contracts.len())]
    };
    match rng.gen_range(0..6) {
        0 => StateKey::Nonce(account),
        1 => StateKey::Balance(account, NATIVE_ASSET),
        2 => StateKey::Multisig(account),
        3 => StateKey::Energy(account),
        4 => StateKey::Code(contract),
        _ => StateKey::Slot(contract, Hash(rng.gen())),
    }
}

fn hinted(
    checked: &CheckedBlock,
    how: Hints,
    storage: &MemoryStorage,
    at: u64,
    rng: &mut ChaCha8Rng,
) -> (CheckedBlock, usize) {
    let contracts: Vec<PublicKey> = checked
        .txs
        .iter()
        .filter_map(|t| match &t.tx.payload {
            Payload::InvokeContract { contract, .. } => Some(*contract),
            _ => None,
        })
        .collect();
    let mut out = checked.clone();
    let mut n = 0;
    let (tip, genesis) = (Hinter::at(storage, at), Hinter::at(storage, 0));
    for tx in &mut out.txs {
        let mut vtx = (**tx).clone();
        n += match how {
            Hints::Tip => tip.hint(&mut vtx),
            Hints::Genesis => genesis.hint(&mut vtx),
            Hints::Wrong => {
                for _ in 0..MAX_HINTS {
                    let mode = [Mode::Read, Mode::Write, Mode::Add][rng.gen_range(0..3)];
                    vtx.accesses.hint(random_key(rng, &contracts), mode);
                }
                vtx.accesses.hints().len()
            }
        };
        *tx = Arc::new(vtx);
    }
    (out, n)
}

/// Every generated contract workload, block by block: the sequential
/// engine on unhinted transactions is the reference; the sequential
/// engine, the parallel executor at 1, 2 and 4 threads (guards off: a
/// hinted block is tried sealed on the graph, and runs on the optimistic
/// path when the attempt voids; both ways are asserted taken) and verify
/// mode, on the same transactions hinted on the tip, on genesis and at
/// random, must each give exactly its result.
#[test]
fn no_hint_right_stale_or_wrong_changes_any_result() {
    let engine = EngineConfig {
        costly_reads: false,
        ..EngineConfig::default()
    };
    let sequential = SpecExecutor::on_current_pool(engine);
    let parallel: Vec<(usize, SpecExecutor)> = [1, 2, 4]
        .into_iter()
        .map(|t| (t, SpecExecutor::new(t, engine).unwrap().always_parallel()))
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut hinted_keys = 0;
    // Open blocks run (sealed on the graph, optimistic).
    let mut ways = (0, 0);
    for workload in [Workload::Token, Workload::ContractsMixed, Workload::Auction] {
        let chain = generate(&GeneratorConfig {
            workload,
            accounts: 60,
            txs_per_block: 80,
            blocks: 5,
            seed: 3,
        })
        .unwrap();
        let mut storage = MemoryStorage::new();
        init_genesis(&mut storage, &chain.genesis).unwrap();
        for block in &chain.blocks {
            let pre = locate_block(&storage, block).unwrap();
            let plain = check_block(block, &pre, None, None).unwrap();
            let reference =
                run_block(&sequential, &storage, block, &pre, &plain, Run::Sequential).unwrap();
            let open = plain.txs.iter().any(|t| t.accesses.is_open());
            for how in [Hints::Tip, Hints::Genesis, Hints::Wrong] {
                let at = pre.ctx.parent_topoheight;
                let (checked, n) = hinted(&plain, how, &storage, at, &mut rng);
                hinted_keys += n;
                let got = run_block(
                    &sequential,
                    &storage,
                    block,
                    &pre,
                    &checked,
                    Run::Sequential,
                )
                .unwrap();
                assert_eq!(
                    differences(&reference, &got),
                    Vec::<String>::new(),
                    "{workload} {how:?} sequential"
                );
                for (t, ex) in &parallel {
                    for run in [Run::Parallel, Run::Verify] {
                        let got = run_block(ex, &storage, block, &pre, &checked, run).unwrap();
                        let what = format!("{workload} {how:?} {t} threads {run:?}");
                        assert_eq!(
                            differences(&reference, &got),
                            Vec::<String>::new(),
                            "{what}"
                        );
                        assert_eq!(got.outcome.stats.mismatches, 0, "{what}");
                        if open && run == Run::Parallel {
                            // Hinted, the block was tried sealed: it held
                            // (the graph ran its calls), or it voided (or
                            // was not tried: the backoff) and the
                            // optimistic path ran it.
                            let stats = &got.outcome.stats;
                            match stats.path {
                                ExecutionPath::Parallel => {
                                    assert!(stats.sealed > 0, "{what}: {stats:?}");
                                    ways.0 += 1;
                                }
                                ExecutionPath::Optimistic => {
                                    assert_eq!(stats.sealed, 0, "{what}: {stats:?}");
                                    ways.1 += 1;
                                }
                                other => panic!("{what}: {other:?}"),
                            }
                        }
                    }
                }
            }
            storage.commit(&reference.changes, &reference.meta).unwrap();
        }
    }
    assert!(hinted_keys > 1_000, "only {hinted_keys} hinted keys");
    assert!(ways.0 > 0 && ways.1 > 0, "sealed, optimistic: {ways:?}");
}

/// A node admitting with hints (the default) and one admitting without
/// replay the same contract chain to the same state, block by block.
#[test]
fn a_node_admitting_with_hints_reaches_the_state_of_one_without() {
    let chain = generate(&GeneratorConfig {
        workload: Workload::ContractsMixed,
        accounts: 50,
        txs_per_block: 60,
        blocks: 4,
        seed: 9,
    })
    .unwrap();
    let node = |hints: bool, mode| {
        let mut s = MemoryStorage::new();
        init_genesis(&mut s, &chain.genesis).unwrap();
        let config = ExecutionConfig {
            mode,
            threads: 2,
            hints,
            ..ExecutionConfig::default()
        };
        Blockchain::new(s, config).unwrap()
    };
    let reference = node(false, tos_parallel::ExecutionMode::Sequential);
    let nodes = [
        node(true, tos_parallel::ExecutionMode::Sequential),
        node(true, tos_parallel::ExecutionMode::Parallel),
        node(true, tos_parallel::ExecutionMode::Verify),
    ];
    for block in &chain.blocks {
        let want = reference.add_new_block(block).unwrap();
        for n in &nodes {
            for bytes in block.txs() {
                n.admit(bytes).unwrap();
            }
            let got = n.add_new_block(block).unwrap();
            assert!(want.same_result(&got), "{:?}", n.config().mode);
            assert_eq!(got.stats.mismatches, 0);
            if n.config().mode == tos_parallel::ExecutionMode::Verify {
                // Verify mode's parallel side runs unguarded: the engine ran.
                assert!(got.stats.parallel_engine, "{:?}", got.stats);
            }
            assert_eq!(got.stats.cache_hits, block.txs().len());
        }
    }
    let dump = |b: &Blockchain<MemoryStorage>| {
        tos_parallel::chain::dump::state_json_string(&b.snapshot(None).unwrap())
    };
    for n in &nodes {
        assert_eq!(dump(&reference), dump(n));
    }
}

/// Background admissions hint on a view of the tip, which holds a clone of
/// the storage: dropping the chain waits for them, so that no job outlives
/// it with a database handle (one that did crashed the CLI at exit, racing
/// RocksDB's teardown). Here: a RocksDB chain admits blocks of invocations
/// in the background and is dropped at once; the database must reopen
/// (RocksDB refuses a second open while any handle lives).
#[cfg(feature = "rocksdb")]
#[test]
fn dropping_a_chain_waits_for_its_background_admissions() {
    let chain = generate(&GeneratorConfig {
        workload: Workload::Token,
        accounts: 200,
        txs_per_block: 300,
        blocks: 4,
        seed: 2,
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut s =
        tos_parallel::RocksStorage::create(&path, tos_parallel::RocksConfig::default()).unwrap();
    init_genesis(&mut s, &chain.genesis).unwrap();
    for round in 0..3 {
        let config = ExecutionConfig {
            mode: tos_parallel::ExecutionMode::Parallel,
            threads: 2,
            ..ExecutionConfig::default()
        };
        let node = Blockchain::new(s, config).unwrap();
        if round == 0 {
            node.add_new_block(&chain.blocks[0]).unwrap();
        }
        for block in &chain.blocks[1..] {
            node.admit_in_background(block);
        }
        drop(node);
        s = tos_parallel::RocksStorage::open(&path, tos_parallel::RocksConfig::default())
            .unwrap_or_else(|e| panic!("round {round}: reopen failed: {e}"));
    }
}
