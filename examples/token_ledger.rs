//! A second chain on the engine, deliberately unlike the SPEC chain: a
//! one-token ledger with allowances, a fixed issuer and a fee collector.
//!
//! `cargo run --release --example token_ledger -- [accounts] [txs] [blocks] [work]`
//! (defaults 64, 2000, 8, 0; `work`: rounds of busy work per transaction,
//! [`Ledger::work`]) runs a seeded, contended workload block after
//! block on the parallel engine (2 threads, guards off) and on the
//! sequential reference engine, and asserts that both (and a plain in-order
//! interpreter of the rules, the workload's own wallet) agree on every
//! status, block sum, write and the state after every block.
//!
//! # The chain
//! * State ([`LedgerKey`], [`LedgerValue`]): per account a balance and a
//!   nonce (counters: absent reads 0), an allowance record per
//!   (owner, spender) pair ([`Allowance`]: what is left to spend and what
//!   was spent, read and replaced whole), and the total supply (a counter).
//! * Transactions ([`Tx`]): a nonce and an [`Op`]: `Transfer`, `Approve`
//!   (sets the allowance, keeps its `spent`), `TransferFrom` (spends an
//!   allowance: the spender signs and pays the fee, the owner's balance
//!   pays the amount) and `Mint` (only by [`Ledger::issuer`], under
//!   [`SUPPLY_CAP`]). Every transaction pays a flat [`Ledger::fee`] from its
//!   sender. The wire format is a small hand-written binary encoding
//!   ([`Tx::encode`], [`Tx::decode`], [`DecodeError`]).
//! * Rules ([`Ledger`]'s [`Chain`] impl): check everything first (nonce,
//!   allowance, balances, supply cap), then write, as deltas; credits to
//!   receivers are [`Mode::Add`] (commutative: many payers can credit one
//!   account in any order). Fees go to block sum [`SUM_FEES`]; `end_block`
//!   credits them to the block's collector. Minted amounts are reported in
//!   block sum [`SUM_MINTED`]. Balances are conserved: their total always
//!   equals the supply, so no credit can overflow.
//! * Proof ([`Chain::prove`]): a sender whose transactions in a block are
//!   all transfers with consecutive nonces from its block-start nonce, and
//!   whose block-start balance covers all of them (amounts and fees), has
//!   its nonce and balance accesses turned into adds: its transfers then
//!   run in any order (a payroll).
//!
//! # Node integration points
//! * **Storage** is the node's: here a `HashMap` ([`LedgerState`]). The
//!   engine only reads it, through [`Reader`] (the state at the block's
//!   parent), and never writes to it.
//! * **Admission** ([`Ledger::admit`]) decodes a transaction and derives its
//!   declared accesses from it alone ([`CheckedTx`]); a real node would
//!   verify the signature here too, and keep the result in a cache. Bytes
//!   that do not decode never reach a block.
//! * **Execution**: [`Executor::execute`] (or `execute_sequential`) returns
//!   [`Executed`]: statuses, sums, writes. Nothing is written anywhere; an
//!   `EngineError` (a failed read, an undeclared access, a contained
//!   panic) abandons the block with the state untouched.
//! * **Commit**: the node applies `writes` (each written key once, with its
//!   final value) in one step once it accepts the block
//!   ([`LedgerState::apply`]); the next block reads the new state.
//! * **Nonces** are checked in the rules ([`Ledger`]'s `execute`, the first
//!   stateful check), against the state as left by every earlier
//!   transaction of the block; admission does not look at state.
//! * **Orphans**: a transaction whose check fails gets `Err(Failure)` in
//!   `statuses` (block order), writes nothing, pays no fee and does not
//!   consume its nonce; the node reports it (a receipt) and drops it.
//!
//! # Timing
//! These rules cost about 0.1 µs a transaction (no signatures, a hash-map
//! state): less than what the parallel engine spends planning one, so
//! here it is slower than the sequential engine (measured on 2 cores:
//! about 4x at 64 accounts, 1.6x at 100,000). The printed times show it;
//! the point of the example is the equality, not the speed. The engine
//! pays where a transaction costs more than its plan (signature checks,
//! storage reads).

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::fmt;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use smallvec::SmallVec;
use tos_parallel::engine::{
    key_hash, Accesses, Chain, EngineConfig, Executed, Executor, Key, Mode, ProofView, Reader,
    StateError, StateResult, Value, View, Writes, MAX_SUMS,
};

/// Block sum of the fees of the applied transactions.
pub const SUM_FEES: usize = 0;
/// Block sum of the amounts minted.
pub const SUM_MINTED: usize = 1;
/// The supply never exceeds this (so balances, fees and credits fit a `u64`).
pub const SUPPLY_CAP: u64 = 1 << 62;
/// Every account's balance at genesis.
pub const GENESIS_BALANCE: u64 = 1_000_000;

// ---------------------------------------------------------------- state

/// A key of the ledger's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LedgerKey {
    /// An account's balance (counter).
    Balance(u32),
    /// An account's next nonce (counter).
    Nonce(u32),
    /// What `spender` may still spend of `owner`'s balance (record).
    Allowance { owner: u32, spender: u32 },
    /// The total supply (counter).
    Supply,
}

impl Key for LedgerKey {
    fn is_counter(&self) -> bool {
        !matches!(self, LedgerKey::Allowance { .. })
    }

