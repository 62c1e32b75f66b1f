//! [`ParallelExecutor`]: verifies and executes a block on a rayon pool.
//!
//! 1. Stateless checks of every transaction run on the pool; the block is
//!    rejected with the first failing index (block order), as sequentially.
//! 2. Access sets (`access.rs`) and conflict-free batches (`scheduler.rs`).
//! 3. The reward is credited on the calling thread, then each batch runs on
//!    the pool against a [`ParallelChainState`] (`chain_state.rs`) through the
//!    one rule engine (`rules.rs`); batch `k + 1` starts when batch `k` is done.
//! 4. Fees are credited and the change set is built (`executor.rs`), the same
//!    code the sequential path uses.
//!
//! No job ever blocks waiting for another job: the only waits are rayon's own
//! `collect` at the end of each batch, which work-steals while it waits, and
//! it is reached from `install`, not from inside a job that another job needs.

use std::time::Instant;

use rayon::prelude::*;

use crate::access::{access_set, AccessSet};
use crate::block::Block;
use crate::chain_state::ParallelChainState;
use crate::error::{BlockError, StateError};
use crate::executor::{credit_reward, finish_block, timed, ExecutedBlock, PreState};
use crate::outcome::{BlockStats, ExecutionPath, TxResult, TxStatus};
use crate::rules::apply_transaction;
use crate::scheduler::Schedule;
use crate::validation::{check_stateless, VerifiedTx};
use crate::Storage;

/// Executes blocks on its own rayon thread pool.
pub struct ParallelExecutor {
    /// The pool every phase runs on.
    pool: rayon::ThreadPool,
    /// Number of threads of `pool`.
    threads: usize,
}

impl std::fmt::Debug for ParallelExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParallelExecutor")
            .field("threads", &self.threads)
            .finish()
    }
}

impl ParallelExecutor {
    /// A pool of `threads` workers (at least 1).
    pub fn new(threads: usize) -> Result<Self, BlockError> {
        let threads = threads.max(1);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("tos-exec-{i}"))
            .build()
            .map_err(|e| BlockError::ThreadPool(e.to_string()))?;
        Ok(ParallelExecutor { pool, threads })
    }

    /// Worker threads.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Stateless checks of the whole block on the pool; the error names the
    /// first failing index, exactly as [`crate::executor::verify_block_sequential`].
    pub fn verify_block(
        &self,
        block: &Block,
        pre: &PreState,
    ) -> Result<Vec<VerifiedTx>, BlockError> {
        let parent = pre.ctx.parent_topoheight;
        let checked: Vec<_> = self.pool.install(|| {
            block
                .txs()
                .par_iter()
                .zip(block.tx_hashes().par_iter())
                .map(|(bytes, hash)| check_stateless(bytes.clone(), *hash, parent))
                .collect()
        });
        checked
            .into_iter()
            .enumerate()
            .map(|(index, r)| {
                r.map_err(|error| BlockError::InvalidTransaction {
                    topoheight: pre.topoheight(),
                    index,
                    error,
                })
            })
            .collect()
    }

    /// Executes `block` on `storage` (a clone the executor owns) at `pre`.
    /// Nothing is written; commit the returned change set.
    pub fn execute<S: Storage + Clone>(
        &self,
        storage: S,
        block: &Block,
        pre: &PreState,
    ) -> Result<ExecutedBlock, BlockError> {
        let (txs, verify) = timed(|| self.verify_block(block, pre));
        let txs = txs?;

        let start = Instant::now();
        let access: Vec<AccessSet> = txs.iter().map(access_set).collect();
        let schedule = Schedule::build(&access);
        let schedule_time = start.elapsed();

        let mut state =
            ParallelChainState::new(storage, pre.ctx.parent_topoheight, self.threads * 16);
        let (run, execute) = timed(|| -> Result<_, BlockError> {
            let reward = credit_reward(&mut state, block, pre)?;
            let statuses = self.run_batches(&state, &txs, &schedule, pre)?;
            Ok((reward, statuses))
        });
        let (reward, statuses) = run?;
        let results = txs
            .iter()
            .zip(statuses)
            .map(|(vtx, status)| TxResult {
                hash: vtx.hash,
                status,
            })
            .collect();
        let stats = BlockStats {
            path: ExecutionPath::Parallel,
            batches: schedule.batches.len(),
            largest_batch: schedule.largest_batch(),
            critical_path: schedule.critical_path(),
            verify,
            schedule: schedule_time,
            execute,
            ..BlockStats::default()
        };
        finish_block(state, block, pre, reward, results, stats)
    }

    fn run_batches<S: Storage + Clone>(
        &self,
        state: &ParallelChainState<S>,
        txs: &[VerifiedTx],
        schedule: &Schedule,
        pre: &PreState,
    ) -> Result<Vec<TxStatus>, StateError> {
        let run_one = |i: u32| -> Result<TxStatus, StateError> {
            let mut view = state.view();
            Ok(
                match apply_transaction(&txs[i as usize], &pre.ctx, &mut view)? {
                    Ok(()) => TxStatus::Ok,
                    Err(f) => TxStatus::Orphaned(f),
                },
            )
        };
        let mut statuses: Vec<Option<TxStatus>> = vec![None; txs.len()];
        self.pool.install(|| -> Result<(), StateError> {
            for batch in &schedule.batches {
                if batch.len() == 1 {
                    statuses[batch[0] as usize] = Some(run_one(batch[0])?);
                    continue;
                }
                let out: Vec<Result<TxStatus, StateError>> =
                    batch.par_iter().map(|&i| run_one(i)).collect();
                for (&i, r) in batch.iter().zip(out) {
                    statuses[i as usize] = Some(r?);
                }
            }
            Ok(())
        })?;
        // Every index is in exactly one batch, so every status is set.
        statuses
            .into_iter()
            .map(|s| s.ok_or(StateError::Internal("a transaction was not scheduled")))
            .collect()
    }
}
