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
    let scratch = Blockchain::new(world.storage(1), config(false)).unwrap();
    let mut r = rng(3);
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
