//! [`RocksStorage`]: the [`Storage`] semantics on RocksDB.
//!
//! # Layout
//! One column family per kind of value:
//!
//! | CF         | key                                   | value                                  |
//! |------------|---------------------------------------|----------------------------------------|
//! | `nonce`    | account ‖ !topo                       | u64                                    |
//! | `balance`  | account ‖ asset ‖ !topo               | u64                                    |
//! | `multisig` | account ‖ !topo                       | 0 (deleted) or 1, threshold, n, keys   |
//! | `energy`   | account ‖ !topo                       | available, frozen, n: u32, records     |
//! | `meta`     | topo                                  | hash ‖ emitted ‖ burned                |
//! | `info`     | `top` / `params`                      | u64 / blocks_per_day ‖ genesis hash    |
//! | `changes`  | topo                                  | (cf id, key prefix)* written at topo   |
//!
//! Integers are big-endian; `!topo` is the bitwise complement of the
//! topoheight, so the versions of one key sort newest first and "latest version
//! `<= T`" is a single forward seek to `prefix ‖ !T`. The `changes` index lets a
//! rewind delete exactly the versions written above its target without scanning.
//!
//! Every commit and every rewind is one `WriteBatch`, so a crash at any moment
//! leaves the database at the state after some whole commit or rewind.

use std::collections::BTreeSet;
use std::fmt;
use std::hash::Hash as StdHash;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use lru::LruCache;
use parking_lot::Mutex;
use rocksdb::{
    ColumnFamily, ColumnFamilyDescriptor, DBCompressionType, Options, ReadOptions, WriteBatch,
    WriteOptions, DB,
};

use crate::check::{check_commit, check_rewind};
use crate::{
    AccountSnapshot, Asset, BatchRead, BlockMeta, ChainParams, ChangeSet, EnergyState,
    FreezeRecord, Hash, MultisigConfig, PublicKey, StateSnapshot, Storage, StorageError,
    TopoHeight,
};

/// Key of the top topoheight in the `info` column family.
const INFO_TOP: &[u8] = b"top";
/// Key of the chain parameters in the `info` column family.
const INFO_PARAMS: &[u8] = b"params";

/// Tuning of a [`RocksStorage`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RocksConfig {
    /// Entries per LRU cache (nonce, balance, multisig, energy; each clone has
    /// its own four caches). 0 disables the caches.
    pub cache_capacity: usize,
    /// Fsync the write-ahead log on every commit and rewind. Without it a
    /// process crash loses nothing, a power loss may lose the last commits
    /// (never part of one).
    pub sync_writes: bool,
}

impl Default for RocksConfig {
    fn default() -> Self {
        RocksConfig {
            cache_capacity: 65_536,
            sync_writes: false,
        }
    }
}

/// The column families of a tos-parallel database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cf {
    Nonce,
    Balance,
    Multisig,
    Energy,
    Meta,
    Info,
    Changes,
}

impl Cf {
    const ALL: [Cf; 7] = [
        Cf::Nonce,
        Cf::Balance,
        Cf::Multisig,
        Cf::Energy,
        Cf::Meta,
        Cf::Info,
        Cf::Changes,
    ];

    fn name(self) -> &'static str {
        match self {
            Cf::Nonce => "nonce",
            Cf::Balance => "balance",
            Cf::Multisig => "multisig",
            Cf::Energy => "energy",
            Cf::Meta => "meta",
            Cf::Info => "info",
            Cf::Changes => "changes",
        }
    }

    /// Id of a versioned column family in the `changes` index.
    fn id(self) -> u8 {
        match self {
            Cf::Nonce => 0,
            Cf::Balance => 1,
            Cf::Multisig => 2,
            Cf::Energy => 3,
            Cf::Meta | Cf::Info | Cf::Changes => unreachable!("not a versioned column family"),
        }
    }

    fn from_id(id: u8) -> Option<Cf> {
        match id {
            0 => Some(Cf::Nonce),
            1 => Some(Cf::Balance),
            2 => Some(Cf::Multisig),
            3 => Some(Cf::Energy),
            _ => None,
        }
    }

    /// Length of the key prefix (everything but the version) of a versioned column family.
    fn prefix_len(self) -> usize {
        match self {
            Cf::Balance => 64,
            _ => 32,
        }
    }
}

// ---------------------------------------------------------------------------
// Encodings. Every decoder checks lengths exactly and returns `Corrupt`.
// ---------------------------------------------------------------------------

/// `prefix ‖ !topoheight` (big-endian).
fn versioned_key(prefix: &[u8], topoheight: TopoHeight) -> Vec<u8> {
    let mut key = Vec::with_capacity(prefix.len() + 8);
    key.extend_from_slice(prefix);
    key.extend_from_slice(&(!topoheight).to_be_bytes());
    key
}

fn balance_prefix(account: &PublicKey, asset: &Asset) -> [u8; 64] {
    let mut prefix = [0u8; 64];
    prefix[..32].copy_from_slice(&account.0);
    prefix[32..].copy_from_slice(&asset.0);
    prefix
}

/// A bounds-checked cursor over an encoded value.
struct Reader<'a> {
    column: &'static str,
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(column: &'static str, bytes: &'a [u8]) -> Self {
        Reader { column, bytes }
    }

    fn corrupt(&self, reason: impl Into<String>) -> StorageError {
        StorageError::Corrupt {
            column: self.column,
            reason: reason.into(),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], StorageError> {
        if self.bytes.len() < n {
            return Err(self.corrupt(format!(
                "truncated value: needed {n} more bytes, {} left",
                self.bytes.len()
            )));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], StorageError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, StorageError> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, StorageError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, StorageError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn finish(self) -> Result<(), StorageError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(self.corrupt(format!("{} trailing bytes", self.bytes.len())))
        }
    }
}

