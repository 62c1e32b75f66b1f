//! Fault injection (test-only build: `--features fault-injection`): verify
//! mode reports a mismatch injected on purpose, keeps the sequential result
//! and counts it; a rule that panics is contained in every mode (a typed
//! error, nothing written, the chain usable afterwards).
//!
//! The injection switches are process-wide, so the tests here take turns.

mod oracle;

use oracle::*;
use tos_parallel::chain::dump::state_json_string;
use tos_parallel::{Blockchain, ExecutionConfig, ExecutionMode};

/// The tests of this file run one at a time (the fault switches are global).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn injected_mismatch_is_reported_and_sequential_result_kept() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
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

#[test]
fn a_panicking_rule_is_contained_and_writes_nothing() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let world = World::new(30, 12);
    let config = |mode, guards| ExecutionConfig {
        mode,
        min_txs_for_parallel: 1,
        threads: 4,
        guards,
        ..ExecutionConfig::default()
    };
    let reference =
        Blockchain::new(world.storage(1), config(ExecutionMode::Sequential, true)).unwrap();
    let chains = [
        (ExecutionMode::Parallel, false),
        (ExecutionMode::Parallel, true),
        (ExecutionMode::Verify, true),
        (ExecutionMode::Sequential, true),
    ]
    .map(|(mode, guards)| Blockchain::new(world.storage(1), config(mode, guards)).unwrap());
    let mut r = rng(12);
    for b in 0..4 {
        let block = chaos_block(
            &world,
            &*reference.storage(),
            &mut r,
            40,
            Contention::Keys(30),
        );
        let expected = reference.add_new_block(&block).unwrap();
        for chain in &chains {
            let mode = chain.config().mode;
            let before = state_json_string(&chain.snapshot(None).unwrap());
            // A transaction the rules reach (every accepted one is executed).
            tos_parallel::fault::panic_on(block.tx_hashes()[block.txs().len() / 2]);
            let got = chain.add_new_block(&block);
            tos_parallel::fault::clear_panics();
            match got {
                Err(tos_parallel::BlockError::Panicked { message }) => {
                    assert!(message.contains("fault injection"), "{mode:?}: {message}")
                }
                other => panic!("{mode:?}, block {b}: expected a contained panic, got {other:?}"),
            }
            assert_eq!(
                state_json_string(&chain.snapshot(None).unwrap()),
                before,
                "{mode:?}: the panicking block wrote something"
            );
            // The chain is usable: the same block now applies as on the reference.
            let o = chain.add_new_block(&block).unwrap();
            assert!(o.same_result(&expected), "{mode:?}, block {b}");
        }
    }
    let dump = state_json_string(&reference.snapshot(None).unwrap());
    for chain in &chains {
        assert_eq!(state_json_string(&chain.snapshot(None).unwrap()), dump);
    }
}
