//! The oracle runner: random blocks over a small key set, executed by the
//! sequential executor (the reference) and by the parallel executor at every
//! thread count; any difference in statuses, totals, change set or dumped
//! state fails the test with the first difference.
#![allow(dead_code)]

use std::collections::HashMap;

use ed25519_dalek::SigningKey;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use tos_parallel::chain::constants::COIN;
use tos_parallel::chain::transaction::{
    config_signers, public_key_of, EnergyPayload, FeeType, Payload, TransferOutput,
    UnsignedTransaction,
};
use tos_parallel::chain::transaction::{contract_id, Transaction};
use tos_parallel::chain::validation::check_admission;
use tos_parallel::engine::EngineConfig;
use tos_parallel::pipeline::{
    differences, execute_block, locate_block, ExecutedBlock, Hinter, Run, SpecExecutor, TxCache,
};
use tos_parallel::{
    init_genesis, Block, ExecutionPath, Genesis, Hash, MemoryStorage, PublicKey, Scheduler,
    StateRead, NATIVE_ASSET,
};
use tos_parallel_tools::generator::{
    account_key, generate, GeneratedChain, GeneratorConfig, Workload,
};

/// A chain of `tools`' generator (`blocks` blocks of `txs_per_block`
/// transactions of `workload` over `accounts` accounts, seed `seed`) and
/// a memory store holding its genesis.
pub fn generated(
    workload: Workload,
    accounts: usize,
    txs_per_block: usize,
    blocks: usize,
    seed: u64,
) -> (GeneratedChain, MemoryStorage) {
    let chain = generate(&GeneratorConfig {
        workload,
        accounts,
        txs_per_block,
        blocks,
        seed,
    })
    .expect("a generated chain");
    let mut storage = MemoryStorage::new();
    init_genesis(&mut storage, &chain.genesis).expect("its genesis");
    (chain, storage)
}

/// A second asset.
pub const ASSET_B: Hash = Hash([9u8; 32]);

/// Accounts and their keys for a test chain.
pub struct World {
    pub keys: Vec<SigningKey>,
    pub pubs: Vec<PublicKey>,
    pub index: HashMap<PublicKey, usize>,
}

impl World {
    pub fn new(accounts: usize, seed: u64) -> World {
        let keys: Vec<SigningKey> = (0..accounts).map(|i| account_key(seed, i)).collect();
        let pubs: Vec<PublicKey> = keys.iter().map(public_key_of).collect();
        let index = pubs.iter().enumerate().map(|(i, p)| (*p, i)).collect();
        World { keys, pubs, index }
    }

    /// Genesis funding every account with native coins and half of them with ASSET_B.
    pub fn genesis(&self, blocks_per_day: u64) -> Genesis {
        Genesis {
            blocks_per_day,
            accounts: self
                .pubs
                .iter()
                .enumerate()
                .map(|(i, k)| tos_parallel::chain::genesis::GenesisAccount {
                    key: *k,
                    balances: [(NATIVE_ASSET, 50 * COIN)]
                        .into_iter()
                        .chain((i % 2 == 0).then_some((ASSET_B, 1_000_000)))
                        .collect(),
                    nonce: 0,
                })
                .collect(),
        }
    }

    pub fn storage(&self, blocks_per_day: u64) -> MemoryStorage {
        let mut s = MemoryStorage::new();
        init_genesis(&mut s, &self.genesis(blocks_per_day)).expect("genesis");
        s
    }
}

/// Contention: how many accounts a block draws its senders and receivers from.
#[derive(Clone, Copy, Debug)]
pub enum Contention {
    /// Every transaction uses accounts no other transaction uses (as far as the world allows).
    Disjoint,
    /// Uniform over `n` accounts.
    Keys(usize),
}

/// Picks accounts of `n` as `contention` says: in turn (disjoint) or
/// among the first `k`.
pub fn picker(contention: Contention, n: usize) -> impl FnMut(&mut ChaCha8Rng) -> usize {
    let mut next = 0usize;
    move |rng: &mut ChaCha8Rng| match contention {
        Contention::Disjoint => {
            next += 1;
            (next - 1) % n
        }
        Contention::Keys(k) => rng.gen_range(0..k.clamp(2, n)),
    }
}

