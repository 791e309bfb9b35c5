//! `engine bench --sweep` and `--search` from the command line: bad grids and flags are refused
//! before any work, a tiny CPU sweep prints the JSON it documents, and the search benchmark's
//! counts are the same for a seed whatever the threads and batch size. No test here looks at
//! a speed.

mod common;

use common::{engine, temp_dir, usage_error};
use serde_json::Value;
use std::process::Output;

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `engine bench ARGS --json`, which must succeed, and parses its one JSON object.
fn bench_json(args: &[&str]) -> Value {
    let out = engine(&[&["bench"], args, &["--json"]].concat());
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// Bad grids, and flags of another mode, are usage errors (status 2) naming the problem,
/// refused at parse time: none of these opens a device (`--device cuda` would fail with
/// status 1 on a machine without a GPU).
#[test]
fn bad_grids_and_flags_of_another_mode_are_refused_before_any_work() {
    let big: Vec<String> = (1..=32).map(|v| v.to_string()).collect();
    let big = big.join(",");
    let cases: &[(&[&str], &str)] = &[
        (&["--sweep", "--batches", "0"], "0 is not in 1..=65536"),
        (
            &["--sweep", "--batches", "65537"],
            "65537 is not in 1..=65536",
        ),
        (
            &["--sweep", "--batches", "64,,256"],
            "\"\" is not a whole number",
        ),
        (&["--sweep", "--batches", "64;256"], "not a whole number"),
        (
            &["--sweep", "--batches", "256,64,256"],
            "256 is given twice",
        ),
        (&["--sweep", "--batches", ""], "an empty list"),
        (&["--sweep", "--in-flight", "1,65"], "65 is not in 1..=64"),
        (&["--sweep", "--cpu-threads", "0"], "0 is not in 1..=1024"),
        (
            &["--sweep", "--batches", &big, "--in-flight", &big],
            "1024 points to time: a sweep times at most 256",
        ),
        (
            &["--sweep", "--device", "cuda", "--cpu-threads", "1,2"],
            "does not apply to --device cuda:0",
        ),
        (
            &["--sweep", "--seconds", "0"],
            "--seconds must be a positive",
        ),
        (
            &["--sweep", "--seconds", "NaN"],
            "--seconds must be a positive",
        ),
        (
            &["--in-flight", "1,2"],
            "--in-flight takes one N without --sweep",
        ),
        (&["--batches", "64"], "--sweep"),
        (&["--cpu-threads", "2"], "--sweep"),
        (&["--sweep", "--batch", "64"], "cannot be used with"),
        (&["--sweep", "--search"], "cannot be used with"),
        (&["--search", "--seconds", "1"], "cannot be used with"),
        (&["--search", "--in-flight", "2"], "cannot be used with"),
        (&["--dets", "3"], "--sweep"),
        (&["--rounds", "3"], "--search"),
        (&["--sweep", "--rounds", "3"], "cannot be used with"),
        (&["--sweep", "--threads", "3"], "cannot be used with"),
        (&["--search", "--batches", "64"], "cannot be used with"),
        (&["--search", "--cpu-threads", "2"], "cannot be used with"),
        (&["--search", "--rounds", "0"], "1..=100000"),
        (&["--sweep", "--players", "2"], "3..=8"),
    ];
    for (args, expected) in cases {
        usage_error(&engine(&[&["bench"], *args].concat()), args, expected);
    }
}

/// A tiny sweep on the CPU: one point per grid entry, in order, each with the documented
/// fields; a recommendation among them and the self-play command line it maps to.
#[test]
fn a_tiny_cpu_sweep_prints_every_point_and_a_selfplay_command() {
    let dir = temp_dir("bench-sweep-settings");
    std::fs::create_dir_all(&dir).unwrap();
    let settings_file = dir.join("tuned.toml");
    let report = bench_json(&[
        "--write-settings",
        settings_file.to_str().unwrap(),
        "--sweep",
        "--device",
        "cpu",
        "--batches",
        "16,8",
        "--in-flight",
        "1,2",
        "--cpu-threads",
        "1,2",
        "--seconds",
        "0.01",
        "--players",
        "3",
        "--preset",
        "light",
        "--leaf-values",
        "mover",
    ]);
    assert_eq!(report["device"], "cpu");
    assert!(report["description"].as_str().unwrap().starts_with("cpu, "));
    assert_eq!(report["seconds_per_point"], 0.01);
    assert_eq!(
        report["grid"],
        serde_json::json!({"batches": [8, 16], "in_flight": [1, 2], "cpu_threads": [1, 2]})
    );
    let points = report["points"].as_array().unwrap();
    let order: Vec<(u64, u64, u64)> = points
        .iter()
        .map(|p| {
            (
                p["threads"].as_u64().unwrap(),
                p["batch"].as_u64().unwrap(),
                p["in_flight"].as_u64().unwrap(),
            )
        })
        .collect();
    let mut expected = Vec::new();
    for threads in [1, 2] {
        for batch in [8, 16] {
            for in_flight in [1, 2] {
                expected.push((threads, batch, in_flight));
            }
        }
    }
    assert_eq!(order, expected);
    for p in points {
        assert_eq!(p["device"], "cpu");
        assert!(p["batches"].as_u64().unwrap() >= 1, "{p}");
        for field in ["seconds", "evals_per_s", "us_per_batch", "latency_us"] {
            assert!(p[field].as_f64().unwrap() > 0.0, "{field}: {p}");
        }
    }
    let recommendation = &report["recommendation"];
    let pick = &recommendation["pick"];
    let (batch, in_flight) = (
        pick["batch"].as_u64().unwrap(),
        pick["in_flight"].as_u64().unwrap(),
    );
    assert!(points.iter().any(|p| p["batch"] == batch
        && p["in_flight"] == in_flight
        && p["threads"] == pick["threads"]));
    assert_eq!(pick["tolerance"], 0.05);
    let share = pick["share_of_best"].as_f64().unwrap();
    assert!((0.95..=1.0).contains(&share), "{pick}");
    // Light, mover's rows only, 3 players: 2 worlds × 4 leaves × 1 row = 8 rows per gather.
    let selfplay = &recommendation["selfplay"];
    assert_eq!(selfplay["rows_per_gather"], 8);
    let games = selfplay["games_per_worker"].as_u64().unwrap();
    assert_eq!(games, 2 * batch.div_ceil(8));
    assert_eq!(selfplay["rows_per_batch"], games / 2 * 8);
    let command = recommendation["command"].as_str().unwrap();
    let threads = pick["threads"].as_u64().unwrap();
    assert!(
        command.starts_with(&format!(
            "RAYON_NUM_THREADS={threads} engine selfplay --device cpu --players 3 --dets 2 \
             --sims 20 --leaf-values mover --games-per-worker {games} --workers "
        )),
        "{command}"
    );
    // The settings file it wrote gives self-play the same search and worker layout.
    let printed = engine(&[
        "selfplay",
        "--config",
        settings_file.to_str().unwrap(),
        "--print-settings",
    ]);
    assert!(printed.status.success(), "{}", stderr(&printed));
    let tuned: Value = toml::from_str(&String::from_utf8(printed.stdout).unwrap()).unwrap();
    assert_eq!(tuned["search"]["dets"], 2);
    assert_eq!(tuned["search"]["sims"], 20);
    assert_eq!(tuned["search"]["leaf_values"], "mover");
    assert_eq!(tuned["selfplay"]["games_per_worker"], games);
    assert_eq!(tuned["selfplay"]["workers"], selfplay["workers"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The text table has a row per point and ends with the command line.
#[test]
fn the_sweep_table_ends_with_the_command_line() {
    let out = engine(&[
        "bench",
        "--sweep",
        "--device",
        "cpu",
        "--batches",
        "8",
        "--in-flight",
        "1,2",
        "--seconds",
        "0.01",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("sweep on cpu, "), "{text}");
    assert!(
        lines[1].contains("rows/s") && lines[1].contains("latency"),
        "{text}"
    );
    assert!(lines[2].split_whitespace().nth(1) == Some("8"), "{text}");
    assert!(lines[3].split_whitespace().nth(2) == Some("2"), "{text}");
    let last = lines.last().unwrap();
    assert!(
        last.contains("engine selfplay --device cpu --players 4 --dets 3 --sims 30 --leaf-values all --games-per-worker 2 --workers "),
        "{text}"
    );
}

/// The counts of a search benchmark depend on the seed only: the same with one thread and
/// big batches as with three threads and small ones, on the CPU backend's real forward.
#[test]
fn search_counts_are_the_same_for_a_seed_whatever_the_threads_and_batches() {
    let base = [
        "--search",
        "--device",
        "cpu",
        "--rounds",
        "2",
        "--players",
        "3",
        "--cards",
        "4",
        "--preset",
        "light",
    ];
    let one = bench_json(&[&base[..], &["--threads", "1"]].concat());
    let three = bench_json(&[&base[..], &["--threads", "3", "--batch", "48"]].concat());
    let counts = [
        "positions",
        "simulations",
        "nn_rows",
        "cache_hits",
        "shared_rows",
        "collisions",
        "fingerprint",
    ];
    for field in counts {
        assert_eq!(one[field], three[field], "{field}: {one} vs {three}");
    }
    // Two rounds, four stages each; light: 2 worlds × 20 simulations per position.
    assert_eq!(one["positions"], 8);
    assert_eq!(one["simulations"], 8 * 40);
    assert!(one["nn_rows"].as_u64().unwrap() > 0);
    assert_eq!(
        (one["threads"].clone(), three["threads"].clone()),
        (1.into(), 3.into())
    );
    assert_eq!(one["device"], "cpu");
    assert!(one["description"].as_str().unwrap().starts_with("cpu, "));
    for field in [
        "seconds",
        "simulations_per_s",
        "nn_rows_per_s",
        "positions_per_s",
    ] {
        assert!(one[field].as_f64().unwrap() > 0.0, "{field}: {one}");
    }
    let reseeded = bench_json(&[&base[..], &["--seed", "1"]].concat());
    assert_ne!(one["fingerprint"], reseeded["fingerprint"]);
    // A batch that cannot hold one search's gather is refused, naming both sizes.
    let out = engine(&[&["bench"], &base[..], &["--batch", "23"]].concat());
    assert_eq!(out.status.code(), Some(1));
    let message = stderr(&out);
    assert!(
        message.contains("23 rows") && message.contains("24 rows"),
        "{message}"
    );
}
