//! A small assembler and disassembler for the SPEC v2 §8 virtual machine,
//! for tests, the workload generator and examples (the library never needs
//! it: a contract is its bytes).
//!
//! Syntax: whitespace-separated tokens; `;` starts a comment that runs to
//! the end of the line. Mnemonics are case-insensitive and named as
//! [`Op::name`] names them (`STOP`, `ADD`, ..., `SELF`, `PUSH1`..`PUSH32`,
//! `DUP1`..`DUP16`, `SWAP1`..`SWAP16`, `TRANSFER`, `REVERT`), plus:
//!
//! * `PUSH <imm>`: the narrowest `PUSHn` that holds the value (at least one
//!   byte: `PUSH 0` is `PUSH1 0x00`); `PUSH @label` is always `PUSH2`.
//! * `PUSHn <imm>`: an explicit width, the value left-padded with zeros (an
//!   error if it does not fit in n bytes).
//! * `name:` defines a label at the current offset and emits a `JUMPDEST`
//!   there; `@name` (the immediate of a `PUSH` or `PUSHn`) is the label's
//!   offset. Labels are case-sensitive and may be used before they are
//!   defined (two passes).
//! * `BYTE <imm>` emits one raw byte (to write invalid instructions).
//!
//! Immediates are decimal or `0x` hexadecimal, up to 32 bytes (256 bits).
//!
//! [`disassemble`] writes one instruction per line in this syntax (immediates
//! in hex, as wide as the `PUSHn`; a byte that is no instruction, or a push
//! whose data runs past the end of the code, as `BYTE 0xNN`), so that
//! `assemble(&disassemble(code)) == code` for any code.

use std::collections::HashMap;

use tos_parallel::chain::vm::Op;

/// Why a source does not assemble. Lines are 1-based.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AsmError {
    /// A token that is neither a mnemonic nor a label definition.
    #[error("line {line}: unknown mnemonic `{token}`")]
    UnknownMnemonic {
        /// Line of the token.
        line: usize,
        /// The token as written.
        token: String,
    },
    /// A `PUSH`, `PUSHn` or `BYTE` without its immediate (the source ends).
    #[error("line {line}: `{mnemonic}` needs an immediate")]
    MissingImmediate {
        /// Line of the mnemonic.
        line: usize,
        /// The mnemonic as written.
        mnemonic: String,
    },
    /// An immediate that is not a decimal or `0x` hexadecimal number (or
    /// `@label` after `BYTE`).
    #[error("line {line}: bad immediate `{token}`")]
    BadImmediate {
        /// Line of the immediate.
        line: usize,
        /// The immediate as written.
        token: String,
    },
    /// An immediate (or a label's offset) that does not fit in the width of
    /// its `PUSHn` (1 for `BYTE`, 2 for `PUSH @label`, 32 for any number).
    #[error("line {line}: immediate `{token}` does not fit in {width} byte(s)")]
    ImmediateTooWide {
        /// Line of the immediate.
        line: usize,
        /// The immediate as written.
        token: String,
        /// Bytes available.
        width: usize,
    },
    /// `@name` where no `name:` is defined.
    #[error("line {line}: unknown label `{name}`")]
    UnknownLabel {
        /// Line of the reference.
        line: usize,
        /// The label's name (without `@`).
        name: String,
    },
    /// A label defined twice.
    #[error("line {line}: duplicate label `{name}` (first defined on line {first})")]
    DuplicateLabel {
        /// Line of the second definition.
        line: usize,
        /// The label's name.
        name: String,
        /// Line of the first definition.
        first: usize,
    },
}

/// The `JUMPDEST` byte a label emits.
const JUMPDEST: u8 = 0x5B;

/// A 256-bit value, big-endian.
type Word = [u8; 32];

/// What a push pushes, before labels are resolved.
enum Imm {
    Value(Word),
    Label(String),
}

