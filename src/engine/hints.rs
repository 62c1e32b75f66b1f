//! Hints: the keys an open transaction touched when the node ran it
//! before its block (on the state at the tip, when it was admitted), kept
//! with the transaction ([`Accesses::hint`]).
//!
//! An open transaction's keys beyond its declaration are known only by
//! running it (a contract's slots, an account a contract stored). The
//! engine finds them as the block runs; a hint lets it read them before,
//! in the block's one batch read (`sequential.rs`, the preload of the
//! sequential engine and of the optimistic path), instead of one lazy read
//! each, in the middle of execution. A hint is never enforced and never
//! changes a result: a transaction whose execution in the block touches
//! other keys (the state changed since the tip; another branch of the
//! contract ran) touches them all the same, and a hinted key it does not
//! touch cost one read. So a hint may be stale, partial or wrong.
//!
//! [`discover`] runs a transaction on a reader through the optimistic
//! path's recording view ([`Chain::explore`], nothing written anywhere)
//! and returns what it touched beyond its declaration, with the mode of
//! each use; the chain stores them with [`Accesses::hint`].

#[cfg(doc)]
use super::contract::Accesses;
use super::contract::{Chain, Mode, Reader, StateResult};
use super::optimistic::explore;

/// The keys `tx` touches beyond its declared accesses when explored
/// ([`Chain::explore`]) on `reader` (the state it is expected to run on,
/// e.g. the tip), each once: [`Mode::Read`] if it only read the key,
/// [`Mode::Add`] if it only added to the counter, [`Mode::Write`]
/// otherwise. `block` is the context to explore in (the next block's, as
/// far as the node knows it). Nothing is written anywhere. An error means
/// the exploration could not run to its end (the transaction would fail
/// here, or a read failed): the node then keeps no hints.
pub fn discover<C: Chain, R: Reader<C::Key, C::Value>>(
    chain: &C,
    block: &C::Block,
    tx: &C::Tx,
    reader: &R,
) -> StateResult<Vec<(C::Key, Mode)>, R::Error> {
    explore(chain, block, tx, reader)
}
