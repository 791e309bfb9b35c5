//! `engine` command line: selfplay, arena, analyze, serve, verify, info, init-weights, bench.

mod args;
mod log;

use anyhow::{bail, Context, Result};
use args::{ArenaArgs, Cli, Command, DeviceArgs, GpuWait, SelfplayArgs};
use clap::{CommandFactory, Parser};
use engine::arena::{ArenaConfig, ArenaResult, Decision, Side, Sprt};
use engine::device::{self, DeviceOptions, Net, Opened, Watch};
use engine::net::check::CheckStats;
use engine::net::cpu::CpuKernel;
use engine::net::cuda::KernelBuild;
use engine::net::fault::FaultBackend;
use engine::net::weights::Weights;
use engine::selfplay::{finished_units, OutDir, SelfPlayConfig, ShardMetadata, ShardWriter};
use engine::settings::{Settings, SettingsError};
use engine::telemetry::{nvml_snapshot, GpuSampler};
use log::Progress;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A result line: `println!` that hands a write error to the caller (`?`), so that a closed
/// pipe ends the command quietly (see `main`) instead of panicking; also logged.
macro_rules! out {
    ($($arg:tt)*) => {{
        let line = format!($($arg)*);
        writeln!(std::io::stdout(), "{line}")?;
        log::record(&line);
    }};
}

/// A note on stderr (none with `--quiet`), also logged; see [`log::note`].
macro_rules! note {
    ($($arg:tt)*) => {
        log::note(&format!($($arg)*))
    };
}

mod bench;

impl DeviceArgs {
    fn options(&self) -> DeviceOptions {
        DeviceOptions {
            cpu_kernel: self.cpu_kernel,
            cuda_kernel: self.cuda_kernel,
            graphs: !self.no_graphs,
            blocking_wait: self.gpu_wait == GpuWait::Block,
        }
    }

    /// Starts the backend of the one device named (the commands that call this refuse a list
    /// when parsing it) with room for `rows` rows per batch, saying where it runs.
    fn open(&self, net: &Net, rows: usize) -> Result<Opened> {
        let Some(spec) = self.device.single() else {
            bail!("--device {}: this command runs on one device", self.device);
        };
        let opened = device::open(spec, &self.options(), net, rows)?;
        announce(&opened, "");
        Ok(opened)
    }

    /// Starts one backend per device named, each with room for `rows` rows per batch, saying
    /// where each runs (`what`, as for [`announce`]) unless `quietly`.
    fn open_all(&self, net: &Net, rows: usize, what: &str, quietly: bool) -> Result<Vec<Opened>> {
        let all = device::open_all(&self.device, &self.options(), net, rows)?;
        if quietly {
            return Ok(all.opened);
        }
        for why in &all.skipped {
            note!("note: --device cuda:all leaves out a GPU: {why}");
        }
        let n = all.opened.len();
        for (i, opened) in all.opened.iter().enumerate() {
            match n {
                1 => announce(opened, what),
                _ => announce(
                    opened,
                    &format!(" {} of {n} ({}){what}", i + 1, opened.device()),
                ),
            }
        }
        Ok(all.opened)
    }
}

/// Says where a backend runs (`what`: which net, if there are several), and why `auto` fell
/// back to the CPU.
fn announce(opened: &Opened, what: &str) {
    if let Some(why) = &opened.fallback {
        note!("note: --device auto: GPU unavailable ({why}); running the network on the CPU");
    }
    note!("device{what}: {}", opened.description);
}

/// Loads `--weights`, or says that a fresh net stands in for them.
fn load_net(path: Option<&Path>) -> Result<Net> {
    if path.is_none() {
        note!("note: no --weights given: using a freshly initialised BlobNet (seed 0)");
    }
    Ok(Net::load(path)?)
}

/// The settings, or a usage error (status 2) naming the file, flag or key at fault: settings
/// are refused before any work.
fn settings_or_exit<T>(loaded: Result<T, SettingsError>) -> T {
    loaded.unwrap_or_else(|e| {
        Cli::command()
            .error(
                clap::error::ErrorKind::ValueValidation,
                error_chain(&e.into()),
            )
            .exit()
    })
}

