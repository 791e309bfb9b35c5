//! `engine arena`: two sides compared on paired deals.
//!
//! A side ([`Side`]) is a net with its search settings, the oracle (a search of the true
//! deal) or uniformly random play; two sides may share a net. Every deal is played `players`
//! times with the seats rotated: in rotation `r`, side A holds the seats `s` with
//! `(s − r) mod P < P/2` and side B the others, so over a deal each side sits in every seat
//! equally often and the luck of the cards cancels within the deal. Each rotation also
//! replays the deal's random stream from the same point (common random numbers: the
//! searches' worlds and seeds), so the sides' choices are the only difference between
//! rotations, and a side against an identical side draws every deal. Play is greedy
//! (most-visited action, no noise). The statistics (the score difference with its
//! Student-t interval, Elo, LOS) are in [`stats`], the optional SPRT in [`sprt`].
//!
//! Each searching side has one backend and one batch ring ([`Ring`]), as in self-play: worker
//! threads play many deals at once, each deal a resumable state machine (see `play`), and send
//! every search's rows to the ring of the side whose seat is to act; a random side has no
//! ring. A deal draws everything from its own random stream (run seed, deal index), a row's
//! outputs do not depend on its batch, and a cache hit never changes a search, so a deal's
//! result depends on the seed and the sides alone, never on `threads`, `deals_per_thread` or
//! the device's timing; results are folded in deal order, so the report is the same run after
//! run.

mod play;
mod side;
pub mod sprt;
pub mod stats;

pub use side::{Searching, Side};
pub use sprt::{Decision, Sprt, SprtReport};
pub use stats::{BeliefAccuracy, DealScore, Tally};

