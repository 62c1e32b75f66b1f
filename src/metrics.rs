//! Every block's [`BlockStats`] through the [`metrics`] facade (feature
//! `metrics`), for a node's dashboards. [`Blockchain::add_new_block`]
//! records each applied block; a node that drives the pipeline itself calls
//! [`record`]. Nothing is recorded unless the node installed a recorder
//! (Prometheus, StatsD...), and then each block costs a few atomic adds.
//!
//! | name | kind | labels | what |
//! |---|---|---|---|
//! | `tos_parallel_blocks_total` | counter | `path`, `reason` | blocks applied, by the path taken and why (`ExecutionPath::name`, `PathReason::name`) |
//! | `tos_parallel_parallel_engine_blocks_total` | counter | | blocks the parallel engine executed (in verify mode: on its parallel side) |
//! | `tos_parallel_transactions_total` | counter | | transactions of applied blocks |
//! | `tos_parallel_optimistic_transactions_total` | counter | | transactions the optimistic path speculated |
//! | `tos_parallel_optimistic_validations_total` | counter | | speculations it validated |
//! | `tos_parallel_optimistic_reexecutions_total` | counter | | transactions it executed again (aborts) |
//! | `tos_parallel_optimistic_estimates_total` | counter | | speculations it stopped at an estimate (a read of a key a declared transaction before it writes; among the re-executions) |
//! | `tos_parallel_sealed_transactions_total` | counter | | open transactions the dependency graph ran by their hints (sealed blocks that held) |
//! | `tos_parallel_sealed_escapes_total` | counter | | blocks tried sealed that did not hold (run again as open blocks) |
//! | `tos_parallel_cache_hits_total` | counter | | transactions found checked in the verification cache |
//! | `tos_parallel_cache_misses_total` | counter | | transactions checked at block time |
//! | `tos_parallel_state_cache_hits_total` | counter | | key reads the chain's tip cache served |
//! | `tos_parallel_mismatches_total` | counter | | differences verify mode found between the engines |
//! | `tos_parallel_phase_seconds` | histogram | `phase` = `verify`, `plan`, `execute`, `commit`, `commit_wait` | time of each phase of a block (`commit`: the write, inline or by the committer thread; `commit_wait`: a pipelined block's wait for room in the commit queue) |
//! | `tos_parallel_critical_path` | histogram | | longest chain of dependent transactions of a planned block |
//! | `tos_parallel_covered` | histogram | | transactions of covered sender chains in a planned block |
//! | `tos_parallel_hot_counters` | histogram | | counters striped per worker in a planned block |
//!
//! [`Blockchain::add_new_block`]: crate::Blockchain::add_new_block

use crate::node::outcome::BlockStats;

/// Describes every metric (units and help texts) to the installed
/// recorder; optional, call once after installing it.
pub fn describe() {
    use metrics::{describe_counter, describe_histogram, Unit};
    describe_counter!(
        "tos_parallel_blocks_total",
        "Blocks applied, by execution path and the reason for it"
    );
    describe_counter!(
        "tos_parallel_parallel_engine_blocks_total",
        "Blocks the parallel engine executed"
    );
    describe_counter!(
        "tos_parallel_transactions_total",
        "Transactions of applied blocks"
    );
    describe_counter!(
        "tos_parallel_optimistic_transactions_total",
        "Transactions the optimistic path speculated"
    );
    describe_counter!(
        "tos_parallel_optimistic_validations_total",
        "Speculations the optimistic path validated"
    );
    describe_counter!(
        "tos_parallel_optimistic_reexecutions_total",
        "Transactions the optimistic path executed again (aborts)"
    );
    describe_counter!(
        "tos_parallel_optimistic_estimates_total",
        "Speculations the optimistic path stopped at an estimate"
    );
    describe_counter!(
        "tos_parallel_sealed_transactions_total",
        "Open transactions the dependency graph ran by their hints"
    );
    describe_counter!(
        "tos_parallel_sealed_escapes_total",
        "Blocks tried sealed that did not hold"
    );
    describe_counter!(
        "tos_parallel_cache_hits_total",
        "Transactions found checked in the verification cache"
    );
    describe_counter!(
        "tos_parallel_cache_misses_total",
        "Transactions checked at block time"
    );
    describe_counter!(
        "tos_parallel_state_cache_hits_total",
        "Key reads the chain's tip cache served"
    );
    describe_counter!(
        "tos_parallel_mismatches_total",
        "Differences verify mode found between the engines"
    );
    describe_histogram!(
        "tos_parallel_phase_seconds",
        Unit::Seconds,
        "Time of each phase of a block"
    );
    describe_histogram!(
        "tos_parallel_critical_path",
        Unit::Count,
        "Longest chain of dependent transactions of a planned block"
    );
    describe_histogram!(
        "tos_parallel_covered",
        Unit::Count,
        "Transactions of covered sender chains in a planned block"
    );
    describe_histogram!(
        "tos_parallel_hot_counters",
        Unit::Count,
        "Counters striped per worker in a planned block"
    );
}

