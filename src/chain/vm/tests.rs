//! The interpreter on a host of its own (the rules' host is tested through
//! whole blocks in `tests/spec_rules.rs` and the v2 vectors).

use std::collections::HashMap;

use super::*;

#[derive(Default)]
struct MapHost {
    slots: HashMap<[u8; 32], U256>,
    balances: HashMap<PublicKey, u64>,
    contract: PublicKey,
}

impl Host for MapHost {
    type Error = std::convert::Infallible;
    fn sload(&mut self, slot: &[u8; 32]) -> Result<U256, Self::Error> {
        Ok(self.slots.get(slot).copied().unwrap_or(U256::ZERO))
    }
    fn sstore(&mut self, slot: &[u8; 32], word: U256) -> Result<(), Self::Error> {
        self.slots.insert(*slot, word);
        Ok(())
    }
    fn balance(&mut self, account: &PublicKey) -> Result<u64, Self::Error> {
        Ok(self.balances.get(account).copied().unwrap_or(0))
    }
    fn transfer(&mut self, to: &PublicKey, amount: u64) -> Result<bool, Self::Error> {
        let have = self.balances.get(&self.contract).copied().unwrap_or(0);
        if have < amount {
            return Ok(false);
        }
        *self.balances.entry(self.contract).or_default() -= amount;
        *self.balances.entry(*to).or_default() += amount;
        Ok(true)
    }
}

fn env(max_gas: u64) -> Env<'static> {
    Env {
        contract: PublicKey([7; 32]),
        caller: PublicKey([1; 32]),
        deposit: 5,
        args: &[],
        height: 3,
        max_gas,
    }
}

fn run_code(code: &[u8], max_gas: u64) -> (Ended, MapHost) {
    let mut host = MapHost {
        contract: PublicKey([7; 32]),
        ..MapHost::default()
    };
    let Ok(ended) = run(code, &env(max_gas), &mut host);
    (ended, host)
}

fn slot(n: u8) -> [u8; 32] {
    let mut s = [0u8; 32];
    s[31] = n;
    s
}

#[test]
fn gas_is_charged_before_each_instruction_and_not_past_the_end() {
    // PUSH1 1 PUSH1 0 SSTORE: 1 + 1 + 100 gas, then past the end for free.
    let code = [0x60, 1, 0x60, 0, 0x55];
    let (ok, host) = run_code(&code, 102);
    assert_eq!(ok.exit, Exit::Success);
    assert_eq!(ok.gas_used, 102);
    assert_eq!(ok.steps, 3);
    assert_eq!(host.slots.get(&slot(0)), Some(&U256::from(1u8)));
    let (short, _) = run_code(&code, 101);
    assert_eq!(short.exit, Exit::OutOfGas);
    assert_eq!(short.gas_used, 2, "the SSTORE was not charged");
}

#[test]
fn faults_end_with_contract_failed() {
    assert_eq!(
        run_code(&[0x01], 10).0.exit,
        Exit::Failed(Fault::StackUnderflow)
    );
    assert_eq!(
        run_code(&[0xFE], 10).0.exit,
        Exit::Failed(Fault::InvalidInstruction(0xFE))
    );
    // An invalid byte costs 1 gas, then fails; with no gas left it is out_of_gas.
    assert_eq!(run_code(&[0x60, 0, 0xFE], 1).0.exit, Exit::OutOfGas);
    // JUMP to 3, whose byte is not JUMPDEST.
    assert_eq!(
        run_code(&[0x60, 3, 0x56, 0x00], 10).0.exit,
        Exit::Failed(Fault::BadJump)
    );
    // JUMP into PUSH data whose byte is 0x5B: allowed (SPEC checks the byte).
    let into_push = [0x60, 4, 0x56, 0x60, 0x5B, 0x00];
    assert_eq!(run_code(&into_push, 10).0.exit, Exit::Success);
    // A jump not taken is not checked.
    assert_eq!(
        run_code(&[0x60, 0, 0x60, 99, 0x57], 10).0.exit,
        Exit::Success
    );
    assert_eq!(run_code(&[0xFD], 10).0.exit, Exit::Reverted);
}

#[test]
fn stack_holds_exactly_max_stack_words() {
    // JUMPDEST PUSH1 1 PUSH1 0 JUMP: pushes one word per loop, forever.
    let code = [0x5B, 0x60, 1, 0x60, 0, 0x56];
    let (ended, _) = run_code(&code, 10_000_000);
    assert_eq!(ended.exit, Exit::Failed(Fault::StackOverflow));
    // Each loop: 4 instructions and one word more. After 1,023 loops the
    // stack holds 1,023 words; the next loop's PUSH1 1 makes 1,024 and its
    // PUSH1 0 (the loop's third instruction) would be the 1,025th.
    assert_eq!(ended.steps, (MAX_STACK as u64 - 1) * 4 + 3);
}

#[test]
fn arithmetic_wraps_and_division_by_zero_is_zero() {
    // SSTORE(0, 0 - 1); SSTORE(1, 7 / 0); SSTORE(2, 7 mod 0)
    let code = [
        0x60, 1, 0x60, 0, 0x03, 0x60, 0, 0x55, // a=0, b=1: 0 - 1
        0x60, 0, 0x60, 7, 0x04, 0x60, 1, 0x55, // 7 / 0
        0x60, 0, 0x60, 7, 0x06, 0x60, 2, 0x55, // 7 mod 0
    ];
    let (ended, host) = run_code(&code, 1_000);
    assert_eq!(ended.exit, Exit::Success);
    assert_eq!(host.slots[&slot(0)], U256::MAX);
    assert_eq!(host.slots[&slot(1)], U256::ZERO);
    assert_eq!(host.slots[&slot(2)], U256::ZERO);
}