use crate::device::Opened;
use crate::game::{RoundConfig, Seat};
use crate::net::Backend;
use crate::ring::{Ring, Servers};
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Most deals one arena plays (far beyond any useful comparison; results are tallied as they
/// come, so memory does not grow with it).
pub const MAX_DEALS: u64 = 10_000_000;
/// Most deals one thread plays at once.
pub const MAX_DEALS_PER_THREAD: usize = 4096;
/// Rows a batch aims at when the deals per thread are chosen for the caller: enough for the
/// CPU kernels' full speed and a GPU's, few enough that a deal's turn comes round quickly.
const TARGET_BATCH_ROWS: usize = 1024;

#[derive(Clone, Debug)]
pub struct ArenaConfig {
    pub players: u8,
    pub cards: u8,
    /// Deals to play (fewer when the SPRT decides first).
    pub deals: u64,
    /// Side A's and side B's players.
    pub sides: [Side; 2],
    /// Worker threads running the searches.
    pub threads: usize,
    /// Deals each worker plays at once (`None`: [`ArenaConfig::auto_deals_per_thread`]).
    pub deals_per_thread: Option<usize>,
    pub seed: u64,
    /// Stop as soon as this test decides.
    pub sprt: Option<Sprt>,
}

impl ArenaConfig {
    pub fn validate(&self) -> Result<()> {
        RoundConfig {
            players: self.players,
            cards: self.cards,
            dealer: Seat(0),
            trump: None,
        }
        .validate()?;
        for (side, name) in self.sides.iter().zip(["A", "B"]) {
            if let Some(search) = side.search_config() {
                search
                    .validate()
                    .with_context(|| format!("side {name}'s search"))?;
            }
        }
        if !(1..=MAX_DEALS).contains(&self.deals)
            || !(1..=MAX_DEALS_PER_THREAD).contains(&self.deals_per_thread())
            || self.threads == 0
        {
            bail!(
                "deals ({}), deals per thread ({}) and threads ({}) must be at least 1, and at \
                 most {MAX_DEALS} deals and {MAX_DEALS_PER_THREAD} per thread",
                self.deals,
                self.deals_per_thread(),
                self.threads
            );
        }
        Ok(())
    }

    /// Most rows one search of either side gathers at once.
    fn max_rows_per_gather(&self) -> usize {
        let [a, b] = self.sides.map(|s| s.max_rows_per_gather(self.players));
        a.max(b)
    }

    /// Deals per thread filling batches of about `TARGET_BATCH_ROWS` (1024) rows (each of a
    /// thread's two groups sends one batch per side, and about half its deals need each side),
    /// but no more than an even share of the deals, so that no thread takes another's work.
    pub fn auto_deals_per_thread(&self) -> usize {
        let rows = self.max_rows_per_gather().max(1);
        let share = self.deals.div_ceil(self.threads.max(1) as u64);
        (4 * TARGET_BATCH_ROWS / rows)
            .clamp(2, 256)
            .min(usize::try_from(share).unwrap_or(usize::MAX))
            .max(1)
    }

    pub fn deals_per_thread(&self) -> usize {
        self.deals_per_thread
            .unwrap_or_else(|| self.auto_deals_per_thread())
    }

    /// Rows of one batch: every deal of a group searching for the same side, each gathering
    /// the most either side's search can. The backends must take this many.
    pub fn rows_per_batch(&self) -> usize {
        self.deals_per_thread().div_ceil(2) * self.max_rows_per_gather()
    }
}

/// Side A's and B's results and the statistics of their difference.
#[derive(Clone, Debug, Serialize)]
pub struct ArenaResult {
    /// Deals in the statistics: all of them, those before the SPRT decided, or (interrupted)
    /// those finished.
    pub deals: u64,
    pub rounds_played: u64,
    pub mean_score_a: f64,
    pub mean_score_b: f64,
    /// Mean over deals of (A's mean round score − B's) in that deal.
    pub difference: f64,
    /// Sample standard deviation of the per-deal differences (`null` below two deals).
    pub difference_sd: Option<f64>,
    /// Student-t 95% confidence interval of `difference` (`null` below two deals).
    pub ci95_low: Option<f64>,
    pub ci95_high: Option<f64>,
    /// Deals A won, drew and lost (its mean round score above, equal to, below B's).
    pub wins: u64,
    pub draws: u64,
    pub losses: u64,
    /// A's share of the deals, a draw counting half.
    pub score: Option<f64>,
    /// Logistic Elo difference of `score`: ±∞ when A won or lost every deal (JSON `null`, as
    /// before any deal; `score` tells which).
    pub elo: Option<f64>,
    /// Its 95% interval (`null` below two deals; an end outside (0, 1) in score is ±∞, `null`
    /// in JSON: −∞ for `elo_low`, and for `elo_high` too when A lost every deal).
    pub elo_low: Option<f64>,
    pub elo_high: Option<f64>,
    /// Likelihood that A is the stronger side.
    pub los: f64,
    /// Share of the other seats' cards that A's searched worlds dealt to the seat holding
    /// them, over all A's searches: how well its beliefs guess the hidden hands (1 for the
    /// oracle, `null` for random play).
    pub belief_accuracy_a: Option<f64>,
    pub belief_accuracy_b: Option<f64>,
    /// The SPRT over these deals, when one was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sprt: Option<SprtReport>,
    /// Stopped by Ctrl-C (the deals then are those finished).
    pub interrupted: bool,
    pub wall_s: f64,
}

impl ArenaResult {
    fn new(tally: &Tally, players: u8, sprt: Option<&Sprt>, interrupted: bool) -> ArenaResult {
        let ci = tally.difference_ci95();
        let elo_ci = tally.elo_ci95();
        ArenaResult {
            deals: tally.deals,
            rounds_played: tally.deals * u64::from(players),
            mean_score_a: tally.mean_score_a(),
            mean_score_b: tally.mean_score_b(),
            difference: tally.difference(),
            difference_sd: tally.difference_sd(),
            ci95_low: ci.map(|c| c.0),
            ci95_high: ci.map(|c| c.1),
            wins: tally.wins,
            draws: tally.draws,
            losses: tally.losses,
            score: tally.score(),
            elo: tally.elo(),
            elo_low: elo_ci.map(|c| c.0),
            elo_high: elo_ci.map(|c| c.1),
            los: tally.los(),
            belief_accuracy_a: tally.beliefs[0].share(),
            belief_accuracy_b: tally.beliefs[1].share(),
            sprt: sprt.map(|t| t.report(tally)),
            interrupted,
            wall_s: 0.0,
        }
    }
}

/// Seats side A holds in rotation `r` at a table of `players`.
pub fn seats_of_a(players: u8, r: u8) -> impl Fn(Seat) -> bool {
    move |s: Seat| (s.0 + players - r % players) % players < players / 2
}

/// What the caller sees while the arena runs (every 200 ms and at the end).
#[derive(Clone, Debug)]
pub struct Progress<'a> {
    /// Deals finished, in the order they finished.
    pub tally: &'a Tally,
    /// The SPRT over them, when one runs.
    pub sprt: Option<SprtReport>,
}

