//! Sealed blocks (`src/engine/sealed.rs`): a block whose invocations carry
//! hints runs on the dependency graph with the hints taken as
//! declarations; an access beyond them is served as a private key or voids
//! the attempt, and the block then runs as an open block. Every block here
//! goes through fresh unguarded executors at 1 to 8 threads with the
//! invocations hinted as a node's admission hints them (or hinted wrong on
//! purpose), each compared with the sequential engine on every status and
//! write; each test asserts which way the block went (sealed on the graph,
//! or void and then the optimistic path), so that no test compares the
//! sequential engine with itself unknowingly. The block is then added to a
//! `common::Chain` (its own copies compare again) to move on.

mod common;

use common::*;
use ed25519_dalek::SigningKey;
use tos_parallel::chain::transaction::{contract_id, Transaction};
use tos_parallel::chain::validation::check_admission;
use tos_parallel::engine::{EngineConfig, Mode};
use tos_parallel::pipeline::{
    check_block, differences, execute_block, locate_block, Hinter, Run, SpecExecutor, TxCache,
};
use tos_parallel::{
    Block, BlockStats, ExecutionPath, PublicKey, StateKey, StateRead, NATIVE_ASSET,
};
use tos_parallel_tools::contracts::{account_word, token, token_slot};

const GAS: u64 = 10_000;

/// How the block's invocations are hinted before it runs.
#[derive(Clone, Copy)]
enum Hints {
    /// On the tip, as a node's admission does.
    Tip,
    /// On the tip, then every hinted slot replaced by a slot nobody uses
    /// (in its mode): hints that are all wrong.
    Wrong,
    /// On the tip, then the hint of the `holder`'s token slot dropped from
    /// the `tx`-th call: an exploration that stopped at the check a call
    /// failed on the tip (as a node's did before it walked the other
    /// branches, `vm/paths.rs`), missing the recipient it credits in its
    /// block.
    Stopped { tx: usize, holder: usize },
    /// On the tip, but the calls from the `from`-th on without hints (their
    /// admission not done when the block came).
    From { from: usize },
}

/// A chain whose `holders` hold 1,000 COIN each, a token deployed by the
/// first, and 1,000 tokens minted by each holder but the last `broke`.
struct Token {
    c: Chain,
    token: PublicKey,
    keys: Vec<SigningKey>,
    nonces: std::cell::RefCell<Vec<u64>>,
}

impl Token {
    fn new(holders: u8, broke: usize) -> Token {
        let keys: Vec<SigningKey> = (1..=holders).map(key).collect();
        let funded: Vec<(PublicKey, &[(tos_parallel::Asset, u64)])> = keys
            .iter()
            .map(|k| (pk(k), &[(NATIVE_ASSET, 1_000 * COIN)][..]))
            .collect();
        let c = Chain::new(&funded);
        let deploy = Tx::new(deploy(&token())).sign(&keys[0]);
        assert_eq!(c.run(&[deploy]), ["ok"]);
        let token = contract_id(&pk(&keys[0]), 0);
        let mut nonces = vec![0u64; keys.len()];
        nonces[0] = 1;
        let mut mints = Vec::new();
        for (i, k) in keys.iter().enumerate().take(keys.len() - broke) {
            mints.push(
                Tx::new(invoke(token, 0, GAS, &[word(0), word(1_000)]))
                    .nonce(nonces[i])
                    .sign(k),
            );
            nonces[i] += 1;
        }
        assert!(c.run(&mints).iter().all(|s| *s == "ok"));
        Token {
            c,
            token,
            keys,
            nonces: nonces.into(),
        }
    }

    /// A transfer of `amount` tokens from holder `from` to holder `to`.
    fn send(&self, from: usize, to: usize, amount: u64) -> Transaction {
        let mut nonces = self.nonces.borrow_mut();
        let tx = Tx::new(invoke(
            self.token,
            0,
            GAS,
            &[word(1), account_word(&pk(&self.keys[to])), word(amount)],
        ))
        .nonce(nonces[from])
        .sign(&self.keys[from]);
        nonces[from] += 1;
        tx
    }