fn decode_u64(column: &'static str, bytes: &[u8]) -> Result<u64, StorageError> {
    let mut r = Reader::new(column, bytes);
    let v = r.u64()?;
    r.finish()?;
    Ok(v)
}

fn encode_multisig(config: Option<&MultisigConfig>) -> Vec<u8> {
    match config {
        None => vec![0],
        Some(config) => {
            let mut out = Vec::with_capacity(3 + 32 * config.participants.len());
            out.push(1);
            out.push(config.threshold);
            // check_commit guarantees at most 255 participants.
            out.push(config.participants.len() as u8);
            for key in &config.participants {
                out.extend_from_slice(&key.0);
            }
            out
        }
    }
}

fn decode_multisig(bytes: &[u8]) -> Result<Option<MultisigConfig>, StorageError> {
    let mut r = Reader::new("multisig", bytes);
    let config = match r.u8()? {
        0 => None,
        1 => {
            let threshold = r.u8()?;
            let count = r.u8()?;
            let participants = (0..count)
                .map(|_| r.array().map(PublicKey))
                .collect::<Result<_, _>>()?;
            Some(MultisigConfig {
                threshold,
                participants,
            })
        }
        tag => return Err(r.corrupt(format!("unknown multisig tag {tag}"))),
    };
    r.finish()?;
    Ok(config)
}

fn encode_energy(energy: &EnergyState) -> Vec<u8> {
    let mut out = Vec::with_capacity(20 + 24 * energy.records.len());
    out.extend_from_slice(&energy.available.to_be_bytes());
    out.extend_from_slice(&energy.frozen.to_be_bytes());
    // check_commit guarantees the count fits in a u32.
    out.extend_from_slice(&(energy.records.len() as u32).to_be_bytes());
    for record in &energy.records {
        out.extend_from_slice(&record.amount.to_be_bytes());
        out.extend_from_slice(&record.energy.to_be_bytes());
        out.extend_from_slice(&record.unlock_topoheight.to_be_bytes());
    }
    out
}

fn decode_energy(bytes: &[u8]) -> Result<EnergyState, StorageError> {
    let mut r = Reader::new("energy", bytes);
    let available = r.u64()?;
    let frozen = r.u64()?;
    let count = r.u32()? as usize;
    if r.bytes.len() != count.saturating_mul(24) {
        return Err(r.corrupt(format!(
            "{count} freeze records but {} bytes left",
            r.bytes.len()
        )));
    }
    let records = (0..count)
        .map(|_| {
            Ok(FreezeRecord {
                amount: r.u64()?,
                energy: r.u64()?,
                unlock_topoheight: r.u64()?,
            })
        })
        .collect::<Result<_, StorageError>>()?;
    r.finish()?;
    Ok(EnergyState {
        available,
        frozen,
        records,
    })
}

fn encode_meta(meta: &BlockMeta) -> [u8; 48] {
    let mut out = [0u8; 48];
    out[..32].copy_from_slice(&meta.hash.0);
    out[32..40].copy_from_slice(&meta.emitted_supply.to_be_bytes());
    out[40..].copy_from_slice(&meta.burned_supply.to_be_bytes());
    out
}

fn decode_meta(bytes: &[u8]) -> Result<BlockMeta, StorageError> {
    let mut r = Reader::new("meta", bytes);
    let meta = BlockMeta {
        hash: Hash(r.array()?),
        emitted_supply: r.u64()?,
        burned_supply: r.u64()?,
    };
    r.finish()?;
    Ok(meta)
}

fn encode_params(params: &ChainParams) -> [u8; 40] {
    let mut out = [0u8; 40];
    out[..8].copy_from_slice(&params.blocks_per_day.to_be_bytes());
    out[8..].copy_from_slice(&params.genesis_hash.0);
    out
}

fn decode_params(bytes: &[u8]) -> Result<ChainParams, StorageError> {
    let mut r = Reader::new("info", bytes);
    let params = ChainParams {
        blocks_per_day: r.u64()?,
        genesis_hash: Hash(r.array()?),
    };
    r.finish()?;
    Ok(params)
}

/// Appends one `(cf, prefix)` entry to a `changes` index value.
fn push_change(index: &mut Vec<u8>, cf: Cf, prefix: &[u8]) {
    debug_assert_eq!(prefix.len(), cf.prefix_len());
    index.push(cf.id());
    index.extend_from_slice(prefix);
}

/// Decodes a `changes` index value into its `(cf, prefix)` entries.
fn decode_changes(bytes: &[u8]) -> Result<Vec<(Cf, &[u8])>, StorageError> {
    let mut r = Reader::new("changes", bytes);
    let mut out = Vec::new();
    while !r.is_empty() {
        let id = r.u8()?;
        let cf = Cf::from_id(id).ok_or_else(|| r.corrupt(format!("unknown column id {id}")))?;
        out.push((cf, r.take(cf.prefix_len())?));
    }
    Ok(out)
}