/// Records the committer thread's time writing one block (pipelined
/// commits: [`record`] then leaves the `commit` phase to it).
pub fn record_commit(took: std::time::Duration) {
    phase("commit", took);
}

/// One sample of `tos_parallel_phase_seconds`.
fn phase(name: &'static str, time: std::time::Duration) {
    metrics::histogram!("tos_parallel_phase_seconds", "phase" => name).record(time.as_secs_f64());
}

/// Records the stats of one applied block of `txs` transactions.
pub fn record(stats: &BlockStats, txs: usize) {
    metrics::counter!(
        "tos_parallel_blocks_total",
        "path" => stats.path.name(),
        "reason" => stats.reason.name()
    )
    .increment(1);
    if stats.parallel_engine {
        metrics::counter!("tos_parallel_parallel_engine_blocks_total").increment(1);
    }
    metrics::counter!("tos_parallel_transactions_total").increment(txs as u64);
    metrics::counter!("tos_parallel_optimistic_transactions_total")
        .increment(stats.optimistic as u64);
    metrics::counter!("tos_parallel_optimistic_validations_total")
        .increment(stats.validations as u64);
    metrics::counter!("tos_parallel_optimistic_reexecutions_total")
        .increment(stats.reexecutions as u64);
    metrics::counter!("tos_parallel_optimistic_estimates_total").increment(stats.estimates as u64);
    metrics::counter!("tos_parallel_sealed_transactions_total").increment(stats.sealed as u64);
    metrics::counter!("tos_parallel_sealed_escapes_total").increment(u64::from(stats.escaped));
    metrics::counter!("tos_parallel_cache_hits_total").increment(stats.cache_hits as u64);
    metrics::counter!("tos_parallel_cache_misses_total").increment(stats.cache_misses as u64);
    metrics::counter!("tos_parallel_state_cache_hits_total")
        .increment(stats.state_cache_hits as u64);
    metrics::counter!("tos_parallel_mismatches_total").increment(stats.mismatches as u64);
    let inline_commit = (!stats.pipelined).then_some(("commit", stats.commit));
    let waited = stats
        .pipelined
        .then_some(("commit_wait", stats.commit_wait));
    for (name, time) in [
        ("verify", stats.verify),
        ("plan", stats.plan),
        ("execute", stats.execute),
    ]
    .into_iter()
    .chain(inline_commit)
    .chain(waited)
    {
        phase(name, time);
    }
    if stats.keys > 0 {
        metrics::histogram!("tos_parallel_critical_path").record(stats.critical_path as f64);
        metrics::histogram!("tos_parallel_covered").record(stats.covered as f64);
        metrics::histogram!("tos_parallel_hot_counters").record(stats.hot_counters as f64);
    }
}