/// How often [`run`] reports progress.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

/// A deal finished by a worker.
struct Finished {
    index: u64,
    score: DealScore,
}

/// State the workers share.
struct Shared {
    config: ArenaConfig,
    /// Per side, the index of its ring among those `play::run` gets (`None`: it plays at
    /// random and sends no rows).
    ring_of_side: [Option<usize>; 2],
    next_deal: AtomicU64,
    /// Set by Ctrl-C, a decided SPRT or a failed worker: no new deal starts and the deals in
    /// play are dropped.
    stop: AtomicBool,
}

impl Shared {
    fn claim_deal(&self) -> Option<u64> {
        if self.stop.load(Ordering::Relaxed) {
            return None;
        }
        let i = self.next_deal.fetch_add(1, Ordering::Relaxed);
        (i < self.config.deals).then_some(i)
    }
}

/// Folds finished deals into the statistics in deal order, and runs the SPRT on each new
/// prefix of deals.
struct Collector {
    /// Deals `0..next` are in `prefix`.
    next: u64,
    prefix: Tally,
    /// Finished deals after a gap, waiting for the deals before them.
    waiting: BTreeMap<u64, DealScore>,
    /// Every deal received, in the order received (for progress only).
    received: Tally,
    sprt: Option<Sprt>,
    /// Set once the SPRT has decided on `prefix`: later deals are ignored.
    decided: bool,
}

impl Collector {
    fn new(sprt: Option<Sprt>) -> Collector {
        Collector {
            next: 0,
            prefix: Tally::default(),
            waiting: BTreeMap::new(),
            received: Tally::default(),
            sprt,
            decided: false,
        }
    }

    /// Takes a finished deal; returns true once the SPRT has decided.
    fn add(&mut self, done: Finished) -> bool {
        self.received.add(&done.score);
        if self.decided {
            return true;
        }
        self.waiting.insert(done.index, done.score);
        while let Some(score) = self.waiting.remove(&self.next) {
            self.prefix.add(&score);
            self.next += 1;
            if let Some(test) = &self.sprt {
                if test.report(&self.prefix).decision != Decision::None {
                    self.decided = true;
                    self.waiting.clear();
                    return true;
                }
            }
        }
        false
    }

    /// The deals to report: the prefix, and (after an interrupt) the deals finished after a
    /// gap, still in deal order.
    fn finish(mut self) -> Tally {
        for score in std::mem::take(&mut self.waiting).into_values() {
            self.prefix.add(&score);
        }
        self.prefix
    }
}

/// Runs the arena: each searching side on its backend (`backends[0]` for side A, `[1]` for
/// B; `None` for a random side), until `config.deals` deals are done, the SPRT decides, or
/// `stop` is set (then the deals in play are dropped and the result covers those finished).
/// `progress` is called every 200 ms and at the end.
pub fn run(
    config: &ArenaConfig,
    backends: [Option<Box<dyn Backend>>; 2],
    stop: &AtomicBool,
    progress: impl FnMut(&Progress),
) -> Result<ArenaResult> {
    let devices = backends.map(|backend| backend.map(Opened::of).into_iter().collect());
    run_on(config, devices, stop, progress)
}

