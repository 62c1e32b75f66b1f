//! Test-only fault injection (cargo feature `fault-injection`, never in a
//! release build): lets tests prove that verify mode reports a mismatch.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::executor::ExecutedBlock;

/// Number of upcoming verify-mode blocks whose parallel result gets corrupted.
static ARMED: AtomicUsize = AtomicUsize::new(0);

/// Corrupt the parallel result of the next `blocks` verify-mode blocks: the
/// first written balance is raised by one.
pub fn arm(blocks: usize) {
    ARMED.store(blocks, Ordering::SeqCst);
}

pub(crate) fn corrupt(mut par: ExecutedBlock) -> ExecutedBlock {
    let take = ARMED
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if take {
        if let Some(v) = par.changes.balances.values_mut().next() {
            *v = v.wrapping_add(1);
        }
    }
    par
}
