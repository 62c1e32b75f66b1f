//! The RocksDB commit alone: keys per second and milliseconds per block.
//!
//! `cargo run --release -p tos-storage --example commit_rate -- [accounts] [transfers] [blocks]`
//!
//! Commits `blocks` change sets shaped like blocks of `transfers` uniform
//! transfers over `accounts` accounts (each transfer's sender gets a new
//! nonce and balance, its receiver a new balance; a key written twice in
//! a block is one write) into a fresh database in a temporary directory,
//! one `commit` per block as a node makes it, and prints the median over
//! the blocks after the first. The first block of the run is the store's
//! genesis (every account's nonce and balance), as a node starts.

use std::time::Instant;

use tos_storage::{
    BlockMeta, ChainParams, ChangeSet, Hash, PublicKey, RocksConfig, RocksStorage, StateKey,
    StateValue, StateWrite, NATIVE_ASSET,
};

/// A small deterministic generator (xorshift64*), so that the example
/// needs no random crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn account(i: u64) -> PublicKey {
    let mut k = [0u8; 32];
    k[..8].copy_from_slice(&i.to_le_bytes());
    // Spread the accounts over the key space as hashes would.
    k[8..16].copy_from_slice(&i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes());
    k.swap(0, 9);
    PublicKey(k)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let accounts = args.first().copied().unwrap_or(10_000).max(2);
    let transfers = args.get(1).copied().unwrap_or(1_000);
    let blocks = args.get(2).copied().unwrap_or(20).max(2);

    let dir = tempfile::tempdir()?;
    let mut store = RocksStorage::create(dir.path(), RocksConfig::default())?;
    let mut genesis = ChangeSet::new(0);
    for i in 0..accounts {
        genesis.set_nonce(account(i), 0);
        genesis.set_balance(account(i), NATIVE_ASSET, 1_000_000_000);
    }
    let meta = |t: u64| BlockMeta {
        hash: Hash([t as u8; 32]),
        emitted_supply: t,
        burned_supply: 0,
    };
    store.init(
        &genesis,
        &meta(0),
        &ChainParams {
            blocks_per_day: 86_400,
            genesis_hash: Hash([7; 32]),
        },
    )?;

    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut times = Vec::with_capacity(blocks as usize);
    let mut sizes = Vec::with_capacity(blocks as usize);
    for t in 1..=blocks {
        // One value per key, as an executed block's change set holds.
        let mut keys = std::collections::HashMap::new();
        for _ in 0..transfers {
            let from = rng.next() % accounts;
            let to = rng.next() % accounts;
            keys.insert(StateKey::Nonce(account(from)), StateValue::Counter(t));
            keys.insert(
                StateKey::Balance(account(from), NATIVE_ASSET),
                StateValue::Counter(rng.next() >> 20),
            );
            keys.insert(
                StateKey::Balance(account(to), NATIVE_ASSET),
                StateValue::Counter(rng.next() >> 20),
            );
        }
        let changes = ChangeSet::from_parts(t, vec![keys.into_iter().collect()]);
        sizes.push(changes.len());
        let start = Instant::now();
        store.commit(&changes, &meta(t))?;
        times.push(start.elapsed());
    }
    // The first block after genesis is a warm-up.
    let mut timed: Vec<(f64, usize)> = times
        .iter()
        .zip(&sizes)
        .skip(1)
        .map(|(d, &n)| (d.as_secs_f64(), n))
        .collect();
    timed.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (median, _) = timed[timed.len() / 2];
    let keys = sizes.iter().skip(1).sum::<usize>() as f64 / (sizes.len() - 1) as f64;
    let rates: Vec<f64> = {
        let mut r: Vec<f64> = timed.iter().map(|&(d, n)| n as f64 / d).collect();
        r.sort_by(f64::total_cmp);
        r
    };
    // A write stall (RocksDB waiting on a flush) shows in the mean and
    // the tail, not in the median.
    let total: f64 = timed.iter().map(|&(d, _)| d).sum();
    let mean = total / timed.len() as f64;
    let p99 = timed[(timed.len() * 99 / 100).min(timed.len() - 1)].0;
    println!(
        "commit_rate: {accounts} accounts, {transfers} transfers per block, {} blocks timed: {:.0} keys per block, median {:.3} ms per block (mean {:.3}, p99 {:.3}, worst {:.3}), median {:.2} M keys/s (range {:.2}-{:.2}), overall {:.2} M keys/s",
        blocks - 1,
        keys,
        median * 1e3,
        mean * 1e3,
        p99 * 1e3,
        timed[timed.len() - 1].0 * 1e3,
        rates[rates.len() / 2] / 1e6,
        rates[0] / 1e6,
        rates[rates.len() - 1] / 1e6,
        keys * timed.len() as f64 / total / 1e6,
    );
    Ok(())
}
