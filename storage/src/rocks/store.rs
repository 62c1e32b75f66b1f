//! The database handle every clone shares: column families, seeks and the
//! one way writes happen (between two generation bumps, `cache.rs`).

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use rocksdb::{ColumnFamily, DBRawIterator, ReadOptions, WriteBatch, WriteOptions, DB};

use super::cache::Entry;
use super::codec::{decode_u64, decode_value};
use super::schema::{split_versioned_key, versioned_key_on_stack, Cf, INFO_TOP};
use crate::{StorageError, TopoHeight};

/// Read options: every tier, or the memtables only (the mutable one and
/// those being flushed).
fn read_options(memtables: bool) -> ReadOptions {
    let mut opts = ReadOptions::default();
    if memtables {
        opts.set_read_tier(rocksdb::ReadTier::Memtable);
    }
    opts
}

/// The seeks of one batch in one column family: the memtables first, then,
/// only for a key they lack at or below the topoheight, the whole database.
///
/// Why the memtables' answer is the database's: a key's live versions were
/// written in increasing topoheight order (a commit writes `top + 1` only,
/// `check.rs`; a rewind deletes every version above its target and writes
/// none), and the memtables hold every write since the column family's
/// last flush, everything in its files being older. So a live version at
/// or below `T` in the memtables is newer than any live version in the
/// files, hence the latest at or below `T` of the whole database. A
/// version the memtables hold deleted (a rewind's tombstone) is skipped
/// there as anywhere. In a long run most keys a block reads were written
/// since the last flush, and their seeks then skip every level of files
/// (`benches/README.md`).
pub(super) struct Seeker<'a> {
    cf: Cf,
    shared: &'a Shared,
    memtables: DBRawIterator<'a>,
    /// Created at the first key the memtables lack.
    all: Option<DBRawIterator<'a>>,
}

impl<'a> Seeker<'a> {
    pub(super) fn new(shared: &'a Shared, cf: Cf) -> Result<Self, StorageError> {
        Ok(Seeker {
            cf,
            shared,
            memtables: shared.batch_iter(cf, true)?,
            all: None,
        })
    }

    /// The latest version of `prefix` at or below `at`, decoded.
    pub(super) fn seek(&mut self, prefix: &[u8], at: TopoHeight) -> Result<Entry, StorageError> {
        let found = Shared::seek_with(&mut self.memtables, self.cf, prefix, at)?;
        if found.is_some() {
            return Ok(found);
        }
        let all = match &mut self.all {
            Some(all) => all,
            none => none.insert(self.shared.batch_iter(self.cf, false)?),
        };
        Shared::seek_with(all, self.cf, prefix, at)
    }
}

/// State shared by all clones of a [`super::RocksStorage`].
pub(super) struct Shared {
    /// The database; every clone reads and writes it (all writes under `write_lock`).
    pub(super) db: DB,
    /// Directory of the database (for messages).
    pub(super) path: PathBuf,
    /// Twice the number of commit/rewind writes so far, plus one while a write is under way.
    pub(super) generation: AtomicU64,
    /// Held by init, commit and rewind from their first read to their last generation bump.
    pub(super) write_lock: Mutex<()>,
    /// Whether writes fsync the WAL.
    pub(super) sync_writes: bool,
    /// Capacity of each per-clone cache (`None`: caches disabled).
    pub(super) cache_capacity: Option<NonZeroUsize>,
}

impl Shared {
    pub(super) fn cf(&self, cf: Cf) -> Result<&ColumnFamily, StorageError> {
        self.db
            .cf_handle(cf.name())
            .ok_or_else(|| StorageError::Corrupt {
                column: cf.name(),
                reason: "column family missing".into(),
            })
    }

    /// An iterator over `cf` bounded to the versions of `prefix` (exclusive
    /// upper bound just past them, so a seek never walks into the next key or
    /// its tombstones): for one read. `memtables`: over the memtables only
    /// (see [`Seeker`]).
    pub(super) fn prefix_iter(
        &self,
        cf: Cf,
        prefix: &[u8],
        memtables: bool,
    ) -> Result<DBRawIterator<'_>, StorageError> {
        let mut upper = Vec::with_capacity(prefix.len() + 9);
        upper.extend_from_slice(prefix);
        upper.extend_from_slice(&[0xff; 8]);
        upper.push(0);
        let mut opts = read_options(memtables);
        opts.set_iterate_upper_bound(upper);
        Ok(self.db.raw_iterator_cf_opt(self.cf(cf)?, opts))
    }

    /// An iterator over `cf` for a batch of [`Self::seek_with`] calls (no
    /// upper bound: each seek checks the prefix itself). `memtables`: over
    /// the memtables only (see [`Seeker`]).
    pub(super) fn batch_iter(
        &self,
        cf: Cf,
        memtables: bool,
    ) -> Result<DBRawIterator<'_>, StorageError> {
        Ok(self
            .db
            .raw_iterator_cf_opt(self.cf(cf)?, read_options(memtables)))
    }

    /// The latest version of `prefix` in versioned column family `cf` at or
    /// below `at`, decoded, on an iterator (reused across a batch: creating
    /// an iterator costs about as much as the seek itself).
    pub(super) fn seek_with(
        it: &mut DBRawIterator<'_>,
        cf: Cf,
        prefix: &[u8],
        at: TopoHeight,
    ) -> Result<Entry, StorageError> {
        let (key, len) = versioned_key_on_stack(prefix, at);
        it.seek(&key[..len]);
        let Some((key, value)) = it.item() else {
            it.status().map_err(StorageError::rocks("seek"))?;
            return Ok(None);
        };
        // Past every version of `prefix` at or below `at`: none exists.
        if !key.starts_with(prefix) {
            return Ok(None);
        }
        let (_, version) = split_versioned_key(cf, key)?;
        Ok(Some((version, decode_value(cf, value)?)))
    }

    /// As [`Seeker::seek`], on iterators of its own: one read.
    pub(super) fn load(
        &self,
        cf: Cf,
        prefix: &[u8],
        at: TopoHeight,
    ) -> Result<Entry, StorageError> {
        let found = Self::seek_with(&mut self.prefix_iter(cf, prefix, true)?, cf, prefix, at)?;
        if found.is_some() {
            return Ok(found);
        }
        Self::seek_with(&mut self.prefix_iter(cf, prefix, false)?, cf, prefix, at)
    }

    pub(super) fn read_top(&self) -> Result<Option<TopoHeight>, StorageError> {
        self.db
            .get_cf(self.cf(Cf::Info)?, INFO_TOP)
            .map_err(StorageError::rocks("read the top"))?
            .map(|bytes| decode_u64("info", &bytes))
            .transpose()
    }

    /// Writes `batch` between the two generation bumps; returns the new (even)
    /// generation. The caller holds `write_lock`.
    pub(super) fn write(&self, batch: WriteBatch) -> Result<u64, StorageError> {
        let mut opts = WriteOptions::default();
        opts.set_sync(self.sync_writes);
        // Odd: a write is under way, no cache may be filled.
        self.generation.fetch_add(1, Ordering::AcqRel);
        let result = self.db.write_opt(batch, &opts);
        // Even again, also on failure: the state may then be anything, so no
        // cache filled before may be trusted.
        let new_gen = self.generation.fetch_add(1, Ordering::Release) + 1;
        result.map_err(StorageError::rocks("write a batch"))?;
        Ok(new_gen)
    }
}
