//! Storage errors.

use crate::TopoHeight;

/// What can go wrong in a storage ([`crate::StateRead`], [`crate::StateWrite`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The RocksDB engine reported an error (I/O, corruption, lock held by
    /// another process...); `during` says what the store was doing.
    #[cfg(feature = "rocksdb")]
    #[error("rocksdb ({during}): {source}")]
    Rocks {
        /// What the store was doing.
        during: &'static str,
        /// RocksDB's error.
        #[source]
        source: rocksdb::Error,
    },
    /// Another storage backend failed (for stores brought by the node).
    #[error("storage backend: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The data directory does not exist or holds no tos-parallel database.
    #[error("no database at {path}: {reason}")]
    NotFound {
        /// The directory.
        path: String,
        /// Why it was not usable.
        reason: String,
    },
    /// A stored value could not be decoded: the database is corrupt or of another format.
    #[error("corrupt value in column `{column}`: {reason}")]
    Corrupt {
        /// Column family (or table) holding the value.
        column: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// A commit at a topoheight other than `top + 1`.
    #[error("commit at topoheight {got} but the store expects {expected:?}")]
    NotNextTopoheight {
        /// The next topoheight the store accepts (`None` while it needs genesis).
        expected: Option<TopoHeight>,
        /// The topoheight of the change set.
        got: TopoHeight,
    },
    /// A block commit on a store without genesis, or a genesis on a store
    /// that already has one.
    #[error("{0}")]
    Genesis(&'static str),
    /// A rewind to a topoheight above the top.
    #[error("cannot rewind to {target}: top is {top:?}")]
    RewindAboveTop {
        /// Requested topoheight.
        target: TopoHeight,
        /// Current top (`None` on an empty store).
        top: Option<TopoHeight>,
    },
    /// A whole-state read (snapshot) at a topoheight the store holds no state for.
    #[error("no state at topoheight {topoheight}: top is {top:?}")]
    MissingTopoheight {
        /// Requested topoheight.
        topoheight: TopoHeight,
        /// Current top (`None` on an empty store).
        top: Option<TopoHeight>,
    },
    /// A value in a change set cannot be stored (e.g. more than 255
    /// multisig participants, or a counter key with a non-counter value).
    #[error("cannot store value in column `{column}`: {reason}")]
    InvalidValue {
        /// Column family (or table) the value was meant for.
        column: &'static str,
        /// What was wrong.
        reason: String,
    },
}

impl StorageError {
    /// Wraps a RocksDB error with what the store was doing.
    #[cfg(feature = "rocksdb")]
    pub(crate) fn rocks(during: &'static str) -> impl FnOnce(rocksdb::Error) -> StorageError {
        move |source| StorageError::Rocks { during, source }
    }
}