    /// An account's balance, nonce and the allowances it granted live in one
    /// partition of the plan (and a proof reads only its sender's keys).
    fn affinity(&self) -> u64 {
        match self {
            LedgerKey::Balance(a) | LedgerKey::Nonce(a) | LedgerKey::Allowance { owner: a, .. } => {
                key_hash(a)
            }
            LedgerKey::Supply => key_hash(self),
        }
    }
}

/// An allowance record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Allowance {
    /// What the spender may still spend.
    pub remaining: u64,
    /// What it spent under this pair's approvals so far.
    pub spent: u64,
}

/// A value of the ledger's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LedgerValue {
    /// A counter: a balance, a nonce, the supply.
    Amount(u64),
    /// An allowance record.
    Allowance(Allowance),
}

impl Value for LedgerValue {
    fn as_counter(&self) -> Option<u64> {
        match self {
            LedgerValue::Amount(n) => Some(*n),
            LedgerValue::Allowance(_) => None,
        }
    }

    fn from_counter(n: u64) -> Self {
        LedgerValue::Amount(n)
    }
}

/// The node's state: a plain map (absent counters are 0).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LedgerState {
    map: HashMap<LedgerKey, LedgerValue>,
}

impl LedgerState {
    /// `accounts` accounts holding `balance` each, and their supply.
    pub fn genesis(accounts: u32, balance: u64) -> Self {
        let mut map: HashMap<_, _> = (0..accounts)
            .map(|a| (LedgerKey::Balance(a), LedgerValue::Amount(balance)))
            .collect();
        let supply = u64::from(accounts).saturating_mul(balance);
        map.insert(LedgerKey::Supply, LedgerValue::Amount(supply));
        LedgerState { map }
    }

    /// Commits a block's writes.
    pub fn apply(&mut self, writes: &Writes<LedgerKey, LedgerValue>) {
        for (key, value) in writes.iter() {
            self.map.insert(*key, *value);
        }
    }

    /// The counter `key` holds (0 if absent or not a counter).
    pub fn counter(&self, key: &LedgerKey) -> u64 {
        self.map
            .get(key)
            .and_then(LedgerValue::as_counter)
            .unwrap_or(0)
    }

    /// The sum of every balance (equals the supply: conservation).
    pub fn total_balances(&self) -> u128 {
        self.map
            .iter()
            .filter(|(k, _)| matches!(k, LedgerKey::Balance(_)))
            .filter_map(|(_, v)| v.as_counter())
            .map(u128::from)
            .sum()
    }
}

impl Reader<LedgerKey, LedgerValue> for LedgerState {
    type Error = Infallible;

    fn read(&self, key: &LedgerKey) -> Result<Option<LedgerValue>, Infallible> {
        Ok(self.map.get(key).copied())
    }
}

// ---------------------------------------------------------- transactions

/// What a transaction does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `from` (the sender) pays `amount` to `to`.
    Transfer { from: u32, to: u32, amount: u64 },
    /// `owner` (the sender) lets `spender` spend up to `amount` of its
    /// balance (replacing what was left of an earlier approval).
    Approve {
        owner: u32,
        spender: u32,
        amount: u64,
    },
    /// `spender` (the sender, who pays the fee) pays `amount` of `owner`'s
    /// balance to `to`.
    TransferFrom {
        spender: u32,
        owner: u32,
        to: u32,
        amount: u64,
    },
    /// `issuer` (the sender; must be the ledger's) creates `amount` for `to`.
    Mint { issuer: u32, to: u32, amount: u64 },
}

impl Op {
    /// Who signs it (whose nonce it consumes, who pays the fee).
    pub fn sender(&self) -> u32 {
        match *self {
            Op::Transfer { from, .. } => from,
            Op::Approve { owner, .. } => owner,
            Op::TransferFrom { spender, .. } => spender,
            Op::Mint { issuer, .. } => issuer,
        }
    }
}

/// A transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tx {
    /// Must equal the sender's nonce.
    pub nonce: u64,
    /// What it does.
    pub op: Op,
}

/// The wire format's version byte.
pub const WIRE_VERSION: u8 = 1;

/// Why bytes are not a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// No bytes.
    Empty,
    /// Unknown version byte.
    Version(u8),
    /// Unknown operation tag.
    Kind(u8),
    /// The bytes end early: `needed` bytes, `got` given.
    Truncated { needed: usize, got: usize },
    /// `extra` bytes after the transaction.
    Trailing { extra: usize },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Empty => write!(f, "empty transaction"),
            DecodeError::Version(v) => write!(f, "unknown wire version {v}"),
            DecodeError::Kind(k) => write!(f, "unknown operation tag {k}"),
            DecodeError::Truncated { needed, got } => {
                write!(f, "truncated: {needed} bytes needed, {got} given")
            }
            DecodeError::Trailing { extra } => write!(f, "{extra} trailing bytes"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Reads fixed-size little-endian fields.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let truncated = DecodeError::Truncated {
            needed: self.at + N,
            got: self.bytes.len(),
        };
        let field = self
            .bytes
            .get(self.at..self.at + N)
            .ok_or_else(|| truncated.clone())?;
        self.at += N;
        field.try_into().map_err(|_| truncated)
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        self.take().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        self.take().map(u64::from_le_bytes)
    }
}

