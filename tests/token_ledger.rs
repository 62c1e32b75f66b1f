//! The token ledger (`examples/token_ledger.rs`), a chain unlike the SPEC
//! chain, on the engine: on 1, 2, 4 and 8 threads, with the graph and the
//! batch scheduler, from 2 accounts (every
//! transaction contends) to a disjoint workload (none does), the parallel
//! engine (guards off) equals the sequential engine and the example's plain
//! in-order interpreter: statuses, block sums, writes and the state after
//! every block. Deliberately bad transactions are orphaned for each reason.

#[path = "../examples/token_ledger.rs"]
#[allow(dead_code)]
mod token_ledger;

use std::collections::BTreeMap;

use token_ledger::*;
use tos_parallel::engine::{EngineConfig, Executor};
use tos_parallel::Scheduler;

const LEDGER: Ledger = Ledger {
    issuer: 0,
    fee: 1,
    work: 0,
};

const CONFIG: EngineConfig = EngineConfig {
    scheduler: Scheduler::Graph,
    guards: true,
    costly_reads: false,
    reserved_cores: 0,
    speculate_all: false,
};

/// What the runs saw.
#[derive(Default)]
struct Tally {
    orphans: BTreeMap<&'static str, usize>,
    proven: usize,
    blocks: usize,
}

impl Tally {
    fn orphaned(&self) -> usize {
        self.orphans.values().sum()
    }
}

fn parallel(threads: usize) -> Executor<Ledger> {
    parallel_with(threads, Scheduler::Graph)
}

fn parallel_with(threads: usize, scheduler: Scheduler) -> Executor<Ledger> {
    Executor::new(
        threads,
        EngineConfig {
            scheduler,
            ..CONFIG
        },
    )
    .expect("thread pool")
    .always_parallel()
}

/// Runs `blocks` blocks of `workload` on `ex` and sequentially, each on its
/// own copy of the state, asserting they agree block after block.
fn run(ex: &Executor<Ledger>, workload: Workload, blocks: usize, seed: u64, tally: &mut Tally) {
    let label = format!(
        "{:?}, {} threads, {:?}",
        workload.shape,
        ex.threads(),
        ex.config().scheduler
    );
    let sequential = Executor::<Ledger>::on_current_pool(CONFIG);
    let mut generator = Generator::new(LEDGER, workload, seed);
    let genesis = LedgerState::genesis(workload.accounts(), GENESIS_BALANCE);
    let (mut par_state, mut seq_state) = (genesis.clone(), genesis);
    for b in 0..blocks {
        let generated = generator.next_block(&seq_state);
        let txs: Vec<CheckedTx> = generated.txs.iter().map(|tx| LEDGER.check(*tx)).collect();
        let par = ex
            .execute(&LEDGER, &generated.block, &txs, &par_state)
            .expect("parallel execution");
        let seq = sequential
            .execute_sequential(&LEDGER, &generated.block, &txs, &seq_state)
            .expect("sequential execution");

        assert!(
            par.stats.parallel_engine,
            "{label}, block {b}: not on the parallel engine: {:?}",
            par.stats
        );
        assert_eq!(par.statuses, seq.statuses, "{label}, block {b}: statuses");
        assert_eq!(par.sums, seq.sums, "{label}, block {b}: sums");
        assert_eq!(
            par.writes.sorted(),
            seq.writes.sorted(),
            "{label}, block {b}: writes"
        );
        assert_eq!(
            seq.statuses, generated.expected,
            "{label}, block {b}: in-order statuses"
        );
        assert_eq!(
            seq.sums, generated.expected_sums,
            "{label}, block {b}: in-order sums"
        );

        par_state.apply(&par.writes);
        seq_state.apply(&seq.writes);
        assert!(par_state == seq_state, "{label}, block {b}: state differs");
        assert!(
            seq_state == generated.expected_state,
            "{label}, block {b}: state differs from in-order execution"
        );
        assert_eq!(
            seq_state.total_balances(),
            u128::from(seq_state.counter(&LedgerKey::Supply)),
            "{label}, block {b}: balances add up to the supply"
        );

        for failure in seq.statuses.iter().filter_map(|s| s.as_ref().err()) {
            *tally.orphans.entry(failure.name()).or_default() += 1;
        }
        tally.proven += par.stats.proven;
        tally.blocks += 1;
    }
}

