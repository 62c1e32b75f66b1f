//! Versioned chain-state storage for `tos-parallel`'s reference chain (the
//! SPEC chain).
//!
//! Every value ([`StateKey`]: nonce, balance per asset, multisig config,
//! energy state; plus block metadata) is stored once per topoheight at
//! which it was written. A read "at topoheight T" returns the latest
//! version at or below T, so any past state can be read, and a rewind
//! deletes the versions above a topoheight.
//!
//! The traits (this file) separate what an executor needs from what a node
//! does with its store:
//! * [`StateRead`]: reads at one topoheight, one key or a batch (what block
//!   execution needs);
//! * [`StateWrite`]: [`StateWrite::init`] (genesis), [`StateWrite::commit`]
//!   (a block's change set, atomically) and [`StateWrite::rewind_to`];
//! * [`StateScan`]: the full state at a topoheight (dumps and tests, never
//!   execution);
//! * [`Storage`]: all three and `Clone`, what `Blockchain` owns.
//!
//! Implementations:
//! * [`RocksStorage`] (`rocks/`): RocksDB; `schema.rs` (column families
//!   and key layout), `codec.rs` (value encodings), `cache.rs` (per-clone
//!   LRU caches and their generation protocol), `store.rs` (the shared
//!   database handle and its writes), `mod.rs` (the traits);
//! * [`MemoryStorage`] (`memory.rs`): the same semantics on hash maps of
//!   versions, for tests and for benchmarks that separate executor cost
//!   from RocksDB cost.
//! * `types.rs`: the plain data types; `error.rs`: [`StorageError`];
//!   `check.rs`: the validation every store applies.
//!
//! # Cloning
//! Both storages are cheap to clone: a clone shares the underlying database and
//! starts with empty caches. Writes made through any clone are visible to all
//! clones, and no clone's cache ever serves a value older than the latest
//! commit or rewind.
#![deny(missing_docs)]

mod check;
mod error;
mod memory;
#[cfg(feature = "rocksdb")]
mod rocks;
mod types;

pub use error::StorageError;
pub use memory::MemoryStorage;
#[cfg(feature = "rocksdb")]
pub use rocks::{Memtable, RocksConfig, RocksStorage};
pub use types::*;

use std::sync::Arc;

/// Reads of a versioned store: what block execution needs.
///
/// Reads take `&self` and are safe to call from many threads at once.
pub trait StateRead: Send + Sync {
    /// The highest topoheight written, or `None` for an empty (uninitialised) store.
    fn top_topoheight(&self) -> Result<Option<TopoHeight>, StorageError>;

    /// Chain parameters written at genesis, or `None` for an empty store.
    fn chain_params(&self) -> Result<Option<ChainParams>, StorageError>;

    /// Metadata of exactly `topoheight`, or `None` if it was not written.
    fn block_meta(&self, topoheight: TopoHeight) -> Result<Option<BlockMeta>, StorageError>;

    /// The value of `key` at its latest version `<= topoheight`; `None` if
    /// it was never written by then.
    fn get(
        &self,
        key: &StateKey,
        topoheight: TopoHeight,
    ) -> Result<Option<StateValue>, StorageError>;

    /// Many reads at once, answering exactly what [`Self::get`] answers for
    /// each of `keys` (appended to `out` in the same order). Executors use
    /// it to load a block's keys; the default reads them one by one,
    /// `RocksStorage` sweeps one iterator per column family over the batch
    /// and `MemoryStorage` takes its lock once.
    fn get_batch(
        &self,
        keys: &[&StateKey],
        topoheight: TopoHeight,
        out: &mut Vec<Option<StateValue>>,
    ) -> Result<(), StorageError> {
        for key in keys {
            out.push(self.get(key, topoheight)?);
        }
        Ok(())
    }

    /// Nonce of `account` at `topoheight`; `None` if never written.
    fn get_nonce(
        &self,
        account: &PublicKey,
        topoheight: TopoHeight,
    ) -> Result<Option<u64>, StorageError> {
        counter(self.get(&StateKey::Nonce(*account), topoheight)?, "nonce")
    }

    /// Balance of (`account`, `asset`) at `topoheight`; `None` if never written.
    fn get_balance(
        &self,
        account: &PublicKey,
        asset: &Asset,
        topoheight: TopoHeight,
    ) -> Result<Option<u64>, StorageError> {
        counter(
            self.get(&StateKey::Balance(*account, *asset), topoheight)?,
            "balance",
        )
    }

    /// Multisig config of `account` at `topoheight` (`None` if never set or
    /// deleted at that version).
    fn get_multisig(
        &self,
        account: &PublicKey,
        topoheight: TopoHeight,
    ) -> Result<Option<MultisigConfig>, StorageError> {
        match self.get(&StateKey::Multisig(*account), topoheight)? {
            None | Some(StateValue::Multisig(None)) => Ok(None),
            Some(StateValue::Multisig(Some(c))) => Ok(Some(Arc::unwrap_or_clone(c))),
            Some(other) => Err(wrong_kind("multisig", &other)),
        }
    }