impl Tx {
    /// `[version][tag][nonce u64][accounts u32...][amount u64]`, little-endian;
    /// tags 1 Transfer (from, to), 2 Approve (owner, spender), 3
    /// TransferFrom (spender, owner, to), 4 Mint (issuer, to).
    pub fn encode(&self) -> Vec<u8> {
        let (tag, accounts, amount): (u8, SmallVec<[u32; 3]>, u64) = match self.op {
            Op::Transfer { from, to, amount } => (1, [from, to].into_iter().collect(), amount),
            Op::Approve {
                owner,
                spender,
                amount,
            } => (2, [owner, spender].into_iter().collect(), amount),
            Op::TransferFrom {
                spender,
                owner,
                to,
                amount,
            } => (3, [spender, owner, to].into_iter().collect(), amount),
            Op::Mint { issuer, to, amount } => (4, [issuer, to].into_iter().collect(), amount),
        };
        let mut out = Vec::with_capacity(30);
        out.push(WIRE_VERSION);
        out.push(tag);
        out.extend_from_slice(&self.nonce.to_le_bytes());
        for a in accounts {
            out.extend_from_slice(&a.to_le_bytes());
        }
        out.extend_from_slice(&amount.to_le_bytes());
        out
    }

    /// The transaction `bytes` encode (exactly: no trailing bytes).
    pub fn decode(bytes: &[u8]) -> Result<Tx, DecodeError> {
        let (&version, rest) = bytes.split_first().ok_or(DecodeError::Empty)?;
        if version != WIRE_VERSION {
            return Err(DecodeError::Version(version));
        }
        let tag = *rest.first().ok_or(DecodeError::Truncated {
            needed: 2,
            got: bytes.len(),
        })?;
        // The tag first: an unknown one is reported as such, however short.
        let count = match tag {
            1 | 2 | 4 => 2,
            3 => 3,
            other => return Err(DecodeError::Kind(other)),
        };
        let mut c = Cursor { bytes, at: 2 };
        let nonce = c.u64()?;
        let mut a = [0u32; 3];
        for account in a.iter_mut().take(count) {
            *account = c.u32()?;
        }
        let amount = c.u64()?;
        let [x, y, z] = a;
        let op = match tag {
            1 => Op::Transfer {
                from: x,
                to: y,
                amount,
            },
            2 => Op::Approve {
                owner: x,
                spender: y,
                amount,
            },
            3 => Op::TransferFrom {
                spender: x,
                owner: y,
                to: z,
                amount,
            },
            // 4: every other tag returned above.
            _ => Op::Mint {
                issuer: x,
                to: y,
                amount,
            },
        };
        match bytes.len() - c.at {
            0 => Ok(Tx { nonce, op }),
            extra => Err(DecodeError::Trailing { extra }),
        }
    }
}

/// A decoded transaction with its declared accesses (what admission keeps).
#[derive(Clone, Debug)]
pub struct CheckedTx {
    /// The transaction.
    pub tx: Tx,
    /// What it may touch, derived from `tx` alone.
    pub accesses: Accesses<LedgerKey>,
}

// ----------------------------------------------------------------- rules

/// Why a transaction is orphaned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Its nonce (`got`) is not the sender's (`expected`).
    BadNonce { expected: u64, got: u64 },
    /// `account` cannot pay its part (amount and/or fee: `required`).
    Insufficient {
        account: u32,
        balance: u64,
        required: u128,
    },
    /// `owner` never approved `spender`.
    NoAllowance { owner: u32, spender: u32 },
    /// The allowance (`remaining`) is smaller than the amount.
    AllowanceExceeded { remaining: u64, requested: u64 },
    /// A mint by `sender`, who is not the issuer.
    NotIssuer { sender: u32 },
    /// A mint over [`SUPPLY_CAP`].
    SupplyCap { supply: u64, requested: u64 },
}

impl Failure {
    /// The reason's name (for reports).
    pub fn name(&self) -> &'static str {
        match self {
            Failure::BadNonce { .. } => "BadNonce",
            Failure::Insufficient { .. } => "Insufficient",
            Failure::NoAllowance { .. } => "NoAllowance",
            Failure::AllowanceExceeded { .. } => "AllowanceExceeded",
            Failure::NotIssuer { .. } => "NotIssuer",
            Failure::SupplyCap { .. } => "SupplyCap",
        }
    }
}

/// What the rules know of a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LedgerBlock {
    /// Its height.
    pub height: u64,
    /// Who is credited the block's fees.
    pub collector: u32,
}

/// The accounts a transaction debits, each once, with the total.
type Debits = SmallVec<[(u32, u128); 2]>;

/// The ledger's rules and parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ledger {
    /// The only account that may mint.
    pub issuer: u32,
    /// The flat fee of every applied transaction.
    pub fee: u64,
    /// Rounds of a deterministic busy loop every transaction runs before
    /// its checks (0: none; about 1.5 ns a round on the reference
    /// machine): stands for costly execution (a VM call), to show the
    /// executor where a transaction costs more than its plan.
    pub work: u32,
}

