//! Checks the fuzz targets run (`fuzz/`), shared with the regression test
//! that replays every saved crash input and a seeded smoke run in CI.
//!
//! * [`check_decode`]: decoding never panics; whatever decodes re-encodes to
//!   the same bytes (the format is canonical) and goes through the stateless
//!   checks without panicking.
//! * [`check_execution`]: the input drives a small chain (6 accounts, two
//!   assets, multisig and energy, contracts) through up to three blocks of
//!   structured transactions (every type, any nonce, right or wrong
//!   multisig signers, deploys of fuzzed or canned code, invocations of
//!   deployed, fuzzed or missing contracts with fuzzed deposits, gas and
//!   arguments, raw byte strings); the sequential executor and five
//!   parallel ones (2 and 4 threads, each with the speed guards on and off,
//!   and the optimistic scheduler at 3 threads, guards off, every
//!   transaction speculated) must agree on every status, total and written key, or reject the
//!   block with the same index and code. The unguarded executors must have
//!   run every accepted block on the parallel engine, a block with an
//!   invocation on its optimistic path, and the guarded ones a block with
//!   an invocation in order for `undeclared` or, when they probe it, on
//!   the optimistic path (all asserted), so the check
//!   never compares the sequential engine with itself unknowingly; the
//!   unguarded 2-thread executor gets the block's transactions as a node's
//!   mempool admits them, invocations hinted on the tip (the reference
//!   gets none); the unguarded 4-thread one speculates every transaction
//!   of its optimistic path (`EngineConfig::speculate_all`: validation
//!   sees them all, where the others' calling thread executes each chunk's
//!   front in order); the optimistic scheduler's executor runs every
//!   accepted block, declared or not, on the optimistic path (asserted:
//!   `bench --scheduler optimistic`); [`ExecutionCheck`] says what the
//!   engines saw.

use std::sync::OnceLock;

use ed25519_dalek::SigningKey;

use crate::generator::{account_key, GENERATED_ASSET};
use tos_parallel::chain::constants::COIN;
use tos_parallel::chain::transaction::{
    config_signers, contract_id, public_key_of, EnergyPayload, FeeType, Payload, Transaction,
    TransferOutput, UnsignedTransaction,
};
use tos_parallel::chain::validation::{check_admission, check_stateless};
use tos_parallel::engine::{EngineConfig, Scheduler};
use tos_parallel::pipeline::{
    differences, execute_block, locate_block, Hinter, Run, SpecExecutor, TxCache,
};
use tos_parallel::{
    init_genesis, Block, BlockError, ExecutionPath, Genesis, GenesisAccount, Hash, MemoryStorage,
    PublicKey, StateRead, StateScan, StateWrite, NATIVE_ASSET,
};

/// Decoding check (see the module docs). Panics on a violation.
pub fn check_decode(data: &[u8]) {
    if let Ok((tx, _)) = Transaction::decode(data) {
        assert_eq!(
            tx.encode(),
            data,
            "decoded transaction re-encodes differently"
        );
    }
    let hash = Hash(*blake3::hash(data).as_bytes());
    let _ = check_stateless(data, hash, u64::from(data.first().copied().unwrap_or(0)));
}

struct Input<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.data.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let s = self.data.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
}

const ACCOUNTS: usize = 6;

/// What one [`check_execution`] input drove through the parallel engine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExecutionCheck {
    /// Blocks built from the input (accepted or rejected).
    pub blocks: usize,
    /// Accepted blocks without an invocation, each run by the unguarded
    /// executors on the parallel engine, the optimistic scheduler's on its
    /// optimistic path (asserted).
    pub parallel_blocks: usize,
    /// Accepted blocks with at least two transactions in flight: two or
    /// more transactions of one level of the dependency graph (no
    /// dependency between them, so the scheduler may run them at once);
    /// at least two transactions, so nothing trivially serial.
    pub concurrent_blocks: usize,
    /// Accepted blocks holding an invocation, each run by the unguarded
    /// executors on the optimistic path (asserted).
    pub contract_blocks: usize,
    /// Of those, blocks where an executor's optimistic path executed a
    /// transaction again (a validation caught a changed read).
    pub reexecuted_blocks: usize,
    /// Of those, blocks whose invocations carried hints (the unguarded
    /// 2-thread executor runs the block's transactions as a node admits
    /// them: hinted on the tip, `pipeline::hint`; they must change nothing).
    pub hinted_blocks: usize,
    /// Of those, blocks that executor ran on the dependency graph with the
    /// invocations' hints sealed (`engine/sealed.rs`: the attempt held;
    /// asserted to be the graph's result, compared like every other).
    pub sealed_blocks: usize,
}

