//! [`Blockchain`]: the API a synchronous node calls, for the SPEC chain.
//!
//! The node owns its storage (`RwLock<S>`, no `Arc<S>`). To add a block the
//! chain takes a cheap clone of the storage under the read lock, checks and
//! executes on the clone without holding any lock (readers are never
//! blocked by execution), then takes the write lock only to commit the
//! change set in one atomic write. A `writer` mutex serialises block
//! additions and rewinds so the top cannot move between locating a block
//! and committing it.
//!
//! The mempool side: [`Blockchain::admit`] checks a transaction (every SPEC
//! §5 check but `reference_in_future`) and keeps it in the verification
//! cache, shared by every mode; a block whose transactions were admitted
//! re-checks only their reference topoheight, and its committed
//! transactions leave the cache.

use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Mutex, RwLock, RwLockReadGuard};

use crate::chain::block::Block;
use crate::chain::error::StatelessError;
use crate::chain::validation::check_admission;
use crate::engine::policy::{decide, Facts, PathReason, Policy};
use crate::engine::EngineConfig;
use crate::node::config::{ExecutionConfig, ExecutionMode};
use crate::node::error::BlockError;
use crate::node::outcome::BlockOutcome;
use crate::node::pipeline::{
    execute_block, locate_block, ExecutedBlock, PreState, Run, SpecExecutor, TxCache,
};
use crate::{Hash, StateSnapshot, Storage, TopoHeight};

/// A chain on storage `S`, executing blocks as its [`ExecutionConfig`] says.
pub struct Blockchain<S: Storage> {
    /// The node's storage. Invariant: holds the state after a whole block.
    storage: RwLock<S>,
    /// Execution settings, fixed at construction.
    config: ExecutionConfig,
    /// The engine (its own pool unless the mode is sequential).
    executor: SpecExecutor,
    /// Admitted transactions; shared with whoever else holds the `Arc`.
    cache: Arc<TxCache>,
    /// Held for the whole of `add_new_block` and `rewind_to`.
    writer: Mutex<()>,
}

impl<S: Storage> Blockchain<S> {
    /// A chain on `storage` (initialise it with [`crate::init_genesis`]
    /// first), with a verification cache of `config.cache_capacity`.
    pub fn new(storage: S, config: ExecutionConfig) -> Result<Self, BlockError> {
        let cache = Arc::new(TxCache::new(config.cache_capacity));
        Self::with_cache(storage, config, cache)
    }

    /// A chain sharing `cache` (with a mempool, another chain...).
    pub fn with_cache(
        storage: S,
        config: ExecutionConfig,
        cache: Arc<TxCache>,
    ) -> Result<Self, BlockError> {
        let engine = EngineConfig {
            scheduler: config.scheduler,
            guards: config.guards,
            costly_reads: config.costly_reads,
        };
        let executor = match config.mode {
            // No pool: everything runs on the calling thread.
            ExecutionMode::Sequential => SpecExecutor::on_current_pool(engine),
            _ => SpecExecutor::new(config.effective_threads(), engine)?,
        };
        Ok(Blockchain {
            storage: RwLock::new(storage),
            config,
            executor,
            cache,
            writer: Mutex::new(()),
        })
    }

    /// The execution settings.
    pub fn config(&self) -> &ExecutionConfig {
        &self.config
    }

    /// The verification cache.
    pub fn cache(&self) -> &Arc<TxCache> {
        &self.cache
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

    /// Admits a transaction into the verification cache (a node's mempool
    /// calls it when the transaction arrives): every SPEC §5 check but
    /// `reference_in_future` (which depends on the block). A transaction
    /// that fails one is not cached and gets its code. Returns its hash.
    /// Safe to call from many threads, also while blocks execute.
    pub fn admit(&self, bytes: &[u8]) -> Result<Hash, StatelessError> {
        let hash = Hash(*blake3::hash(bytes).as_bytes());
        if !self.cache.contains(&hash.0) {
            let vtx = check_admission(bytes, hash)?;
            self.cache.insert(hash.0, Arc::new(vtx));
        }
        Ok(hash)
    }

    /// Admits every transaction of `block` ([`Self::admit`]) on the
    /// executor's pool, in the background, and returns at once: a replay
    /// (or a node catching up) calls it for the next blocks while one
    /// executes and commits, as a mempool would already hold them. A
    /// transaction that fails a check is simply not cached; the block
    /// checks it again when it executes.
    pub fn admit_in_background(&self, block: &Block) {
        let cache = Arc::clone(&self.cache);
        let txs: Vec<(Arc<[u8]>, Hash)> = block
            .txs()
            .iter()
            .cloned()
            .zip(block.tx_hashes().iter().copied())
            .collect();
        self.executor.spawn(move || {
            use rayon::prelude::*;
            txs.par_iter().for_each(|(bytes, hash)| {
                if !cache.contains(&hash.0) {
                    if let Ok(vtx) = check_admission(bytes, *hash) {
                        cache.insert(hash.0, Arc::new(vtx));
                    }
                }
            });
        });
    }

    /// Executes `block` and commits it atomically. On any error nothing of the
    /// block is written. [`BlockError::AlreadyApplied`] means the same block is
    /// already in the chain (a resumed replay): not a failure. A panic during
    /// execution is contained ([`BlockError::Panicked`]); the chain stays usable.
    pub fn add_new_block(&self, block: &Block) -> Result<BlockOutcome, BlockError> {
        let _writer = self.writer.lock();
        let snapshot = self.storage.read().clone();
        let pre = locate_block(&snapshot, block)?;
        let ExecutedBlock {
            mut outcome,
            changes,
            meta,
        } = self.execute(&snapshot, block, &pre)?;
        let start = Instant::now();
        self.storage.write().commit(&changes, &meta)?;
        outcome.stats.commit = start.elapsed();
        // Included transactions leave the mempool's cache.
        for hash in block.tx_hashes() {
            self.cache.remove(&hash.0);
        }
        #[cfg(feature = "metrics")]
        crate::metrics::record(&outcome.stats, block.txs().len());
        Ok(outcome)
    }

    /// Checks and executes `block` on `snapshot` at `pre` as the config says.
    fn execute(
        &self,
        snapshot: &S,
        block: &Block,
        pre: &PreState,
    ) -> Result<ExecutedBlock, BlockError> {
        let policy = Policy {
            sequential_mode: self.config.mode == ExecutionMode::Sequential,
            min_txs_for_parallel: self.config.min_txs_for_parallel,
            threads: self.executor.threads(),
            guards: self.config.guards,
            reads_costly: self.config.costly_reads,
            optimistic: self.config.scheduler == crate::Scheduler::Optimistic,
        };
        let decided = decide(
            &policy,
            Facts::Block {
                txs: block.txs().len(),
                // Known once the block is checked: the executor decides on it.
                open: false,
            },
        );
        let run = match (decided, self.config.mode) {
            (Some(PathReason::SequentialMode | PathReason::SmallBlock), _) => Run::Sequential,
            (_, ExecutionMode::Verify) => Run::Verify,
            _ => Run::Parallel,
        };
        let mut out = execute_block(&self.executor, snapshot, block, pre, Some(&self.cache), run)?;
        if let (Run::Sequential, Some(reason)) = (run, decided) {
            out.outcome.stats.reason = reason;
        }
        Ok(out)
    }

    /// Deletes every block above `topoheight` (for reorgs). Clones' caches
    /// never serve a rewound value afterwards.
    pub fn rewind_to(&self, topoheight: TopoHeight) -> Result<(), BlockError> {
        let _writer = self.writer.lock();
        Ok(self.storage.write().rewind_to(topoheight)?)
    }
}
