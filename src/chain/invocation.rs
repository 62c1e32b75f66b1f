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
//! stored. Both are kept in [`Touched`], in the order first touched, so
//! that [`Invocation::commit`] writes them in an order fixed by the code
//! (not by a hasher's per-process seed).

use hashbrown::HashTable;
use ruint::aliases::U256;
use smallvec::SmallVec;

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

/// Above this many entries, a [`Touched`] indexes its keys by hash.
const INDEX_ABOVE: usize = 16;

/// The keys an invocation touched and what it keeps of each, in the order
/// first touched: a vector searched linearly while small (a call touches a
/// handful of slots and balances; a hash map's per-call seeding and
/// inserts cost more), indexed by [`key_hash`](crate::engine::key_hash)
/// above [`INDEX_ABOVE`] entries (a code may touch many thousands within
/// its gas: no quadratic search).
struct Touched<K, V> {
    /// Inline up to four (a call's usual count): no allocation.
    entries: SmallVec<[(K, V); 4]>,
    /// Invariant: empty, or one position per entry (built once `entries`
    /// outgrew [`INDEX_ABOVE`]).
    index: HashTable<u32>,
}

impl<K: Eq + std::hash::Hash, V> Touched<K, V> {
    fn new() -> Self {
        Touched {
            entries: SmallVec::new(),
            index: HashTable::new(),
        }
    }

    fn position(&self, key: &K) -> Option<usize> {
        if self.index.is_empty() {
            return self.entries.iter().position(|(k, _)| k == key);
        }
        let entries = &self.entries;
        self.index
            .find(crate::engine::key_hash(key), |&i| {
                entries[i as usize].0 == *key
            })
            .map(|&i| i as usize)
    }

    fn get(&self, key: &K) -> Option<&V> {
        self.position(key).map(|i| &self.entries[i].1)
    }

    /// The entry of `key`, created with `new` if it has none.
    fn entry(&mut self, key: K, new: impl FnOnce() -> V) -> &mut V {
        match self.position(&key) {
            Some(i) => &mut self.entries[i].1,
            None => self.push_new(key, new()),
        }
    }

    /// Sets `key`'s value, adding the key if it has none.
    fn set(&mut self, key: K, value: V) {
        match self.position(&key) {
            Some(i) => self.entries[i].1 = value,
            None => {
                self.push_new(key, value);
            }
        }
    }

    /// Adds `key`, which the caller found absent (one search, not two).
    fn push_new(&mut self, key: K, value: V) -> &mut V {
        self.entries.push((key, value));
        let i = self.entries.len() - 1;
        let entries = &self.entries;
        let hash = |&j: &u32| crate::engine::key_hash(&entries[j as usize].0);
        if !self.index.is_empty() {
            self.index
                .insert_unique(crate::engine::key_hash(&entries[i].0), i as u32, hash);
        } else if entries.len() > INDEX_ABOVE {
            for j in 0..entries.len() as u32 {
                self.index.insert_unique(hash(&j), j, hash);
            }
        }
        &mut self.entries[i].1
    }
}

/// The state of one invocation of `contract`, on `view`.
pub(crate) struct Invocation<'v, V> {
    view: &'v mut V,
    contract: PublicKey,
    /// The contract's slots read or stored: (word, stored).
    slots: Touched<[u8; 32], (U256, bool)>,
    /// Native balances read or changed.
    balances: Touched<PublicKey, Balance>,
}

impl<'v, V: View<StateKey, StateValue>> Invocation<'v, V> {
    /// An invocation of `contract` that has changed nothing yet.
    pub(crate) fn new(view: &'v mut V, contract: PublicKey) -> Self {
        Invocation {
            view,
            contract,
            slots: Touched::new(),
            balances: Touched::new(),
        }
    }

    /// The balance of `account` now, reading its base on first need.
    fn balance_now(&mut self, account: &PublicKey) -> StateResult<u64, V::ReadError> {
        let b = self.balances.entry(*account, Balance::default);
        if b.base.is_none() {
            b.base = Some(
                self.view
                    .counter(&StateKey::Balance(*account, NATIVE_ASSET))?,
            );
        }
        b.now()
            .ok_or_else(|| StateError::Invariant("an invocation's balance below zero"))
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
        let f = self.balances.entry(*from, Balance::default);
        f.debit += amount;
        f.written = true;
        self.credit(to, amount)?;
        Ok(true)
    }

