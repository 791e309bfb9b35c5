//! `engine` command line: selfplay, arena, analyze, verify, info, init-weights, bench.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use engine::arena::ArenaConfig;
use engine::device::{self, DeviceOptions, DeviceSpec, Net, Opened, Watch};
use engine::encode::EncoderVersion;
use engine::net::cpu::{CpuBackend, CpuKernel};
use engine::net::weights::Weights;
use engine::net::Backend;
use engine::search::{LeafValues, RootNoise, SearchConfig};
use engine::search::{MAX_SIMS_PER_WORLD, MAX_WORLDS};
use engine::selfplay::{
    OutDir, SelfPlayConfig, ShardMetadata, ShardWriter, MAX_GAMES_PER_WORKER, MAX_SHARD_ROWS,
    MAX_UNITS, MAX_WORKERS,
};
use engine::telemetry::{nvml_snapshot, GpuSampler};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `println!` that hands a write error to the caller (`?`): a closed pipe then ends the
/// command quietly (see `main`) instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {
        writeln!(std::io::stdout(), $($arg)*)?
    };
}

/// `eprintln!` that drops a write error: a diagnostic nobody can read must not stop the work.
macro_rules! note {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

#[derive(Parser)]
#[command(
    name = "engine",
    version,
    about = "Self-play and inference engine for BlobNet, the network of BlobMaster (Blob / Oh Hell)",
    long_about = "Self-play and inference engine for BlobNet, the AlphaZero-style policy/value network of \
BlobMaster (kbingoel/BlobMaster) for the trick-taking card game Blob (Oh Hell). Rules, the 256-float state \
encoder and the network are bit-compatible with BlobMaster: its weights load as they are (safetensors, \
PyTorch key names)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Play Blob against itself with determinized MCTS and write training shards
    ///
    /// Each worker thread runs many games at once and feeds one network backend through a batch
    /// ring. Shards are safetensors files (state f32[N,256], policy f32[N,52], value f32[N],
    /// mask u8[N,52], unit i64[N]: the round or game a row comes from, which with the run's
    /// --seed replays it) written atomically to --out, numbered after the shards already there.
    /// One run at a time owns an --out (a second is refused, naming the first); the directory
    /// is proven writable before any work. The shard being filled is written every
    /// --flush-secs, so a crash loses at most that much work. Reproducible: see README.md.
    /// Ctrl-C (or SIGTERM) stops taking new rounds, writes what is complete, prints the
    /// summary and exits with status 130; a second Ctrl-C exits at once.
    Selfplay(SelfplayArgs),
    /// Compare two nets on paired deals with rotated seats (greedy play, no noise)
    ///
    /// Each deal is replayed once per seat rotation so both nets sit in every seat equally
    /// often; prints each net's mean score per round, the difference and its 95% confidence
    /// interval over deals. Ctrl-C prints the result over the deals finished and exits with
    /// status 130.
    Arena(ArenaArgs),
    /// Analyse positions: one JSON query per line on stdin, one JSON answer per line on stdout
    ///
    /// A long-running server for GUIs, bots and tests, like KataGo's analysis engine. A query is
    /// a position in the shape of a `state` of tests/vectors/games.json plus `id` and `player`
    /// (other seats' hands may be given as hand sizes), with options dets, sims, seed,
    /// leaf_values, include_policy_prior and perfect_information. Answers (visits, prior and
    /// value per legal action, the network's value, the best action, search statistics) come as
    /// queries finish; queries in flight share network batches. A bad line is answered with an
    /// `error` object naming the field; EOF drains the queries in flight and exits 0. The
    /// format is in README.md, "Analysis API".
    Analyze(AnalyzeArgs),
    /// Check rules, legal masks, the encoder and the network against recorded reference vectors
    ///
    /// Reads DIR/games.json (rounds recorded from BlobMaster: every decision's state, legal
    /// actions, mask and encoding) and DIR/net_io.json with DIR/net.safetensors (network
    /// inputs and outputs). Prints pass/fail counts per category and exits 1 on any failure.
    Verify {
        /// Directory of vectors in BlobMaster's recorded format
        #[arg(long, value_name = "DIR", default_value = "tests/vectors")]
        vectors: PathBuf,
        /// Print one JSON object instead of text
        #[arg(long)]
        json: bool,
    },
    /// Describe a weights file (architecture, parameter count, dtype, sha256) and the GPUs
    Info {
        /// BlobNet weights (safetensors with PyTorch key names)
        #[arg(long, value_name = "FILE")]
        weights: PathBuf,
        /// Print one JSON object instead of text
        #[arg(long)]
        json: bool,
    },
    /// Write a freshly initialised BlobNet (PyTorch's default init scheme) as safetensors
    InitWeights {
        /// Seed of the initialisation (same seed, same file)
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output file (written atomically)
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Measure network forward throughput on random encoder-like inputs
    Bench {
        #[command(flatten)]
        device: DeviceArgs,
        /// Rows per forward call (1..=65536)
        #[arg(long, default_value_t = 256, value_parser = within::<usize>(MAX_BENCH_BATCH))]
        batch: usize,
        /// Seconds to time (after a warm-up)
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// Time batches through the batch ring with N of them in flight, as self-play runs
        /// them (on a GPU: page-locked slots, one stream each, no host staging copy); without
        /// it, direct forward calls (on a GPU: through a staging slot, host copies included);
        /// 1..=64
        #[arg(long, value_name = "N", value_parser = within::<usize>(MAX_IN_FLIGHT))]
        in_flight: Option<usize>,
        /// Weights to time (default: a fresh net, seed 0)
        #[arg(long, value_name = "FILE")]
        weights: Option<PathBuf>,
        /// Print one JSON object instead of text
        #[arg(long)]
        json: bool,
    },
}

/// Device options shared by the commands that run the network.
#[derive(clap::Args)]
struct DeviceArgs {
    /// Where the network runs: auto (GPU 0 if usable, else CPU), cpu, cuda or cuda:N
    #[arg(long, default_value = "auto", value_name = "DEVICE")]
    device: DeviceSpec,
    /// CUDA: launch kernels eagerly instead of replaying captured graphs (for A/B timing)
    #[arg(long)]
    no_graphs: bool,
    /// CUDA: how a thread waits for its batch through the ring: block (sleep until the GPU
    /// signals; frees the core for search) or spin (the driver polls; lower latency, burns the
    /// waiting core)
    #[arg(long, value_enum, default_value_t = GpuWait::Block, value_name = "HOW")]
    gpu_wait: GpuWait,
    /// CPU: the matrix kernel: avx512, avx2, neon or portable (default: the fastest this CPU
    /// has). Each gives a row the same result whatever batch it is in; avx512 and avx2 agree
    /// bit for bit, portable differs in the last bits
    #[arg(long, value_name = "KERNEL")]
    cpu_kernel: Option<CpuKernel>,
}

/// `--gpu-wait`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum GpuWait {
    Block,
    Spin,
}