impl Ledger {
    /// Declares what `tx` touches (from the transaction alone).
    pub fn check(&self, tx: Tx) -> CheckedTx {
        use LedgerKey::{Allowance as Grant, Balance, Nonce, Supply};
        let mut a = Accesses::new();
        match tx.op {
            Op::Transfer { from, to, .. } => {
                // A payroll's proof turns the sender's own keys into adds.
                a.push_group(Nonce(from), Mode::Write, Mode::Add);
                a.push_provable(Balance(from), Mode::Write, Mode::Add);
                a.push(Balance(to), Mode::Add);
            }
            Op::Approve { owner, spender, .. } => {
                a.push_group(Nonce(owner), Mode::Write, Mode::Write);
                a.push(Balance(owner), Mode::Write);
                a.push(Grant { owner, spender }, Mode::Write);
            }
            Op::TransferFrom {
                spender, owner, to, ..
            } => {
                a.push_group(Nonce(spender), Mode::Write, Mode::Write);
                a.push(Balance(spender), Mode::Write);
                a.push(Grant { owner, spender }, Mode::Write);
                a.push(Balance(owner), Mode::Write);
                a.push(Balance(to), Mode::Add);
            }
            // Anyone else's mint fails before reading anything.
            Op::Mint { issuer, .. } if issuer != self.issuer => a.push(Nonce(issuer), Mode::Read),
            Op::Mint { issuer, to, .. } => {
                a.push_group(Nonce(issuer), Mode::Write, Mode::Write);
                a.push(Balance(issuer), Mode::Write);
                a.push(Supply, Mode::Write);
                a.push(Balance(to), Mode::Add);
            }
        }
        CheckedTx { tx, accesses: a }
    }

    /// Admission: decodes `bytes` and declares the transaction's accesses.
    pub fn admit(&self, bytes: &[u8]) -> Result<CheckedTx, DecodeError> {
        Tx::decode(bytes).map(|tx| self.check(tx))
    }

    /// What `op` debits, per account (amounts as `u128`: a hostile amount
    /// plus the fee does not overflow, it is just insufficient).
    fn debits(&self, op: &Op) -> Debits {
        let fee = u128::from(self.fee);
        let mut d = Debits::new();
        let mut debit = |account: u32, amount: u128| match d.iter_mut().find(|(a, _)| *a == account)
        {
            Some((_, total)) => *total += amount,
            None => d.push((account, amount)),
        };
        match *op {
            Op::Transfer { from, amount, .. } => debit(from, u128::from(amount) + fee),
            Op::Approve { owner, .. } => debit(owner, fee),
            Op::TransferFrom {
                spender,
                owner,
                amount,
                ..
            } => {
                debit(spender, fee);
                debit(owner, u128::from(amount));
            }
            Op::Mint { issuer, .. } => debit(issuer, fee),
        }
        d
    }

    /// Every write of an applied transaction, as deltas. `grant` is the
    /// allowance record the checks read (Approve, TransferFrom).
    fn apply<V: View<LedgerKey, LedgerValue>>(
        &self,
        tx: &Tx,
        debits: &Debits,
        grant: Option<Allowance>,
        view: &mut V,
    ) -> StateResult<(), V::ReadError> {
        view.add(&LedgerKey::Nonce(tx.op.sender()), 1)?;
        for &(account, total) in debits {
            let amount =
                u64::try_from(total).map_err(|_| StateError::Invariant("debit over u64"))?;
            view.sub(&LedgerKey::Balance(account), amount)?;
        }
        view.sum(SUM_FEES, self.fee)?;
        match tx.op {
            Op::Transfer { to, amount, .. } => view.add(&LedgerKey::Balance(to), amount),
            Op::Approve {
                owner,
                spender,
                amount,
            } => {
                let record = Allowance {
                    remaining: amount,
                    spent: grant.map_or(0, |g| g.spent),
                };
                let key = LedgerKey::Allowance { owner, spender };
                view.set(&key, LedgerValue::Allowance(record))
            }
            Op::TransferFrom {
                spender,
                owner,
                to,
                amount,
            } => {
                let g = grant.ok_or(StateError::Invariant("transfer-from without allowance"))?;
                let record = Allowance {
                    remaining: g
                        .remaining
                        .checked_sub(amount)
                        .ok_or(StateError::Invariant("allowance below zero"))?,
                    spent: g.spent.saturating_add(amount),
                };
                let key = LedgerKey::Allowance { owner, spender };
                view.set(&key, LedgerValue::Allowance(record))?;
                view.add(&LedgerKey::Balance(to), amount)
            }
            Op::Mint { to, amount, .. } => {
                view.add(&LedgerKey::Supply, amount)?;
                view.add(&LedgerKey::Balance(to), amount)?;
                view.sum(SUM_MINTED, amount)
            }
        }
    }
}

/// The allowance record a value holds.
fn allowance_of<E>(value: Option<LedgerValue>) -> StateResult<Option<Allowance>, E> {
    match value {
        None => Ok(None),
        Some(LedgerValue::Allowance(a)) => Ok(Some(a)),
        Some(LedgerValue::Amount(_)) => Err(StateError::Invariant("allowance key holds a counter")),
    }
}

impl Chain for Ledger {
    type Key = LedgerKey;
    type Value = LedgerValue;
    type Tx = CheckedTx;
    type Failure = Failure;
    type Block = LedgerBlock;

    /// Fees ([`SUM_FEES`]) and minted ([`SUM_MINTED`]).
    const SUMS: usize = 2;

