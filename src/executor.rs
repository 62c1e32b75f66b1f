//! The block pipeline shared by every execution mode (SPEC §3 and §4):
//! locate the block, verify it statelessly, credit the reward, run the
//! transactions (the part the modes do differently), credit the fees and build
//! the change set and metadata that are committed atomically.

use std::time::{Duration, Instant};

use crate::block::Block;
use crate::constants::MAXIMUM_SUPPLY;
use crate::error::{BlockError, StateError};
use crate::outcome::{BlockOutcome, BlockStats, TxResult};
use crate::rules::{BlockContext, TxState};
use crate::validation::{check_stateless, VerifiedTx};
use crate::{BlockMeta, ChangeSet, Hash, Storage, TopoHeight, NATIVE_ASSET};

/// Where a block goes: the state it executes on.
#[derive(Clone, Copy, Debug)]
pub struct PreState {
    /// Rule context (parent topoheight, blocks per day).
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

/// Finds where `block` goes on `storage` (SPEC §3): on top, or already
/// applied (same hash: [`BlockError::AlreadyApplied`]), or an error.
pub fn locate_block<S: Storage>(storage: &S, block: &Block) -> Result<PreState, BlockError> {
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
        },
        parent,
        hash: block.hash_at(next),
    })
}

/// The block reward on a chain that emitted `emitted_supply` (SPEC §4.2).
pub fn block_reward(emitted_supply: u64) -> u64 {
    MAXIMUM_SUPPLY.saturating_sub(emitted_supply) >> 20
}

/// Stateless checks of every transaction, in order, on the calling thread.
pub fn verify_block_sequential(
    block: &Block,
    pre: &PreState,
) -> Result<Vec<VerifiedTx>, BlockError> {
    block
        .txs()
        .iter()
        .zip(block.tx_hashes())
        .enumerate()
        .map(|(index, (bytes, hash))| {
            check_stateless(bytes.clone(), *hash, pre.ctx.parent_topoheight).map_err(|error| {
                BlockError::InvalidTransaction {
                    topoheight: pre.topoheight(),
                    index,
                    error,
                }
            })
        })
        .collect()
}

/// State an executor runs a whole block on: the rule engine's reads and
/// writes plus the block-level accumulators and the final change set.
pub trait BlockState: TxState {
    /// Native fees of the successful transactions so far.
    fn fees(&self) -> u64;
    /// Native amount burned so far in this block.
    fn burned(&self) -> u64;
    /// Every key written, with its final value, at `topoheight`.
    fn into_change_set(self, topoheight: TopoHeight) -> ChangeSet;
}

/// SPEC §4.2: credits the reward to the miner before any transaction.
pub fn credit_reward<St: BlockState>(
    state: &mut St,
    block: &Block,
    pre: &PreState,
) -> Result<u64, StateError> {
    let reward = block_reward(pre.parent.emitted_supply);
    state.credit(block.miner(), &NATIVE_ASSET, reward)?;
    Ok(reward)
}

/// SPEC §4.4-4.5: credits the fees to the miner and builds what is committed.
pub fn finish_block<St: BlockState>(
    mut state: St,
    block: &Block,
    pre: &PreState,
    reward: u64,
    results: Vec<TxResult>,
    stats: BlockStats,
) -> Result<ExecutedBlock, BlockError> {
    let fees = state.fees();
    let burned = state.burned();
    state.credit(block.miner(), &NATIVE_ASSET, fees)?;
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
        changes: state.into_change_set(pre.topoheight()),
        meta,
    })
}

/// Time a closure.
pub(crate) fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed())
}
