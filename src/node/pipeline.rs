//! The SPEC block pipeline every execution mode shares (SPEC §3 and §4):
//! locate the block on the stored state ([`locate_block`]), check its
//! transactions, from the verification cache or afresh
//! ([`check_block`]), run it on an engine path ([`run_block`]), and turn
//! the engine's result into what is committed ([`ExecutedBlock`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rayon::prelude::*;

use crate::chain::block::Block;
use crate::chain::constants::MAXIMUM_SUPPLY;
use crate::chain::error::StatelessError;
use crate::chain::validation::{check_reference, check_stateless, BlockGas};
use crate::chain::{BlockContext, SpecChain, StoreReader, VerifiedTx, SUM_BURNED, SUM_FEES};
use crate::engine::{compare, Executed, ExecutionPath, Executor, MismatchOf, VerificationCache};
use crate::node::error::{contain, BlockError};
use crate::node::outcome::{BlockOutcome, BlockStats, TxResult, TxStatus};
use crate::{BlockMeta, ChangeSet, Hash, StateRead, TopoHeight};

/// The engine on the SPEC chain.
pub type SpecExecutor = Executor<SpecChain>;

/// The SPEC chain's verification cache (admitted transactions).
pub type TxCache = VerificationCache<VerifiedTx>;

/// Where a block goes: the state it executes on.
#[derive(Clone, Copy, Debug)]
pub struct PreState {
    /// Rule context (parent topoheight, blocks per day, miner, reward).
    pub ctx: BlockContext,
    /// Metadata of the parent state.
    pub parent: BlockMeta,
    /// Hash of the block at the topoheight it produces.
    pub hash: Hash,
}

impl PreState {
    /// Topoheight the block produces.
    pub fn topoheight(&self) -> TopoHeight {
        self.ctx.topoheight()
    }
}

/// A block executed but not yet committed.
#[derive(Clone, Debug)]
pub struct ExecutedBlock {
    /// Statuses, totals, stats.
    pub outcome: BlockOutcome,
    /// Every write, to commit atomically.
    pub changes: ChangeSet,
    /// Metadata of the produced topoheight.
    pub meta: BlockMeta,
}

/// The block reward on a chain that emitted `emitted_supply` (SPEC §4.2).
pub fn block_reward(emitted_supply: u64) -> u64 {
    MAXIMUM_SUPPLY.saturating_sub(emitted_supply) >> 20
}

/// Finds where `block` goes on `storage` (SPEC §3): on top, or already
/// applied (same hash: [`BlockError::AlreadyApplied`]), or an error.
pub fn locate_block<S: StateRead>(storage: &S, block: &Block) -> Result<PreState, BlockError> {
    let top = storage
        .top_topoheight()?
        .ok_or(BlockError::NotInitialized)?;
    let params = storage.chain_params()?.ok_or(BlockError::NotInitialized)?;
    let next = top + 1;
    if let Some(t) = block.topoheight() {
        if t > next {
            return Err(BlockError::TopoheightGap { next, got: t });
        }
        if t < next {
            let stored = storage
                .block_meta(t)?
                .ok_or_else(|| BlockError::Invariant(format!("no metadata at topoheight {t}")))?;
            return if t > 0 && stored.hash == block.hash_at(t) {
                Err(BlockError::AlreadyApplied { topoheight: t })
            } else {
                Err(BlockError::ConflictingBlock {
                    topoheight: t,
                    stored: stored.hash,
                })
            };
        }
    }
    let parent = storage
        .block_meta(top)?
        .ok_or_else(|| BlockError::Invariant(format!("no metadata at top {top}")))?;
    Ok(PreState {
        ctx: BlockContext {
            parent_topoheight: top,
            blocks_per_day: params.blocks_per_day,
            miner: *block.miner(),
            reward: block_reward(parent.emitted_supply),
        },
        parent,
        hash: block.hash_at(next),
    })
}

/// Hints an admitted invocation ([`Accesses::hint`](crate::engine::Accesses::hint)):
/// runs its contract on `storage` at topoheight `at` (the tip, when a
/// mempool admits it) for a block on top of it, and keeps the keys it
/// touched beyond its declaration (its slots, the accounts its code read
/// or paid) with the transaction, replacing any earlier hints. Returns how
/// many it kept. Any other transaction, or an exploration that cannot run
/// to its end (the contract is missing, the source cannot pay the fee or
/// the deposit here, a read failed), keeps none. A hint only lets the
/// engine read the key before the block runs: stale or wrong, it costs
/// one read, never a different result. For many transactions on one
/// state, build one [`Hinter`].
pub fn hint<S: StateRead + Clone>(vtx: &mut VerifiedTx, storage: &S, at: TopoHeight) -> usize {
    Hinter::at(storage, at).hint(vtx)
}

