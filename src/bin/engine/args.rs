//! The command line's definitions: every command, its flags, their help and their bounds
//! (checked at parse time, before any work). `main.rs` runs the commands.

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use engine::arena::{Searching, Side};
use engine::bench::sweep::Grid;
use engine::device::{DeviceList, DeviceSpec};
use engine::net::cpu::CpuKernel;
use engine::net::cuda::CudaKernel;
use engine::search::{MAX_SIMS_PER_WORLD, MAX_WORLDS};
use engine::selfplay::{MAX_GAMES_PER_WORKER, MAX_SHARD_ROWS, MAX_UNITS, MAX_WORKERS};
use engine::settings::{Override, Settings, SettingsError};
use std::path::PathBuf;

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
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
    /// No progress bars or notes on stderr (errors still go there; results stay on stdout)
    #[arg(long, global = true)]
    pub(crate) quiet: bool,
    /// Also append the results, notes and errors, and a progress line every 30 s, to FILE,
    /// each line stamped with the UTC time (the command line first)
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) log_file: Option<PathBuf>,
}

impl Cli {
    /// Checks what the flags' own parsers cannot (combinations of values), as usage errors
    /// (status 2) before any work.
    pub(crate) fn check(&self) -> Result<(), clap::Error> {
        match &self.command {
            Command::Bench(args) => args
                .device
                .one_device("engine bench")
                .and_then(|()| args.check()),
            Command::Arena(args) => args.check(),
            Command::Serve(args) => args.device.one_device("engine serve"),
            _ => Ok(()),
        }
    }
}

#[derive(Subcommand)]
pub(crate) enum Command {
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
    /// Compare two sides on paired deals with rotated seats: two nets, two search settings,
    /// the oracle or random play (greedy play, no noise)
    ///
    /// A side is a net searched with its settings (--a-kind search, the default), the oracle
    /// (--a-kind oracle: a search of the true deal, which reads the hidden hands: the upper
    /// bound of what any belief can reach) or uniformly random legal moves (--a-kind random:
    /// no net). The shared settings (--config, --set, --preset, ...) apply to both sides, then
    /// each side's own (--a-config, --a-set; --b-config, --b-set). --b defaults to --a's net,
    /// so `--a W --a-set search.sims=60 --b-set search.sims=30` compares two budgets on one net.
    ///
    /// Each deal is replayed once per seat rotation (same cards, same random stream) so both
    /// sides sit in every seat equally often; prints each side's mean score per round and its
    /// belief accuracy (the share of the other seats' cards its searched worlds dealt to the
    /// right seat, counted against the true deal after each search), the difference with its
    /// Student-t 95% confidence interval over deals, the deals won, drawn
    /// and lost with the Elo difference, its 95% interval and the likelihood of superiority,
    /// and with --sprt the test's decision and log-likelihood ratio. Each searching side runs
    /// on its own backend (--device); the result depends on the seed, the sides and the
    /// settings alone. A progress bar (deals, rate, ETA, running score) goes to stderr. Ctrl-C
    /// prints the result over the deals finished and exits with status 130.
    Arena(ArenaArgs),
    /// Analyse positions: one JSON query per line on stdin, one JSON answer per line on stdout
    ///
    /// A long-running server for GUIs, bots and tests, like KataGo's analysis engine. A query is
    /// a position in the shape of a `state` of tests/vectors/games.json plus `id` and `player`
    /// (other seats' hands may be given as hand sizes), with options dets, sims, seed,
    /// leaf_values, include_policy_prior, perfect_information, report_every (partial answers),
    /// max_time_ms, c_puct and fpu_reduction; a line with "action" terminates a query, clears
    /// the cache or asks the version. Answers (visits, prior, value and principal variation per
    /// legal action, the network's value, the best action, search statistics) come as queries
    /// finish; queries in flight share network batches. A bad line is answered with an
    /// `error` object naming the field; EOF drains the queries in flight and exits 0. The
    /// protocol is in docs/analysis.md.
    Analyze(AnalyzeArgs),
    /// Play Blob against the engine in a browser: serves a page and its JSON API over HTTP
    ///
    /// Open the printed address in a browser, pick the table (3 to 8 players, one round or a
    /// full game), your seat and the engine's strength, and play; ask for hints (the search's
    /// visit share and value per legal move) and see the engine's reasoning for its last move.
    /// A reload resumes the game; a finished game downloads as analysis queries (JSON lines)
    /// that replay through `engine analyze`. Binds 127.0.0.1 unless --host says otherwise.
    Serve(ServeArgs),
    /// Check rules, legal masks, the encoder and the network against recorded reference vectors
    ///
    /// Reads DIR/games.json (rounds recorded from BlobMaster: every decision's state, legal
    /// actions, mask and encoding) and DIR/net_io.json with DIR/net.safetensors (network
    /// inputs and outputs). Prints pass/fail counts per category and exits 1 on any failure.
    Verify {
        /// Directory of vectors in BlobMaster's recorded format (default: $ENGINE_VECTORS, else
        /// tests/vectors here, else the tests/vectors of the source tree the binary was built from)
        #[arg(long, value_name = "DIR")]
        vectors: Option<PathBuf>,
        /// Print one JSON object instead of text
        #[arg(long)]
        json: bool,
    },
    /// Describe this build and machine (CPU kernel, CUDA kernels compiled in and for which
    /// GPUs, the GPUs seen and whether each is usable) and, with --weights, a weights file
    /// (architecture, parameter count, dtype, sha256)
    Info {
        /// BlobNet weights (safetensors with PyTorch key names) to describe as well
        #[arg(long, value_name = "FILE")]
        weights: Option<PathBuf>,
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
        /// Print one JSON object (file, seed, sha256) on stdout instead of text
        #[arg(long)]
        json: bool,
    },
    /// Measure network forward throughput, sweep it for self-play settings, or time searches
    ///
    /// Without --sweep or --search: one batch size (--batch) for --seconds, by direct forward
    /// calls or, with --in-flight N, through the batch ring as self-play runs its batches.
    ///
    /// --sweep: times a grid of batch sizes (--batches) × batches in flight (--in-flight) through
    /// the ring, and on the CPU optionally the backend's thread count (--cpu-threads), each for
    /// --seconds after a 0.3 s warm-up; prints a table (rows/s, µs per batch, latency), the
    /// smallest point within 5% of the best throughput, and the `engine selfplay` command line
    /// it corresponds to for --players, --preset/--dets/--sims and --leaf-values.
    ///
    /// --search: searches a fixed, seeded set of positions (--rounds dealt from --seed, each
    /// taken at its first bid, first card, middle trick and last trick but one) as analysis
    /// searches them, and prints simulations/s and network rows/s; the counts (simulations,
    /// rows, cache hits, a fingerprint of the root visits) are the same for a seed on any
    /// device and with any --threads.
    Bench(BenchArgs),
}

