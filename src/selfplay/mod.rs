//! Self-play: worker threads, each running many games at once through a batch ring, one
//! backend thread per device (one ring each: worker `w` feeds device `w % devices`), and the
//! shard writer.
//!
//! A unit of work is one round (round mode) or one full game. Unit `i` draws everything from
//! its own random stream (run seed, `i`), every row records its `i` (the shard's `unit`
//! tensor), and shards are written in unit order, so a run is reproducible from its seed:
//! byte-identical for any number of workers or CPU devices (tests/selfplay.rs). Each worker's
//! evaluation cache is shared by the units it plays, but a cache hit never changes a search
//! (see [`crate::search`]), so which units shared a worker does not matter.

mod metadata;
mod out_dir;
mod resume;
mod shard;
mod worker;
mod writer;

pub use metadata::ShardMetadata;
pub use out_dir::{hostname, OutDir, OutDirError, LOCK_FILE};
pub use resume::{finished_units, Finished, ResumeError, UnitSet};
pub use shard::{
    parse_shard, read_shard, serialize, Example, Shard, ShardError, MAX_SHARD_ROWS,
    SHARD_FORMAT_VERSION,
};
pub use writer::ShardWriter;

use crate::device::Opened;
use crate::game::{round_sequence, RoundConfig, Seat};
use crate::net::{Backend, INPUT_DIM, POLICY_DIM};
use crate::ring::{Ring, Servers};
use crate::search::{EvalCache, SearchConfig, TemperatureSchedule};
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Most worker threads: more than any host has cores, and each holds two batch slots.
pub const MAX_WORKERS: usize = 1024;
/// Most games one worker plays at once: each holds its searches' trees, and half of them fill
/// one batch.
pub const MAX_GAMES_PER_WORKER: usize = 4096;
/// Games each worker plays at once unless told otherwise: half of them fill a batch of
/// hundreds of rows at Medium.
pub const DEFAULT_GAMES_PER_WORKER: usize = 64;
/// Most units (rounds or games) one run plays: units are streamed, never held, so the bound
/// is their index's room (I64 in the shards) with years of play to spare.
pub const MAX_UNITS: u64 = 1_000_000_000_000;

/// Settings of a self-play run.
#[derive(Clone, Debug)]
pub struct SelfPlayConfig {
    pub players: u8,
    /// Cards per round in round mode.
    pub cards: u8,
    /// Full-game mode: the first round's card count (`None` = round mode).
    pub start_cards: Option<u8>,
    /// Rounds (round mode) or games (full-game mode) to play.
    pub units: u64,
    pub search: SearchConfig,
    pub workers: usize,
    pub games_per_worker: usize,
    pub seed: u64,
    /// Entries of each worker's evaluation cache.
    pub cache_entries: usize,
    /// The move temperature by the round's searched decisions so far.
    pub temperature: TemperatureSchedule,
}

impl SelfPlayConfig {
    pub fn validate(&self) -> Result<()> {
        match self.start_cards {
            Some(start) => {
                round_sequence(self.players, start)?;
            }
            None => RoundConfig {
                players: self.players,
                cards: self.cards,
                dealer: Seat(0),
                trump: None,
            }
            .validate()?,
        }
        self.search.validate()?;
        if !(1..=MAX_WORKERS).contains(&self.workers)
            || !(1..=MAX_GAMES_PER_WORKER).contains(&self.games_per_worker)
            || !(1..=MAX_UNITS).contains(&self.units)
        {
            bail!(
                "workers ({}), games per worker ({}) and units ({}) must be at least 1 and at \
                 most {MAX_WORKERS}, {MAX_GAMES_PER_WORKER} and {MAX_UNITS}",
                self.workers,
                self.games_per_worker,
                self.units
            );
        }
        Ok(())
    }

    /// Refuses settings whose memory bound (this and a writer of `shard_size`-row shards)
    /// exceeds the machine's memory, before any of it is allocated.
    pub fn check_memory(&self, shard_size: usize) -> Result<()> {
        let need = self.memory_bound() + ShardWriter::memory_bound(shard_size);
        match physical_memory() {
            Some(have) if need > have => bail!(
                "these settings may need up to {:.1} GiB ({} workers × {} games, {} worlds × {} \
                 simulations, shards of {shard_size} rows, caches of {} entries), more than this \
                 machine's {:.1} GiB: lower --games-per-worker, --workers, --dets, --sims, \
                 --shard-size or search.cache_entries",
                need as f64 / GIB,
                self.workers,
                self.games_per_worker,
                self.search.worlds,
                self.search.sims_per_world,
                self.cache_entries,
                have as f64 / GIB
            ),
            _ => Ok(()),
        }
    }