/// Programs the fuzz input may deploy besides its own bytes (SPEC §8):
/// stores, payments, balance reads and a loop, so that invocations do
/// more than fail at their first byte (the property tests deploy them too).
pub const PROGRAMS: [&[u8]; 5] = [
    // slot[arg1] = arg0
    &[0x60, 0, 0x35, 0x60, 1, 0x35, 0x55, 0x00],
    // TRANSFER(arg0, DEPOSIT / 2); REVERT if arg1 != 0
    &[
        0x34, 0x60, 2, 0x90, 0x04, 0x60, 0, 0x35, 0xF1, 0x60, 1, 0x35, 0x60, 16, 0x57, 0x00, 0x5B,
        0xFD,
    ],
    // slot[arg0] = BALANCE(arg0); slot 0 += 1
    &[
        0x60, 0, 0x35, 0x31, 0x60, 0, 0x35, 0x55, 0x60, 0, 0x54, 0x60, 1, 0x01, 0x60, 0, 0x55, 0x00,
    ],
    // TRANSFER(slot 1, SELF BALANCE); slot 1 = CALLER (pays the previous caller)
    &[0x30, 0x31, 0x60, 1, 0x54, 0xF1, 0x33, 0x60, 1, 0x55, 0x00],
    // loop arg0 times: slot 0 += 1 (runs out of gas for large arg0)
    &[
        0x60, 0, 0x35, 0x5B, 0x80, 0x15, 0x60, 21, 0x57, 0x60, 1, 0x90, 0x03, 0x60, 0, 0x54, 0x60,
        1, 0x01, 0x60, 0, 0x55, 0x60, 3, 0x56, 0x5B, 0x00,
    ],
];

