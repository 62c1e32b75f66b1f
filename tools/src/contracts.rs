//! The contracts the generator's workloads deploy (SPEC v2 §8), as
//! assembler source ([`crate::asm`]) and as code.
//!
//! Stack notation in the comments: `[x, y]` has `y` on top. Every
//! instruction pops `a` (the top) and then `b`: `SUB` pushes a − b, `GT`
//! pushes a > b, `HASH` hashes a ‖ b, `SSTORE` stores b in slot a,
//! `TRANSFER` moves b units to account a, `JUMPI` jumps to a if b != 0.
//!
//! Arguments are 32-byte words: numbers big-endian (see [`word`]), accounts
//! as their 32 key bytes.
//!
//! Gas per call (every instruction 1, `HASH` 10, `SLOAD` and `BALANCE` 50,
//! `SSTORE` and `TRANSFER` 100), counted along the path taken and checked
//! by `tools/tests/asm.rs` (`max_gas` = the count succeeds, one less runs
//! out of gas): [`TOKEN_MINT_GAS`], [`TOKEN_TRANSFER_GAS`],
//! [`AUCTION_FIRST_BID_GAS`], [`AUCTION_BID_GAS`], [`AUCTION_LOW_BID_GAS`],
//! [`PROBE_GAS`], [`COUNTER_GAS`].

use tos_parallel::{Hash, PublicKey};

use crate::asm::assemble;

/// An ERC-20-like token.
///
/// ABI: `arg0` = selector.
/// * selector 0, `mint(arg1 = amount)`: `balance[CALLER] += amount`.
/// * selector 1, `transfer(arg1 = to, arg2 = amount)` (`to` an account as a
///   32-byte word): if `amount > balance[CALLER]`, `REVERT`; else
///   `balance[CALLER] -= amount; balance[to] += amount` (a transfer to
///   oneself leaves the balance as it was).
/// * any other selector: `REVERT`.
///
/// A credit that would wrap around 2^256 also reverts. No deposit is needed
/// (one sent stays with the contract).
///
/// Slots: the balance of `holder` lives at `HASH(holder, 0)` =
/// `blake3(holder ‖ 32 zero bytes)` ([`token_slot`]).
pub const TOKEN_ASM: &str = "
; token: arg0 = selector (0 mint, 1 transfer)
        PUSH 0 ARG              ; [sel]
        DUP1 ISZERO             ; [sel, sel == 0]
        PUSH @mint JUMPI        ; [sel]
        PUSH 1 EQ               ; [sel == 1]
        PUSH @transfer JUMPI    ; []
        REVERT                  ; unknown selector

mint:                           ; [sel]
        POP                     ; []
        PUSH 1 ARG              ; [amount]
        PUSH 0 CALLER HASH      ; [amount, slot]        slot = HASH(CALLER, 0)
        DUP1 SLOAD              ; [amount, slot, bal]
        DUP3 ADD                ; [amount, slot, new]   new = bal + amount
        DUP3 DUP2 LT            ; [amount, slot, new, new < amount]
        PUSH @fail JUMPI        ; [amount, slot, new]   wrapped: revert
        SWAP1 SSTORE            ; [amount]              slot := new
        STOP

transfer:                       ; []
        PUSH 2 ARG              ; [amount]
        PUSH 0 CALLER HASH      ; [amount, from]        from = HASH(CALLER, 0)
        DUP1 SLOAD              ; [amount, from, fbal]
        DUP1 DUP4 GT            ; [amount, from, fbal, amount > fbal]
        PUSH @fail JUMPI        ; [amount, from, fbal]
        DUP3 SWAP1 SUB          ; [amount, from, fbal - amount]
        SWAP1 SSTORE            ; [amount]              from := fbal - amount
        PUSH 0 PUSH 1 ARG HASH  ; [amount, to]          to = HASH(arg1, 0)
        DUP1 SLOAD              ; [amount, to, tbal]
        DUP3 ADD                ; [amount, to, new]     new = tbal + amount
        DUP3 DUP2 LT            ; [amount, to, new, new < amount]
        PUSH @fail JUMPI        ; [amount, to, new]     wrapped: revert
        SWAP1 SSTORE            ; [amount]              to := new
        STOP

fail:
        REVERT
";

/// Gas of a token `mint`.
pub const TOKEN_MINT_GAS: u64 = 182;
/// Gas of a token `transfer` that succeeds.
pub const TOKEN_TRANSFER_GAS: u64 = 358;

