//! The SPEC chain's virtual machine (SPEC v2 §8): a gas-metered stack
//! machine of unsigned 256-bit words that runs a contract's code for one
//! invocation.
//!
//! * `opcode.rs`: the instruction set (byte, name, gas), one table.
//! * `mod.rs` (this file): the interpreter ([`run`]): gas is charged before
//!   each instruction, the stack holds at most [`MAX_STACK`] words, jumps
//!   are checked against `JUMPDEST` when taken, running past the last byte
//!   ends with success and costs nothing.
//! * `paths.rs`: runs whose conditional jumps are decided from outside
//!   ([`run_steered`]) and a walk over a code's paths ([`Paths`]), for
//!   the hints a node takes at admission.
//!
//! The interpreter knows nothing of the engine, views or storage: what an
//! invocation reads and writes goes through a [`Host`] (the rules'
//! invocation state, `rules.rs`, which buffers every effect so that a
//! failure undoes them all). Words are [`ruint`]'s `U256` (wrapping
//! arithmetic on four 64-bit limbs, big-endian byte conversions; the crate
//! alloy and reth use): no `unsafe`, no allocation per instruction.

mod opcode;
mod paths;

pub use opcode::{gas_of, name_of, Op};
pub use paths::{Paths, Steer, MAX_RUNS};

use paths::{Jumps, Natural};

use ruint::aliases::U256;

use crate::{Hash, PublicKey};

/// Words the stack holds at most (SPEC §1 `MAX_STACK`).
pub const MAX_STACK: usize = 1_024;

/// A 256-bit word as SPEC §8 reads 32 bytes: big-endian.
#[inline]
pub fn word_of(bytes: &[u8; 32]) -> U256 {
    U256::from_be_bytes(*bytes)
}

/// The 32 big-endian bytes of a word.
#[inline]
pub fn bytes_of(word: &U256) -> [u8; 32] {
    word.to_be_bytes::<32>()
}

/// What the code of one invocation may read and change: the contract's
/// slots and native balances. Every effect must stay invisible to the
/// rest of the block until the host commits it (the rules do so only when
/// the code ends with success).
pub trait Host {
    /// A failure of the state underneath (not an outcome of the code): it
    /// abandons the block.
    type Error;
    /// The word in the contract's slot `slot` (0 if never written).
    fn sload(&mut self, slot: &[u8; 32]) -> Result<U256, Self::Error>;
    /// Stores `word` in the contract's slot `slot`.
    fn sstore(&mut self, slot: &[u8; 32], word: U256) -> Result<(), Self::Error>;
    /// The native balance of `account` (0 if none), as left by the block so
    /// far and by this invocation.
    fn balance(&mut self, account: &PublicKey) -> Result<u64, Self::Error>;
    /// Moves `amount` native units from the contract to `to` (a credit,
    /// even of 0): `Ok(false)`, changing nothing, when the contract's
    /// balance is below `amount`.
    fn transfer(&mut self, to: &PublicKey, amount: u64) -> Result<bool, Self::Error>;
}

/// What the code sees of its invocation.
#[derive(Clone, Copy, Debug)]
pub struct Env<'a> {
    /// The contract's id (`SELF`).
    pub contract: PublicKey,
    /// The transaction's source (`CALLER`).
    pub caller: PublicKey,
    /// The deposit (`DEPOSIT`).
    pub deposit: u64,
    /// The arguments (`ARG`, `ARGC`).
    pub args: &'a [Hash],
    /// The topoheight the block produces, T+1 (`HEIGHT`).
    pub height: u64,
    /// Gas the invocation may use.
    pub max_gas: u64,
}

/// Why the code failed (`contract_failed`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// An instruction found too few words on the stack.
    StackUnderflow,
    /// A push beyond [`MAX_STACK`] words.
    StackOverflow,
    /// A byte that is no instruction.
    InvalidInstruction(u8),
    /// A jump to an offset not below the code's length, or whose byte is
    /// not `JUMPDEST`.
    BadJump,
    /// A `TRANSFER` of an amount over `u64`.
    AmountTooLarge,
    /// A `TRANSFER` of more than the contract's native balance.
    InsufficientBalance,
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::StackUnderflow => f.write_str("stack underflow"),
            Fault::StackOverflow => f.write_str("stack overflow"),
            Fault::InvalidInstruction(b) => write!(f, "invalid instruction 0x{b:02x}"),
            Fault::BadJump => f.write_str("jump to a byte that is not JUMPDEST"),
            Fault::AmountTooLarge => f.write_str("TRANSFER of an amount over u64"),
            Fault::InsufficientBalance => f.write_str("TRANSFER over the contract's balance"),
        }
    }
}

/// How the code ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// `STOP`, or past the last byte: everything it did stays.
    Success,
    /// `REVERT` (`contract_reverted`).
    Reverted,
    /// `contract_failed`, and why.
    Failed(Fault),
    /// The next instruction's gas exceeded what remained (`out_of_gas`).
    OutOfGas,
}

