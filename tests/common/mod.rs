//! Small shared helpers for the codec and SPEC-rule tests: keys, a
//! transaction builder, the SPEC §5 minimum fee (computed here from the
//! encoding, independently of the library's `minimum_fee`) and a chain on
//! `MemoryStorage` run by the sequential executor and, on identical copies,
//! by the parallel engine (guards off) at 2 and 4 threads: every block must
//! give the same outcome, statuses, rejection and state dump on all three.
#![allow(dead_code)]

use ed25519_dalek::SigningKey;
use tos_parallel::chain::genesis::GenesisAccount;
use tos_parallel::chain::transaction::{
    EnergyPayload, FeeType, Payload, Transaction, TransferOutput, UnsignedTransaction,
};
use tos_parallel::chain::validation::{check_stateless, VerifiedTx};
use tos_parallel::engine::Scheduler;
use tos_parallel::{
    init_genesis, Asset, Block, BlockError, BlockOutcome, Blockchain, EnergyState, ExecutionConfig,
    Genesis, Hash, MemoryStorage, PublicKey, StateRead, StateSnapshot, StatelessError,
    NATIVE_ASSET,
};

/// SPEC §1 `COIN`, restated so the tests do not depend on the library's constants.
pub const COIN: u64 = 100_000_000;
/// SPEC §1 `MAXIMUM_SUPPLY`.
pub const MAXIMUM_SUPPLY: u64 = 184_000_000 * COIN;
/// A second asset.
pub const ASSET_B: Asset = Hash([0xbb; 32]);
/// A third asset.
pub const ASSET_C: Asset = Hash([0xcc; 32]);

/// A deterministic signing key.
pub fn key(i: u8) -> SigningKey {
    SigningKey::from_bytes(&[i; 32])
}

/// The public key of `k`.
pub fn pk(k: &SigningKey) -> PublicKey {
    PublicKey(k.verifying_key().to_bytes())
}

/// SPEC §5: ceil(size / 1024) × 10_000 + (outputs + multisig signatures) ×
/// 5_000, plus max_gas × 10 for an invocation.
pub fn min_fee(tx: &Transaction) -> u64 {
    let gas = match &tx.payload {
        Payload::InvokeContract { max_gas, .. } => max_gas * 10,
        _ => 0,
    };
    let size = tx.encode().len() as u64;
    let outputs = match &tx.payload {
        Payload::Transfers(outs) => outs.len() as u64,
        _ => 1,
    };
    let sigs = tx
        .multisig
        .as_ref()
        .map_or(0, |p| p.signatures.len() as u64);
    size.div_ceil(1024) * 10_000 + (outputs + sigs) * 5_000 + gas
}

/// A DeployContract payload.
pub fn deploy(code: &[u8]) -> Payload {
    Payload::DeployContract {
        code: code.to_vec(),
    }
}

/// An InvokeContract payload.
pub fn invoke(contract: PublicKey, deposit: u64, max_gas: u64, args: &[Hash]) -> Payload {
    Payload::InvokeContract {
        contract,
        deposit,
        max_gas,
        args: args.to_vec(),
    }
}

/// A 32-byte word holding `n` (big-endian), as an argument or a slot.
pub fn word(n: u64) -> Hash {
    let mut w = [0u8; 32];
    w[24..].copy_from_slice(&n.to_be_bytes());
    Hash(w)
}

/// One transfer output without extra data.
pub fn out(asset: Asset, to: PublicKey, amount: u64) -> TransferOutput {
    TransferOutput {
        asset,
        destination: to,
        amount,
        extra_data: None,
    }
}

/// A one-output transfer payload.
pub fn transfer(asset: Asset, to: PublicKey, amount: u64) -> Payload {
    Payload::Transfers(vec![out(asset, to, amount)])
}

/// A burn payload.
pub fn burn(asset: Asset, amount: u64) -> Payload {
    Payload::Burn { asset, amount }
}

/// A FreezeTos payload.
pub fn freeze(amount: u64, days: u32) -> Payload {
    Payload::Energy(EnergyPayload::FreezeTos { amount, days })
}