#[test]
fn parallel_equals_sequential_over_threads_and_contention() {
    let shapes = [
        Shape::Contended { accounts: 2 },
        Shape::Contended { accounts: 8 },
        Shape::Contended { accounts: 64 },
        Shape::Contended { accounts: 1024 },
        Shape::Disjoint,
        Shape::Payroll {
            payers: 4,
            payees: 300,
        },
    ];
    let mut tally = Tally::default();
    let schedulers = [Scheduler::Graph, Scheduler::Batches];
    for threads in [1, 2, 4, 8] {
        for scheduler in schedulers {
            let ex = parallel_with(threads, scheduler);
            for (k, shape) in shapes.into_iter().enumerate() {
                let workload = Workload {
                    shape,
                    txs_per_block: 500,
                    fault_percent: 4,
                };
                run(&ex, workload, 3, 100 + k as u64, &mut tally);
            }
        }
    }
    assert_eq!(tally.blocks, 4 * schedulers.len() * shapes.len() * 3);
    assert!(tally.orphaned() > 0, "no transaction was orphaned");
    for reason in [
        "BadNonce",
        "Insufficient",
        "NoAllowance",
        "AllowanceExceeded",
        "NotIssuer",
        "SupplyCap",
    ] {
        assert!(
            tally.orphans.get(reason).copied().unwrap_or(0) > 0,
            "no {reason} orphan: {:?}",
            tally.orphans
        );
    }
}

#[test]
fn payroll_senders_are_proven_and_equal_sequential() {
    let mut tally = Tally::default();
    for threads in [2, 4] {
        let workload = Workload {
            shape: Shape::Payroll {
                payers: 16,
                payees: 500,
            },
            txs_per_block: 800,
            fault_percent: 0,
        };
        run(&parallel(threads), workload, 3, 7, &mut tally);
    }
    // Every payer's transfers provably commute: the proof ran and was used.
    assert!(tally.proven > 0, "no transaction was proven");
    assert_eq!(tally.orphaned(), 0, "{:?}", tally.orphans);
}

#[test]
fn orphans_write_nothing_and_report_their_reason() {
    let t = |nonce, op| Tx { nonce, op };
    let txs = [
        t(
            0,
            Op::Transfer {
                from: 0,
                to: 1,
                amount: 50,
            },
        ),
        t(
            0,
            Op::Transfer {
                from: 0,
                to: 1,
                amount: 10,
            },
        ),
        t(
            1,
            Op::Transfer {
                from: 0,
                to: 2,
                amount: u64::MAX,
            },
        ),
        t(
            0,
            Op::TransferFrom {
                spender: 2,
                owner: 1,
                to: 2,
                amount: 5,
            },
        ),
        t(
            0,
            Op::Approve {
                owner: 1,
                spender: 2,
                amount: 30,
            },
        ),
        t(
            0,
            Op::TransferFrom {
                spender: 2,
                owner: 1,
                to: 2,
                amount: 31,
            },
        ),
        t(
            0,
            Op::TransferFrom {
                spender: 2,
                owner: 1,
                to: 3,
                amount: 30,
            },
        ),
        t(
            1,
            Op::Mint {
                issuer: 1,
                to: 1,
                amount: 5,
            },
        ),
        t(
            1,
            Op::Mint {
                issuer: 0,
                to: 2,
                amount: SUPPLY_CAP,
            },
        ),
        t(
            1,
            Op::Mint {
                issuer: 0,
                to: 2,
                amount: 7,
            },
        ),
    ];
    let expected = vec![
        Ok(()),
        Err(Failure::BadNonce {
            expected: 1,
            got: 0,
        }),
        Err(Failure::Insufficient {
            account: 0,
            balance: 49,
            required: u128::from(u64::MAX) + 1,
        }),
        Err(Failure::NoAllowance {
            owner: 1,
            spender: 2,
        }),
        Ok(()),
        Err(Failure::AllowanceExceeded {
            remaining: 30,
            requested: 31,
        }),
        Ok(()),
        Err(Failure::NotIssuer { sender: 1 }),
        Err(Failure::SupplyCap {
            supply: 400,
            requested: SUPPLY_CAP,
        }),
        Ok(()),
    ];
    let block = LedgerBlock {
        height: 1,
        collector: 3,
    };
    let checked: Vec<CheckedTx> = txs.iter().map(|tx| LEDGER.check(*tx)).collect();
    let genesis = LedgerState::genesis(4, 100);
    for threads in [1, 2] {
        let par = parallel(threads)
            .execute(&LEDGER, &block, &checked, &genesis)
            .expect("parallel execution");
        let seq = Executor::<Ledger>::on_current_pool(CONFIG)
            .execute_sequential(&LEDGER, &block, &checked, &genesis)
            .expect("sequential execution");
        assert!(par.stats.parallel_engine);
        assert_eq!(par.statuses, expected);
        assert_eq!(seq.statuses, expected);
        // Four applied transactions: four fees; seven minted.
        assert_eq!(par.sums, vec![4, 7]);
        assert_eq!(par.writes.sorted(), seq.writes.sorted());

        let mut state = genesis.clone();
        state.apply(&par.writes);
        let balance = |a| state.counter(&LedgerKey::Balance(a));
        let nonce = |a| state.counter(&LedgerKey::Nonce(a));
        // 0: -50 -fee -fee(mint); 1: +50 -fee(approve) -30; 2: -fee +7;
        // 3, the collector: +30 +4 fees. Orphans paid nothing.
        assert_eq!(
            [balance(0), balance(1), balance(2), balance(3)],
            [48, 119, 106, 134]
        );
        assert_eq!([nonce(0), nonce(1), nonce(2), nonce(3)], [2, 1, 1, 0]);
        assert_eq!(state.counter(&LedgerKey::Supply), 407);
        assert_eq!(state.total_balances(), 407);
        let grant = par
            .writes
            .iter()
            .find(|(k, _)| {
                *k == LedgerKey::Allowance {
                    owner: 1,
                    spender: 2,
                }
            })
            .map(|(_, v)| *v);
        assert_eq!(
            grant,
            Some(LedgerValue::Allowance(Allowance {
                remaining: 0,
                spent: 30
            }))
        );
    }
}