/// `engine bench`: its three modes share the device, the weights and `--json`.
#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("mode").args(["sweep", "search"])))]
pub(crate) struct BenchArgs {
    #[command(flatten)]
    pub(crate) device: DeviceArgs,
    /// Time a grid of batch sizes × batches in flight and recommend self-play settings
    #[arg(long)]
    pub(crate) sweep: bool,
    /// Time searches on a fixed, seeded set of positions
    #[arg(long)]
    pub(crate) search: bool,
    /// Rows per forward call, 1..=65536 (default 256); with --search, most rows per batch
    /// (default 2048, as analysis)
    #[arg(long, value_parser = within::<usize>(MAX_BENCH_BATCH), conflicts_with = "sweep")]
    pub(crate) batch: Option<usize>,
    /// --sweep: batch sizes, comma-separated, each 1..=65536 (default 64,256,1024 on the CPU,
    /// 256,1024,4096 on a GPU)
    #[arg(long, value_name = "LIST", requires = "sweep", conflicts_with = "search", value_parser = list_of(MAX_BENCH_BATCH as usize))]
    pub(crate) batches: Option<List>,
    /// Time batches through the batch ring with N of them in flight, as self-play runs them
    /// (on a GPU: page-locked slots, one stream each, no host staging copy); without it,
    /// direct forward calls (on a GPU: through a staging slot, host copies included); 1..=64.
    /// With --sweep, a comma-separated list (default 1,2,4 on the CPU, 1,2,4,8,16 on a GPU)
    #[arg(long, value_name = "N", conflicts_with = "search", value_parser = list_of(MAX_IN_FLIGHT as usize))]
    pub(crate) in_flight: Option<List>,
    /// --sweep on the CPU: sizes of the CPU backend's thread pool to time, comma-separated,
    /// 1..=1024 (default: the global pool only, RAYON_NUM_THREADS or every core)
    #[arg(long, value_name = "LIST", requires = "sweep", conflicts_with = "search", value_parser = list_of(MAX_THREADS as usize))]
    pub(crate) cpu_threads: Option<List>,
    /// Seconds to time after a warm-up (default 5); with --sweep, per point (default 0.5)
    #[arg(long, conflicts_with = "search")]
    pub(crate) seconds: Option<f64>,
    /// --sweep, --search: players at the table, 3..=8 (default 4)
    #[arg(long, requires = "mode", value_parser = clap::value_parser!(u8).range(3..=8))]
    pub(crate) players: Option<u8>,
    /// --search: cards per round (default 5)
    #[arg(long, requires = "search", conflicts_with = "sweep")]
    pub(crate) cards: Option<u8>,
    /// --search: rounds dealt for the position set (four positions each), 1..=100000
    /// (default 32)
    #[arg(long, requires = "search", conflicts_with = "sweep", value_parser = within::<u64>(engine::bench::search::MAX_DEALS))]
    pub(crate) rounds: Option<u64>,
    /// --search: seed of the positions and their searches (default 0)
    #[arg(long, requires = "search", conflicts_with = "sweep")]
    pub(crate) seed: Option<u64>,
    /// --search: worker threads running searches, 1..=1024 (default: all cores)
    #[arg(long, requires = "search", conflicts_with = "sweep", value_parser = within::<usize>(MAX_THREADS))]
    pub(crate) threads: Option<usize>,
    /// --sweep, --search: search preset (worlds × simulations per world; default medium)
    #[arg(long, value_enum, requires = "mode")]
    pub(crate) preset: Option<Preset>,
    /// --sweep, --search: determinized worlds per decision, 1..=64 (overrides the preset)
    #[arg(long, requires = "mode", value_parser = within::<u32>(MAX_WORLDS.into()))]
    pub(crate) dets: Option<u32>,
    /// --sweep, --search: simulations per world, 1..=65534 (overrides the preset)
    #[arg(long, requires = "mode", value_parser = within::<u32>(MAX_SIMS_PER_WORLD.into()))]
    pub(crate) sims: Option<u32>,
    /// --sweep, --search: how network leaves are valued (default all)
    #[arg(long, value_enum, requires = "mode")]
    pub(crate) leaf_values: Option<LeafValuesArg>,
    /// --search: encoder layout the weights expect (default v2)
    #[arg(long, value_enum, requires = "search", conflicts_with = "sweep")]
    pub(crate) encoder: Option<EncoderArg>,
    /// --search: how worlds are sampled (default uniform)
    #[arg(long, value_enum, requires = "search", conflicts_with = "sweep")]
    pub(crate) beliefs: Option<BeliefsArg>,
    /// Weights to time (default: a fresh net, seed 0)
    #[arg(long, value_name = "FILE")]
    pub(crate) weights: Option<PathBuf>,
    /// --sweep: also write the recommended self-play settings (worlds, simulations, leaf
    /// values, workers, games per worker) to FILE, for `engine selfplay --config FILE`
    #[arg(long, value_name = "FILE", requires = "sweep")]
    pub(crate) write_settings: Option<PathBuf>,
    /// Print one JSON object instead of text
    #[arg(long)]
    pub(crate) json: bool,
}