/// Splits a versioned key of `cf` into its prefix and topoheight.
fn split_versioned_key(cf: Cf, key: &[u8]) -> Result<(&[u8], TopoHeight), StorageError> {
    let n = cf.prefix_len();
    if key.len() != n + 8 {
        return Err(StorageError::Corrupt {
            column: cf.name(),
            reason: format!("key of {} bytes, expected {}", key.len(), n + 8),
        });
    }
    let (prefix, version) = key.split_at(n);
    let version: [u8; 8] = version.try_into().expect("length checked");
    Ok((prefix, !u64::from_be_bytes(version)))
}

fn public_key(prefix: &[u8]) -> PublicKey {
    PublicKey(
        prefix[..32]
            .try_into()
            .expect("prefix of at least 32 bytes"),
    )
}

// ---------------------------------------------------------------------------
// Caches.
//
// Protocol (shared by all clones: `Shared::generation`, `Shared::write_lock`;
// per clone and per cache: `CacheState { gen, lru }` behind its own mutex).
//
// * Writers. `commit` and `rewind_to` hold `write_lock` from before they read
//   the top until after their last bump, so writes are totally ordered across
//   clones. Each one bumps `generation` to an odd value, writes ONE batch, and
//   bumps it again to an even value (also when the write failed: the state is
//   then unknown, and the bump invalidates every cache). So an even
//   generation `g` means "no write in progress; the database is exactly the
//   state after the `g / 2`-th write", and an odd one "a write is under way".
// * Serving. Every cache access first loads `generation` (Acquire) under the
//   cache mutex and, if it differs from `gen`, clears the cache and sets `gen`
//   to it. So only entries tagged with the generation the reader observes are
//   ever served. A reader that happens after a write's first bump observes
//   that bump or a later one (coherence) and so cannot use older entries. That
//   covers a read that starts after the commit/rewind returned, and also a
//   read that starts after the reader saw the write's data in the database
//   (e.g. the new top): the first bump is sequenced before the batch, and
//   RocksDB publishes a batch with release/acquire on its sequence number.
// * Filling. On a miss the reader remembers `g = gen`, releases the mutex and
//   reads the database. It re-locks and inserts only if `g` is even, `gen ==
//   g` and `generation` still loads `g`. The Acquire load that first observed
//   `g` synchronised with the bump that produced it, so the read saw at least
//   the state after write `g / 2`; had it seen any later write, it would
//   happen after that write's first bump, and the re-check would not load
//   `g`. Invariant: an entry tagged with an even `g` is exactly the latest
//   version of its key (or its absence) in the state of generation `g`.
// * Write-through. A committer holds `write_lock` and `&mut self` (no reader
//   uses this clone meanwhile). Let `g0` (even) be the generation it loads
//   under the lock before writing. By the invariant, a cache with `gen == g0`
//   holds entries of exactly state `g0`; inserting the committed values gives
//   entries of the state after the commit, whose generation is `g0 + 2`, so it
//   sets `gen = g0 + 2`. A cache that was not current is cleared instead.
// * Entries hold the LATEST version overall (or "never written"), so an entry
//   with version `v` answers any read at `T >= v`; a read below `v` goes to the
//   database and is not cached.
// ---------------------------------------------------------------------------

/// A cached key: `None` if the key was never written, else its latest version and value.
type Entry<V> = Option<(TopoHeight, V)>;

/// The mutable part of one cache.
struct CacheState<K: StdHash + Eq, V> {
    /// Generation the entries belong to (see the protocol above).
    gen: u64,
    /// The entries; allocated on first insert so that clones stay cheap.
    lru: Option<LruCache<K, Entry<V>>>,
}

/// One per-clone cache of the latest versions of a kind of value.
struct VersionedCache<K: StdHash + Eq, V> {
    /// The state; every access syncs `gen` with the shared generation first.
    state: Mutex<CacheState<K, V>>,
}

impl<K: StdHash + Eq, V> VersionedCache<K, V> {
    fn new() -> Self {
        VersionedCache {
            state: Mutex::new(CacheState { gen: 0, lru: None }),
        }
    }
}

/// Locks `cache` and brings it to the current generation (clearing it if it was behind).
fn sync_cache<'a, K: StdHash + Eq, V>(
    cache: &'a VersionedCache<K, V>,
    generation: &AtomicU64,
) -> parking_lot::MutexGuard<'a, CacheState<K, V>> {
    let mut state = cache.state.lock();
    let current = generation.load(Ordering::Acquire);
    if state.gen != current {
        if let Some(lru) = state.lru.as_mut() {
            lru.clear();
        }
        state.gen = current;
    }
    state
}

/// State shared by all clones of a [`RocksStorage`].
struct Shared {
    /// The database; every clone reads and writes it (all writes under `write_lock`).
    db: DB,
    /// Directory of the database (for messages).
    path: PathBuf,
    /// Twice the number of commit/rewind writes so far, plus one while a write is under way.
    generation: AtomicU64,
    /// Held by commit and rewind from their first read to their last generation bump.
    write_lock: Mutex<()>,
    /// Whether writes fsync the WAL.
    sync_writes: bool,
    /// Capacity of each per-clone cache (`None`: caches disabled).
    cache_capacity: Option<NonZeroUsize>,
}

impl Shared {
    fn cf(&self, cf: Cf) -> Result<&ColumnFamily, StorageError> {
        self.db
            .cf_handle(cf.name())
            .ok_or_else(|| StorageError::Corrupt {
                column: cf.name(),
                reason: "column family missing".into(),
            })
    }