#[test]
fn wire_format_round_trips_and_rejects_garbage() {
    let workload = Workload {
        shape: Shape::Contended { accounts: 16 },
        txs_per_block: 300,
        fault_percent: 10,
    };
    let mut generator = Generator::new(LEDGER, workload, 3);
    let generated = generator.next_block(&LedgerState::genesis(16, GENESIS_BALANCE));
    for tx in &generated.txs {
        let bytes = tx.encode();
        assert_eq!(Tx::decode(&bytes), Ok(*tx));
        let admitted = LEDGER.admit(&bytes).expect("admits");
        assert_eq!(admitted.accesses, LEDGER.check(*tx).accesses);
        for cut in 2..bytes.len() {
            assert!(
                matches!(
                    Tx::decode(&bytes[..cut]),
                    Err(DecodeError::Truncated { .. })
                ),
                "{tx:?} cut at {cut}"
            );
        }
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(Tx::decode(&long), Err(DecodeError::Trailing { extra: 1 }));
    }
    assert_eq!(Tx::decode(&[]), Err(DecodeError::Empty));
    assert_eq!(
        Tx::decode(&[WIRE_VERSION]),
        Err(DecodeError::Truncated { needed: 2, got: 1 })
    );
    assert_eq!(Tx::decode(&[9, 1]), Err(DecodeError::Version(9)));
    assert_eq!(Tx::decode(&[WIRE_VERSION, 0]), Err(DecodeError::Kind(0)));
    assert_eq!(Tx::decode(&[WIRE_VERSION, 5]), Err(DecodeError::Kind(5)));
    let mut unknown = generated.txs[0].encode();
    unknown[1] = 7;
    assert_eq!(Tx::decode(&unknown), Err(DecodeError::Kind(7)));
}

/// The rules in block order on the example's plain interpreter (no engine).
fn in_order(
    block: &LedgerBlock,
    txs: &[CheckedTx],
    state: &LedgerState,
) -> (Vec<Result<(), Failure>>, LedgerState) {
    use tos_parallel::engine::Chain;
    let mut view = InOrder::new(state);
    let statuses: Vec<_> = txs
        .iter()
        .map(|tx| {
            LEDGER
                .execute(block, tx, false, &mut view)
                .expect("in order")
        })
        .collect();
    LEDGER
        .end_block(block, &view.sums(), &mut view)
        .expect("end_block");
    (statuses, view.into_state())
}

