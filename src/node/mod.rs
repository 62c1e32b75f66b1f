//! The node side of the SPEC chain: [`Blockchain`] (the API a synchronous
//! node calls: admission, blocks, rewinds), its configuration, the block
//! pipeline it runs (`pipeline.rs`: locate, check, run, what is committed),
//! what a block returns (`outcome.rs`) and why one is refused (`error.rs`).

pub mod blockchain;
pub mod config;
pub mod error;
pub mod outcome;
pub mod pipeline;
