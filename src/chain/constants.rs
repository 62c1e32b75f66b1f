//! Chain constants (SPEC §1).

/// Atomic units per coin (8 decimals).
pub const COIN: u64 = 100_000_000;
/// Maximum native supply.
pub const MAXIMUM_SUPPLY: u64 = 184_000_000 * COIN;
/// Fee per started KiB of transaction size.
pub const FEE_PER_KB: u64 = 10_000;
/// Fee per output and per multisig signature.
pub const FEE_PER_TRANSFER: u64 = 5_000;
/// Largest accepted encoded transaction.
pub const MAX_TX_SIZE: usize = 1_048_576;
/// Outputs per transaction.
pub const MAX_TRANSFERS: usize = 255;
/// Extra data bytes per output.
pub const EXTRA_DATA_LIMIT_PER_OUTPUT: usize = 128;
/// Extra data bytes per transaction.
pub const EXTRA_DATA_LIMIT_PER_TX: usize = 4_096;
/// Multisig participants per config.
pub const MAX_MULTISIG_PARTICIPANTS: usize = 255;
/// Shortest freeze, in days.
pub const MIN_FREEZE_DAYS: u32 = 3;
/// Longest freeze, in days.
pub const MAX_FREEZE_DAYS: u32 = 180;
/// Energy per frozen coin per day.
pub const ENERGY_PER_COIN_DAY: u64 = 2;
/// Energy a transfer output costs when the fee is paid in energy.
pub const ENERGY_PER_TRANSFER: u64 = 1;
/// Default `blocks_per_day` when genesis omits it.
pub const DEFAULT_BLOCKS_PER_DAY: u64 = 86_400;
/// Largest contract code, in bytes (SPEC v2).
pub const MAX_CODE_SIZE: usize = 4_096;
/// Arguments per invocation.
pub const MAX_ARGS: usize = 16;
/// Gas one invocation may ask for.
pub const MAX_GAS: u64 = 10_000_000;
/// Gas the invocations of one block may ask for together (their `max_gas`).
pub const MAX_BLOCK_GAS: u64 = 50_000_000;
/// Native fee per unit of an invocation's `max_gas`.
pub const FEE_PER_GAS: u64 = 10;
/// Words the VM's stack holds at most.
pub const MAX_STACK: usize = super::vm::MAX_STACK;
