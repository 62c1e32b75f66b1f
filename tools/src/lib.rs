//! The tools around `tos-parallel`, kept out of the library so that a node
//! depending on it compiles none of them: the CLI (`main.rs`: init, replay,
//! dump, rewind, generate, bench, demo), the deterministic workload
//! generator (`generator.rs`), the same-run benchmark runner (`bench.rs`)
//! and the checks the fuzz targets run (`fuzzing.rs`).
#![deny(missing_docs)]

pub mod asm;
#[cfg(feature = "rocksdb")]
pub mod bench;
pub mod contracts;
pub mod fuzzing;
pub mod generator;

/// Median of a sample (the upper one for even sizes); default for an empty one.
pub fn median<T: Ord + Copy + Default>(mut v: Vec<T>) -> T {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or_default()
}
