//! The SPEC chain's own errors. Every public enum is `#[non_exhaustive]`.
//!
//! * [`DecodeError`]: why bytes are not a transaction (the `malformed` code).
//! * [`StatelessError`]: SPEC §5 codes; one of them rejects the whole block.
//! * [`TxFailure`]: SPEC §6 codes; one of them orphans the transaction.
//! * [`InputError`]: bad files, JSON or hex (blocks, genesis).
//! * [`InitError`]: why a store could not be initialised with a genesis.

use tos_storage::{Asset, StorageError};

/// Why bytes do not decode as a transaction (SPEC §2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Input ended inside a field starting at byte `at`.
    #[error("truncated at byte {at}")]
    Truncated {
        /// Offset of the field that did not fit.
        at: usize,
    },
    /// Bytes left after the signature.
    #[error("{extra} trailing byte(s)")]
    TrailingBytes {
        /// How many.
        extra: usize,
    },
    /// Version other than 0.
    #[error("unsupported version {0}")]
    UnsupportedVersion(u8),
    /// Payload tag not in {0, 1, 2, 3, 4, 5}.
    #[error("unknown payload tag {0}")]
    UnknownPayloadTag(u8),
    /// Energy sub-tag not in {0, 1}.
    #[error("unknown energy sub-tag {0}")]
    UnknownEnergyTag(u8),
    /// Fee type not in {0, 1}.
    #[error("unknown fee type {0}")]
    UnknownFeeType(u8),
    /// An option flag other than 0 or 1.
    #[error("option flag {flag} at byte {at}")]
    BadOptionFlag {
        /// Offset of the flag.
        at: usize,
        /// The flag value.
        flag: u8,
    },
    /// Transfers with count 0.
    #[error("transfers with no output")]
    NoTransfers,
    /// Multisig proof with count 0.
    #[error("multisig proof with no signature")]
    EmptyMultisigProof,
}

/// A SPEC §5 failure: the block holding the transaction is rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StatelessError {
    /// `malformed`.
    #[error("malformed: {0}")]
    Malformed(DecodeError),
    /// `tx_too_large`.
    #[error("tx_too_large: {size} bytes")]
    TxTooLarge {
        /// Encoded size.
        size: usize,
    },
    /// `invalid_payload`.
    #[error("invalid_payload: {0}")]
    InvalidPayload(&'static str),
    /// `amount_overflow`.
    #[error("amount_overflow")]
    AmountOverflow,
    /// `invalid_fee_type`.
    #[error("invalid_fee_type")]
    InvalidFeeType,
    /// `fee_too_low`.
    #[error("fee_too_low: fee {fee} < required {required}")]
    FeeTooLow {
        /// Fee given.
        fee: u64,
        /// Minimum fee.
        required: u64,
    },
    /// `reference_in_future`.
    #[error("reference_in_future: {reference} > {parent}")]
    ReferenceInFuture {
        /// The transaction's reference topoheight.
        reference: u64,
        /// The topoheight the block executes on.
        parent: u64,
    },
    /// `invalid_signature`.
    #[error("invalid_signature")]
    InvalidSignature,
    /// `block_gas_exceeded`: the `max_gas` of this invocation and of every
    /// earlier one of the block add up to more than `MAX_BLOCK_GAS`.
    #[error("block_gas_exceeded: {total} > {limit}")]
    BlockGasExceeded {
        /// The running total, this invocation included.
        total: u64,
        /// `MAX_BLOCK_GAS`.
        limit: u64,
    },
}

impl StatelessError {
    /// The SPEC code.
    pub fn code(&self) -> &'static str {
        match self {
            StatelessError::Malformed(_) => "malformed",
            StatelessError::TxTooLarge { .. } => "tx_too_large",
            StatelessError::InvalidPayload(_) => "invalid_payload",
            StatelessError::AmountOverflow => "amount_overflow",
            StatelessError::InvalidFeeType => "invalid_fee_type",
            StatelessError::FeeTooLow { .. } => "fee_too_low",
            StatelessError::ReferenceInFuture { .. } => "reference_in_future",
            StatelessError::InvalidSignature => "invalid_signature",
            StatelessError::BlockGasExceeded { .. } => "block_gas_exceeded",
        }
    }
}