    /// Energy state of `account` at `topoheight`; `None` if never written.
    fn get_energy(
        &self,
        account: &PublicKey,
        topoheight: TopoHeight,
    ) -> Result<Option<EnergyState>, StorageError> {
        match self.get(&StateKey::Energy(*account), topoheight)? {
            None => Ok(None),
            Some(StateValue::Energy(e)) => Ok(Some(Arc::unwrap_or_clone(e))),
            Some(other) => Err(wrong_kind("energy", &other)),
        }
    }
}

fn counter(value: Option<StateValue>, column: &'static str) -> Result<Option<u64>, StorageError> {
    match value {
        None => Ok(None),
        Some(StateValue::Counter(n)) => Ok(Some(n)),
        Some(other) => Err(wrong_kind(column, &other)),
    }
}

fn wrong_kind(column: &'static str, value: &StateValue) -> StorageError {
    StorageError::Corrupt {
        column,
        reason: format!("holds {value:?}"),
    }
}

/// Writes of a versioned store: genesis, blocks, rewinds. Each is one
/// atomic step: either everything is written or nothing is.
///
/// Writes take `&mut self`, so a node that keeps its storage in a
/// `RwLock<S>` writes under the write lock. Clones share the data: a write
/// through one clone is seen by all of them.
pub trait StateWrite {
    /// Writes the genesis state at topoheight 0 of an empty store, with its
    /// metadata and the chain parameters.
    fn init(
        &mut self,
        genesis: &ChangeSet,
        meta: &BlockMeta,
        params: &ChainParams,
    ) -> Result<(), StorageError>;

    /// Writes `changes` and `meta` at `changes.topoheight`, which must be
    /// `top + 1`.
    fn commit(&mut self, changes: &ChangeSet, meta: &BlockMeta) -> Result<(), StorageError>;

    /// Builds ahead, without reading or writing the stored state, what
    /// [`Self::commit`] of `changes` and `meta` would write (for
    /// `RocksStorage`: the encoded batch), so that a node can build it on
    /// one thread and write it on another ([`Self::commit_prepared`]).
    /// The default builds nothing.
    fn prepare_commit(
        &self,
        changes: &ChangeSet,
        meta: &BlockMeta,
    ) -> Result<PreparedCommit, StorageError> {
        let _ = (changes, meta);
        Ok(PreparedCommit::none())
    }

    /// [`Self::commit`] of `changes` and `meta`, writing what
    /// [`Self::prepare_commit`] built for exactly these (any clone of the
    /// store may have built it). Checks and atomicity are those of
    /// `commit`; a `prepared` built by another kind of store, for another
    /// topoheight, or [`PreparedCommit::none`], falls back to `commit`.
    fn commit_prepared(
        &mut self,
        changes: &ChangeSet,
        meta: &BlockMeta,
        prepared: PreparedCommit,
    ) -> Result<(), StorageError> {
        let _ = prepared;
        self.commit(changes, meta)
    }

    /// Deletes every version above `topoheight` (which must be `<= top`), so
    /// that the store is exactly as it was after `topoheight`.
    fn rewind_to(&mut self, topoheight: TopoHeight) -> Result<(), StorageError>;
}

/// What [`StateWrite::prepare_commit`] built: opaque, store-specific.
#[derive(Default)]
pub struct PreparedCommit(Option<Box<dyn std::any::Any + Send>>);

impl PreparedCommit {
    /// Nothing built: [`StateWrite::commit_prepared`] builds it itself.
    pub fn none() -> Self {
        PreparedCommit(None)
    }

    /// `value`, built by a store for its own `commit_prepared`.
    pub fn new<T: std::any::Any + Send>(value: T) -> Self {
        PreparedCommit(Some(Box::new(value)))
    }

    /// The value, if it is a `T` (else `None`: the caller builds afresh).
    pub fn take<T: std::any::Any + Send>(self) -> Option<T> {
        self.0.and_then(|b| b.downcast::<T>().ok()).map(|b| *b)
    }
}

impl std::fmt::Debug for PreparedCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "PreparedCommit(built)"
        } else {
            "PreparedCommit(none)"
        })
    }
}

/// Whole-state reads (a scan: for dumps and tests, not for execution).
pub trait StateScan {
    /// The full state at `topoheight`.
    fn snapshot(&self, topoheight: TopoHeight) -> Result<StateSnapshot, StorageError>;
}

/// A store a node owns: reads, writes, scans, and a cheap `Clone` that
/// shares the data (the executor works on a clone).
pub trait Storage: StateRead + StateWrite + StateScan + Clone + 'static {}

impl<S: StateRead + StateWrite + StateScan + Clone + 'static> Storage for S {}