impl BenchArgs {
    fn check(&self) -> Result<(), clap::Error> {
        let usage = |kind, message: String| Err(Cli::command().error(kind, message));
        let within = |s: f64| s.is_finite() && s > 0.0 && s <= MAX_BENCH_SECONDS;
        if let Some(seconds) = self.seconds.filter(|&s| !within(s)) {
            let message = format!(
                "--seconds must be a positive number of seconds up to {MAX_BENCH_SECONDS}, not {seconds}"
            );
            return usage(ErrorKind::ValueValidation, message);
        }
        let in_flight = self.in_flight.as_ref().map(|l| l.0.clone());
        if !self.sweep && in_flight.as_ref().is_some_and(|l| l.len() > 1) {
            let message = "--in-flight takes one N without --sweep (a list with it)".to_string();
            return usage(ErrorKind::ArgumentConflict, message);
        }
        let on_gpu = matches!(self.device.device.single(), Some(DeviceSpec::Cuda(_)));
        if self.cpu_threads.is_some() && on_gpu {
            let message = format!(
                "--cpu-threads sizes the CPU backend's thread pool: it does not apply to --device {}",
                self.device.device
            );
            return usage(ErrorKind::ArgumentConflict, message);
        }
        if self.sweep {
            // The lists were checked one by one; the grid's size, with either device's defaults.
            let batches = self.batches.as_ref().map(|l| l.0.clone());
            let threads = self.cpu_threads.as_ref().map(|l| l.0.clone());
            for gpu in [false, true] {
                if let Err(e) = Grid::new(gpu, batches.clone(), in_flight.clone(), threads.clone())
                {
                    let message = format!("--batches × --in-flight × --cpu-threads: {e}");
                    return usage(ErrorKind::ValueValidation, message);
                }
            }
        }
        Ok(())
    }

    /// The settings of --sweep's mapping and of --search, as selfplay's flags give them.
    pub(crate) fn settings(&self) -> Result<Settings, SettingsError> {
        let flags = SearchArgs {
            preset: self.preset,
            dets: self.dets,
            sims: self.sims,
            leaf_values: self.leaf_values,
            encoder: self.encoder,
            beliefs: self.beliefs,
        };
        Settings::load(None, &flags.overrides())
    }
}

/// A comma-separated list of sizes (`--batches 64,256,1024`), ascending.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct List(pub(crate) Vec<usize>);

/// A parser of a list of sizes in `1..=max`, so that a bad grid is refused before any work.
fn list_of(max: usize) -> impl Fn(&str) -> Result<List, String> + Clone + Send + Sync + 'static {
    move |text| {
        engine::bench::sweep::parse_list(text, max)
            .map(List)
            .map_err(|e| e.to_string())
    }
}

