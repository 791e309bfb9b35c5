//! `engine bench --sweep`: forward throughput over a grid of batch sizes × batches in flight
//! (× the CPU backend's thread count, when asked), like KataGo's `benchmark -tune` or lc0's
//! `backendbench`, and the self-play settings the best point corresponds to.
//!
//! Every point goes through the batch ring ([`super::run_in_flight`]), as self-play runs
//! its batches, for `seconds` after a warm-up. The CPU backend spreads a batch over a rayon
//! pool: the global pool (`RAYON_NUM_THREADS`) unless the grid names thread counts, in which
//! case each count gets a CPU backend computing in a pool of its own of that many threads.
//!
//! The recommendation ([`recommend`]) is the smallest point within [`TOLERANCE`] of the best
//! throughput: fewest rows in flight (batch × in flight: memory and latency), then fewest
//! threads (cores left to the search), then fewest batches in flight. [`selfplay_flags`] maps
//! it to `engine selfplay` flags: a worker's group of `ceil(G / 2)` games fills one batch of
//! at most `ceil(G / 2) × worlds × leaves per gather × rows per leaf` rows
//! ([`crate::selfplay::SelfPlayConfig::rows_per_batch`]), and a worker has two ring slots, so
//! `W` workers keep up to `2 W` batches in flight.

use std::time::{Duration, Instant};

use serde::Serialize;
use thiserror::Error;

use super::{run_in_flight, BenchError, BenchResult, WARM_UP};
use crate::device::{self, DeviceError, DeviceOptions, Net, Opened};
use crate::search::{LeafValues, SearchConfig};
use crate::selfplay::{MAX_GAMES_PER_WORKER, MAX_WORKERS};

/// A point within this fraction of the best throughput counts as as good as the best.
pub const TOLERANCE: f64 = 0.05;
/// Seconds each point is timed by default (after the warm-up).
pub const DEFAULT_SECONDS: f64 = 0.5;
/// Most values in one list of the grid.
pub const MAX_VALUES: usize = 32;
/// Most points of a grid.
pub const MAX_POINTS: usize = 256;
/// The grid on the CPU when none is given: through the ring the CPU computes one batch at a
/// time, so batches in flight matter little there.
pub const CPU_BATCHES: [usize; 3] = [64, 256, 1024];
pub const CPU_IN_FLIGHT: [usize; 3] = [1, 2, 4];
/// The grid on a GPU when none is given: a GPU needs many rows in flight.
pub const GPU_BATCHES: [usize; 3] = [256, 1024, 4096];
pub const GPU_IN_FLIGHT: [usize; 5] = [1, 2, 4, 8, 16];

/// A list of the grid that cannot be swept.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum GridError {
    #[error("an empty list: give values separated by commas, e.g. 64,256,1024")]
    Empty,
    #[error("{0:?} is not a whole number: give values separated by commas, e.g. 64,256,1024")]
    NotANumber(String),
    #[error("{value} is not in 1..={max}")]
    OutOfRange { value: usize, max: usize },
    #[error("{0} is given twice")]
    Duplicate(usize),
    #[error("{0} values: a list holds at most {MAX_VALUES}")]
    TooManyValues(usize),
    #[error("{0} points to time: a sweep times at most {MAX_POINTS}")]
    TooManyPoints(usize),
}

/// Parses a comma-separated list of whole numbers in `1..=max` (spaces allowed around them),
/// none twice, at most [`MAX_VALUES`]; returns them in ascending order.
pub fn parse_list(text: &str, max: usize) -> Result<Vec<usize>, GridError> {
    if text.trim().is_empty() {
        return Err(GridError::Empty);
    }
    let mut values = Vec::new();
    for item in text.split(',') {
        let item = item.trim();
        let value: usize = item
            .parse()
            .map_err(|_| GridError::NotANumber(item.to_string()))?;
        if !(1..=max).contains(&value) {
            return Err(GridError::OutOfRange { value, max });
        }
        if values.contains(&value) {
            return Err(GridError::Duplicate(value));
        }
        values.push(value);
    }
    if values.len() > MAX_VALUES {
        return Err(GridError::TooManyValues(values.len()));
    }
    values.sort_unstable();
    Ok(values)
}

/// The points to time: every batch size × batches in flight (× CPU thread count).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Grid {
    pub batches: Vec<usize>,
    pub in_flight: Vec<usize>,
    /// The CPU backend's rayon pool sizes to time (`None`: the global pool only).
    pub cpu_threads: Option<Vec<usize>>,
}

/// One point of a grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Point {
    pub batch: usize,
    pub in_flight: usize,
    /// The CPU backend's own pool of this many threads (`None`: the global pool).
    pub threads: Option<usize>,
}

