//! Output conventions, command by command: results on stdout, notes and progress on stderr
//! (nothing there with `--quiet`), `--json` one object on stdout, `--log-file` a stamped copy.

mod common;

use common::{engine_with_input, stderr, temp_dir};
use std::path::Path;

const QUERY: &str = r#"{"id": 1, "player": 0, "dealer": 0, "trump": 1, "cards_dealt": 1, "hands": [[23], 1, 1], "bids": [null, null, null], "sims": 2, "dets": 1}"#;

/// Every command, small and fast, with the input it reads; `{dir}` is a scratch directory.
fn commands(dir: &Path) -> Vec<(Vec<String>, &'static str)> {
    let weights = format!(
        "{}/tests/vectors/net.safetensors",
        env!("CARGO_MANIFEST_DIR")
    );
    let vectors = format!("{}/tests/vectors", env!("CARGO_MANIFEST_DIR"));
    let dir = dir.display();
    let tiny = "--players 3 --cards 2 --preset light --leaf-values mover --device cpu";
    let lines = [
        (
            format!("selfplay {tiny} --rounds 2 --workers 1 --out {dir}/shards"),
            "",
        ),
        (
            format!("arena --a {weights} --b {weights} {tiny} --deals 2 --threads 1"),
            "",
        ),
        (
            format!("analyze --device cpu --threads 1 --weights {weights}"),
            QUERY,
        ),
        (format!("verify --vectors {vectors}"), ""),
        (format!("info --weights {weights}"), ""),
        (
            format!("init-weights --seed 1 --out {dir}/w.safetensors"),
            "",
        ),
        (
            "bench --device cpu --batch 8 --seconds 0.05".to_string(),
            "",
        ),
        (
            "bench --device cpu --sweep --batches 8 --in-flight 1 --seconds 0.05".to_string(),
            "",
        ),
        (
            "bench --device cpu --search --rounds 1 --sims 2 --dets 1 --threads 1".to_string(),
            "",
        ),
    ];
    lines
        .into_iter()
        .map(|(line, input)| (line.split(' ').map(String::from).collect(), input))
        .collect()
}

fn with(args: &[String], extra: &[&str]) -> Vec<String> {
    let mut all = args.to_vec();
    all.extend(extra.iter().map(|s| s.to_string()));
    all
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

#[test]
fn quiet_leaves_stderr_empty_and_the_result_on_stdout() {
    let dir = temp_dir("output-quiet");
    std::fs::create_dir_all(&dir).unwrap();
    for (args, input) in commands(&dir) {
        let out = engine_with_input(&strs(&with(&args, &["--quiet"])), input);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out), "", "{args:?} wrote to stderr with --quiet");
        assert!(!out.stdout.is_empty(), "{args:?} printed no result");
        // Without --quiet the notes (device, weights) go to stderr, never to stdout.
        let _ = std::fs::remove_dir_all(dir.join("shards"));
        let loud = engine_with_input(&strs(&args), input);
        assert!(loud.status.success(), "{args:?}: {}", stderr(&loud));
        let stdout = String::from_utf8_lossy(&loud.stdout);
        assert!(
            !stdout.contains("device:") && !stdout.contains("note:"),
            "{args:?}: {stdout}"
        );
        let _ = std::fs::remove_dir_all(dir.join("shards"));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `--json`: one JSON object on stdout. `analyze` speaks JSON lines whatever its flags.
#[test]
fn json_is_one_object_on_stdout() {
    let dir = temp_dir("output-json");
    std::fs::create_dir_all(&dir).unwrap();
    for (args, input) in commands(&dir) {
        let json = args[0] != "analyze";
        let args = if json { with(&args, &["--json"]) } else { args };
        let out = engine_with_input(&strs(&args), input);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        let stdout = String::from_utf8(out.stdout).unwrap();
        let values: Vec<serde_json::Value> = serde_json::Deserializer::from_str(&stdout)
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {stdout}"));
        assert_eq!(values.len(), 1, "{args:?}: {stdout}");
        assert!(values[0].is_object(), "{args:?}: {stdout}");
        let _ = std::fs::remove_dir_all(dir.join("shards"));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_log_file_keeps_the_command_notes_results_and_errors_stamped() {
    let dir = temp_dir("output-log");
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("engine.log");
    let log_arg = log.to_str().unwrap();
    let (args, _) = &commands(&dir)[0]; // selfplay
    let out = engine_with_input(&strs(&with(args, &["--quiet", "--log-file", log_arg])), "");
    assert!(out.status.success(), "{}", stderr(&out));
    let summary = String::from_utf8(out.stdout).unwrap();
    // A second command appends, and an error is logged too.
    let missing = dir.join("missing.safetensors");
    let failed = engine_with_input(
        &[
            "info",
            "--weights",
            missing.to_str().unwrap(),
            "--log-file",
            log_arg,
        ],
        "",
    );
    assert_eq!(failed.status.code(), Some(1));

    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    for line in &lines {
        let (stamp, _) = line.split_once(' ').unwrap();
        // 2026-12-02T18:44:52Z
        assert!(
            stamp.len() == 20 && stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T',
            "{line}"
        );
    }
    let has = |needle: &str| lines.iter().any(|l| l.contains(needle));
    assert!(
        lines[0].contains("$ ") && lines[0].contains("selfplay"),
        "{text}"
    );
    assert!(has("device: cpu"), "{text}");
    assert!(has(summary.trim()), "{text}");
    assert!(has("$ ") && has(" info --weights"), "{text}");
    assert!(has("error: ") && has("missing.safetensors"), "{text}");

    let unwritable = engine_with_input(
        &[
            "--log-file",
            dir.join("no/such/dir.log").to_str().unwrap(),
            "info",
            "--no-such-flag",
        ],
        "",
    );
    assert_eq!(
        unwritable.status.code(),
        Some(2),
        "a usage error comes before the log file"
    );
    let unwritable = engine_with_input(
        &[
            "info",
            "--weights",
            "x",
            "--log-file",
            dir.join("no/such.log").to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(unwritable.status.code(), Some(1));
    assert!(
        stderr(&unwritable).contains("cannot open the log file"),
        "{}",
        stderr(&unwritable)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
