//! The sequential executor: the reference every other path must equal.
//!
//! [`SequentialState`] is an overlay on a storage read at the parent
//! topoheight (the role `ApplicableChainState` plays in a node): reads go to
//! the overlay first, then to storage; writes go to the overlay and are marked
//! dirty; the dirty entries become the block's [`ChangeSet`].

// ahash: keyed (DoS-resistant against chosen keys) and much faster than SipHash on 32-64 byte keys.
use ahash::AHashMap as HashMap;
use std::sync::Arc;

use crate::block::Block;
use crate::error::{BlockError, StateError};
use crate::executor::{
    credit_reward, finish_block, timed, verify_block_sequential, BlockState, ExecutedBlock,
    PreState,
};
use crate::outcome::{BlockStats, ExecutionPath, TxResult, TxStatus};
use crate::policy::PathReason;
use crate::rules::{apply_transaction, TxState};
use crate::validation::VerifiedTx;
use crate::{Asset, ChangeSet, EnergyState, MultisigConfig, PublicKey, Storage, TopoHeight};

/// A cached value and whether the block wrote it.
#[derive(Clone, Debug)]
struct Slot<T> {
    value: T,
    dirty: bool,
}

/// Overlay state for one block, on `storage` at `at`.
pub struct SequentialState<'a, S: Storage> {
    storage: &'a S,
    at: TopoHeight,
    nonces: HashMap<PublicKey, Slot<u64>>,
    balances: HashMap<(PublicKey, Asset), Slot<u64>>,
    multisigs: HashMap<PublicKey, Slot<Option<Arc<MultisigConfig>>>>,
    energies: HashMap<PublicKey, Slot<EnergyState>>,
    fees: u64,
    burned: u64,
}

impl<'a, S: Storage> SequentialState<'a, S> {
    /// An empty overlay reading `storage` at topoheight `at`.
    pub fn new(storage: &'a S, at: TopoHeight) -> Self {
        SequentialState {
            storage,
            at,
            nonces: HashMap::new(),
            balances: HashMap::new(),
            multisigs: HashMap::new(),
            energies: HashMap::new(),
            fees: 0,
            burned: 0,
        }
    }
}

fn write<K: std::hash::Hash + Eq, T>(map: &mut HashMap<K, Slot<T>>, key: K, value: T) {
    map.insert(key, Slot { value, dirty: true });
}

impl<S: Storage> TxState for SequentialState<'_, S> {
    fn nonce(&mut self, account: &PublicKey) -> Result<u64, StateError> {
        if let Some(s) = self.nonces.get(account) {
            return Ok(s.value);
        }
        let v = self.storage.get_nonce(account, self.at)?.unwrap_or(0);
        self.nonces.insert(
            *account,
            Slot {
                value: v,
                dirty: false,
            },
        );
        Ok(v)
    }

    fn balance(&mut self, account: &PublicKey, asset: &Asset) -> Result<u64, StateError> {
        if let Some(s) = self.balances.get(&(*account, *asset)) {
            return Ok(s.value);
        }
        let v = self
            .storage
            .get_balance(account, asset, self.at)?
            .unwrap_or(0);
        self.balances.insert(
            (*account, *asset),
            Slot {
                value: v,
                dirty: false,
            },
        );
        Ok(v)
    }

    fn multisig(&mut self, account: &PublicKey) -> Result<Option<Arc<MultisigConfig>>, StateError> {
        if let Some(s) = self.multisigs.get(account) {
            return Ok(s.value.clone());
        }
        let v = self.storage.get_multisig(account, self.at)?.map(Arc::new);
        self.multisigs.insert(
            *account,
            Slot {
                value: v.clone(),
                dirty: false,
            },
        );
        Ok(v)
    }

    fn energy(&mut self, account: &PublicKey) -> Result<EnergyState, StateError> {
        if let Some(s) = self.energies.get(account) {
            return Ok(s.value.clone());
        }
        let v = self
            .storage
            .get_energy(account, self.at)?
            .unwrap_or_default();
        self.energies.insert(
            *account,
            Slot {
                value: v.clone(),
                dirty: false,
            },
        );
        Ok(v)
    }

    fn increment_nonce(&mut self, account: &PublicKey) -> Result<(), StateError> {
        let v = self
            .nonce(account)?
            .checked_add(1)
            .ok_or(StateError::Overflow("nonce"))?;
        write(&mut self.nonces, *account, v);
        Ok(())
    }

    fn debit(&mut self, account: &PublicKey, asset: &Asset, amount: u64) -> Result<(), StateError> {
        let v = self
            .balance(account, asset)?
            .checked_sub(amount)
            .ok_or(StateError::Internal("debit below zero"))?;
        write(&mut self.balances, (*account, *asset), v);
        Ok(())
    }

    fn credit(
        &mut self,
        account: &PublicKey,
        asset: &Asset,
        amount: u64,
    ) -> Result<(), StateError> {
        let v = self
            .balance(account, asset)?
            .checked_add(amount)
            .ok_or(StateError::Overflow("balance credit"))?;
        write(&mut self.balances, (*account, *asset), v);
        Ok(())
    }

    fn set_multisig(&mut self, account: &PublicKey, config: Option<Arc<MultisigConfig>>) {
        write(&mut self.multisigs, *account, config);
    }

    fn set_energy(&mut self, account: &PublicKey, energy: EnergyState) {
        write(&mut self.energies, *account, energy);
    }

    fn add_burned(&mut self, amount: u64) -> Result<(), StateError> {
        self.burned = self
            .burned
            .checked_add(amount)
            .ok_or(StateError::Overflow("burned"))?;
        Ok(())
    }

    fn add_fee(&mut self, amount: u64) -> Result<(), StateError> {
        self.fees = self
            .fees
            .checked_add(amount)
            .ok_or(StateError::Overflow("fees"))?;
        Ok(())
    }
}