/// An UnfreezeTos payload.
pub fn unfreeze(amount: u64) -> Payload {
    Payload::Energy(EnergyPayload::UnfreezeTos { amount })
}

/// A MultiSig payload setting a config.
pub fn multisig_set(threshold: u8, participants: &[PublicKey]) -> Payload {
    Payload::MultiSig {
        threshold,
        participants: participants.to_vec(),
    }
}

/// A MultiSig payload deleting the config.
pub fn multisig_delete() -> Payload {
    Payload::MultiSig {
        threshold: 0,
        participants: vec![],
    }
}

/// Transaction builder. By default: native fee equal to the SPEC minimum,
/// nonce 0, reference topoheight 0.
#[derive(Clone, Debug)]
pub struct Tx {
    payload: Payload,
    fee: Option<u64>,
    fee_type: FeeType,
    nonce: u64,
    reference_topoheight: u64,
    reference_hash: Hash,
}

impl Tx {
    /// A builder for `payload`.
    pub fn new(payload: Payload) -> Tx {
        Tx {
            payload,
            fee: None,
            fee_type: FeeType::Native,
            nonce: 0,
            reference_topoheight: 0,
            reference_hash: Hash::default(),
        }
    }

    /// Sets the nonce.
    pub fn nonce(mut self, nonce: u64) -> Tx {
        self.nonce = nonce;
        self
    }

    /// Sets an explicit fee (instead of the minimum).
    pub fn fee(mut self, fee: u64) -> Tx {
        self.fee = Some(fee);
        self
    }

    /// Pays in energy (fee 0 unless set after).
    pub fn energy(mut self) -> Tx {
        self.fee_type = FeeType::Energy;
        self.fee = Some(0);
        self
    }

    /// Sets the reference topoheight.
    pub fn reference(mut self, topoheight: u64) -> Tx {
        self.reference_topoheight = topoheight;
        self
    }

    /// Sets the (unchecked) reference hash.
    pub fn reference_hash(mut self, hash: Hash) -> Tx {
        self.reference_hash = hash;
        self
    }

    fn unsigned(&self, fee: u64) -> UnsignedTransaction {
        UnsignedTransaction {
            payload: self.payload.clone(),
            fee,
            fee_type: self.fee_type,
            nonce: self.nonce,
            reference_hash: self.reference_hash,
            reference_topoheight: self.reference_topoheight,
        }
    }

    /// Signs as `source` with the given multisig signers.
    pub fn sign_multi(&self, source: &SigningKey, signers: &[(u8, &SigningKey)]) -> Transaction {
        match self.fee {
            Some(fee) => self.unsigned(fee).sign(source, signers),
            None => {
                // The encoded size does not depend on the fee's value.
                let draft = self.unsigned(0).sign(source, signers);
                self.unsigned(min_fee(&draft)).sign(source, signers)
            }
        }
    }

    /// Signs as `source` without multisig proof.
    pub fn sign(&self, source: &SigningKey) -> Transaction {
        self.sign_multi(source, &[])
    }
}

/// `check_stateless` on the encoding of `tx`.
pub fn stateless(tx: &Transaction, parent: u64) -> Result<VerifiedTx, StatelessError> {
    stateless_bytes(&tx.encode(), parent)
}

/// `check_stateless` on raw bytes.
pub fn stateless_bytes(bytes: &[u8], parent: u64) -> Result<VerifiedTx, StatelessError> {
    let hash = Hash(*blake3::hash(bytes).as_bytes());
    check_stateless(bytes, hash, parent)
}

/// "ok" or the SPEC §5 code.
pub fn stateless_code(tx: &Transaction, parent: u64) -> &'static str {
    match stateless(tx, parent) {
        Ok(_) => "ok",
        Err(e) => e.code(),
    }
}

/// The SPEC §6 codes ("ok" or the failure) of an outcome, in block order.
pub fn codes(outcome: &BlockOutcome) -> Vec<&'static str> {
    outcome.results.iter().map(|r| r.status.code()).collect()
}