/// Device options shared by the commands that run the network.
#[derive(clap::Args)]
pub(crate) struct DeviceArgs {
    /// Where the network runs: auto (GPU 0 if usable, else CPU), cpu, cuda or cuda:N. selfplay,
    /// analyze and arena also take several: cuda:0,cuda:1 (one GPU may be listed twice),
    /// cuda:all (every usable GPU) or cpu,cpu (the cores shared out between the CPU backends;
    /// for tests and comparisons); each device gets its own backend and batch ring, and the
    /// workers (or threads) are dealt out over them in turn
    #[arg(long, default_value = "auto", value_name = "DEVICE[,DEVICE…]")]
    pub(crate) device: DeviceList,
    /// CUDA: launch kernels eagerly instead of replaying captured graphs (for A/B timing)
    #[arg(long)]
    pub(crate) no_graphs: bool,
    /// CUDA: how a thread waits for its batch through the ring: block (sleep until the GPU
    /// signals; frees the core for search) or spin (the driver polls; lower latency, burns the
    /// waiting core)
    #[arg(long, value_enum, default_value_t = GpuWait::Block, value_name = "HOW")]
    pub(crate) gpu_wait: GpuWait,
    /// CPU: the matrix kernel: avx512, avx2, neon or portable (default: the fastest this CPU
    /// has). Each gives a row the same result whatever batch it is in; avx512 and avx2 agree
    /// bit for bit, portable differs in the last bits
    #[arg(long, value_name = "KERNEL")]
    pub(crate) cpu_kernel: Option<CpuKernel>,
    /// CUDA: the build of the kernels: auto (native if its code for the GPU fits the GPU's
    /// shared memory, else portable), native (machine code per generation: sm_80, sm_86, sm_89,
    /// sm_90) or portable (the 99 KB configuration of RTX 30/40 GPUs as PTX: runs on any sm_80+
    /// GPU, to check that configuration on another)
    #[arg(long, default_value = "auto", value_name = "BUILD")]
    pub(crate) cuda_kernel: CudaKernel,
}

impl DeviceArgs {
    /// Refuses a list of devices for `command`, which runs on one (a usage error).
    fn one_device(&self, command: &str) -> Result<(), clap::Error> {
        match self.device.single() {
            Some(_) => Ok(()),
            None => Err(Cli::command().error(
                ErrorKind::ValueValidation,
                format!(
                    "--device {}: {command} runs on one device: give auto, cpu, cuda or cuda:N \
                     (selfplay, analyze and arena take several)",
                    self.device
                ),
            )),
        }
    }
}

/// `--gpu-wait`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum GpuWait {
    Block,
    Spin,
}