    fn balance(&self, who: usize) -> u64 {
        let v = self
            .c
            .chain
            .storage()
            .get(
                &StateKey::Slot(self.token, token_slot(&pk(&self.keys[who]))),
                self.c.top(),
            )
            .unwrap();
        match v {
            None => 0,
            Some(tos_parallel::StateValue::Word(w)) => {
                u64::from_be_bytes(w[24..].try_into().unwrap())
            }
            Some(other) => panic!("a token slot holds {other:?}"),
        }
    }

    /// The block of `txs`, and its transactions admitted into a cache as
    /// `hints` says.
    fn admitted(&self, txs: &[Transaction], hints: Hints) -> (Block, TxCache) {
        let block = Block::new(None, self.c.miner, txs.iter().map(|t| t.encode()).collect());
        let storage = self.c.chain.storage().clone();
        let pre = locate_block(&storage, &block).unwrap();
        let cache = TxCache::new(1024);
        let hinter = Hinter::at(&storage, pre.ctx.parent_topoheight);
        for (i, (bytes, hash)) in block.txs().iter().zip(block.tx_hashes()).enumerate() {
            let mut vtx = check_admission(bytes, *hash).expect("admissible");
            assert!(hinter.hint(&mut vtx) > 0, "every call is hinted");
            if matches!(hints, Hints::From { from } if i >= from) {
                vtx.accesses.clear_hints();
            }
            if let Hints::Stopped { tx, holder } = hints {
                let dropped = StateKey::Slot(self.token, token_slot(&pk(&self.keys[holder])));
                if tx == i {
                    let kept: Vec<(StateKey, Mode)> = vtx
                        .accesses
                        .hints()
                        .iter()
                        .filter(|h| h.key != dropped)
                        .map(|h| (h.key, h.mode))
                        .collect();
                    assert!(
                        kept.len() < vtx.accesses.hints().len(),
                        "{dropped:?} was hinted"
                    );
                    vtx.accesses.clear_hints();
                    for (k, m) in kept {
                        vtx.accesses.hint(k, m);
                    }
                    vtx.accesses.seal();
                }
            }
            if let Hints::Wrong = hints {
                let wrong: Vec<(StateKey, Mode)> = vtx
                    .accesses
                    .hints()
                    .iter()
                    .enumerate()
                    .map(|(i, h)| {
                        let nobody = tos_parallel::Hash([0xEE ^ i as u8; 32]);
                        match h.key {
                            StateKey::Slot(c, _) => (StateKey::Slot(c, nobody), h.mode),
                            _ => (h.key, h.mode),
                        }
                    })
                    .collect();
                vtx.accesses.clear_hints();
                for (k, m) in wrong {
                    vtx.accesses.hint(k, m);
                }
                vtx.accesses.seal();
            }
            cache.insert(hash.0, std::sync::Arc::new(vtx));
        }
        (block, cache)
    }

    /// Runs `block` on `ex` with its transactions from `cache`, equal to
    /// the sequential engine; returns the stats.
    fn check(&self, ex: &SpecExecutor, block: &Block, cache: &TxCache) -> BlockStats {
        let storage = self.c.chain.storage().clone();
        let pre = locate_block(&storage, block).unwrap();
        let seq =
            execute_block(ex, &storage, block, &pre, None, Run::Sequential).expect("accepted");
        let par =
            execute_block(ex, &storage, block, &pre, Some(cache), Run::Parallel).expect("accepted");
        let threads = ex.threads();
        let diffs = differences(&seq, &par);
        assert!(diffs.is_empty(), "{threads} threads: {}", diffs[0]);
        assert_eq!(seq.changes, par.changes, "{threads} threads");
        par.outcome.stats.clone()
    }

