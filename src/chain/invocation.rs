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
//! Balances are kept as credits and debits, with the view's value read
//! only when the code needs it (`BALANCE`, a payment from the account), and
//! committed as one delta each (`add` or `sub`); slots as the word last
//! stored.

use std::collections::HashMap;

use ruint::aliases::U256;

use super::vm::{bytes_of, word_of, Host};
use crate::engine::{StateError, StateResult, View};
use crate::{Hash, PublicKey, StateKey, StateValue, NATIVE_ASSET};

/// One native balance the invocation touched.
#[derive(Clone, Copy, Debug, Default)]
struct Balance {
    /// The view's value, once the invocation needed it (a `BALANCE`, or a
    /// payment from this account); a balance only credited is never read,
    /// so credits to one account (every call's deposit to its contract)
    /// commute on the engine's optimistic path.
    base: Option<u64>,
    /// Credited so far.
    credit: u64,
    /// Debited so far (only after reading `base`: a debit checks it).
    debit: u64,
    /// Credited or debited, even by 0: committed (a credit of 0 lists an
    /// account).
    written: bool,
}

impl Balance {
    /// The value now, if the base was read.
    fn now(&self) -> Option<u64> {
        self.base
            .and_then(|b| b.checked_add(self.credit))
            .and_then(|b| b.checked_sub(self.debit))
    }
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

    /// The balance of `account` now, reading its base on first need.
    fn balance_now(&mut self, account: &PublicKey) -> StateResult<u64, V::ReadError> {
        let b = self.balances.entry(*account).or_default();
        if b.base.is_none() {
            b.base = Some(
                self.view
                    .counter(&StateKey::Balance(*account, NATIVE_ASSET))?,
            );
        }
        b.now()
            .ok_or(StateError::Invariant("an invocation's balance below zero"))
    }

    /// Moves `amount` from `from` to `to` if `from` holds it (`Ok(false)`
    /// otherwise, changing nothing); both are written, even for 0. Only
    /// `from`'s balance is read.
    pub(crate) fn pay(
        &mut self,
        from: &PublicKey,
        to: &PublicKey,
        amount: u64,
    ) -> StateResult<bool, V::ReadError> {
        if self.balance_now(from)? < amount {
            return Ok(false);
        }
        let f = self.balances.entry(*from).or_default();
        f.debit += amount;
        f.written = true;
        let t = self.balances.entry(*to).or_default();
        t.written = true;
        t.credit = t
            .credit
            .checked_add(amount)
            .ok_or(StateError::Overflow("contract credit"))?;
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
                    StateValue::Word(std::sync::Arc::new(bytes_of(&word))),
                )?;
            }
        }
        for (account, b) in self.balances {
            let key = StateKey::Balance(account, NATIVE_ASSET);
            match b.base {
                _ if !b.written => {}
                // Only credited: an add (even of 0: a credit lists the account).
                None => self.view.add(&key, b.credit)?,
                Some(_) if b.credit >= b.debit => self.view.add(&key, b.credit - b.debit)?,
                Some(_) => self.view.sub(&key, b.debit - b.credit)?,
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
        self.balance_now(account)
    }

    fn transfer(&mut self, to: &PublicKey, amount: u64) -> Result<bool, Self::Error> {
        let contract = self.contract;
        self.pay(&contract, to, amount)
    }
}
