//! [`Blockchain`]: the API a synchronous node calls.
//!
//! The node owns its storage (`RwLock<S>`, no `Arc<S>`). To add a block the
//! chain takes a cheap clone of the storage under the read lock, executes on
//! the clone without holding any lock (readers are never blocked by
//! execution), then takes the write lock only to commit the change set in one
//! atomic write. A `writer` mutex serialises block additions and rewinds so the
//! top cannot move between locating a block and committing it.

use std::time::Instant;

use parking_lot::{Mutex, RwLock, RwLockReadGuard};

use crate::block::Block;
use crate::config::{ExecutionConfig, ExecutionMode};
use crate::error::{contain_panics, BlockError};
use crate::executor::{locate_block, ExecutedBlock};
use crate::outcome::BlockOutcome;
use crate::parallel::ParallelExecutor;
use crate::policy::{decide, Facts, PathReason, Policy};
use crate::sequential::execute_sequential;
use crate::shadow::execute_verify;
use crate::{StateSnapshot, Storage, TopoHeight};

/// A chain on storage `S`, executing blocks as its [`ExecutionConfig`] says.
pub struct Blockchain<S: Storage + Clone> {
    /// The node's storage. Invariant: holds the state after a whole block.
    storage: RwLock<S>,
    /// Execution settings, fixed at construction.
    config: ExecutionConfig,
    /// The parallel executor; `Some` iff the mode is not sequential.
    parallel: Option<ParallelExecutor>,
    /// Held for the whole of `add_new_block` and `rewind_to`.
    writer: Mutex<()>,
}

impl<S: Storage + Clone> Blockchain<S> {
    /// A chain on `storage` (initialise it with [`crate::init_genesis`] first).
    pub fn new(storage: S, config: ExecutionConfig) -> Result<Self, BlockError> {
        let parallel = match config.mode {
            ExecutionMode::Sequential => None,
            _ => Some(ParallelExecutor::with_scheduler(
                config.effective_threads(),
                config.scheduler,
            )?),
        };
        let parallel = match parallel {
            Some(p) if !config.guards => Some(p.always_parallel()),
            other => other,
        };
        Ok(Blockchain {
            storage: RwLock::new(storage),
            config,
            parallel,
            writer: Mutex::new(()),
        })
    }

    /// The execution settings.
    pub fn config(&self) -> &ExecutionConfig {
        &self.config
    }

    /// Read access to the storage (holds the read lock while the guard lives).
    pub fn storage(&self) -> RwLockReadGuard<'_, S> {
        self.storage.read()
    }

    /// Gives the storage back.
    pub fn into_storage(self) -> S {
        self.storage.into_inner()
    }

    /// The top topoheight (`None` before genesis).
    pub fn top_topoheight(&self) -> Result<Option<TopoHeight>, BlockError> {
        Ok(self.storage.read().top_topoheight()?)
    }

    /// The full state at `at` (default: the top).
    pub fn snapshot(&self, at: Option<TopoHeight>) -> Result<StateSnapshot, BlockError> {
        let storage = self.storage.read();
        let top = storage
            .top_topoheight()?
            .ok_or(BlockError::NotInitialized)?;
        Ok(storage.snapshot(at.unwrap_or(top))?)
    }

    /// Executes `block` and commits it atomically. On any error nothing of the
    /// block is written. [`BlockError::AlreadyApplied`] means the same block is
    /// already in the chain (a resumed replay): not a failure. A panic during
    /// execution is contained ([`BlockError::Panicked`]); the chain stays usable.
    pub fn add_new_block(&self, block: &Block) -> Result<BlockOutcome, BlockError> {
        let _writer = self.writer.lock();
        let snapshot = self.storage.read().clone();
        let pre = locate_block(&snapshot, block)?;
        let policy = Policy {
            sequential_mode: self.config.mode == ExecutionMode::Sequential,
            min_txs_for_parallel: self.config.min_txs_for_parallel,
            threads: self.config.effective_threads(),
            guards: self.config.guards,
            reads_costly: snapshot.prefetch_pays(),
        };
        let ExecutedBlock {
            mut outcome,
            changes,
            meta,
        } = match (
            &self.parallel,
            decide(
                &policy,
                Facts::Block {
                    txs: block.txs().len(),
                },
            ),
        ) {
            // The executor applies the one-thread guard itself (or, in
            // verify mode, runs its parallel side unguarded).
            (Some(par), None | Some(PathReason::OneThread)) => match self.config.mode {
                ExecutionMode::Verify => execute_verify(par, snapshot, block, &pre)?,
                _ => par.execute(snapshot, block, &pre)?,
            },
            (_, reason) => contain_panics(|| {
                let reason = reason.unwrap_or(PathReason::SequentialMode);
                execute_sequential(&snapshot, block, &pre, reason)
            })?,
        };
        let start = Instant::now();
        self.storage.write().commit(&changes, &meta, None)?;
        outcome.stats.commit = start.elapsed();
        Ok(outcome)
    }

    /// Deletes every block above `topoheight` (for reorgs). Clones' caches
    /// never serve a rewound value afterwards.
    pub fn rewind_to(&self, topoheight: TopoHeight) -> Result<(), BlockError> {
        let _writer = self.writer.lock();
        Ok(self.storage.write().rewind_to(topoheight)?)
    }
}
