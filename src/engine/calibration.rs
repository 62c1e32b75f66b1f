//! Measured path choice: what the executor learned from the node's own
//! blocks (issue: a guard tuned to one chain's costs made another chain's
//! node three times slower).
//!
//! For each block-size class (`log2` of the transaction count) the
//! executor keeps the measured time per transaction of the two ways it can
//! run a block: in order (the sequential engine) and on the parallel
//! engine. [`Calibration::advise`] then says:
//! * nothing ([`Advice::Static`]) until one way was measured: the static
//!   guards of `policy.rs` decide, and whatever ran is measured;
//! * the way not measured yet, once (a *probe*: one block, or up to
//!   [`DEFAULT_PROBE_BLOCKS`] for the default way, see "Cold probes"
//!   below), on the next block, or
//!   after `probe_every` blocks when the first block ran in order by
//!   prediction (`Executor::predicts_in_order`: its first transactions'
//!   in-order cost against their plan's);
//!   a probe's measurement replaces that way's estimate (it is a fresh
//!   look; the old one may come from a cold first block, which once kept
//!   a warm `disjoint` block in order for good);
//! * then the static guards' way (the *default*: what they chose for the
//!   class's first block, or the winner of the last duel, see "Duels"
//!   below) unless the other way measured at least
//!   [`MARGIN`] times faster per transaction, probing the way not taken
//!   again after `probe_every` blocks of the class: 16 at first, doubled
//!   after every probe that lost (up to 512), back to 16 after one that
//!   won, and after the way in use changed on its own blocks'
//!   measurements (the one in use slowed: costs are moving). A chain
//!   on which one way loses pays for it on at most 1 block in 16, then 1
//!   in 512 (3 when the losing way is the default one).
//!
//! The margin: estimates come from different blocks, whose costs drift (a
//! database growing, caches warming, a mix of payloads): measured on
//! `mixed` blocks over RocksDB, a plain "faster estimate wins" flipped a
//! chain the parallel engine runs 1.3-1.5x faster to in order. The
//! motivating chains lose or gain far more than that (the token ledger's
//! parallel engine: 3.5x slower).
//!
//! Duels: a way faster by less than the margin was kept for good (a
//! 180-transaction `contracts-mixed` block: the parallel engine at 0.85x
//! of in order, which measured 1.18x faster). So when a probe ends with
//! the default way preferred but the other (the *challenger*) measured at
//! least [`DUEL_MARGIN`] (1.05) times faster, the class runs a *duel*: up
//! to [`DUEL_ROUNDS`] rounds of two blocks in order then two on the
//! parallel engine, each round measuring each way by its faster block (the
//! first block after a switch meets cold caches and an idle pool: see
//! "Cold probes"). Blocks of one round are a few blocks apart, so a drift
//! of costs (a database growing, caches warming) moves both ways alike,
//! which estimates from different stretches of blocks do not. The
//! challenger wins if it measured [`DUEL_MARGIN`] times faster in all
//! rounds but one (one round taken by another process cannot decide it),
//! and becomes the default way; the duel ends as soon as that is decided:
//! after three rounds won, two lost, or one lost by [`MARGIN`] before any
//! was won (the close call was a misreading, say a probe's cold block:
//! the token ledger with costly transactions, whose parallel engine gains
//! 1.5x, would otherwise have spent eight of a 16-block run in order).
//! Both ways' estimates are then the duel's rounds, and the way not
//! preferred is probed again twice as late, as after a lost probe. A duel
//! only starts at the end of a probe, so duels are at least as far apart
//! as probes (16, then up to 512 blocks), and a challenger that is clearly
//! slower costs one round.
//!
//! Noise: a way's estimate is the lower median of its last [`WINDOW`]
//! blocks (of two, the faster: interference only ever makes a block
//! slower), so one or two slow blocks in five (a core taken by another
//! process on a shared machine: on the 2-core test machine a warm
//! 1,000-transfer block's parallel time ranges over 0.2-0.6 ms) cannot
//! flip the way taken. With the exponentially weighted mean it replaced
//! (weight 0.3), one block in four at 5x the usual time kept a 1.7x
//! faster parallel engine on 46 blocks of 400 (the unit test below).
//!
//! Cold probes: after a long stretch in order, the parallel engine meets
//! a pool, a core and caches that are cold, and on this machine its first
//! blocks take 1.5-2.3x a warm one (criterion's warm `uniform` block:
//! 480-720 µs, then 450-490, against 250), so a one-block probe could lose
//! to in order (325 µs) although the parallel engine, once warm, is 1.3x
//! faster, and the next probe came 2x later: a whole criterion run then
//! measured 0.87x. A probe of the *default* way (what the static guards
//! chose) therefore runs up to [`DEFAULT_PROBE_BLOCKS`] blocks, ending on
//! the first that wins, and keeps its fastest. So does a probe of in
//! order when the parallel engine is the default: its first block after
//! parallel ones meets a cold overlay (the sequential engine's table,
//! untouched since the last in-order block), measured 490-550 µs on a
//! `uniform` block whose warm in-order blocks take 335-370 µs, so in order
//! had to be about 1.9x faster, not [`MARGIN`], to be taken: when the
//! machine's second core was taken and the parallel engine slowed to 460
//! µs, it was kept at 0.77x of the sequential engine (`examples/execute_only`
//! with `TRACE=1` shows every block's way and time). Its extra blocks
//! cost at most what the parallel engine gains on them. In order's first
//! probe stays one block: it only gives a first estimate, which the next
//! probe refines, and a short run (a 6-block `bench` row) would otherwise
//! spend half its blocks in order. A probe of the parallel engine when it
//! is not the default runs one block (below).
//! The class's first block on the parallel engine is the
//! coldest of all (the pool's first run): when the static guards chose
//! the parallel engine and in order's probe beats that first block alone,
//! the parallel engine is probed again on the next block (its up to three
//! blocks) instead of `probe_every` blocks later; a chain whose parallel
//! engine really loses pays those three blocks once. (Not when in order
//! is the default: its first block runs on the caller, not cold for want
//! of use, and re-probing it cost `hot-sender` on RocksDB, whose parallel
//! engine is about [`MARGIN`] times faster, up to three in-order blocks.)
//! A chain whose parallel engine really loses has its first
//! block predicted in order (`PathReason::Predicted`: the token
//! ledger), so in order is its default and its probes of the parallel
//! engine stay one block (tried the other way round, probes of two to
//! four blocks for both ways cost the token ledger 0.90-0.95x of the
//! sequential engine over 64 blocks instead of 0.97-0.99x).
//!
//! What a block costs: the time of the executor's work on it, plus, for a
//! block announced by `Executor::prepare` (which wakes the pool's workers
//! only when the look-ahead says parallel), what that wake cost the
//! caller: a cost only the parallel engine's blocks pay (5-9% of a
//! 180-transaction block on the reference machine).
//!
//! Only speed depends on it: both ways give the same result, so any
//! advice, from any interleaving, is correct. The state is plain data
//! behind one mutex, taken twice per block (advise, record) by the thread
//! executing the block; no ordering of those sections can yield a wrong
//! result, only a different (valid) path, which is why it has no loom
//! model. Guards off (verify mode's parallel side, `always_parallel`,
//! tests, fuzzing), it is never consulted.