/// Builds a block of `txs` chaotic transactions on `storage`: every type,
/// correct and wrong nonces, multisig proofs right and wrong, energy fees,
/// amounts over the balance. Nonces are tracked optimistically within the
/// block, so failures cascade as they would in a real mempool.
pub fn chaos_block<S: StateRead>(
    world: &World,
    storage: &S,
    rng: &mut ChaCha8Rng,
    txs: usize,
    contention: Contention,
) -> Block {
    let top = storage.top_topoheight().unwrap().unwrap();
    let n = world.pubs.len();
    let mut next_nonce: HashMap<usize, u64> = HashMap::new();
    let mut pick = picker(contention, n);
    let mut out = Vec::with_capacity(txs);
    for _ in 0..txs {
        let i = pick(rng);
        let mut j = pick(rng);
        if j == i {
            j = (i + 1) % n;
        }
        let src = world.pubs[i];
        let nonce_entry = next_nonce
            .entry(i)
            .or_insert_with(|| storage.get_nonce(&src, top).unwrap().unwrap_or(0));
        let mut nonce = *nonce_entry;
        if rng.gen_bool(0.05) {
            nonce = nonce.wrapping_add(rng.gen_range(1..3));
        } else {
            *nonce_entry += 1;
        }
        let asset = if rng.gen_bool(0.3) {
            ASSET_B
        } else {
            NATIVE_ASSET
        };
        let mut fee_type = FeeType::Native;
        let payload = match rng.gen_range(0..100u32) {
            0..=54 => {
                let outs = rng.gen_range(1..=3usize);
                if rng.gen_bool(0.1) {
                    fee_type = FeeType::Energy;
                }
                Payload::Transfers(
                    (0..outs)
                        .map(|k| {
                            let mut d = if k == 0 { j } else { pick(rng) };
                            if d == i {
                                d = (i + 1) % n;
                            }
                            TransferOutput {
                                asset: if k == 0 { asset } else { NATIVE_ASSET },
                                destination: world.pubs[d],
                                amount: if rng.gen_bool(0.05) {
                                    60 * COIN
                                } else {
                                    rng.gen_range(0..10_000)
                                },
                                extra_data: rng.gen_bool(0.1).then(|| vec![7u8; 16]),
                            }
                        })
                        .collect(),
                )
            }
            55..=62 => Payload::Burn {
                asset,
                amount: rng.gen_range(1..5_000),
            },
            63..=74 => Payload::Energy(EnergyPayload::FreezeTos {
                amount: rng.gen_range(1..=3) * COIN,
                days: rng.gen_range(3..=5),
            }),
            75..=84 => Payload::Energy(EnergyPayload::UnfreezeTos {
                amount: rng.gen_range(1..=3) * COIN,
            }),
            85..=93 => {
                let count = rng.gen_range(1..=3usize).min(n - 1);
                let mut participants = Vec::new();
                let mut k = i;
                while participants.len() < count {
                    k = (k + 1 + rng.gen_range(0..n)) % n;
                    if k != i && !participants.contains(&world.pubs[k]) {
                        participants.push(world.pubs[k]);
                    }
                }
                Payload::MultiSig {
                    threshold: rng.gen_range(1..=count as u8),
                    participants,
                }
            }
            _ => Payload::MultiSig {
                threshold: 0,
                participants: Vec::new(),
            },
        };
        // Proof from the config at block start (wrong if the block changes it,
        // or with a random bad signer sometimes).
        let config = storage.get_multisig(&src, top).unwrap();
        let mut signers: Vec<(u8, &SigningKey)> = match &config {
            Some(c) => config_signers(c, |p| world.index.get(p).map(|&k| &world.keys[k])),
            None => Vec::new(),
        };
        if rng.gen_bool(0.03) {
            signers = vec![(0, &world.keys[j])];
        }
        let extra = rng.gen_range(0..3);
        let tx = UnsignedTransaction {
            payload,
            fee: 0,
            fee_type,
            nonce,
            reference_hash: Hash::default(),
            reference_topoheight: top,
        }
        .sign_with_minimum_fee(&world.keys[i], &signers, extra);
        out.push(tx.encode());
    }
    let miner = if rng.gen_bool(0.5) {
        world.pubs[rng.gen_range(0..n)]
    } else {
        PublicKey([0xAA; 32])
    };
    Block::new(Some(top + 1), miner, out)
}

/// Whether `block` holds an invocation that decodes (open accesses).
pub fn has_invocation(block: &Block) -> bool {
    block.txs().iter().any(|b| {
        Transaction::decode(b)
            .is_ok_and(|(tx, _)| matches!(tx.payload, Payload::InvokeContract { .. }))
    })
}

