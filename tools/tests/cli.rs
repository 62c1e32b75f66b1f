//! Drives the `tos-parallel` binary: generate, init, replay (every mode),
//! dump, and its handling of bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tos-parallel"))
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run tos-parallel")
}

fn ok(args: &[&str]) -> Output {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The objects of a JSON Lines file (blocks, `--results`, `--stats`).
fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

fn generate(
    dir: &Path,
    workload: &str,
    accounts: &str,
    txs: &str,
    blocks: &str,
    seed: &str,
) -> PathBuf {
    let out = dir.join(format!("{workload}-{seed}"));
    ok(&[
        "generate",
        "--workload",
        workload,
        "--accounts",
        accounts,
        "--txs-per-block",
        txs,
        "--blocks",
        blocks,
        "--seed",
        seed,
        "--out",
        s(&out),
    ]);
    out
}

fn init(data: &Path, chain: &Path) {
    ok(&[
        "init",
        "--data-dir",
        s(data),
        "--genesis",
        s(&chain.join("genesis.json")),
    ]);
}

fn dump(data: &Path, at: Option<u64>) -> String {
    let mut args = vec!["dump", "--data-dir", s(data)];
    let at_s;
    if let Some(t) = at {
        at_s = t.to_string();
        args.extend(["--at", &at_s]);
    }
    String::from_utf8(ok(&args).stdout).unwrap()
}

#[test]
fn generate_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let a = generate(dir.path(), "mixed", "30", "40", "3", "5");
    let b_dir = dir.path().join("again");
    let b = generate(&b_dir, "mixed", "30", "40", "3", "5");
    for f in ["genesis.json", "blocks.jsonl"] {
        assert_eq!(
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap()
        );
    }
    let c = generate(dir.path(), "mixed", "30", "40", "3", "6");
    assert_ne!(
        std::fs::read(a.join("blocks.jsonl")).unwrap(),
        std::fs::read(c.join("blocks.jsonl")).unwrap()
    );
}

#[test]
fn every_mode_gives_byte_identical_dumps_and_results() {
    let dir = tempfile::tempdir().unwrap();
    for (workload, accounts) in [("uniform", "50"), ("mixed", "60")] {
        let chain = generate(dir.path(), workload, accounts, "60", "8", "9");
        let mut dumps = Vec::new();
        let mut results = Vec::new();
        for (mode, threads, ahead, pipeline) in [
            ("sequential", "1", "0", "on"),
            ("parallel", "1", "0", "on"),
            ("parallel", "2", "0", "on"),
            ("parallel", "8", "0", "on"),
            ("verify", "3", "0", "on"),
            // Each block written before the next executes.
            ("sequential", "1", "0", "off"),
            ("parallel", "2", "0", "off"),
            ("verify", "2", "0", "off"),
            // As a node with a mempool: the next blocks' transactions are
            // admitted into the cache while a block executes, or all of
            // them before the first block.
            ("sequential", "1", "3", "on"),
            ("parallel", "2", "2", "on"),
            ("verify", "2", "1", "on"),
            ("parallel", "2", "all", "on"),
            ("sequential", "1", "all", "off"),
        ] {
            let name = format!("{workload}-{mode}-{threads}-{ahead}-{pipeline}");
            let data = dir.path().join(&name);
            let res = dir.path().join(format!("{name}.jsonl"));
            let stats = dir.path().join(format!("{name}.stats"));
            init(&data, &chain);
            let out = ok(&[
                "replay",
                "--data-dir",
                s(&data),
                "--blocks",
                s(&chain.join("blocks.jsonl")),
                "--mode",
                mode,
                "--threads",
                threads,
                "--results",
                s(&res),
                "--stats",
                s(&stats),
                "--admit-ahead",
                ahead,
                "--pipeline",
                pipeline,
            ]);
            let err = String::from_utf8_lossy(&out.stderr);
            if mode == "verify" {
                assert!(err.contains(", 0 mismatch(es)"), "{err}");
            }
            assert!(err.contains(&format!("pipeline {pipeline}")), "{err}");
            if ahead == "all" {
                assert!(
                    err.contains("admitted 480 transaction(s) of 8 block(s) ahead"),
                    "{err}"
                );
            }
            // Which engine ran each block, and why: verify mode always
            // compares against the parallel engine; in parallel mode the
            // engine ran exactly when no guard gave a reason.
            for line in std::fs::read_to_string(&stats).unwrap().lines() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                let engine = v["parallel_engine"].as_bool().unwrap();
                // Pipelined or not, the line carries the block's write time
                // (the committer's, once written) and the loop's wait.
                assert_eq!(v["pipelined"], pipeline == "on", "{line}");
                assert!(v["commit_ms"].as_f64().unwrap() > 0.0, "{line}");
                assert!(v["commit_wait_ms"].as_f64().unwrap() >= 0.0, "{line}");
                match mode {
                    "verify" => assert!(engine, "{line}"),
                    "parallel" => assert_eq!(engine, v["reason"] == "parallel", "{line}"),
                    _ => assert!(!engine, "{line}"),
                }
            }
            dumps.push(dump(&data, None));
            results.push(std::fs::read(&res).unwrap());
        }
        assert!(
            dumps.windows(2).all(|w| w[0] == w[1]),
            "{workload}: dumps differ"
        );
        assert!(
            results.windows(2).all(|w| w[0] == w[1]),
            "{workload}: results differ"
        );
        let lines = String::from_utf8(results[0].clone()).unwrap();
        assert_eq!(lines.lines().count(), 8);
        if workload == "mixed" {
            assert!(lines.contains("\"status\":\"nonce_mismatch\""));
            assert!(lines.contains("\"status\":\"insufficient_funds\""));
        }
    }
}