    /// An iterator over `cf` bounded to the versions of `prefix` (exclusive
    /// upper bound just past them, so a seek never walks into the next key or
    /// its tombstones): for one read.
    fn prefix_iter(
        &self,
        cf: Cf,
        prefix: &[u8],
    ) -> Result<rocksdb::DBRawIterator<'_>, StorageError> {
        let mut upper = Vec::with_capacity(prefix.len() + 9);
        upper.extend_from_slice(prefix);
        upper.extend_from_slice(&[0xff; 8]);
        upper.push(0);
        let mut opts = ReadOptions::default();
        opts.set_iterate_upper_bound(upper);
        Ok(self.db.raw_iterator_cf_opt(self.cf(cf)?, opts))
    }

    /// An iterator over `cf` for a batch of [`Self::seek_with`] calls (no
    /// upper bound: each seek checks the prefix itself).
    fn batch_iter(&self, cf: Cf) -> Result<rocksdb::DBRawIterator<'_>, StorageError> {
        Ok(self
            .db
            .raw_iterator_cf_opt(self.cf(cf)?, ReadOptions::default()))
    }

    /// As [`Self::load`], on an iterator reused across a batch (creating an
    /// iterator costs about as much as the seek itself).
    fn seek_with<V>(
        it: &mut rocksdb::DBRawIterator<'_>,
        cf: Cf,
        prefix: &[u8],
        at: TopoHeight,
        decode: fn(&[u8]) -> Result<V, StorageError>,
    ) -> Result<Entry<V>, StorageError> {
        it.seek(versioned_key(prefix, at));
        let Some((key, value)) = it.item() else {
            it.status()?;
            return Ok(None);
        };
        // Past every version of `prefix` at or below `at`: none exists.
        if !key.starts_with(prefix) {
            return Ok(None);
        }
        let (_, version) = split_versioned_key(cf, key)?;
        Ok(Some((version, decode(value)?)))
    }

    /// Latest version of `prefix` in `cf` at or below `at`, decoded: one seek.
    fn load<V>(
        &self,
        cf: Cf,
        prefix: &[u8],
        at: TopoHeight,
        decode: fn(&[u8]) -> Result<V, StorageError>,
    ) -> Result<Entry<V>, StorageError> {
        Self::seek_with(&mut self.prefix_iter(cf, prefix)?, cf, prefix, at, decode)
    }

    fn read_top(&self) -> Result<Option<TopoHeight>, StorageError> {
        self.db
            .get_cf(self.cf(Cf::Info)?, INFO_TOP)?
            .map(|bytes| decode_u64("info", &bytes))
            .transpose()
    }

    /// Writes `batch` between the two generation bumps; returns the new (even)
    /// generation. The caller holds `write_lock`.
    fn write(&self, batch: WriteBatch) -> Result<u64, StorageError> {
        let mut opts = WriteOptions::default();
        opts.set_sync(self.sync_writes);
        // Odd: a write is under way, no cache may be filled.
        self.generation.fetch_add(1, Ordering::AcqRel);
        let result = self.db.write_opt(batch, &opts);
        // Even again, also on failure: the state may then be anything, so no
        // cache filled before may be trusted.
        let new_gen = self.generation.fetch_add(1, Ordering::Release) + 1;
        result?;
        Ok(new_gen)
    }

    /// Reads `key` at `at` through `cache`, following the protocol above.
    fn cached_read<K: StdHash + Eq + Clone, V: Clone>(
        &self,
        cache: &VersionedCache<K, V>,
        key: &K,
        at: TopoHeight,
        mut load: impl FnMut(TopoHeight) -> Result<Entry<V>, StorageError>,
    ) -> Result<Option<V>, StorageError> {
        let Some(capacity) = self.cache_capacity else {
            return Ok(load(at)?.map(|(_, v)| v));
        };
        let g = {
            let mut state = sync_cache(cache, &self.generation);
            // None: miss; Some(None): cached, but newer than `at`;
            // Some(Some(answer)): served from the cache.
            let hit = state
                .lru
                .as_mut()
                .and_then(|lru| lru.get(key))
                .map(|entry| match entry {
                    None => Some(None),
                    Some((version, value)) if *version <= at => Some(Some(value.clone())),
                    Some(_) => None,
                });
            match hit {
                Some(Some(answer)) => return Ok(answer),
                Some(None) => {
                    // Older than the cached latest version: seek, do not cache.
                    drop(state);
                    return Ok(load(at)?.map(|(_, v)| v));
                }
                None => state.gen,
            }
        };
        let latest = load(TopoHeight::MAX)?;
        if let Some((version, _)) = &latest {
            if *version > at {
                return Ok(load(at)?.map(|(_, v)| v));
            }
        }
        let mut state = cache.state.lock();
        if g % 2 == 0 && state.gen == g && self.generation.load(Ordering::Acquire) == g {
            state
                .lru
                .get_or_insert_with(|| LruCache::new(capacity))
                .put(key.clone(), latest.clone());
        }
        Ok(latest.map(|(_, v)| v))
    }
}

/// RocksDB-backed versioned storage (see the module docs for the layout).
///
/// Cloning is cheap: a clone shares the database and starts with empty
/// caches. A commit or rewind through any clone is seen by every clone at once.
pub struct RocksStorage {
    /// Database, generation and write lock, shared by all clones.
    shared: Arc<Shared>,
    /// Latest nonce versions.
    nonces: VersionedCache<PublicKey, u64>,
    /// Latest balance versions per (account, asset).
    balances: VersionedCache<(PublicKey, Asset), u64>,
    /// Latest multisig versions (`None` value: deleted).
    multisigs: VersionedCache<PublicKey, Option<MultisigConfig>>,
    /// Latest energy versions.
    energies: VersionedCache<PublicKey, EnergyState>,
}