use std::time::Duration;

use parking_lot::Mutex;

/// Block-size classes: `log2` of the transaction count, capped.
const CLASSES: usize = 25;

/// Blocks of a class between two probes, at first and at most.
pub(crate) const PROBE_FIRST: u32 = 16;
/// The longest wait between two probes.
pub(crate) const PROBE_MAX: u32 = 512;

/// Blocks a way's estimate is the lower median of.
pub(crate) const WINDOW: usize = 5;

/// Blocks a probe of the default way (what the static guards chose for the
/// class's first block) may run; it ends on the first that wins. A probe
/// of the other way runs one block.
pub(crate) const DEFAULT_PROBE_BLOCKS: u32 = 3;

/// How much faster per transaction the way the static guards did not
/// choose must measure to be taken instead, on estimates from different
/// blocks (a probe's against the default way's recent blocks).
pub(crate) const MARGIN: f64 = 1.25;

/// Rounds of a duel (two blocks of each way per round).
pub(crate) const DUEL_ROUNDS: usize = 4;

/// How much faster per transaction a way must measure in a duel, in all
/// but one of its rounds, to become the default: the closeness a paired
/// comparison can tell from noise (the issue: a node at least 0.95x the
/// sequential engine).
pub(crate) const DUEL_MARGIN: f64 = 1.05;

/// What the executor should do with a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Advice {
    /// No measurement yet: the static guards decide.
    Static,
    /// In order (measured faster, or a probe).
    InOrder,
    /// On the parallel engine, static guards skipped (measured faster, or
    /// a probe).
    Parallel,
}

/// A way's measured time per transaction.
#[derive(Clone, Copy, Debug, Default)]
struct Estimate {
    /// The last measurements (nanoseconds per transaction), the oldest
    /// overwritten first; the first `min(samples, WINDOW)` are set.
    recent: [f64; WINDOW],
    /// Measurements taken since the estimate was last replaced.
    samples: u32,
}

impl Estimate {
    /// An estimate of one measurement (a probe's: a fresh look).
    fn fresh(ns_per_tx: f64) -> Self {
        let mut e = Estimate::default();
        e.add(ns_per_tx);
        e
    }

    fn add(&mut self, ns_per_tx: f64) {
        self.recent[self.samples as usize % WINDOW] = ns_per_tx;
        self.samples = self.samples.saturating_add(1);
    }

    /// The lower median of the recent measurements.
    fn ns_per_tx(&self) -> f64 {
        let n = (self.samples as usize).min(WINDOW);
        let mut v = self.recent;
        let v = &mut v[..n];
        v.sort_by(f64::total_cmp);
        v.get(n.saturating_sub(1) / 2).copied().unwrap_or(0.0)
    }
}

/// One block-size class.
#[derive(Clone, Copy, Debug)]
struct Class {
    in_order: Estimate,
    parallel: Estimate,
    /// Blocks of the class before the next probe.
    until_probe: u32,
    /// What `until_probe` restarts from.
    probe_every: u32,
    /// The probe under way, if any.
    probe: Option<Probe>,
    /// The static guards' way for the class (`true`: in order), from its
    /// first block.
    default_in_order: Option<bool>,
    /// The first block was predicted faster in order: the first probe of
    /// the parallel engine waits `until_probe` blocks, as later ones do.
    deferred: bool,
    /// The default way is the parallel engine and its estimate is the
    /// class's first block alone (a pool's first run, caches cold): if in
    /// order's probe beats it, the parallel engine is probed again at once.
    cold_default: bool,
    /// The way last advised outside a probe (`true`: in order).
    way: Option<bool>,
    /// The duel under way, if any (never together with a probe).
    duel: Option<Duel>,
}

impl Default for Class {
    fn default() -> Self {
        Class {
            in_order: Estimate::default(),
            parallel: Estimate::default(),
            until_probe: PROBE_FIRST,
            probe_every: PROBE_FIRST,
            probe: None,
            default_in_order: None,
            deferred: false,
            cold_default: false,
            way: None,
            duel: None,
        }
    }
}

/// A duel under way: up to [`DUEL_ROUNDS`] rounds of two blocks in order
/// then two on the parallel engine, in which the way that is not the
/// default (the *challenger*) must measure [`DUEL_MARGIN`] times faster in
/// all rounds but one. Invariant: it is under way only while undecided (a
/// decided duel has ended and is `None`).
#[derive(Clone, Copy, Debug)]
struct Duel {
    /// Blocks recorded so far.
    block: u32,
    /// The rounds' fastest block of each way (ns per transaction):
    /// `[in order, parallel]`; the current round's infinite until run.
    best: [[f64; 2]; DUEL_ROUNDS],
    /// Rounds the challenger won (measured [`DUEL_MARGIN`] times faster).
    wins: usize,
    /// Rounds it did not.
    losses: usize,
}

impl Duel {
    fn new() -> Self {
        Duel {
            block: 0,
            best: [[f64::INFINITY; 2]; DUEL_ROUNDS],
            wins: 0,
            losses: 0,
        }
    }

