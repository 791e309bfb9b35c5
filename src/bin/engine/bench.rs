//! `engine bench`: one forward timing, a sweep of them (`--sweep`) with the self-play command
//! line it recommends, or a search benchmark (`--search`).

use super::{cores, load_net};
use crate::args::{BenchArgs, GpuWait};
use crate::log::{self, Progress};
use anyhow::{Context, Result};
use engine::bench::search::{SearchBenchConfig, SearchReport, DEFAULT_DEALS};
use engine::bench::sweep::{self, Grid, Pick, SelfPlayFlags, DEFAULT_SECONDS, TOLERANCE};
use engine::bench::BenchResult;
use engine::device::Net;
use serde_json::json;
use std::io::Write;
use std::time::Duration;

/// Rows per forward call without `--batch`.
const DEFAULT_BATCH: usize = 256;
/// Seconds timed without `--seconds` (one point).
const DEFAULT_SECONDS_ONE: f64 = 5.0;
/// Players at the table without `--players`.
const DEFAULT_PLAYERS: u8 = 4;
/// Cards per round without `--cards`.
const DEFAULT_CARDS: u8 = 5;

pub(crate) fn bench(args: &BenchArgs) -> Result<()> {
    if args.sweep {
        sweep(args)
    } else if args.search {
        search(args)
    } else {
        one(args)
    }
}

