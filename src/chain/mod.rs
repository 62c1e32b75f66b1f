//! The SPEC chain (`../shared/SPEC.md`): the engine's reference
//! instantiation.
//!
//! * `constants.rs`: SPEC §1; `transaction.rs`: the wire format (§2);
//!   `block.rs` and `genesis.rs`: blocks and genesis (§3); `dump.rs`: the
//!   observable results (§7); `error.rs`: the SPEC codes and input errors.
//! * `validation.rs`: the stateless checks (§5), and what execution derives
//!   from a transaction alone ([`VerifiedTx`]: its declared accesses; an
//!   invocation's are open: its slots, `BALANCE` reads and `TRANSFER`
//!   recipients are found by running it).
//! * `vm/`: the contracts' virtual machine (§8), knowing nothing of the
//!   engine: the rules run it through a host that buffers its effects.
//! * `rules.rs`: the stateful rules (§6) and the block hooks (§4.2, §4.4);
//!   `invocation.rs`: an invocation's buffered state (the VM's host),
//!   on the engine's `View`; `covered.rs`: the proof that a sender's chain
//!   of transactions commutes (covered sender chains).
//! * `keys.rs`: the state ([`crate::StateKey`], [`crate::StateValue`]) as
//!   engine keys and values, and the reader over a SPEC store.
//!
//! [`SpecChain`] ties them to the engine's [`Chain`] contract.

pub mod block;
pub mod constants;
mod covered;
pub mod dump;
pub mod error;
pub mod genesis;
mod invocation;
mod keys;
pub(crate) mod rules;
pub mod transaction;
pub mod validation;
pub mod vm;

pub use keys::StoreReader;
pub use rules::{BlockContext, SUM_BURNED, SUM_FEES};
pub use validation::VerifiedTx;

use crate::engine::{Accesses, Chain, Mode, ProofView, StateResult, View};
use crate::{StateKey, StateValue, NATIVE_ASSET};
use error::TxFailure;

/// The SPEC chain's rules, for the engine.
#[derive(Clone, Copy, Debug, Default)]
pub struct SpecChain;

impl Chain for SpecChain {
    type Key = StateKey;
    type Value = StateValue;
    type Tx = VerifiedTx;
    type Failure = TxFailure;
    type Block = BlockContext;

    /// Native fees ([`SUM_FEES`]) and native burned ([`SUM_BURNED`]).
    const SUMS: usize = 2;

    fn accesses<'t>(&self, tx: &'t VerifiedTx) -> &'t Accesses<StateKey> {
        &tx.accesses
    }

    fn block_accesses(&self, block: &BlockContext) -> Accesses<StateKey> {
        let mut a = Accesses::new();
        a.push(StateKey::Balance(block.miner, NATIVE_ASSET), Mode::Write);
        a
    }

    fn begin_block<V: View<StateKey, StateValue>>(
        &self,
        block: &BlockContext,
        view: &mut V,
    ) -> StateResult<(), V::ReadError> {
        rules::begin_block(block, view)
    }

    fn execute<V: View<StateKey, StateValue>>(
        &self,
        block: &BlockContext,
        tx: &VerifiedTx,
        proven: bool,
        view: &mut V,
    ) -> StateResult<Result<(), TxFailure>, V::ReadError> {
        rules::execute(tx, block, proven, view)
    }

    fn explore<V: View<StateKey, StateValue>>(
        &self,
        block: &BlockContext,
        tx: &VerifiedTx,
        view: &mut V,
    ) -> StateResult<(), V::ReadError> {
        rules::explore(tx, block, view)
    }

    fn end_block<V: View<StateKey, StateValue>>(
        &self,
        block: &BlockContext,
        sums: &[u64],
        view: &mut V,
    ) -> StateResult<(), V::ReadError> {
        rules::end_block(block, sums, view)
    }

    fn prove<R: ProofView<StateKey, StateValue>>(
        &self,
        _block: &BlockContext,
        group: &[&VerifiedTx],
        view: &mut R,
    ) -> StateResult<bool, R::ReadError> {
        covered::covered(group, view)
    }
}
