//! `engine arena` as a process: its flags, its refusals, its JSON and text results.

mod common;

use common::{engine, signal, stderr, temp_dir, usage_error, KillOnDrop};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Two fresh nets (seeds 1 and 2) in a temporary directory.
fn two_nets(name: &str) -> (PathBuf, PathBuf) {
    let dir = temp_dir(name);
    std::fs::create_dir_all(&dir).unwrap();
    let paths = (dir.join("a.safetensors"), dir.join("b.safetensors"));
    for (seed, path) in [("1", &paths.0), ("2", &paths.1)] {
        let out = engine(&[
            "init-weights",
            "--seed",
            seed,
            "--out",
            path.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    paths
}

/// `engine arena` of small, fast deals (3 players × 2 cards, 2 worlds × 8 simulations) on the
/// CPU between `a` and `b`; a flag in `args` replaces its default.
fn arena(a: &Path, b: &Path, args: &[&str]) -> Output {
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let defaults = [
        ("--device", "cpu"),
        ("--players", "3"),
        ("--cards", "2"),
        ("--dets", "2"),
        ("--sims", "8"),
        ("--leaf-values", "mover"),
    ];
    let mut all = vec!["arena", "--a", a, "--b", b];
    for (flag, value) in defaults {
        if !args.contains(&flag) {
            all.extend([flag, value]);
        }
    }
    all.extend_from_slice(args);
    engine(&all)
}

/// The JSON result of a successful run, without its wall time.
fn json(out: &Output) -> Value {
    assert_eq!(out.status.code(), Some(0), "{}", stderr(out));
    let mut v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert!(v["wall_s"].as_f64().unwrap() > 0.0);
    v.as_object_mut().unwrap().remove("wall_s");
    v
}

/// `--rounds` still works (old scripts), and the result depends on neither the threads nor
/// the deals each plays at once.
#[test]
fn the_result_depends_on_the_seed_alone() {
    let (a, b) = two_nets("arena-seed");
    let base = json(&arena(&a, &b, &["--deals", "6", "--json", "--quiet"]));
    assert_eq!(base["deals"], 6);
    assert_eq!(base["rounds_played"], 18);
    let w = base["wins"].as_u64().unwrap();
    let (d, l) = (
        base["draws"].as_u64().unwrap(),
        base["losses"].as_u64().unwrap(),
    );
    assert_eq!(w + d + l, 6);
    assert!(base.get("sprt").is_none());
    assert_eq!(base["interrupted"], false);
    let variants: [&[&str]; 3] = [
        &["--rounds", "6", "--json", "--quiet"],
        &[
            "--deals",
            "6",
            "--json",
            "--threads",
            "3",
            "--deals-per-thread",
            "1",
        ],
        &[
            "--deals",
            "6",
            "--json",
            "--threads",
            "1",
            "--deals-per-thread",
            "5",
        ],
    ];
    for args in variants {
        assert_eq!(json(&arena(&a, &b, args)), base, "{args:?}");
    }
    let other_seed = json(&arena(&a, &b, &["--deals", "6", "--json", "--seed", "1"]));
    assert_ne!(other_seed, base);
}

/// A net against itself draws every deal; the SPRT accepts H0 after 5 and stops there.
#[test]
fn the_sprt_stops_early_and_says_so() {
    let (a, _) = two_nets("arena-sprt");
    let r = json(&arena(
        &a,
        &a,
        &["--deals", "50", "--sprt", "0,200", "--json"],
    ));
    assert_eq!(
        (r["deals"].as_u64(), r["draws"].as_u64()),
        (Some(5), Some(5))
    );
    assert_eq!(r["difference"], 0.0);
    assert_eq!(r["sprt"]["decision"], "H0");
    assert_eq!(r["sprt"]["elo0"], 0.0);
    assert_eq!(r["sprt"]["elo1"], 200.0);
    assert_eq!(r["sprt"]["alpha"], 0.05);
    assert!(r["sprt"]["llr"].as_f64().unwrap() <= r["sprt"]["lower_bound"].as_f64().unwrap());

    let text = arena(&a, &a, &["--deals", "50", "--sprt", "0,200", "--quiet"]);
    assert_eq!(text.status.code(), Some(0), "{}", stderr(&text));
    let text = String::from_utf8(text.stdout).unwrap();
    for line in [
        "5 deals × 3 seat rotations (15 rounds)",
        "A − B: +0.000 per round (95% CI +0.000 .. +0.000, Student t over deals)",
        "deals A won/drew/lost: 0/5/0 (score 50.0%): Elo +0.0 (95% CI +0.0 .. +0.0), LOS 50.0%",
        "SPRT elo0 0 elo1 200 (alpha 0.05, beta 0.05): H0 accepted, LLR -3.657",
    ] {
        assert!(text.contains(line), "{line:?} not in:\n{text}");
    }
}

/// Every bad --sprt is a usage error (status 2) naming the problem, before any net is read.
#[test]
fn bad_sprt_settings_are_refused_at_parse_time() {
    let missing = Path::new("/nonexistent/net.safetensors");
    let cases: [(&[&str], &str); 9] = [
        (&["--sprt", "10,0"], "elo0 < elo1"),
        (&["--sprt", "5,5"], "elo0 < elo1"),
        (&["--sprt", "5"], "ELO0,ELO1"),
        (&["--sprt", "0,5,9"], "ELO0,ELO1"),
        (&["--sprt", "zero,5"], "is not a number"),
        (&["--sprt", "0,5000"], "±1000"),
        (
            &["--sprt", "0,5", "--sprt-alpha", "0"],
            "strictly between 0 and 1",
        ),
        (
            &["--sprt", "0,5", "--sprt-alpha", "0.6", "--sprt-beta", "0.5"],
            "alpha + beta < 1",
        ),
        (&["--sprt-beta", "0.1"], "--sprt"),
    ];
    for (args, why) in cases {
        usage_error(&arena(missing, missing, args), &args, why);
    }
}

/// A negative Elo is a value, not a flag; with good settings the run goes on to read the nets.
#[test]
fn a_negative_elo0_is_accepted() {
    let missing = Path::new("/nonexistent/net.safetensors");
    let out = arena(
        missing,
        missing,
        &["--sprt", "-1.75,0.25", "--sprt-alpha", "0.1"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("/nonexistent"), "{}", stderr(&out));
}

#[test]
fn a_bad_device_is_refused() {
    let missing = Path::new("/nonexistent/net.safetensors");
    let out = arena(missing, missing, &["--device", "tpu"]);
    usage_error(&out, &"--device tpu", "unknown device");
}

#[test]
fn a_missing_net_is_named() {
    let (a, _) = two_nets("arena-missing");
    let missing = Path::new("/nonexistent/net.safetensors");
    let out = arena(&a, missing, &["--deals", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("/nonexistent/net.safetensors"),
        "{}",
        stderr(&out)
    );
}

/// Ctrl-C: the deals finished are reported (JSON `interrupted`), and the status is 130.
#[test]
fn an_interrupted_arena_reports_what_it_finished() {
    let (a, b) = two_nets("arena-sigint");
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let mut args = vec![
        "arena",
        "--a",
        a,
        "--b",
        b,
        "--device",
        "cpu",
        "--players",
        "3",
    ];
    args.extend([
        "--cards", "2", "--dets", "2", "--sims", "8", "--deals", "1000000", "--json",
    ]);
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_engine"))
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // The device line comes once the interrupt handler is in place.
    let mut errors = BufReader::new(child.0.stderr.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("device") {
        let mut line = String::new();
        assert!(
            errors.read_line(&mut line).unwrap() > 0,
            "no device line: {seen}"
        );
        seen += &line;
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    signal(child.0.id(), "-INT");
    errors.read_to_string(&mut seen).unwrap();
    let mut stdout = String::new();
    child
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let status = child.0.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{seen}");
    let r: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(r["interrupted"], true);
    assert!(r["deals"].as_u64().unwrap() < 1_000_000);
}