/// Random code: `len` bytes, mostly instructions (pushes, arithmetic,
/// storage, jumps to small offsets), some no instruction at all.
pub fn random_code(rng: &mut ChaCha8Rng, len: usize) -> Vec<u8> {
    const COMMON: [u8; 24] = [
        0x00, 0x01, 0x02, 0x03, 0x04, 0x06, 0x10, 0x14, 0x15, 0x20, 0x30, 0x31, 0x33, 0x34, 0x35,
        0x36, 0x50, 0x54, 0x55, 0x56, 0x57, 0x5B, 0x80, 0xF1,
    ];
    (0..len)
        .map(|_| match rng.gen_range(0..10u32) {
            0..=2 => 0x60,              // PUSH1 (the next byte is its data)
            3 => rng.gen_range(0..8u8), // small data / STOP / ADD...
            4 => rng.gen(),             // anything
            _ => COMMON[rng.gen_range(0..COMMON.len())],
        })
        .collect()
}

/// A block of contract transactions and transfers: deploys (of `programs`
/// or random code), invocations of `contracts` (and of missing ones) with
/// random deposits, gas and arguments (accounts of `world`, small numbers,
/// random words), and plain transfers; senders picked as `contention` says.
/// Every deploy's id is pushed to `contracts` (it exists once the block
/// succeeds it; a failed one is a missing contract for later blocks).
pub fn contract_chaos_block<S: StateRead>(
    world: &World,
    storage: &S,
    rng: &mut ChaCha8Rng,
    txs: usize,
    contention: Contention,
    programs: &[Vec<u8>],
    contracts: &mut Vec<PublicKey>,
) -> Block {
    let top = storage.top_topoheight().unwrap().unwrap();
    let n = world.pubs.len();
    let mut next_nonce: HashMap<usize, u64> = HashMap::new();
    let mut pick = picker(contention, n);
    let mut out = Vec::with_capacity(txs);
    for _ in 0..txs {
        let i = pick(rng);
        let j = {
            let j = pick(rng);
            if j == i {
                (i + 1) % n
            } else {
                j
            }
        };
        let src = world.pubs[i];
        let entry = next_nonce
            .entry(i)
            .or_insert_with(|| storage.get_nonce(&src, top).unwrap().unwrap_or(0));
        let nonce = *entry;
        *entry += 1;
        let payload = match rng.gen_range(0..100u32) {
            0..=14 => {
                let code = if rng.gen_bool(0.7) && !programs.is_empty() {
                    programs[rng.gen_range(0..programs.len())].clone()
                } else {
                    let len = rng.gen_range(1..40);
                    random_code(rng, len)
                };
                contracts.push(contract_id(&src, nonce));
                Payload::DeployContract { code }
            }
            15..=64 => {
                let contract = if contracts.is_empty() || rng.gen_bool(0.1) {
                    PublicKey([rng.gen(); 32])
                } else {
                    contracts[rng.gen_range(0..contracts.len())]
                };
                let args = (0..rng.gen_range(0..4))
                    .map(|_| match rng.gen_range(0..3u32) {
                        0 => Hash(world.pubs[pick(rng)].0),
                        1 => {
                            let mut w = [0u8; 32];
                            w[31] = rng.gen_range(0..4);
                            Hash(w)
                        }
                        _ => Hash(rng.gen()),
                    })
                    .collect();
                Payload::InvokeContract {
                    contract,
                    deposit: if rng.gen_bool(0.03) {
                        60 * COIN
                    } else {
                        rng.gen_range(0..10_000)
                    },
                    max_gas: [5, 60, 500, 5_000, 100_000][rng.gen_range(0..5)],
                    args,
                }
            }
            _ => pay(world, j, rng.gen_range(0..10_000)),
        };
        let tx = UnsignedTransaction {
            payload,
            fee: 0,
            fee_type: FeeType::Native,
            nonce,
            reference_hash: Hash::default(),
            reference_topoheight: top,
        }
        .sign_with_minimum_fee(&world.keys[i], &[], 0);
        out.push(tx.encode());
    }
    Block::new(Some(top + 1), world.pubs[rng.gen_range(0..n)], out)
}

/// A native transfer of `amount` to account `to`.
pub fn pay(world: &World, to: usize, amount: u64) -> Payload {
    Payload::Transfers(vec![tos_parallel::chain::transaction::TransferOutput {
        asset: tos_parallel::NATIVE_ASSET,
        destination: world.pubs[to],
        amount,
        extra_data: None,
    }])
}