/// `--preset`: the names of [`engine::search::Preset`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Preset {
    /// 2 worlds × 20 simulations
    Light,
    /// 3 worlds × 30 simulations
    Medium,
    /// 5 worlds × 50 simulations
    Heavy,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum LeafValuesArg {
    /// Evaluate each new leaf from every seat's perspective (one row per seat)
    All,
    /// Evaluate only the mover's row (cheaper; other seats learn from terminals)
    Mover,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum BeliefsArg {
    /// Uniformly among the deals the seat's information allows
    Uniform,
    /// Weighed by how likely the other seats' bids and plays are under the net's policy
    /// (extra network rows, capped by search.belief_rows)
    Policy,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum EncoderArg {
    /// BlobMaster's HEAD layout (dims 191..=201 filled)
    V2,
    /// The layout of BlobMaster's published checkpoints (dims 191.. zero)
    V1,
}

impl From<EncoderArg> for engine::encode::EncoderVersion {
    fn from(arg: EncoderArg) -> engine::encode::EncoderVersion {
        match arg {
            EncoderArg::V1 => engine::encode::EncoderVersion::V1,
            EncoderArg::V2 => engine::encode::EncoderVersion::V2,
        }
    }
}

/// The search flags, each a setting of the settings file (`search.…`).
#[derive(clap::Args)]
pub(crate) struct SearchArgs {
    /// Search preset, worlds × simulations per world (default medium) [search.preset]
    #[arg(long, value_enum)]
    pub(crate) preset: Option<Preset>,
    /// Determinized worlds per decision, 1..=64 (overrides the preset): 64 worlds × 4 leaves ×
    /// 8 seats fill a 2,048-row batch [search.dets]
    #[arg(long, value_parser = within::<u32>(MAX_WORLDS.into()))]
    pub(crate) dets: Option<u32>,
    /// Simulations per world, 1..=65534 (overrides the preset): visits are counted in 16 bits
    /// [search.sims]
    #[arg(long, value_parser = within::<u32>(MAX_SIMS_PER_WORLD.into()))]
    pub(crate) sims: Option<u32>,
    /// How network leaves are valued (default all) [search.leaf_values]
    #[arg(long, value_enum)]
    pub(crate) leaf_values: Option<LeafValuesArg>,
    /// Encoder layout the weights expect (default v2) [search.encoder]
    #[arg(long, value_enum)]
    pub(crate) encoder: Option<EncoderArg>,
    /// How worlds are sampled (default uniform) [search.beliefs]
    #[arg(long, value_enum)]
    pub(crate) beliefs: Option<BeliefsArg>,
}

impl SearchArgs {
    /// The settings these flags give.
    pub(crate) fn overrides(&self) -> Vec<Override> {
        let flags = [
            ("--preset", "search.preset", self.preset.map(value_name)),
            (
                "--leaf-values",
                "search.leaf_values",
                self.leaf_values.map(value_name),
            ),
            ("--encoder", "search.encoder", self.encoder.map(value_name)),
            ("--beliefs", "search.beliefs", self.beliefs.map(value_name)),
        ];
        let counts = [
            ("--dets", "search.dets", self.dets.map(i64::from)),
            ("--sims", "search.sims", self.sims.map(i64::from)),
        ];
        given(flags).chain(given(counts)).collect()
    }
}

/// The settings of the flags given, each `(flag, settings key, its value if given)`.
fn given<V: Into<toml::Value>>(
    flags: impl IntoIterator<Item = (&'static str, &'static str, Option<V>)>,
) -> impl Iterator<Item = Override> {
    flags
        .into_iter()
        .filter_map(|(flag, key, v)| v.map(|v| Override::flag(flag, key, v)))
}

/// A flag's value as the command line and the settings file both spell it.
fn value_name(value: impl ValueEnum) -> String {
    let possible = value.to_possible_value().expect("no value is hidden");
    possible.get_name().to_string()
}

/// Where a searching command's settings come from: a file, `--set`, and its own flags.
#[derive(clap::Args)]
pub(crate) struct SettingsArgs {
    /// Settings file (TOML): every search setting, e.g. c_puct, first-play urgency, root
    /// noise, the temperature schedule, the cache size; docs/settings.md lists them and
    /// --print-settings shows them. --set and the flags override it
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Set one setting, KEY=VALUE: a key of the settings file and a TOML value, e.g.
    /// --set search.c_puct=2 or --set 'search.fpu={ absolute = -1 }' (repeatable; a key a
    /// flag also sets is refused)
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub(crate) set: Vec<Override>,
    /// Print the settings this command would use, as a settings file, and exit
    #[arg(long)]
    pub(crate) print_settings: bool,
    #[command(flatten)]
    pub(crate) search: SearchArgs,
}

impl SettingsArgs {
    /// The defaults, then --config, then --set, the search flags and `flags` (the command's
    /// other flags that are settings).
    pub(crate) fn load(&self, flags: Vec<Override>) -> Result<Settings, SettingsError> {
        let mut overrides = self.set.clone();
        overrides.extend(self.search.overrides());
        overrides.extend(flags);
        Settings::load(self.config.as_deref(), &overrides)
    }
}

#[derive(clap::Args)]
pub(crate) struct ArenaArgs {
    /// Weights of side A's net (not for --a-kind random)
    #[arg(long, value_name = "FILE")]
    pub(crate) a: Option<PathBuf>,
    /// Weights of side B's net (default: side A's; not for --b-kind random)
    #[arg(long, value_name = "FILE")]
    pub(crate) b: Option<PathBuf>,
    /// How side A plays: search (its net and settings, worlds sampled from what the seat
    /// knows), oracle (searches the true deal, reading the hidden hands: an upper bound; one
    /// world, search.sims simulations) or random (uniformly random legal moves, no net)
    #[arg(long, value_enum, value_name = "KIND", default_value_t = SideKind::Search)]
    pub(crate) a_kind: SideKind,
    /// How side B plays (as --a-kind)
    #[arg(long, value_enum, value_name = "KIND", default_value_t = SideKind::Search)]
    pub(crate) b_kind: SideKind,
    /// Side A's own settings file, over the shared --config, --set and flags
    #[arg(long, value_name = "FILE")]
    pub(crate) a_config: Option<PathBuf>,
    /// One of side A's own settings, KEY=VALUE as --set, over the shared ones and --a-config,
    /// e.g. --a-set search.sims=60 (repeatable)
    #[arg(long, value_name = "KEY=VALUE", value_parser = side_override("--a-set"))]
    pub(crate) a_set: Vec<Override>,
    /// Side B's own settings file, over the shared --config, --set and flags
    #[arg(long, value_name = "FILE")]
    pub(crate) b_config: Option<PathBuf>,
    /// One of side B's own settings, KEY=VALUE as --set, over the shared ones and --b-config
    /// (repeatable)
    #[arg(long, value_name = "KEY=VALUE", value_parser = side_override("--b-set"))]
    pub(crate) b_set: Vec<Override>,
    #[command(flatten)]
    pub(crate) device: DeviceArgs,
    /// Deals to play (each once per seat rotation), 1..=10000000; with --sprt, the most to
    /// play
    #[arg(
        long,
        alias = "rounds",
        default_value_t = 100,
        value_parser = within::<u64>(engine::arena::MAX_DEALS)
    )]
    pub(crate) deals: u64,
    /// Players at the table (3..=8)
    #[arg(long, default_value_t = 4)]
    pub(crate) players: u8,
    /// Cards per hand (dealer and trump are random per deal)
    #[arg(long, default_value_t = 5)]
    pub(crate) cards: u8,
    #[command(flatten)]
    pub(crate) settings: SettingsArgs,
    /// Stop as soon as a sequential probability ratio test decides between H0 "A is ELO0 Elo
    /// better than B" and H1 "A is ELO1 Elo better" (logistic Elo of the deals won, drawn and
    /// lost; ELO0 < ELO1, e.g. 0,10), or after --deals
    #[arg(
        long,
        value_name = "ELO0,ELO1",
        value_parser = parse_elo_pair,
        allow_hyphen_values = true
    )]
    pub(crate) sprt: Option<(f64, f64)>,
    /// The SPRT's type I error: accepting H1 when H0 holds, in (0, 1)
    #[arg(
        long,
        value_name = "P",
        default_value_t = engine::arena::sprt::DEFAULT_ALPHA,
        value_parser = probability,
        requires = "sprt"
    )]
    pub(crate) sprt_alpha: f64,
    /// The SPRT's type II error: accepting H0 when H1 holds, in (0, 1)
    #[arg(
        long,
        value_name = "P",
        default_value_t = engine::arena::sprt::DEFAULT_BETA,
        value_parser = probability,
        requires = "sprt"
    )]
    pub(crate) sprt_beta: f64,
    /// Search threads, 1..=1024 (default: all cores)
    #[arg(long, value_parser = within::<usize>(MAX_THREADS))]
    pub(crate) threads: Option<usize>,
    /// Deals each thread plays at once, 1..=4096 (default: enough for batches of about 1024
    /// rows per net); the results do not depend on it
    #[arg(long, value_parser = within::<usize>(engine::arena::MAX_DEALS_PER_THREAD as u64))]
    pub(crate) deals_per_thread: Option<usize>,
    /// Seed of the deals and searches (same seed, nets and settings: same result)
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Print one JSON object on stdout instead of text
    #[arg(long)]
    pub(crate) json: bool,
}

