//! The node side of the SPEC chain: [`Blockchain`] (the API a synchronous
//! node calls: admission, blocks, rewinds), its configuration, the block
//! pipeline it runs (`pipeline.rs`: locate, check, run, what is committed),
//! what a block returns (`outcome.rs`) and why one is refused (`error.rs`).
//! The commit pipeline: executed blocks wait for their write in a queue
//! that a committer thread drains (`committer.rs`), and later blocks read
//! the storage through them (`overlay.rs`), and through the tip cache that
//! keeps the latest values of recently used keys from block to block
//! (`tip_cache.rs`). Background admissions are counted so that a chain
//! outlives them (`admissions.rs`).

mod admissions;
pub mod blockchain;
mod committer;
pub mod config;
pub mod error;
pub mod outcome;
mod overlay;
pub mod pipeline;
mod tip_cache;