#[test]
fn dump_at_earlier_topoheights_and_resume_skips_applied_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let chain = generate(dir.path(), "mixed", "20", "30", "4", "3");
    let blocks = std::fs::read_to_string(chain.join("blocks.jsonl")).unwrap();
    let lines: Vec<&str> = blocks.lines().collect();
    // Replay the first two blocks only, then everything: the first two are skipped.
    let part = dir.path().join("part.jsonl");
    std::fs::write(&part, format!("{}\n{}\n", lines[0], lines[1])).unwrap();
    let data = dir.path().join("data");
    init(&data, &chain);
    ok(&["replay", "--data-dir", s(&data), "--blocks", s(&part)]);
    let after2 = dump(&data, None);
    let out = ok(&[
        "replay",
        "--data-dir",
        s(&data),
        "--blocks",
        s(&chain.join("blocks.jsonl")),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("skipped 2 block(s) already applied"), "{err}");
    assert_eq!(dump(&data, Some(2)), after2);
    assert!(dump(&data, Some(0)).contains("\"topoheight\": 0"));
    assert!(dump(&data, None).contains("\"topoheight\": 4"));
    // Above the top is an error.
    let out = run(&["dump", "--data-dir", s(&data), "--at", "5"]);
    assert!(!out.status.success());
    // Rewind to 2 gives the state after block 2; replaying again ends where it did.
    let full = dump(&data, None);
    ok(&["rewind", "--data-dir", s(&data), "--to", "2"]);
    assert_eq!(dump(&data, None), after2);
    let out = run(&["rewind", "--data-dir", s(&data), "--to", "3"]);
    assert_eq!(out.status.code(), Some(1));
    ok(&[
        "replay",
        "--data-dir",
        s(&data),
        "--blocks",
        s(&chain.join("blocks.jsonl")),
    ]);
    assert_eq!(dump(&data, None), full);
}

#[test]
fn bad_json_at_line_k_names_the_line_and_keeps_earlier_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let chain = generate(dir.path(), "uniform", "20", "10", "4", "4");
    let blocks = std::fs::read_to_string(chain.join("blocks.jsonl")).unwrap();
    let mut lines: Vec<String> = blocks.lines().map(String::from).collect();
    lines[2] = "{\"miner\": \"zz\", ".into();
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, lines.join("\n")).unwrap();
    let data = dir.path().join("data");
    init(&data, &chain);
    let out = run(&["replay", "--data-dir", s(&data), "--blocks", s(&bad)]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 3"), "{err}");
    assert!(dump(&data, None).contains("\"topoheight\": 2"));
}