/// `--a-kind`, `--b-kind`: the kinds of [`engine::arena::Side`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum SideKind {
    /// Determinized search with the side's net and settings
    Search,
    /// Search of the true deal (reads the hidden hands): perfect information
    Oracle,
    /// A uniformly random legal move (no net)
    Random,
}

impl SideKind {
    /// The side of this kind searching with `settings`.
    pub(crate) fn side(self, settings: &Settings) -> Side {
        let searching = Searching {
            config: settings.search_config(),
            cache_entries: settings.search.cache_entries,
        };
        match self {
            SideKind::Search => Side::Search(searching),
            SideKind::Oracle => Side::Oracle(searching),
            SideKind::Random => Side::Random,
        }
    }
}

impl ArenaArgs {
    /// A side's net is given exactly when it searches: `--a` for side A, `--b` or else `--a`
    /// for side B.
    fn check(&self) -> Result<(), clap::Error> {
        let sides = [("--a", &self.a, self.a_kind), ("--b", &self.b, self.b_kind)];
        for (flag, weights, kind) in sides {
            if kind == SideKind::Random && weights.is_some() {
                return Err(Cli::command().error(
                    ErrorKind::ArgumentConflict,
                    format!(
                        "{flag} gives a net to a side that plays at random ({flag}-kind random)"
                    ),
                ));
            }
        }
        if self.a_kind != SideKind::Random && self.a.is_none() {
            return Err(Cli::command().error(
                ErrorKind::MissingRequiredArgument,
                "side A searches and needs a net: --a FILE (or --a-kind random)",
            ));
        }
        if self.b_kind != SideKind::Random && self.weights(1).is_none() {
            return Err(Cli::command().error(
                ErrorKind::MissingRequiredArgument,
                "side B searches and needs a net: --b FILE (or --b-kind random)",
            ));
        }
        Ok(())
    }

    /// The weights of side `i` (0 = A, 1 = B): side B's default to side A's.
    pub(crate) fn weights(&self, i: usize) -> Option<&PathBuf> {
        match (i, self.b_kind) {
            (0, _) => self.a.as_ref(),
            (_, SideKind::Random) => None,
            _ => self.b.as_ref().or(self.a.as_ref()),
        }
    }

    /// Whether a side has settings of its own.
    pub(crate) fn sides_differ(&self) -> bool {
        self.a_config.is_some()
            || self.b_config.is_some()
            || !self.a_set.is_empty()
            || !self.b_set.is_empty()
    }

    /// Each side's settings: its own (--a-config then --a-set; --b-…) over `shared`.
    pub(crate) fn side_settings(&self, shared: &Settings) -> Result<[Settings; 2], SettingsError> {
        Ok([
            shared.layered(self.a_config.as_deref(), &self.a_set)?,
            shared.layered(self.b_config.as_deref(), &self.b_set)?,
        ])
    }
}