impl Clone for RocksStorage {
    fn clone(&self) -> Self {
        Self::with_shared(Arc::clone(&self.shared))
    }
}

impl fmt::Debug for RocksStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RocksStorage")
            .field("path", &self.shared.path)
            .finish_non_exhaustive()
    }
}

fn db_options(create: bool) -> Options {
    let mut opts = Options::default();
    opts.create_if_missing(create);
    opts.create_missing_column_families(create);
    opts.set_compression_type(DBCompressionType::None);
    opts
}

fn cf_descriptors() -> Vec<ColumnFamilyDescriptor> {
    Cf::ALL
        .iter()
        .map(|cf| {
            let mut opts = Options::default();
            opts.set_compression_type(DBCompressionType::None);
            ColumnFamilyDescriptor::new(cf.name(), opts)
        })
        .collect()
}

fn not_found(path: &Path, reason: impl Into<String>) -> StorageError {
    StorageError::NotFound {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// Column families of the RocksDB database at `path`, read without modifying anything.
fn list_column_families(path: &Path) -> Result<BTreeSet<String>, StorageError> {
    DB::list_cf(&Options::default(), path)
        .map(|names| names.into_iter().collect())
        .map_err(|e| {
            not_found(
                path,
                format!("not a readable RocksDB database ({})", e.into_string()),
            )
        })
}

impl RocksStorage {
    /// Opens the database at `path`, creating the directory, the database and
    /// any missing column family as needed (for `init`). An existing database
    /// with column families other than tos-parallel's is refused.
    pub fn create(path: &Path, config: RocksConfig) -> Result<Self, StorageError> {
        if path.join("CURRENT").exists() {
            let ours: BTreeSet<&str> = Cf::ALL.iter().map(|cf| cf.name()).collect();
            let cfs = list_column_families(path)?;
            if let Some(foreign) = cfs
                .iter()
                .find(|name| *name != "default" && !ours.contains(name.as_str()))
            {
                return Err(not_found(
                    path,
                    format!("has column family `{foreign}`: not a tos-parallel database"),
                ));
            }
        }
        std::fs::create_dir_all(path)
            .map_err(|e| not_found(path, format!("cannot create the directory: {e}")))?;
        let db = DB::open_cf_descriptors(&db_options(true), path, cf_descriptors())?;
        Self::from_db(db, path, config)
    }

    /// Opens an existing database at `path`. Creates nothing: a missing
    /// directory, or one that does not hold a tos-parallel database, gives
    /// [`StorageError::NotFound`] and is left untouched.
    pub fn open(path: &Path, config: RocksConfig) -> Result<Self, StorageError> {
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(not_found(path, "not a directory")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(not_found(path, "directory does not exist"))
            }
            Err(e) => return Err(not_found(path, e.to_string())),
        }
        if !path.join("CURRENT").is_file() {
            return Err(not_found(
                path,
                "no RocksDB `CURRENT` file: not a tos-parallel database",
            ));
        }
        let cfs = list_column_families(path)?;
        let expected: BTreeSet<String> = Cf::ALL
            .iter()
            .map(|cf| cf.name().to_string())
            .chain(std::iter::once("default".to_string()))
            .collect();
        if cfs != expected {
            return Err(not_found(
                path,
                format!(
                    "column families {:?} are not those of a tos-parallel database",
                    cfs.iter().collect::<Vec<_>>()
                ),
            ));
        }
        let db = DB::open_cf_descriptors(&db_options(false), path, cf_descriptors())?;
        Self::from_db(db, path, config)
    }

    fn from_db(db: DB, path: &Path, config: RocksConfig) -> Result<Self, StorageError> {
        let shared = Arc::new(Shared {
            db,
            path: path.to_path_buf(),
            generation: AtomicU64::new(0),
            write_lock: Mutex::new(()),
            sync_writes: config.sync_writes,
            cache_capacity: NonZeroUsize::new(config.cache_capacity),
        });
        let storage = Self::with_shared(shared);
        // Fail early on a database whose header values are unreadable.
        let top = storage.top_topoheight()?;
        let params = storage.chain_params()?;
        if top.is_some() != params.is_some() {
            return Err(StorageError::Corrupt {
                column: "info",
                reason: format!("top is {top:?} but params are {params:?}"),
            });
        }
        Ok(storage)
    }

    fn with_shared(shared: Arc<Shared>) -> Self {
        RocksStorage {
            shared,
            nonces: VersionedCache::new(),
            balances: VersionedCache::new(),
            multisigs: VersionedCache::new(),
            energies: VersionedCache::new(),
        }
    }

    /// Directory of the database.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// After a successful commit that produced generation `new_gen` from
    /// `old_gen`: inserts the committed values into the caches that were
    /// current, clears the others (see the protocol above).
    fn write_through(&mut self, changes: &ChangeSet, old_gen: u64, new_gen: u64) {
        let capacity = self.shared.cache_capacity;
        let t = changes.topoheight;
        fn apply<K: StdHash + Eq, V>(
            cache: &mut VersionedCache<K, V>,
            capacity: Option<NonZeroUsize>,
            old_gen: u64,
            new_gen: u64,
            entries: impl Iterator<Item = (K, Entry<V>)>,
        ) {
            let state = cache.state.get_mut();
            match (state.gen == old_gen, capacity) {
                (true, Some(capacity)) => {
                    let lru = state.lru.get_or_insert_with(|| LruCache::new(capacity));
                    for (key, entry) in entries {
                        lru.put(key, entry);
                    }
                }
                _ => {
                    if let Some(lru) = state.lru.as_mut() {
                        lru.clear();
                    }
                }
            }
            state.gen = new_gen;
        }
        apply(
            &mut self.nonces,
            capacity,
            old_gen,
            new_gen,
            changes.nonces.iter().map(|(a, v)| (*a, Some((t, *v)))),
        );
        apply(
            &mut self.balances,
            capacity,
            old_gen,
            new_gen,
            changes.balances.iter().map(|(k, v)| (*k, Some((t, *v)))),
        );
        apply(
            &mut self.multisigs,
            capacity,
            old_gen,
            new_gen,
            changes
                .multisigs
                .iter()
                .map(|(a, v)| (*a, Some((t, v.clone())))),
        );
        apply(
            &mut self.energies,
            capacity,
            old_gen,
            new_gen,
            changes
                .energies
                .iter()
                .map(|(a, v)| (*a, Some((t, v.clone())))),
        );
    }

    /// Scans versioned column family `cf` in `snapshot` and calls `f(prefix, value)`
    /// with the latest version at or below `at` of every prefix that has one.
    fn scan_latest(
        &self,
        snapshot: &rocksdb::Snapshot<'_>,
        cf: Cf,
        at: TopoHeight,
        mut f: impl FnMut(&[u8], &[u8]) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        let mut opts = ReadOptions::default();
        opts.fill_cache(false);
        let mut it = snapshot.raw_iterator_cf_opt(self.shared.cf(cf)?, opts);
        it.seek_to_first();
        // Prefix whose version <= `at` was already taken (versions are newest first).
        let mut taken: Option<Vec<u8>> = None;
        while let Some((key, value)) = it.item() {
            let (prefix, version) = split_versioned_key(cf, key)?;
            if version <= at && taken.as_deref() != Some(prefix) {
                f(prefix, value)?;
                taken = Some(prefix.to_vec());
            }
            it.next();
        }
        it.status()?;
        Ok(())
    }
}

impl Storage for RocksStorage {
    fn top_topoheight(&self) -> Result<Option<TopoHeight>, StorageError> {
        self.shared.read_top()
    }

    fn chain_params(&self) -> Result<Option<ChainParams>, StorageError> {
        self.shared
            .db
            .get_cf(self.shared.cf(Cf::Info)?, INFO_PARAMS)?
            .map(|bytes| decode_params(&bytes))
            .transpose()
    }

    fn block_meta(&self, topoheight: TopoHeight) -> Result<Option<BlockMeta>, StorageError> {
        self.shared
            .db
            .get_cf(self.shared.cf(Cf::Meta)?, topoheight.to_be_bytes())?
            .map(|bytes| decode_meta(&bytes))
            .transpose()
    }

    fn get_nonce(
        &self,
        account: &PublicKey,
        topoheight: TopoHeight,
    ) -> Result<Option<u64>, StorageError> {
        let shared = &*self.shared;
        shared.cached_read(&self.nonces, account, topoheight, |at| {
            shared.load(Cf::Nonce, &account.0, at, |b| decode_u64("nonce", b))
        })
    }

    fn get_balance(
        &self,
        account: &PublicKey,
        asset: &Asset,
        topoheight: TopoHeight,
    ) -> Result<Option<u64>, StorageError> {
        let shared = &*self.shared;
        let prefix = balance_prefix(account, asset);
        shared.cached_read(&self.balances, &(*account, *asset), topoheight, |at| {
            shared.load(Cf::Balance, &prefix, at, |b| decode_u64("balance", b))
        })
    }

    fn get_multisig(
        &self,
        account: &PublicKey,
        topoheight: TopoHeight,
    ) -> Result<Option<MultisigConfig>, StorageError> {
        let shared = &*self.shared;
        let value = shared.cached_read(&self.multisigs, account, topoheight, |at| {
            shared.load(Cf::Multisig, &account.0, at, decode_multisig)
        })?;
        Ok(value.flatten())
    }

    fn get_energy(
        &self,
        account: &PublicKey,
        topoheight: TopoHeight,
    ) -> Result<Option<EnergyState>, StorageError> {
        let shared = &*self.shared;
        shared.cached_read(&self.energies, account, topoheight, |at| {
            shared.load(Cf::Energy, &account.0, at, decode_energy)
        })
    }

    fn get_batch(
        &self,
        accounts: &[PublicKey],
        balances: &[(PublicKey, Asset)],
        topoheight: TopoHeight,
    ) -> Result<BatchRead, StorageError> {
        let shared = &*self.shared;
        let mut out = BatchRead {
            nonces: Vec::with_capacity(accounts.len()),
            multisigs: Vec::with_capacity(accounts.len()),
            balances: Vec::with_capacity(balances.len()),
        };
        // Through the same cache protocol as the single reads; a miss seeks
        // on the batch's iterator of that column family.
        if !accounts.is_empty() {
            let mut it = shared.batch_iter(Cf::Nonce)?;
            for a in accounts {
                out.nonces
                    .push(shared.cached_read(&self.nonces, a, topoheight, |at| {
                        Shared::seek_with(&mut it, Cf::Nonce, &a.0, at, |b| decode_u64("nonce", b))
                    })?);
            }
            let mut it = shared.batch_iter(Cf::Multisig)?;
            for a in accounts {
                let value = shared.cached_read(&self.multisigs, a, topoheight, |at| {
                    Shared::seek_with(&mut it, Cf::Multisig, &a.0, at, decode_multisig)
                })?;
                out.multisigs.push(value.flatten());
            }
        }
        if !balances.is_empty() {
            let mut it = shared.batch_iter(Cf::Balance)?;
            for key in balances {
                let prefix = balance_prefix(&key.0, &key.1);
                out.balances
                    .push(shared.cached_read(&self.balances, key, topoheight, |at| {
                        Shared::seek_with(&mut it, Cf::Balance, &prefix, at, |b| {
                            decode_u64("balance", b)
                        })
                    })?);
            }
        }
        Ok(out)
    }

    fn commit(
        &mut self,
        changes: &ChangeSet,
        meta: &BlockMeta,
        params: Option<&ChainParams>,
    ) -> Result<(), StorageError> {
        let shared = Arc::clone(&self.shared);
        let _writer = shared.write_lock.lock();
        check_commit(shared.read_top()?, changes, params)?;
        let t = changes.topoheight;

        let mut batch = WriteBatch::default();
        let mut index = Vec::new();
        let nonce_cf = shared.cf(Cf::Nonce)?;
        for (account, nonce) in &changes.nonces {
            batch.put_cf(nonce_cf, versioned_key(&account.0, t), nonce.to_be_bytes());
            push_change(&mut index, Cf::Nonce, &account.0);
        }
        let balance_cf = shared.cf(Cf::Balance)?;
        for ((account, asset), balance) in &changes.balances {
            let prefix = balance_prefix(account, asset);
            batch.put_cf(balance_cf, versioned_key(&prefix, t), balance.to_be_bytes());
            push_change(&mut index, Cf::Balance, &prefix);
        }
        let multisig_cf = shared.cf(Cf::Multisig)?;
        for (account, config) in &changes.multisigs {
            batch.put_cf(
                multisig_cf,
                versioned_key(&account.0, t),
                encode_multisig(config.as_ref()),
            );
            push_change(&mut index, Cf::Multisig, &account.0);
        }
        let energy_cf = shared.cf(Cf::Energy)?;
        for (account, energy) in &changes.energies {
            batch.put_cf(
                energy_cf,
                versioned_key(&account.0, t),
                encode_energy(energy),
            );
            push_change(&mut index, Cf::Energy, &account.0);
        }
        batch.put_cf(shared.cf(Cf::Meta)?, t.to_be_bytes(), encode_meta(meta));
        batch.put_cf(shared.cf(Cf::Changes)?, t.to_be_bytes(), index);
        let info_cf = shared.cf(Cf::Info)?;
        batch.put_cf(info_cf, INFO_TOP, t.to_be_bytes());
        if let Some(params) = params {
            batch.put_cf(info_cf, INFO_PARAMS, encode_params(params));
        }

        // Stable and even: only writers change it, and we hold the write lock.
        let old_gen = shared.generation.load(Ordering::Acquire);
        let new_gen = shared.write(batch)?;
        self.write_through(changes, old_gen, new_gen);
        if params.is_some() {
            // A genesis is one huge batch (every account): flush it to SST files
            // now, or every later open replays it from the WAL into memtables
            // (measured: +680 MB RSS on the first open of a 1M-account chain).
            // The data is already durable in the WAL, so a failed flush only costs memory.
            for cf in Cf::ALL {
                if let Err(e) = shared.cf(cf).and_then(|h| Ok(shared.db.flush_cf(h)?)) {
                    log::warn!("flush after genesis failed (data is safe in the WAL): {e}");
                }
            }
        }
        Ok(())
    }

    fn rewind_to(&mut self, topoheight: TopoHeight) -> Result<(), StorageError> {
        let shared = Arc::clone(&self.shared);
        let _writer = shared.write_lock.lock();
        let top = shared.read_top()?;
        check_rewind(top, topoheight)?;
        let top = top.expect("check_rewind ensures a top");
        if topoheight == top {
            return Ok(());
        }
        let changes_cf = shared.cf(Cf::Changes)?;
        let meta_cf = shared.cf(Cf::Meta)?;
        let mut batch = WriteBatch::default();
        for t in topoheight + 1..=top {
            let key = t.to_be_bytes();
            let index =
                shared
                    .db
                    .get_cf(changes_cf, key)?
                    .ok_or_else(|| StorageError::Corrupt {
                        column: "changes",
                        reason: format!("no change index at topoheight {t} (top {top})"),
                    })?;
            for (cf, prefix) in decode_changes(&index)? {
                batch.delete_cf(shared.cf(cf)?, versioned_key(prefix, t));
            }
            batch.delete_cf(meta_cf, key);
            batch.delete_cf(changes_cf, key);
        }
        batch.put_cf(shared.cf(Cf::Info)?, INFO_TOP, topoheight.to_be_bytes());
        shared.write(batch)?;
        // The caches of every clone (this one included) clear on their next access.
        Ok(())
    }

    fn snapshot(&self, topoheight: TopoHeight) -> Result<StateSnapshot, StorageError> {
        let shared = &*self.shared;
        // One RocksDB snapshot, so a concurrent rewind cannot tear the scan.
        let snapshot = shared.db.snapshot();
        let top = snapshot
            .get_cf(shared.cf(Cf::Info)?, INFO_TOP)?
            .map(|bytes| decode_u64("info", &bytes))
            .transpose()?;
        match top {
            Some(top) if topoheight <= top => {}
            _ => return Err(StorageError::MissingTopoheight { topoheight, top }),
        }
        let meta = snapshot
            .get_cf(shared.cf(Cf::Meta)?, topoheight.to_be_bytes())?
            .ok_or_else(|| StorageError::Corrupt {
                column: "meta",
                reason: format!("no block meta at topoheight {topoheight} <= top {top:?}"),
            })?;
        let meta = decode_meta(&meta)?;

        let mut accounts: std::collections::BTreeMap<PublicKey, AccountSnapshot> =
            Default::default();
        self.scan_latest(&snapshot, Cf::Nonce, topoheight, |prefix, value| {
            accounts.entry(public_key(prefix)).or_default().nonce = decode_u64("nonce", value)?;
            Ok(())
        })?;
        self.scan_latest(&snapshot, Cf::Balance, topoheight, |prefix, value| {
            let asset = Hash(prefix[32..].try_into().expect("64-byte prefix"));
            accounts
                .entry(public_key(prefix))
                .or_default()
                .balances
                .insert(asset, decode_u64("balance", value)?);
            Ok(())
        })?;
        self.scan_latest(&snapshot, Cf::Multisig, topoheight, |prefix, value| {
            accounts.entry(public_key(prefix)).or_default().multisig = decode_multisig(value)?;
            Ok(())
        })?;
        self.scan_latest(&snapshot, Cf::Energy, topoheight, |prefix, value| {
            accounts.entry(public_key(prefix)).or_default().energy = decode_energy(value)?;
            Ok(())
        })?;
        Ok(StateSnapshot {
            topoheight,
            meta,
            accounts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codecs_round_trip() {
        let config = MultisigConfig {
            threshold: 2,
            participants: vec![PublicKey([1; 32]), PublicKey([2; 32]), PublicKey([3; 32])],
        };
        assert_eq!(
            decode_multisig(&encode_multisig(Some(&config))).unwrap(),
            Some(config)
        );
        assert_eq!(decode_multisig(&encode_multisig(None)).unwrap(), None);
        let energy = EnergyState {
            available: 5,
            frozen: 7,
            records: vec![
                FreezeRecord {
                    amount: 7,
                    energy: 5,
                    unlock_topoheight: 99,
                },
                FreezeRecord::default(),
            ],
        };
        assert_eq!(decode_energy(&encode_energy(&energy)).unwrap(), energy);
        let meta = BlockMeta {
            hash: Hash([9; 32]),
            emitted_supply: 1,
            burned_supply: 2,
        };
        assert_eq!(decode_meta(&encode_meta(&meta)).unwrap(), meta);
        let params = ChainParams {
            blocks_per_day: 86_400,
            genesis_hash: Hash([4; 32]),
        };
        assert_eq!(decode_params(&encode_params(&params)).unwrap(), params);
        let mut index = Vec::new();
        push_change(&mut index, Cf::Nonce, &[1; 32]);
        push_change(&mut index, Cf::Balance, &[2; 64]);
        let decoded = decode_changes(&index).unwrap();
        assert_eq!(decoded.len(), 2);
        assert_eq!(decoded[0], (Cf::Nonce, &[1u8; 32][..]));
        assert_eq!(decoded[1], (Cf::Balance, &[2u8; 64][..]));
    }

    #[test]
    fn corrupt_values_are_errors_not_panics() {
        let corrupt = |r: Result<_, StorageError>| matches!(r, Err(StorageError::Corrupt { .. }));
        assert!(corrupt(decode_u64("nonce", &[1, 2, 3]).map(|_| ())));
        assert!(corrupt(decode_u64("nonce", &[0; 9]).map(|_| ())));
        assert!(corrupt(decode_multisig(&[]).map(|_| ())));
        assert!(corrupt(decode_multisig(&[2]).map(|_| ())));
        assert!(corrupt(decode_multisig(&[0, 0]).map(|_| ())));
        assert!(corrupt(decode_multisig(&[1, 1, 2, 0, 0]).map(|_| ())));
        assert!(corrupt(decode_energy(&[0; 19]).map(|_| ())));
        let mut huge = vec![0u8; 16];
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(corrupt(decode_energy(&huge).map(|_| ())));
        assert!(corrupt(decode_meta(&[0; 47]).map(|_| ())));
        assert!(corrupt(decode_params(&[0; 41]).map(|_| ())));
        assert!(corrupt(decode_changes(&[7]).map(|_| ())));
        assert!(corrupt(decode_changes(&[0, 1, 2]).map(|_| ())));
        assert!(corrupt(
            split_versioned_key(Cf::Nonce, &[0; 39]).map(|_| ())
        ));
    }

    #[test]
    fn versioned_keys_sort_newest_first() {
        let p = [5u8; 32];
        assert!(versioned_key(&p, 10) < versioned_key(&p, 9));
        assert!(versioned_key(&p, 0) < versioned_key(&[6u8; 32], TopoHeight::MAX));
        assert_eq!(
            split_versioned_key(Cf::Nonce, &versioned_key(&p, 42)).unwrap(),
            (&p[..], 42)
        );
    }
}