impl Grid {
    /// A grid of the lists given, the device's defaults for the others.
    pub fn new(
        gpu: bool,
        batches: Option<Vec<usize>>,
        in_flight: Option<Vec<usize>>,
        cpu_threads: Option<Vec<usize>>,
    ) -> Result<Grid, GridError> {
        let (default_batches, default_in_flight): (&[usize], &[usize]) = if gpu {
            (&GPU_BATCHES, &GPU_IN_FLIGHT)
        } else {
            (&CPU_BATCHES, &CPU_IN_FLIGHT)
        };
        let grid = Grid {
            batches: batches.unwrap_or_else(|| default_batches.to_vec()),
            in_flight: in_flight.unwrap_or_else(|| default_in_flight.to_vec()),
            cpu_threads,
        };
        let lists = [
            Some(&grid.batches),
            Some(&grid.in_flight),
            grid.cpu_threads.as_ref(),
        ];
        if lists.iter().flatten().any(|l| l.is_empty()) {
            return Err(GridError::Empty);
        }
        let points = grid.len();
        if points > MAX_POINTS {
            return Err(GridError::TooManyPoints(points));
        }
        Ok(grid)
    }

    /// Points to time.
    pub fn len(&self) -> usize {
        let threads = self.cpu_threads.as_ref().map_or(1, Vec::len);
        self.batches.len() * self.in_flight.len() * threads
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The largest batch: the backend is opened for it.
    pub fn max_batch(&self) -> usize {
        self.batches.iter().copied().max().unwrap_or(1)
    }

    /// The points in the order they are timed: thread count, then batch, then in flight.
    pub fn points(&self) -> Vec<Point> {
        let threads: Vec<Option<usize>> = match &self.cpu_threads {
            Some(list) => list.iter().copied().map(Some).collect(),
            None => vec![None],
        };
        let mut points = Vec::with_capacity(self.len());
        for &threads in &threads {
            for &batch in &self.batches {
                for &in_flight in &self.in_flight {
                    points.push(Point {
                        batch,
                        in_flight,
                        threads,
                    });
                }
            }
        }
        points
    }
}

#[derive(Debug, Error)]
pub enum SweepError {
    #[error(
        "--cpu-threads sizes the CPU backend's thread pool, but the network runs on {0}: drop \
         it, or add --device cpu"
    )]
    ThreadsOnGpu(String),
    #[error("opening the CPU backend in a pool of {threads} threads: {source}")]
    Device {
        threads: usize,
        #[source]
        source: DeviceError,
    },
    #[error("timing batch {batch} × {in_flight} in flight: {source}")]
    Bench {
        batch: usize,
        in_flight: usize,
        #[source]
        source: BenchError,
    },
}

/// Where a sweep stands, for a progress line.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Points timed so far.
    pub done: usize,
    pub total: usize,
    /// The point about to be timed (`None`: the sweep is over).
    pub next: Option<Point>,
    /// Time left, estimated from the points timed so far.
    pub eta: Duration,
}

/// Times every point of `grid` for `seconds` each on `opened` (which must take
/// [`Grid::max_batch`] rows) and returns one result per point, in [`Grid::points`] order.
/// Points with a thread count run on a CPU backend opened with `options` and `net` that
/// computes in a pool of that many threads of its own. `progress` is called before each point
/// and once at the end.
pub fn run(
    mut opened: Opened,
    options: &DeviceOptions,
    net: &Net,
    grid: &Grid,
    seconds: f64,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Vec<BenchResult>, SweepError> {
    if grid.cpu_threads.is_some() && opened.gpu.is_some() {
        return Err(SweepError::ThreadsOnGpu(opened.description));
    }
    let points = grid.points();
    let global_threads = opened.gpu.is_none().then(rayon::current_num_threads);
    let start = Instant::now();
    let mut results = Vec::with_capacity(points.len());
    // The backend of the thread count being timed, computing in a pool of its own.
    let mut pooled: Option<(usize, Opened)> = None;
    for (i, &point) in points.iter().enumerate() {
        progress(&Progress {
            done: i,
            total: points.len(),
            next: Some(point),
            eta: eta(start.elapsed(), i, points.len(), seconds),
        });
        if let Some(threads) = point.threads {
            if pooled.as_ref().map(|p| p.0) != Some(threads) {
                drop(pooled.take()); // the previous backend and its threads go first
                let cpu = device::open_cpu(options, net, grid.max_batch(), Some(threads))
                    .map_err(|source| SweepError::Device { threads, source })?;
                pooled = Some((threads, cpu));
            }
        }
        let backend = match &mut pooled {
            Some((_, cpu)) => cpu.backend.as_mut(),
            None => opened.backend.as_mut(),
        };
        let bench = |source| SweepError::Bench {
            batch: point.batch,
            in_flight: point.in_flight,
            source,
        };
        let mut result =
            run_in_flight(backend, point.batch, point.in_flight, seconds, 0).map_err(bench)?;
        result.threads = point.threads.or(global_threads);
        results.push(result);
    }
    progress(&Progress {
        done: points.len(),
        total: points.len(),
        next: None,
        eta: Duration::ZERO,
    });
    Ok(results)
}

/// Time left after `done` of `total` points in `elapsed`: their mean so far, or before the
/// first, the warm-up and `seconds` each.
fn eta(elapsed: Duration, done: usize, total: usize, seconds: f64) -> Duration {
    let per_point = if done == 0 {
        WARM_UP.as_secs_f64() + seconds
    } else {
        elapsed.as_secs_f64() / done as f64
    };
    Duration::try_from_secs_f64(per_point * (total - done) as f64).unwrap_or(Duration::MAX)
}

/// The recommended point of a sweep.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Pick {
    pub batch: usize,
    pub in_flight: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
    pub evals_per_s: f64,
    /// The best throughput of the sweep.
    pub best_evals_per_s: f64,
    /// This point's throughput over the best.
    pub share_of_best: f64,
    /// The tolerance it was chosen with.
    pub tolerance: f64,
}