/// A genesis from `(key, balances)` pairs.
pub fn genesis(blocks_per_day: u64, accounts: &[(PublicKey, &[(Asset, u64)])]) -> Genesis {
    Genesis {
        blocks_per_day,
        accounts: accounts
            .iter()
            .map(|(k, b)| GenesisAccount {
                key: *k,
                balances: b.iter().copied().collect(),
                nonce: 0,
            })
            .collect(),
    }
}

/// Whether `block` holds an invocation that decodes (open accesses).
pub fn has_invocation(block: &Block) -> bool {
    block.txs().iter().any(|b| {
        Transaction::decode(b)
            .is_ok_and(|(tx, _)| matches!(tx.payload, Payload::InvokeContract { .. }))
    })
}

/// A chain on `MemoryStorage`, executed sequentially (`ExecutionConfig::default()`),
/// shadowed by three copies run by the parallel engine with its guards off
/// (every block however small): at 2 and 4 threads on the graph scheduler
/// (the 2-thread copy admits each block's transactions first, so its
/// invocations carry hints; the 4-thread copy speculates every transaction
/// of its optimistic path), and at 3 threads on the optimistic scheduler
/// (every block, declared or not, on the optimistic path, every
/// transaction speculated): [`Chain::add`] checks that all four agree and
/// that the parallel engine really ran, on the path it was asked for.
pub struct Chain {
    /// The chain (sequential; the reference every assertion reads).
    pub chain: Blockchain<MemoryStorage>,
    /// The parallel copies.
    pub parallel: Vec<Blockchain<MemoryStorage>>,
    /// Miner of every block [`Chain::apply`] makes.
    pub miner: PublicKey,
}

impl Chain {
    /// A chain from `genesis`.
    pub fn from_genesis(genesis: &Genesis) -> Chain {
        let storage = || {
            let mut storage = MemoryStorage::new();
            init_genesis(&mut storage, genesis).expect("init genesis");
            storage
        };
        let parallel = [
            (2, Scheduler::Graph),
            (4, Scheduler::Graph),
            (3, Scheduler::Optimistic),
        ]
        .map(|(threads, scheduler)| {
            let config = ExecutionConfig {
                mode: tos_parallel::ExecutionMode::Parallel,
                min_txs_for_parallel: 0,
                threads,
                scheduler,
                guards: false,
                costly_reads: false,
                // The rules' blocks are small: the calling thread would
                // execute them alone, in order, before a helper arrives.
                // The 4- and 3-thread copies speculate every transaction,
                // so that validation sees them all.
                speculate_all: threads != 2,
                ..ExecutionConfig::default()
            };
            Blockchain::new(storage(), config).expect("blockchain")
        })
        .into();
        Chain {
            chain: Blockchain::new(storage(), ExecutionConfig::default()).expect("blockchain"),
            parallel,
            miner: pk(&key(250)),
        }
    }