/// One item of the first pass.
enum Item {
    /// Bytes emitted as they are (an instruction without immediate,
    /// `BYTE`, a label's `JUMPDEST`).
    Raw(u8),
    /// `PUSHn` with its immediate.
    Push {
        width: usize,
        imm: Imm,
        token: String,
        line: usize,
    },
}

/// The byte of every instruction by upper-case name (`PUSHn` included),
/// from the library's own table.
fn mnemonics() -> HashMap<String, u8> {
    (0..=255u8)
        .filter_map(|b| Op::decode(b).map(|op| (op.name(), b)))
        .collect()
}

/// Parses a decimal or `0x` hexadecimal number of at most 256 bits.
fn parse_number(token: &str, line: usize) -> Result<Word, AsmError> {
    let bad = || AsmError::BadImmediate {
        line,
        token: token.to_string(),
    };
    let wide = || AsmError::ImmediateTooWide {
        line,
        token: token.to_string(),
        width: 32,
    };
    let (digits, radix) = match token
        .strip_prefix("0x")
        .or_else(|| token.strip_prefix("0X"))
    {
        Some(hex) => (hex, 16u32),
        None => (token, 10u32),
    };
    if digits.is_empty() {
        return Err(bad());
    }
    let mut w: Word = [0u8; 32];
    for c in digits.chars() {
        let d = c.to_digit(radix).ok_or_else(bad)?;
        // w = w * radix + d, from the least significant byte.
        let mut carry = d;
        for byte in w.iter_mut().rev() {
            let v = u32::from(*byte) * radix + carry;
            *byte = (v & 0xFF) as u8;
            carry = v >> 8;
        }
        if carry != 0 {
            return Err(wide());
        }
    }
    Ok(w)
}

/// Bytes needed to hold `w` (at least 1).
fn width_of(w: &Word) -> usize {
    let leading = w.iter().take_while(|b| **b == 0).count();
    (32 - leading).max(1)
}

/// A label's offset as a word.
fn word_of_offset(offset: usize) -> Word {
    let mut w = [0u8; 32];
    w[24..].copy_from_slice(&(offset as u64).to_be_bytes());
    w
}