    fn accesses<'t>(&self, tx: &'t CheckedTx) -> &'t Accesses<LedgerKey> {
        &tx.accesses
    }

    fn block_accesses(&self, block: &LedgerBlock) -> Accesses<LedgerKey> {
        let mut a = Accesses::new();
        a.push(LedgerKey::Balance(block.collector), Mode::Write);
        a
    }

    /// Nothing happens before the transactions (no block reward).
    fn begin_block<V: View<LedgerKey, LedgerValue>>(
        &self,
        _block: &LedgerBlock,
        _view: &mut V,
    ) -> StateResult<(), V::ReadError> {
        Ok(())
    }

    fn execute<V: View<LedgerKey, LedgerValue>>(
        &self,
        _block: &LedgerBlock,
        checked: &CheckedTx,
        proven: bool,
        view: &mut V,
    ) -> StateResult<Result<(), Failure>, V::ReadError> {
        let tx = &checked.tx;
        if self.work > 0 {
            let mut x = tx.nonce ^ 0x9e37_79b9_7f4a_7c15;
            for _ in 0..self.work {
                x = x.rotate_left(7).wrapping_mul(0x2545_f491_4f6c_dd1d) ^ 0x5bd1_e995;
            }
            std::hint::black_box(x);
        }
        if let Op::Mint { issuer, .. } = tx.op {
            if issuer != self.issuer {
                return Ok(Err(Failure::NotIssuer { sender: issuer }));
            }
        }
        let debits = self.debits(&tx.op);
        if proven {
            // `prove` established, on the block-start state, that every
            // transfer of this sender succeeds: no check, same writes.
            if !matches!(tx.op, Op::Transfer { .. }) {
                return Err(StateError::Invariant("only transfers are proven"));
            }
            return self.apply(tx, &debits, None, view).map(Ok);
        }

        let nonce = view.counter(&LedgerKey::Nonce(tx.op.sender()))?;
        if tx.nonce != nonce {
            return Ok(Err(Failure::BadNonce {
                expected: nonce,
                got: tx.nonce,
            }));
        }
        let grant = match tx.op {
            Op::Approve { owner, spender, .. } => {
                allowance_of(view.get(&LedgerKey::Allowance { owner, spender })?)?
            }
            Op::TransferFrom {
                spender,
                owner,
                amount,
                ..
            } => match allowance_of(view.get(&LedgerKey::Allowance { owner, spender })?)? {
                None => return Ok(Err(Failure::NoAllowance { owner, spender })),
                Some(g) if g.remaining < amount => {
                    return Ok(Err(Failure::AllowanceExceeded {
                        remaining: g.remaining,
                        requested: amount,
                    }))
                }
                Some(g) => Some(g),
            },
            Op::Transfer { .. } | Op::Mint { .. } => None,
        };
        for &(account, required) in &debits {
            let balance = view.counter(&LedgerKey::Balance(account))?;
            if u128::from(balance) < required {
                return Ok(Err(Failure::Insufficient {
                    account,
                    balance,
                    required,
                }));
            }
        }
        if let Op::Mint { amount, .. } = tx.op {
            let supply = view.counter(&LedgerKey::Supply)?;
            if u128::from(supply) + u128::from(amount) > u128::from(SUPPLY_CAP) {
                return Ok(Err(Failure::SupplyCap {
                    supply,
                    requested: amount,
                }));
            }
        }
        self.apply(tx, &debits, grant, view)?;
        Ok(Ok(()))
    }

    /// The block's fees go to its collector.
    fn end_block<V: View<LedgerKey, LedgerValue>>(
        &self,
        block: &LedgerBlock,
        sums: &[u64],
        view: &mut V,
    ) -> StateResult<(), V::ReadError> {
        let fees = sums
            .get(SUM_FEES)
            .copied()
            .ok_or(StateError::Invariant("no fee sum"))?;
        view.add(&LedgerKey::Balance(block.collector), fees)
    }

    /// A payroll: one sender's transfers only, nonces consecutive from its
    /// block-start nonce, all paid by its block-start balance. Others only
    /// credit that balance (a `TransferFrom` spending it writes it, and the
    /// engine then does not use the proof), so each succeeds in block
    /// order, and their debits never go below zero in any order.
    fn prove<R: ProofView<LedgerKey, LedgerValue>>(
        &self,
        _block: &LedgerBlock,
        group: &[&CheckedTx],
        view: &mut R,
    ) -> StateResult<bool, R::ReadError> {
        let Some(first) = group.first() else {
            return Ok(false);
        };
        let sender = first.tx.op.sender();
        let mut total = 0u128;
        for c in group {
            match c.tx.op {
                Op::Transfer { from, amount, .. } if from == sender => {
                    total += u128::from(amount) + u128::from(self.fee);
                }
                _ => return Ok(false),
            }
        }
        let start = view.counter(&LedgerKey::Nonce(sender))?;
        let consecutive = group
            .iter()
            .enumerate()
            .all(|(k, c)| start.checked_add(k as u64) == Some(c.tx.nonce));
        Ok(consecutive && total <= u128::from(view.counter(&LedgerKey::Balance(sender))?))
    }
}

// ------------------------------------------------ the in-order interpreter

/// The rules run in block order on a plain overlay, with no engine and no
/// declaration checks: the workload's wallet (what each sender's next nonce
/// and balance are) and a third opinion on every block's result.
pub struct InOrder<'s> {
    base: &'s LedgerState,
    changes: HashMap<LedgerKey, LedgerValue>,
    sums: [u64; MAX_SUMS],
}

impl<'s> InOrder<'s> {
    /// An empty overlay on `base`.
    pub fn new(base: &'s LedgerState) -> Self {
        InOrder {
            base,
            changes: HashMap::new(),
            sums: [0; MAX_SUMS],
        }
    }

    fn value(&self, key: &LedgerKey) -> Option<LedgerValue> {
        self.changes
            .get(key)
            .or_else(|| self.base.map.get(key))
            .copied()
    }

    /// The counter `key` holds now (0 if absent or not a counter).
    pub fn peek(&self, key: &LedgerKey) -> u64 {
        self.value(key).and_then(|v| v.as_counter()).unwrap_or(0)
    }