    /// Adds `block` to the sequential chain and to each parallel copy; the
    /// outcomes (or the errors) and the resulting states must be identical,
    /// and each parallel copy must have run an accepted block on the
    /// parallel engine. Returns the sequential result.
    pub fn add(&self, block: &Block) -> Result<BlockOutcome, BlockError> {
        let seq = self.chain.add_new_block(block);
        for par in &self.parallel {
            let threads = par.config().threads;
            if threads == 2 {
                // This copy admits the block's transactions first, as a
                // mempool would: its invocations carry hints from the tip
                // (`pipeline::hint`), which must change nothing. One that
                // fails a check is not cached and is checked in the block.
                for bytes in block.txs() {
                    let _ = par.admit(bytes);
                }
            }
            let got = par.add_new_block(block);
            match (&seq, &got) {
                (Ok(s), Ok(p)) => {
                    assert!(s.same_result(p), "{threads} threads: {s:?} vs {p:?}");
                    assert_eq!(codes(s), codes(p), "{threads} threads");
                    // Every block ran the parallel engine; a block holding an
                    // invocation (open accesses), its optimistic path, or,
                    // hinted (the 2-thread copy), the dependency graph with
                    // its hints sealed (`engine/sealed.rs`) when that held.
                    assert!(p.stats.parallel_engine, "{threads} threads: {:?}", p.stats);
                    if par.config().scheduler == Scheduler::Optimistic {
                        // Declared or not: the optimistic path, every
                        // transaction unless the abort bound ran the rest
                        // in order.
                        assert_eq!(
                            p.stats.path,
                            tos_parallel::ExecutionPath::Optimistic,
                            "{:?}",
                            p.stats
                        );
                        assert_eq!(
                            p.stats.optimistic == block.txs().len(),
                            p.stats.reason != tos_parallel::PathReason::Aborts,
                            "{:?}",
                            p.stats
                        );
                    } else if has_invocation(block) && p.stats.sealed > 0 {
                        assert_eq!(threads, 2, "only the hinted copy seals");
                        assert_eq!(p.stats.path, tos_parallel::ExecutionPath::Parallel);
                        assert!(!p.stats.escaped && p.stats.optimistic == 0);
                    } else if has_invocation(block) {
                        assert_eq!(p.stats.path, tos_parallel::ExecutionPath::Optimistic);
                        assert!(p.stats.optimistic > 0);
                        assert_eq!(
                            p.stats.optimistic == block.txs().len(),
                            p.stats.reason != tos_parallel::PathReason::Aborts
                        );
                    }
                }
                (Err(s), Err(p)) => assert_eq!(s.to_string(), p.to_string(), "{threads} threads"),
                (s, p) => panic!("{threads} threads: sequential {s:?}, parallel {p:?}"),
            }
            assert_eq!(
                tos_parallel::chain::dump::state_json_string(&self.chain.snapshot(None).unwrap()),
                tos_parallel::chain::dump::state_json_string(&par.snapshot(None).unwrap()),
                "{threads} threads: states differ"
            );
        }
        seq
    }

    /// A chain with the given accounts and `blocks_per_day` = 86_400.
    pub fn new(accounts: &[(PublicKey, &[(Asset, u64)])]) -> Chain {
        Chain::from_genesis(&genesis(86_400, accounts))
    }

    /// A chain with the given accounts and `blocks_per_day`.
    pub fn with_blocks_per_day(
        blocks_per_day: u64,
        accounts: &[(PublicKey, &[(Asset, u64)])],
    ) -> Chain {
        Chain::from_genesis(&genesis(blocks_per_day, accounts))
    }

    /// Applies a block of `txs` on top (no topoheight given), through [`Chain::add`].
    pub fn apply(&self, txs: &[Transaction]) -> Result<BlockOutcome, BlockError> {
        let block = Block::new(None, self.miner, txs.iter().map(|t| t.encode()).collect());
        self.add(&block)
    }

    /// Applies a block that must be accepted; returns its statuses.
    pub fn run(&self, txs: &[Transaction]) -> Vec<&'static str> {
        codes(&self.apply(txs).expect("block accepted"))
    }

    /// Applies `n` empty blocks.
    pub fn empty_blocks(&self, n: u64) {
        for _ in 0..n {
            self.apply(&[]).expect("empty block");
        }
    }

    /// Top topoheight.
    pub fn top(&self) -> u64 {
        self.chain.top_topoheight().unwrap().unwrap()
    }

    /// The state at the top.
    pub fn snap(&self) -> StateSnapshot {
        self.chain.snapshot(None).unwrap()
    }

    /// Balance at the top (0 if none).
    pub fn balance(&self, who: &PublicKey, asset: &Asset) -> u64 {
        self.chain
            .storage()
            .get_balance(who, asset, self.top())
            .unwrap()
            .unwrap_or(0)
    }

    /// Native balance at the top.
    pub fn native(&self, who: &PublicKey) -> u64 {
        self.balance(who, &NATIVE_ASSET)
    }

    /// Nonce at the top (0 if none).
    pub fn nonce(&self, who: &PublicKey) -> u64 {
        self.chain
            .storage()
            .get_nonce(who, self.top())
            .unwrap()
            .unwrap_or(0)
    }

    /// Energy state at the top (default if never frozen).
    pub fn energy(&self, who: &PublicKey) -> EnergyState {
        self.chain
            .storage()
            .get_energy(who, self.top())
            .unwrap()
            .unwrap_or_default()
    }
}