/// Assembles `src` (see the module docs for the syntax).
pub fn assemble(src: &str) -> Result<Vec<u8>, AsmError> {
    let table = mnemonics();
    let mut tokens = src.lines().enumerate().flat_map(|(i, line)| {
        let code = line.split(';').next().unwrap_or("");
        code.split_whitespace().map(move |t| (i + 1, t))
    });
    // Pass 1: sizes and label offsets.
    let mut items = Vec::new();
    let mut labels: HashMap<String, (usize, usize)> = HashMap::new();
    let mut offset = 0usize;
    while let Some((line, token)) = tokens.next() {
        if let Some(name) = token.strip_suffix(':') {
            if name.is_empty() || name.starts_with('@') {
                return Err(AsmError::UnknownMnemonic {
                    line,
                    token: token.to_string(),
                });
            }
            if let Some(&(_, first)) = labels.get(name) {
                return Err(AsmError::DuplicateLabel {
                    line,
                    name: name.to_string(),
                    first,
                });
            }
            labels.insert(name.to_string(), (offset, line));
            items.push(Item::Raw(JUMPDEST));
            offset += 1;
            continue;
        }
        let upper = token.to_ascii_uppercase();
        // `PUSH`, `PUSHn` and `BYTE` take an immediate.
        let explicit = upper
            .strip_prefix("PUSH")
            .filter(|n| !n.is_empty())
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| (1..=32).contains(n) && table.contains_key(&upper));
        if upper == "BYTE" {
            let Some((imm_line, imm)) = tokens.next() else {
                return Err(AsmError::MissingImmediate {
                    line,
                    mnemonic: token.to_string(),
                });
            };
            if imm.starts_with('@') {
                return Err(AsmError::BadImmediate {
                    line: imm_line,
                    token: imm.to_string(),
                });
            }
            let w = parse_number(imm, imm_line)?;
            if width_of(&w) > 1 {
                return Err(AsmError::ImmediateTooWide {
                    line: imm_line,
                    token: imm.to_string(),
                    width: 1,
                });
            }
            items.push(Item::Raw(w[31]));
            offset += 1;
            continue;
        }
        if upper == "PUSH" || explicit.is_some() {
            let Some((imm_line, imm)) = tokens.next() else {
                return Err(AsmError::MissingImmediate {
                    line,
                    mnemonic: token.to_string(),
                });
            };
            let value = match imm.strip_prefix('@') {
                Some(name) if !name.is_empty() => Imm::Label(name.to_string()),
                Some(_) => {
                    return Err(AsmError::BadImmediate {
                        line: imm_line,
                        token: imm.to_string(),
                    })
                }
                None => Imm::Value(parse_number(imm, imm_line)?),
            };
            let width = match (explicit, &value) {
                (Some(n), _) => n,
                (None, Imm::Label(_)) => 2,
                (None, Imm::Value(w)) => width_of(w),
            };
            items.push(Item::Push {
                width,
                imm: value,
                token: imm.to_string(),
                line: imm_line,
            });
            offset += 1 + width;
            continue;
        }
        match table.get(&upper) {
            Some(&byte) => {
                items.push(Item::Raw(byte));
                offset += 1;
            }
            None => {
                return Err(AsmError::UnknownMnemonic {
                    line,
                    token: token.to_string(),
                })
            }
        }
    }
    // Pass 2: bytes, with labels resolved.
    let mut code = Vec::with_capacity(offset);
    for item in items {
        match item {
            Item::Raw(b) => code.push(b),
            Item::Push {
                width,
                imm,
                token,
                line,
            } => {
                let w = match imm {
                    Imm::Value(w) => w,
                    Imm::Label(name) => match labels.get(&name) {
                        Some(&(off, _)) => word_of_offset(off),
                        None => return Err(AsmError::UnknownLabel { line, name }),
                    },
                };
                if width_of(&w) > width {
                    return Err(AsmError::ImmediateTooWide { line, token, width });
                }
                code.push(0x5F + width as u8);
                code.extend_from_slice(&w[32 - width..]);
            }
        }
    }
    Ok(code)
}