    /// What `spender` may spend of `owner`'s balance now, if approved.
    pub fn allowance(&self, owner: u32, spender: u32) -> Option<Allowance> {
        match self.value(&LedgerKey::Allowance { owner, spender }) {
            Some(LedgerValue::Allowance(a)) => Some(a),
            _ => None,
        }
    }

    /// The block sums so far ([`Ledger::SUMS`] of them).
    pub fn sums(&self) -> Vec<u64> {
        self.sums[..Ledger::SUMS].to_vec()
    }

    /// The base state with the overlay's changes.
    pub fn into_state(self) -> LedgerState {
        let mut state = self.base.clone();
        state.map.extend(self.changes);
        state
    }
}

impl View<LedgerKey, LedgerValue> for InOrder<'_> {
    type ReadError = Infallible;

    fn get(&mut self, key: &LedgerKey) -> StateResult<Option<LedgerValue>, Infallible> {
        if key.is_counter() {
            return self.counter(key).map(|n| Some(LedgerValue::Amount(n)));
        }
        Ok(self.value(key))
    }

    fn counter(&mut self, key: &LedgerKey) -> StateResult<u64, Infallible> {
        match self.value(key) {
            None => Ok(0),
            Some(v) => v
                .as_counter()
                .ok_or_else(|| StateError::NotCounter(format!("{key:?}"))),
        }
    }

    fn set(&mut self, key: &LedgerKey, value: LedgerValue) -> StateResult<(), Infallible> {
        self.changes.insert(*key, value);
        Ok(())
    }

    fn add(&mut self, key: &LedgerKey, amount: u64) -> StateResult<(), Infallible> {
        let n = self.counter(key)?;
        let n = n.checked_add(amount).ok_or(StateError::Overflow("add"))?;
        self.set(key, LedgerValue::Amount(n))
    }

    fn sub(&mut self, key: &LedgerKey, amount: u64) -> StateResult<(), Infallible> {
        let n = self.counter(key)?;
        let n = n.checked_sub(amount).ok_or(StateError::Underflow("sub"))?;
        self.set(key, LedgerValue::Amount(n))
    }

    fn sum(&mut self, slot: usize, amount: u64) -> StateResult<(), Infallible> {
        let s = self
            .sums
            .get_mut(slot)
            .ok_or(StateError::Invariant("sum slot"))?;
        *s = s.checked_add(amount).ok_or(StateError::Overflow("sum"))?;
        Ok(())
    }
}

// -------------------------------------------------------------- workload

/// Who transacts with whom.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// Every operation, between accounts drawn uniformly from `accounts`
    /// (fewer accounts: more contention).
    Contended { accounts: u32 },
    /// Transaction `i` of a block touches only accounts `2i` and `2i + 1`.
    Disjoint,
    /// `payers` send transfers only, to `payees`, who never send (proofs
    /// apply).
    Payroll { payers: u32, payees: u32 },
}

/// A workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Workload {
    /// Who transacts with whom.
    pub shape: Shape,
    /// Transactions per block.
    pub txs_per_block: usize,
    /// Percentage of deliberately bad transactions (wrong nonce, overdraw,
    /// missing allowance, mint by a stranger).
    pub fault_percent: u32,
}

impl Workload {
    /// Accounts at genesis.
    pub fn accounts(&self) -> u32 {
        match self.shape {
            Shape::Contended { accounts } => accounts.max(1),
            Shape::Disjoint => u32::try_from(self.txs_per_block * 2).unwrap_or(u32::MAX),
            Shape::Payroll { payers, payees } => payers.max(1) + payees.max(1),
        }
    }
}

/// A deliberate fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    Nonce,
    Overdraw,
    Stranger,
}

/// A block of the workload, and what in-order execution makes of it.
pub struct GeneratedBlock {
    /// The block.
    pub block: LedgerBlock,
    /// Its transactions, in block order.
    pub txs: Vec<Tx>,
    /// Each transaction's status in order.
    pub expected: Vec<Result<(), Failure>>,
    /// The block sums.
    pub expected_sums: Vec<u64>,
    /// The state after the block.
    pub expected_state: LedgerState,
}

/// Generates seeded blocks of a workload against the current state.
pub struct Generator {
    ledger: Ledger,
    workload: Workload,
    rng: ChaCha8Rng,
    /// Pairs approved so far (owner, spender).
    approved: Vec<(u32, u32)>,
    height: u64,
}

impl Generator {
    /// A generator seeded with `seed`.
    pub fn new(ledger: Ledger, workload: Workload, seed: u64) -> Self {
        Generator {
            ledger,
            workload,
            rng: ChaCha8Rng::seed_from_u64(seed),
            approved: Vec::new(),
            height: 0,
        }
    }

    /// The next block, on `state` (the state its parent left).
    pub fn next_block(&mut self, state: &LedgerState) -> GeneratedBlock {
        self.height += 1;
        let block = LedgerBlock {
            height: self.height,
            collector: self.rng.gen_range(0..self.workload.accounts()),
        };
        let ledger = self.ledger;
        let mut wallet = InOrder::new(state);
        let n = self.workload.txs_per_block;
        let (mut txs, mut expected) = (Vec::with_capacity(n), Vec::with_capacity(n));
        ledger
            .begin_block(&block, &mut wallet)
            .expect("begin_block in order");
        for i in 0..n {
            let tx = self.pick(i, &wallet);
            let status = ledger
                .execute(&block, &ledger.check(tx), false, &mut wallet)
                .expect("a generated transaction breaks no invariant");
            txs.push(tx);
            expected.push(status);
        }
        ledger
            .end_block(&block, &wallet.sums(), &mut wallet)
            .expect("end_block in order");
        let expected_sums = wallet.sums();
        GeneratedBlock {
            block,
            txs,
            expected,
            expected_sums,
            expected_state: wallet.into_state(),
        }
    }

