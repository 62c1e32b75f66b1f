//! The SPEC chain's state on the engine: [`StateKey`]s and [`StateValue`]s
//! (defined by the storage crate, which stores them) as engine keys and
//! values, and the reader over a SPEC store.
//!
//! Nonces and balances are counters (absent reads 0); multisig configs and
//! energy states are records.

use tos_storage::{StateKey, StateRead, StateValue, StorageError, TopoHeight};

use crate::engine::{Key, Reader, Value};

impl Key for StateKey {
    fn is_counter(&self) -> bool {
        matches!(self, StateKey::Nonce(_) | StateKey::Balance(..))
    }

    /// Every key of one account shares a partition: a transaction's own
    /// nonce, multisig config and balances live with one worker.
    fn affinity(&self) -> u64 {
        crate::engine::key_hash(self.account())
    }
}

impl Value for StateValue {
    fn as_counter(&self) -> Option<u64> {
        match self {
            StateValue::Counter(n) => Some(*n),
            _ => None,
        }
    }

    fn from_counter(n: u64) -> Self {
        StateValue::Counter(n)
    }
}

/// A SPEC store read at one topoheight: the engine's [`Reader`] for a block
/// executed on the state at `at`.
#[derive(Clone, Debug)]
pub struct StoreReader<S> {
    /// The store (the executor's clone).
    pub storage: S,
    /// The topoheight every read uses (the block's parent).
    pub at: TopoHeight,
}

impl<S: StateRead> Reader<StateKey, StateValue> for StoreReader<S> {
    type Error = StorageError;

    fn read(&self, key: &StateKey) -> Result<Option<StateValue>, StorageError> {
        self.storage.get(key, self.at)
    }

    fn read_batch(
        &self,
        keys: &[&StateKey],
        out: &mut Vec<Option<StateValue>>,
    ) -> Result<(), StorageError> {
        self.storage.get_batch(keys, self.at, out)
    }
}
