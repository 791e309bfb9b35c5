//! The command line refuses bad settings and bad files before any work, and ends quietly when
//! its output pipe closes.

mod common;

use common::{engine, refusal, selfplay_with, stderr, temp_dir, usage_error, TempDir};
use std::io::Write;
use std::process::{Command, Stdio};

/// Every size or float flag out of its range is a usage error (status 2) naming the flag and
/// the range.
#[test]
fn size_flags_out_of_range_are_refused_at_parse_time() {
    let out = temp_dir("cli-bounds");
    let out = out.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["selfplay", "--workers", "0"], "1..=1024"),
        (&["selfplay", "--workers", "100000"], "1..=1024"),
        (&["selfplay", "--games-per-worker", "100000000"], "1..=4096"),
        (&["selfplay", "--dets", "100000"], "1..=64"),
        (&["selfplay", "--dets", "0"], "1..=64"),
        (&["selfplay", "--sims", "65535"], "1..=65534"),
        (&["selfplay", "--shard-size", "0"], "1..=1000000"),
        (&["selfplay", "--flush-secs", "0"], "1..=86400"),
        (&["selfplay", "--rounds", "0"], "1..=1000000000000"),
        (
            &["arena", "--a", "a", "--b", "b", "--threads", "0"],
            "1..=1024",
        ),
        (
            &["arena", "--a", "a", "--b", "b", "--deals", "0"],
            "1..=10000000",
        ),
        (
            &["selfplay", "--dirichlet-alpha", "-1"],
            "not a positive number",
        ),
        (
            &["selfplay", "--dirichlet-epsilon", "1.5"],
            "not a number in [0, 1]",
        ),
        (
            &["selfplay", "--check-threshold", "0"],
            "not a positive number",
        ),
        (
            &["arena", "--a", "a", "--b", "b", "--deals-per-thread", "0"],
            "1..=4096",
        ),
        (&["analyze", "--threads", "0"], "1..=1024"),
        (&["serve", "--threads", "0"], "1..=1024"),
        (&["bench", "--batch", "0"], "1..=65536"),
    ];
    for (args, range) in cases {
        let flag = args[args.len() - 2];
        // `--out` is selfplay's, so that a run that went ahead would leave a trace.
        let out_flag: &[&str] = if args[0] == "selfplay" {
            &["--out", out]
        } else {
            &[]
        };
        let args = [*args, out_flag].concat();
        let message = usage_error(&engine(&args), &args, range);
        assert!(message.contains(flag), "{args:?}: {message}");
    }
    assert!(
        !std::path::Path::new(out).exists(),
        "a refused run created --out"
    );
}

/// Settings each within range but together beyond any machine's memory are refused before
/// the output directory is touched.
#[test]
fn settings_beyond_the_machines_memory_are_refused_before_any_work() {
    let dir = temp_dir("cli-memory");
    let args = [
        "--workers",
        "1024",
        "--games-per-worker",
        "4096",
        "--dets",
        "64",
    ];
    let message = refusal(selfplay_with(&dir, 1, &args));
    assert!(
        message.contains("may need up to") && message.contains("--games-per-worker"),
        "{message}"
    );
    assert!(!dir.exists(), "a refused run created --out");
}

#[test]
fn a_weights_path_that_is_no_regular_file_is_refused_before_reading() {
    let out = engine(&["info", "--weights", "/dev/zero"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("/dev/zero is not a regular file"),
        "{}",
        stderr(&out)
    );
}

/// `engine … | head -1`: the reader goes away; the command ends with status 0 (it wrote
/// everything before noticing) or 141 (it noticed), never with a panic.
#[test]
fn a_closed_stdout_ends_every_command_quietly() {
    let weights = format!(
        "{}/tests/vectors/net.safetensors",
        env!("CARGO_MANIFEST_DIR")
    );
    let vectors = format!("{}/tests/vectors", env!("CARGO_MANIFEST_DIR"));
    let query = r#"{"id": 1, "player": 0, "dealer": 0, "trump": 1, "cards_dealt": 1, "hands": [[23], 1, 1], "bids": [null, null, null]}"#;
    let commands: [&[&str]; 4] = [
        &["info", "--weights", &weights],
        &["info", "--weights", &weights, "--json"],
        &["verify", "--vectors", &vectors, "--json"],
        &[
            "analyze",
            "--device",
            "cpu",
            "--threads",
            "1",
            "--weights",
            &weights,
        ],
    ];
    for args in commands {
        let mut child = Command::new(env!("CARGO_BIN_EXE_engine"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // the reader is gone before anything is written
        let mut stdin = child.stdin.take().unwrap();
        let _ = writeln!(stdin, "{query}");
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        let message = stderr(&out);
        assert!(
            matches!(out.status.code(), Some(0 | 141)) && !message.contains("panicked"),
            "{args:?}: {:?} {message}",
            out.status
        );
    }
}

/// `engine verify` finds the vectors from any working directory (through the source tree the
/// binary was built from) and names a missing `--vectors` directory.
#[test]
fn verify_finds_its_vectors_from_anywhere() {
    let elsewhere = TempDir::new("cli-verify");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_engine"))
            .args(args)
            .current_dir(&*elsewhere)
            .env_remove("ENGINE_VECTORS")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let found = run(&["verify", "--json"]);
    assert!(found.status.success(), "{}", stderr(&found));
    let missing = run(&["verify", "--vectors", "no-such-dir"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("no-such-dir does not exist"));
}

/// `engine info` without weights describes the build and the machine: the CPU kernels, whether
/// CUDA kernels are compiled in and for which targets, and the GPUs (or why there are none).
#[test]
fn info_describes_the_build_without_weights() {
    let out = engine(&["info", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let kernels: Vec<&str> = info["cpu_kernels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert!(
        kernels.contains(&info["cpu_kernel"].as_str().unwrap()),
        "{info}"
    );
    assert!(kernels.contains(&"portable"), "{info}");
    let cuda = &info["cuda_kernels"];
    let targets = cuda["targets"].as_array().unwrap();
    assert_eq!(cuda["compiled_in"].as_bool().unwrap(), !targets.is_empty());
    // CI builds with the kernels required: then they are in, with sm_90 machine code.
    if std::env::var("ENGINE_REQUIRE_CUDA_KERNELS").as_deref() == Ok("1") {
        assert!(targets.iter().any(|t| t == "sm_90"), "{info}");
    }
    assert!(info["gpus"].is_array() || info["gpus"]["unavailable"].is_string());
    assert!(
        info.get("sha256").is_none(),
        "no weights were given: {info}"
    );

    let text = engine(&["info"]);
    assert!(text.status.success(), "{}", stderr(&text));
    let text = String::from_utf8(text.stdout).unwrap();
    for field in ["cpu kernel", "cuda", "gpu"] {
        assert!(text.lines().any(|l| l.starts_with(field)), "{text}");
    }
}
