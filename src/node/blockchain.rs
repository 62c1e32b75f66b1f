//! [`Blockchain`]: the API a synchronous node calls, for the SPEC chain.
//!
//! The node owns its storage (`RwLock<S>`, no `Arc<S>` on the API). To add
//! a block the chain takes a cheap clone of the storage under the read
//! lock, checks and executes on the clone without holding any lock
//! (readers are never blocked by execution), then commits the change set in
//! one atomic write (inline under the write lock, or by the committer
//! thread through its own clone: then no reader waits for a write). A
//! `writer` mutex serialises block additions, rewinds and recoveries so the
//! top cannot move between locating a block and committing it.
//!
//! The commit pipeline (`ExecutionConfig::pipeline`, on by default): the
//! write goes to a committer thread (`committer.rs`) and `add_new_block`
//! returns once the block is queued; the next block executes on the
//! storage seen through the queued blocks (`overlay.rs`), so the write of
//! block N overlaps the execution of block N+1; when the committer is
//! behind, the chain's thread builds the storage's batch and the committer
//! only writes it. Reads consult the
//! tip cache first (`tip_cache.rs`: the latest values of recently used
//! keys, kept from block to block, advanced after each block, reset by
//! rewinds and recoveries). Each block is still one
//! atomic write with its topoheight, in order: after a crash the storage
//! holds the state after some whole block and a replay resumes from it.
//! [`Blockchain::flush`] and [`Blockchain::wait_persisted`] wait for the
//! writes; a failed write stops the chain ([`BlockError::PersistFailed`])
//! until [`Blockchain::recover`].
//!
//! The mempool side: [`Blockchain::admit`] checks a transaction (every SPEC
//! §5 check but `reference_in_future`) and keeps it in the verification
//! cache, shared by every mode; a block whose transactions were admitted
//! re-checks only their reference topoheight, and its committed
//! transactions leave the cache.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock, RwLockReadGuard};

use crate::chain::block::Block;
use crate::chain::error::StatelessError;
use crate::chain::validation::check_admission;
use crate::engine::policy::{decide, Facts, PathReason, Policy};
use crate::engine::EngineConfig;
use crate::node::admissions::Admissions;
use crate::node::committer::{write_block, Committer};
use crate::node::config::{ExecutionConfig, ExecutionMode};
use crate::node::error::BlockError;
use crate::node::outcome::BlockOutcome;
use crate::node::overlay::{Layered, PendingBlock, TipView};
use crate::node::pipeline::{
    execute_block, locate_block, ExecutedBlock, Hinter, PreState, Run, SpecExecutor, TxCache,
};
use crate::node::tip_cache::TipCache;
use crate::{Hash, StateRead, StateSnapshot, Storage, TopoHeight};

