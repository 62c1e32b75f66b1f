//! Deterministic workload generation: a genesis and blocks of validly signed
//! transactions, identical for identical settings and seed.
//!
//! The generator keeps its own chain (a `MemoryStorage` driven by the
//! sequential executor) so that each block is planned against the real state
//! left by the previous ones. Within a block it tracks each sender's next nonce
//! and what it already spent (credits received in the block are not counted),
//! so every transaction meant to succeed does; the `mixed` workload also
//! includes transactions built to fail statefully (a wrong nonce, more than
//! the balance, an unfreeze of locked coins, energy it lacks, a multisig
//! delete without a config).
//!
//! The contract workloads (`token`, `auction`, `contracts-mixed`, SPEC v2)
//! deploy the programs of [`crate::contracts`] from account 0 as the first
//! transactions of block 1, then invoke them; every invocation is meant to
//! succeed (the generator tracks token balances and the highest bid across
//! blocks) and gets [`INVOKE_MAX_GAS`], so a block's summed `max_gas` stays
//! within `MAX_BLOCK_GAS` (the generator caps the number of invocations per
//! block: `contracts-mixed` fills the rest with plain transfers, `token` and
//! `auction` blocks end early).

use std::collections::{BTreeMap, HashMap};

use ed25519_dalek::SigningKey;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::contracts::{self, account_word, word};
use tos_parallel::chain::constants::{COIN, MAXIMUM_SUPPLY, MAX_BLOCK_GAS};
use tos_parallel::chain::transaction::{
    config_signers, contract_id, public_key_of, EnergyPayload, FeeType, Payload, TransferOutput,
    UnsignedTransaction,
};
use tos_parallel::{
    init_genesis, Asset, Block, BlockError, Blockchain, ExecutionConfig, Genesis, GenesisAccount,
    Hash, InitError, MemoryStorage, PublicKey, StateRead, NATIVE_ASSET,
};

/// The kinds of block the generator makes. `Uniform` to `Chain` are native
/// one-output transfers that differ in who pays whom; `Mixed` uses every
/// v1 transaction type; `Token`, `Auction` and `ContractsMixed` invoke
/// contracts (SPEC v2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Workload {
    /// Sender and receiver chosen uniformly among the accounts.
    Uniform,
    /// Every account used once per block (as far as the accounts allow):
    /// no two transactions conflict, the upper bound.
    Disjoint,
    /// A fraction (per mille) of the transfers pays account 0 (an exchange
    /// deposit address); the rest are uniform.
    HotReceiver {
        /// Share of transfers to the hot account, in 1/1000.
        permille: u16,
    },
    /// Account 0 pays everyone (an airdrop or payout batch): one sender's
    /// chain of consecutive nonces.
    HotSender,
    /// Transaction i spends from the account transaction i-1 paid: each
    /// depends on the previous one, the worst case.
    Chain,
    /// Every transaction type, several assets, multisig, energy, and some
    /// transactions that fail statefully.
    Mixed,
    /// Calls to one [`contracts::token`]: each account's first call mints
    /// [`TOKEN_MINT`] units, later ones transfer part of its balance to a
    /// random other account (a new mint when its balance is 0).
    Token,
    /// Bids on one [`contracts::auction`] from random accounts, each
    /// strictly above the previous one: every bid succeeds and refunds the
    /// previous bidder (one hot contract).
    Auction,
    /// About 40% token calls, 40% native transfers (as `Uniform`), 15%
    /// [`contracts::probe`] calls reading the balance of a random account
    /// and 5% increments of a hot [`contracts::counter`].
    ContractsMixed,
}

/// Units a token holder mints (its first call in the `token` workloads).
pub const TOKEN_MINT: u64 = 1_000_000;

/// The `max_gas` of every generated invocation: over twice what the most
/// expensive path of any generated call uses ([`contracts::AUCTION_BID_GAS`]),
/// and small enough for 50_000 invocations per block under `MAX_BLOCK_GAS`.
pub const INVOKE_MAX_GAS: u64 = 1_000;