#[test]
fn rejected_block_names_topoheight_index_and_code() {
    let dir = tempfile::tempdir().unwrap();
    let chain = generate(dir.path(), "uniform", "20", "10", "3", "8");
    let mut lines = json_lines(&chain.join("blocks.jsonl"));
    // Flip a signature bit of transaction 4 of block 2.
    let tx = lines[1]["txs"][4].as_str().unwrap().to_string();
    let mut bytes = hex::decode(&tx).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    lines[1]["txs"][4] = hex::encode(bytes).into();
    let bad = dir.path().join("bad.jsonl");
    let text: Vec<String> = lines.iter().map(|v| v.to_string()).collect();
    std::fs::write(&bad, text.join("\n")).unwrap();
    let data = dir.path().join("data");
    init(&data, &chain);
    let out = run(&[
        "replay",
        "--data-dir",
        s(&data),
        "--blocks",
        s(&bad),
        "--mode",
        "parallel",
        "--min-txs-for-parallel",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("topoheight 2")
            && err.contains("transaction 4")
            && err.contains("invalid_signature"),
        "{err}"
    );
    assert!(dump(&data, None).contains("\"topoheight\": 1"));
}

/// Replaying with the next blocks admitted ahead rejects exactly what a
/// replay without it rejects, with the same topoheight, index and code: a
/// broken signature (never admitted: checked afresh at block time) and a
/// reference to a future topoheight (admitted: only the block knows its
/// parent, and checks it in its place).
#[test]
fn admit_ahead_rejects_exactly_the_same_blocks() {
    use tos_parallel::chain::transaction::{public_key_of, Transaction, UnsignedTransaction};
    let dir = tempfile::tempdir().unwrap();
    let chain = generate(dir.path(), "uniform", "20", "10", "4", "8");
    let lines = json_lines(&chain.join("blocks.jsonl"));
    let tx_bytes = |b: usize, t: usize| hex::decode(lines[b]["txs"][t].as_str().unwrap()).unwrap();

    // Block 2, transaction 4: one flipped signature bit.
    let mut broken = tx_bytes(1, 4);
    let last = broken.len() - 1;
    broken[last] ^= 1;
    // Block 3, transaction 2: re-signed, referring to topoheight 99.
    let (tx, _) = Transaction::decode(&tx_bytes(2, 2)).unwrap();
    let key = (0..20)
        .map(|i| tos_parallel_tools::generator::account_key(8, i))
        .find(|k| public_key_of(k) == tx.source)
        .expect("a generated account");
    let future = UnsignedTransaction {
        payload: tx.payload.clone(),
        fee: 0,
        fee_type: tx.fee_type,
        nonce: tx.nonce,
        reference_hash: tx.reference_hash,
        reference_topoheight: 99,
    }
    .sign_with_minimum_fee(&key, &[], 0)
    .encode();

    for (name, (b, t, bytes), want) in [
        (
            "signature",
            (1, 4, broken),
            ["topoheight 2", "transaction 4", "invalid_signature"],
        ),
        (
            "future",
            (2, 2, future),
            ["topoheight 3", "transaction 2", "reference_in_future"],
        ),
    ] {
        let mut edited = lines.clone();
        edited[b]["txs"][t] = hex::encode(bytes).into();
        let file = dir.path().join(format!("{name}.jsonl"));
        let text: Vec<String> = edited.iter().map(|v| v.to_string()).collect();
        std::fs::write(&file, text.join("\n")).unwrap();
        let mut seen = Vec::new();
        for ahead in ["0", "1", "3"] {
            let data = dir.path().join(format!("{name}-{ahead}"));
            init(&data, &chain);
            let out = run(&[
                "replay",
                "--data-dir",
                s(&data),
                "--blocks",
                s(&file),
                "--mode",
                "parallel",
                "--threads",
                "2",
                "--min-txs-for-parallel",
                "1",
                "--admit-ahead",
                ahead,
            ]);
            assert_eq!(out.status.code(), Some(1), "{name}, ahead {ahead}");
            let err = String::from_utf8_lossy(&out.stderr).to_string();
            assert!(want.iter().all(|w| err.contains(w)), "{name}: {err}");
            seen.push((err, dump(&data, None)));
        }
        assert!(
            seen.windows(2).all(|w| w[0] == w[1]),
            "{name}: admitting ahead changed the outcome: {seen:?}"
        );
    }
}

#[test]
fn bad_data_dirs_and_files_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let chain = generate(dir.path(), "uniform", "10", "5", "1", "2");
    let missing = dir.path().join("missing");
    for args in [
        vec!["dump", "--data-dir", s(&missing)],
        vec![
            "replay",
            "--data-dir",
            s(&missing),
            "--blocks",
            s(&chain.join("blocks.jsonl")),
        ],
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: "));
        assert!(!missing.exists(), "a missing data dir must not be created");
    }
    // A directory that is not a database is left untouched.
    let junk = dir.path().join("junk");
    std::fs::create_dir(&junk).unwrap();
    std::fs::write(junk.join("notes.txt"), "hello").unwrap();
    let out = run(&["dump", "--data-dir", s(&junk)]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(std::fs::read_dir(&junk).unwrap().count(), 1);
    // init refuses a data dir holding another chain, accepts the same one again.
    let data = dir.path().join("data");
    init(&data, &chain);
    init(&data, &chain);
    let other = generate(dir.path(), "uniform", "11", "5", "1", "3");
    let out = run(&[
        "init",
        "--data-dir",
        s(&data),
        "--genesis",
        s(&other.join("genesis.json")),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("another chain"));
    // Bad genesis JSON, bad hex, missing files.
    let g = dir.path().join("g.json");
    std::fs::write(&g, "{\"accounts\": [{\"key\": \"xyz\"}]}").unwrap();
    let out = run(&[
        "init",
        "--data-dir",
        s(&dir.path().join("d2")),
        "--genesis",
        s(&g),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad hex"));
    let out = run(&[
        "init",
        "--data-dir",
        s(&dir.path().join("d3")),
        "--genesis",
        s(&dir.path().join("nope.json")),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let out = run(&[
        "replay",
        "--data-dir",
        s(&data),
        "--blocks",
        s(&dir.path().join("nope.jsonl")),
    ]);
    assert_eq!(out.status.code(), Some(1));
}

/// `bench` runs every storage regime, compares every parallel result with the
/// sequential one (a mismatch fails the command) and prints one JSON object per
/// row with every phase. A functional check only: no timing is asserted.
#[test]
fn bench_json_rows_cover_every_storage_regime() {
    let out = ok(&[
        "bench",
        "--workload",
        "uniform,chain",
        "--accounts",
        "60",
        "--txs-per-block",
        "40",
        "--blocks",
        "2",
        "--threads",
        "1,2",
        "--storage",
        "memory,rocks,rocks-cold",
        "--json",
    ]);
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(rows.len(), 6);
    let storages: Vec<&str> = rows
        .iter()
        .map(|r| r["storage"].as_str().expect("storage"))
        .collect();
    assert_eq!(
        storages,
        [
            "memory",
            "rocks",
            "rocks-cold",
            "memory",
            "rocks",
            "rocks-cold"
        ]
    );
    for r in &rows {
        assert_eq!(r["blocks"], 2);
        assert!(r["commit_ms"].as_f64().expect("commit") > 0.0);
        let par = r["parallel"].as_array().expect("parallel");
        assert_eq!(par.len(), 2);
        for p in par {
            for field in [
                "median_ms",
                "verify_ms",
                "execute_ms",
                "speedup",
                "block_speedup",
                "ideal",
            ] {
                assert!(p[field].as_f64().is_some(), "{field} missing in {p}");
            }
            let ideal = p["ideal"].as_f64().unwrap();
            assert!(ideal >= 1.0 && ideal <= p["threads"].as_f64().unwrap());
            // Every measured block's path counted, the last one among them.
            let counts = p["paths"].as_object().expect("paths");
            let blocks: u64 = counts.values().map(|c| c.as_u64().expect("count")).sum();
            assert_eq!(blocks, 2, "{p}");
            let last = p["path"].as_str().expect("path");
            assert!(counts.contains_key(last), "{last} not in {p}");
        }
    }
}

/// `replay --stats` writes one JSON line per applied block saying which
/// path ran it and why. Verify mode runs the parallel engine on every block
/// at or above `--min-txs-for-parallel` (mismatch count 0), whatever the
/// guards would choose; parallel mode on the same tiny-world chain reports
/// the guard that fired. `generate` reports the block sizes it really wrote.
#[test]
fn replay_stats_name_the_path_and_verify_runs_the_parallel_engine() {
    let dir = tempfile::tempdir().unwrap();
    let chain = dir.path().join("mixed6");
    let out = ok(&[
        "generate",
        "--workload",
        "mixed",
        "--accounts",
        "6",
        "--txs-per-block",
        "60",
        "--blocks",
        "12",
        "--seed",
        "4",
        "--out",
        s(&chain),
    ]);
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    let blocks = std::fs::read_to_string(chain.join("blocks.jsonl")).unwrap();
    let sizes: Vec<usize> = blocks
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["txs"].as_array().unwrap().len()
        })
        .collect();
    let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
    assert!(
        said.contains(&format!("12 blocks of {min} to {max} transactions")),
        "{said}"
    );
    assert!(*min >= 2, "{sizes:?}");

    let replay = |mode: &str, name: &str, chain: &Path, pipeline: &str| -> Vec<serde_json::Value> {
        let data = dir.path().join(name);
        let stats = dir.path().join(format!("{name}.stats.jsonl"));
        init(&data, chain);
        ok(&[
            "replay",
            "--data-dir",
            s(&data),
            "--blocks",
            s(&chain.join("blocks.jsonl")),
            "--mode",
            mode,
            "--threads",
            "2",
            "--min-txs-for-parallel",
            "2",
            "--stats",
            s(&stats),
            "--pipeline",
            pipeline,
        ]);
        json_lines(&stats)
    };
    let verify = replay("verify", "verify", &chain, "on");
    assert_eq!(verify.len(), 12);
    for (i, line) in verify.iter().enumerate() {
        assert_eq!(line["topoheight"], i as u64 + 1);
        assert_eq!(line["path"], "verify", "{line}");
        assert_eq!(line["parallel_engine"], true, "{line}");
        assert_eq!(line["reason"], "parallel", "{line}");
        assert_eq!(line["mismatches"], 0, "{line}");
        assert_eq!(line["txs"], sizes[i] as u64, "{line}");
        for field in [
            "critical_path",
            "covered",
            "verify_ms",
            "plan_ms",
            "execute_ms",
            "commit_ms",
        ] {
            assert!(line[field].is_number(), "{field} missing in {line}");
        }
    }
    // Parallel mode on the same chain: each block says which path it took
    // and why, consistently (after the static guards' first block of a
    // size, the executor follows what it measured: `measured`; with the
    // commit pipeline on 2 threads, that first block runs in order:
    // `cores-busy`).
    let parallel = replay("parallel", "parallel", &chain, "on");
    assert_eq!(parallel.len(), 12);
    for line in &parallel {
        match line["path"].as_str().unwrap() {
            "in-order" => {
                assert_eq!(line["parallel_engine"], false, "{line}");
                assert!(
                    [
                        "few-keys",
                        "serial-graph",
                        "measured",
                        "cores-busy",
                        "predicted"
                    ]
                    .contains(&line["reason"].as_str().unwrap()),
                    "{line}"
                );
            }
            "parallel" => {
                assert_eq!(line["parallel_engine"], true, "{line}");
                assert_eq!(line["reason"], "parallel", "{line}");
            }
            other => panic!("path {other} in parallel mode: {line}"),
        }
    }
    // Two accounts are too few keys for two threads: the static guard runs
    // the first block in order and says so; the second block probes the
    // parallel engine (the executor had measured only the in-order way);
    // every block says which it took.
    // (Without the commit pipeline: with it, 2 threads keep a core for the
    // writer and the first block says `cores-busy`, checked last.)
    let two = generate(dir.path(), "uniform", "2", "40", "3", "8");
    let lines = replay("parallel", "two", &two, "off");
    assert_eq!(lines[0]["path"], "in-order", "{}", lines[0]);
    assert_eq!(lines[0]["reason"], "few-keys", "{}", lines[0]);
    assert_eq!(lines[1]["path"], "parallel", "{}", lines[1]);
    for line in &lines {
        let in_order = line["path"] == "in-order";
        assert_eq!(line["parallel_engine"], !in_order, "{line}");
        if !in_order {
            assert_eq!(line["reason"], "parallel", "{line}");
        }
    }
    let lines = replay("parallel", "two-pipelined", &two, "on");
    assert_eq!(lines[0]["path"], "in-order", "{}", lines[0]);
    assert_eq!(lines[0]["reason"], "cores-busy", "{}", lines[0]);
    assert_eq!(lines[1]["path"], "parallel", "{}", lines[1]);
}

/// A data dir whose `CURRENT` names a manifest that does not exist: `dump`
/// fails with one `error:` line and exit status 1, and touches no file.
#[test]
fn corrupt_data_dir_gives_an_error_and_stays_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let chain = generate(dir.path(), "uniform", "4", "2", "1", "5");
    let data = dir.path().join("data");
    init(&data, &chain);
    std::fs::write(data.join("CURRENT"), "MANIFEST-999999\n").unwrap();
    let digest = |dir: &Path| -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap_or_default(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let before = digest(&data);
    let out = run(&["dump", "--data-dir", s(&data)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: "));
    assert_eq!(digest(&data), before, "a failed open modified the data dir");
}

/// The SPEC v2 vectors (`../shared/vectors/v2/`) through the CLI, on
/// RocksDB: `init`, then `replay --results` in every mode gives exactly
/// `expected_results.jsonl` and `dump` exactly `expected_dump.json`; a
/// `rewind --to 0` leaves the genesis dump (no contract), and a second
/// replay ends at the same dump.
#[test]
fn v2_vectors_replay_exactly_through_the_cli() {
    let vectors = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors/v2");
    let read_json = |name: &str| -> serde_json::Value {
        let text = std::fs::read_to_string(vectors.join(name))
            .unwrap_or_else(|e| panic!("{name}: {e} (the SPEC v2 vectors are required)"));
        serde_json::from_str(&text).unwrap()
    };
    let lines = |text: &str| -> Vec<serde_json::Value> {
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let want_results =
        lines(&std::fs::read_to_string(vectors.join("expected_results.jsonl")).unwrap());
    let want_dump = read_json("expected_dump.json");
    let dir = tempfile::tempdir().unwrap();
    let blocks_file = vectors.join("blocks.jsonl");
    for (k, args) in [
        vec!["--mode", "sequential"],
        vec![
            "--mode",
            "parallel",
            "--threads",
            "2",
            "--min-txs-for-parallel",
            "1",
        ],
        vec![
            "--mode",
            "verify",
            "--threads",
            "2",
            "--min-txs-for-parallel",
            "1",
        ],
        vec!["--mode", "parallel", "--threads", "2", "--admit-ahead", "1"],
    ]
    .into_iter()
    .enumerate()
    {
        let data = dir.path().join(format!("db{k}"));
        ok(&[
            "init",
            "--data-dir",
            s(&data),
            "--genesis",
            s(&vectors.join("genesis.json")),
        ]);
        let results = dir.path().join(format!("r{k}.jsonl"));
        let stats = dir.path().join(format!("s{k}.jsonl"));
        let mut replay = vec![
            "replay",
            "--data-dir",
            s(&data),
            "--blocks",
            s(&blocks_file),
            "--results",
            s(&results),
            "--stats",
            s(&stats),
        ];
        replay.extend(args.iter().copied());
        ok(&replay);
        assert_eq!(
            lines(&std::fs::read_to_string(&results).unwrap()),
            want_results,
            "{args:?}"
        );
        let got: serde_json::Value = serde_json::from_str(&dump(&data, None)).unwrap();
        assert_eq!(got, want_dump, "{args:?}");
        for st in lines(&std::fs::read_to_string(&stats).unwrap()) {
            assert_eq!(st["mismatches"], 0, "{args:?}");
            if args[1] == "verify" {
                // The parallel side runs unguarded: the optimistic path.
                assert_eq!(st["parallel_engine"], true, "{st}");
                assert!(st["optimistic"].as_u64().unwrap() > 0, "{st}");
            }
        }
        // Rewind to genesis (the vectors' blocks name no topoheight: they
        // go on top) and replay again: every contract written is rewound.
        let before = dump(&data, Some(0));
        ok(&["rewind", "--data-dir", s(&data), "--to", "0"]);
        assert_eq!(dump(&data, None), before);
        assert!(before.contains("\"contracts\": {}"), "{before}");
        ok(&replay);
        let again: serde_json::Value = serde_json::from_str(&dump(&data, None)).unwrap();
        assert_eq!(again, want_dump, "{args:?}: after rewind and replay");
    }
}

#[test]
fn admit_ahead_all_keeps_every_admission_of_a_file_larger_than_the_cache() {
    // 51 blocks of 2,000 transfers: 102,000 transactions, more than the
    // verification cache's default 100,000. Admitted before the first
    // block, none may be evicted before its block runs: every block finds
    // all its transactions checked (it once missed all of them, Ed25519
    // back in the timed loop).
    let dir = tempfile::tempdir().unwrap();
    let chain = generate(dir.path(), "uniform", "2000", "2000", "51", "3");
    let data = dir.path().join("data");
    init(&data, &chain);
    let stats = dir.path().join("stats.jsonl");
    let out = ok(&[
        "replay",
        "--data-dir",
        s(&data),
        "--blocks",
        s(&chain.join("blocks.jsonl")),
        "--admit-ahead",
        "all",
        "--stats",
        s(&stats),
    ]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("admitted 102000 transaction(s) of 51 block(s) ahead"),
        "{said}"
    );
    let rows = json_lines(&stats);
    assert_eq!(rows.len(), 51);
    for row in &rows {
        assert_eq!(row["cache_misses"], 0, "{row}");
        assert_eq!(row["cache_hits"], row["txs"], "{row}");
    }
}
