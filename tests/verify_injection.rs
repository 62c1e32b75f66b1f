//! Verify mode reports a mismatch injected on purpose (test-only build:
//! `--features fault-injection`), keeps the sequential result, and counts it.

mod oracle;

use oracle::*;
use tos_parallel::dump::state_json_string;
use tos_parallel::{Blockchain, ExecutionConfig, ExecutionMode};

#[test]
fn injected_mismatch_is_reported_and_sequential_result_kept() {
    let world = World::new(20, 11);
    let config = |mode| ExecutionConfig {
        mode,
        min_txs_for_parallel: 1,
        threads: 4,
        ..ExecutionConfig::default()
    };
    let seq = Blockchain::new(world.storage(1), config(ExecutionMode::Sequential)).unwrap();
    let ver = Blockchain::new(world.storage(1), config(ExecutionMode::Verify)).unwrap();
    let mut r = rng(11);
    for b in 0..6 {
        let block = chaos_block(&world, &*seq.storage(), &mut r, 30, Contention::Keys(20));
        if b == 3 {
            tos_parallel::fault::arm(1);
        }
        let s = seq.add_new_block(&block).unwrap();
        let v = ver.add_new_block(&block).unwrap();
        if b == 3 {
            assert!(
                v.stats.mismatches >= 1,
                "the injected difference was not reported"
            );
        } else {
            assert_eq!(v.stats.mismatches, 0, "block {b}");
        }
        assert!(s.same_result(&v));
    }
    // The corrupted parallel result was never committed.
    assert_eq!(
        state_json_string(&seq.snapshot(None).unwrap()),
        state_json_string(&ver.snapshot(None).unwrap())
    );
}