    /// Cards in the largest hand dealt.
    fn max_cards(&self) -> u8 {
        self.start_cards.unwrap_or(self.cards)
    }

    /// Examples one unit gives: one per card dealt in each of its rounds.
    pub fn examples_per_unit(&self) -> u64 {
        let cards: u64 = match self.start_cards {
            Some(start) => round_sequence(self.players, start)
                .map_or(0, |seq| seq.iter().map(|&c| u64::from(c)).sum()),
            None => u64::from(self.cards),
        };
        u64::from(self.players) * cards
    }

    /// Most bytes the run's games hold at once (a bound, not a forecast): every game's
    /// search trees, beliefs and examples, the units queued for the writer, the workers' caches and
    /// the batch ring's host memory. The network and the writer's shard come on top.
    pub fn memory_bound(&self) -> u64 {
        let games = (self.workers * self.games_per_worker) as u64;
        let unit_bytes = self.examples_per_unit() * std::mem::size_of::<Example>() as u64;
        let per_game = self
            .search
            .tree_bytes_bound(usize::from(self.max_cards()) + 1)
            + self.search.belief_bytes_bound()
            + unit_bytes;
        // The writer's queue holds 4 units per game (see `run`).
        let queue = 4 * games * unit_bytes;
        let ring = 2 * self.workers as u64 * self.rows_per_batch() as u64 * ROW_BYTES;
        let caches = self.workers as u64 * EvalCache::bytes(self.cache_entries);
        games * per_game + queue + ring + caches
    }

    /// Most rows one worker group submits at once: every game's search gathering its maximum.
    pub fn rows_per_batch(&self) -> usize {
        self.games_per_worker.div_ceil(2) * self.search.max_rows_per_gather(self.players)
    }
}

const GIB: f64 = (1u64 << 30) as f64;

/// Host bytes of one row of a batch slot: inputs, mask, policy and value.
const ROW_BYTES: u64 = (4 * (INPUT_DIM + POLICY_DIM + 1) + 8) as u64;

/// The machine's memory (`MemTotal` of /proc/meminfo), when it can be read.
fn physical_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// State shared by the workers.
struct Shared<'a> {
    config: SelfPlayConfig,
    /// Units an earlier run of the same identity finished: skipped.
    finished: &'a UnitSet,
    next_unit: AtomicU64,
    stop: AtomicBool,
    decisions: AtomicU64,
    belief_rows: AtomicU64,
    cache_hits: AtomicU64,
    cache_lookups: AtomicU64,
    /// Set once the writer queue was found full (warned about once).
    writer_behind: AtomicBool,
}

impl Shared<'_> {
    fn claim_unit(&self) -> Option<u64> {
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return None;
            }
            let i = self.next_unit.fetch_add(1, Ordering::Relaxed);
            if i >= self.config.units {
                return None;
            }
            if !self.finished.contains(i) {
                return Some(i);
            }
        }
    }
}

/// A finished unit: its index, rounds played, and examples with value targets.
pub struct UnitDone {
    pub index: u64,
    pub rounds: u32,
    pub examples: Vec<Example>,
}

/// Where [`run`] hands finished units (in completion order). `tick` is called at least once
/// per progress period, finished units or not, so that a sink can also act on a timer.
pub trait UnitSink {
    fn unit_done(&mut self, done: UnitDone) -> Result<()>;
    fn tick(&mut self) -> Result<()> {
        Ok(())
    }
}

impl<F: FnMut(UnitDone) -> Result<()>> UnitSink for F {
    fn unit_done(&mut self, done: UnitDone) -> Result<()> {
        self(done)
    }
}