impl std::fmt::Display for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Workload::Uniform => f.write_str("uniform"),
            Workload::Disjoint => f.write_str("disjoint"),
            Workload::HotReceiver { permille } => {
                write!(f, "hot-receiver:{}", *permille as f64 / 1000.0)
            }
            Workload::HotSender => f.write_str("hot-sender"),
            Workload::Chain => f.write_str("chain"),
            Workload::Mixed => f.write_str("mixed"),
            Workload::Token => f.write_str("token"),
            Workload::Auction => f.write_str("auction"),
            Workload::ContractsMixed => f.write_str("contracts-mixed"),
        }
    }
}

impl std::str::FromStr for Workload {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (name, arg) = s.split_once(':').unwrap_or((s, ""));
        match (name, arg) {
            ("uniform", "") => Ok(Workload::Uniform),
            ("disjoint", "") => Ok(Workload::Disjoint),
            ("hot-receiver", h) => {
                let h: f64 = if h.is_empty() {
                    0.9
                } else {
                    h.parse()
                        .map_err(|_| format!("bad hot-receiver fraction `{h}`"))?
                };
                if !(0.0..=1.0).contains(&h) {
                    return Err(format!("hot-receiver fraction {h} outside 0..=1"));
                }
                Ok(Workload::HotReceiver {
                    permille: (h * 1000.0).round() as u16,
                })
            }
            ("hot-sender", "") => Ok(Workload::HotSender),
            ("chain", "") => Ok(Workload::Chain),
            ("mixed", "") => Ok(Workload::Mixed),
            ("token", "") => Ok(Workload::Token),
            ("auction", "") => Ok(Workload::Auction),
            ("contracts-mixed", "") => Ok(Workload::ContractsMixed),
            _ => Err(format!(
                "unknown workload `{s}` (uniform, disjoint, hot-receiver[:H], hot-sender, chain, \
                 mixed, token, auction, contracts-mixed)"
            )),
        }
    }
}

/// Generator settings.
#[derive(Clone, Copy, Debug)]
pub struct GeneratorConfig {
    /// Kind of transactions.
    pub workload: Workload,
    /// Number of funded accounts (at least 2).
    pub accounts: usize,
    /// Transactions per block.
    pub txs_per_block: usize,
    /// Number of blocks.
    pub blocks: usize,
    /// Seed: equal settings and seed give byte-identical output.
    pub seed: u64,
}

/// A generated chain.
#[derive(Clone, Debug)]
pub struct GeneratedChain {
    /// Its genesis.
    pub genesis: Genesis,
    /// Its blocks, in order (with explicit topoheights 1, 2, ...).
    pub blocks: Vec<Block>,
}