#[test]
fn push_cut_by_the_end_of_the_code_reads_zeros() {
    // PUSH2 with one byte left: the missing byte reads as 0 (0xAB00).
    let code = [0x61, 0xAB];
    let mut stack = Stack { words: Vec::new() };
    let mut pc = 1;
    let mut host = MapHost::default();
    assert!(matches!(
        step(
            0x61,
            &code,
            &mut pc,
            &mut stack,
            &env(10),
            &mut host,
            &mut Natural
        ),
        Step::Next
    ));
    assert_eq!(stack.words, vec![U256::from(0xAB00u32)]);
    assert_eq!(pc, 3, "pc moves past the (missing) data");
    let (ended, _) = run_code(&code, 10);
    assert_eq!((ended.exit, ended.steps), (Exit::Success, 1));
}

#[test]
fn transfer_checks_the_amount_against_u64_and_the_balance() {
    let mut host = MapHost {
        contract: PublicKey([7; 32]),
        ..MapHost::default()
    };
    host.balances.insert(PublicKey([7; 32]), 10);
    // PUSH1 11 PUSH1 9 TRANSFER: 11 to account 9: over the balance.
    let Ok(e) = run(&[0x60, 11, 0x60, 9, 0xF1], &env(1_000), &mut host);
    assert_eq!(e.exit, Exit::Failed(Fault::InsufficientBalance));
    let Ok(e) = run(&[0x60, 10, 0x60, 9, 0xF1], &env(1_000), &mut host);
    assert_eq!(e.exit, Exit::Success);
    let mut to = [0u8; 32];
    to[31] = 9;
    assert_eq!(host.balances[&PublicKey(to)], 10);
    // 2^64: over u64 (PUSH9 0x01 00..00).
    let mut code = vec![0x68, 1, 0, 0, 0, 0, 0, 0, 0, 0];
    code.extend_from_slice(&[0x60, 9, 0xF1]);
    let Ok(e) = run(&code, &env(1_000), &mut host);
    assert_eq!(e.exit, Exit::Failed(Fault::AmountTooLarge));
}

/// `SLOAD(0) PUSH1 @ok JUMPI REVERT ok: JUMPDEST PUSH1 1 PUSH1 2 SSTORE`:
/// stores in slot 2 only when slot 0 holds a non-zero word.
const GUARDED_STORE: [u8; 12] = [0x60, 0, 0x54, 0x60, 7, 0x57, 0xFD, 0x5B, 0x60, 1, 0x60, 2];

fn walk(code: &[u8], host: &mut MapHost) -> Vec<(Exit, Vec<bool>)> {
    let mut paths = Paths::new();
    let mut runs = Vec::new();
    while let Some(mut steer) = paths.next_run() {
        let Ok(e) = run_steered(code, &env(1_000), host, &mut steer);
        runs.push((e.exit, steer.taken().to_vec()));
        if e.exit == Exit::Success {
            break;
        }
        paths.ran(&steer);
    }
    runs
}

#[test]
fn a_walk_takes_the_branch_past_a_failed_check() {
    let mut code = GUARDED_STORE.to_vec();
    code.push(0x55);
    // Slot 0 holds 0: the natural run reverts at its check; the second run
    // takes the jump and stores.
    let mut host = MapHost::default();
    let runs = walk(&code, &mut host);
    assert_eq!(
        runs,
        [(Exit::Reverted, vec![false]), (Exit::Success, vec![true])]
    );
    assert_eq!(host.slots.get(&slot(2)), Some(&U256::from(1u8)));
    // A natural run that succeeds is the only one.
    let mut host = MapHost::default();
    host.slots.insert(slot(0), U256::from(9u8));
    let runs = walk(&code, &mut host);
    assert_eq!(runs, [(Exit::Success, vec![true])]);
    // `run` is the natural run.
    let (ended, _) = run_code(&code, 1_000);
    assert_eq!(ended.exit, Exit::Reverted);
}

#[test]
fn a_walk_makes_at_most_max_runs_runs_deepest_decision_first() {
    // `PUSH1 0 PUSH1 next JUMPI REVERT next: JUMPDEST`, three times, then
    // `REVERT`: a jump taken skips a REVERT, and every path reverts, so
    // the walk stops after MAX_RUNS runs.
    let mut code = Vec::new();
    for _ in 0..3 {
        let next = code.len() as u8 + 6;
        code.extend_from_slice(&[0x60, 0, 0x60, next, 0x57, 0xFD, 0x5B]);
    }
    code.push(0xFD);
    let mut host = MapHost::default();
    let runs = walk(&code, &mut host);
    assert_eq!(runs.len(), MAX_RUNS);
    // Natural: the first check not taken, REVERT. Then that jump taken,
    // the second not taken; then the second taken; then the third.
    assert_eq!(runs[0].1, [false]);
    assert_eq!(runs[1].1, [true, false]);
    assert_eq!(runs[2].1, [true, true, false]);
    assert_eq!(runs[3].1, [true, true, true]);
    assert!(runs.iter().all(|r| r.0 == Exit::Reverted));
}