/// A parser of a side's `--a-set KEY=VALUE`: `--set`'s, naming `flag` in errors.
fn side_override(
    flag: &'static str,
) -> impl Fn(&str) -> Result<Override, String> + Clone + Send + Sync + 'static {
    move |text: &str| {
        let parsed: Override = text.parse()?;
        Ok(Override {
            origin: format!("{flag} {text}"),
            ..parsed
        })
    }
}

/// `--sprt ELO0,ELO1`: two finite numbers, the first below the second.
fn parse_elo_pair(s: &str) -> Result<(f64, f64), String> {
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    let [elo0, elo1] = parts[..] else {
        return Err(format!("expected ELO0,ELO1 (e.g. 0,10), got {s:?}"));
    };
    let number = |x: &str| {
        x.parse::<f64>()
            .map_err(|_| format!("{x:?} is not a number (expected ELO0,ELO1, e.g. 0,10)"))
    };
    let (elo0, elo1) = (number(elo0)?, number(elo1)?);
    // The error rates are checked once all flags are read; the Elos can be checked now.
    engine::arena::Sprt::new(elo0, elo1, 0.05, 0.05)?;
    Ok((elo0, elo1))
}

/// An error rate: a number strictly between 0 and 1.
fn probability(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(p) if p > 0.0 && p < 1.0 => Ok(p),
        _ => Err(format!(
            "expected a number strictly between 0 and 1, got {s:?}"
        )),
    }
}

#[derive(clap::Args)]
pub(crate) struct AnalyzeArgs {
    /// BlobNet weights (default: a fresh net, seed 0)
    #[arg(long, value_name = "FILE")]
    pub(crate) weights: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) device: DeviceArgs,
    /// Worker threads running searches, 1..=1024 (default: all cores)
    #[arg(long, value_parser = within::<usize>(MAX_THREADS))]
    pub(crate) threads: Option<usize>,
    /// The searches' settings: a query's own options (dets, sims, leaf_values, c_puct,
    /// fpu_reduction) override them for that query
    #[command(flatten)]
    pub(crate) settings: SettingsArgs,
}

#[derive(clap::Args)]
pub(crate) struct ServeArgs {
    /// BlobNet weights (default: a fresh net, seed 0)
    #[arg(long, value_name = "FILE")]
    pub(crate) weights: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) device: DeviceArgs,
    /// IP address to listen on (anything but a loopback address lets other machines play)
    #[arg(long, default_value = "127.0.0.1")]
    pub(crate) host: std::net::IpAddr,
    /// Port to listen on (0: any free port; the address is printed)
    #[arg(long, default_value_t = 8080)]
    pub(crate) port: u16,
    /// Threads running the engine's searches, 1..=1024 (default: all cores)
    #[arg(long, value_parser = within::<usize>(MAX_THREADS))]
    pub(crate) threads: Option<usize>,
    /// Encoder layout the weights expect
    #[arg(long, value_enum, default_value_t = EncoderArg::V2)]
    pub(crate) encoder: EncoderArg,
}

