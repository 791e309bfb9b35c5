//! `engine arena` as a process: its flags, its refusals, its JSON and text results.

mod common;

use common::{engine, signal, stderr, usage_error, KillOnDrop, TempDir};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Two fresh nets (seeds 1 and 2) in a temporary directory (removed when the first value drops).
fn two_nets(name: &str) -> (TempDir, PathBuf, PathBuf) {
    let dir = TempDir::new(name);
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
    (dir, paths.0, paths.1)
}

/// `engine arena` of small, fast deals (3 players × 2 cards, 2 worlds × 8 simulations) on the
/// CPU between `a` and `b`; a flag in `args` replaces its default.
fn arena(a: &Path, b: &Path, args: &[&str]) -> Output {
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    arena_of(&["--a", a, "--b", b], args)
}

/// `engine arena` of small, fast deals between the sides `sides` describe (`--a`, `--a-kind`,
/// `--a-set`, …); a flag in `args` replaces its default.
fn arena_of(sides: &[&str], args: &[&str]) -> Output {
    let defaults = [
        ("--device", "cpu"),
        ("--players", "3"),
        ("--cards", "2"),
        ("--dets", "2"),
        ("--sims", "8"),
        ("--leaf-values", "mover"),
    ];
    let mut all = vec!["arena"];
    all.extend_from_slice(sides);
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
    let (_nets, a, b) = two_nets("arena-seed");
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
    let (_nets, a, _) = two_nets("arena-sprt");
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

/// Two search settings on one net (`--b` defaults to `--a`'s), the oracle and random play:
/// the JSON names each side's kind, net and settings, and the result depends on neither the
/// threads nor the deals each plays at once.
#[test]
fn sides_of_any_kind_on_one_net_depend_on_the_seed_alone() {
    let (_nets, w, _) = two_nets("arena-sides");
    let w = w.to_str().unwrap();
    let cases: [&[&str]; 3] = [
        &[
            "--a",
            w,
            "--a-set",
            "search.sims=24",
            "--b-set",
            "search.c_puct=3",
        ],
        &["--a", w, "--a-kind", "oracle"],
        &["--a-kind", "random", "--b", w, "--b-kind", "oracle"],
    ];
    for sides in cases {
        let base = json(&arena_of(sides, &["--deals", "6", "--json", "--quiet"]));
        assert_eq!(base["deals"], 6, "{sides:?}");
        for args in [
            ["--threads", "3", "--deals-per-thread", "1"],
            ["--threads", "1", "--deals-per-thread", "5"],
        ] {
            let got = json(&arena_of(
                sides,
                &[&["--deals", "6", "--json"], &args[..]].concat(),
            ));
            assert_eq!(got, base, "{sides:?} {args:?}");
        }
    }
    let r = json(&arena_of(cases[0], &["--deals", "2", "--json"]));
    let (a, b) = (&r["a"], &r["b"]);
    assert_eq!(
        (&a["kind"], &b["kind"]),
        (&"search".into(), &"search".into())
    );
    assert_eq!(
        (a["weights"].as_str(), b["weights"].as_str()),
        (Some(w), Some(w))
    );
    // The side's own settings over the shared ones (--dets 2, --sims 8).
    assert_eq!(a["settings"]["search"]["sims"], 24);
    assert_eq!(a["settings"]["search"]["dets"], 2);
    assert_eq!(a["settings"]["search"]["c_puct"], 1.5);
    assert_eq!(b["settings"]["search"]["sims"], 8);
    assert_eq!(b["settings"]["search"]["c_puct"], 3.0);
    let r = json(&arena_of(cases[2], &["--deals", "2", "--json"]));
    assert_eq!(r["a"]["kind"], "random");
    assert!(
        r["a"]["weights"].is_null() && r["a"]["settings"].is_null(),
        "{r}"
    );
    assert_eq!(r["b"]["kind"], "oracle");
    assert_eq!(
        r["b"]["settings"]["search"]["dets"], 1,
        "the oracle searches one world"
    );
    // Belief accuracy: none for random play; the oracle's one world is the deal.
    assert!(r["belief_accuracy_a"].is_null(), "{r}");
    assert_eq!(r["belief_accuracy_b"], 1.0);
    let text = arena_of(cases[2], &["--deals", "1", "--quiet"]);
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.contains("its worlds dealt 100.0% of the hidden cards right"),
        "{text}"
    );
}

/// A side against an identical side draws every deal: one net twice, the oracle twice,
/// random play twice (which needs no net).
#[test]
fn identical_sides_draw_every_deal() {
    let (_nets, w, _) = two_nets("arena-identical");
    let w = w.to_str().unwrap();
    let cases: [&[&str]; 4] = [
        &["--a", w],
        &[
            "--a",
            w,
            "--a-set",
            "search.sims=4",
            "--b-set",
            "search.sims=4",
        ],
        &["--a", w, "--a-kind", "oracle", "--b-kind", "oracle"],
        &["--a-kind", "random", "--b-kind", "random"],
    ];
    for sides in cases {
        let r = json(&arena_of(sides, &["--deals", "4", "--json"]));
        assert_eq!(
            (r["draws"].as_u64(), r["difference"].as_f64()),
            (Some(4), Some(0.0)),
            "{sides:?}"
        );
    }
    let text = arena_of(cases[2], &["--deals", "1", "--quiet"]);
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.contains("A oracle (searches the true deal) with "),
        "{text}"
    );
    let text = arena_of(cases[3], &["--deals", "1", "--quiet"]);
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.contains("B random (uniform legal moves): mean score"),
        "{text}"
    );
}

/// A side's net is given exactly when it searches, and a side's own setting is checked and
/// named like a shared one; it may set a key the shared settings set too.
#[test]
fn side_flags_are_checked_before_any_work() {
    let missing = "/nonexistent/net.safetensors";
    let cases: [(&[&str], &str); 5] = [
        (
            &["--b", missing],
            "side A searches and needs a net: --a FILE",
        ),
        (
            &["--a-kind", "random"],
            "side B searches and needs a net: --b FILE",
        ),
        (
            &["--a", missing, "--b", missing, "--b-kind", "random"],
            "--b gives a net to a side that plays at random",
        ),
        (
            &["--a", missing, "--a-set", "search.c_puct=-1"],
            "search.c_puct must be finite",
        ),
        (
            &["--a", missing, "--b-set", "search.cpuct=1"],
            "--b-set search.cpuct=1: unknown field",
        ),
    ];
    for (sides, why) in cases {
        usage_error(&arena_of(sides, &[]), &sides, why);
    }
    let (_nets, w, _) = two_nets("arena-side-flags");
    let sides = ["--a", w.to_str().unwrap(), "--a-set", "search.c_puct=3"];
    let r = json(&arena_of(
        &sides,
        &["--set", "search.c_puct=2", "--deals", "1", "--json"],
    ));
    assert_eq!(
        (
            &r["a"]["settings"]["search"]["c_puct"],
            &r["b"]["settings"]["search"]["c_puct"]
        ),
        (&3.0.into(), &2.0.into())
    );
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
    let (_nets, a, _) = two_nets("arena-missing");
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
    let (_nets, a, b) = two_nets("arena-sigint");
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
