//! Test-only fault injection (cargo feature `fault-injection`, never in a
//! release build): lets tests prove that verify mode reports a mismatch.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::engine::{Chain, Executed};
use crate::{StateKey, StateValue};

/// Number of upcoming verify-mode blocks whose parallel result gets corrupted.
static ARMED: AtomicUsize = AtomicUsize::new(0);

/// Corrupt the parallel result of the next `blocks` verify-mode blocks: the
/// first written balance is raised by one.
pub fn arm(blocks: usize) {
    ARMED.store(blocks, Ordering::SeqCst);
}

pub(crate) fn corrupt<C>(mut par: Executed<C>) -> Executed<C>
where
    C: Chain<Key = StateKey, Value = StateValue>,
{
    let take = ARMED
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if take {
        let balance = par
            .writes
            .parts
            .iter_mut()
            .flatten()
            .find_map(|(k, v)| match (k, v) {
                (StateKey::Balance(..), StateValue::Counter(n)) => Some(n),
                _ => None,
            });
        if let Some(n) = balance {
            *n = n.wrapping_add(1);
        }
    }
    par
}

/// Transactions whose execution panics (the rule engine checks it first).
static PANIC_ON: parking_lot::Mutex<Vec<crate::Hash>> = parking_lot::Mutex::new(Vec::new());
/// `!PANIC_ON.is_empty()`, readable without the lock (a hint only: the
/// lock decides).
static ANY_PANIC: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Makes the rule engine panic whenever it executes the transaction with
/// `hash` (in every engine), until [`clear_panics`].
pub fn panic_on(hash: crate::Hash) {
    PANIC_ON.lock().push(hash);
    ANY_PANIC.store(true, Ordering::SeqCst);
}

/// Forgets every transaction marked by [`panic_on`].
pub fn clear_panics() {
    PANIC_ON.lock().clear();
    ANY_PANIC.store(false, Ordering::SeqCst);
}

/// Panics if `hash` is marked (called by the rule engine).
pub(crate) fn panic_if_marked(hash: &crate::Hash) {
    if ANY_PANIC.load(Ordering::SeqCst) && PANIC_ON.lock().contains(hash) {
        panic!("fault injection: rule panicked on transaction {hash}");
    }
}

/// Block writes left before the one that fails (0: none fails).
static FAIL_WRITE: AtomicUsize = AtomicUsize::new(0);

/// Makes the `n`-th block write from now fail (`1`: the next one) with a
/// typed storage error, as a full disk would: inline or by the committer
/// thread, nothing of that block is written. `0` disarms. Process-wide:
/// a test that arms it must not write blocks of other chains meanwhile.
pub fn fail_write(n: usize) {
    FAIL_WRITE.store(n, Ordering::SeqCst);
}

/// True for the write [`fail_write`] chose (called before every block write).
pub(crate) fn write_fails() -> bool {
    FAIL_WRITE.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)) == Ok(1)
}