/// The end of one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ended {
    /// How it ended.
    pub exit: Exit,
    /// Gas charged (the instructions that ran, the failing one included).
    pub gas_used: u64,
    /// Instructions charged.
    pub steps: u64,
}

/// The operand stack: at most [`MAX_STACK`] words.
struct Stack {
    words: Vec<U256>,
}

std::thread_local! {
    /// The last run's emptied stack on this thread, reused by the next run
    /// (an invocation costs a few thousand instructions; its stack's
    /// allocation and release were a noticeable share). At most
    /// [`MAX_STACK`] words are kept per thread. A run nested in another on
    /// one thread (none is: the VM has no call instruction) would only
    /// find no spare and allocate.
    static SPARE: std::cell::Cell<Vec<U256>> = const { std::cell::Cell::new(Vec::new()) };
}

impl Stack {
    /// An empty stack, on this thread's spare allocation if it has one.
    fn new() -> Self {
        let mut words = SPARE.take();
        words.clear();
        words.reserve(32);
        Stack { words }
    }
    #[inline(always)]
    fn pop(&mut self) -> Result<U256, Fault> {
        self.words.pop().ok_or(Fault::StackUnderflow)
    }

    #[inline(always)]
    fn push(&mut self, w: U256) -> Result<(), Fault> {
        if self.words.len() >= MAX_STACK {
            return Err(Fault::StackOverflow);
        }
        self.words.push(w);
        Ok(())
    }

    /// Pops `a` (the top) and `b`, pushes `f(a, b)` (never overflows).
    #[inline(always)]
    fn binary(&mut self, f: impl FnOnce(U256, U256) -> U256) -> Result<(), Fault> {
        let a = self.pop()?;
        let b = self.pop()?;
        self.words.push(f(a, b));
        Ok(())
    }

    #[inline(always)]
    fn unary(&mut self, f: impl FnOnce(U256) -> U256) -> Result<(), Fault> {
        let a = self.pop()?;
        self.words.push(f(a));
        Ok(())
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let words = std::mem::take(&mut self.words);
        // `try_with`: a run during the thread's teardown keeps nothing.
        let _ = SPARE.try_with(|spare| spare.set(words));
    }
}

/// What one instruction did, for the loop.
enum Step<E> {
    /// Go on at the next pc.
    Next,
    /// End the run.
    End(Exit),
    /// The host failed.
    Host(E),
}

impl<E> From<Fault> for Step<E> {
    fn from(f: Fault) -> Self {
        Step::End(Exit::Failed(f))
    }
}

fn flag(b: bool) -> U256 {
    if b {
        U256::from(1u8)
    } else {
        U256::ZERO
    }
}

/// The account a word names (its 32 big-endian bytes).
fn account_of(word: &U256) -> PublicKey {
    PublicKey(bytes_of(word))
}

/// Runs `code` for one invocation (SPEC §8). `Err` only when the host
/// failed; every outcome of the code itself is an [`Exit`].
pub fn run<H: Host>(code: &[u8], env: &Env<'_>, host: &mut H) -> Result<Ended, H::Error> {
    run_with(code, env, host, &mut Natural)
}

/// Runs `code` as [`run`] does, but with its conditional jumps decided by
/// `steer` ([`Paths`]): a path the code may not take on this state, for
/// hints only (never a transaction's outcome).
pub fn run_steered<H: Host>(
    code: &[u8],
    env: &Env<'_>,
    host: &mut H,
    steer: &mut Steer,
) -> Result<Ended, H::Error> {
    run_with(code, env, host, steer)
}

#[inline(always)]
fn run_with<H: Host, J: Jumps>(
    code: &[u8],
    env: &Env<'_>,
    host: &mut H,
    jumps: &mut J,
) -> Result<Ended, H::Error> {
    let mut stack = Stack::new();
    let mut pc = 0usize;
    let mut gas_left = env.max_gas;
    let mut steps = 0u64;
    let end = |exit, gas_left: u64, steps| Ended {
        exit,
        gas_used: env.max_gas - gas_left,
        steps,
    };
    while let Some(&byte) = code.get(pc) {
        let gas = gas_of(byte);
        if gas > gas_left {
            return Ok(end(Exit::OutOfGas, gas_left, steps));
        }
        gas_left -= gas;
        steps += 1;
        pc += 1;
        match step(byte, code, &mut pc, &mut stack, env, host, jumps) {
            Step::Next => {}
            Step::End(exit) => return Ok(end(exit, gas_left, steps)),
            Step::Host(e) => return Err(e),
        }
    }
    Ok(end(Exit::Success, gas_left, steps))
}