impl<S: Storage> BlockState for SequentialState<'_, S> {
    fn fees(&self) -> u64 {
        self.fees
    }

    fn burned(&self) -> u64 {
        self.burned
    }

    fn into_change_set(self, topoheight: TopoHeight) -> ChangeSet {
        fn dirty<K: Ord, T>(map: HashMap<K, Slot<T>>) -> impl Iterator<Item = (K, T)> {
            map.into_iter()
                .filter(|(_, s)| s.dirty)
                .map(|(k, s)| (k, s.value))
        }
        ChangeSet {
            topoheight,
            nonces: dirty(self.nonces).collect(),
            balances: dirty(self.balances).collect(),
            multisigs: dirty(self.multisigs)
                .map(|(k, v)| (k, v.map(|c| (*c).clone())))
                .collect(),
            energies: dirty(self.energies).collect(),
        }
    }
}

/// Credits the reward, then applies every transaction in block order;
/// with `costs`, also records each transaction's execution time.
fn apply_block<S: Storage>(
    state: &mut SequentialState<'_, S>,
    block: &Block,
    txs: &[VerifiedTx],
    pre: &PreState,
    mut costs: Option<&mut Vec<std::time::Duration>>,
) -> Result<(u64, Vec<TxResult>), BlockError> {
    let reward = credit_reward(state, block, pre)?;
    let mut results = Vec::with_capacity(txs.len());
    for vtx in txs {
        let start = costs.is_some().then(std::time::Instant::now);
        let status = match apply_transaction(vtx, &pre.ctx, state)? {
            Ok(()) => TxStatus::Ok,
            Err(f) => TxStatus::Orphaned(f),
        };
        if let (Some(costs), Some(start)) = (costs.as_deref_mut(), start) {
            costs.push(start.elapsed());
        }
        results.push(TxResult {
            hash: vtx.hash,
            status,
        });
    }
    Ok((reward, results))
}

/// Executes `block` sequentially on `storage` at `pre` (nothing is
/// written); `reason` is why the block runs sequentially (`policy.rs`).
pub fn execute_sequential<S: Storage>(
    storage: &S,
    block: &Block,
    pre: &PreState,
    reason: PathReason,
) -> Result<ExecutedBlock, BlockError> {
    let (txs, verify) = timed(|| verify_block_sequential(block, pre));
    let stats = BlockStats::chosen(ExecutionPath::Sequential, reason, verify);
    execute_sequential_verified(storage, block, &txs?, pre, stats)
}

/// [`execute_sequential`] after verification: `txs` must be what
/// [`verify_block_sequential`] returned for `block` (unchecked). The
/// parallel executor's in-order path, and profiling
/// (`examples/execute_only.rs`); not a node API.
#[doc(hidden)]
pub fn execute_sequential_verified<S: Storage>(
    storage: &S,
    block: &Block,
    txs: &[VerifiedTx],
    pre: &PreState,
    stats: BlockStats,
) -> Result<ExecutedBlock, BlockError> {
    let mut state = SequentialState::new(storage, pre.ctx.parent_topoheight);
    let (run, execute) = timed(|| apply_block(&mut state, block, txs, pre, None));
    let (reward, results) = run?;
    let stats = BlockStats { execute, ..stats };
    finish_block(state, block, pre, reward, results, stats)
}

/// The execution time of each transaction of `block` in a sequential run (for
/// the benchmark's ideal bound: W is their sum, C the cost-weighted critical
/// path). Nothing is written.
pub fn sequential_tx_costs<S: Storage>(
    storage: &S,
    block: &Block,
    pre: &PreState,
) -> Result<(Vec<VerifiedTx>, Vec<std::time::Duration>), BlockError> {
    let txs = verify_block_sequential(block, pre)?;
    let mut state = SequentialState::new(storage, pre.ctx.parent_topoheight);
    let mut costs = Vec::with_capacity(txs.len());
    apply_block(&mut state, block, &txs, pre, Some(&mut costs))?;
    Ok((txs, costs))
}
