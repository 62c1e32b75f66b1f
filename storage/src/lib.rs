//! Versioned chain-state storage for `tos-parallel`.
//!
//! Every value (nonce, balance per asset, multisig config, energy state, block
//! metadata) is stored once per topoheight at which it was written. A read "at
//! topoheight T" returns the latest version at or below T, so any past state can
//! be read, and a rewind deletes the versions above a topoheight.
//!
//! * [`Storage`] (this file): the trait executors and the node speak.
//! * [`RocksStorage`] (`rocks.rs`): RocksDB, one column family per kind of
//!   value, keys `prefix ‖ !topoheight` (big-endian) so "latest version <= T" is
//!   one forward seek; per-clone LRU caches invalidated by a shared generation.
//! * [`MemoryStorage`] (`memory.rs`): the same semantics on ordered maps, for
//!   tests and for benchmarks that separate executor cost from RocksDB cost.
//! * `types.rs`: the plain data types; `error.rs`: [`StorageError`].
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
pub use rocks::{RocksConfig, RocksStorage};
pub use types::*;

/// Versioned chain-state storage.
///
/// Reads take `&self` and are safe to call from many threads at once; writes
/// ([`Storage::commit`], [`Storage::rewind_to`]) take `&mut self`, so a node
/// that keeps its storage in a `RwLock<S>` commits under the write lock. Clones
/// share the data: a commit through one clone is seen by all of them.
pub trait Storage: Send + Sync {
    /// The highest topoheight written, or `None` for an empty (uninitialised) store.
    fn top_topoheight(&self) -> Result<Option<TopoHeight>, StorageError>;

    /// Chain parameters written at genesis, or `None` for an empty store.
    fn chain_params(&self) -> Result<Option<ChainParams>, StorageError>;

    /// Metadata of exactly `topoheight`, or `None` if it was not written.
    fn block_meta(&self, topoheight: TopoHeight) -> Result<Option<BlockMeta>, StorageError>;

    /// Nonce of `account` at the latest version `<= topoheight`; `None` if never written.
    fn get_nonce(
        &self,
        account: &PublicKey,
        topoheight: TopoHeight,
    ) -> Result<Option<u64>, StorageError>;

    /// Balance of (`account`, `asset`) at the latest version `<= topoheight`; `None` if never written.
    fn get_balance(
        &self,
        account: &PublicKey,
        asset: &Asset,
        topoheight: TopoHeight,
    ) -> Result<Option<u64>, StorageError>;

    /// Multisig config of `account` at the latest version `<= topoheight`
    /// (`None` if never set or deleted at that version).
    fn get_multisig(
        &self,
        account: &PublicKey,
        topoheight: TopoHeight,
    ) -> Result<Option<MultisigConfig>, StorageError>;

    /// Energy state of `account` at the latest version `<= topoheight`; `None` if never written.
    fn get_energy(
        &self,
        account: &PublicKey,
        topoheight: TopoHeight,
    ) -> Result<Option<EnergyState>, StorageError>;

    /// Writes `changes` and `meta` at `changes.topoheight` in one atomic step.
    ///
    /// `changes.topoheight` must be `top + 1` (or 0 on an empty store, together
    /// with `params`, which is required exactly then). Either everything is
    /// written or nothing is.
    fn commit(
        &mut self,
        changes: &ChangeSet,
        meta: &BlockMeta,
        params: Option<&ChainParams>,
    ) -> Result<(), StorageError>;

    /// Deletes every version above `topoheight` (which must be `<= top`) in one
    /// atomic step, so that the store is exactly as it was after `topoheight`.
    fn rewind_to(&mut self, topoheight: TopoHeight) -> Result<(), StorageError>;

    /// Whether reads cost enough (disk, decoding, seeks) that an executor should
    /// load every key a block touches in parallel before executing it. `true`
    /// by default; an in-memory store answers `false` (its reads cost less than
    /// the prefetch's own bookkeeping).
    fn prefetch_pays(&self) -> bool {
        true
    }

    /// Many reads at once, answering exactly what the single reads answer:
    /// the nonce and multisig config of each of `accounts`, and each of
    /// `balances`, all at `topoheight`. Executors use it to prefetch a
    /// block's keys. The default reads them one by one; `RocksStorage`
    /// sweeps one iterator per column family over the batch.
    fn get_batch(
        &self,
        accounts: &[PublicKey],
        balances: &[(PublicKey, Asset)],
        topoheight: TopoHeight,
    ) -> Result<BatchRead, StorageError> {
        Ok(BatchRead {
            nonces: accounts
                .iter()
                .map(|a| self.get_nonce(a, topoheight))
                .collect::<Result<_, _>>()?,
            multisigs: accounts
                .iter()
                .map(|a| self.get_multisig(a, topoheight))
                .collect::<Result<_, _>>()?,
            balances: balances
                .iter()
                .map(|(a, asset)| self.get_balance(a, asset, topoheight))
                .collect::<Result<_, _>>()?,
        })
    }

    /// The full state at `topoheight` (a scan; for dumps and tests, not for execution).
    fn snapshot(&self, topoheight: TopoHeight) -> Result<StateSnapshot, StorageError>;
}