    /// The way of the next block (`true`: in order).
    fn way(&self) -> bool {
        self.block % 4 < 2
    }

    /// Records the next block of a duel whose challenger is
    /// `challenger` (`true`: in order); once the duel is decided, whether
    /// the challenger won. It is decided as soon as the challenger won all
    /// rounds but one, or lost two (it can no longer win), or lost a round
    /// by [`MARGIN`] before winning any (the close call was a misreading:
    /// a probe's cold block, noise).
    fn record(&mut self, ns_per_tx: f64, challenger: bool) -> Option<bool> {
        let (round, way) = ((self.block / 4) as usize, usize::from(!self.way()));
        self.best[round][way] = self.best[round][way].min(ns_per_tx);
        self.block += 1;
        if !self.block.is_multiple_of(4) {
            return None;
        }
        let [s, p] = self.best[round];
        // The default's time over the challenger's: above 1, the
        // challenger was faster.
        let ratio = if challenger { p / s } else { s / p };
        if ratio >= DUEL_MARGIN {
            self.wins += 1;
        } else {
            self.losses += 1;
        }
        if self.wins + 1 >= DUEL_ROUNDS {
            Some(true)
        } else if self.losses >= 2 || (self.wins == 0 && ratio * MARGIN <= 1.0) {
            Some(false)
        } else {
            None
        }
    }

    /// Each way's estimate: the fastest blocks of the rounds run.
    fn estimates(&self) -> [Estimate; 2] {
        let mut e = [Estimate::default(); 2];
        for round in &self.best[..(self.block / 4) as usize] {
            for (w, &t) in round.iter().enumerate() {
                e[w].add(t);
            }
        }
        e
    }
}

/// A probe under way. Invariant: `left >= 1` (a probe with no block left
/// has ended and is `None`).
#[derive(Clone, Copy, Debug)]
struct Probe {
    /// The way it runs (`true`: in order).
    in_order: bool,
    /// Blocks it may still run.
    left: u32,
    /// Its fastest block so far (ns per transaction).
    best: f64,
}

impl Class {
    /// Starts a probe of a way: [`DEFAULT_PROBE_BLOCKS`] blocks at most for
    /// the default way and for in order once it was measured, one block
    /// for the parallel engine when it is not the default and for in
    /// order's first probe (see "Cold probes" in the module docs).
    fn probe(&mut self, in_order: bool) -> Advice {
        let measured_in_order = in_order && self.in_order.samples > 0;
        let left = if measured_in_order || self.default_in_order == Some(in_order) {
            DEFAULT_PROBE_BLOCKS
        } else {
            1
        };
        self.probe = Some(Probe {
            in_order,
            left,
            best: f64::INFINITY,
        });
        way(in_order)
    }

    /// The way to take (`true`: in order), once both were measured: the
    /// default, unless the other measured [`MARGIN`] times faster.
    fn preferred(&self) -> Option<bool> {
        if self.in_order.samples == 0 || self.parallel.samples == 0 {
            return None;
        }
        let (s, p) = (self.in_order.ns_per_tx(), self.parallel.ns_per_tx());
        Some(match self.default_in_order {
            Some(false) => p > s * MARGIN,
            _ => p * MARGIN >= s,
        })
    }

    /// Whether the two ways' estimates are too close for [`MARGIN`] to
    /// tell: the default is preferred, yet the other measured at least
    /// [`DUEL_MARGIN`] times faster (a duel tells them apart).
    fn close_call(&self) -> bool {
        let Some(default) = self.default_in_order else {
            return false;
        };
        let (s, p) = (self.in_order.ns_per_tx(), self.parallel.ns_per_tx());
        let (d, o) = if default { (s, p) } else { (p, s) };
        self.preferred() == Some(default) && d >= o * DUEL_MARGIN
    }

    /// Ends a duel: a challenger that won becomes the default way, both
    /// ways' estimates are the duel's rounds, and the way not preferred is
    /// probed again twice as late, as after a lost probe.
    fn settle(&mut self, duel: &Duel, challenger: bool, challenger_won: bool) {
        if challenger_won {
            self.default_in_order = Some(challenger);
        }
        [self.in_order, self.parallel] = duel.estimates();
        self.cold_default = false;
        self.way = self.preferred();
        self.probe_every = (self.probe_every * 2).min(PROBE_MAX);
        self.until_probe = self.probe_every;
    }

    /// What the class's next block does (`true`: in order), before any
    /// bookkeeping: the one decision [`Calibration::advise`] carries out
    /// and [`Calibration::likely_in_order`] looks ahead at.
    fn next(&self) -> Next {
        if let Some(duel) = self.duel {
            return Next::Probing(duel.way());
        }
        if let Some(probe) = self.probe {
            return Next::Probing(probe.in_order);
        }
        match (self.in_order.samples, self.parallel.samples) {
            (0, 0) => Next::Static,
            (_, 0) if self.deferred && self.until_probe > 0 => Next::Way(true),
            (_, 0) => Next::Probe(false),
            (0, _) => Next::Probe(true),
            _ => {
                let in_order = self.preferred().unwrap_or(true);
                if self.until_probe == 0 {
                    Next::Probe(!in_order)
                } else {
                    Next::Way(in_order)
                }
            }
        }
    }
}

/// A class's next block (`true`: in order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    /// Nothing measured: the static guards decide.
    Static,
    /// The next block of the probe under way.
    Probing(bool),
    /// A probe of this way starts.
    Probe(bool),
    /// This way, outside any probe (`until_probe` counts the block).
    Way(bool),
}

impl Next {
    fn in_order(self) -> Option<bool> {
        match self {
            Next::Static => None,
            Next::Probing(w) | Next::Probe(w) | Next::Way(w) => Some(w),
        }
    }
}

/// The executor's measurements, by block-size class.
#[derive(Debug, Default)]
pub(crate) struct Calibration {
    /// Invariant: only `advise` and `record` touch it, each in one section.
    classes: Mutex<[Class; CLASSES]>,
}