#[test]
fn only_covered_payrolls_are_proven() {
    let t = |nonce, from, to, amount| Tx {
        nonce,
        op: Op::Transfer { from, to, amount },
    };
    // Setup: 2 lets 3 spend its balance.
    let mut state = LedgerState::genesis(16, 100);
    let setup = [LEDGER.check(Tx {
        nonce: 0,
        op: Op::Approve {
            owner: 2,
            spender: 3,
            amount: 1_000,
        },
    })];
    let block = LedgerBlock {
        height: 1,
        collector: 15,
    };
    let done = parallel(2)
        .execute(&LEDGER, &block, &setup, &state)
        .expect("setup");
    assert_eq!(done.statuses, vec![Ok(())]);
    state.apply(&done.writes);

    // 0: five transfers of 30 (+1 fee) on a balance of 100: not covered.
    // 1: four of 10: covered, proven.
    // 2: four of 20, covered on the block-start state, but 3 spends 50 of
    //    2's balance in between (a write of a key the proof would turn into
    //    an add): the engine must not use the proof.
    let txs = [
        t(0, 0, 10, 30),
        t(0, 1, 10, 10),
        t(1, 2, 10, 20),
        t(1, 0, 11, 30),
        t(1, 1, 11, 10),
        t(2, 2, 11, 20),
        Tx {
            nonce: 0,
            op: Op::TransferFrom {
                spender: 3,
                owner: 2,
                to: 3,
                amount: 50,
            },
        },
        t(2, 0, 12, 30),
        t(2, 1, 12, 10),
        t(3, 2, 12, 20),
        t(3, 0, 13, 30),
        t(3, 1, 13, 10),
        t(4, 2, 13, 20),
        t(4, 0, 14, 30),
    ];
    let expected = vec![
        Ok(()),
        Ok(()),
        Ok(()),
        Ok(()),
        Ok(()),
        Ok(()),
        Ok(()),
        Ok(()),
        Ok(()),
        Err(Failure::Insufficient {
            account: 2,
            balance: 7,
            required: 21,
        }),
        Err(Failure::Insufficient {
            account: 0,
            balance: 7,
            required: 31,
        }),
        Ok(()),
        Err(Failure::BadNonce {
            expected: 3,
            got: 4,
        }),
        Err(Failure::BadNonce {
            expected: 3,
            got: 4,
        }),
    ];
    let checked: Vec<CheckedTx> = txs.iter().map(|tx| LEDGER.check(*tx)).collect();
    let block = LedgerBlock {
        height: 2,
        collector: 15,
    };
    let (in_order_statuses, in_order_state) = in_order(&block, &checked, &state);
    assert_eq!(in_order_statuses, expected);
    for threads in [1, 2, 4] {
        let par = parallel(threads)
            .execute(&LEDGER, &block, &checked, &state)
            .expect("parallel execution");
        assert!(par.stats.parallel_engine);
        assert_eq!(par.statuses, expected, "{threads} threads");
        assert_eq!(
            par.stats.proven, 4,
            "{threads} threads: only sender 1 is proven"
        );
        let mut after = state.clone();
        after.apply(&par.writes);
        assert!(after == in_order_state, "{threads} threads: state");
    }
}

/// A storage whose read of one key fails (a bad sector under one account).
struct FailingRead<'s> {
    state: &'s LedgerState,
    bad: LedgerKey,
}

#[derive(Debug)]
struct BadSector;

impl std::fmt::Display for BadSector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bad sector")
    }
}

impl std::error::Error for BadSector {}

impl tos_parallel::engine::Reader<LedgerKey, LedgerValue> for FailingRead<'_> {
    type Error = BadSector;

    fn read(&self, key: &LedgerKey) -> Result<Option<LedgerValue>, BadSector> {
        if *key == self.bad {
            return Err(BadSector);
        }
        tos_parallel::engine::Reader::read(self.state, key).map_err(|never| match never {})
    }
}