    /// Runs a block of `txs` hinted as `hints` says through fresh
    /// unguarded executors at 1 to 8 threads, each equal to the sequential
    /// engine; adds it to the chain; returns each executor's stats.
    fn block(&self, txs: &[Transaction], hints: Hints) -> Vec<BlockStats> {
        let (block, cache) = self.admitted(txs, hints);
        let mut stats = Vec::new();
        for threads in 1..=8 {
            let ex = SpecExecutor::new(threads, EngineConfig::default())
                .unwrap()
                .always_parallel();
            let s = self.check(&ex, &block, &cache);
            assert!(s.parallel_engine, "{threads} threads");
            stats.push(s);
        }
        self.c.add(&block).expect("accepted");
        stats
    }
}

fn assert_sealed(stats: &[BlockStats], invocations: usize) {
    for (t, s) in stats.iter().enumerate() {
        assert_eq!(
            (s.path, s.sealed, s.escaped, s.optimistic),
            (ExecutionPath::Parallel, invocations, false, 0),
            "{} threads: {s:?}",
            t + 1
        );
    }
}

fn assert_void(stats: &[BlockStats]) {
    for (t, s) in stats.iter().enumerate() {
        assert!(
            s.path == ExecutionPath::Optimistic && s.escaped && s.sealed == 0,
            "{} threads: {s:?}",
            t + 1
        );
    }
}

#[test]
fn hinted_token_blocks_run_sealed_from_two_holders_to_many() {
    for holders in [2u8, 4, 16, 64] {
        let t = Token::new(holders, 0);
        let n = holders as usize;
        // Senders round robin, recipients spread: with two holders every
        // call touches both balances; with many, few conflict.
        let txs: Vec<Transaction> = (0..3 * n.max(8))
            .map(|i| (i % n, (i * 7 + 1) % n, 1 + (i as u64 % 5)))
            .filter(|(from, to, _)| from != to)
            .map(|(from, to, amount)| t.send(from, to, amount))
            .collect();
        let stats = t.block(&txs, Hints::Tip);
        assert_sealed(&stats, txs.len());
    }
}

#[test]
fn a_call_short_at_the_tip_hints_the_recipient_past_its_check() {
    // Holder 2 holds no token at the tip: its transfer reverts there at
    // its check; in the block holder 0 pays it first, so it passes and
    // credits holder 3, whom holder 1 pays too. Its exploration walked the
    // branch past the check (`vm/paths.rs`): holder 3's slot is hinted,
    // written, and the block holds sealed, ordered on the graph.
    let t = Token::new(4, 2);
    assert_eq!(t.balance(2), 0);
    let txs = [t.send(0, 2, 50), t.send(2, 3, 30), t.send(1, 3, 5)];
    let (_, cache) = t.admitted(&txs, Hints::Tip);
    let third = cache
        .get(
            &Block::new(None, t.c.miner, txs.iter().map(|t| t.encode()).collect()).tx_hashes()[1].0,
        )
        .expect("admitted");
    let recipient = StateKey::Slot(t.token, token_slot(&pk(&t.keys[3])));
    assert!(
        third
            .accesses
            .hints()
            .iter()
            .any(|h| h.key == recipient && h.mode == Mode::Write),
        "{:?}",
        third.accesses.hints()
    );
    let stats = t.block(&txs, Hints::Tip);
    assert_sealed(&stats, 3);
    assert_eq!((t.balance(0), t.balance(2), t.balance(3)), (950, 20, 35));
}

#[test]
fn a_call_paid_earlier_in_the_block_gets_the_recipient_it_did_not_hint_as_a_private_key() {
    // Holder 2 holds no token at the tip; in the block holder 0 pays it
    // first. Its hints stopped at the check it failed on the tip (no
    // recipient).
    let t = Token::new(4, 2);
    assert_eq!(t.balance(2), 0);
    let txs = [t.send(0, 2, 50), t.send(2, 3, 30)];
    let stats = t.block(&txs, Hints::Stopped { tx: 1, holder: 3 });
    // Holder 3's balance is named by no declaration or hint of the block:
    // holder 2's call writes it as its private key, and the attempt holds.
    assert_sealed(&stats, 2);
    assert_eq!((t.balance(0), t.balance(2), t.balance(3)), (950, 20, 30));
}