/// Hints admitted invocations ([`hint`]) on one state: the reader and the
/// context are made once (one storage clone, one read of the chain's
/// parameters) and shared, also between threads, by every transaction of
/// a batch.
#[derive(Clone, Debug)]
pub struct Hinter<S> {
    reader: StoreReader<S>,
    ctx: BlockContext,
}

impl<S: StateRead + Clone> Hinter<S> {
    /// Hints on `storage` at topoheight `at`, for a block on top of it.
    pub fn at(storage: &S, at: TopoHeight) -> Self {
        Hinter {
            ctx: BlockContext {
                parent_topoheight: at,
                blocks_per_day: storage
                    .chain_params()
                    .ok()
                    .flatten()
                    .map_or(1, |p| p.blocks_per_day),
                // The miner is not known yet; no contract of SPEC v2 reads it.
                miner: crate::PublicKey([0; 32]),
                reward: 0,
            },
            reader: StoreReader {
                storage: storage.clone(),
                at,
            },
        }
    }

    /// Hints `vtx` ([`hint`]); returns how many keys it kept.
    pub fn hint(&self, vtx: &mut VerifiedTx) -> usize {
        vtx.accesses.clear_hints();
        if !vtx.accesses.is_open() {
            return 0;
        }
        match crate::engine::discover(&SpecChain, &self.ctx, vtx, &self.reader) {
            Ok(keys) => {
                for (key, mode) in keys {
                    vtx.accesses.hint(key, mode);
                }
                // Sealed now, off the block's path (`engine/sealed.rs`).
                vtx.accesses.seal();
                vtx.accesses.hints().len()
            }
            Err(_) => 0,
        }
    }
}

/// A block's transactions, checked (SPEC §5).
#[derive(Clone, Debug)]
pub struct CheckedBlock {
    /// Every transaction, in block order.
    pub txs: Vec<Arc<VerifiedTx>>,
    /// How many came from the verification cache.
    pub cache_hits: usize,
    /// How many were checked afresh.
    pub cache_misses: usize,
    /// Time spent.
    pub verify: Duration,
}

/// Fewer cache misses than this are checked on the calling thread: a hand
/// over to the pool (tens of microseconds to wake a worker) costs more
/// than a few signature checks.
const PARALLEL_MISSES: usize = 16;

/// Checks every transaction of `block` (SPEC §5): a transaction found in
/// `cache` (admitted earlier, so checks 1-6 and 8 passed) gets check 7
/// (`reference_in_future`) only; any other gets checks 1-8; then each, in
/// block order, check 9 (`block_gas_exceeded`, [`BlockGas`]), which no
/// cache can answer (it depends on the block's earlier invocations). The first
/// failing index, in block order, rejects the block with exactly the code a
/// fresh check gives. The cache is looked up on the calling thread; the
/// misses are checked on `executor`'s pool when given and there are enough
/// of them, else on the calling thread.
pub fn check_block(
    block: &Block,
    pre: &PreState,
    cache: Option<&TxCache>,
    executor: Option<&SpecExecutor>,
) -> Result<CheckedBlock, BlockError> {
    let start = Instant::now();
    let parent = pre.ctx.parent_topoheight;
    let hashes = block.tx_hashes();
    let txs = block.txs();
    let lookup = |hash: &Hash| {
        cache
            .and_then(|c| c.get(&hash.0))
            .map(|vtx| check_reference(&vtx, parent).map(|()| vtx))
    };
    // On the calling thread whatever the block's size: shared with the pool,
    // 10,000 lookups took 1.2-1.3 ms against 0.9-1.0 here (two threads
    // bouncing the shards' lock words between their cores).
    let mut misses: Vec<usize> = Vec::new();
    let mut checked: Vec<Option<Result<Arc<VerifiedTx>, StatelessError>>> = hashes
        .iter()
        .enumerate()
        .map(|(i, hash)| {
            let hit = lookup(hash);
            if hit.is_none() {
                misses.push(i);
            }
            hit
        })
        .collect();
    let fresh = |&i: &usize| check_stateless(&txs[i], hashes[i], parent).map(Arc::new);
    let checked_misses: Vec<Result<Arc<VerifiedTx>, StatelessError>> = match executor {
        Some(ex) if misses.len() >= PARALLEL_MISSES && ex.threads() > 1 => ex.install(|| {
            misses
                .par_iter()
                .with_min_len(PARALLEL_MISSES / 2)
                .map(fresh)
                .collect()
        }),
        _ => misses.iter().map(fresh).collect(),
    };
    for (i, r) in misses.iter().zip(checked_misses) {
        checked[*i] = Some(r);
    }
    // Check 9 (`block_gas_exceeded`) in block order, after each
    // transaction's own checks, fresh or cached.
    let mut gas = BlockGas::new();
    let mut out = Vec::with_capacity(checked.len());
    for (index, r) in checked.into_iter().enumerate() {
        let r = r.ok_or_else(|| BlockError::Invariant("a transaction was not checked".into()))?;
        let r = r.and_then(|vtx| gas.check(&vtx.tx).map(|()| vtx));
        out.push(r.map_err(|error| BlockError::InvalidTransaction {
            topoheight: pre.topoheight(),
            index,
            error,
        })?);
    }
    Ok(CheckedBlock {
        cache_misses: misses.len(),
        cache_hits: out.len() - misses.len(),
        txs: out,
        verify: start.elapsed(),
    })
}