    /// Credits `to` with `amount` (written, even for 0): the credit side
    /// of [`Self::pay`]; alone, from nowhere, only for an exploration
    /// (hints) whose source could not pay its deposit there.
    pub(crate) fn credit(&mut self, to: &PublicKey, amount: u64) -> StateResult<(), V::ReadError> {
        let t = self.balances.entry(*to, Balance::default);
        t.written = true;
        t.credit = t
            .credit
            .checked_add(amount)
            .ok_or_else(|| StateError::Overflow("contract credit"))?;
        Ok(())
    }

    /// Writes everything the invocation did to the view (the code ended
    /// with success).
    pub(crate) fn commit(self) -> StateResult<(), V::ReadError> {
        self.commit_into().map(drop)
    }

    /// [`Self::commit`], giving the view back.
    fn commit_into(self) -> StateResult<&'v mut V, V::ReadError> {
        let contract = self.contract;
        for (slot, (word, stored)) in self.slots.entries {
            if stored {
                self.view.set(
                    &StateKey::Slot(contract, Hash(slot)),
                    StateValue::Word(std::sync::Arc::new(bytes_of(&word))),
                )?;
            }
        }
        for (account, b) in self.balances.entries {
            let key = StateKey::Balance(account, NATIVE_ASSET);
            match b.base {
                _ if !b.written => {}
                // Only credited: an add (even of 0: a credit lists the account).
                None => self.view.add(&key, b.credit)?,
                Some(_) if b.credit >= b.debit => self.view.add(&key, b.credit - b.debit)?,
                Some(_) => self.view.sub(&key, b.debit - b.credit)?,
            }
        }
        Ok(self.view)
    }
}

impl<'v, V: View<StateKey, StateValue>> Invocation<'v, V> {
    /// For a run that explores the invocation (its hints) and did not
    /// succeed there: writes every slot it read or stored (its current
    /// word) and every balance it changed, as [`Self::commit`] would. At
    /// the tip it failed (a token holder short of the amount), but in its
    /// block, paid by an earlier transaction, it may pass the check that
    /// stopped it and write what it read: its hints then say so (a slot
    /// it only read is a hint to read, which the engine's dependency graph
    /// would not let it write), and the deposit's credit to the contract
    /// is hinted too. Gives the view back (the next path explored,
    /// `rules.rs`).
    pub(crate) fn explored(self) -> StateResult<&'v mut V, V::ReadError> {
        let contract = self.contract;
        for (slot, (word, _)) in &self.slots.entries {
            self.view.set(
                &StateKey::Slot(contract, Hash(*slot)),
                StateValue::Word(std::sync::Arc::new(bytes_of(word))),
            )?;
        }
        Invocation {
            slots: Touched::new(),
            ..self
        }
        .commit_into()
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
        // `get` found it absent, and reading the view touched no slot.
        self.slots.push_new(*slot, (word, false));
        Ok(word)
    }

    fn sstore(&mut self, slot: &[u8; 32], word: U256) -> Result<(), Self::Error> {
        self.slots.set(*slot, (word, true));
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

#[cfg(test)]
mod tests {
    use super::{Touched, INDEX_ABOVE};

    /// Found by value below and above the index threshold, one entry per
    /// key, kept in the order first touched.
    #[test]
    fn touched_finds_every_key_once_in_first_touch_order() {
        let mut t: Touched<[u8; 32], u64> = Touched::new();
        let n = 3 * INDEX_ABOVE;
        let key = |i: usize| {
            let mut k = [0u8; 32];
            k[..8].copy_from_slice(&(i as u64 * 7919).to_be_bytes());
            k
        };
        for round in 0..2u64 {
            for i in 0..n {
                *t.entry(key(i), || 0) += round + 1;
                let want = if round == 0 { 1 } else { 3 };
                assert_eq!(t.get(&key(i)), Some(&want));
            }
        }
        assert_eq!(t.entries.len(), n);
        assert!(!t.index.is_empty());
        for (i, (k, v)) in t.entries.iter().enumerate() {
            assert_eq!(*k, key(i));
            assert_eq!(*v, 3);
        }
        assert_eq!(t.get(&key(n)), None);
    }
}