/// Execution check (see the module docs). Panics on a disagreement, or if
/// an unguarded executor did not run an accepted block on the parallel engine.
pub fn check_execution(data: &[u8]) -> ExecutionCheck {
    // Built once per process: thread pools and keys cost far more than a run.
    // Guarded (the node's default) and unguarded (`always_parallel`), at 2
    // and 4 threads; the optimistic scheduler, unguarded, at 3.
    type World = (
        Vec<SigningKey>,
        Vec<PublicKey>,
        SpecExecutor,
        Vec<SpecExecutor>,
    );
    static WORLD: OnceLock<World> = OnceLock::new();
    let (keys, pubs, sequential, executors) = WORLD.get_or_init(|| {
        let keys: Vec<SigningKey> = (0..ACCOUNTS).map(|i| account_key(0xF022, i)).collect();
        let pubs = keys.iter().map(public_key_of).collect();
        let config = EngineConfig {
            costly_reads: false,
            ..EngineConfig::default()
        };
        let pool = |t| SpecExecutor::new(t, config).expect("pool");
        // The last speculates every transaction of the optimistic path
        // (the others let the calling thread execute each chunk's front in
        // order): validation sees every transaction.
        let all = EngineConfig {
            speculate_all: true,
            ..config
        };
        // Every block on the optimistic path, declared or not, every
        // transaction speculated, at a thread count the others leave out.
        let optimistic = EngineConfig {
            scheduler: Scheduler::Optimistic,
            ..all
        };
        let executors = vec![
            pool(2),
            pool(4),
            pool(2).always_parallel(),
            SpecExecutor::new(4, all).expect("pool").always_parallel(),
            SpecExecutor::new(3, optimistic)
                .expect("pool")
                .always_parallel(),
        ];
        (keys, pubs, SpecExecutor::on_current_pool(config), executors)
    });
    let mut seen = ExecutionCheck::default();
    let genesis = Genesis {
        blocks_per_day: 1,
        accounts: pubs
            .iter()
            .enumerate()
            .map(|(i, k)| GenesisAccount {
                key: *k,
                balances: [(NATIVE_ASSET, 20 * COIN), (GENERATED_ASSET, 1_000)]
                    .into_iter()
                    .take(if i % 2 == 0 { 2 } else { 1 })
                    .collect(),
                nonce: 0,
            })
            .collect(),
    };
    let mut storage = MemoryStorage::new();
    init_genesis(&mut storage, &genesis).expect("fuzz genesis is valid");
    let mut input = Input { data, pos: 0 };
    for _ in 0..3 {
        let Some(block) = build_block(&mut input, &storage, keys, pubs) else {
            return seen;
        };
        seen.blocks += 1;
        let pre = match locate_block(&storage, &block) {
            Ok(p) => p,
            Err(e) => panic!("locate failed: {e}"),
        };
        let seq = execute_block(sequential, &storage, &block, &pre, None, Run::Sequential);
        let invokes = block.txs().iter().any(|b| {
            Transaction::decode(b)
                .is_ok_and(|(tx, _)| matches!(tx.payload, Payload::InvokeContract { .. }))
        });
        // The block as a node admits it: each invocation hinted on the tip.
        let admitted = TxCache::new(4 * block.txs().len().max(256));
        let mut hints = 0;
        let hinter = Hinter::at(&storage, pre.ctx.parent_topoheight);
        for (bytes, hash) in block.txs().iter().zip(block.tx_hashes()) {
            if let Ok(mut vtx) = check_admission(bytes, *hash) {
                hints += hinter.hint(&mut vtx);
                admitted.insert(hash.0, std::sync::Arc::new(vtx));
            }
        }
        let mut concurrent = false;
        let mut reexecuted = false;
        let mut sealed = false;
        for (i, ex) in executors.iter().enumerate() {
            let cache = (i == 2).then_some(&admitted);
            let par = execute_block(ex, &storage, &block, &pre, cache, Run::Parallel);
            match (&seq, &par) {
                (Ok(s), Ok(p)) => {
                    let diffs = differences(s, p);
                    assert!(diffs.is_empty(), "{} threads: {}", ex.threads(), diffs[0]);
                    assert_eq!(s.changes, p.changes);
                    let stats = &p.outcome.stats;
                    if ex.config().scheduler == Scheduler::Optimistic {
                        // Any block: the optimistic path, every transaction
                        // unless the abort bound ran the rest in order.
                        assert!(
                            stats.parallel_engine && stats.path == ExecutionPath::Optimistic,
                            "{stats:?}"
                        );
                        assert_eq!(
                            stats.optimistic == block.txs().len(),
                            stats.reason != tos_parallel::PathReason::Aborts,
                            "{stats:?}"
                        );
                        reexecuted |= invokes && stats.reexecutions > 0;
                    } else if invokes && ex.config().guards {
                        // Open accesses, guards on: in order, and said why,
                        // unless the executor probes its optimistic path (a
                        // class's 18th open block, then every 32nd...).
                        if stats.parallel_engine {
                            assert_eq!(stats.path, ExecutionPath::Optimistic, "{stats:?}");
                        } else {
                            assert_eq!(stats.reason, tos_parallel::PathReason::Undeclared);
                        }
                    } else if invokes && stats.sealed > 0 {
                        // Hinted (only executor 2 gets hints), guards off:
                        // the graph with the hints sealed, when it held.
                        assert_eq!(i, 2, "{stats:?}");
                        assert!(
                            stats.parallel_engine
                                && stats.path == ExecutionPath::Parallel
                                && !stats.escaped,
                            "{stats:?}"
                        );
                        sealed = true;
                    } else if invokes {
                        // Open accesses, guards off: the optimistic path
                        // (executor 2: its sealed attempt did not hold, or
                        // was not tried).
                        assert!(
                            stats.parallel_engine && stats.path == ExecutionPath::Optimistic,
                            "{:?}",
                            stats
                        );
                        // Every transaction, unless the abort bound ran the rest in order.
                        assert!(stats.optimistic > 0);
                        assert_eq!(
                            stats.optimistic == block.txs().len(),
                            stats.reason != tos_parallel::PathReason::Aborts,
                            "{stats:?}"
                        );
                        reexecuted |= stats.reexecutions > 0;
                    } else if !ex.config().guards {
                        assert!(
                            stats.parallel_engine,
                            "an unguarded executor ran the block {:?} ({:?})",
                            stats.path, stats.reason
                        );
                        concurrent |= block.txs().len() >= 2 && stats.largest_batch >= 2;
                    }
                }
                (
                    Err(BlockError::InvalidTransaction {
                        index: a,
                        error: e1,
                        ..
                    }),
                    Err(BlockError::InvalidTransaction {
                        index: b,
                        error: e2,
                        ..
                    }),
                ) => assert_eq!((a, e1), (b, e2)),
                (s, p) => panic!(
                    "sequential {:?} but parallel {:?}",
                    s.as_ref().err(),
                    p.as_ref().err()
                ),
            }
        }
        match seq {
            Ok(s) => {
                if invokes {
                    seen.contract_blocks += 1;
                    seen.reexecuted_blocks += usize::from(reexecuted);
                    seen.hinted_blocks += usize::from(hints > 0);
                    seen.sealed_blocks += usize::from(sealed);
                } else {
                    seen.parallel_blocks += 1;
                }
                seen.concurrent_blocks += usize::from(concurrent);
                storage.commit(&s.changes, &s.meta).expect("commit")
            }
            Err(_) => return seen,
        }
    }
    seen
}