impl DeviceArgs {
    /// Starts the backend with room for `rows` rows per batch, saying where it runs.
    fn open(&self, net: &Net, rows: usize) -> Result<Opened> {
        let options = DeviceOptions {
            spec: self.device,
            cpu_kernel: self.cpu_kernel,
            graphs: !self.no_graphs,
            blocking_wait: self.gpu_wait == GpuWait::Block,
        };
        let opened = device::open(&options, net, rows)?;
        if let Some(why) = &opened.fallback {
            note!("note: --device auto: GPU unavailable ({why}); running the network on the CPU");
        }
        note!("device: {}", opened.description);
        Ok(opened)
    }
}

/// Loads `--weights`, or says that a fresh net stands in for them.
fn load_net(path: Option<&Path>) -> Result<Net> {
    if path.is_none() {
        note!("note: no --weights given: using a freshly initialised BlobNet (seed 0)");
    }
    Ok(Net::load(path)?)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Preset {
    /// 2 worlds × 20 simulations
    Light,
    /// 3 worlds × 30 simulations
    Medium,
    /// 5 worlds × 50 simulations
    Heavy,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum LeafValuesArg {
    /// Evaluate each new leaf from every seat's perspective (one row per seat)
    All,
    /// Evaluate only the mover's row (cheaper; other seats learn from terminals)
    Mover,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum EncoderArg {
    /// BlobMaster's HEAD layout (dims 191..=201 filled)
    V2,
    /// The layout of BlobMaster's published checkpoints (dims 191.. zero)
    V1,
}

/// Search settings shared by selfplay and arena.
#[derive(clap::Args)]
struct SearchArgs {
    /// Search preset (worlds × simulations per world)
    #[arg(long, value_enum, default_value_t = Preset::Medium)]
    preset: Preset,
    /// Determinized worlds per decision, 1..=64 (overrides the preset): 64 worlds × 4 leaves ×
    /// 8 seats fill a 2,048-row batch
    #[arg(long, value_parser = within::<u32>(MAX_WORLDS.into()))]
    dets: Option<u32>,
    /// Simulations per world, 1..=65534 (overrides the preset): visits are counted in 16 bits
    #[arg(long, value_parser = within::<u32>(MAX_SIMS_PER_WORLD.into()))]
    sims: Option<u32>,
    /// How network leaves are valued
    #[arg(long, value_enum, default_value_t = LeafValuesArg::All)]
    leaf_values: LeafValuesArg,
    /// Encoder layout the weights expect
    #[arg(long, value_enum, default_value_t = EncoderArg::V2)]
    encoder: EncoderArg,
}

impl SearchArgs {
    fn config(&self) -> SearchConfig {
        let base = match self.preset {
            Preset::Light => SearchConfig::light(),
            Preset::Medium => SearchConfig::medium(),
            Preset::Heavy => SearchConfig::heavy(),
        };
        SearchConfig {
            worlds: self.dets.unwrap_or(base.worlds),
            sims_per_world: self.sims.unwrap_or(base.sims_per_world),
            leaf_values: match self.leaf_values {
                LeafValuesArg::All => LeafValues::All,
                LeafValuesArg::Mover => LeafValues::Mover,
            },
            encoder: match self.encoder {
                EncoderArg::V1 => EncoderVersion::V1,
                EncoderArg::V2 => EncoderVersion::V2,
            },
            ..base
        }
    }
}

#[derive(clap::Args)]
struct ArenaArgs {
    /// Weights of net A
    #[arg(long, value_name = "FILE")]
    a: PathBuf,
    /// Weights of net B
    #[arg(long, value_name = "FILE")]
    b: PathBuf,
    /// Deals to play (each is played once per seat rotation), 1..=10000000: each deal's result
    /// is kept until the end
    #[arg(long, default_value_t = 100, value_parser = within::<u64>(engine::arena::MAX_DEALS))]
    rounds: u64,
    #[arg(long, default_value_t = 4)]
    players: u8,
    #[arg(long, default_value_t = 5)]
    cards: u8,
    #[command(flatten)]
    search: SearchArgs,
    /// Threads, 1..=1024 (default: all cores)
    #[arg(long, value_parser = within::<usize>(MAX_THREADS))]
    threads: Option<usize>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print one JSON object instead of text
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct AnalyzeArgs {
    /// BlobNet weights (default: a fresh net, seed 0)
    #[arg(long, value_name = "FILE")]
    weights: Option<PathBuf>,
    #[command(flatten)]
    device: DeviceArgs,
    /// Worker threads running searches, 1..=1024 (default: all cores)
    #[arg(long, value_parser = within::<usize>(MAX_THREADS))]
    threads: Option<usize>,
    /// Encoder layout the weights expect
    #[arg(long, value_enum, default_value_t = EncoderArg::V2)]
    encoder: EncoderArg,
}

#[derive(clap::Args)]
struct SelfplayArgs {
    /// BlobNet weights (default: a fresh net, seed 0)
    #[arg(long, value_name = "FILE")]
    weights: Option<PathBuf>,
    #[command(flatten)]
    device: DeviceArgs,
    /// Players at the table (3..=8)
    #[arg(long, default_value_t = 4)]
    players: u8,
    /// Cards per round in round mode (dealer and trump are random per round)
    #[arg(long, default_value_t = 5, conflicts_with = "full_game")]
    cards: u8,
    /// Play full games (C, C-1, …, 1, 1 × players, 2, …, C cards; dealer and trump rotate)
    #[arg(long, requires = "start_cards")]
    full_game: bool,
    /// First round's card count in full-game mode
    #[arg(long, value_name = "C")]
    start_cards: Option<u8>,
    /// Rounds to play (round mode), 1..=10^12
    #[arg(long, default_value_t = 100, conflicts_with = "games", value_parser = within::<u64>(MAX_UNITS))]
    rounds: u64,
    /// Games to play (full-game mode; default 10), 1..=10^12
    #[arg(long, requires = "full_game", value_parser = within::<u64>(MAX_UNITS))]
    games: Option<u64>,
    #[command(flatten)]
    search: SearchArgs,
    /// Run a GPU backend under watch: also evaluate one batch in N on the CPU and stop the
    /// run if any output differs by more than --check-threshold (no effect on the CPU)
    #[arg(long, value_name = "N", value_parser = within::<u64>(u64::MAX))]
    check_every: Option<u64>,
    /// Largest |Δ| of a policy entry or value tolerated by --check-every
    #[arg(long, default_value_t = 1e-2)]
    check_threshold: f32,
    /// Dirichlet noise at each world's root: concentration α
    #[arg(long, default_value_t = 0.3)]
    dirichlet_alpha: f32,
    /// Dirichlet noise at each world's root: weight ε (0 turns the noise off)
    #[arg(long, default_value_t = 0.25)]
    dirichlet_epsilon: f32,
    /// Worker threads, 1..=1024 (default: all cores)
    #[arg(long, value_parser = within::<usize>(MAX_WORKERS as u64))]
    workers: Option<usize>,
    /// Games each worker plays at once, 1..=4096. With --workers, --dets and --sims it sets
    /// the memory a run may need; a run whose bound exceeds the machine's memory is refused
    #[arg(long, default_value_t = 64, value_parser = within::<usize>(MAX_GAMES_PER_WORKER as u64))]
    games_per_worker: usize,
    /// Output directory for shards (created; owned by one run at a time)
    #[arg(long, value_name = "DIR", default_value = "out")]
    out: PathBuf,
    /// Examples per shard, 1..=1000000 (a shard is built in memory, about 2.5 KB a row)
    #[arg(long, default_value_t = 50_000, value_parser = within::<usize>(MAX_SHARD_ROWS as u64))]
    shard_size: usize,
    /// Seconds between writes of the shard being filled, 1..=86400: a crash loses at most this
    /// much work. Each write rewrites the shard so far; the final shards are the same whatever
    /// this is
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = within::<u64>(86_400))]
    flush_secs: u64,
    /// Seed of the run (same seed and settings, same games)
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print one JSON summary object on stdout
    #[arg(long)]
    json: bool,
    /// No progress bar
    #[arg(long)]
    quiet: bool,
}

/// Most rows per `bench` batch.
const MAX_BENCH_BATCH: u64 = 65_536;
/// Most batches `bench --in-flight` keeps in flight (each a slot of `--batch` rows).
const MAX_IN_FLIGHT: u64 = 64;
/// Most threads of `arena` and `analyze`: as self-play's workers.
const MAX_THREADS: u64 = MAX_WORKERS as u64;
/// Exit status of a run stopped by Ctrl-C or SIGTERM (128 + SIGINT, as shells report it).
const INTERRUPTED: u8 = 130;
/// Exit status when stdout is a closed pipe (128 + SIGPIPE, as if killed by it).
const BROKEN_PIPE: u8 = 141;

/// A parser of an integer flag in `1..=max`, so that a bad size is refused before any work.
fn within<T>(max: u64) -> clap::builder::RangedU64ValueParser<T>
where
    T: TryFrom<u64> + Clone + Send + Sync + 'static,
    <T as TryFrom<u64>>::Error: std::error::Error + Send + Sync + 'static,
{
    clap::builder::RangedU64ValueParser::new().range(1..=max)
}

fn main() -> ExitCode {
    // A write past `ulimit -f` then fails with EFBIG and is reported with its file, instead
    // of the signal killing the process without a word.
    // SAFETY: setting a signal's disposition to "ignore" installs no handler code.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::from(BROKEN_PIPE),
        Err(e) => {
            note!("error: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// True when `e` comes from writing to a pipe whose reader has gone (`engine info | head -1`).
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The error and its causes on one line.
fn error_chain(e: &anyhow::Error) -> String {
    engine::error_text::error_chain(e.as_ref())
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Selfplay(args) => selfplay(args),
        Command::Arena(args) => arena(args),
        Command::Analyze(args) => {
            let net = load_net(args.weights.as_deref())?;
            let config = engine::analyze::AnalyzeConfig {
                threads: args.threads.unwrap_or_else(cores),
                encoder: match args.encoder {
                    EncoderArg::V1 => EncoderVersion::V1,
                    EncoderArg::V2 => EncoderVersion::V2,
                },
            };
            let opened = args.device.open(&net, engine::analyze::ROWS_PER_BATCH)?;
            let (input, output) = (std::io::stdin().lock(), std::io::stdout());
            engine::analyze::serve(input, output, opened.backend, &config)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify { vectors, json } => verify(&vectors, json),
        Command::Info { weights, json } => {
            info(&Weights::load(&weights)?, &weights, json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::InitWeights { seed, out } => {
            Weights::init(seed)
                .save(&out)
                .with_context(|| format!("writing {}", out.display()))?;
            note!("wrote a fresh BlobNet (seed {seed}) to {}", out.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            device,
            batch,
            seconds,
            in_flight,
            weights,
            json,
        } => {
            bench(&device, batch, seconds, in_flight, weights.as_deref(), json)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn verify(dir: &Path, json: bool) -> Result<ExitCode> {
    if !dir.is_dir() {
        bail!("vectors directory {} does not exist", dir.display());
    }
    let report = engine::verify::verify_dir(dir)?;
    if json {
        out!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        out!("vectors: {}", dir.display());
        for c in &report.categories {
            out!(
                "  {:<16} {:>6} passed, {} failed",
                c.name,
                c.passed,
                c.failed
            );
        }
        out!(
            "  network max |policy diff| {:.2e}, max |value diff| {:.2e} (tolerance {:.0e})",
            report.max_policy_diff,
            report.max_value_diff,
            engine::verify::NET_TOLERANCE
        );
        for f in &report.failures {
            out!("  FAILED {f}");
        }
        out!("verify: {} passed, {} failed", report.passed, report.failed);
    }
    Ok(if report.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn info(weights: &Weights, path: &Path, json: bool) -> Result<()> {
    let d = weights.dims();
    let gpus = engine::net::cuda::describe_devices();
    let summary = serde_json::json!({
        "file": path.display().to_string(),
        "architecture": "BlobNet",
        "input": d.input,
        "embedding": d.embedding,
        "layers": d.layers,
        "ffn": d.ffn,
        "policy_hidden": d.policy_hidden,
        "value_hidden": d.value_hidden,
        "actions": d.actions,
        "parameters": weights.param_count(),
        "dtype": weights.dtype().as_str(),
        "sha256": weights.sha256(),
        "gpus": gpus.as_ref().map_or_else(|e| serde_json::json!({ "unavailable": e.to_string() }), |d| serde_json::json!(d)),
        "nvtx": engine::telemetry::nvtx_active(),
    });
    if json {
        out!("{summary}");
    } else {
        out!("file        {}", path.display());
        out!(
            "architecture BlobNet: input {} → embedding {}, {} post-norm layers (FFN {}), policy head {}→{}, value head {}→1",
            d.input, d.embedding, d.layers, d.ffn, d.policy_hidden, d.actions, d.value_hidden
        );
        out!("parameters  {}", weights.param_count());
        out!("dtype       {}", weights.dtype().as_str());
        out!("sha256      {}", weights.sha256());
        match &gpus {
            Ok(devices) if !devices.is_empty() => {
                for d in devices {
                    out!("gpu         {d}");
                }
            }
            Ok(_) => out!("gpu         none found"),
            Err(e) => out!("gpu         unavailable: {e}"),
        }
        let nvtx = if engine::telemetry::nvtx_active() {
            "ranges on (libnvToolsExt loaded)"
        } else {
            "off (libnvToolsExt.so is not on the library path)"
        };
        out!("nvtx        {nvtx}");
    }
    Ok(())
}

fn bench(
    device: &DeviceArgs,
    batch: usize,
    seconds: f64,
    in_flight: Option<usize>,
    weights: Option<&Path>,
    json: bool,
) -> Result<()> {
    if !(seconds.is_finite() && seconds > 0.0) {
        bail!("--seconds must be a positive number of seconds, not {seconds}");
    }
    let net = load_net(weights)?;
    let mut backend = device.open(&net, batch)?.backend;
    let r = match in_flight {
        Some(n) => engine::bench::run_in_flight(backend.as_mut(), batch, n, seconds, 0)?,
        None => engine::bench::run(backend.as_mut(), batch, seconds, 0)?,
    };
    if json {
        out!("{}", serde_json::to_string(&r)?);
    } else {
        let how = match r.in_flight {
            0 => "direct forward calls".to_string(),
            n => format!("through the ring, {n} in flight"),
        };
        out!(
            "{} batch {} ({how}): {:.0} evals/s, {:.1} µs per batch, latency {:.1} µs ({} batches in {:.1} s)",
            r.backend, r.batch, r.evals_per_s, r.us_per_batch, r.latency_us, r.batches, r.seconds
        );
    }
    Ok(())
}

fn selfplay(args: SelfplayArgs) -> Result<ExitCode> {
    let workers = args.workers.unwrap_or_else(|| cores().min(MAX_WORKERS));
    let config = SelfPlayConfig {
        players: args.players,
        cards: args.cards,
        start_cards: args.full_game.then_some(args.start_cards).flatten(),
        units: if args.full_game {
            args.games.unwrap_or(10)
        } else {
            args.rounds
        },
        search: SearchConfig {
            root_noise: (args.dirichlet_epsilon > 0.0).then_some(RootNoise {
                alpha: args.dirichlet_alpha,
                epsilon: args.dirichlet_epsilon,
            }),
            ..args.search.config()
        },
        workers,
        games_per_worker: args.games_per_worker,
        seed: args.seed,
        cache_entries: 1 << 16,
    };
    config.validate()?;
    config.check_memory(args.shard_size)?;
    // Before any work: the directory is this run's, and takes writes.
    let out = OutDir::claim(&args.out)?;
    if out.swept() > 0 {
        note!(
            "note: removed {} unfinished shard file(s) left in {} by a crashed run",
            out.swept(),
            args.out.display()
        );
    }
    let net = load_net(args.weights.as_deref())?;
    let rows = config.rows_per_batch();
    // `--check-every N`: a GPU backend runs under watch of the CPU on one batch in N.
    let watch = args.check_every.map(|every| Watch {
        every,
        threshold: args.check_threshold,
    });
    let (opened, check) = args.device.open(&net, rows)?.watched(&net, rows, watch);
    // NVML telemetry only when the network really runs on a GPU.
    let mut sampler = opened.gpu.map(GpuSampler::new);
    let (backend, opened_gpu) = (opened.backend, opened.gpu);
    let metadata = ShardMetadata::new(&config, net.weights.sha256(), backend.name());
    let flush_every = Duration::from_secs(args.flush_secs);
    let mut writer = ShardWriter::new(out, args.shard_size, Some(flush_every), metadata);
    let stop = Arc::new(AtomicBool::new(false));
    install_interrupt_handler(stop.clone())?;
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new(config.units);
        bar.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} {prefix} {elapsed_precise} {msg}")
                .expect("valid template"),
        );
        bar.set_prefix(if config.start_cards.is_some() {
            "games"
        } else {
            "rounds"
        });
        bar
    };
    let summary = engine::selfplay::run(config, backend, &stop, &mut writer, |s| {
        bar.set_position(s.units);
        let stats = sampler.as_mut().and_then(GpuSampler::sample);
        let gpu_line = stats.map_or(String::new(), |g| {
            format!(
                ", GPU {}% {:.1}/{:.1} GiB",
                g.util_percent,
                g.mem_used_bytes as f64 / GIB,
                g.mem_total_bytes as f64 / GIB
            )
        });
        bar.set_message(format!(
            "{:.0} rounds/min, {:.0} evals/s, avg batch {:.0}, cache hits {:.0}%{gpu_line}",
            s.rounds_per_min,
            s.nn_rows_per_s,
            s.avg_batch,
            100.0 * s.cache_hit_rate
        ));
    })?;
    bar.finish_and_clear();
    let (shards, rows) = writer.finish()?;
    let util_mean = sampler.as_ref().and_then(GpuSampler::mean);
    let summary = engine::selfplay::Summary {
        shards,
        gpu: opened_gpu.and_then(nvml_snapshot),
        gpu_util_mean_percent: util_mean,
        ..summary
    };
    if let Some(hint) = sampler.as_ref().and_then(GpuSampler::underfed_hint) {
        note!("{hint}");
    }
    let check = check.map(|c| c.lock().unwrap_or_else(|e| e.into_inner()).clone());
    if let Some(c) = &check {
        note!(
            "check against the CPU: {} batches ({} rows), max |Δ| {:.2e}, p99 {:.2e}",
            c.batches_checked,
            c.rows_checked,
            c.max_abs_diff,
            c.p99_abs_diff()
        );
    }
    if args.json {
        let mut json = serde_json::to_value(&summary)?;
        if let Some(c) = &check {
            json["check"] = serde_json::json!({
                "batches": c.batches_checked,
                "rows": c.rows_checked,
                "max_abs_diff": c.max_abs_diff,
                "p99_abs_diff": c.p99_abs_diff(),
            });
        }
        out!("{json}");
    } else {
        note!(
            "{}{} rounds, {} decisions, {} examples in {} shard(s) under {} ({rows} rows); {:.1} rounds/min, {:.0} NN rows/s, avg batch {:.0}, cache hits {:.1}%, {:.1} s{}",
            if summary.interrupted { "interrupted: " } else { "" },
            summary.rounds,
            summary.decisions,
            summary.examples,
            shards,
            args.out.display(),
            summary.rounds_per_min,
            summary.nn_rows_per_s,
            summary.avg_batch,
            100.0 * summary.cache_hit_rate,
            summary.wall_s,
            util_mean.map_or(String::new(), |u| format!(", GPU busy {u:.0}%"))
        );
    }
    Ok(if summary.interrupted {
        ExitCode::from(INTERRUPTED)
    } else {
        ExitCode::SUCCESS
    })
}

/// First Ctrl-C (or SIGTERM): set `stop`. Second: exit at once. A second signal within
/// [`SAME_INTERRUPT`] of the first is the same interrupt delivered twice (`timeout` signals
/// the process and then its process group), not a user asking to abort.
fn install_interrupt_handler(stop: Arc<AtomicBool>) -> Result<()> {
    let first = std::sync::OnceLock::new();
    ctrlc::set_handler(move || {
        let at = *first.get_or_init(Instant::now);
        if !stop.swap(true, Ordering::SeqCst) {
            note!(
                "\ninterrupt: finishing up (writing completed rounds); press Ctrl-C again to exit now"
            );
        } else if at.elapsed() >= SAME_INTERRUPT {
            note!("\ninterrupted twice: exiting now");
            std::process::exit(INTERRUPTED.into());
        }
    })
    .context("installing the Ctrl-C handler")
}

const SAME_INTERRUPT: Duration = Duration::from_millis(300);

const GIB: f64 = (1u64 << 30) as f64;

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn arena(args: ArenaArgs) -> Result<ExitCode> {
    let a = Net::load(Some(&args.a))?.prepared;
    let b = Net::load(Some(&args.b))?.prepared;
    let search = args.search.config();
    let rows = search.max_rows_per_gather(args.players);
    let config = ArenaConfig {
        players: args.players,
        cards: args.cards,
        deals: args.rounds,
        search,
        threads: args.threads.unwrap_or_else(cores),
        seed: args.seed,
    };
    let stop = Arc::new(AtomicBool::new(false));
    install_interrupt_handler(stop.clone())?;
    let bar = ProgressBar::new(config.deals);
    let make = || -> (Box<dyn Backend>, Box<dyn Backend>) {
        (
            Box::new(CpuBackend::new(a.clone(), rows)),
            Box::new(CpuBackend::new(b.clone(), rows)),
        )
    };
    let r = engine::arena::run(&config, &make, &stop, &|n| bar.set_position(n))?;
    bar.finish_and_clear();
    if args.json {
        out!("{}", serde_json::to_string(&r)?);
    } else {
        out!(
            "{} deals × {} seat rotations ({} rounds)",
            r.deals,
            args.players,
            r.rounds_played
        );
        out!(
            "A {}: mean score {:.3} per round",
            args.a.display(),
            r.mean_score_a
        );
        out!(
            "B {}: mean score {:.3} per round",
            args.b.display(),
            r.mean_score_b
        );
        out!(
            "A − B: {:+.3} (95% CI {:+.3} .. {:+.3})",
            r.difference,
            r.ci95_low,
            r.ci95_high
        );
    }
    Ok(if stop.load(Ordering::SeqCst) {
        ExitCode::from(INTERRUPTED)
    } else {
        ExitCode::SUCCESS
    })
}