pub fn signed_tx(world: &World, from: usize, nonce: u64, payload: Payload) -> Vec<u8> {
    UnsignedTransaction {
        payload,
        fee: 0,
        fee_type: FeeType::Native,
        nonce,
        reference_hash: Hash::default(),
        reference_topoheight: 0,
    }
    .sign_with_minimum_fee(&world.keys[from], &[], 0)
    .encode()
}

/// The sequential reference engine (on the calling thread).
pub fn sequential() -> SpecExecutor {
    SpecExecutor::on_current_pool(EngineConfig {
        costly_reads: false,
        ..EngineConfig::default()
    })
}

/// Executes `block` on `storage` with the sequential engine (the reference).
pub fn run_sequential<S: StateRead + Clone>(storage: &S, block: &Block) -> ExecutedBlock {
    let pre = locate_block(storage, block).expect("locate");
    execute_block(&sequential(), storage, block, &pre, None, Run::Sequential).expect("sequential")
}

/// Executes `block` on `storage` with `ex` (its guards as configured).
pub fn run_parallel<S: StateRead + Clone>(
    ex: &SpecExecutor,
    storage: &S,
    block: &Block,
) -> ExecutedBlock {
    let pre = locate_block(storage, block).expect("locate");
    execute_block(ex, storage, block, &pre, None, Run::Parallel).expect("parallel")
}

/// `par`, run by `ex` (`how` it ran, for the message), has the sequential
/// result `seq` of block `topoheight`: statuses, totals, changes, meta.
fn assert_same(
    seq: &ExecutedBlock,
    par: &ExecutedBlock,
    ex: &SpecExecutor,
    how: &str,
    topoheight: u64,
) {
    let diffs = differences(seq, par);
    assert!(
        diffs.is_empty(),
        "{} threads ({:?}){how}, block {topoheight}: {} difference(s), first: {}",
        ex.threads(),
        ex.config().scheduler,
        diffs.len(),
        diffs[0]
    );
    assert!(seq.outcome.same_result(&par.outcome));
    assert_eq!(seq.changes, par.changes);
    assert_eq!(seq.meta, par.meta);
}