fn class_of(txs: usize) -> usize {
    (usize::BITS - txs.max(1).leading_zeros()) as usize % CLASSES
}

fn way(in_order: bool) -> Advice {
    if in_order {
        Advice::InOrder
    } else {
        Advice::Parallel
    }
}

impl Calibration {
    /// What to do with a block of `txs` transactions.
    pub(crate) fn advise(&self, txs: usize) -> Advice {
        let mut classes = self.classes.lock();
        let c = &mut classes[class_of(txs)];
        let next = c.next();
        if let (Next::Probe(_) | Next::Way(_), Some(in_order)) = (next, c.preferred()) {
            // Both ways measured, no probe under way: the way the
            // measurements prefer. If it changed on its own blocks'
            // measurements (the one in use slowed, say the machine's
            // other core was taken), costs are moving, so the way just
            // left is looked at again soon, not after the long wait its
            // lost probes built up (`min` keeps a probe that is due due).
            if c.way.is_some_and(|w| w != in_order) {
                c.probe_every = PROBE_FIRST;
                c.until_probe = c.until_probe.min(PROBE_FIRST);
            }
            c.way = Some(in_order);
        }
        match next {
            Next::Static => Advice::Static,
            Next::Probing(w) => way(w),
            Next::Probe(w) => c.probe(w),
            Next::Way(w) => {
                c.until_probe = c.until_probe.saturating_sub(1);
                way(w)
            }
        }
    }

    /// Whether the next block of `txs` transactions will most likely run
    /// in order (`Some(true)`), on the parallel engine (`Some(false)`), or
    /// nothing is known of its class yet (`None`): what [`Self::advise`]
    /// would say now (`Advice::Static` as `None`), without changing
    /// anything (for pre-waking the pool's helpers: `prewake.rs`).
    pub(crate) fn likely_in_order(&self, txs: usize) -> Option<bool> {
        self.classes.lock()[class_of(txs)].next().in_order()
    }

    /// The first block of `txs`'s class runs in order by prediction
    /// (`PathReason::Predicted`): the parallel engine is first probed after
    /// `PROBE_FIRST` blocks instead of on the next.
    pub(crate) fn defer_probe(&self, txs: usize) {
        self.classes.lock()[class_of(txs)].deferred = true;
    }