/// Which engine path runs a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Run {
    /// The sequential reference engine, on the calling thread.
    Sequential,
    /// The executor, with its guards as configured.
    Parallel,
    /// The parallel engine whatever the guards would choose.
    Unguarded,
    /// Both: the sequential result is kept, every difference is logged and
    /// counted (`BlockStats::mismatches`); the parallel side runs unguarded.
    Verify,
}

/// Runs `checked` (the transactions of `block`) on `storage` at `pre`, on
/// the path `run` says. Nothing is written: commit the returned change set.
pub fn run_block<S: StateRead + Clone>(
    executor: &SpecExecutor,
    storage: &S,
    block: &Block,
    pre: &PreState,
    checked: &CheckedBlock,
    run: Run,
) -> Result<ExecutedBlock, BlockError> {
    let chain = SpecChain;
    let reader = StoreReader {
        storage: storage.clone(),
        at: pre.ctx.parent_topoheight,
    };
    let txs = &checked.txs[..];
    let (executed, mismatches) = match run {
        Run::Sequential => (
            executor.execute_sequential(&chain, &pre.ctx, txs, &reader)?,
            0,
        ),
        Run::Parallel => (executor.execute(&chain, &pre.ctx, txs, &reader)?, 0),
        Run::Unguarded => (
            executor.execute_with(&chain, &pre.ctx, txs, &reader, false)?,
            0,
        ),
        Run::Verify => verify(executor, &chain, pre, txs, &reader, storage)?,
    };
    let mut out = finish(executed, block, pre, checked)?;
    out.outcome.stats.mismatches = mismatches;
    Ok(out)
}

/// [`check_block`] then [`run_block`]: the transactions of `block` checked
/// (from `cache` where admitted) and run on `storage` at `pre` as `run`
/// says. Cache misses are checked on `executor`'s pool, unless `run` is
/// [`Run::Sequential`]; the engine's team starts on the calling thread.
/// Nothing is written.
pub fn execute_block<S: StateRead + Clone>(
    executor: &SpecExecutor,
    storage: &S,
    block: &Block,
    pre: &PreState,
    cache: Option<&TxCache>,
    run: Run,
) -> Result<ExecutedBlock, BlockError> {
    let pool = (run != Run::Sequential).then_some(executor);
    if run != Run::Sequential {
        // The pool's helpers wake while the block is checked.
        executor.prepare(
            block.txs().len(),
            run == Run::Parallel && executor.config().guards,
        );
    }
    let checked = contain(|| check_block(block, pre, cache, pool))?;
    run_block(executor, storage, block, pre, &checked, run)
}