/// Why generation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GenerateError {
    /// Fewer than 2 accounts.
    #[error("need at least 2 accounts, got {0}")]
    TooFewAccounts(usize),
    /// The generator's own chain refused a block (a generator bug).
    #[error("generated block refused: {0}")]
    Block(#[from] BlockError),
    /// The generator's own chain could not be initialised.
    #[error(transparent)]
    Init(#[from] InitError),
    /// Reading the generator's own state failed.
    #[error(transparent)]
    Storage(#[from] tos_parallel::StorageError),
    /// Account 0 cannot pay for deploying the workload's contracts.
    #[error("account 0 cannot pay for deploying the contracts")]
    CannotDeploy,
}

/// A second asset used by the mixed workload.
pub const GENERATED_ASSET: Asset = Hash([7u8; 32]);

/// The signing key of generated account `i` under `seed`.
pub fn account_key(seed: u64, i: usize) -> SigningKey {
    let mut h = blake3::Hasher::new();
    h.update(b"tos-parallel generator account");
    h.update(&seed.to_be_bytes());
    h.update(&(i as u64).to_be_bytes());
    SigningKey::from_bytes(h.finalize().as_bytes())
}

/// Generates a chain; see the module docs.
pub fn generate(cfg: &GeneratorConfig) -> Result<GeneratedChain, GenerateError> {
    if cfg.accounts < 2 {
        return Err(GenerateError::TooFewAccounts(cfg.accounts));
    }
    let keys: Vec<SigningKey> = (0..cfg.accounts)
        .map(|i| account_key(cfg.seed, i))
        .collect();
    let pubs: Vec<PublicKey> = keys.iter().map(public_key_of).collect();
    let index: HashMap<PublicKey, usize> = pubs.iter().enumerate().map(|(i, p)| (*p, i)).collect();
    let mixed = cfg.workload == Workload::Mixed;
    // Keep the native total at most half the maximum supply, so rewards go on.
    let funding = (MAXIMUM_SUPPLY / 2 / cfg.accounts as u64).min(100_000 * COIN);
    let genesis = Genesis {
        blocks_per_day: if mixed { 1 } else { 86_400 },
        accounts: pubs
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let mut balances = BTreeMap::new();
                balances.insert(NATIVE_ASSET, funding);
                if mixed && i % 2 == 0 {
                    balances.insert(GENERATED_ASSET, 1_000_000);
                }
                GenesisAccount {
                    key: *k,
                    balances,
                    nonce: 0,
                }
            })
            .collect(),
    };
    let mut storage = MemoryStorage::new();
    init_genesis(&mut storage, &genesis)?;
    let chain = Blockchain::new(storage, ExecutionConfig::default())?;
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let miner = public_key_of(&account_key(cfg.seed ^ 0x006d_696e_6572, usize::MAX));
    let mut blocks = Vec::with_capacity(cfg.blocks);
    let mut deployed = Deployed {
        minted: vec![false; cfg.accounts],
        token_balances: vec![0; cfg.accounts],
        ..Deployed::default()
    };
    let invokes = matches!(
        cfg.workload,
        Workload::Token | Workload::Auction | Workload::ContractsMixed
    );
    for _ in 0..cfg.blocks {
        let top = chain.top_topoheight()?.unwrap_or(0);
        let block = {
            let storage = chain.storage();
            let mut planner = Planner {
                storage: &*storage,
                top,
                keys: &keys,
                pubs: &pubs,
                index: &index,
                senders: HashMap::new(),
                contracts: &mut deployed,
                gas: 0,
                gas_full: false,
            };
            let mut txs = Vec::with_capacity(cfg.txs_per_block);
            if blocks.is_empty() && invokes {
                txs.extend(planner.deploy_contracts(cfg.workload)?);
            }
            let mut attempts = 0;
            while txs.len() < cfg.txs_per_block && attempts < cfg.txs_per_block * 20 + 100 {
                attempts += 1;
                let k = blocks.len() * cfg.txs_per_block + txs.len();
                let made = match cfg.workload {
                    Workload::Mixed => planner.mixed_tx(&mut rng)?,
                    Workload::Token => planner.token_tx(&mut rng)?,
                    Workload::Auction => planner.auction_tx(&mut rng)?,
                    Workload::ContractsMixed => planner.contracts_mixed_tx(&mut rng, k)?,
                    w => planner.p2p_tx(&mut rng, w, k)?,
                };
                match made {
                    Some(tx) => txs.push(tx),
                    // No room for another invocation: this block is full.
                    None if planner.gas_full => break,
                    None => {}
                }
            }
            debug_assert!(planner.gas <= MAX_BLOCK_GAS);
            let miner = if mixed && rng.gen_bool(0.5) {
                pubs[rng.gen_range(0..pubs.len())]
            } else {
                miner
            };
            Block::new(Some(top + 1), miner, txs)
        };
        chain.add_new_block(&block)?;
        blocks.push(block);
    }
    Ok(GeneratedChain { genesis, blocks })
}

/// The contracts the generator deployed, and what it expects of them
/// (assuming every invocation succeeds, as it plans them to).
#[derive(Default)]
struct Deployed {
    token: Option<PublicKey>,
    auction: Option<PublicKey>,
    probe: Option<PublicKey>,
    counter: Option<PublicKey>,
    /// Whether each account has minted tokens yet.
    minted: Vec<bool>,
    /// Each account's token balance.
    token_balances: Vec<u64>,
    /// The highest auction bid so far (0: none).
    high_bid: u64,
}

/// What the planner knows about a sender within the block being built.
#[derive(Default)]
struct SenderState {
    next_nonce: u64,
    spent: HashMap<Asset, u64>,
    energy_used: u64,
    /// No more transactions from this sender in this block (its last one
    /// fails on purpose or changes its multisig config).
    done: bool,
}