/// A SPEC §6 failure of a transaction. Most orphan it (it changes
/// nothing); the three contract execution codes ([`TxFailure::keeps_fee`])
/// keep its nonce and fee charged and undo everything else.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TxFailure {
    /// `nonce_mismatch`.
    #[error("nonce_mismatch: expected {expected}, got {got}")]
    NonceMismatch {
        /// The source's nonce.
        expected: u64,
        /// The transaction's nonce.
        got: u64,
    },
    /// `multisig_invalid`.
    #[error("multisig_invalid: {0}")]
    MultisigInvalid(&'static str),
    /// `multisig_not_configured`.
    #[error("multisig_not_configured")]
    MultisigNotConfigured,
    /// `insufficient_unlocked_frozen`.
    #[error("insufficient_unlocked_frozen: {unlocked} unlocked < {requested}")]
    InsufficientUnlockedFrozen {
        /// Sum of unlocked records.
        unlocked: u64,
        /// Amount to unfreeze.
        requested: u64,
    },
    /// `insufficient_energy`.
    #[error("insufficient_energy: {available} < {required}")]
    InsufficientEnergy {
        /// Available energy.
        available: u64,
        /// Energy required.
        required: u64,
    },
    /// `contract_not_found`: no contract at the invoked id.
    #[error("contract_not_found: {0}")]
    ContractNotFound(tos_storage::PublicKey),
    /// `contract_reverted`: the code ended with `REVERT` (nonce and fee kept).
    #[error("contract_reverted")]
    ContractReverted,
    /// `contract_failed`: the code failed (nonce and fee kept).
    #[error("contract_failed: {0}")]
    ContractFailed(super::vm::Fault),
    /// `out_of_gas`: the next instruction's gas exceeded what remained of
    /// `max_gas` (nonce and fee kept).
    #[error("out_of_gas: max_gas {max_gas}")]
    OutOfGas {
        /// The invocation's `max_gas`.
        max_gas: u64,
    },
    /// `insufficient_funds`.
    #[error("insufficient_funds: asset {asset}: balance {balance} < {required}")]
    InsufficientFunds {
        /// Asset short.
        asset: Asset,
        /// Balance.
        balance: u64,
        /// Spending.
        required: u64,
    },
}

impl TxFailure {
    /// The SPEC code.
    pub fn code(&self) -> &'static str {
        match self {
            TxFailure::NonceMismatch { .. } => "nonce_mismatch",
            TxFailure::MultisigInvalid(_) => "multisig_invalid",
            TxFailure::MultisigNotConfigured => "multisig_not_configured",
            TxFailure::InsufficientUnlockedFrozen { .. } => "insufficient_unlocked_frozen",
            TxFailure::InsufficientEnergy { .. } => "insufficient_energy",
            TxFailure::InsufficientFunds { .. } => "insufficient_funds",
            TxFailure::ContractNotFound(_) => "contract_not_found",
            TxFailure::ContractReverted => "contract_reverted",
            TxFailure::ContractFailed(_) => "contract_failed",
            TxFailure::OutOfGas { .. } => "out_of_gas",
        }
    }

    /// Whether this is a contract execution code (SPEC §8): the transaction
    /// kept its nonce and fee (the fee counts in the block's `fees`), and
    /// everything else it did was undone. Every other failure orphans the
    /// transaction: it changed nothing.
    pub fn keeps_fee(&self) -> bool {
        matches!(
            self,
            TxFailure::ContractReverted | TxFailure::ContractFailed(_) | TxFailure::OutOfGas { .. }
        )
    }
}

/// Bad input: files, JSON, hex.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A JSON document (or JSON Lines line) is invalid.
    #[error("{what}, line {line}: {reason}")]
    Json {
        /// What was being read (file name or kind).
        what: String,
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        reason: String,
    },
    /// A genesis violates SPEC §3.
    #[error("invalid genesis: {0}")]
    Genesis(String),
}

/// Why a store could not be initialised with a genesis.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// The genesis violates SPEC §3.
    #[error("invalid genesis: {0}")]
    InvalidGenesis(String),
    /// The store already holds a chain with another genesis.
    #[error("the store holds another chain (genesis {stored}, given {given})")]
    OtherChain {
        /// Genesis hash in the store.
        stored: tos_storage::Hash,
        /// Genesis hash given.
        given: tos_storage::Hash,
    },
    /// The storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}