#[test]
fn a_call_that_reaches_a_key_another_transaction_declares_voids_the_attempt() {
    let t = Token::new(4, 2);
    // As above, but holder 1 also pays holder 3 after holder 2 does: holder
    // 2's undeclared write to holder 3's balance would have to be ordered
    // before holder 1's, which the graph cannot know. Void: the block runs
    // again on the optimistic path.
    let txs = [t.send(0, 2, 50), t.send(2, 3, 30), t.send(1, 3, 5)];
    let stats = t.block(&txs, Hints::Stopped { tx: 1, holder: 3 });
    assert_void(&stats);
    assert_eq!((t.balance(2), t.balance(3)), (20, 35));
}

#[test]
fn a_few_calls_without_hints_are_explored_when_the_block_is_sealed() {
    // Holder 2, unfunded at the tip, is paid by holder 0 and pays holder
    // 3, whom holder 1 pays too; the last two calls came without hints.
    // Explored at block time on the block-start state (`SealedTx::block`),
    // they hold sealed: without that, holder 1's call would void the
    // attempt at holder 3's slot, which holder 2's call declares.
    let t = Token::new(4, 2);
    let txs = [t.send(0, 2, 50), t.send(2, 3, 30), t.send(1, 3, 5)];
    let stats = t.block(&txs, Hints::From { from: 1 });
    assert_sealed(&stats, 3);
    assert_eq!((t.balance(2), t.balance(3)), (20, 35));
}

#[test]
fn a_block_with_many_calls_without_hints_is_not_tried_sealed() {
    // 40 calls, the last 33 without hints: more than `MAX_EXPLORED` (32)
    // to explore on the block's path, so the block runs as an open block
    // (the optimistic path), with no attempt to void.
    let t = Token::new(8, 0);
    let txs: Vec<Transaction> = (0..40).map(|i| t.send(i % 8, (i + 3) % 8, 1)).collect();
    let stats = t.block(&txs, Hints::From { from: 7 });
    for (k, s) in stats.iter().enumerate() {
        assert!(
            s.path == ExecutionPath::Optimistic && !s.escaped && s.sealed == 0,
            "{} threads: {s:?}",
            k + 1
        );
    }
    // With 32 of them unhinted, it is tried, and holds.
    let txs: Vec<Transaction> = (0..40).map(|i| t.send(i % 8, (i + 5) % 8, 1)).collect();
    let stats = t.block(&txs, Hints::From { from: 8 });
    assert_sealed(&stats, 40);
}

#[test]
fn hints_that_are_all_wrong_void_the_attempt_and_change_nothing() {
    let t = Token::new(8, 0);
    let txs: Vec<Transaction> = (0..8).map(|i| t.send(i, (i + 3) % 8, 10)).collect();
    let stats = t.block(&txs, Hints::Wrong);
    assert_void(&stats);
    for i in 0..8 {
        assert_eq!(t.balance(i), 1_000);
    }
}