/// Progress seen by the caller after every finished unit and on a timer.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    /// Units finished: rounds in round mode, games in full-game mode.
    pub units: u64,
    pub rounds: u64,
    /// Full games finished (0 in round mode).
    pub games: u64,
    pub decisions: u64,
    pub examples: u64,
    pub rounds_per_min: f64,
    pub nn_rows: u64,
    /// Of `nn_rows`, those asked for by policy beliefs (0 with uniform beliefs).
    pub belief_rows: u64,
    pub nn_rows_per_s: f64,
    pub avg_batch: f64,
    pub cache_hit_rate: f64,
    pub wall_s: f64,
    pub shards: u64,
    /// Units skipped because an earlier run of the same identity wrote them to `--out`.
    pub resumed_units: u64,
    /// True when the run was stopped early (Ctrl-C): in-flight units were dropped.
    pub interrupted: bool,
    /// The GPU at the end of the run (NVML), when the network ran on one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu: Option<crate::telemetry::GpuStats>,
    /// Mean GPU utilisation (NVML: share of time a kernel ran) over the samples taken while
    /// the run went on, when the network ran on a GPU with NVML (over several GPUs, the mean
    /// of their means).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_util_mean_percent: Option<f64>,
    /// Each device's share of the network's work, in the order the devices were given (one
    /// entry on one device); their rows sum to `nn_rows`.
    pub devices: Vec<DeviceSummary>,
}

/// One device's share of a run's network work: what its batch ring ran.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DeviceSummary {
    /// `cpu` or `cuda:N`.
    pub device: String,
    pub rows: u64,
    pub rows_per_s: f64,
    pub batches: u64,
    pub avg_batch: f64,
    /// Mean GPU utilisation over the run (NVML), when the device is a GPU NVML reports on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_util_mean_percent: Option<f64>,
}

/// How often `run` reports progress.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

/// Runs self-play with `backend` until `config.units` units are done or `stop` is set, passing
/// each finished unit to `sink` and a progress summary to `progress` (every
/// [`PROGRESS_EVERY`]). Units in `finished` (an earlier run's, [`finished_units`]) are skipped.
pub fn run(
    config: SelfPlayConfig,
    finished: &UnitSet,
    backend: Box<dyn Backend>,
    stop: &AtomicBool,
    sink: &mut impl UnitSink,
    progress: impl FnMut(&Summary),
) -> Result<Summary> {
    run_on(
        config,
        finished,
        vec![Opened::of(backend)],
        stop,
        sink,
        progress,
    )
}