/// Disassembles `code`: one instruction per line (`PUSHn 0x..` with n bytes
/// of hex, `BYTE 0xNN` for a byte that is no instruction or a push whose
/// data runs past the end), each line ending with a newline.
/// [`assemble`] gives the same bytes back.
pub fn disassemble(code: &[u8]) -> String {
    let mut out = String::new();
    let mut pc = 0usize;
    while let Some(&byte) = code.get(pc) {
        pc += 1;
        match Op::decode(byte) {
            Some(Op::Push(n)) => {
                let n = n as usize;
                match code.get(pc..pc + n) {
                    Some(data) => {
                        out.push_str(&format!("PUSH{n} 0x"));
                        for b in data {
                            out.push_str(&format!("{b:02x}"));
                        }
                        out.push('\n');
                        pc += n;
                    }
                    None => out.push_str(&format!("BYTE 0x{byte:02x}\n")),
                }
            }
            Some(op) => {
                out.push_str(&op.name());
                out.push('\n');
            }
            None => out.push_str(&format!("BYTE 0x{byte:02x}\n")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn every_instruction_round_trips() {
        for byte in 0..=255u8 {
            let mut code = vec![byte];
            if let Some(Op::Push(n)) = Op::decode(byte) {
                code.extend((1..=n).map(|i| i.wrapping_mul(37)));
            }
            let text = disassemble(&code);
            assert_eq!(assemble(&text), Ok(code.clone()), "{text}");
        }
    }

    #[test]
    fn random_code_round_trips() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for _ in 0..500 {
            let len = rng.gen_range(0..200usize);
            let code: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            let text = disassemble(&code);
            assert_eq!(assemble(&text), Ok(code.clone()), "{text}");
        }
    }

    #[test]
    fn truncated_push_disassembles_as_bytes() {
        assert_eq!(disassemble(&[0x61, 0x01]), "BYTE 0x61\nADD\n");
        assert_eq!(Op::decode(JUMPDEST), Some(Op::JumpDest));
    }

    #[test]
    fn push_picks_the_smallest_width() {
        assert_eq!(assemble("PUSH 0").unwrap(), vec![0x60, 0x00]);
        assert_eq!(assemble("push 255").unwrap(), vec![0x60, 0xFF]);
        assert_eq!(assemble("PUSH 256").unwrap(), vec![0x61, 0x01, 0x00]);
        assert_eq!(assemble("PUSH 0x0001").unwrap(), vec![0x60, 0x01]);
        assert_eq!(assemble("PUSH4 0x01").unwrap(), vec![0x63, 0, 0, 0, 1]);
        let max = format!("PUSH 0x{}", "ff".repeat(32));
        let code = assemble(&max).unwrap();
        assert_eq!(code.len(), 33);
        assert_eq!(code[0], 0x7F);
        // 2^256 - 1 in decimal.
        let dec = "115792089237316195423570985008687907853269984665640564039457584007913129639935";
        assert_eq!(assemble(&format!("PUSH {dec}")).unwrap(), code);
    }

    #[test]
    fn labels_comments_and_case() {
        let src = "  push @end ; forward\n JUMP\n BYTE 0xFE\nend: stop ; done\n";
        assert_eq!(
            assemble(src).unwrap(),
            vec![0x61, 0x00, 0x05, 0x56, 0xFE, 0x5B, 0x00]
        );
        assert_eq!(
            assemble("a: PUSH1 @a JUMP").unwrap(),
            vec![0x5B, 0x60, 0x00, 0x56]
        );
        assert_eq!(
            assemble("self dup16 swap1 iszero jumpi").unwrap(),
            vec![0x30, 0x8F, 0x90, 0x15, 0x57]
        );
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(
            assemble("ADD\nFOO"),
            Err(AsmError::UnknownMnemonic {
                line: 2,
                token: "FOO".into()
            })
        );
        assert!(matches!(
            assemble("PUSH 12z"),
            Err(AsmError::BadImmediate { line: 1, .. })
        ));
        assert!(matches!(
            assemble("PUSH 0x"),
            Err(AsmError::BadImmediate { line: 1, .. })
        ));
        assert!(matches!(
            assemble("\nPUSH1 256"),
            Err(AsmError::ImmediateTooWide {
                line: 2,
                width: 1,
                ..
            })
        ));
        let too_big = format!("PUSH 0x1{}", "00".repeat(32));
        assert!(matches!(
            assemble(&too_big),
            Err(AsmError::ImmediateTooWide { width: 32, .. })
        ));
        assert!(matches!(
            assemble("BYTE 0x100"),
            Err(AsmError::ImmediateTooWide { width: 1, .. })
        ));
        assert!(matches!(
            assemble("BYTE @x x:"),
            Err(AsmError::BadImmediate { .. })
        ));
        assert_eq!(
            assemble("PUSH @nowhere"),
            Err(AsmError::UnknownLabel {
                line: 1,
                name: "nowhere".into()
            })
        );
        assert_eq!(
            assemble("x:\nADD\nx:"),
            Err(AsmError::DuplicateLabel {
                line: 3,
                name: "x".into(),
                first: 1
            })
        );
        assert!(matches!(
            assemble("PUSH"),
            Err(AsmError::MissingImmediate { line: 1, .. })
        ));
        assert!(matches!(
            assemble("PUSH33 1"),
            Err(AsmError::UnknownMnemonic { .. })
        ));
        assert!(matches!(
            assemble("PUSH0 1"),
            Err(AsmError::UnknownMnemonic { .. })
        ));
    }
}
