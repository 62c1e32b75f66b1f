#![no_main]
//! Block execution: sequential and parallel agree on fuzz-built blocks.
//!
//! Prints, at every power of two of inputs and every 20,000 inputs, how many
//! inputs reached the parallel engine and how many with at least two
//! transactions in flight, and how many ran a contract block sealed on the
//! graph (`ExecutionCheck`): the campaign's coverage of the parallel engine,
//! read off the last such line of the log.
use std::sync::atomic::{AtomicU64, Ordering};

static INPUTS: AtomicU64 = AtomicU64::new(0);
static PARALLEL: AtomicU64 = AtomicU64::new(0);
static CONCURRENT: AtomicU64 = AtomicU64::new(0);
static SEALED: AtomicU64 = AtomicU64::new(0);

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let seen = tos_parallel_tools::fuzzing::check_execution(data);
    let n = INPUTS.fetch_add(1, Ordering::Relaxed) + 1;
    let p = PARALLEL.fetch_add(u64::from(seen.parallel_blocks > 0), Ordering::Relaxed)
        + u64::from(seen.parallel_blocks > 0);
    let c = CONCURRENT.fetch_add(u64::from(seen.concurrent_blocks > 0), Ordering::Relaxed)
        + u64::from(seen.concurrent_blocks > 0);
    let s = SEALED.fetch_add(u64::from(seen.sealed_blocks > 0), Ordering::Relaxed)
        + u64::from(seen.sealed_blocks > 0);
    if n.is_power_of_two() || n % 20_000 == 0 {
        eprintln!(
            "parallel engine: {n} inputs, {p} reached it, {c} with at least two transactions in flight, {s} with a contract block sealed on the graph"
        );
    }
});
