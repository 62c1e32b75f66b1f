//! Known writers: in a chunk of the optimistic path (`optimistic.rs`), the
//! keys its *declared* transactions (accesses not open) write, each with
//! the first such transaction.
//!
//! A declared transaction touches only keys it declared, in their modes
//! (the contract: enforced by every view). So when transaction `j` of a
//! chunk first reads key `k` and a declared transaction `i < j` of the
//! same chunk declared `k` as `Write` or `Add`, the value `j` would read
//! from the overlay (the state before the chunk) is the one `i` may be
//! about to change: the read is an *estimate* (Block-STM's word), and the
//! speculation stops there instead of guessing. `j` then runs again in
//! block order, after `i` is settled, exactly as a speculation that failed
//! its validation does (`optimistic.rs`, step 2). An estimate is
//! pessimistic (`i` may end up not writing `k`: a failed transaction
//! writes nothing), never wrong: it only decides that a speculation is
//! not used. Open transactions' writes are not known before they run; a
//! read of a key they write is guessed and validated.
//!
//! The table serves the open transactions (the words: declared
//! transactions are known writers *for the optimistic ones*): a chunk
//! without an open transaction lists nothing, and neither does one without
//! a declared transaction, so a block of only one kind (`uniform` forced
//! onto this path, a contract workload) pays nothing; there, a read of
//! what an earlier transaction of the chunk writes is guessed and
//! validated, as before. The table costs a probe per declared write of a
//! mixed chunk. Built by the caller between phases (on its serial path),
//! it made `contracts-mixed` (40% declared transfers) about 5% slower
//! (0.70-0.82 against 0.77-0.92 of the sequential engine, hints on, 2
//! threads, five alternating pairs); so chunk `k`'s table is built during
//! the phase before its own (chunk `k - 1`'s speculation, or the preload's
//! reads for chunk 0), as one more claimed piece of that phase
//! (`optimistic.rs`), and `contracts-mixed` measures as before (0.75-0.91
//! against 0.81-0.91). Keys compare by hash first (the hash
//! computed at admission), then by key.
//!
//! # Synchronisation
//! None of its own: the participant that claims the extra piece of phase
//! `k` builds chunk `k`'s table into a mutex of its own and counts the
//! piece with `Release`; the calling thread, once the phase is complete
//! (`Acquire`), swaps it in under the overlay's write lock, and the
//! participants of chunk `k`'s phase read it under the read lock
//! (`optimistic.rs`, "Synchronisation": the lock's release/acquire orders
//! the swap before every read, as it does the overlay's settling).

use hashbrown::HashTable;

use super::contract::{Accesses, Chain, Key, Mode};

/// One key a declared transaction of the chunk writes.
struct Writer<'a, K> {
    key: &'a K,
    hash: u64,
    /// The first transaction of the chunk (by block index) that declared
    /// it as written.
    first: usize,
}

/// The keys the chunk's declared transactions write (see the module
/// docs). Invariant: holds exactly the written declared keys of the
/// chunk it was last built for, each with its first writer.
pub(crate) struct KnownWriters<'a, K> {
    table: HashTable<Writer<'a, K>>,
}

impl<'a, K: Key> KnownWriters<'a, K> {
    /// An empty table.
    pub(crate) fn new() -> Self {
        KnownWriters {
            table: HashTable::new(),
        }
    }

    /// Rebuilds the table for the transactions `from..` of `txs` (block
    /// indices `from..from + txs.len()`).
    pub(crate) fn build<C, T>(&mut self, chain: &'a C, txs: &'a [T], from: usize)
    where
        C: Chain<Key = K>,
        T: std::borrow::Borrow<C::Tx>,
    {
        self.table.clear();
        if !txs.iter().any(|tx| chain.accesses(tx.borrow()).is_open()) {
            return;
        }
        for (i, tx) in txs.iter().enumerate() {
            let accesses: &'a Accesses<K> = chain.accesses(tx.borrow());
            if accesses.is_open() {
                continue;
            }
            for a in accesses.list() {
                if a.mode == Mode::Read {
                    continue;
                }
                // The first writer stays: transactions come in block order.
                if let hashbrown::hash_table::Entry::Vacant(v) =
                    self.table
                        .entry(a.hash, |w| w.hash == a.hash && *w.key == a.key, |w| w.hash)
                {
                    v.insert(Writer {
                        key: &a.key,
                        hash: a.hash,
                        first: from + i,
                    });
                }
            }
        }
    }

    /// Whether a declared transaction before `me` (block index) in the
    /// chunk writes `key` (hash `hash`): a read of it by `me` would be an
    /// estimate.
    #[inline]
    pub(crate) fn written_before(&self, key: &K, hash: u64, me: usize) -> bool {
        if self.table.is_empty() {
            return false;
        }
        self.table
            .find(hash, |w| w.hash == hash && *w.key == *key)
            .is_some_and(|w| w.first < me)
    }
}
