//! Replays every saved fuzz crash input (`fuzz/regressions/<target>/`) and
//! runs a short seeded smoke run of both fuzz checks (the full fuzzers are a
//! manual step: see `fuzz/README.md`).

use rand::{Rng, RngCore, SeedableRng};
use tos_parallel_tools::fuzzing::{check_decode, check_execution};

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.path().is_file() && e.file_name() != ".gitkeep")
                .map(|e| {
                    (
                        e.path().display().to_string(),
                        std::fs::read(e.path()).unwrap(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn saved_decode_inputs() {
    for (name, data) in inputs("decode") {
        eprintln!("replaying {name}");
        check_decode(&data);
    }
}

#[test]
fn saved_execute_inputs() {
    for (name, data) in inputs("execute") {
        eprintln!("replaying {name}");
        check_execution(&data);
    }
}

#[test]
fn smoke_decode_random_and_mutated_valid_transactions() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let chain =
        tos_parallel_tools::generator::generate(&tos_parallel_tools::generator::GeneratorConfig {
            workload: tos_parallel_tools::generator::Workload::Mixed,
            accounts: 10,
            txs_per_block: 50,
            blocks: 2,
            seed: 3,
        })
        .unwrap();
    for block in &chain.blocks {
        for tx in block.txs() {
            check_decode(tx);
            for _ in 0..20 {
                let mut m = tx.to_vec();
                let i = rng.gen_range(0..m.len());
                m[i] ^= 1 << rng.gen_range(0..8);
                if rng.gen_bool(0.3) {
                    m.truncate(rng.gen_range(0..m.len()));
                }
                check_decode(&m);
            }
        }
    }
    for _ in 0..2_000 {
        let mut b = vec![0u8; rng.gen_range(0..400)];
        rng.fill_bytes(&mut b);
        check_decode(&b);
    }
}

/// Input bytes laid out as `fuzzing::check_execution` reads them: three
/// blocks of 2-23 structured transactions (never the raw-bytes operation,
/// contracts, nor the near-`u64::MAX` amounts that overflow, so most
/// blocks pass the stateless checks and reach the executors).
fn structured_input(rng: &mut impl Rng) -> Vec<u8> {
    let mut b = Vec::new();
    for _ in 0..3 {
        let count = rng.gen_range(2..24u8);
        b.push(count);
        for _ in 0..count {
            let op = loop {
                let op: u8 = rng.gen();
                // Not raw bytes (9), nor contracts (7, 8: their own input below).
                if op % 10 < 7 {
                    break op;
                }
            };
            let arg = loop {
                let arg: u8 = rng.gen();
                if arg & 0x60 != 0x60 {
                    break arg;
                }
            };
            // op, from, arg, nonce mode
            b.extend([op, rng.gen(), arg, rng.gen()]);
        }
        b.push(rng.gen()); // miner
    }
    b
}

/// The seeded smoke run must reach the parallel engine, and with at least
/// two transactions in flight, on a good share of its inputs (the check
/// itself asserts that the unguarded executors ran every accepted block on
/// the parallel engine).
#[test]
fn smoke_execute_random_inputs() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
    for _ in 0..150 {
        let mut b = vec![0u8; rng.gen_range(0..300)];
        rng.fill_bytes(&mut b);
        check_execution(&b);
    }
    let (mut reached, mut concurrent) = (0, 0);
    let inputs = 150;
    for _ in 0..inputs {
        let seen = check_execution(&structured_input(&mut rng));
        reached += usize::from(seen.parallel_blocks > 0);
        concurrent += usize::from(seen.concurrent_blocks > 0);
    }
    eprintln!("{inputs} structured inputs: {reached} reached the parallel engine, {concurrent} with two or more transactions in flight");
    assert!(
        reached * 4 >= inputs * 3,
        "{reached} of {inputs} reached the parallel engine"
    );
    assert!(
        concurrent * 2 >= inputs,
        "{concurrent} of {inputs} had two transactions in flight"
    );
}

/// Input bytes for contract blocks: a first block of deploys (canned
/// programs and fuzzed code), then blocks mixing invocations of them (and
/// of missing contracts) with transfers.
fn contract_input(rng: &mut impl Rng) -> Vec<u8> {
    let mut b = Vec::new();
    for block in 0..3 {
        let count = rng.gen_range(2..16u8);
        b.push(count);
        for _ in 0..count {
            let kind = if block == 0 {
                7
            } else if rng.gen_bool(0.6) {
                8
            } else {
                0
            };
            let op = loop {
                let op: u8 = rng.gen();
                if op % 10 == kind {
                    break op;
                }
            };
            let arg = loop {
                let arg: u8 = rng.gen();
                if arg & 0x60 != 0x60 {
                    break arg;
                }
            };
            b.extend([op, rng.gen(), arg]);
            match kind {
                7 if op >> 4 >= 10 => {
                    let len = rng.gen_range(1..48u8);
                    b.push(len - 1);
                    b.extend((0..len).map(|_| rng.gen::<u8>()));
                }
                8 => {
                    // contract pick, gas (mostly moderate), argc, args
                    b.push(rng.gen());
                    b.push(rng.gen_range(0x40..0xC0u8));
                    let argc = rng.gen_range(0..4u8);
                    b.push(argc);
                    b.extend((0..argc).map(|_| rng.gen::<u8>()));
                }
                _ => {}
            }
            b.push(rng.gen_range(2..8u8)); // nonce mode: the right nonce
        }
        b.push(rng.gen()); // miner
    }
    b
}

/// Contract blocks through every executor: the check asserts they agree
/// and that each block with an invocation ran on the optimistic path (or,
/// hinted, sealed on the graph); here, that some were sealed,
/// that the smoke run really produced such blocks, and that validation
/// really caught changed reads (re-executions) on some of them.
#[test]
fn smoke_execute_contract_blocks() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let inputs = 120;
    let (mut with_contracts, mut deploy_blocks, mut reexecuted, mut hinted, mut sealed) =
        (0, 0, 0, 0, 0);
    for _ in 0..inputs {
        let seen = check_execution(&contract_input(&mut rng));
        with_contracts += usize::from(seen.contract_blocks > 0);
        deploy_blocks += usize::from(seen.parallel_blocks > 0);
        reexecuted += usize::from(seen.reexecuted_blocks > 0);
        hinted += usize::from(seen.hinted_blocks > 0);
        sealed += usize::from(seen.sealed_blocks > 0);
    }
    eprintln!("{inputs} contract inputs: {with_contracts} ran invocations on the optimistic path ({reexecuted} with re-executions, {hinted} with hints, {sealed} sealed on the graph), {deploy_blocks} ran a deploy block on the parallel engine");
    assert!(hinted > 0, "no block ever carried hints");
    assert!(
        sealed > 0,
        "no hinted block ever ran sealed on the graph: the smoke run tests nothing of it"
    );
    assert!(
        reexecuted > 0,
        "no validation ever failed: the smoke run tests nothing of it"
    );
    assert!(
        with_contracts * 2 >= inputs,
        "{with_contracts} of {inputs} ran an accepted block with an invocation"
    );
    assert!(
        deploy_blocks * 2 >= inputs,
        "{deploy_blocks} of {inputs} ran deploys on the parallel engine"
    );
}
