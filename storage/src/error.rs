//! Storage errors.

use crate::TopoHeight;

/// What can go wrong in a [`crate::Storage`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The RocksDB engine reported an error (I/O, corruption, lock held by another process...).
    #[error("rocksdb: {0}")]
    Rocks(String),
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
    /// A commit at a topoheight other than `top + 1` (or genesis on a non-empty store).
    #[error("commit at topoheight {got} but the store expects {expected:?}")]
    NotNextTopoheight {
        /// The next topoheight the store accepts (`None` while it needs genesis).
        expected: Option<TopoHeight>,
        /// The topoheight of the change set.
        got: TopoHeight,
    },
    /// Genesis parameters were missing on the first commit, or given on a later one.
    #[error("chain params must be given with the genesis commit (topoheight 0) and only then")]
    GenesisParams,
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
    /// A value in a change set cannot be stored (e.g. more than 255 multisig participants).
    #[error("cannot store value in column `{column}`: {reason}")]
    InvalidValue {
        /// Column family (or table) the value was meant for.
        column: &'static str,
        /// What was wrong.
        reason: String,
    },
}

#[cfg(feature = "rocksdb")]
impl From<rocksdb::Error> for StorageError {
    fn from(e: rocksdb::Error) -> Self {
        StorageError::Rocks(e.into_string())
    }
}