/// The smallest point whose throughput is within `tolerance` (a fraction) of the best:
/// fewest rows in flight (batch × in flight), then fewest threads, then fewest batches in
/// flight; `None` for an empty or unusable table (no finite, positive throughput).
pub fn recommend(results: &[BenchResult], tolerance: f64) -> Option<Pick> {
    let usable = |r: &&BenchResult| r.evals_per_s.is_finite() && r.evals_per_s > 0.0;
    let best = results
        .iter()
        .filter(usable)
        .map(|r| r.evals_per_s)
        .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))))?;
    let floor = best * (1.0 - tolerance);
    let pick = results
        .iter()
        .filter(usable)
        .filter(|r| r.evals_per_s >= floor)
        .min_by(|a, b| {
            let key = |r: &BenchResult| {
                (
                    r.batch * r.in_flight.max(1),
                    r.threads.unwrap_or(0),
                    r.in_flight,
                    r.batch,
                )
            };
            key(a)
                .cmp(&key(b))
                .then(b.evals_per_s.total_cmp(&a.evals_per_s))
        })?;
    Some(Pick {
        batch: pick.batch,
        in_flight: pick.in_flight,
        threads: pick.threads,
        evals_per_s: pick.evals_per_s,
        best_evals_per_s: best,
        share_of_best: pick.evals_per_s / best,
        tolerance,
    })
}

/// The self-play flags a recommended point corresponds to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SelfPlayFlags {
    pub players: u8,
    /// `--dets`.
    pub worlds: u32,
    /// `--sims`.
    pub sims_per_world: u32,
    /// `--leaf-values`: `all` or `mover`.
    pub leaf_values: &'static str,
    pub leaves_per_gather: u32,
    /// Rows of one leaf: one per seat (`all`) or the mover's (`mover`).
    pub rows_per_leaf: usize,
    /// Most rows one game's search asks for at once: worlds × leaves per gather × rows per leaf.
    pub rows_per_gather: usize,
    /// `--games-per-worker`: the fewest whose group (half of them) can fill the batch.
    pub games_per_worker: usize,
    /// Rows of a worker's batch slot with that many games: `ceil(games / 2) × rows_per_gather`.
    pub rows_per_batch: usize,
    /// True when `games_per_worker` hit its maximum and the slot is smaller than the batch.
    pub games_capped: bool,
    /// `--workers`: enough for the batches in flight (two ring slots each), and no fewer than
    /// self-play's default (every core), since the workers also run the search.
    pub workers: usize,
    /// `RAYON_NUM_THREADS` for the CPU backend: the threads the point ran with (`None` on a
    /// GPU).
    pub rayon_threads: Option<usize>,
}

impl SelfPlayFlags {
    /// The flags as arguments of `engine selfplay` (device and weights left to the caller).
    pub fn args(&self) -> Vec<String> {
        [
            ("--players", self.players.to_string()),
            ("--dets", self.worlds.to_string()),
            ("--sims", self.sims_per_world.to_string()),
            ("--leaf-values", self.leaf_values.to_string()),
            ("--games-per-worker", self.games_per_worker.to_string()),
            ("--workers", self.workers.to_string()),
        ]
        .into_iter()
        .flat_map(|(flag, value)| [flag.to_string(), value])
        .collect()
    }
}

/// Maps `pick` to self-play flags for `players` at the table with `search`'s settings, on a
/// machine of `cores` cores (self-play's default `--workers`).
pub fn selfplay_flags(
    pick: &Pick,
    players: u8,
    search: &SearchConfig,
    cores: usize,
) -> SelfPlayFlags {
    let rows_per_gather = search.max_rows_per_gather(players).max(1);
    let games = (2 * pick.batch.div_ceil(rows_per_gather)).min(MAX_GAMES_PER_WORKER);
    let rows_per_batch = games.div_ceil(2) * rows_per_gather;
    SelfPlayFlags {
        players,
        worlds: search.worlds,
        sims_per_world: search.sims_per_world,
        leaf_values: match search.leaf_values {
            LeafValues::All => "all",
            LeafValues::Mover => "mover",
        },
        leaves_per_gather: search.leaves_per_gather,
        rows_per_leaf: search.rows_per_leaf(players),
        rows_per_gather,
        games_per_worker: games,
        rows_per_batch,
        games_capped: rows_per_batch < pick.batch,
        workers: pick.in_flight.div_ceil(2).max(cores).clamp(1, MAX_WORKERS),
        rayon_threads: pick.threads,
    }
}

#[cfg(test)]
mod tests;