struct Planner<'a, S: StateRead> {
    storage: &'a S,
    top: u64,
    keys: &'a [SigningKey],
    pubs: &'a [PublicKey],
    index: &'a HashMap<PublicKey, usize>,
    senders: HashMap<usize, SenderState>,
    contracts: &'a mut Deployed,
    /// The `max_gas` of the block's invocations so far.
    gas: u64,
    /// Set when an invocation did not fit under `MAX_BLOCK_GAS`.
    gas_full: bool,
}

impl<S: StateRead> Planner<'_, S> {
    fn sender(&mut self, i: usize) -> Result<&mut SenderState, GenerateError> {
        if !self.senders.contains_key(&i) {
            let nonce = self
                .storage
                .get_nonce(&self.pubs[i], self.top)?
                .unwrap_or(0);
            self.senders.insert(
                i,
                SenderState {
                    next_nonce: nonce,
                    ..SenderState::default()
                },
            );
        }
        Ok(self.senders.get_mut(&i).expect("inserted above"))
    }

    fn available(&mut self, i: usize, asset: Asset) -> Result<u64, GenerateError> {
        let bal = self
            .storage
            .get_balance(&self.pubs[i], &asset, self.top)?
            .unwrap_or(0);
        let spent = self.sender(i)?.spent.get(&asset).copied().unwrap_or(0);
        Ok(bal.saturating_sub(spent))
    }

    fn other(&self, rng: &mut ChaCha8Rng, not: usize) -> usize {
        let n = self.pubs.len();
        let j = rng.gen_range(0..n - 1);
        if j >= not {
            j + 1
        } else {
            j
        }
    }

    /// Builds, prices and signs a transaction from sender `i`; multisig
    /// accounts sign with the first `threshold` participants.
    fn build(
        &mut self,
        i: usize,
        payload: Payload,
        fee_type: FeeType,
        nonce: u64,
    ) -> Result<(Vec<u8>, u64), GenerateError> {
        let config = self.storage.get_multisig(&self.pubs[i], self.top)?;
        let signers = match &config {
            None => Vec::new(),
            Some(c) => config_signers(c, |p| self.index.get(p).map(|&k| &self.keys[k])),
        };
        let tx = UnsignedTransaction {
            payload,
            fee: 0,
            fee_type,
            nonce,
            reference_hash: Hash::default(),
            reference_topoheight: self.top,
        }
        .sign_with_minimum_fee(&self.keys[i], &signers, 0);
        let fee = tx.fee;
        Ok((tx.encode(), fee))
    }

    /// A native one-output transfer for the `k`-th transaction of the chain,
    /// with sender and receiver chosen as `workload` says.
    fn p2p_tx(
        &mut self,
        rng: &mut ChaCha8Rng,
        workload: Workload,
        k: usize,
    ) -> Result<Option<Vec<u8>>, GenerateError> {
        let n = self.pubs.len();
        let (i, j) = match workload {
            Workload::Disjoint => ((2 * k) % n, (2 * k + 1) % n),
            Workload::HotReceiver { permille } => {
                let i = rng.gen_range(0..n);
                if rng.gen_range(0..1000u16) < permille && i != 0 {
                    (i, 0)
                } else {
                    (i, self.other(rng, i))
                }
            }
            Workload::HotSender => (0, 1 + k % (n - 1)),
            Workload::Chain => (k % n, (k + 1) % n),
            _ => {
                let i = rng.gen_range(0..n);
                (i, self.other(rng, i))
            }
        };
        if i == j {
            return Ok(None);
        }
        let amount = rng.gen_range(1..=1_000u64);
        let payload = Payload::Transfers(vec![TransferOutput {
            asset: NATIVE_ASSET,
            destination: self.pubs[j],
            amount,
            extra_data: None,
        }]);
        self.spend_and_build(i, payload, FeeType::Native, &[(NATIVE_ASSET, amount)])
    }

    /// Builds a transaction meant to succeed if `i` can cover `spend` plus the
    /// fee; `None` (and nothing recorded) when it cannot.
    fn spend_and_build(
        &mut self,
        i: usize,
        payload: Payload,
        fee_type: FeeType,
        spend: &[(Asset, u64)],
    ) -> Result<Option<Vec<u8>>, GenerateError> {
        if self.sender(i)?.done {
            return Ok(None);
        }
        let nonce = self.sender(i)?.next_nonce;
        let (bytes, fee) = self.build(i, payload, fee_type, nonce)?;
        let mut needs: Vec<(Asset, u64)> = spend.to_vec();
        if fee_type == FeeType::Native {
            needs.push((NATIVE_ASSET, fee));
        }
        let mut total: BTreeMap<Asset, u64> = BTreeMap::new();
        for (a, v) in needs {
            *total.entry(a).or_default() += v;
        }
        for (a, v) in &total {
            if self.available(i, *a)? < *v {
                return Ok(None);
            }
        }
        let s = self.sender(i)?;
        for (a, v) in total {
            *s.spent.entry(a).or_default() += v;
        }
        s.next_nonce += 1;
        Ok(Some(bytes))
    }

    /// Deploys the contracts `workload` uses from account 0 (first in block 1).
    fn deploy_contracts(&mut self, workload: Workload) -> Result<Vec<Vec<u8>>, GenerateError> {
        let mut txs = Vec::new();
        let mut deploy = |planner: &mut Self, code: Vec<u8>| {
            let nonce = planner.sender(0)?.next_nonce;
            let tx = planner
                .spend_and_build(0, Payload::DeployContract { code }, FeeType::Native, &[])?
                .ok_or(GenerateError::CannotDeploy)?;
            txs.push(tx);
            Ok::<_, GenerateError>(Some(contract_id(&planner.pubs[0], nonce)))
        };
        match workload {
            Workload::Token => self.contracts.token = deploy(self, contracts::token())?,
            Workload::Auction => self.contracts.auction = deploy(self, contracts::auction())?,
            Workload::ContractsMixed => {
                self.contracts.token = deploy(self, contracts::token())?;
                self.contracts.counter = deploy(self, contracts::counter())?;
                self.contracts.probe = deploy(self, contracts::probe())?;
            }
            _ => {}
        }
        Ok(txs)
    }

    /// An invocation of `contract` by `i` with [`INVOKE_MAX_GAS`]: `None`
    /// when `i` cannot pay, or (setting `gas_full`) when it would take the
    /// block's summed `max_gas` over `MAX_BLOCK_GAS`.
    fn invoke(
        &mut self,
        i: usize,
        contract: Option<PublicKey>,
        deposit: u64,
        args: Vec<Hash>,
    ) -> Result<Option<Vec<u8>>, GenerateError> {
        let Some(contract) = contract else {
            return Ok(None);
        };
        if self.gas + INVOKE_MAX_GAS > MAX_BLOCK_GAS {
            self.gas_full = true;
            return Ok(None);
        }
        let payload = Payload::InvokeContract {
            contract,
            deposit,
            max_gas: INVOKE_MAX_GAS,
            args,
        };
        let made = self.spend_and_build(i, payload, FeeType::Native, &[(NATIVE_ASSET, deposit)])?;
        if made.is_some() {
            self.gas += INVOKE_MAX_GAS;
        }
        Ok(made)
    }

    /// A token call by a random account: its first mints, later ones
    /// transfer 1..=its balance to a random other account (or mint again
    /// when the balance is 0).
    fn token_tx(&mut self, rng: &mut ChaCha8Rng) -> Result<Option<Vec<u8>>, GenerateError> {
        let i = rng.gen_range(0..self.pubs.len());
        let token = self.contracts.token;
        let balance = self.contracts.token_balances[i];
        if !self.contracts.minted[i] || balance == 0 {
            let made = self.invoke(i, token, 0, vec![word(0), word(TOKEN_MINT)])?;
            if made.is_some() {
                self.contracts.minted[i] = true;
                self.contracts.token_balances[i] += TOKEN_MINT;
            }
            return Ok(made);
        }
        let j = self.other(rng, i);
        let amount = rng.gen_range(1..=balance);
        let args = vec![word(1), account_word(&self.pubs[j]), word(amount)];
        let made = self.invoke(i, token, 0, args)?;
        if made.is_some() {
            self.contracts.token_balances[i] -= amount;
            self.contracts.token_balances[j] += amount;
        }
        Ok(made)
    }

    /// A bid from a random account, 1..=1_000 units above the highest.
    fn auction_tx(&mut self, rng: &mut ChaCha8Rng) -> Result<Option<Vec<u8>>, GenerateError> {
        let i = rng.gen_range(0..self.pubs.len());
        let deposit = self.contracts.high_bid + rng.gen_range(1..=1_000u64);
        let made = self.invoke(i, self.contracts.auction, deposit, Vec::new())?;
        if made.is_some() {
            self.contracts.high_bid = deposit;
        }
        Ok(made)
    }

    /// One transaction of `contracts-mixed` (see [`Workload::ContractsMixed`]);
    /// a native transfer once the block has no room for invocations.
    fn contracts_mixed_tx(
        &mut self,
        rng: &mut ChaCha8Rng,
        k: usize,
    ) -> Result<Option<Vec<u8>>, GenerateError> {
        let roll = rng.gen_range(0..100u32);
        let room = self.gas + INVOKE_MAX_GAS <= MAX_BLOCK_GAS;
        match roll {
            0..=39 if room => self.token_tx(rng),
            80..=94 if room => {
                let i = rng.gen_range(0..self.pubs.len());
                let target = account_word(&self.pubs[rng.gen_range(0..self.pubs.len())]);
                self.invoke(i, self.contracts.probe, 0, vec![target])
            }
            95..=99 if room => {
                let i = rng.gen_range(0..self.pubs.len());
                self.invoke(i, self.contracts.counter, 0, Vec::new())
            }
            _ => self.p2p_tx(rng, Workload::Uniform, k),
        }
    }

    fn mixed_tx(&mut self, rng: &mut ChaCha8Rng) -> Result<Option<Vec<u8>>, GenerateError> {
        let n = self.pubs.len();
        let i = rng.gen_range(0..n);
        if self.sender(i)?.done {
            return Ok(None);
        }
        let src = self.pubs[i];
        let roll = rng.gen_range(0..100u32);
        match roll {
            // Transfers: 1-3 outputs, native or the second asset, some extra data.
            0..=44 => {
                let outputs = rng.gen_range(1..=3usize);
                let mut outs = Vec::with_capacity(outputs);
                let mut spend = Vec::new();
                for _ in 0..outputs {
                    let asset = if rng.gen_bool(0.3) {
                        GENERATED_ASSET
                    } else {
                        NATIVE_ASSET
                    };
                    let amount = rng.gen_range(0..=5_000u64);
                    let extra_data = rng
                        .gen_bool(0.2)
                        .then(|| (0..rng.gen_range(0..=32u8)).collect::<Vec<u8>>());
                    outs.push(TransferOutput {
                        asset,
                        destination: self.pubs[self.other(rng, i)],
                        amount,
                        extra_data,
                    });
                    spend.push((asset, amount));
                }
                self.spend_and_build(i, Payload::Transfers(outs), FeeType::Native, &spend)
            }
            // Transfer paying its fee in energy (fails when energy is short).
            45..=54 => {
                let energy = self.storage.get_energy(&src, self.top)?.unwrap_or_default();
                let used = self.sender(i)?.energy_used;
                let dest = self.pubs[self.other(rng, i)];
                let amount = rng.gen_range(1..=100u64);
                let payload = Payload::Transfers(vec![TransferOutput {
                    asset: NATIVE_ASSET,
                    destination: dest,
                    amount,
                    extra_data: None,
                }]);
                if energy.available.saturating_sub(used) >= 1 {
                    let made = self.spend_and_build(
                        i,
                        payload,
                        FeeType::Energy,
                        &[(NATIVE_ASSET, amount)],
                    )?;
                    if made.is_some() {
                        self.sender(i)?.energy_used += 1;
                    }
                    Ok(made)
                } else {
                    self.failing(i, payload, FeeType::Energy)
                }
            }
            // Burn native or the second asset.
            55..=61 => {
                let asset = if rng.gen_bool(0.5) {
                    NATIVE_ASSET
                } else {
                    GENERATED_ASSET
                };
                let amount = rng.gen_range(1..=1_000u64);
                self.spend_and_build(
                    i,
                    Payload::Burn { asset, amount },
                    FeeType::Native,
                    &[(asset, amount)],
                )
            }
            // Freeze 1-3 coins for 3-6 days (blocks_per_day is 1 in this workload).
            62..=71 => {
                let amount = rng.gen_range(1..=3u64) * COIN;
                let days = rng.gen_range(3..=6u32);
                self.spend_and_build(
                    i,
                    Payload::Energy(EnergyPayload::FreezeTos { amount, days }),
                    FeeType::Native,
                    &[(NATIVE_ASSET, amount)],
                )
            }
            // Unfreeze: of unlocked coins when there are some, else on purpose too much.
            72..=78 => {
                let energy = self.storage.get_energy(&src, self.top)?.unwrap_or_default();
                let unlocked: u64 = energy
                    .records
                    .iter()
                    .filter(|r| r.unlock_topoheight <= self.top + 1)
                    .map(|r| r.amount)
                    .sum();
                let payload = |amount| Payload::Energy(EnergyPayload::UnfreezeTos { amount });
                if unlocked >= COIN {
                    let amount = (rng.gen_range(1..=unlocked / COIN)) * COIN;
                    let made = self.spend_and_build(i, payload(amount), FeeType::Native, &[])?;
                    // One unfreeze per sender and block keeps the planner exact.
                    if made.is_some() {
                        self.sender(i)?.done = true;
                    }
                    Ok(made)
                } else {
                    self.failing(i, payload(unlocked + COIN), FeeType::Native)
                }
            }
            // Multisig: set (1 or 2 of 2-3 participants) or delete.
            79..=85 => {
                let config = self.storage.get_multisig(&src, self.top)?;
                let payload = if config.is_some() && rng.gen_bool(0.6) {
                    Payload::MultiSig {
                        threshold: 0,
                        participants: Vec::new(),
                    }
                } else if config.is_none() && rng.gen_bool(0.15) {
                    // Delete without a config: multisig_not_configured.
                    return self.failing(
                        i,
                        Payload::MultiSig {
                            threshold: 0,
                            participants: Vec::new(),
                        },
                        FeeType::Native,
                    );
                } else {
                    let count = rng.gen_range(2..=3usize).min(n - 1);
                    let mut participants = Vec::with_capacity(count);
                    while participants.len() < count {
                        let p = self.pubs[self.other(rng, i)];
                        if !participants.contains(&p) {
                            participants.push(p);
                        }
                    }
                    Payload::MultiSig {
                        threshold: rng.gen_range(1..=2u8).min(count as u8),
                        participants,
                    }
                };
                let made = self.spend_and_build(i, payload, FeeType::Native, &[])?;
                // The config applies from the next transaction: stop this sender here.
                if made.is_some() {
                    self.sender(i)?.done = true;
                }
                Ok(made)
            }
            // Wrong nonce on purpose.
            86..=92 => {
                let nonce = self.sender(i)?.next_nonce + rng.gen_range(1..=3u64);
                let payload = Payload::Transfers(vec![TransferOutput {
                    asset: NATIVE_ASSET,
                    destination: self.pubs[self.other(rng, i)],
                    amount: 1,
                    extra_data: None,
                }]);
                let (bytes, _) = self.build(i, payload, FeeType::Native, nonce)?;
                Ok(Some(bytes))
            }
            // More than the balance on purpose.
            _ => {
                let balance = self
                    .storage
                    .get_balance(&src, &NATIVE_ASSET, self.top)?
                    .unwrap_or(0);
                let payload = Payload::Transfers(vec![TransferOutput {
                    asset: NATIVE_ASSET,
                    destination: self.pubs[self.other(rng, i)],
                    amount: balance.saturating_add(1).min(u64::MAX / 2),
                    extra_data: None,
                }]);
                self.failing(i, payload, FeeType::Native)
            }
        }
    }

    /// A transaction with the right nonce that fails a later check: the sender
    /// sends nothing more in this block.
    fn failing(
        &mut self,
        i: usize,
        payload: Payload,
        fee_type: FeeType,
    ) -> Result<Option<Vec<u8>>, GenerateError> {
        let nonce = self.sender(i)?.next_nonce;
        let (bytes, _) = self.build(i, payload, fee_type, nonce)?;
        self.sender(i)?.done = true;
        Ok(Some(bytes))
    }
}