/// One English auction, its highest bid held by the contract.
///
/// ABI: no arguments; a bid is an invocation whose deposit is the bid. If
/// `DEPOSIT > slot 0` (the highest bid so far): when `slot 0 != 0` the
/// previous highest bidder (`slot 1`) gets its bid back (`TRANSFER(slot 1,
/// slot 0)`, which the contract's balance always covers: it holds the
/// highest bid plus this deposit); then `slot 0 = DEPOSIT`, `slot 1 =
/// CALLER`; `STOP`. Otherwise `REVERT` (the deposit goes back).
///
/// Slots: 0 = the highest bid, 1 = its bidder (an account as a word).
pub const AUCTION_ASM: &str = "
; auction: a bid is the deposit
        PUSH 0 SLOAD            ; [high]
        DUP1 DEPOSIT GT         ; [high, DEPOSIT > high]
        PUSH @bid JUMPI         ; [high]
        REVERT                  ; not above the highest bid

bid:                            ; [high]
        DUP1 ISZERO             ; [high, high == 0]
        PUSH @record JUMPI      ; [high]                first bid: no refund
        PUSH 1 SLOAD            ; [high, prev]
        TRANSFER                ; []                    pay `high` back to prev

record:                         ; [] or [0]
        DEPOSIT PUSH 0 SSTORE   ; slot 0 := DEPOSIT
        CALLER PUSH 1 SSTORE    ; slot 1 := CALLER
        STOP
";

/// Gas of the first bid (nothing to refund).
pub const AUCTION_FIRST_BID_GAS: u64 = 267;
/// Gas of a later winning bid (with the refund).
pub const AUCTION_BID_GAS: u64 = 418;
/// Gas of a bid not above the highest (it reverts).
pub const AUCTION_LOW_BID_GAS: u64 = 57;

/// Records a native balance that other transactions change.
///
/// ABI: `arg0` = an account. Stores `BALANCE(arg0)` in slot `HASH(arg0, 0)`
/// (`blake3(arg0 ‖ 32 zero bytes)`, as [`token_slot`]); `STOP`.
///
/// Slots: `HASH(account, 0)` = the account's native balance when last probed
/// (not listed in the dump while 0).
pub const PROBE_ASM: &str = "
; probe: arg0 = account
        PUSH 0 ARG              ; [acct]
        DUP1 BALANCE            ; [acct, bal]
        PUSH 0 DUP3 HASH        ; [acct, bal, slot]     slot = HASH(acct, 0)
        SSTORE                  ; [acct]                slot := bal
        STOP
";

/// Gas of a probe.
pub const PROBE_GAS: u64 = 166;

/// A hot counter: every invocation increments slot 0.
///
/// ABI: no arguments. Slots: 0 = the number of invocations that ran.
pub const COUNTER_ASM: &str = "
; counter
        PUSH 0 SLOAD            ; [n]
        PUSH 1 ADD              ; [n + 1]
        PUSH 0 SSTORE           ; []                    slot 0 := n + 1
        STOP
";

/// Gas of a counter increment.
pub const COUNTER_GAS: u64 = 155;

/// The code of [`TOKEN_ASM`].
///
/// # Panics
/// If `TOKEN_ASM` does not assemble: it is a constant of this module, so
/// that would be a bug here (the tests assemble every program).
pub fn token() -> Vec<u8> {
    assemble(TOKEN_ASM).expect("contracts.rs: TOKEN_ASM must assemble (a bug in its source)")
}

/// The code of [`AUCTION_ASM`].
///
/// # Panics
/// If `AUCTION_ASM` does not assemble: it is a constant of this module, so
/// that would be a bug here (the tests assemble every program).
pub fn auction() -> Vec<u8> {
    assemble(AUCTION_ASM).expect("contracts.rs: AUCTION_ASM must assemble (a bug in its source)")
}

/// The code of [`PROBE_ASM`].
///
/// # Panics
/// If `PROBE_ASM` does not assemble: it is a constant of this module, so
/// that would be a bug here (the tests assemble every program).
pub fn probe() -> Vec<u8> {
    assemble(PROBE_ASM).expect("contracts.rs: PROBE_ASM must assemble (a bug in its source)")
}

/// The code of [`COUNTER_ASM`].
///
/// # Panics
/// If `COUNTER_ASM` does not assemble: it is a constant of this module, so
/// that would be a bug here (the tests assemble every program).
pub fn counter() -> Vec<u8> {
    assemble(COUNTER_ASM).expect("contracts.rs: COUNTER_ASM must assemble (a bug in its source)")
}

/// The token slot holding `holder`'s balance: `blake3(holder ‖ 32 zero
/// bytes)` (what `PUSH 0, <holder>, HASH` computes).
pub fn token_slot(holder: &PublicKey) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(&holder.0);
    h.update(&[0u8; 32]);
    Hash(*h.finalize().as_bytes())
}

/// A number as an argument word (32 bytes, big-endian).
pub fn word(v: u64) -> Hash {
    let mut w = [0u8; 32];
    w[24..].copy_from_slice(&v.to_be_bytes());
    Hash(w)
}

/// An account as an argument word (its 32 bytes).
pub fn account_word(account: &PublicKey) -> Hash {
    Hash(account.0)
}