thread_local! {
    /// Blocks [`assert_equivalent`] saw run on the dependency graph with
    /// their invocations' hints sealed, on this thread (one test's).
    pub static SEALED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Executes `block` on `storage` sequentially and in parallel with each of
/// `executors`; panics with the first difference, or if an executor whose
/// guards are off did not run the block on the parallel engine. A block
/// holding an invocation also runs, on every executor of the graph
/// scheduler (the node's default, guards on, and the unguarded one), as a
/// node admits it: its transactions admitted and each invocation hinted on
/// the block's parent state (`Hinter`), so that the sealed attempt
/// (`engine/sealed.rs`) meets every thread count and contention; it must
/// give the same result: on the graph with the hints sealed (counted in
/// [`SEALED`]) or, the attempt void or not tried, unguarded on the
/// optimistic path, guarded wherever the guards send it. Returns the
/// sequential result.
pub fn assert_equivalent<S: StateRead + Clone>(
    storage: &S,
    block: &Block,
    executors: &[SpecExecutor],
) -> ExecutedBlock {
    let pre = locate_block(storage, block).expect("locate");
    let seq = run_sequential(storage, block);
    for ex in executors {
        let par = execute_block(ex, storage, block, &pre, None, Run::Parallel).expect("parallel");
        assert_same(&seq, &par, ex, "", pre.topoheight());
        if has_invocation(block) && ex.config().guards {
            // Open accesses, guards on: in order, and said why, unless the
            // executor probes its optimistic path (a size's 18th open
            // block, then after 32, 64, ... more).
            let stats = &par.outcome.stats;
            if stats.parallel_engine {
                assert_eq!(stats.path, ExecutionPath::Optimistic, "{stats:?}");
            } else {
                let why = if ex.threads() == 1 {
                    tos_parallel::PathReason::OneThread
                } else {
                    tos_parallel::PathReason::Undeclared
                };
                assert_eq!(stats.reason, why);
            }
        } else if has_invocation(block) || ex.config().scheduler == Scheduler::Optimistic {
            // Guards off, open accesses or the optimistic scheduler: the
            // optimistic path, every transaction in its chunks unless the
            // abort bound ran the rest in order.
            let stats = &par.outcome.stats;
            assert!(stats.parallel_engine, "{stats:?}");
            assert_eq!(stats.path, ExecutionPath::Optimistic, "{stats:?}");
            assert!(stats.optimistic > 0 || block.txs().is_empty(), "{stats:?}");
            assert_eq!(
                stats.optimistic == block.txs().len(),
                stats.reason != tos_parallel::PathReason::Aborts,
                "{stats:?}"
            );
        } else if !ex.config().guards {
            assert!(
                par.outcome.stats.parallel_engine,
                "{} threads ({:?}): the parallel engine did not run: {:?}",
                ex.threads(),
                ex.config().scheduler,
                par.outcome.stats
            );
        }
    }
    if has_invocation(block) {
        let admitted = TxCache::new(4 * block.txs().len().max(256));
        let hinter = Hinter::at(storage, pre.ctx.parent_topoheight);
        for (bytes, hash) in block.txs().iter().zip(block.tx_hashes()) {
            if let Ok(mut vtx) = check_admission(bytes, *hash) {
                hinter.hint(&mut vtx);
                admitted.insert(hash.0, std::sync::Arc::new(vtx));
            }
        }
        for ex in executors
            .iter()
            .filter(|e| e.config().scheduler == Scheduler::Graph)
        {
            let par = execute_block(ex, storage, block, &pre, Some(&admitted), Run::Parallel)
                .expect("parallel, hinted");
            assert_same(&seq, &par, ex, ", hinted", pre.topoheight());
            let stats = &par.outcome.stats;
            if stats.sealed > 0 {
                assert_eq!(stats.path, ExecutionPath::Parallel, "hinted: {stats:?}");
                assert!(!stats.escaped && stats.optimistic == 0, "hinted: {stats:?}");
                SEALED.with(|n| n.set(n.get() + 1));
            } else if !ex.config().guards {
                assert!(stats.parallel_engine, "hinted: {stats:?}");
                assert_eq!(stats.path, ExecutionPath::Optimistic, "hinted: {stats:?}");
            }
        }
    }
    seq
}

/// Executors for the thread counts the suite sweeps, each with every
/// scheduler. For each thread count: the default executor (graph
/// scheduler, in-order guards on; reads costly at 3 threads, as on a
/// database, cheap at the others), and the graph and batch schedulers with
/// the guards off, so that blocks the guards would run in order (one
/// thread, two accounts, a chain) still exercise the parallel machinery. A
/// contract block runs on the optimistic path under those two: the graph's
/// executor as a node runs it (the calling thread executes each chunk's
/// front in order), the batch scheduler's with every transaction
/// speculated (`speculate_all`), so that validation sees every transaction
/// whatever the helpers' timing. Then the optimistic scheduler, guards
/// off, both ways (the front in order, and every transaction speculated):
/// every block, declared or not, on the optimistic path (`bench
/// --scheduler optimistic`), which [`assert_equivalent`] checks it took.
/// Indices within a thread count's five: [`GRAPH_UNGUARDED`] is the graph
/// scheduler with the guards off.
pub fn executors(threads: &[usize]) -> Vec<SpecExecutor> {
    threads
        .iter()
        .flat_map(|&t| {
            let pool = |scheduler, speculate_all| {
                let config = EngineConfig {
                    scheduler,
                    costly_reads: false,
                    speculate_all,
                    ..EngineConfig::default()
                };
                SpecExecutor::new(t, config).expect("pool")
            };
            // The node's default executor, its reads costly (a database:
            // serial blocks still planned for the prefetch, open blocks
            // run in order with their keys read by the pool first) at 3
            // threads, cheap (memory) at the others (the guards' tests
            // expect those paths at 2).
            let node = EngineConfig {
                costly_reads: t == 3,
                ..EngineConfig::default()
            };
            let group: [SpecExecutor; PER_THREAD_COUNT] = [
                SpecExecutor::new(t, node).expect("pool"),
                pool(Scheduler::Graph, false).always_parallel(),
                pool(Scheduler::Batches, true).always_parallel(),
                pool(Scheduler::Optimistic, false).always_parallel(),
                pool(Scheduler::Optimistic, true).always_parallel(),
            ];
            group
        })
        .collect()
}

/// Executors per thread count in [`executors`].
pub const PER_THREAD_COUNT: usize = 5;

/// Index, within a thread count's executors, of the graph scheduler with
/// the guards off.
pub const GRAPH_UNGUARDED: usize = 1;

pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// Number of proptest cases: modest in CI, raised with TOS_PROPTEST_CASES.
pub fn proptest_cases(default: u32) -> u32 {
    std::env::var("TOS_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