/// Verify mode: both engines on the same pre-state, the sequential result
/// kept, every difference logged (at `error`) and counted. A failure of
/// the parallel side alone counts as one mismatch.
fn verify<S: StateRead + Clone>(
    executor: &SpecExecutor,
    chain: &SpecChain,
    pre: &PreState,
    txs: &[Arc<VerifiedTx>],
    reader: &StoreReader<S>,
    storage: &S,
) -> Result<(Executed<SpecChain>, usize), BlockError> {
    let mut seq = executor.execute_sequential(chain, &pre.ctx, txs, reader)?;
    let parallel_reader = StoreReader {
        storage: storage.clone(),
        at: pre.ctx.parent_topoheight,
    };
    let par = executor.execute_with(chain, &pre.ctx, txs, &parallel_reader, false);
    let par = match par {
        Ok(p) => p,
        Err(e) => {
            log::error!(
                "verify: block {} ({}): the parallel engine failed where the sequential one succeeded: {e}",
                pre.topoheight(),
                pre.hash
            );
            seq.stats.path = ExecutionPath::Verify;
            return Ok((seq, 1));
        }
    };
    #[cfg(feature = "fault-injection")]
    let par = crate::fault::corrupt(par);
    let mismatches: Vec<MismatchOf<SpecChain>> = compare(chain, txs, &seq, &par);
    if !mismatches.is_empty() {
        log::error!(
            "verify: block {} ({}): {} mismatch(es) between sequential and parallel; first: {}",
            pre.topoheight(),
            pre.hash,
            mismatches.len(),
            mismatches[0]
        );
        for m in &mismatches {
            log::error!("verify: block {}: {m}", pre.topoheight());
        }
    }
    // The kept result is the sequential one; the stats say how the
    // parallel side ran.
    seq.stats = crate::engine::EngineStats {
        path: ExecutionPath::Verify,
        execute: seq.stats.execute,
        ..par.stats
    };
    Ok((seq, mismatches.len()))
}

/// The outcome, change set and metadata of an executed block.
fn finish(
    executed: Executed<SpecChain>,
    block: &Block,
    pre: &PreState,
    checked: &CheckedBlock,
) -> Result<ExecutedBlock, BlockError> {
    let Executed {
        statuses,
        sums,
        writes,
        stats,
    } = executed;
    let fees = sums[SUM_FEES];
    let burned = sums[SUM_BURNED];
    let reward = pre.ctx.reward;
    let meta = BlockMeta {
        hash: pre.hash,
        emitted_supply: pre
            .parent
            .emitted_supply
            .checked_add(reward)
            .ok_or_else(|| BlockError::Invariant("emitted supply overflow".into()))?,
        burned_supply: pre
            .parent
            .burned_supply
            .checked_add(burned)
            .ok_or_else(|| BlockError::Invariant("burned supply overflow".into()))?,
    };
    let results = statuses
        .into_iter()
        .zip(block.tx_hashes())
        .map(|(status, hash)| TxResult {
            hash: *hash,
            status: TxStatus::of(status),
        })
        .collect();
    let stats = BlockStats {
        verify: checked.verify,
        cache_hits: checked.cache_hits,
        cache_misses: checked.cache_misses,
        ..BlockStats::from_engine(&stats)
    };
    Ok(ExecutedBlock {
        outcome: BlockOutcome {
            topoheight: pre.topoheight(),
            hash: pre.hash,
            reward,
            fees,
            burned,
            results,
            stats,
        },
        changes: ChangeSet::from_parts(pre.topoheight(), writes.parts),
        meta,
    })
}

/// Every difference between two executions of one block (`seq` the
/// reference): statuses, totals, metadata and written keys, as lines.
pub fn differences(seq: &ExecutedBlock, par: &ExecutedBlock) -> Vec<String> {
    let mut out = Vec::new();
    let (s, p) = (&seq.outcome, &par.outcome);
    for (i, (a, b)) in s.results.iter().zip(&p.results).enumerate() {
        if a != b {
            out.push(format!(
                "tx {i}: status sequential={} parallel={}",
                a.status.code(),
                b.status.code()
            ));
        }
    }
    if s.results.len() != p.results.len() {
        out.push(format!(
            "result count: sequential={} parallel={}",
            s.results.len(),
            p.results.len()
        ));
    }
    for (what, a, b) in [
        ("reward", s.reward, p.reward),
        ("fees", s.fees, p.fees),
        ("burned", s.burned, p.burned),
    ] {
        if a != b {
            out.push(format!("{what}: sequential={a} parallel={b}"));
        }
    }
    if seq.meta != par.meta {
        out.push(format!(
            "meta: sequential={:?} parallel={:?}",
            seq.meta, par.meta
        ));
    }
    let (a, b) = (seq.changes.sorted(), par.changes.sorted());
    if a != b {
        let mut j = 0;
        for (k, v) in &a {
            while j < b.len() && b[j].0 < *k {
                out.push(format!(
                    "{}: sequential=(not written) parallel={:?}",
                    b[j].0, b[j].1
                ));
                j += 1;
            }
            match b.get(j) {
                Some((bk, bv)) if bk == k => {
                    if bv != v {
                        out.push(format!("{k}: sequential={v:?} parallel={bv:?}"));
                    }
                    j += 1;
                }
                _ => out.push(format!("{k}: sequential={v:?} parallel=(not written)")),
            }
        }
        for (k, v) in &b[j..] {
            out.push(format!("{k}: sequential=(not written) parallel={v:?}"));
        }
    }
    out
}