    fn account(&mut self) -> u32 {
        self.rng.gen_range(0..self.workload.accounts())
    }

    /// An amount `account` can pay (on top of `reserve`), or one it cannot.
    fn amount(&mut self, w: &InOrder<'_>, account: u32, reserve: u64, fault: bool) -> u64 {
        let balance = w.peek(&LedgerKey::Balance(account));
        if fault {
            return if self.rng.gen_bool(0.2) {
                u64::MAX
            } else {
                balance.saturating_add(1)
            };
        }
        let spendable = balance.saturating_sub(reserve).clamp(1, 1_000);
        self.rng.gen_range(1..=spendable)
    }

    fn pick(&mut self, i: usize, w: &InOrder<'_>) -> Tx {
        let fee = self.ledger.fee;
        let fault = if self.rng.gen_range(0..100) < self.workload.fault_percent {
            let faults = [Fault::Nonce, Fault::Overdraw, Fault::Stranger];
            faults.get(self.rng.gen_range(0..faults.len())).copied()
        } else {
            None
        };
        let overdraw = fault == Some(Fault::Overdraw);
        let stranger = fault == Some(Fault::Stranger);
        let roll = self.rng.gen_range(0..100);
        let op = match self.workload.shape {
            Shape::Payroll { payers, payees } => {
                let from = self.rng.gen_range(0..payers.max(1));
                let to = payers.max(1) + self.rng.gen_range(0..payees.max(1));
                let amount = self.amount(w, from, fee, overdraw);
                Op::Transfer { from, to, amount }
            }
            Shape::Disjoint => {
                let (a, b) = (2 * i as u32, 2 * i as u32 + 1);
                match roll {
                    0..=49 => Op::Transfer {
                        from: a,
                        to: b,
                        amount: self.amount(w, a, fee, overdraw),
                    },
                    50..=69 => Op::Approve {
                        owner: a,
                        spender: b,
                        amount: self.rng.gen_range(1..=20_000),
                    },
                    _ => {
                        // A stranger spends in the wrong direction (never approved).
                        let (owner, spender) = if stranger { (b, a) } else { (a, b) };
                        self.spend(w, owner, spender, b, overdraw)
                    }
                }
            }
            Shape::Contended { accounts } => match roll {
                0..=54 => {
                    let (from, to) = (self.account(), self.account());
                    Op::Transfer {
                        from,
                        to,
                        amount: self.amount(w, from, fee, overdraw),
                    }
                }
                55..=69 => {
                    let (owner, spender) = (self.account(), self.account());
                    if !self.approved.contains(&(owner, spender)) {
                        self.approved.push((owner, spender));
                    }
                    Op::Approve {
                        owner,
                        spender,
                        amount: self.rng.gen_range(1..=20_000),
                    }
                }
                70..=91 => {
                    let (owner, spender) = if stranger || self.approved.is_empty() {
                        (self.account(), self.account())
                    } else {
                        self.approved[self.rng.gen_range(0..self.approved.len())]
                    };
                    let to = self.account();
                    self.spend(w, owner, spender, to, overdraw)
                }
                _ => {
                    let issuer = if stranger && accounts > 1 {
                        let other = self.rng.gen_range(1..accounts);
                        (self.ledger.issuer + other) % accounts
                    } else {
                        self.ledger.issuer
                    };
                    let amount = if overdraw {
                        SUPPLY_CAP
                    } else {
                        self.rng.gen_range(1..=10_000)
                    };
                    let to = self.account();
                    Op::Mint { issuer, to, amount }
                }
            },
        };
        let mut nonce = w.peek(&LedgerKey::Nonce(op.sender()));
        if fault == Some(Fault::Nonce) {
            nonce = if nonce > 0 && self.rng.gen_bool(0.5) {
                nonce - 1
            } else {
                nonce + 1 + self.rng.gen_range(0..3)
            };
        }
        Tx { nonce, op }
    }

    /// A `TransferFrom` within the allowance and the owner's balance (or,
    /// `overdraw`, just over the allowance).
    fn spend(&mut self, w: &InOrder<'_>, owner: u32, spender: u32, to: u32, overdraw: bool) -> Op {
        let remaining = w.allowance(owner, spender).map_or(0, |a| a.remaining);
        let amount = if overdraw {
            remaining.saturating_add(1)
        } else {
            let reserve = if owner == spender { self.ledger.fee } else { 0 };
            let balance = w.peek(&LedgerKey::Balance(owner)).saturating_sub(reserve);
            self.rng
                .gen_range(1..=remaining.min(balance).clamp(1, 1_000))
        };
        Op::TransferFrom {
            spender,
            owner,
            to,
            amount,
        }
    }
}

// ------------------------------------------------------------------ main

