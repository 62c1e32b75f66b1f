//! The node's errors. Every public enum is `#[non_exhaustive]`: match with a
//! wildcard.
//!
//! * [`BlockError`]: why a block was not applied (nothing of it is written).
//!
//! The SPEC codes and input errors are `chain/error.rs`.

use tos_storage::{StorageError, TopoHeight};

use crate::chain::error::StatelessError;
use crate::engine::{EngineError, PoolError, StateError};

/// Why a block was not applied. Nothing of it was written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlockError {
    /// A transaction failed a stateless check (SPEC §4.1).
    #[error("block at topoheight {topoheight}: transaction {index}: {error}")]
    InvalidTransaction {
        /// Topoheight the block would produce.
        topoheight: TopoHeight,
        /// Index of the first failing transaction.
        index: usize,
        /// The failure (its `code()` is the SPEC code).
        error: StatelessError,
    },
    /// The block is already applied with this very hash: nothing to do.
    /// Not a failure; replays resumed after a crash see it for every block
    /// they had already committed.
    #[error("block at topoheight {topoheight} is already applied")]
    AlreadyApplied {
        /// Its topoheight.
        topoheight: TopoHeight,
    },
    /// A different block is already applied at this topoheight (rewind first).
    #[error("block at topoheight {topoheight} conflicts with the applied block (hash {stored}); rewind first")]
    ConflictingBlock {
        /// Its topoheight.
        topoheight: TopoHeight,
        /// Hash of the block stored there.
        stored: tos_storage::Hash,
    },
    /// The block's topoheight is more than one above the top.
    #[error("block topoheight {got} is above the next topoheight {next}")]
    TopoheightGap {
        /// The next topoheight.
        next: TopoHeight,
        /// The block's topoheight.
        got: TopoHeight,
    },
    /// The store holds no chain (run `init` first).
    #[error("the store holds no chain: initialise it with a genesis first")]
    NotInitialized,
    /// An invariant broke (a credit overflowed, an access was not declared):
    /// the stored state is corrupt or the executor has a bug.
    #[error("state invariant violated: {0}")]
    Invariant(String),
    /// The storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The committer thread failed to write the block at `topoheight`
    /// (commit pipeline): the storage holds the state after the block
    /// before it, and that block and every later unpersisted one were
    /// dropped. The chain accepts no block until the node calls
    /// [`crate::Blockchain::recover`] and adds them again.
    #[error("writing block {topoheight} failed: {source}; the storage holds the blocks before it, later ones were dropped (call Blockchain::recover)")]
    PersistFailed {
        /// The block whose write failed.
        topoheight: TopoHeight,
        /// The storage's error.
        #[source]
        source: std::sync::Arc<StorageError>,
    },
    /// The committer thread could not be started.
    #[error("cannot start the committer thread: {0}")]
    CommitterThread(#[source] std::io::Error),
    /// The execution thread pool could not be built.
    #[error(transparent)]
    ThreadPool(#[from] PoolError),
    /// A panic inside the executor (a bug, or a rule that panicked) was
    /// contained: nothing of the block was written and the chain stays usable.
    #[error("block execution panicked: {message}")]
    Panicked {
        /// The panic's message.
        message: String,
    },
}

impl From<StateError<StorageError>> for BlockError {
    fn from(e: StateError<StorageError>) -> Self {
        match e {
            StateError::Read(s) => BlockError::Storage(s),
            other => BlockError::Invariant(other.to_string()),
        }
    }
}

impl From<EngineError<StorageError>> for BlockError {
    fn from(e: EngineError<StorageError>) -> Self {
        match e {
            EngineError::State(s) => s.into(),
            EngineError::Panicked { message } => BlockError::Panicked { message },
        }
    }
}

/// Runs `f`, turning a panic (on this thread or in any pool job it waits
/// for: rayon hands a job's panic to the thread that joins it) into
/// [`BlockError::Panicked`], so the caller's thread never unwinds.
pub(crate) fn contain<T>(f: impl FnOnce() -> Result<T, BlockError>) -> Result<T, BlockError> {
    // AssertUnwindSafe: on a panic every partial result is dropped and
    // nothing was committed.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        Err(BlockError::Panicked {
            message: crate::engine::panic_message(payload.as_ref()),
        })
    })
}