#[derive(clap::Args)]
pub(crate) struct SelfplayArgs {
    /// BlobNet weights (default: a fresh net, seed 0)
    #[arg(long, value_name = "FILE")]
    pub(crate) weights: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) device: DeviceArgs,
    /// Players at the table (3..=8)
    #[arg(long, default_value_t = 4)]
    pub(crate) players: u8,
    /// Cards per round in round mode (dealer and trump are random per round)
    #[arg(long, default_value_t = 5, conflicts_with = "full_game")]
    pub(crate) cards: u8,
    /// Play full games (C, C-1, …, 1, 1 × players, 2, …, C cards; dealer and trump rotate)
    #[arg(long, requires = "start_cards")]
    pub(crate) full_game: bool,
    /// First round's card count in full-game mode
    #[arg(long, value_name = "C")]
    pub(crate) start_cards: Option<u8>,
    /// Rounds to play (round mode), 1..=10^12
    #[arg(long, default_value_t = 100, conflicts_with = "games", value_parser = within::<u64>(MAX_UNITS))]
    pub(crate) rounds: u64,
    /// Games to play (full-game mode; default 10), 1..=10^12
    #[arg(long, requires = "full_game", value_parser = within::<u64>(MAX_UNITS))]
    pub(crate) games: Option<u64>,
    #[command(flatten)]
    pub(crate) settings: SettingsArgs,
    /// Run a GPU backend under watch: also evaluate one batch in N on the CPU and stop the
    /// run if any output differs by more than --check-threshold (no effect on the CPU)
    #[arg(long, value_name = "N", value_parser = within::<u64>(u64::MAX))]
    pub(crate) check_every: Option<u64>,
    /// Largest |Δ| of a policy entry or value tolerated by --check-every (> 0)
    #[arg(long, default_value_t = 1e-2, allow_negative_numbers = true,
          value_parser = float_in("a positive number", |x| x > 0.0))]
    pub(crate) check_threshold: f32,
    /// Tests only: every batch from launch N on fails at its wait, as a device fault does
    #[arg(long, hide = true, value_name = "N")]
    pub(crate) fault_after_batches: Option<u64>,
    /// Dirichlet noise at each world's root: concentration α, > 0 (default 0.3)
    /// [selfplay.dirichlet_alpha]
    #[arg(long, allow_negative_numbers = true,
          value_parser = float_in("a positive number", |x| x > 0.0))]
    pub(crate) dirichlet_alpha: Option<f32>,
    /// Dirichlet noise at each world's root: weight ε in [0, 1], 0 turns the noise off
    /// (default 0.25) [selfplay.dirichlet_epsilon]
    #[arg(long, allow_negative_numbers = true,
          value_parser = float_in("a number in [0, 1]", |x| (0.0..=1.0).contains(&x)))]
    pub(crate) dirichlet_epsilon: Option<f32>,
    /// Worker threads, 1..=1024 (default: all cores) [selfplay.workers]
    #[arg(long, value_parser = within::<usize>(MAX_WORKERS as u64))]
    pub(crate) workers: Option<usize>,
    /// Games each worker plays at once, 1..=4096 (default 64). With --workers, --dets and
    /// --sims it sets the memory a run may need; a run whose bound exceeds the machine's
    /// memory is refused [selfplay.games_per_worker]
    #[arg(long, value_parser = within::<usize>(MAX_GAMES_PER_WORKER as u64))]
    pub(crate) games_per_worker: Option<usize>,
    /// Output directory for shards (created; owned by one run at a time)
    #[arg(long, value_name = "DIR", default_value = "out")]
    pub(crate) out: PathBuf,
    /// Examples per shard, 1..=1000000 (a shard is built in memory, about 2.5 KB a row)
    #[arg(long, default_value_t = 50_000, value_parser = within::<usize>(MAX_SHARD_ROWS as u64))]
    pub(crate) shard_size: usize,
    /// Seconds between writes of the shard being filled, 1..=86400: a crash loses at most this
    /// much work. Each write rewrites the shard so far; the final shards are the same whatever
    /// this is
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = within::<u64>(86_400))]
    pub(crate) flush_secs: u64,
    /// Seed of the run (same seed and settings, same games)
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Print one JSON summary object on stdout
    #[arg(long)]
    pub(crate) json: bool,
}

impl SelfplayArgs {
    /// The settings of the run: its search flags, the noise and worker flags over --set and
    /// --config.
    pub(crate) fn settings(&self) -> Result<Settings, SettingsError> {
        let noise = [
            (
                "--dirichlet-alpha",
                "selfplay.dirichlet_alpha",
                self.dirichlet_alpha.map(f64::from),
            ),
            (
                "--dirichlet-epsilon",
                "selfplay.dirichlet_epsilon",
                self.dirichlet_epsilon.map(f64::from),
            ),
        ];
        let layout = [
            (
                "--workers",
                "selfplay.workers",
                self.workers.map(|n| n as i64),
            ),
            (
                "--games-per-worker",
                "selfplay.games_per_worker",
                self.games_per_worker.map(|n| n as i64),
            ),
        ];
        self.settings
            .load(given(noise).chain(given(layout)).collect())
    }
}

/// Longest `bench --seconds` (a day; a larger figure is a typo).
const MAX_BENCH_SECONDS: f64 = 86_400.0;
/// Most rows per `bench` batch.
pub(crate) const MAX_BENCH_BATCH: u64 = 65_536;
/// Most batches `bench --in-flight` keeps in flight (each a slot of `--batch` rows).
pub(crate) const MAX_IN_FLIGHT: u64 = 64;
/// Most threads of `arena` and `analyze`: as self-play's workers.
pub(crate) const MAX_THREADS: u64 = MAX_WORKERS as u64;

/// A parser of an integer flag in `1..=max`, so that a bad size is refused before any work.
pub(crate) fn within<T>(max: u64) -> clap::builder::RangedU64ValueParser<T>
where
    T: TryFrom<u64> + Clone + Send + Sync + 'static,
    <T as TryFrom<u64>>::Error: std::error::Error + Send + Sync + 'static,
{
    clap::builder::RangedU64ValueParser::new().range(1..=max)
}

/// A parser of a finite float flag that `ok` accepts (`what` says which, in the error), so a
/// bad value is refused before any work; negative numbers are read as values, not flags.
fn float_in(
    what: &'static str,
    ok: fn(f32) -> bool,
) -> impl Fn(&str) -> Result<f32, String> + Clone + Send + Sync + 'static {
    move |text: &str| match text.parse::<f32>() {
        Ok(x) if x.is_finite() && ok(x) => Ok(x),
        Ok(x) => Err(format!("{x} is not {what}")),
        Err(e) => Err(format!("{text:?} is not a number: {e}")),
    }
}