    /// Records that a block of `txs` transactions ran in order
    /// (`in_order`) or on the parallel engine, taking `elapsed`.
    pub(crate) fn record(&self, txs: usize, in_order: bool, elapsed: Duration) {
        let ns_per_tx = elapsed.as_nanos() as f64 / txs.max(1) as f64;
        let mut classes = self.classes.lock();
        let c = &mut classes[class_of(txs)];
        if c.default_in_order.is_none() {
            c.default_in_order = Some(in_order);
            // Only the parallel engine's first block is cold for want of
            // use (the pool's first run); in order runs on the caller.
            c.cold_default = !in_order;
        } else if c.default_in_order == Some(in_order) {
            // Another block of the default way: no longer the first alone.
            c.cold_default = false;
        }
        if let Some(mut duel) = c.duel.take() {
            // Not the duel's way (the executor had another reason): the
            // duel is given up, and the next advice decides afresh.
            if duel.way() == in_order {
                // The default does not change while a duel runs (a duel
                // only starts once it is set: `close_call`).
                let challenger = c.default_in_order != Some(true);
                match duel.record(ns_per_tx, challenger) {
                    Some(won) => c.settle(&duel, challenger, won),
                    None => c.duel = Some(duel),
                }
            }
            return;
        }
        // Not the probed way (the executor had another reason): the probe
        // is given up, and the next advice decides afresh.
        let probe = c.probe.take().filter(|p| p.in_order == in_order);
        if let Some(mut probe) = probe {
            // A probe is a fresh look at a way not run for a while: its
            // old estimate is stale (or came from a cold first block: a
            // pool's first run, empty caches) and must not outweigh it.
            // Its measurement is its fastest block.
            probe.best = probe.best.min(ns_per_tx);
            probe.left -= 1;
            let fresh = Estimate::fresh(probe.best);
            if in_order {
                c.in_order = fresh;
            } else {
                c.parallel = fresh;
            }
            // A probe of the way that was not preferred (or not yet
            // measured): does it win?
            let won = c.preferred() == Some(in_order);
            if !won && probe.left > 0 {
                c.probe = Some(probe);
                return;
            }
            c.probe_every = if won {
                PROBE_FIRST
            } else {
                (c.probe_every * 2).min(PROBE_MAX)
            };
            c.until_probe = c.probe_every;
            if c.close_call() {
                // Closer than the margin can tell: the two ways alternate
                // until a paired comparison does.
                c.duel = Some(Duel::new());
                return;
            }
            if won && c.cold_default {
                // It beat the default way's cold first block only: the
                // default way is probed again on the next block (up to
                // `DEFAULT_PROBE_BLOCKS`, warm by then).
                c.cold_default = false;
                c.until_probe = 0;
            }
            return;
        }
        if in_order {
            c.in_order.add(ns_per_tx);
        } else {
            c.parallel.add(ns_per_tx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Asserts that each of the next blocks of 1,000 transactions is
    /// advised `way`, and records it with its time (µs).
    fn expect_blocks(cal: &Calibration, way: Advice, times_us: &[u64], what: &str) {
        for (b, &t) in times_us.iter().enumerate() {
            assert_eq!(cal.advise(1000), way, "{what}, block {b}");
            cal.record(1000, way == Advice::InOrder, Duration::from_micros(t));
        }
    }

    /// Records blocks of `way` taking `t_us` each while `way` is advised,
    /// `max` at most; returns how many. The advice that ended it was
    /// taken: the caller records that block.
    fn run_while(cal: &Calibration, way: Advice, t_us: u64, max: usize, what: &str) -> usize {
        let mut n = 0;
        while cal.advise(1000) == way {
            cal.record(1000, way == Advice::InOrder, Duration::from_micros(t_us));
            n += 1;
            assert!(n <= max, "{what}: {n} blocks and counting");
        }
        n
    }

    /// A calibration whose first block (the static guards' way) ran on
    /// the parallel engine in `parallel_us`, then in order's first probe
    /// in `in_order_us` (each advice checked).
    fn after_in_orders_first_probe(parallel_us: u64, in_order_us: u64) -> Calibration {
        let us = Duration::from_micros;
        let cal = Calibration::default();
        assert_eq!(cal.advise(1000), Advice::Static);
        cal.record(1000, false, us(parallel_us));
        assert_eq!(cal.advise(1000), Advice::InOrder, "in order's probe");
        cal.record(1000, true, us(in_order_us));
        cal
    }

    /// Runs `blocks` blocks of `txs` with the given costs per way; returns
    /// how many ran in order and how many in parallel (the first one as
    /// the static guards choose: `static_in_order`).
    fn drive(blocks: usize, txs: usize, in_order_ms: u32, parallel_ms: u32) -> (usize, usize) {
        let cal = Calibration::default();
        let (mut seq, mut par) = (0, 0);
        for _ in 0..blocks {
            let in_order = match cal.advise(txs) {
                Advice::Static => false,
                Advice::InOrder => true,
                Advice::Parallel => false,
            };
            let cost = if in_order { in_order_ms } else { parallel_ms };
            cal.record(txs, in_order, MS * cost);
            if in_order {
                seq += 1
            } else {
                par += 1
            }
        }
        (seq, par)
    }

    #[test]
    fn no_measurement_leaves_it_to_the_static_guards_then_probes_the_other_way() {
        let cal = Calibration::default();
        assert_eq!(cal.advise(1000), Advice::Static);
        cal.record(1000, false, MS * 7);
        assert_eq!(cal.advise(1000), Advice::InOrder, "the other way, once");
        cal.record(1000, true, MS * 2);
        // It beat the first block alone (cold): the default way again, up
        // to three blocks while it loses.
        for b in 0..DEFAULT_PROBE_BLOCKS {
            assert_eq!(cal.advise(1000), Advice::Parallel, "re-probe {b}");
            cal.record(1000, false, MS * 7);
        }
        assert_eq!(cal.advise(1000), Advice::InOrder, "then the faster one");
        cal.record(1000, true, MS * 2);
        // In order until the next probe, twice as late (the re-probe lost).
        for b in 1..2 * PROBE_FIRST {
            assert_eq!(cal.advise(1000), Advice::InOrder, "block {b}");
            cal.record(1000, true, MS * 2);
        }
        assert_eq!(cal.advise(1000), Advice::Parallel, "the next probe");
        // Another size class knows nothing yet.
        assert_eq!(cal.advise(10), Advice::Static);
    }

    #[test]
    fn the_look_ahead_says_what_the_advice_will_be() {
        // Costs that move (the parallel engine losing, then winning, then
        // losing by little, a stretch of noise), a deferred class, and a
        // class the static guards start in order: at every block the look
        // ahead names the advice that follows it.
        let mut seed = 7u64;
        let mut noise = move || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            (seed >> 33) % 5
        };
        for (txs, deferred, static_in_order) in [(1000, false, false), (300, true, true)] {
            let cal = Calibration::default();
            let mut seen = [0usize; 2];
            for b in 0..1500u64 {
                let look = cal.likely_in_order(txs);
                if let Some(in_order) = look {
                    seen[usize::from(in_order)] += 1;
                }
                let advice = cal.advise(txs);
                let expected = match advice {
                    Advice::Static => None,
                    Advice::InOrder => Some(true),
                    Advice::Parallel => Some(false),
                };
                assert_eq!(look, expected, "block {b} of {txs}");
                let in_order = match advice {
                    Advice::Static => static_in_order,
                    Advice::InOrder => true,
                    Advice::Parallel => false,
                };
                if advice == Advice::Static && deferred {
                    cal.defer_probe(txs);
                }
                let (seq, par) = match b / 300 {
                    0 => (2, 7),
                    1 => (5, 3),
                    2 => (4, 3 + noise()),
                    _ => (3 + noise(), 3 + noise()),
                };
                let cost = if in_order { seq } else { par };
                cal.record(txs, in_order, MS * cost as u32);
            }
            assert!(
                seen.iter().all(|&n| n >= 100),
                "both ways looked at: {seen:?}"
            );
        }
    }

    #[test]
    fn a_losing_parallel_engine_runs_on_few_blocks_and_fewer_over_time() {
        // The token ledger's shape: parallel 3.5x slower.
        let (seq, par) = drive(1000, 2000, 2, 7);
        // Static first block (the static guards chose the parallel engine:
        // it is the default way, whose probes run up to three blocks),
        // then probes after 16, 32, 64, 128 and 256 blocks (the one after
        // 512 falls beyond the 1000th). A chain whose first block is
        // predicted in order (the token ledger) probes the parallel engine
        // one block at a time (`a_first_block_predicted_in_order...`).
        assert!(par <= 16, "{par} parallel blocks of 1000");
        assert_eq!(seq + par, 1000);
    }

    #[test]
    fn a_winning_parallel_engine_is_kept_whatever_the_static_guards_said() {
        // Static guards chose in order (few keys) but parallel is faster.
        let cal = Calibration::default();
        assert_eq!(cal.advise(1000), Advice::Static);
        cal.record(1000, true, MS * 5);
        assert_eq!(cal.advise(1000), Advice::Parallel, "probe");
        cal.record(1000, false, MS * 3);
        let parallel = (0..100)
            .filter(|_| {
                let a = cal.advise(1000);
                let in_order = a == Advice::InOrder;
                cal.record(1000, in_order, MS * if in_order { 5 } else { 3 });
                a == Advice::Parallel
            })
            .count();
        assert!(parallel >= 94, "{parallel} of 100 on the parallel engine");
    }

    #[test]
    fn a_close_call_is_settled_by_a_duel() {
        // The static guards chose parallel (drive's first block); in order
        // measures 20% faster: within the margin, but a duel shows it on
        // every round, and in order becomes the way (the 180-transaction
        // `contracts-mixed` block's shape: parallel at 0.85x).
        let (seq, par) = drive(200, 1000, 5, 6);
        assert!(seq >= 180, "{seq} in order of 200 ({par} parallel)");
        // 50% faster: in order is taken on the margin alone.
        let (seq, par) = drive(200, 1000, 4, 6);
        assert!(seq >= 190, "{seq} in order of 200 ({par} parallel)");
        // 2% faster: noise for a duel; the static way stays, no duel.
        let (seq, par) = drive(200, 1000, 50, 51);
        assert!(par >= 190, "{par} parallel of 200 ({seq} in order)");
        // The other way round: the static guards chose in order and the
        // parallel engine measures 15% faster.
        let cal = Calibration::default();
        assert_eq!(cal.advise(1000), Advice::Static);
        cal.record(1000, true, MS * 23);
        let parallel = (0..200)
            .filter(|_| {
                let in_order = cal.advise(1000) == Advice::InOrder;
                cal.record(1000, in_order, MS * if in_order { 23 } else { 20 });
                !in_order
            })
            .count();
        assert!(parallel >= 180, "{parallel} of 200 on the parallel engine");
    }

    #[test]
    fn a_duel_alternates_two_blocks_each_and_outlasts_a_noisy_round() {
        // The parallel engine (the default) gains 1.17x (300 µs against
        // in order's 350: within the margin), but in order's probe meets
        // it on a slow stretch and measures 5% faster: a duel. One of its
        // rounds has the parallel blocks slowed (the machine's other core
        // taken): the parallel engine stays.
        let us = Duration::from_micros;
        let cal = after_in_orders_first_probe(300, 285);
        // Lost, won (the slowed round), lost: two rounds lost, the
        // challenger can no longer win, and the duel ends.
        for round in 0..3 {
            // The first block after a switch is cold; the faster counts.
            expect_blocks(&cal, Advice::InOrder, &[520, 350], "duel, in order");
            let parallel = if round == 1 { [600, 590] } else { [400, 300] };
            expect_blocks(&cal, Advice::Parallel, &parallel, "duel, parallel");
        }
        let n = run_while(&cal, Advice::Parallel, 300, PROBE_MAX as usize, "won");
        assert!(n >= 2 * PROBE_FIRST as usize - 1, "kept for {n} blocks");
        // Had two rounds been slowed, the challenger would have won two
        // and lost two: not enough, and the default way stays.
        let cal = after_in_orders_first_probe(300, 285);
        for round in 0..DUEL_ROUNDS {
            expect_blocks(&cal, Advice::InOrder, &[350, 350], "duel, in order");
            let parallel = if round < 2 { [600, 600] } else { [300, 300] };
            expect_blocks(&cal, Advice::Parallel, &parallel, "duel, parallel");
        }
        assert_eq!(cal.advise(1000), Advice::Parallel, "a tie: the default");
        // The other way round: in order is the default (the static
        // guards' choice), the parallel engine 1.17x faster, its third
        // round's blocks slowed (by more than the margin): the parallel
        // engine wins the duel on its fourth.
        let cal = Calibration::default();
        assert_eq!(cal.advise(1000), Advice::Static);
        cal.record(1000, true, us(350));
        assert_eq!(cal.advise(1000), Advice::Parallel, "the parallel probe");
        cal.record(1000, false, us(320));
        for round in 0..DUEL_ROUNDS {
            expect_blocks(&cal, Advice::InOrder, &[350, 350], "duel, in order");
            let parallel = if round == 2 { [600, 600] } else { [300, 300] };
            expect_blocks(&cal, Advice::Parallel, &parallel, "duel, parallel");
        }
        let n = run_while(&cal, Advice::Parallel, 300, PROBE_MAX as usize, "won");
        assert!(n >= 2 * PROBE_FIRST as usize - 1, "kept for {n} blocks");
    }

    #[test]
    fn a_duel_ends_as_soon_as_it_is_decided() {
        // The token ledger with costly transactions: the parallel engine
        // (the default) gains 1.5x, but its probe's first block ran cold
        // and in order looked 5% faster. The first round shows in order
        // slower by more than the margin: the duel ends there.
        let cal = after_in_orders_first_probe(300, 285);
        expect_blocks(&cal, Advice::InOrder, &[450, 450], "duel, in order");
        expect_blocks(&cal, Advice::Parallel, &[300, 300], "duel, parallel");
        let n = run_while(&cal, Advice::Parallel, 300, PROBE_MAX as usize, "kept");
        assert!(n >= 2 * PROBE_FIRST as usize - 1, "kept for {n} blocks");
        // A challenger that wins its first three rounds has won: the
        // fourth is not run.
        let cal = after_in_orders_first_probe(300, 285);
        for _ in 0..DUEL_ROUNDS - 1 {
            expect_blocks(&cal, Advice::InOrder, &[250, 250], "duel, in order");
            expect_blocks(&cal, Advice::Parallel, &[300, 300], "duel, parallel");
        }
        let n = run_while(&cal, Advice::InOrder, 250, PROBE_MAX as usize, "won");
        assert!(n >= 2 * PROBE_FIRST as usize - 1, "in order for {n} blocks");
    }

    /// Runs `blocks` blocks whose way costs `in_order_us` or
    /// `parallel_us`, each times a factor in `1 +- noise` (seeded), the
    /// first as the static guards choose; returns the total time against
    /// always taking the faster way (ratio to the ideal).
    fn overhead(
        blocks: usize,
        in_order_us: f64,
        parallel_us: f64,
        static_in_order: bool,
        noise: f64,
        seed: u64,
    ) -> f64 {
        let cal = Calibration::default();
        let mut state = seed;
        let mut factor = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            1.0 + noise * (2.0 * ((state >> 11) as f64 / (1u64 << 53) as f64) - 1.0)
        };
        let (mut total, mut ideal) = (0.0, 0.0);
        for _ in 0..blocks {
            let in_order = match cal.advise(1000) {
                Advice::Static => static_in_order,
                a => a == Advice::InOrder,
            };
            let f = factor();
            let t = if in_order { in_order_us } else { parallel_us } * f;
            cal.record(1000, in_order, Duration::from_secs_f64(t * 1e-6));
            total += t;
            ideal += in_order_us.min(parallel_us) * f;
        }
        total / ideal
    }

    #[test]
    fn a_node_pays_little_for_not_knowing_the_faster_way() {
        // Whichever way is faster, by however much, and whichever the
        // static guards chose: over 1,000 blocks the guarded executor
        // costs at most 3% over always taking the faster way with steady
        // costs; with every block's time off by up to 10% (a noisy
        // machine), 2% where the ways differ by 15% or more, 8% where
        // they differ by less (measured: at most 7.5%, at 1.06-1.1x).
        // Without duels, a way 1.06-1.24x slower that the static guards
        // chose was kept for good (up to 1.24x the ideal).
        // (A way far slower costs its probes at its price: 4% at 3.5x,
        // `a_losing_parallel_engine_runs_on_few_blocks_and_fewer_over_time`.)
        for ratio in [1.0, 1.03, 1.06, 1.1, 1.15, 1.2, 1.24, 1.3, 1.5, 2.0] {
            for parallel_faster in [false, true] {
                let (s, p) = if parallel_faster {
                    (300.0 * ratio, 300.0)
                } else {
                    (300.0, 300.0 * ratio)
                };
                for static_in_order in [false, true] {
                    let steady = overhead(1000, s, p, static_in_order, 0.0, 1);
                    assert!(
                        steady <= 1.03,
                        "ratio {ratio}, parallel faster {parallel_faster}, static in order \
                         {static_in_order}: {steady:.3} of the ideal"
                    );
                    // Noise as large as the difference hides it from a
                    // duel too (a tie keeps the default way).
                    let bound = if ratio >= 1.15 { 1.02 } else { 1.08 };
                    for seed in 1..=8 {
                        let noisy = overhead(1000, s, p, static_in_order, 0.1, seed);
                        assert!(
                            noisy <= bound,
                            "ratio {ratio}, parallel faster {parallel_faster}, static in \
                             order {static_in_order}, noise seed {seed}: {noisy:.3} of the ideal"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_duel_is_given_up_when_the_executor_takes_another_way() {
        let cal = Calibration::default();
        cal.advise(1000);
        cal.record(1000, false, MS * 6);
        assert_eq!(cal.advise(1000), Advice::InOrder, "in order's probe");
        cal.record(1000, true, MS * 5);
        assert_eq!(cal.advise(1000), Advice::InOrder, "the duel's first block");
        // The executor ran it on the parallel engine (another reason).
        cal.record(1000, false, MS * 6);
        // No duel under way: the measured preference (the default,
        // within the margin) decides, until the next probe.
        assert_eq!(cal.advise(1000), Advice::Parallel);
    }

    #[test]
    fn a_first_block_predicted_in_order_defers_the_first_probe() {
        let cal = Calibration::default();
        assert_eq!(cal.advise(2000), Advice::Static);
        cal.defer_probe(2000);
        cal.record(2000, true, MS * 2);
        // In order until the first probe, PROBE_FIRST blocks later.
        for b in 0..PROBE_FIRST {
            assert_eq!(cal.advise(2000), Advice::InOrder, "block {b}");
            cal.record(2000, true, MS * 2);
        }
        assert_eq!(cal.advise(2000), Advice::Parallel, "the deferred probe");
        cal.record(2000, false, MS * 7);
        assert_eq!(cal.advise(2000), Advice::InOrder);
        // Another class is not deferred.
        assert_eq!(cal.advise(10), Advice::Static);
        cal.record(10, true, MS);
        assert_eq!(cal.advise(10), Advice::Parallel);
    }

    #[test]
    fn slow_blocks_now_and_then_do_not_flip_the_way() {
        // Parallel (the static way) 3 ms, in order 5 ms; one parallel
        // block in four takes 16 ms (a core taken by another process).
        // A weighted mean (weight 0.3) goes above 6.25 ms (5 x MARGIN)
        // after one such block, and in order is taken: 46 of 400 blocks
        // ran parallel with it.
        let cal = Calibration::default();
        let mut parallel = 0;
        for b in 0..400 {
            let in_order = match cal.advise(1000) {
                Advice::Static => false,
                a => a == Advice::InOrder,
            };
            let cost = if in_order {
                5
            } else if b % 4 == 3 {
                16
            } else {
                3
            };
            cal.record(1000, in_order, MS * cost);
            parallel += usize::from(!in_order);
        }
        assert!(parallel >= 380, "{parallel} of 400 blocks parallel");
    }

    #[test]
    fn a_probe_of_the_default_way_runs_until_it_is_warm() {
        // Criterion's `uniform` block, in µs: the parallel engine (the
        // static guards' way) runs a cold first block (1,100), in order
        // (325) beats it in its probe; the parallel engine is probed again
        // at once and still meets a cold core and caches: 645, then 450,
        // then 300 (warm).
        let us = Duration::from_micros;
        let cal = after_in_orders_first_probe(1_100, 325);
        expect_blocks(&cal, Advice::Parallel, &[645, 450, 300], "probe");
        // Won on its third block: the parallel engine from then on.
        expect_blocks(&cal, Advice::Parallel, &[250; PROBE_FIRST as usize], "won");
        // A probe of in order runs up to three blocks too (its first
        // block after parallel ones meets a cold overlay), ending on the
        // first that wins; these lose.
        expect_blocks(&cal, Advice::InOrder, &[500, 330, 320], "in order's probe");
        assert_eq!(cal.advise(1000), Advice::Parallel);
        // An in-order probe that beats a parallel estimate of many warm
        // blocks (costs changed) is followed: no re-probe at once, only a
        // first block alone is suspect.
        run_while(
            &cal,
            Advice::Parallel,
            250,
            PROBE_MAX as usize,
            "until in order's probe",
        );
        // In order's probe.
        cal.record(1000, true, us(150));
        assert_eq!(cal.advise(1000), Advice::InOrder, "in order, measured");
    }

    #[test]
    fn an_in_order_probe_is_measured_warm() {
        // Measured on `uniform` (µs, `examples/execute_only` with
        // `TRACE=1`): the parallel engine (the default way) 250 a block,
        // in order's probe 520 on its first block (a cold overlay: its
        // table untouched since the last in-order block), then 345 warm.
        // Later the parallel engine slowed to 460 (the machine's second
        // core taken) while the sequential engine stayed at 350.
        let us = Duration::from_micros;
        let cal = Calibration::default();
        assert_eq!(cal.advise(1000), Advice::Static);
        cal.record(1000, false, us(250));
        // In order's first probe: one block, a first estimate.
        assert_eq!(cal.advise(1000), Advice::InOrder, "in order's first probe");
        cal.record(1000, true, us(520));
        // Its next probe runs until it is warm; it loses (250 * 1.25 <
        // 345) and the parallel engine is kept while it is fast.
        run_while(
            &cal,
            Advice::Parallel,
            250,
            PROBE_MAX as usize,
            "until in order's probe",
        );
        cal.record(1000, true, us(520));
        expect_blocks(&cal, Advice::InOrder, &[345, 345], "in order's probe");
        expect_blocks(&cal, Advice::Parallel, &[250; 10], "fast");
        // Then it slows: in order, measured warm (460 > 345 * 1.25), is
        // taken within a few blocks. Measured on its cold first block
        // alone (520), it never was, and the slower engine was kept.
        run_while(&cal, Advice::Parallel, 460, WINDOW, "slow parallel");
        cal.record(1000, true, us(345));
        // The parallel engine's probe (the default way, up to three
        // blocks) wins it back once it is fast again.
        run_while(
            &cal,
            Advice::InOrder,
            345,
            PROBE_MAX as usize - 1,
            "until the parallel engine's probe",
        );
        cal.record(1000, false, us(250));
        assert_eq!(cal.advise(1000), Advice::Parallel);
    }

    #[test]
    fn a_way_left_on_its_own_measurements_is_probed_again_soon() {
        // The parallel engine (the default way, 250 µs a block) beats in
        // order (345 µs) for long enough that in order's lost probes have
        // pushed the next one 512 blocks away. Then the machine's other
        // core is taken for a while: the parallel engine slows to 460 µs
        // and in order is taken on the measurements alone. When the core
        // comes back, the parallel engine must be probed again soon, not
        // up to 512 blocks later (a whole traced run once stayed in order
        // so, at 1.03x instead of 1.6x).
        let us = Duration::from_micros;
        let cal = Calibration::default();
        let run = |blocks: usize, parallel_us: u64| -> Vec<bool> {
            (0..blocks)
                .map(|_| {
                    let in_order = cal.advise(1000) == Advice::InOrder;
                    let t = if in_order { 345 } else { parallel_us };
                    cal.record(1000, in_order, us(t));
                    in_order
                })
                .collect()
        };
        let before = run(3000, 250);
        assert!(
            before[2000..].iter().filter(|&&o| o).count() <= 2 * DEFAULT_PROBE_BLOCKS as usize,
            "in order's probes far apart by now"
        );
        let slow = run(20, 460);
        let left = slow.iter().position(|&o| o).expect("in order taken");
        assert!(left <= WINDOW, "the slowed engine left after {left} blocks");
        // The core is back (after one probe of the parallel engine that
        // lost: a longer slow spell doubles the wait again, as any lost
        // probe does).
        let after = run(600, 250);
        let back = after
            .iter()
            .position(|&o| !o)
            .expect("the parallel engine probed again");
        assert!(
            back <= 2 * PROBE_FIRST as usize + WINDOW,
            "the parallel engine came back after {back} blocks in order"
        );
        assert!(
            after[back..back + PROBE_FIRST as usize].iter().all(|&o| !o),
            "and kept"
        );
    }

    #[test]
    fn an_in_order_default_is_not_re_probed_at_once() {
        // The static guards chose in order (its first block runs on the
        // caller, not cold); the parallel engine's probe beats it: the
        // parallel engine is taken, no in-order block comes first.
        let cal = Calibration::default();
        assert_eq!(cal.advise(1000), Advice::Static);
        cal.record(1000, true, MS * 5);
        assert_eq!(cal.advise(1000), Advice::Parallel, "the probe");
        cal.record(1000, false, MS * 3);
        for b in 0..PROBE_FIRST {
            assert_eq!(cal.advise(1000), Advice::Parallel, "block {b}");
            cal.record(1000, false, MS * 3);
        }
    }

    #[test]
    fn a_cold_first_block_does_not_keep_the_parallel_engine_away() {
        // The first parallel block ran cold (10 ms: a pool's first run);
        // in order then measures 5 ms and is taken; the next probe of the
        // parallel engine (3 ms warm) wins it back.
        let cal = Calibration::default();
        assert_eq!(cal.advise(1000), Advice::Static);
        cal.record(1000, false, MS * 10);
        assert_eq!(cal.advise(1000), Advice::InOrder);
        cal.record(1000, true, MS * 5);
        let mut ways = Vec::new();
        for _ in 0..40 {
            let a = cal.advise(1000);
            let in_order = a == Advice::InOrder;
            cal.record(1000, in_order, MS * if in_order { 5 } else { 3 });
            ways.push(in_order);
        }
        // Parallel from its probe on, but for one probe of in order.
        let parallel = ways[20..].iter().filter(|&&in_order| !in_order).count();
        assert!(parallel >= 19, "parallel after its warm probe: {ways:?}");
    }

    #[test]
    fn ties_keep_the_static_way_and_a_change_of_costs_is_followed() {
        let (seq, par) = drive(200, 1000, 5, 5);
        assert!(
            par >= 190,
            "{par} parallel of 200 at equal cost ({seq} in order)"
        );
        // Costs that flip: parallel becomes faster; the next probe finds it.
        let cal = Calibration::default();
        let mut parallel_late = 0;
        for b in 0..300 {
            let in_order = match cal.advise(1000) {
                Advice::Static => true,
                a => a == Advice::InOrder,
            };
            let (s, p) = if b < 100 { (2, 7) } else { (7, 2) };
            cal.record(1000, in_order, MS * if in_order { s } else { p });
            if b >= 250 && !in_order {
                parallel_late += 1;
            }
        }
        assert!(
            parallel_late >= 45,
            "{parallel_late} of the last 50 blocks parallel: the flipped costs were found and kept"
        );
    }
}
