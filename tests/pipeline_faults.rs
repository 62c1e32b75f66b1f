//! A block write that fails (fault injection: the `n`-th write returns a
//! typed storage error, as a full disk would): the chain loses nothing and
//! half-applies nothing. Pipelined, the committer's failure stops the
//! chain (every later call says which block failed) until the node
//! recovers and adds the dropped blocks again; inline, the block is refused
//! and the chain goes on. One test in its own binary: the hook is
//! process-wide.

mod oracle;

use oracle::*;
use tos_parallel::chain::dump::{results_line, state_json_string};
use tos_parallel::{Block, BlockError, Blockchain, ExecutionConfig, ExecutionMode, StorageError};

fn config(pipeline: bool) -> ExecutionConfig {
    ExecutionConfig {
        mode: ExecutionMode::Parallel,
        min_txs_for_parallel: 1,
        threads: 2,
        pipeline,
        guards: false,
        costly_reads: false,
        ..ExecutionConfig::default()
    }
}

fn blocks(world: &World, n: usize) -> Vec<Block> {
    blocks_after(world, &[], n, 3)
}

/// `n` blocks on top of `base` (from the world's genesis).
fn blocks_after(world: &World, base: &[Block], n: usize, seed: u64) -> Vec<Block> {
    let scratch = Blockchain::new(world.storage(1), config(false)).unwrap();
    for b in base {
        scratch.add_new_block(b).unwrap();
    }
    let mut r = rng(seed);
    (0..n)
        .map(|_| {
            let block = chaos_block(world, &*scratch.storage(), &mut r, 30, Contention::Keys(8));
            scratch.add_new_block(&block).unwrap();
            block
        })
        .collect()
}

#[test]
fn a_failed_write_loses_nothing_pipelined_or_inline() {
    let world = World::new(16, 3);
    let blocks = blocks(&world, 6);
    let reference = Blockchain::new(world.storage(1), config(false)).unwrap();
    let results: Vec<String> = blocks
        .iter()
        .map(|b| results_line(&reference.add_new_block(b).unwrap()))
        .collect();
    let dump = |t: u64| state_json_string(&reference.snapshot(Some(t)).unwrap());
    // Adds blocks `from..` and checks their results and the final state.
    let finish_from = |chain: &Blockchain<tos_parallel::MemoryStorage>, from: usize| {
        for (i, b) in blocks.iter().enumerate().skip(from) {
            assert_eq!(results_line(&chain.add_new_block(b).unwrap()), results[i]);
        }
        assert_eq!(
            state_json_string(&chain.snapshot(None).unwrap()),
            dump(blocks.len() as u64)
        );
    };

    // Pipelined: the second write fails.
    let chain = Blockchain::new(world.storage(1), config(true)).unwrap();
    tos_parallel::fault::fail_write(2);
    for (i, b) in blocks.iter().enumerate() {
        match chain.add_new_block(b) {
            Ok(outcome) => assert_eq!(results_line(&outcome), results[i], "block {i}"),
            Err(BlockError::PersistFailed { topoheight: 2, .. }) => break,
            Err(e) => panic!("block {i}: {e}"),
        }
    }
    let err = chain.flush().unwrap_err();
    assert!(
        matches!(&err, BlockError::PersistFailed { topoheight: 2, source }
            if matches!(**source, StorageError::Backend(_))),
        "{err}"
    );
    assert!(matches!(
        chain.add_new_block(&blocks[1]),
        Err(BlockError::PersistFailed { topoheight: 2, .. })
    ));
    assert_eq!(chain.persisted_topoheight().unwrap(), Some(1));
    assert_eq!(chain.recover().unwrap(), Some(1));
    assert_eq!(state_json_string(&chain.snapshot(None).unwrap()), dump(1));
    finish_from(&chain, 1);

    // Pipelined again, but after the recovery the node adds *other*
    // blocks in place of the dropped ones: nothing of the dropped blocks
    // (executed, in the overlay and in the tip cache, never written) may
    // show through.
    let other = blocks_after(&world, &blocks[..1], 3, 4);
    let fresh = Blockchain::new(world.storage(1), config(false)).unwrap();
    let expected: Vec<String> = blocks[..1]
        .iter()
        .chain(&other)
        .map(|b| results_line(&fresh.add_new_block(b).unwrap()))
        .collect();
    let chain = Blockchain::new(world.storage(1), config(true)).unwrap();
    chain.add_new_block(&blocks[0]).unwrap();
    chain.flush().unwrap();
    tos_parallel::fault::fail_write(1);
    for b in &blocks[1..] {
        if chain.add_new_block(b).is_err() {
            break;
        }
    }
    assert!(chain.flush().is_err());
    assert_eq!(chain.recover().unwrap(), Some(1));
    for (i, b) in other.iter().enumerate() {
        assert_eq!(
            results_line(&chain.add_new_block(b).unwrap()),
            expected[i + 1],
            "other block {i}"
        );
    }
    assert_eq!(
        state_json_string(&chain.snapshot(None).unwrap()),
        state_json_string(&fresh.snapshot(None).unwrap())
    );

    // Inline: the write of block 2 fails; the block is refused, the chain
    // goes on from block 1.
    let chain = Blockchain::new(world.storage(1), config(false)).unwrap();
    chain.add_new_block(&blocks[0]).unwrap();
    tos_parallel::fault::fail_write(1);
    assert!(matches!(
        chain.add_new_block(&blocks[1]),
        Err(BlockError::Storage(StorageError::Backend(_)))
    ));
    assert_eq!(chain.top_topoheight().unwrap(), Some(1));
    assert_eq!(state_json_string(&chain.snapshot(None).unwrap()), dump(1));
    finish_from(&chain, 1);
}
