//! One invocation's state (SPEC v2 §6 `InvokeContract`, §8): the VM's
//! [`Host`] over the engine's [`View`].
//!
//! Everything the code does (the deposit, its stores, its transfers) is
//! kept here, not in the view: reads see the view's value (the state left
//! by every earlier transaction of the block) under this invocation's own
//! changes, and only [`Invocation::commit`], called when the code ended
//! with success, writes them to the view. A code that ends with an
//! execution code is simply dropped, so "nothing it did remains" holds by
//! construction: no write to undo, no account listed by a credit that did
//! not stay.
//!
//! Balances are kept as the value first read and the current value, and
//! committed as one delta each (`add` or `sub`, even of 0: a credit of 0
//! lists an account); slots as the word last stored.

use std::collections::HashMap;

use ruint::aliases::U256;

use super::vm::{bytes_of, word_of, Host};
use crate::engine::{StateError, StateResult, View};
use crate::{Hash, PublicKey, StateKey, StateValue, NATIVE_ASSET};

/// One native balance the invocation touched.
#[derive(Clone, Copy, Debug)]
struct Balance {
    /// The view's value when first touched.
    base: u64,
    /// The value under this invocation's changes.
    now: u64,
    /// Credited or debited (then committed, even unchanged).
    written: bool,
}

/// The state of one invocation of `contract`, on `view`.
pub(crate) struct Invocation<'v, V> {
    view: &'v mut V,
    contract: PublicKey,
    /// The contract's slots read or stored: (word, stored).
    slots: HashMap<[u8; 32], (U256, bool), ahash::RandomState>,
    /// Native balances read or changed.
    balances: HashMap<PublicKey, Balance, ahash::RandomState>,
}

impl<'v, V: View<StateKey, StateValue>> Invocation<'v, V> {
    /// An invocation of `contract` that has changed nothing yet.
    pub(crate) fn new(view: &'v mut V, contract: PublicKey) -> Self {
        Invocation {
            view,
            contract,
            slots: HashMap::default(),
            balances: HashMap::default(),
        }
    }

    fn balance_entry(&mut self, account: &PublicKey) -> StateResult<&mut Balance, V::ReadError> {
        if !self.balances.contains_key(account) {
            let base = self
                .view
                .counter(&StateKey::Balance(*account, NATIVE_ASSET))?;
            self.balances.insert(
                *account,
                Balance {
                    base,
                    now: base,
                    written: false,
                },
            );
        }
        self.balances
            .get_mut(account)
            .ok_or(StateError::Invariant("a balance just inserted is missing"))
    }

    /// Moves `amount` from `from` to `to` if `from` holds it (`Ok(false)`
    /// otherwise, changing nothing); both are written, even for 0.
    pub(crate) fn pay(
        &mut self,
        from: &PublicKey,
        to: &PublicKey,
        amount: u64,
    ) -> StateResult<bool, V::ReadError> {
        let f = self.balance_entry(from)?;
        if f.now < amount {
            return Ok(false);
        }
        f.now -= amount;
        f.written = true;
        let t = self.balance_entry(to)?;
        t.now = t
            .now
            .checked_add(amount)
            .ok_or(StateError::Overflow("contract credit"))?;
        t.written = true;
        Ok(true)
    }

    /// Writes everything the invocation did to the view (the code ended
    /// with success).
    pub(crate) fn commit(self) -> StateResult<(), V::ReadError> {
        let contract = self.contract;
        for (slot, (word, stored)) in self.slots {
            if stored {
                self.view.set(
                    &StateKey::Slot(contract, Hash(slot)),
                    StateValue::Word(bytes_of(&word)),
                )?;
            }
        }
        for (account, b) in self.balances {
            if !b.written {
                continue;
            }
            let key = StateKey::Balance(account, NATIVE_ASSET);
            if b.now >= b.base {
                self.view.add(&key, b.now - b.base)?;
            } else {
                self.view.sub(&key, b.base - b.now)?;
            }
        }
        Ok(())
    }
}

impl<V: View<StateKey, StateValue>> Host for Invocation<'_, V> {
    type Error = StateError<V::ReadError>;

    fn sload(&mut self, slot: &[u8; 32]) -> Result<U256, Self::Error> {
        if let Some((word, _)) = self.slots.get(slot) {
            return Ok(*word);
        }
        let word = match self.view.get(&StateKey::Slot(self.contract, Hash(*slot)))? {
            None => U256::ZERO,
            Some(StateValue::Word(w)) => word_of(&w),
            Some(_) => return Err(StateError::Invariant("a slot holds another value")),
        };
        self.slots.insert(*slot, (word, false));
        Ok(word)
    }

    fn sstore(&mut self, slot: &[u8; 32], word: U256) -> Result<(), Self::Error> {
        self.slots.insert(*slot, (word, true));
        Ok(())
    }

    fn balance(&mut self, account: &PublicKey) -> Result<u64, Self::Error> {
        Ok(self.balance_entry(account)?.now)
    }

    fn transfer(&mut self, to: &PublicKey, amount: u64) -> Result<bool, Self::Error> {
        let contract = self.contract;
        self.pay(&contract, to, amount)
    }
}