/// Executes the instruction `byte` (already charged; `pc` already past it).
#[inline(always)]
fn step<H: Host, J: Jumps>(
    byte: u8,
    code: &[u8],
    pc: &mut usize,
    stack: &mut Stack,
    env: &Env<'_>,
    host: &mut H,
    jumps: &mut J,
) -> Step<H::Error> {
    macro_rules! t {
        ($e:expr) => {
            match $e {
                Ok(v) => v,
                Err(f) => return Step::from(f),
            }
        };
    }
    macro_rules! h {
        ($e:expr) => {
            match $e {
                Ok(v) => v,
                Err(e) => return Step::Host(e),
            }
        };
    }
    let Some(op) = Op::decode(byte) else {
        return Fault::InvalidInstruction(byte).into();
    };
    match op {
        Op::Stop => return Step::End(Exit::Success),
        Op::Add => t!(stack.binary(|a, b| a.wrapping_add(b))),
        Op::Mul => t!(stack.binary(|a, b| a.wrapping_mul(b))),
        Op::Sub => t!(stack.binary(|a, b| a.wrapping_sub(b))),
        Op::Div => t!(stack.binary(|a, b| a.checked_div(b).unwrap_or(U256::ZERO))),
        Op::Mod => t!(stack.binary(|a, b| a.checked_rem(b).unwrap_or(U256::ZERO))),
        Op::Lt => t!(stack.binary(|a, b| flag(a < b))),
        Op::Gt => t!(stack.binary(|a, b| flag(a > b))),
        Op::Eq => t!(stack.binary(|a, b| flag(a == b))),
        Op::IsZero => t!(stack.unary(|a| flag(a.is_zero()))),
        Op::And => t!(stack.binary(|a, b| a & b)),
        Op::Or => t!(stack.binary(|a, b| a | b)),
        Op::Xor => t!(stack.binary(|a, b| a ^ b)),
        Op::Not => t!(stack.unary(|a| !a)),
        Op::Hash => t!(stack.binary(|a, b| {
            let mut h = blake3::Hasher::new();
            h.update(&bytes_of(&a));
            h.update(&bytes_of(&b));
            word_of(h.finalize().as_bytes())
        })),
        Op::SelfId => t!(stack.push(word_of(&env.contract.0))),
        Op::Balance => {
            let a = t!(stack.pop());
            let n = h!(host.balance(&account_of(&a)));
            stack.words.push(U256::from(n));
        }
        Op::Caller => t!(stack.push(word_of(&env.caller.0))),
        Op::Deposit => t!(stack.push(U256::from(env.deposit))),
        Op::Arg => {
            let a = t!(stack.pop());
            let w = usize::try_from(a)
                .ok()
                .and_then(|i| env.args.get(i))
                .map_or(U256::ZERO, |arg| word_of(&arg.0));
            stack.words.push(w);
        }
        Op::Argc => t!(stack.push(U256::from(env.args.len()))),
        Op::Height => t!(stack.push(U256::from(env.height))),
        Op::Pop => {
            t!(stack.pop());
        }
        Op::Sload => {
            let a = t!(stack.pop());
            let w = h!(host.sload(&bytes_of(&a)));
            stack.words.push(w);
        }
        Op::Sstore => {
            let a = t!(stack.pop());
            let b = t!(stack.pop());
            h!(host.sstore(&bytes_of(&a), b));
        }
        Op::Jump => {
            let a = t!(stack.pop());
            *pc = t!(jump_target(code, &a));
        }
        Op::JumpI => {
            let a = t!(stack.pop());
            let b = t!(stack.pop());
            if jumps.decide(!b.is_zero()) {
                *pc = t!(jump_target(code, &a));
            }
        }
        Op::JumpDest => {}
        Op::Push(n) => {
            let n = n as usize;
            let mut bytes = [0u8; 32];
            // Bytes past the end of the code read as 0.
            let start = (*pc).min(code.len());
            let end = (*pc + n).min(code.len());
            let avail = &code[start..end];
            bytes[32 - n..32 - n + avail.len()].copy_from_slice(avail);
            t!(stack.push(word_of(&bytes)));
            *pc += n;
        }
        Op::Dup(n) => {
            let n = n as usize;
            let len = stack.words.len();
            if len < n {
                return Fault::StackUnderflow.into();
            }
            let w = stack.words[len - n];
            t!(stack.push(w));
        }
        Op::Swap(n) => {
            let n = n as usize;
            let len = stack.words.len();
            if len < n + 1 {
                return Fault::StackUnderflow.into();
            }
            stack.words.swap(len - 1, len - 1 - n);
        }
        Op::Transfer => {
            let a = t!(stack.pop());
            let b = t!(stack.pop());
            let Ok(amount) = u64::try_from(b) else {
                return Fault::AmountTooLarge.into();
            };
            if !h!(host.transfer(&account_of(&a), amount)) {
                return Fault::InsufficientBalance.into();
            }
        }
        Op::Revert => return Step::End(Exit::Reverted),
    }
    Step::Next
}

/// The pc a taken jump to `target` continues at: below the code's length
/// and on a `JUMPDEST` byte (any such byte, push data included: SPEC §8
/// checks the byte, not an instruction boundary).
#[inline]
fn jump_target(code: &[u8], target: &U256) -> Result<usize, Fault> {
    usize::try_from(*target)
        .ok()
        .filter(|&t| code.get(t) == Some(&opcode::JUMPDEST))
        .ok_or(Fault::BadJump)
}

#[cfg(test)]
mod tests;