/// `--print-settings`: the settings as a file, on stdout.
fn print_settings(settings: &Settings) -> Result<ExitCode> {
    out!("{}", settings.to_toml());
    Ok(ExitCode::SUCCESS)
}

/// Exit status of a run stopped by Ctrl-C or SIGTERM (128 + SIGINT, as shells report it).
const INTERRUPTED: u8 = 130;
/// Exit status when stdout is a closed pipe (128 + SIGPIPE, as if killed by it).
const BROKEN_PIPE: u8 = 141;

fn main() -> ExitCode {
    // A write past `ulimit -f` then fails with EFBIG and is reported with its file, instead
    // of the signal killing the process without a word.
    // SAFETY: setting a signal's disposition to "ignore" installs no handler code.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let cli = Cli::parse();
    if let Err(e) = cli.check() {
        e.exit();
    }
    if let Err(e) = log::init(cli.quiet, cli.log_file.as_deref()) {
        let path = cli.log_file.as_deref().unwrap_or(Path::new("")).display();
        log::error(&format!("error: cannot open the log file {path}: {e}"));
        return ExitCode::FAILURE;
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::from(BROKEN_PIPE),
        Err(e) => {
            log::error(&format!("error: {}", error_chain(&e)));
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
            let settings = settings_or_exit(args.settings.load(Vec::new()));
            if args.settings.print_settings {
                return print_settings(&settings);
            }
            let net = load_net(args.weights.as_deref())?;
            let config = engine::analyze::AnalyzeConfig {
                threads: args.threads.unwrap_or_else(cores),
                search: settings.search_config(),
            };
            let rows = engine::analyze::rows_per_batch(&config.search);
            let devices = args.device.open_all(&net, rows, "", false)?;
            let (input, output) = (std::io::stdin().lock(), std::io::stdout());
            engine::analyze::serve_on(input, output, devices, &config)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve(args) => serve(args),
        Command::Verify { vectors, json } => verify(vectors.as_deref(), json),
        Command::Info { weights, json } => {
            let weights = match weights {
                Some(path) => Some((Weights::load(&path)?, path)),
                None => None,
            };
            info(weights.as_ref(), json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::InitWeights { seed, out, json } => {
            Weights::init(seed).save(&out)?;
            let sha256 = Weights::load(&out)?.sha256().to_string();
            if json {
                let file = out.display().to_string();
                out!(
                    "{}",
                    serde_json::json!({ "file": file, "seed": seed, "sha256": sha256 })
                );
            } else {
                out!(
                    "wrote a fresh BlobNet (seed {seed}) to {} (sha256 {sha256})",
                    out.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(args) => {
            bench::bench(&args)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn serve(args: args::ServeArgs) -> Result<ExitCode> {
    let net = load_net(args.weights.as_deref())?;
    // Each request names its search's budget; the rest are the defaults.
    let analysis = engine::analyze::AnalyzeConfig {
        threads: args.threads.unwrap_or_else(cores),
        search: engine::search::SearchConfig {
            encoder: args.encoder.into(),
            ..Default::default()
        },
    };
    let opened = args
        .device
        .open(&net, engine::analyze::rows_per_batch(&analysis.search))?;
    let addr = std::net::SocketAddr::new(args.host, args.port);
    let config = engine::serve::ServeConfig::new(addr, analysis);
    let server = engine::serve::Server::bind(&config, opened.backend)?;
    let addr = server.local_addr();
    if !addr.ip().is_loopback() {
        note!(
            "warning: listening on {addr}, not a loopback address: anyone who can reach this \
             machine can play on it and spend its compute; serve trusted networks only"
        );
    }
    out!("engine serve: open http://{addr}/ in a browser (Ctrl-C stops the server)");
    std::io::stdout().flush()?;
    server.run();
    Ok(ExitCode::SUCCESS)
}

fn verify(given: Option<&Path>, json: bool) -> Result<ExitCode> {
    let dir = match given {
        Some(dir) if dir.is_dir() => dir.to_path_buf(),
        Some(dir) => bail!("vectors directory {} does not exist", dir.display()),
        None => engine::vectors::locate().context(
            "no vectors found: not in $ENGINE_VECTORS, ./tests/vectors or the source tree this \
             binary was built from; pass --vectors DIR (a clone of the repository has them in \
             tests/vectors)",
        )?,
    };
    let dir = dir.as_path();
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

fn info(weights: Option<&(Weights, PathBuf)>, json: bool) -> Result<()> {
    let cpu_kernel = CpuKernel::detect();
    let cpu_kernels: Vec<&str> = CpuKernel::supported().map(CpuKernel::as_str).collect();
    let builds = [KernelBuild::Native, KernelBuild::Portable];
    let cuda_targets: Vec<(KernelBuild, &[&str])> = builds
        .iter()
        .filter_map(|&b| b.targets().map(|t| (b, t)))
        .collect();
    let gpus = engine::net::cuda::describe_devices();
    let nvtx = engine::telemetry::nvtx_active();
    if json {
        let mut summary = serde_json::json!({
            "engine_version": env!("CARGO_PKG_VERSION"),
            "cpu_kernel": cpu_kernel.as_str(),
            "cpu_kernels": cpu_kernels,
            "cuda_kernels": {
                "compiled_in": !cuda_targets.is_empty(),
                "targets": cuda_targets.iter().find(|(b, _)| *b == KernelBuild::Native).map_or(&[][..], |(_, t)| t),
                "builds": cuda_targets.iter().map(|(b, t)| (b.as_str(), t)).collect::<std::collections::BTreeMap<_, _>>(),
            },
            "gpus": gpus.as_ref().map_or_else(|e| serde_json::json!({ "unavailable": e.to_string() }), |d| serde_json::json!(d)),
            "nvtx": nvtx,
        });
        if let Some((weights, path)) = weights {
            let d = weights.dims();
            let net = serde_json::json!({
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
            });
            if let (Some(summary), serde_json::Value::Object(mut net)) =
                (summary.as_object_mut(), net)
            {
                summary.append(&mut net);
            }
        }
        out!("{summary}");
        return Ok(());
    }
    if let Some((weights, path)) = weights {
        let d = weights.dims();
        out!("file        {}", path.display());
        out!(
            "architecture BlobNet: input {} → embedding {}, {} post-norm layers (FFN {}), policy head {}→{}, value head {}→1",
            d.input, d.embedding, d.layers, d.ffn, d.policy_hidden, d.actions, d.value_hidden
        );
        out!("parameters  {}", weights.param_count());
        out!("dtype       {}", weights.dtype().as_str());
        out!("sha256      {}", weights.sha256());
    }
    out!("engine      {}", env!("CARGO_PKG_VERSION"));
    out!(
        "cpu kernel  {} (this CPU runs: {})",
        cpu_kernel.as_str(),
        cpu_kernels.join(", ")
    );
    if cuda_targets.is_empty() {
        out!("cuda        no kernels compiled in (a CPU-only build: nvcc was not found when it was built)");
    }
    for (build, targets) in &cuda_targets {
        out!(
            "cuda        {} kernels for {}",
            build.as_str(),
            describe_targets(targets)
        );
    }
    match &gpus {
        Ok(devices) if !devices.is_empty() => {
            for d in devices {
                out!("gpu         {d}");
            }
        }
        Ok(_) => out!("gpu         none found"),
        Err(e) => out!("gpu         unavailable: {e}"),
    }
    let nvtx = if nvtx {
        "ranges on (libnvToolsExt loaded)"
    } else {
        "off (libnvToolsExt.so is not on the library path)"
    };
    out!("nvtx        {nvtx}");
    Ok(())
}

/// `sm_90` → machine code for sm_90, `compute_90` → PTX the driver compiles for newer GPUs.
fn describe_targets(targets: &[&str]) -> String {
    targets
        .iter()
        .map(|t| match t.strip_prefix("compute_") {
            Some(arch) => {
                format!("compute_{arch} (PTX, compiled by the driver for sm_{arch} and newer)")
            }
            None => format!("{t} (machine code)"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn selfplay(args: SelfplayArgs) -> Result<ExitCode> {
    let settings = settings_or_exit(args.settings());
    if args.settings.print_settings {
        return print_settings(&settings);
    }
    let config = SelfPlayConfig {
        players: args.players,
        cards: args.cards,
        start_cards: args.full_game.then_some(args.start_cards).flatten(),
        units: if args.full_game {
            args.games.unwrap_or(10)
        } else {
            args.rounds
        },
        search: settings.self_play_search_config(),
        workers: settings.workers(),
        games_per_worker: settings.games_per_worker(),
        seed: args.seed,
        cache_entries: settings.search.cache_entries,
        temperature: settings.selfplay.temperature.clone(),
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
    let (mut devices, checks): (Vec<Opened>, Vec<_>) = args
        .device
        .open_all(&net, rows, "", false)?
        .into_iter()
        .map(|opened| opened.watched(&net, rows, watch))
        .unzip();
    if let Some(healthy) = args.fault_after_batches {
        devices = devices
            .into_iter()
            .map(|o| Opened {
                backend: Box::new(FaultBackend::new(o.backend, healthy)),
                ..o
            })
            .collect();
    }
    // NVML telemetry only for the devices that really are GPUs.
    let mut samplers: Vec<Option<GpuSampler>> =
        devices.iter().map(|d| d.gpu.map(GpuSampler::new)).collect();
    let single_gpu = match devices.as_slice() {
        [one] => one.gpu,
        _ => None,
    };
    // The devices of a list all run one backend kind (cpu, or cuda).
    let metadata = ShardMetadata::new(&config, net.weights.sha256(), devices[0].backend.name());
    // A rerun of the same run (a fault, Ctrl-C or crash stopped it) skips what is on disk.
    let finished = finished_units(out.path(), &metadata, config.examples_per_unit())?;
    let unit = if config.start_cards.is_some() {
        "games"
    } else {
        "rounds"
    };
    let resumed = finished.units.count_below(config.units);
    if finished.shards > 0 {
        note!(
            "note: continuing the run in {}: {resumed} of {} {unit} are in its {} shard(s) ({} rows) already",
            args.out.display(),
            config.units,
            finished.shards,
            finished.rows
        );
    }
    for (unit_index, rows) in &finished.partial {
        note!(
            "note: unit {unit_index} has {rows} of its {} rows on disk (a crash cut it): kept, not played again",
            config.examples_per_unit()
        );
    }
    let flush_every = Duration::from_secs(args.flush_secs);
    let mut writer = ShardWriter::new(out, args.shard_size, Some(flush_every), metadata)
        .continuing(finished.units.clone());
    let stop = Arc::new(AtomicBool::new(false));
    install_interrupt_handler(stop.clone(), "writing completed rounds")?;
    let template =
        format!("{{bar:30}} {{pos}}/{{len}} {unit} {{elapsed_precise}} ETA {{eta}} {{msg}}");
    // The units this run plays (the ETA's rate is this run's).
    let bar = Progress::new(config.units - resumed, unit, &template);
    let units = config.units;
    let played =
        engine::selfplay::run_on(config, &finished.units, devices, &stop, &mut writer, |s| {
            let stats: Vec<_> = samplers
                .iter_mut()
                .filter_map(|s| s.as_mut().and_then(GpuSampler::sample))
                .collect();
            let gpu_line = match stats.as_slice() {
                [] => String::new(),
                [g] => format!(
                    ", GPU {}% {:.1}/{:.1} GiB",
                    g.util_percent,
                    g.mem_used_bytes as f64 / GIB,
                    g.mem_total_bytes as f64 / GIB
                ),
                all => {
                    let util: Vec<_> = all.iter().map(|g| format!("{}%", g.util_percent)).collect();
                    format!(", GPUs {}", util.join(" "))
                }
            };
            // Before the first round ends, a rate in rounds would read 0: the network's rate shows
            // the run is moving.
            let rounds = match s.rounds {
                0 => "first rounds in play".to_string(),
                _ => format!("{:.0} rounds/min", s.rounds_per_min),
            };
            let message = format!(
                "{rounds}, {:.0} evals/s, avg batch {:.0}, cache hits {:.0}%{gpu_line}",
                s.nn_rows_per_s,
                s.avg_batch,
                100.0 * s.cache_hit_rate
            );
            bar.update(s.units, message);
        });
    bar.finish();
    // Every finished unit reaches the disk, the run failed or not.
    let (shards, rows) = writer.finish()?;
    let mut summary = match played {
        Ok(summary) => summary,
        Err(e) => {
            return Err(e.context(format!(
                "self-play stopped; the {unit} it finished are in {} ({rows} rows, {shards} new \
                 shard(s)): rerun the same command to play the rest of the {units}",
                args.out.display()
            )))
        }
    };
    for (device, sampler) in summary.devices.iter_mut().zip(&samplers) {
        device.gpu_util_mean_percent = sampler.as_ref().and_then(GpuSampler::mean);
    }
    let means: Vec<f64> = summary
        .devices
        .iter()
        .filter_map(|d| d.gpu_util_mean_percent)
        .collect();
    let util_mean = (!means.is_empty()).then(|| means.iter().sum::<f64>() / means.len() as f64);
    let summary = engine::selfplay::Summary {
        shards,
        gpu: single_gpu.and_then(nvml_snapshot),
        gpu_util_mean_percent: util_mean,
        ..summary
    };
    for sampler in samplers.iter().flatten() {
        if let Some(hint) = sampler.underfed_hint() {
            note!("{hint}");
        }
    }
    let checks: Vec<Option<CheckStats>> = checks
        .iter()
        .map(|c| {
            c.as_ref()
                .map(|c| c.lock().unwrap_or_else(|e| e.into_inner()).clone())
        })
        .collect();
    for (c, device) in checks.iter().zip(&summary.devices) {
        let Some(c) = c else { continue };
        let on = match checks.len() {
            1 => String::new(),
            _ => format!(" ({})", device.device),
        };
        note!(
            "check against the CPU{on}: {} batches ({} rows), max |Δ| {:.2e}, p99 {:.2e}",
            c.batches_checked,
            c.rows_checked,
            c.max_abs_diff,
            c.p99_abs_diff()
        );
    }
    if args.json {
        let mut json = serde_json::to_value(&summary)?;
        let check_json = |c: &CheckStats| {
            serde_json::json!({
                "batches": c.batches_checked,
                "rows": c.rows_checked,
                "max_abs_diff": c.max_abs_diff,
                "p99_abs_diff": c.p99_abs_diff(),
            })
        };
        match checks.as_slice() {
            [Some(c)] => json["check"] = check_json(c),
            _ => {
                for (i, c) in checks.iter().enumerate() {
                    if let Some(c) = c {
                        json["devices"][i]["check"] = check_json(c);
                    }
                }
            }
        }
        out!("{json}");
    } else {
        out!(
            "{}{}{} rounds, {} decisions, {} examples in {} shard(s) under {} ({rows} rows); {:.1} rounds/min, {:.0} NN rows/s, avg batch {:.0}, cache hits {:.1}%{}, {:.1} s{}",
            if summary.interrupted { "interrupted: " } else { "" },
            match summary.resumed_units {
                0 => String::new(),
                n => format!("continued ({n} {unit} were on disk): "),
            },
            summary.rounds,
            summary.decisions,
            summary.examples,
            shards,
            args.out.display(),
            summary.rounds_per_min,
            summary.nn_rows_per_s,
            summary.avg_batch,
            100.0 * summary.cache_hit_rate,
            belief_rows_note(&summary),
            summary.wall_s,
            util_mean.map_or(String::new(), |u| format!(", GPU busy {u:.0}%"))
        );
        if summary.devices.len() > 1 {
            for (i, d) in summary.devices.iter().enumerate() {
                out!(
                    "  device {} ({}): {} NN rows, {:.0} rows/s, {} batches, avg batch {:.0}{}",
                    i + 1,
                    d.device,
                    d.rows,
                    d.rows_per_s,
                    d.batches,
                    d.avg_batch,
                    d.gpu_util_mean_percent
                        .map_or(String::new(), |u| format!(", GPU busy {u:.0}%"))
                );
            }
        }
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
/// ", B belief rows (X/decision)" when policy beliefs asked for rows.
fn belief_rows_note(summary: &engine::selfplay::Summary) -> String {
    if summary.belief_rows == 0 {
        return String::new();
    }
    let per_decision = summary.belief_rows as f64 / summary.decisions.max(1) as f64;
    format!(
        ", {} belief rows ({per_decision:.1}/decision)",
        summary.belief_rows
    )
}

fn install_interrupt_handler(stop: Arc<AtomicBool>, finishing: &'static str) -> Result<()> {
    let first = std::sync::OnceLock::new();
    ctrlc::set_handler(move || {
        let at = *first.get_or_init(Instant::now);
        if !stop.swap(true, Ordering::SeqCst) {
            note!("\ninterrupt: finishing up ({finishing}); press Ctrl-C again to exit now");
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
    let shared = settings_or_exit(args.settings.load(Vec::new()));
    let settings = settings_or_exit(args.side_settings(&shared));
    if args.settings.print_settings {
        if !args.sides_differ() {
            return print_settings(&shared);
        }
        for (name, settings) in ["A", "B"].iter().zip(&settings) {
            out!("# side {name}\n{}", settings.to_toml());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let sprt = match args.sprt {
        Some((elo0, elo1)) => match Sprt::new(elo0, elo1, args.sprt_alpha, args.sprt_beta) {
            Ok(test) => Some(test),
            Err(why) => Cli::command()
                .error(clap::error::ErrorKind::ValueValidation, why)
                .exit(),
        },
        None => None,
    };
    let config = ArenaConfig {
        players: args.players,
        cards: args.cards,
        deals: args.deals,
        sides: [
            args.a_kind.side(&settings[0]),
            args.b_kind.side(&settings[1]),
        ],
        threads: args.threads.unwrap_or_else(cores),
        deals_per_thread: args.deals_per_thread,
        seed: args.seed,
        sprt,
    };
    config.validate()?;
    // Before the nets load: a Ctrl-C from here on ends the run with the deals finished.
    let stop = Arc::new(AtomicBool::new(false));
    install_interrupt_handler(stop.clone(), "reporting the deals finished")?;
    let rows = config.rows_per_batch();
    let mut devices: [Vec<Opened>; 2] = [Vec::new(), Vec::new()];
    // One load when both sides search with the same file; each side its own backends.
    let mut loaded: Option<(&Path, Net)> = None;
    for (i, name) in ["A", "B"].into_iter().enumerate() {
        let Some(path) = args.weights(i) else {
            continue;
        };
        let net = match loaded.take() {
            Some((p, net)) if p == path.as_path() => net,
            _ => Net::load(Some(path))?,
        };
        // One note for both sides when they run alike.
        let quietly = devices.iter().any(|d| !d.is_empty());
        let what = " (each searching side has its own backend)";
        devices[i] = args
            .device
            .open_all(&net, rows, what, quietly)
            .with_context(|| format!("side {name}'s net ({})", path.display()))?;
        loaded = Some((path.as_path(), net));
    }
    let template = "{bar:30} {pos}/{len} deals, {per_sec}, ETA {eta} {msg}";
    let bar = Progress::new(config.deals, "deals", template);
    let r = engine::arena::run_on(&config, devices, &stop, |p| {
        let t = p.tally;
        let mut msg = format!(
            "A−B {:+.2}/round, A won {}/{}/{} (W/D/L), Elo {}",
            t.difference(),
            t.wins,
            t.draws,
            t.losses,
            elo_text(t.elo())
        );
        if let Some(s) = &p.sprt {
            msg += &format!(
                ", LLR {:.2} ({:.2}..{:.2})",
                s.llr, s.lower_bound, s.upper_bound
            );
        }
        bar.update(t.deals, msg);
    })?;
    bar.finish();
    if args.json {
        let [a, b] =
            [0, 1].map(|i| side_json(&config.sides[i], args.weights(i).map(PathBuf::as_path)));
        let json = ArenaJson { a, b, result: &r };
        out!("{}", serde_json::to_string(&json)?);
    } else {
        print_arena(&args, &config, &r)?;
    }
    Ok(if r.interrupted {
        ExitCode::from(INTERRUPTED)
    } else {
        ExitCode::SUCCESS
    })
}

/// `engine arena --json`: the sides, then the result.
#[derive(serde::Serialize)]
struct ArenaJson<'a> {
    a: serde_json::Value,
    b: serde_json::Value,
    #[serde(flatten)]
    result: &'a ArenaResult,
}

/// A side as the JSON result names it: its kind, its net and the settings it searched with
/// (as a run records them: the preset resolved; `null` for a random side).
fn side_json(side: &Side, weights: Option<&Path>) -> serde_json::Value {
    let settings = side.search_config().map(|config| {
        let recorded = Settings::of_search(&config, &Default::default(), side.cache_entries());
        // Through the record's text, whose floats are at their shortest (0.2, not f32's
        // 0.20000000298023224).
        let recorded: serde_json::Value =
            serde_json::from_str(&recorded.to_json()).expect("settings serialize");
        serde_json::json!({ "search": recorded["search"] })
    });
    serde_json::json!({
        "kind": side.name(),
        "weights": weights,
        "settings": settings,
    })
}

/// A side in one line: its kind, net and search budget.
fn side_text(side: &Side, weights: Option<&Path>) -> String {
    let net = weights.map_or(String::new(), |w| format!(" with {}", w.display()));
    match side.search_config() {
        Some(c) if matches!(side, Side::Oracle(_)) => {
            format!(
                "oracle (searches the true deal){net}, {} simulations",
                c.sims_per_world
            )
        }
        Some(c) => format!(
            "search{net}, {} worlds × {} simulations",
            c.worlds, c.sims_per_world
        ),
        None => "random (uniform legal moves)".to_string(),
    }
}

/// The arena's result as text.
fn print_arena(args: &ArenaArgs, config: &ArenaConfig, r: &ArenaResult) -> Result<()> {
    out!(
        "{}{} deals × {} seat rotations ({} rounds) in {:.1} s",
        if r.interrupted { "interrupted: " } else { "" },
        r.deals,
        args.players,
        r.rounds_played,
        r.wall_s
    );
    let means = [r.mean_score_a, r.mean_score_b];
    let beliefs = [r.belief_accuracy_a, r.belief_accuracy_b];
    for (i, name) in ["A", "B"].into_iter().enumerate() {
        let side = side_text(&config.sides[i], args.weights(i).map(PathBuf::as_path));
        let beliefs = beliefs[i].map_or(String::new(), |share| {
            format!(
                "; its worlds dealt {:.1}% of the hidden cards right",
                100.0 * share
            )
        });
        out!(
            "{name} {side}: mean score {:.3} per round{beliefs}",
            means[i]
        );
    }
    let ci = match (r.ci95_low, r.ci95_high) {
        (Some(low), Some(high)) => format!("95% CI {low:+.3} .. {high:+.3}, Student t over deals"),
        _ => "no interval below 2 deals".to_string(),
    };
    out!("A − B: {:+.3} per round ({ci})", r.difference);
    out!(
        "deals A won/drew/lost: {}/{}/{} (score {}): Elo {} ({}), LOS {:.1}%",
        r.wins,
        r.draws,
        r.losses,
        r.score
            .map_or("-".to_string(), |s| format!("{:.1}%", 100.0 * s)),
        elo_text(r.elo),
        match (r.elo_low, r.elo_high) {
            (Some(low), Some(high)) => format!("95% CI {low:+.1} .. {high:+.1}"),
            _ => "no interval below 2 deals".to_string(),
        },
        100.0 * r.los
    );
    if let Some(s) = &r.sprt {
        let decision = match s.decision {
            Decision::H0 => "H0 accepted",
            Decision::H1 => "H1 accepted",
            Decision::None => "no decision",
        };
        out!(
            "SPRT elo0 {} elo1 {} (alpha {}, beta {}): {decision}, LLR {:.3} (bounds {:.3} .. {:.3})",
            s.test.elo0,
            s.test.elo1,
            s.test.alpha,
            s.test.beta,
            s.llr,
            s.lower_bound,
            s.upper_bound
        );
    }
    Ok(())
}

/// An Elo estimate as text (`+inf`/`-inf` when A won or lost every deal, `-` before any).
fn elo_text(elo: Option<f64>) -> String {
    elo.map_or("-".to_string(), |e| format!("{e:+.1}"))
}