/// [`run`] over several devices: one batch ring and one backend thread per device, worker `w`
/// feeding device `w % devices.len()` (so there must be at least as many workers as devices).
/// The shards do not depend on how many devices there are (each unit has its own stream, and a
/// backend gives a row the same bits in any batch), only on what the devices compute.
pub fn run_on(
    config: SelfPlayConfig,
    finished: &UnitSet,
    mut devices: Vec<Opened>,
    stop: &AtomicBool,
    sink: &mut impl UnitSink,
    mut progress: impl FnMut(&Summary),
) -> Result<Summary> {
    config.validate()?;
    let rows = config.rows_per_batch();
    let workers = config.workers;
    if devices.is_empty() {
        bail!("self-play needs a device to run the network on");
    }
    if devices.len() > workers {
        bail!(
            "{} devices need at least as many workers (--workers), each feeding one device: \
             there are {workers}",
            devices.len()
        );
    }
    for opened in &devices {
        let backend = &opened.backend;
        if rows > backend.max_batch() {
            bail!(
                "a batch can hold {rows} rows but the {} backend on {} takes at most {}",
                backend.name(),
                opened.device(),
                backend.max_batch()
            );
        }
    }
    let full_games = config.start_cards.is_some();
    let games = config.games_per_worker;
    // A worker holds one slot per group of games (filling, or in flight) of its device's ring,
    // so two per worker never make anyone wait; on a GPU each slot is page-locked and device
    // memory with its own graphs, so no more.
    let n = devices.len();
    let rings = devices
        .iter_mut()
        .enumerate()
        .map(|(d, opened)| {
            let feeding = (d..workers).step_by(n).count();
            Ring::new(opened.backend.as_mut(), 2 * feeding, rows).with_context(|| {
                format!("allocating the batch ring's slots on {}", opened.device())
            })
        })
        .collect::<Result<Vec<_>>>()?;
    // The backends go to their threads; the summary keeps the devices' names.
    let (names, mut backends): (Vec<String>, Vec<Box<dyn Backend>>) = devices
        .into_iter()
        .map(|opened| (opened.device(), opened.backend))
        .unzip();
    let mut summary = Summary {
        resumed_units: finished.count_below(config.units),
        ..Summary::default()
    };
    let shared = Shared {
        config,
        finished,
        next_unit: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        decisions: AtomicU64::new(0),
        belief_rows: AtomicU64::new(0),
        cache_hits: AtomicU64::new(0),
        cache_lookups: AtomicU64::new(0),
        writer_behind: AtomicBool::new(false),
    };
    let start = Instant::now();
    let snapshot = |summary: &mut Summary| {
        let wall = start.elapsed().as_secs_f64().max(1e-9);
        let mean = |rows: u64, batches: u64| match batches {
            0 => 0.0,
            _ => rows as f64 / batches as f64,
        };
        summary.devices = names
            .iter()
            .zip(&rings)
            .map(|(name, ring)| {
                let rows = ring.stats.rows.load(Ordering::Relaxed);
                let batches = ring.stats.batches.load(Ordering::Relaxed);
                DeviceSummary {
                    device: name.clone(),
                    rows,
                    rows_per_s: rows as f64 / wall,
                    batches,
                    avg_batch: mean(rows, batches),
                    gpu_util_mean_percent: None,
                }
            })
            .collect();
        let rows = summary.devices.iter().map(|d| d.rows).sum();
        let batches = summary.devices.iter().map(|d| d.batches).sum();
        let lookups = shared.cache_lookups.load(Ordering::Relaxed);
        summary.decisions = shared.decisions.load(Ordering::Relaxed);
        summary.nn_rows = rows;
        summary.belief_rows = shared.belief_rows.load(Ordering::Relaxed);
        summary.wall_s = wall;
        summary.rounds_per_min = summary.rounds as f64 * 60.0 / wall;
        summary.nn_rows_per_s = rows as f64 / wall;
        summary.avg_batch = mean(rows, batches);
        summary.cache_hit_rate = if lookups > 0 {
            shared.cache_hits.load(Ordering::Relaxed) as f64 / lookups as f64
        } else {
            0.0
        };
    };
    std::thread::scope(|scope| -> Result<()> {
        let rings = &rings;
        let servers = Servers::spawn(scope, rings, &mut backends);
        // Bounded: when the writer (a slow disk) falls behind, workers wait instead of piling
        // finished units up in memory (4 per game, as `SelfPlayConfig::memory_bound` counts).
        let (tx, rx) = mpsc::sync_channel(4 * workers * games);
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let (tx, ring) = (tx.clone(), &rings[w % n]);
                let shared = &shared;
                scope.spawn(move || {
                    let r = worker::run(shared, ring, games, tx);
                    if r.is_err() {
                        shared.stop.store(true, Ordering::Relaxed);
                    }
                    r
                })
            })
            .collect();
        drop(tx);
        let mut failure = None;
        let mut last_progress = Instant::now();
        loop {
            if stop.load(Ordering::Relaxed) {
                shared.stop.store(true, Ordering::Relaxed);
                summary.interrupted = true;
            }
            // Wakes at least once per progress period even when no unit finishes.
            match rx.recv_timeout(PROGRESS_EVERY) {
                Ok(done) => {
                    summary.rounds += u64::from(done.rounds);
                    summary.units += 1;
                    summary.games += u64::from(full_games);
                    summary.examples += done.examples.len() as u64;
                    if failure.is_none() {
                        failure = sink.unit_done(done).err();
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            if failure.is_none() {
                failure = sink.tick().err();
            }
            if failure.is_some() {
                shared.stop.store(true, Ordering::Relaxed);
            }
            // Not per unit: at hundreds of thousands of rounds a minute, per-unit progress
            // (and the GPU telemetry a caller reads in it) would hold up the writer.
            if last_progress.elapsed() >= PROGRESS_EVERY {
                last_progress = Instant::now();
                snapshot(&mut summary);
                progress(&summary);
            }
        }
        for h in handles {
            h.join()
                .expect("worker panicked")
                .context("self-play worker")?;
        }
        servers.join().map_err(|(d, e)| {
            anyhow::Error::new(e).context(format!("network backend on {}", names[d]))
        })?;
        failure.map_or(Ok(()), Err)
    })?;
    snapshot(&mut summary);
    Ok(summary)
}