fn build_block(
    input: &mut Input<'_>,
    storage: &MemoryStorage,
    keys: &[SigningKey],
    pubs: &[PublicKey],
) -> Option<Block> {
    let top = storage.top_topoheight().ok()??;
    let count = input.byte()? % 24;
    let mut txs = Vec::with_capacity(count as usize);
    let mut nonces = [0u64; ACCOUNTS];
    for (i, n) in nonces.iter_mut().enumerate() {
        *n = storage.get_nonce(&pubs[i], top).ok()?.unwrap_or(0);
    }
    // Contracts deployed so far (and, below, those this block deploys).
    let mut contracts: Vec<PublicKey> = storage.snapshot(top).ok()?.contracts.into_keys().collect();
    for _ in 0..count {
        let op = input.byte()?;
        let from = (input.byte()? as usize) % ACCOUNTS;
        let arg = input.byte()?;
        let to = (from + 1 + (arg as usize) % (ACCOUNTS - 1)) % ACCOUNTS;
        let asset = if arg & 0x80 != 0 {
            GENERATED_ASSET
        } else {
            NATIVE_ASSET
        };
        let amount = match arg & 0x60 {
            0x00 => u64::from(arg & 0x1F),
            0x20 => u64::from(arg & 0x1F) * 1_000,
            0x40 => u64::from(arg & 0x1F) * COIN,
            _ => u64::MAX - u64::from(arg & 0x1F),
        };
        let mut fee_type = FeeType::Native;
        let payload = match op % 10 {
            0 | 1 => {
                let outs = 1 + (op >> 3) as usize % 3;
                Payload::Transfers(
                    (0..outs)
                        .map(|k| TransferOutput {
                            asset,
                            destination: pubs[(to + k * 2) % ACCOUNTS],
                            amount,
                            extra_data: None,
                        })
                        .filter(|o| o.destination != pubs[from])
                        .chain(std::iter::once(TransferOutput {
                            asset: NATIVE_ASSET,
                            destination: pubs[to],
                            amount: 1,
                            extra_data: None,
                        }))
                        .collect(),
                )
            }
            2 => {
                fee_type = FeeType::Energy;
                Payload::Transfers(vec![TransferOutput {
                    asset,
                    destination: pubs[to],
                    amount,
                    extra_data: None,
                }])
            }
            3 => Payload::Burn {
                asset,
                amount: amount.max(1),
            },
            4 => Payload::Energy(EnergyPayload::FreezeTos {
                amount: COIN * (1 + u64::from(arg % 4)),
                days: 3 + u32::from(op >> 3) % 4,
            }),
            5 => Payload::Energy(EnergyPayload::UnfreezeTos {
                amount: COIN * (1 + u64::from(arg % 4)),
            }),
            6 => {
                let threshold = (op >> 3) % 3;
                let participants = if threshold == 0 {
                    Vec::new()
                } else {
                    (1..=2).map(|k| pubs[(from + k) % ACCOUNTS]).collect()
                };
                Payload::MultiSig {
                    threshold,
                    participants,
                }
            }
            7 => {
                // Deploy: a canned program, or the input's own bytes.
                let code = match op >> 4 {
                    0..=9 => PROGRAMS[(op >> 4) as usize % PROGRAMS.len()].to_vec(),
                    _ => {
                        let len = 1 + input.byte()? as usize % 48;
                        input.take(len)?.to_vec()
                    }
                };
                Payload::DeployContract { code }
            }
            8 => {
                // Invoke: a known contract, or one that does not exist.
                let pick = input.byte()?;
                let contract = match contracts.get(pick as usize % (contracts.len() + 1)) {
                    Some(c) => *c,
                    None => PublicKey([pick; 32]),
                };
                let gas = input.byte()?;
                let max_gas = match gas >> 6 {
                    0 => u64::from(gas & 0x3F),
                    1 => u64::from(gas & 0x3F) * 100,
                    2 => 1 + u64::from(gas & 0x3F) * 1_000,
                    _ => 10_000_000 - u64::from(gas & 0x3F),
                };
                let argc = input.byte()? % 4;
                let mut args = Vec::with_capacity(argc as usize);
                for _ in 0..argc {
                    let a = input.byte()?;
                    args.push(match a >> 6 {
                        0 => Hash(pubs[a as usize % ACCOUNTS].0),
                        1 => {
                            let mut w = [0u8; 32];
                            w[31] = a & 0x3F;
                            Hash(w)
                        }
                        _ => Hash([a; 32]),
                    });
                }
                Payload::InvokeContract {
                    contract,
                    deposit: amount,
                    max_gas: max_gas.max(1),
                    args,
                }
            }
            _ => {
                // Raw bytes: anything, mostly malformed.
                let len = input.byte()? as usize;
                txs.push(input.take(len)?.to_vec());
                continue;
            }
        };
        let nonce_mode = input.byte()?;
        let nonce = match nonce_mode % 8 {
            0 => nonces[from] + 1,
            1 => nonces[from].saturating_sub(1),
            _ => nonces[from],
        };
        if nonce == nonces[from] {
            nonces[from] += 1;
        }
        if matches!(payload, Payload::DeployContract { .. }) {
            // Where it lands if it succeeds (a later invocation may find it).
            contracts.push(contract_id(&pubs[from], nonce));
        }
        // Multisig signers: the source's own config (if any), or a wrong one.
        let config = storage.get_multisig(&pubs[from], top).ok()?;
        let signers: Vec<(u8, &SigningKey)> = match (&config, nonce_mode & 0x10) {
            (Some(c), 0) => {
                config_signers(c, |p| pubs.iter().position(|q| q == p).map(|k| &keys[k]))
            }
            (_, 0) => Vec::new(),
            _ => vec![(nonce_mode >> 5, &keys[to])],
        };
        let tx = UnsignedTransaction {
            payload,
            fee: 0,
            fee_type,
            nonce,
            reference_hash: Hash::default(),
            reference_topoheight: top,
        }
        .sign_with_minimum_fee(&keys[from], &signers, u64::from(nonce_mode >> 6));
        txs.push(tx.encode());
    }
    let miner = pubs[(input.byte().unwrap_or(0) as usize) % ACCOUNTS];
    Some(Block::new(Some(top + 1), miner, txs))
}
