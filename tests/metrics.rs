//! Feature `metrics`: every applied block's stats reach the installed
//! recorder under the documented names (src/metrics.rs).
#![cfg(feature = "metrics")]

mod oracle;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use oracle::*;
use tos_parallel::{Blockchain, ExecutionConfig, ExecutionMode};

/// Sums of every counter and histogram, by name and labels.
#[derive(Default)]
struct Seen(Mutex<BTreeMap<String, f64>>);

struct Handle(Arc<Seen>, String);

impl metrics::CounterFn for Handle {
    fn increment(&self, value: u64) {
        *self.0 .0.lock().unwrap().entry(self.1.clone()).or_default() += value as f64;
    }
    fn absolute(&self, value: u64) {
        self.0
             .0
            .lock()
            .unwrap()
            .insert(self.1.clone(), value as f64);
    }
}

impl metrics::HistogramFn for Handle {
    fn record(&self, value: f64) {
        *self.0 .0.lock().unwrap().entry(self.1.clone()).or_default() += value;
        *self
            .0
             .0
            .lock()
            .unwrap()
            .entry(format!("{} count", self.1))
            .or_default() += 1.0;
    }
}

struct Capture(Arc<Seen>);

fn name(key: &Key) -> String {
    let labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

impl Recorder for Capture {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(Arc::new(Handle(self.0.clone(), name(key))))
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(Arc::new(Handle(self.0.clone(), name(key))))
    }
}

#[test]
fn block_stats_reach_the_recorder() {
    let seen = Arc::new(Seen::default());
    metrics::set_global_recorder(Capture(seen.clone())).expect("one recorder");
    tos_parallel::metrics::describe();
    let world = World::new(40, 4);
    let chain = Blockchain::new(
        world.storage(1),
        ExecutionConfig {
            mode: ExecutionMode::Verify,
            threads: 2,
            min_txs_for_parallel: 2,
            ..ExecutionConfig::default()
        },
    )
    .unwrap();
    let mut r = rng(4);
    let mut txs = 0;
    for _ in 0..3 {
        let block = chaos_block(&world, &*chain.storage(), &mut r, 30, Contention::Keys(40));
        for bytes in block.txs().iter().take(10) {
            let _ = chain.admit(bytes);
        }
        txs += block.txs().len();
        chain.add_new_block(&block).unwrap();
    }
    // The committer thread records each write's time once written.
    chain.flush().unwrap();
    let seen = seen.0.lock().unwrap();
    let get = |k: &str| seen.get(k).copied().unwrap_or(0.0);
    assert_eq!(
        get("tos_parallel_blocks_total{path=verify,reason=parallel}"),
        3.0,
        "{seen:?}"
    );
    assert_eq!(get("tos_parallel_parallel_engine_blocks_total{}"), 3.0);
    assert_eq!(get("tos_parallel_transactions_total{}"), txs as f64);
    assert_eq!(get("tos_parallel_cache_hits_total{}"), 30.0);
    assert_eq!(get("tos_parallel_cache_misses_total{}"), (txs - 30) as f64);
    assert_eq!(get("tos_parallel_mismatches_total{}"), 0.0);
    for phase in ["verify", "plan", "execute", "commit", "commit_wait"] {
        assert_eq!(
            get(&format!(
                "tos_parallel_phase_seconds{{phase={phase}}} count"
            )),
            3.0,
            "{phase}"
        );
    }
    assert_eq!(get("tos_parallel_critical_path{} count"), 3.0);
}