/// A failed read of a declared key abandons the block on every engine,
/// whether or not execution reads it (a transfer that fails its nonce check
/// never reads its receiver's balance), and the same error either way: the
/// engines read every declared key before running (`Reader`'s contract). A
/// block that does not declare the key runs as on a sound storage.
#[test]
fn a_failed_read_abandons_every_block_that_declares_the_key() {
    let genesis = LedgerState::genesis(4, 100);
    let block = LedgerBlock {
        height: 1,
        collector: 3,
    };
    let tx = |from, nonce, to| {
        LEDGER.check(Tx {
            nonce,
            op: Op::Transfer {
                from,
                to,
                amount: 5,
            },
        })
    };
    // Account 2's balance is unreadable.
    let reader = FailingRead {
        state: &genesis,
        bad: LedgerKey::Balance(2),
    };
    let sound: Vec<CheckedTx> = (0..40u32)
        .map(|i| tx(i % 2, u64::from(i / 2), (i % 2) ^ 1))
        .collect();
    let mut unread = sound.clone();
    // A bad nonce: fails before it would read account 2's balance.
    unread.push(tx(0, 1000, 2));
    let reference = Executor::<Ledger>::on_current_pool(CONFIG)
        .execute_sequential(&LEDGER, &block, &sound, &genesis)
        .expect("a sound storage");
    let seq = Executor::<Ledger>::on_current_pool(CONFIG);
    let sequential = |txs: &[CheckedTx]| seq.execute_sequential(&LEDGER, &block, txs, &reader);
    let got = sequential(&sound).expect("account 2's balance is not declared");
    assert_eq!(got.statuses, reference.statuses);
    assert_eq!(got.writes.sorted(), reference.writes.sorted());
    let error = sequential(&unread).expect_err("declared").to_string();
    assert!(error.contains("bad sector"), "{error}");
    for threads in [1, 2, 4] {
        for guards in [true, false] {
            let par = parallel(threads);
            let run = |txs: &[CheckedTx]| par.execute_with(&LEDGER, &block, txs, &reader, guards);
            let got = run(&sound).expect("account 2's balance is not declared");
            if !guards {
                assert!(got.stats.parallel_engine, "{threads} threads");
            }
            assert_eq!(got.statuses, reference.statuses, "{threads} threads");
            assert_eq!(got.writes.sorted(), reference.writes.sorted());
            let failed = run(&unread).expect_err("declared");
            assert_eq!(
                failed.to_string(),
                error,
                "{threads} threads, guards {guards}"
            );
        }
    }
}

/// The optimistic path reads the block's keys in parallel pieces (phase 0
/// of `optimistic.rs`): a failed read in any piece, the first or the last,
/// abandons the block with the sequential engine's error, at every thread
/// count; the same block on a sound storage runs on the optimistic path and
/// equals the sequential engine.
#[test]
fn a_failed_read_in_any_piece_of_the_optimistic_preload_abandons_the_block() {
    let accounts = 400;
    let genesis = LedgerState::genesis(accounts, 100);
    let block = LedgerBlock {
        height: 1,
        collector: 0,
    };
    // 300 transfers between distinct pairs: hundreds of keys, so one piece
    // per participant (each at least 64 keys), several from 2 threads on.
    let txs: Vec<CheckedTx> = (0..300u32)
        .map(|i| {
            LEDGER.check(Tx {
                nonce: 0,
                op: Op::Transfer {
                    from: i,
                    to: (i + 1) % accounts,
                    amount: 5,
                },
            })
        })
        .collect();
    let seq = Executor::<Ledger>::on_current_pool(CONFIG);
    let reference = seq
        .execute_sequential(&LEDGER, &block, &txs, &genesis)
        .expect("a sound storage");
    // The first transaction's sender (slot 1, after the collector) and the
    // last one's receiver (the last slots).
    for bad in [LedgerKey::Balance(0), LedgerKey::Balance(300)] {
        let reader = FailingRead {
            state: &genesis,
            bad,
        };
        let error = seq
            .execute_sequential(&LEDGER, &block, &txs, &reader)
            .expect_err("declared")
            .to_string();
        assert!(error.contains("bad sector"), "{error}");
        for threads in [1, 2, 4, 8] {
            let par = parallel_with(threads, Scheduler::Optimistic);
            let sound = par
                .execute_with(&LEDGER, &block, &txs, &genesis, false)
                .expect("a sound storage");
            assert_eq!(
                sound.stats.path,
                tos_parallel::engine::ExecutionPath::Optimistic,
                "{threads} threads"
            );
            assert_eq!(sound.statuses, reference.statuses, "{threads} threads");
            assert_eq!(sound.writes.sorted(), reference.writes.sorted());
            let failed = par
                .execute_with(&LEDGER, &block, &txs, &reader, false)
                .expect_err("declared");
            assert_eq!(failed.to_string(), error, "{bad:?}, {threads} threads");
        }
    }
}
