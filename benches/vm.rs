//! Criterion benchmark of the contracts' interpreter alone (SPEC v2 §8):
//! the `token` contract's `transfer` and `mint` (`tools/src/contracts.rs`)
//! and a tight arithmetic loop, run by `chain::vm::run` on an in-memory
//! host (slots and balances in hash maps), throughput in VM instructions,
//! so criterion reports instructions per second (its inverse: ns per
//! instruction). The whole sequential engine on `token` blocks (rules,
//! state, VM) is measured by `tos-parallel bench --workload token` and
//! `examples/execute_only.rs`.
//!
//! `cargo bench --bench vm`

use std::collections::HashMap;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ruint::aliases::U256;

use tos_parallel::chain::vm::{run, Env, Exit, Host};
use tos_parallel::{Hash, PublicKey};
use tos_parallel_tools::contracts;

/// Slots and balances in hash maps: the cost of a host that does nothing
/// but remember.
#[derive(Default)]
struct MapHost {
    slots: HashMap<[u8; 32], U256>,
    balances: HashMap<PublicKey, u64>,
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
        *self.balances.entry(*to).or_default() += amount;
        Ok(true)
    }
}

fn env<'a>(args: &'a [Hash], max_gas: u64) -> Env<'a> {
    Env {
        contract: PublicKey([7; 32]),
        caller: PublicKey([1; 32]),
        deposit: 0,
        args,
        height: 2,
        max_gas,
    }
}

fn steps(code: &[u8], args: &[Hash], host: &mut MapHost) -> u64 {
    let Ok(ended) = run(code, &env(args, 10_000_000), host);
    assert_eq!(
        ended.exit,
        Exit::Success,
        "the benchmark's program must succeed"
    );
    ended.steps
}

fn vm(c: &mut Criterion) {
    let token = contracts::token();
    let mint = [contracts::word(0), contracts::word(u64::MAX)];
    let transfer = [
        contracts::word(1),
        Hash(PublicKey([2; 32]).0),
        contracts::word(1),
    ];
    // A loop of 1,000 iterations: DUP1 ISZERO, a JUMPI, SUB, a JUMP.
    // PUSH2 1000 JUMPDEST(3) DUP1 ISZERO PUSH1 16 JUMPI PUSH1 1 SWAP1 SUB PUSH1 3 JUMP JUMPDEST(16) STOP
    let looping = [
        0x61, 0x03, 0xE8, 0x5B, 0x80, 0x15, 0x60, 16, 0x57, 0x60, 1, 0x90, 0x03, 0x60, 3, 0x56,
        0x5B, 0x00,
    ];
    let mut g = c.benchmark_group("vm");
    let mut host = MapHost::default();
    steps(&token, &mint, &mut host); // the caller holds tokens to send
    for (name, code, args) in [
        ("token-mint", &token[..], &mint[..]),
        ("token-transfer", &token[..], &transfer[..]),
        ("loop-1000", &looping[..], &[][..]),
    ] {
        let n = steps(code, args, &mut host);
        g.throughput(Throughput::Elements(n));
        g.bench_function(format!("{name} ({n} instructions)"), |b| {
            b.iter(|| steps(code, args, &mut host))
        });
    }
    g.finish();
}

criterion_group!(benches, vm);
criterion_main!(benches);
