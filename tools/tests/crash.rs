//! Crash safety: `tos-parallel replay` is killed with SIGKILL at random
//! moments (sequential and parallel mode alternately, the commit pipeline
//! on and off, admission ahead or not); after every kill the
//! data dir must hold exactly the sequential state after some whole block,
//! and a resumed replay skips the applied blocks and ends at the expected
//! final state. Run on the `mixed` workload (every v1 payload) and on
//! `contracts-mixed` (deploys, invocations whose slots and payments are
//! written, reverted and failed invocations).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tos-parallel"))
}

fn ok(args: &[&str]) -> String {
    let out = bin().args(args).output().expect("run");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

#[test]
fn sigkill_during_replay_never_leaves_a_partial_block() {
    sigkill_during_replay("mixed", 60);
}

#[test]
fn sigkill_during_a_contract_replay_never_leaves_a_partial_block() {
    sigkill_during_replay("contracts-mixed", 40);
}

fn sigkill_during_replay(workload: &str, blocks: u64) {
    let dir = tempfile::tempdir().unwrap();
    let chain = dir.path().join("chain");
    ok(&[
        "generate",
        "--workload",
        workload,
        "--accounts",
        "300",
        "--txs-per-block",
        "150",
        "--blocks",
        &blocks.to_string(),
        "--seed",
        "21",
        "--out",
        s(&chain),
    ]);
    let genesis = chain.join("genesis.json");
    let blocks_file = chain.join("blocks.jsonl");

    // Reference: the sequential dump after every block.
    let reference = dir.path().join("reference");
    ok(&[
        "init",
        "--data-dir",
        s(&reference),
        "--genesis",
        s(&genesis),
    ]);
    ok(&[
        "replay",
        "--data-dir",
        s(&reference),
        "--blocks",
        s(&blocks_file),
    ]);
    let expected: Vec<String> = (0..=blocks)
        .map(|t| ok(&["dump", "--data-dir", s(&reference), "--at", &t.to_string()]))
        .collect();

    // Time one full replay to spread the kills over it.
    let timing = dir.path().join("timing");
    ok(&["init", "--data-dir", s(&timing), "--genesis", s(&genesis)]);
    let start = Instant::now();
    ok(&[
        "replay",
        "--data-dir",
        s(&timing),
        "--blocks",
        s(&blocks_file),
    ]);
    let full = start.elapsed().max(Duration::from_millis(50));

    let data = dir.path().join("data");
    ok(&["init", "--data-dir", s(&data), "--genesis", s(&genesis)]);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let mut seen_tops = Vec::new();
    let kills = 24;
    for k in 0..kills {
        let mode = if k % 2 == 0 { "sequential" } else { "parallel" };
        // Every other kill of each mode with the next blocks admitted ahead.
        let ahead = if k % 4 < 2 { "0" } else { "2" };
        // Half of the kills of each of those with the commit pipeline off.
        let pipeline = if k % 8 < 4 { "on" } else { "off" };
        let mut child = bin()
            .args([
                "replay",
                "--data-dir",
                s(&data),
                "--blocks",
                s(&blocks_file),
                "--mode",
                mode,
                "--threads",
                "2",
                "--min-txs-for-parallel",
                "1",
                "--admit-ahead",
                ahead,
                "--pipeline",
                pipeline,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        // Kill somewhere within the first part of the remaining work (the
        // process start and the first write, delayed by the commit
        // pipeline, take a good part of it).
        let delay = full.mul_f64(rng.gen_range(0.05..0.3));
        std::thread::sleep(delay);
        child.kill().expect("SIGKILL"); // std's kill() is SIGKILL on Unix
        child.wait().expect("wait");
        let dump = ok(&["dump", "--data-dir", s(&data)]);
        let top = expected.iter().position(|e| *e == dump).unwrap_or_else(|| {
            panic!("kill {k}: the state is not the state after any whole block")
        });
        assert!(
            seen_tops.last().is_none_or(|&t| top >= t),
            "kill {k}: state went back from {:?} to {top}",
            seen_tops.last()
        );
        seen_tops.push(top);
    }
    // Resume: already-applied blocks are skipped and the end state is exact.
    let out = bin()
        .args([
            "replay",
            "--data-dir",
            s(&data),
            "--blocks",
            s(&blocks_file),
            "--mode",
            "parallel",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let top_before = *seen_tops.last().unwrap();
    if top_before > 0 {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("skipped {top_before} block(s) already applied")),
            "{err}"
        );
    }
    assert_eq!(
        ok(&["dump", "--data-dir", s(&data)]),
        expected[blocks as usize]
    );
    // The kills landed at different places (not all before the first commit).
    seen_tops.dedup();
    assert!(
        seen_tops.len() >= 3,
        "kills landed at too few distinct states: {seen_tops:?}"
    );
}
