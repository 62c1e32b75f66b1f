//! The instruction set of SPEC v2 §8: every byte's instruction and gas, in
//! one table.

/// `JUMPDEST`: the only byte a jump may land on.
pub const JUMPDEST: u8 = 0x5B;

/// One instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// 0x00: ends with success.
    Stop,
    /// 0x01: a + b.
    Add,
    /// 0x02: a × b.
    Mul,
    /// 0x03: a − b.
    Sub,
    /// 0x04: a / b, 0 when b = 0.
    Div,
    /// 0x06: a mod b, 0 when b = 0.
    Mod,
    /// 0x10: a < b.
    Lt,
    /// 0x11: a > b.
    Gt,
    /// 0x14: a = b.
    Eq,
    /// 0x15: a = 0.
    IsZero,
    /// 0x16.
    And,
    /// 0x17.
    Or,
    /// 0x18.
    Xor,
    /// 0x19.
    Not,
    /// 0x20: blake3(a ‖ b).
    Hash,
    /// 0x30: the contract's id.
    SelfId,
    /// 0x31: native balance of account a.
    Balance,
    /// 0x33: the transaction's source.
    Caller,
    /// 0x34: the deposit.
    Deposit,
    /// 0x35: argument a, or 0.
    Arg,
    /// 0x36: argument count.
    Argc,
    /// 0x43: T+1.
    Height,
    /// 0x50.
    Pop,
    /// 0x54: the word in slot a.
    Sload,
    /// 0x55: slot a := b.
    Sstore,
    /// 0x56: pc := a.
    Jump,
    /// 0x57: pc := a if b != 0.
    JumpI,
    /// 0x5B.
    JumpDest,
    /// 0x60..=0x7F: PUSH1..PUSH32 (the byte count).
    Push(u8),
    /// 0x80..=0x8F: DUP1..DUP16 (n).
    Dup(u8),
    /// 0x90..=0x9F: SWAP1..SWAP16 (n).
    Swap(u8),
    /// 0xF1: moves b native units from the contract to account a.
    Transfer,
    /// 0xFD: ends with `contract_reverted`.
    Revert,
}

impl Op {
    /// The instruction of `byte`, if it is one.
    #[inline(always)]
    pub fn decode(byte: u8) -> Option<Op> {
        Some(match byte {
            0x00 => Op::Stop,
            0x01 => Op::Add,
            0x02 => Op::Mul,
            0x03 => Op::Sub,
            0x04 => Op::Div,
            0x06 => Op::Mod,
            0x10 => Op::Lt,
            0x11 => Op::Gt,
            0x14 => Op::Eq,
            0x15 => Op::IsZero,
            0x16 => Op::And,
            0x17 => Op::Or,
            0x18 => Op::Xor,
            0x19 => Op::Not,
            0x20 => Op::Hash,
            0x30 => Op::SelfId,
            0x31 => Op::Balance,
            0x33 => Op::Caller,
            0x34 => Op::Deposit,
            0x35 => Op::Arg,
            0x36 => Op::Argc,
            0x43 => Op::Height,
            0x50 => Op::Pop,
            0x54 => Op::Sload,
            0x55 => Op::Sstore,
            0x56 => Op::Jump,
            0x57 => Op::JumpI,
            JUMPDEST => Op::JumpDest,
            0x60..=0x7F => Op::Push(byte - 0x5F),
            0x80..=0x8F => Op::Dup(byte - 0x7F),
            0x90..=0x9F => Op::Swap(byte - 0x8F),
            0xF1 => Op::Transfer,
            0xFD => Op::Revert,
            _ => return None,
        })
    }

    /// Its gas.
    pub fn gas(self) -> u64 {
        match self {
            Op::Hash => 10,
            Op::Balance | Op::Sload => 50,
            Op::Sstore | Op::Transfer => 100,
            _ => 1,
        }
    }

    /// Its name (PUSH, DUP and SWAP with their n).
    pub fn name(self) -> String {
        match self {
            Op::Push(n) => format!("PUSH{n}"),
            Op::Dup(n) => format!("DUP{n}"),
            Op::Swap(n) => format!("SWAP{n}"),
            Op::SelfId => "SELF".to_string(),
            other => format!("{other:?}").to_uppercase(),
        }
    }
}

/// The gas charged before the instruction of `byte` runs: a byte that is
/// no instruction costs 1, then fails.
#[inline(always)]
pub fn gas_of(byte: u8) -> u64 {
    match byte {
        0x20 => 10,
        0x31 | 0x54 => 50,
        0x55 | 0xF1 => 100,
        _ => 1,
    }
}

/// The name of `byte`'s instruction, if it is one.
pub fn name_of(byte: u8) -> Option<String> {
    Op::decode(byte).map(Op::name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gas_table_agrees_with_the_instructions() {
        for byte in 0..=255u8 {
            match Op::decode(byte) {
                Some(op) => assert_eq!(gas_of(byte), op.gas(), "0x{byte:02x}"),
                None => assert_eq!(gas_of(byte), 1, "0x{byte:02x}"),
            }
        }
    }

    #[test]
    fn exactly_the_spec_bytes_are_instructions() {
        let valid: Vec<u8> = (0..=255u8).filter(|b| Op::decode(*b).is_some()).collect();
        let mut want: Vec<u8> = vec![
            0x00, 0x01, 0x02, 0x03, 0x04, 0x06, 0x10, 0x11, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19,
            0x20, 0x30, 0x31, 0x33, 0x34, 0x35, 0x36, 0x43, 0x50, 0x54, 0x55, 0x56, 0x57, 0x5B,
            0xF1, 0xFD,
        ];
        want.extend(0x60..=0x9F);
        want.sort_unstable();
        assert_eq!(valid, want);
    }
}