/// One batch size, direct or through the ring.
fn one(args: &BenchArgs) -> Result<()> {
    let batch = args.batch.unwrap_or(DEFAULT_BATCH);
    let seconds = args.seconds.unwrap_or(DEFAULT_SECONDS_ONE);
    let in_flight = args.in_flight.as_ref().and_then(|l| l.0.first().copied());
    let net = load_net(args.weights.as_deref())?;
    let mut backend = args.device.open(&net, batch)?.backend;
    let r = match in_flight {
        Some(n) => engine::bench::run_in_flight(backend.as_mut(), batch, n, seconds, 0)?,
        None => engine::bench::run(backend.as_mut(), batch, seconds, 0)?,
    };
    if args.json {
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

/// `--sweep`: the grid's table, the recommendation and its self-play command line.
fn sweep(args: &BenchArgs) -> Result<()> {
    let seconds = args.seconds.unwrap_or(DEFAULT_SECONDS);
    let list = |l: &Option<crate::args::List>| l.as_ref().map(|l| l.0.clone());
    let (batches, in_flight, threads) = (
        list(&args.batches),
        list(&args.in_flight),
        list(&args.cpu_threads),
    );
    // Room for the largest batch of either device's default grid until the device is known.
    let rows = batches.as_ref().map_or_else(
        || {
            sweep::CPU_BATCHES
                .iter()
                .chain(&sweep::GPU_BATCHES)
                .copied()
                .max()
        },
        |b| b.iter().copied().max(),
    );
    let net = load_net(args.weights.as_deref())?;
    let opened = args.device.open(&net, rows.unwrap_or(DEFAULT_BATCH))?;
    let (description, gpu) = (opened.description.clone(), opened.gpu);
    let grid = Grid::new(gpu.is_some(), batches, in_flight, threads)?;
    let bar = Progress::new(grid.len() as u64, "points", "sweep {pos}/{len} {msg}");
    bar.bar().enable_steady_tick(Duration::from_millis(250));
    let options = args.device.options();
    let results = sweep::run(opened, &options, &net, &grid, seconds, &mut |p| {
        let message = p.next.map_or(String::new(), |next| {
            let threads = next
                .threads
                .map_or(String::new(), |t| format!(", {t} threads"));
            format!(
                "batch {} × {} in flight{threads}, ETA {:.0} s",
                next.batch,
                next.in_flight,
                p.eta.as_secs_f64().ceil()
            )
        });
        bar.update(p.done as u64, message);
    })?;
    bar.finish();
    let settings = args.settings()?;
    let search = settings.search_config();
    let players = args.players.unwrap_or(DEFAULT_PLAYERS);
    let pick = sweep::recommend(&results, TOLERANCE);
    let flags = pick.map(|p| sweep::selfplay_flags(&p, players, &search, cores()));
    let command = flags.as_ref().map(|f| selfplay_command(args, f, gpu));
    if let (Some(path), Some(flags)) = (&args.write_settings, &flags) {
        let mut recommended = settings;
        recommended.search.dets = Some(flags.worlds);
        recommended.search.sims = Some(flags.sims_per_world);
        recommended.selfplay.workers = Some(flags.workers);
        recommended.selfplay.games_per_worker = Some(flags.games_per_worker);
        recommended
            .save(path)
            .with_context(|| format!("writing the settings file {}", path.display()))?;
        note!(
            "wrote the recommended settings to {0}: engine selfplay --config {0} --players {players} …",
            path.display()
        );
    }
    if args.json {
        let recommendation = pick.map(|p| {
            json!({
                "pick": p,
                "selfplay": flags,
                "command": command,
            })
        });
        let report = json!({
            "device": results.first().map(|r| r.backend),
            "description": description,
            "seconds_per_point": seconds,
            "grid": grid,
            "points": results,
            "recommendation": recommendation,
        });
        out!("{report}");
        return Ok(());
    }
    out!(
        "sweep on {description}: {} points through the batch ring, {seconds} s each after a warm-up",
        grid.len()
    );
    print_table(&results)?;
    match (pick, flags, command) {
        (Some(pick), Some(flags), Some(command)) => {
            print_recommendation(&pick, &flags, &command)?;
        }
        _ => out!("no point ran a batch: no recommendation"),
    }
    Ok(())
}

fn print_table(results: &[BenchResult]) -> Result<()> {
    out!(
        "{:>8} {:>7} {:>10} {:>12} {:>12} {:>12}",
        "threads",
        "batch",
        "in flight",
        "rows/s",
        "µs/batch",
        "latency µs"
    );
    for r in results {
        let threads = r.threads.map_or("-".to_string(), |t| t.to_string());
        out!(
            "{threads:>8} {:>7} {:>10} {:>12.0} {:>12.1} {:>12.1}",
            r.batch,
            r.in_flight,
            r.evals_per_s,
            r.us_per_batch,
            r.latency_us
        );
    }
    Ok(())
}

fn print_recommendation(pick: &Pick, flags: &SelfPlayFlags, command: &str) -> Result<()> {
    let threads = pick
        .threads
        .map_or(String::new(), |t| format!(", {t} threads"));
    out!(
        "best: {:.0} rows/s; recommended (the smallest point within {:.0}% of it): batch {} × {} in flight{threads}, {:.0} rows/s ({:.0}% of the best)",
        pick.best_evals_per_s,
        100.0 * pick.tolerance,
        pick.batch,
        pick.in_flight,
        pick.evals_per_s,
        100.0 * pick.share_of_best
    );
    out!(
        "self-play, {} players, {} worlds, --leaf-values {}: a worker's batch holds up to ceil(games per worker / 2) × {} worlds × {} leaves per gather × {} rows per leaf = ceil(G / 2) × {} rows; --games-per-worker {} gives {} rows{}",
        flags.players,
        flags.worlds,
        flags.leaf_values,
        flags.worlds,
        flags.leaves_per_gather,
        flags.rows_per_leaf,
        flags.rows_per_gather,
        flags.games_per_worker,
        flags.rows_per_batch,
        if flags.games_capped {
            format!(" (games per worker capped: fewer than {} rows)", pick.batch)
        } else {
            format!(" (≥ {})", pick.batch)
        }
    );
    out!(
        "each worker has two batch slots: {} in flight need {} worker(s) or more; --workers {} (no fewer than the {} cores: the workers also search)",
        pick.in_flight,
        pick.in_flight.div_ceil(2),
        flags.workers,
        cores()
    );
    out!("self-play's batches run below that bound (finished searches, cache hits); its summary's avg batch shows what they reach");
    out!("{command}");
    Ok(())
}

/// The `engine selfplay` command line of `flags`, on the device the sweep ran on.
fn selfplay_command(args: &BenchArgs, flags: &SelfPlayFlags, gpu: Option<usize>) -> String {
    let mut words: Vec<String> = Vec::new();
    if let Some(t) = flags.rayon_threads.filter(|_| gpu.is_none()) {
        words.push(format!("RAYON_NUM_THREADS={t}"));
    }
    words.extend(["engine", "selfplay", "--device"].map(String::from));
    words.push(gpu.map_or("cpu".to_string(), |n| format!("cuda:{n}")));
    let d = &args.device;
    match gpu {
        None => {
            if let Some(k) = d.cpu_kernel {
                words.extend(["--cpu-kernel".to_string(), k.as_str().to_string()]);
            }
        }
        Some(_) => {
            if d.no_graphs {
                words.push("--no-graphs".into());
            }
            if d.gpu_wait == GpuWait::Spin {
                words.extend(["--gpu-wait", "spin"].map(String::from));
            }
        }
    }
    if let Some(w) = &args.weights {
        words.extend([
            "--weights".to_string(),
            shell_word(&w.display().to_string()),
        ]);
    }
    words.extend(flags.args());
    words.join(" ")
}

/// `word` as one shell word: as it is when it holds only safe characters, else single-quoted.
fn shell_word(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./:=+,@%".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// `--search`: searches on the seeded position set.
fn search(args: &BenchArgs) -> Result<()> {
    let search = args.settings()?.search_config();
    let config = SearchBenchConfig {
        players: args.players.unwrap_or(DEFAULT_PLAYERS),
        cards: args.cards.unwrap_or(DEFAULT_CARDS),
        deals: args.rounds.unwrap_or(DEFAULT_DEALS),
        seed: args.seed.unwrap_or(0),
        search,
        threads: args.threads.unwrap_or_else(cores),
        rows_per_batch: args
            .batch
            .unwrap_or_else(|| engine::analyze::rows_per_batch(&search)),
    };
    let net: Net = load_net(args.weights.as_deref())?;
    let opened = args.device.open(&net, config.rows_per_batch)?;
    let mut backend = opened.backend;
    let bar = Progress::new(
        0,
        "positions",
        "search {pos}/{len} positions, {per_sec}, ETA {eta}",
    );
    let r = engine::bench::search::run(backend.as_mut(), &config, &|done, total| {
        bar.bar().set_length(total as u64);
        bar.update(done as u64, String::new());
    })?;
    bar.finish();
    if args.json {
        let mut report = serde_json::to_value(&r)?;
        report["description"] = opened.description.into();
        out!("{report}");
    } else {
        print_search(&opened.description, &r)?;
    }
    Ok(())
}

fn print_search(description: &str, r: &SearchReport) -> Result<()> {
    let c = &r.counts;
    out!(
        "search on {description}: {} positions ({} rounds of {} players × {} cards, seed {}), {} worlds × {} simulations, --leaf-values {}, --beliefs {}, {} threads",
        c.positions, r.deals, r.players, r.cards, r.seed, r.worlds, r.sims_per_world, r.leaf_values, r.beliefs, r.threads
    );
    out!(
        "counts: {} simulations, {} network rows ({} for beliefs), {} cache hits, {} shared rows, {} collisions, fingerprint {}",
        c.simulations, c.nn_rows, c.belief_rows, c.cache_hits, c.shared_rows, c.collisions, c.fingerprint
    );
    out!(
        "{:.0} simulations/s, {:.0} network rows/s, {:.1} positions/s ({:.2} s; {} batches, avg batch {:.0})",
        r.simulations_per_s, r.nn_rows_per_s, r.positions_per_s, r.seconds, r.batches, r.avg_batch
    );
    Ok(())
}