#[test]
fn after_a_void_attempt_the_executor_skips_the_next_hinted_block_then_tries_again() {
    let t = Token::new(8, 0);
    let ex = SpecExecutor::new(2, EngineConfig::default())
        .unwrap()
        .always_parallel();
    // `Token::block` uses fresh executors; the backoff is the executor's,
    // so this test drives one executor through four blocks itself.
    let mut stats = Vec::new();
    for (round, hints) in [Hints::Wrong, Hints::Tip, Hints::Tip, Hints::Tip]
        .into_iter()
        .enumerate()
    {
        let txs: Vec<Transaction> = (0..8).map(|i| t.send(i, (i + 1 + round) % 8, 1)).collect();
        let (block, cache) = t.admitted(&txs, hints);
        stats.push(t.check(&ex, &block, &cache));
        t.c.add(&block).unwrap();
    }
    let ways: Vec<(ExecutionPath, bool, bool)> = stats
        .iter()
        .map(|s| (s.path, s.sealed > 0, s.escaped))
        .collect();
    assert_eq!(
        ways,
        [
            // Wrong hints: void, then the optimistic path.
            (ExecutionPath::Optimistic, false, true),
            // Skipped (one block after the first void): open, not tried.
            (ExecutionPath::Optimistic, false, false),
            // Tried again, and it holds (which resets the backoff).
            (ExecutionPath::Parallel, true, false),
            (ExecutionPath::Parallel, true, false),
        ]
    );
}

#[test]
fn a_guarded_executor_tries_its_first_hinted_block_sealed_and_after_a_void_skips_sixteen() {
    let t = Token::new(8, 0);
    let ex = SpecExecutor::new(2, EngineConfig::default()).unwrap();
    assert!(ex.config().guards);
    let mut ways = Vec::new();
    for round in 0..18 {
        // Wrong hints on the first block: tried at once (the calibration's
        // first advice is the static guards', which let 8 calls on 8
        // holders through), its attempt voids.
        let hints = if round == 0 { Hints::Wrong } else { Hints::Tip };
        let txs: Vec<Transaction> = (0..8)
            .map(|i| t.send(i, (i + 1 + round % 7) % 8, 1))
            .collect();
        let (block, cache) = t.admitted(&txs, hints);
        let stats = t.check(&ex, &block, &cache);
        ways.push((stats.escaped, stats.reason));
        t.c.add(&block).unwrap();
    }
    use tos_parallel::PathReason::Undeclared;
    assert!(ways[0].0, "{ways:?}");
    // The next 16 run as open blocks (in order, `undeclared`: no attempt),
    // and the 18th is tried again: it holds, and goes the declared way's
    // guards (the graph, or in order for a guard's own reason, measured).
    assert!(
        ways[1..17].iter().all(|w| *w == (false, Undeclared)),
        "{ways:?}"
    );
    assert!(!ways[17].0 && ways[17].1 != Undeclared, "{ways:?}");
}

#[test]
fn a_hinted_blocks_profile_is_its_sealed_graphs() {
    // 40 calls over disjoint pairs of holders: hinted, the block's sealed
    // graph orders a call only after the calls that touch its slots (none
    // here; the contract's balance takes commutative credits), so its
    // critical path is far below the block's length (the bound `bench`
    // reports as S*); unhinted, the profile claims nothing beyond the
    // whole block.
    let t = Token::new(80, 0);
    let txs: Vec<Transaction> = (0..40).map(|k| t.send(2 * k, 2 * k + 1, 1)).collect();
    let storage = t.c.chain.storage().clone();
    let ex = SpecExecutor::new(2, EngineConfig::default()).unwrap();
    let profile = |hints: Hints| {
        let (block, cache) = t.admitted(&txs, hints);
        let pre = locate_block(&storage, &block).unwrap();
        let checked = check_block(&block, &pre, Some(&cache), None).unwrap();
        let reader = tos_parallel::chain::StoreReader {
            storage: storage.clone(),
            at: pre.ctx.parent_topoheight,
        };
        ex.profile(&tos_parallel::SpecChain, &pre.ctx, &checked.txs, &reader)
            .unwrap()
    };
    let sealed = profile(Hints::Tip);
    assert!(
        sealed.critical_path < 8,
        "critical path {} of 40",
        sealed.critical_path
    );
    // More than 32 calls without hints: not sealable, the whole block.
    let open = profile(Hints::From { from: 0 });
    assert_eq!(open.critical_path, 40);
}