/// A chain on storage `S`, executing blocks as its [`ExecutionConfig`] says.
pub struct Blockchain<S: Storage> {
    /// Background admission jobs in flight. First, so dropped first: the
    /// chain's drop (and `into_storage`) waits for them before anything
    /// else goes, since one may hold a view of the storage.
    admissions: AdmissionsGuard,
    /// The node's storage (the committer thread writes through a clone).
    /// Invariant: holds the state after a whole block.
    storage: RwLock<S>,
    /// Execution settings, fixed at construction.
    config: ExecutionConfig,
    /// The engine (its own pool unless the mode is sequential).
    executor: SpecExecutor,
    /// Admitted transactions; shared with whoever else holds the `Arc`.
    cache: Arc<TxCache>,
    /// Held for the whole of `add_new_block`, `rewind_to` and `recover`.
    writer: Mutex<()>,
    /// The commit pipeline (`None`: blocks are written inline).
    committer: Option<Committer>,
    /// The latest values at the top, kept across blocks (`tip_cache.rs`;
    /// `None`: `config.state_cache` is 0). Invariant: describes the chain
    /// at its top; advanced under `writer` after each block, reset after
    /// a rewind or a recovery.
    tip: Option<Arc<TipCache>>,
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
            // The committer thread writes while the next block executes.
            reserved_cores: usize::from(config.pipeline),
            speculate_all: config.speculate_all,
        };
        let executor = match config.mode {
            // No pool: everything runs on the calling thread.
            ExecutionMode::Sequential => SpecExecutor::on_current_pool(engine),
            _ => SpecExecutor::new(config.effective_threads(), engine)?,
        };
        let committer = if config.pipeline {
            Some(
                Committer::spawn(storage.clone(), config.pipeline_depth)
                    .map_err(BlockError::CommitterThread)?,
            )
        } else {
            None
        };
        let tip = match config.state_cache {
            0 => None,
            n => Some(Arc::new(TipCache::new(n, storage.top_topoheight()?))),
        };
        Ok(Blockchain {
            tip,
            storage: RwLock::new(storage),
            config,
            executor,
            cache,
            writer: Mutex::new(()),
            committer,
            admissions: AdmissionsGuard(Arc::default()),
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

    /// Read access to the storage (holds the read lock while the guard
    /// lives), once every executed block is written: with the commit
    /// pipeline it first waits for the committer. After a failed write it
    /// gives the storage as it is (the state after the last written block).
    /// With the pipeline, blocks added meanwhile by another thread may be
    /// written while the guard lives (reads at a topoheight are stable).
    pub fn storage(&self) -> RwLockReadGuard<'_, S> {
        // A failure is reported by `add_new_block` and `flush`; the storage
        // is whole either way.
        let _ = self.flush();
        self.storage.read()
    }

    /// Gives the storage back, once every executed block is written (a
    /// failed write is logged; the storage then holds the blocks before it).
    pub fn into_storage(mut self) -> S {
        // Dropping the committer writes what is pending and joins it.
        drop(self.committer.take());
        self.storage.into_inner()
    }

    /// The chain's top topoheight, executed blocks not yet written
    /// included (`None` before genesis).
    pub fn top_topoheight(&self) -> Result<Option<TopoHeight>, BlockError> {
        Ok(self.view()?.top_topoheight()?)
    }

    /// The top topoheight the storage holds (below [`Self::top_topoheight`]
    /// while the committer has blocks to write).
    pub fn persisted_topoheight(&self) -> Result<Option<TopoHeight>, BlockError> {
        Ok(self.storage.read().top_topoheight()?)
    }

    /// Waits until the storage holds every executed block. Returns the
    /// failure of a write if one stopped the chain. Without the pipeline
    /// there is never anything to wait for.
    pub fn flush(&self) -> Result<(), BlockError> {
        self.wait_persisted(TopoHeight::MAX)
    }

    /// Waits until the storage holds every executed block up to
    /// `topoheight`, or returns the failure of a write that stopped the chain.
    pub fn wait_persisted(&self, topoheight: TopoHeight) -> Result<(), BlockError> {
        match &self.committer {
            Some(c) => c.queue.wait_until(topoheight).map_err(persist_failed),
            None => Ok(()),
        }
    }

    /// After [`BlockError::PersistFailed`]: forgets the failure so the chain
    /// accepts blocks again, from the state the storage holds. Returns that
    /// top topoheight: the node adds the blocks above it again. Does
    /// nothing (and returns the top) when no write failed.
    pub fn recover(&self) -> Result<Option<TopoHeight>, BlockError> {
        let _writer = self.writer.lock();
        if let Some(c) = &self.committer {
            if let Some((topoheight, error)) = c.queue.recover() {
                log::warn!("recovering from the failed write of block {topoheight}: {error}");
                // The dropped blocks' writes leave the tip cache too.
                self.reset_tip();
            }
        }
        self.persisted_topoheight()
    }

    /// The chain moved other than by a block on top: the tip cache
    /// forgets everything and follows the storage's top (unknown: it
    /// serves nothing until the next block).
    fn reset_tip(&self) {
        if let Some(tip) = &self.tip {
            tip.reset(self.storage.read().top_topoheight().ok().flatten());
        }
    }

    /// The committer thread's time writing the block at `topoheight`, once
    /// written (pipelined blocks; the last 4,096 writes are kept). `None`
    /// without the pipeline: the write is then in [`BlockOutcome`]'s
    /// `stats.commit`.
    pub fn commit_time(&self, topoheight: TopoHeight) -> Option<Duration> {
        self.committer
            .as_ref()
            .and_then(|c| c.queue.commit_time(topoheight))
    }

    /// The full state at `at` (default: the top). A topoheight the storage
    /// already holds is read at once; the top, or a block not yet written,
    /// once the writes up to it are done.
    pub fn snapshot(&self, at: Option<TopoHeight>) -> Result<StateSnapshot, BlockError> {
        let persisted = self.persisted_topoheight()?;
        match at {
            Some(t) if persisted.is_some_and(|p| t <= p) => {}
            Some(t) => self.wait_persisted(t)?,
            None => self.flush()?,
        }
        let storage = self.storage.read();
        let top = storage
            .top_topoheight()?
            .ok_or(BlockError::NotInitialized)?;
        Ok(storage.snapshot(at.unwrap_or(top))?)
    }

    /// The storage seen through the tip cache and the executed blocks not
    /// yet written.
    fn view(&self) -> Result<Layered<S>, BlockError> {
        // The cache's version first: a change after it stops this view's
        // fills (`tip_cache.rs`, "Fill").
        let tip = self.tip.as_ref().map(|cache| TipView {
            version: cache.version(),
            cache: Arc::clone(cache),
            hits: Arc::default(),
        });
        let pending = match &self.committer {
            Some(c) => c.queue.view().map_err(persist_failed)?,
            None => Vec::new(),
        };
        // Pending first, then the storage: a block leaves `pending` only
        // once written (`overlay.rs` on why the view is exact).
        Ok(Layered::new(self.storage.read().clone(), pending, tip))
    }

    /// A hinter on the tip ([`crate::pipeline::Hinter`]): the storage seen
    /// through the executed blocks not yet written, at their top.
    fn hinter(&self) -> Option<Hinter<Layered<S>>> {
        let tip = self.view().ok()?;
        let top = tip.top_topoheight().ok()??;
        Some(Hinter::at(&tip, top))
    }

    /// Admits a transaction into the verification cache (a node's mempool
    /// calls it when the transaction arrives): every SPEC §5 check but
    /// `reference_in_future` (which depends on the block). A transaction
    /// that fails one is not cached and gets its code. Returns its hash.
    /// Safe to call from many threads, also while blocks execute.
    pub fn admit(&self, bytes: &[u8]) -> Result<Hash, StatelessError> {
        let hash = Hash(*blake3::hash(bytes).as_bytes());
        if !self.cache.contains(&hash.0) {
            let mut vtx = check_admission(bytes, hash)?;
            if self.config.hints && vtx.accesses.is_open() {
                if let Some(hinter) = self.hinter() {
                    hinter.hint(&mut vtx);
                }
            }
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
        // The tip as it is now: by the time the block runs, its hints may
        // be a block or two stale (a stale hint costs a read, nothing else).
        let hinter = if self.config.hints {
            self.hinter()
        } else {
            None
        };
        let running = self.admissions.0.start();
        self.executor.spawn(move || {
            use rayon::prelude::*;
            // Dropped last (locals drop in reverse order, also when
            // unwinding): the job ends after its view of the storage.
            let running = running;
            let (txs, hinter, cache) = (txs, hinter, cache);
            if running.closing() {
                return;
            }
            txs.par_iter().for_each(|(bytes, hash)| {
                if !cache.contains(&hash.0) {
                    if let Ok(mut vtx) = check_admission(bytes, *hash) {
                        if let Some(hinter) = &hinter {
                            hinter.hint(&mut vtx);
                        }
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
        let view = self.view()?;
        let pre = locate_block(&view, block)?;
        let ExecutedBlock {
            mut outcome,
            changes,
            meta,
        } = self.execute(&view, block, &pre)?;
        outcome.stats.state_cache_hits = view.tip_hits();
        drop(view);
        // The block is on top once queued or written; then the tip cache
        // follows it (on a failure it stays at the chain's top before it).
        match &self.committer {
            Some(c) => {
                // A committer still writing an earlier block sets the
                // block rate: the storage's batch is then built here, so
                // that it only writes it. One that keeps up builds it
                // itself, off this thread (which then sets the rate: a
                // block whose reads missed the tip cache, small blocks).
                // Built from nothing stored; a failure here shows again,
                // typed, in the committer's write.
                let prepared = if c.queue.backlog() > 0 {
                    self.storage
                        .read()
                        .prepare_commit(&changes, &meta)
                        .unwrap_or_default()
                } else {
                    crate::PreparedCommit::none()
                };
                let pending = Arc::new(PendingBlock::prepared(changes, meta, prepared));
                outcome.stats.commit_wait =
                    c.queue.push(Arc::clone(&pending)).map_err(persist_failed)?;
                outcome.stats.pipelined = true;
                if let Some(tip) = &self.tip {
                    tip.advance(&pending.changes);
                }
            }
            None => {
                let start = Instant::now();
                write_block(
                    &mut *self.storage.write(),
                    &changes,
                    &meta,
                    crate::PreparedCommit::none(),
                )?;
                outcome.stats.commit = start.elapsed();
                if let Some(tip) = &self.tip {
                    tip.advance(&changes);
                }
            }
        }
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
        snapshot: &Layered<S>,
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

    /// Deletes every block above `topoheight` (for reorgs), executed blocks
    /// not yet written included (they are written first; after a failed
    /// write, [`Self::recover`] first). Clones' caches never serve a
    /// rewound value afterwards.
    pub fn rewind_to(&self, topoheight: TopoHeight) -> Result<(), BlockError> {
        let _writer = self.writer.lock();
        self.flush()?;
        let rewound = self.storage.write().rewind_to(topoheight);
        self.reset_tip();
        Ok(rewound?)
    }
}

/// The error of a failed write, as the chain reports it.
fn persist_failed((topoheight, source): (TopoHeight, Arc<crate::StorageError>)) -> BlockError {
    BlockError::PersistFailed { topoheight, source }
}

/// The chain's [`Admissions`], closed and waited for when dropped.
struct AdmissionsGuard(Arc<Admissions>);

impl Drop for AdmissionsGuard {
    fn drop(&mut self) {
        self.0.close_and_wait();
    }
}