/// Runs `blocks` blocks of `workload`, printing the comparison.
fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| {
            a.parse()
                .expect("arguments: [accounts] [txs] [blocks] [work]")
        })
        .collect();
    let arg = |i: usize, default: u64| args.get(i).copied().unwrap_or(default);
    let accounts = u32::try_from(arg(0, 64)).expect("accounts fit a u32");
    let txs_per_block = usize::try_from(arg(1, 2000)).expect("txs fit a usize");
    let blocks = usize::try_from(arg(2, 8)).expect("blocks fit a usize");
    let work = u32::try_from(arg(3, 0)).expect("work fits a u32");
    const THREADS: usize = 2;

    let ledger = Ledger {
        issuer: 0,
        fee: 1,
        work,
    };
    let workload = Workload {
        shape: Shape::Contended { accounts },
        txs_per_block,
        fault_percent: 3,
    };
    let config = EngineConfig {
        costly_reads: false,
        ..EngineConfig::default()
    };
    // One pool for both parallel executors (idle workers of a second pool
    // would spin on the same cores).
    let pool = std::sync::Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(THREADS)
            .build()
            .expect("thread pool"),
    );
    let parallel = Executor::<Ledger>::on_pool(pool.clone(), config).always_parallel();
    // What a node would run: the same pool with the speed guards on.
    let guarded = Executor::<Ledger>::on_pool(pool, config);
    let sequential = Executor::<Ledger>::on_current_pool(config);

    let mut generator = Generator::new(ledger, workload, 0x70c3);
    let genesis = LedgerState::genesis(workload.accounts(), GENESIS_BALANCE);
    let (mut par_state, mut seq_state) = (genesis.clone(), genesis);
    let (mut par_time, mut seq_time) = (Duration::ZERO, Duration::ZERO);
    let mut guarded_time = Duration::ZERO;
    let mut orphans: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut proven = 0;
    let mut guarded_paths: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..blocks {
        let generated = generator.next_block(&seq_state);
        // Admission: the wire bytes, decoded and declared.
        let wire: Vec<Vec<u8>> = generated.txs.iter().map(Tx::encode).collect();
        let txs: Vec<CheckedTx> = wire
            .iter()
            .map(|bytes| ledger.admit(bytes))
            .collect::<Result<_, _>>()
            .expect("generated transactions decode");
        let truncated = wire.first().map(|b| ledger.admit(&b[..b.len() - 1]));
        assert!(matches!(
            truncated,
            None | Some(Err(DecodeError::Truncated { .. }))
        ));

        let start = Instant::now();
        let par: Executed<Ledger> = parallel
            .execute(&ledger, &generated.block, &txs, &par_state)
            .expect("parallel execution");
        par_time += start.elapsed();
        let start = Instant::now();
        let seq = sequential
            .execute_sequential(&ledger, &generated.block, &txs, &seq_state)
            .expect("sequential execution");
        seq_time += start.elapsed();

        // On the state the sequential engine just read (equal to
        // `par_state`): on `par_state`, which the parallel executor had just
        // written from both cores, the guarded executor paid cross-core
        // cache misses the sequential engine did not, 10-15% of these
        // 0.25 ms blocks, whichever path it took.
        let start = Instant::now();
        let node = guarded
            .execute(&ledger, &generated.block, &txs, &seq_state)
            .expect("guarded execution");
        guarded_time += start.elapsed();
        let path = format!("{} ({})", node.stats.path.name(), node.stats.reason.name());
        *guarded_paths.entry(path).or_default() += 1;
        assert_eq!(node.statuses, seq.statuses, "guarded statuses");
        assert_eq!(node.writes.sorted(), seq.writes.sorted(), "guarded writes");

        assert!(par.stats.parallel_engine, "the parallel engine ran");
        assert_eq!(par.statuses, seq.statuses, "statuses");
        assert_eq!(par.sums, seq.sums, "block sums");
        assert_eq!(par.writes.sorted(), seq.writes.sorted(), "writes");
        assert_eq!(seq.statuses, generated.expected, "in-order statuses");
        assert_eq!(seq.sums, generated.expected_sums, "in-order sums");
        par_state.apply(&par.writes);
        seq_state.apply(&seq.writes);
        assert_eq!(par_state, seq_state, "state after block");
        assert_eq!(seq_state, generated.expected_state, "in-order state");
        assert_eq!(
            seq_state.total_balances(),
            u128::from(seq_state.counter(&LedgerKey::Supply)),
            "balances add up to the supply"
        );
        for failure in seq.statuses.iter().filter_map(|s| s.as_ref().err()) {
            *orphans.entry(failure.name()).or_default() += 1;
        }
        proven += par.stats.proven;
    }
    let orphaned: usize = orphans.values().sum();
    let reasons: Vec<String> = orphans.iter().map(|(k, n)| format!("{k} {n}")).collect();
    println!(
        "token_ledger: {blocks} blocks x {txs_per_block} txs over {} accounts: parallel \
         ({THREADS} threads, parallel engine) equals sequential; {orphaned} orphaned ({})",
        workload.accounts(),
        reasons.join(", ")
    );
    println!(
        "token_ledger: execute time, all blocks: parallel {:.2} ms, sequential {:.2} ms; \
         {proven} transactions proven; supply {}",
        par_time.as_secs_f64() * 1e3,
        seq_time.as_secs_f64() * 1e3,
        seq_state.counter(&LedgerKey::Supply)
    );
    let paths: Vec<String> = guarded_paths
        .iter()
        .map(|(path, n)| format!("{n} x {path}"))
        .collect();
    println!(
        "token_ledger: with the speed guards on (a node's executor), the blocks ran: {}",
        paths.join(", ")
    );
    println!(
        "token_ledger: guarded executor {:.2} ms, sequential engine {:.2} ms",
        guarded_time.as_secs_f64() * 1e3,
        seq_time.as_secs_f64() * 1e3
    );
}