/// [`run`] over several devices: `devices[0]` holds side A's backend on each device (empty for
/// a random side), `[1]` side B's, in the same device order. Each device has one ring per
/// searching side, and thread `t` plays its deals on device `t % devices` (so there must be at
/// least as many threads as devices). The result does not depend on the devices.
pub fn run_on(
    config: &ArenaConfig,
    devices: [Vec<Opened>; 2],
    stop: &AtomicBool,
    mut progress: impl FnMut(&Progress),
) -> Result<ArenaResult> {
    config.validate()?;
    let rows = config.rows_per_batch();
    let threads = config.threads;
    // The backends of the searching sides, and which ring of a device each side sends to.
    let mut names = Vec::new();
    let mut searching: Vec<Vec<Opened>> = Vec::new();
    let mut ring_of_side = [None; 2];
    for (i, (opened, side)) in devices.into_iter().zip(&config.sides).enumerate() {
        let name = ["A", "B"][i];
        match (opened.is_empty(), side.search_config()) {
            (false, Some(_)) => {
                for o in &opened {
                    let backend = &o.backend;
                    if rows > backend.max_batch() {
                        bail!(
                            "a batch can hold {rows} rows but side {name}'s {} backend on {} \
                             takes at most {}",
                            backend.name(),
                            o.device(),
                            backend.max_batch()
                        );
                    }
                }
                ring_of_side[i] = Some(searching.len());
                names.push(name);
                searching.push(opened);
            }
            (true, None) => {}
            (false, None) => bail!("side {name} plays at random and takes no backend"),
            (true, Some(_)) => bail!("side {name} searches and needs a backend"),
        }
    }
    let n = searching.first().map_or(1, Vec::len);
    if searching.iter().any(|side| side.len() != n) {
        bail!("both searching sides need a backend on each device");
    }
    if n > threads {
        bail!(
            "{n} devices need at least as many threads (--threads), each playing on one device: \
             there are \
             {threads}"
        );
    }
    // Ring `d * sides + s`: side `s` on device `d`. A worker holds one slot of each of its
    // device's rings per group (filling, or in flight).
    let sides = searching.len();
    let mut labels = Vec::with_capacity(n * sides);
    let mut backends: Vec<Box<dyn Backend>> = Vec::with_capacity(n * sides);
    let mut per_side: Vec<_> = searching.into_iter().map(Vec::into_iter).collect();
    for _ in 0..n {
        for (name, side) in names.iter().zip(&mut per_side) {
            let opened = side.next().expect("as many backends as devices");
            labels.push(format!("side {name}'s backend on {}", opened.device()));
            backends.push(opened.backend);
        }
    }
    let mut owned_rings = Vec::with_capacity(backends.len());
    for (r, (label, backend)) in labels.iter().zip(&mut backends).enumerate() {
        let feeding = (r / sides.max(1)..threads).step_by(n).count();
        let ring = Ring::new(backend.as_mut(), 2 * feeding, rows)
            .with_context(|| format!("allocating the batch ring of {label}"))?;
        owned_rings.push(ring);
    }
    let rings: Vec<&Ring> = owned_rings.iter().collect();
    let shared = Shared {
        config: config.clone(),
        ring_of_side,
        next_deal: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    };
    let start = Instant::now();
    let mut collector = Collector::new(config.sprt);
    let mut interrupted = false;
    std::thread::scope(|scope| -> Result<()> {
        let rings = &rings;
        let servers = Servers::spawn(scope, &owned_rings, &mut backends);
        let (tx, rx) = mpsc::channel();
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (tx, shared) = (tx.clone(), &shared);
                let device = t % n;
                let rings = &rings[device * sides..(device + 1) * sides];
                scope.spawn(move || {
                    let r = play::run(shared, rings, tx);
                    if r.is_err() {
                        shared.stop.store(true, Ordering::Relaxed);
                    }
                    r
                })
            })
            .collect();
        drop(tx);
        let mut last_progress = Instant::now();
        loop {
            // Not when the run had already stopped (the SPRT decided, or a worker failed).
            if stop.load(Ordering::Relaxed) && !shared.stop.swap(true, Ordering::Relaxed) {
                interrupted = true;
            }
            match rx.recv_timeout(PROGRESS_EVERY) {
                Ok(done) => {
                    if collector.add(done) {
                        shared.stop.store(true, Ordering::Relaxed);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            if last_progress.elapsed() >= PROGRESS_EVERY {
                last_progress = Instant::now();
                report_progress(&collector, &mut progress);
            }
        }
        for ring in rings {
            ring.close();
        }
        let mut failure = None;
        for w in workers {
            if let Err(e) = w.join().expect("arena worker panicked") {
                failure.get_or_insert(e.context("arena worker"));
            }
        }
        if let Err((r, e)) = servers.join() {
            failure.get_or_insert(anyhow::Error::new(e).context(labels[r].clone()));
        }
        failure.map_or(Ok(()), Err)
    })?;
    report_progress(&collector, &mut progress);
    let tally = collector.finish();
    let mut result = ArenaResult::new(&tally, config.players, config.sprt.as_ref(), interrupted);
    result.wall_s = start.elapsed().as_secs_f64();
    Ok(result)
}

fn report_progress(collector: &Collector, progress: &mut impl FnMut(&Progress)) {
    let tally = &collector.received;
    progress(&Progress {
        tally,
        sprt: collector.sprt.map(|t| t.report(tally)),
    });
}

#[cfg(test)]
mod tests;
