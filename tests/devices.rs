//! Several devices in one run, on the CPU: `--device cpu,cpu` stands for two GPUs (two
//! backends, each in its own share of the cores, each with its own batch ring). The devices
//! share the work out and the results are those of one device: self-play's shards byte for
//! byte, analysis's answers and the arena's report.

mod common;

use common::{engine, engine_with_input, selfplay_with, shard_files, temp_dir, usage_error};
use serde_json::Value;
use std::process::Stdio;

/// Rounds of a run: enough for both workers to play many (each claims 4 at a time).
const ROUNDS: u64 = 40;

/// `engine selfplay --json` of [`ROUNDS`] small rounds with seed 7 on `device`, two workers,
/// into a fresh directory: its summary and its shard files' bytes.
fn selfplay_on(device: &str) -> (Value, Vec<Vec<u8>>) {
    let dir = temp_dir(&format!("devices-{}", device.replace([',', ':'], "-")));
    let args = [
        "--device",
        device,
        "--workers",
        "2",
        "--seed",
        "7",
        "--json",
    ];
    let out = selfplay_with(&dir, ROUNDS, &args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(out.status.success(), "{device}: {}", common::stderr(&out));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    let shards = shard_files(&dir)
        .iter()
        .map(|f| std::fs::read(f).unwrap())
        .collect();
    std::fs::remove_dir_all(&dir).unwrap();
    (summary, shards)
}

#[test]
fn two_cpu_devices_share_self_play_and_write_the_same_shards() {
    let (one, one_shards) = selfplay_on("cpu");
    let (two, two_shards) = selfplay_on("cpu,cpu");
    assert!(one_shards.len() >= 2, "a run of several shards");
    assert!(
        one_shards == two_shards,
        "cpu,cpu wrote other shards than cpu (same seed)"
    );
    for summary in [&one, &two] {
        assert_eq!(summary["units"], ROUNDS, "{summary}");
    }
    // One device: one entry, the totals.
    let devices = one["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 1, "{one}");
    assert_eq!(devices[0]["device"], "cpu");
    assert_eq!(devices[0]["rows"], one["nn_rows"]);
    // Two: each ran rows, and they sum to the totals.
    let devices = two["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 2, "{two}");
    let rows: Vec<u64> = devices
        .iter()
        .map(|d| d["rows"].as_u64().unwrap())
        .collect();
    assert!(rows.iter().all(|&r| r > 0), "a device did nothing: {two}");
    assert_eq!(rows.iter().sum::<u64>(), two["nn_rows"].as_u64().unwrap());
    for d in devices {
        assert_eq!(d["device"], "cpu");
        assert!(d["batches"].as_u64().unwrap() > 0, "{d}");
        assert!(d["rows_per_s"].as_f64().unwrap() > 0.0, "{d}");
        let avg = d["avg_batch"].as_f64().unwrap();
        let expected = d["rows"].as_f64().unwrap() / d["batches"].as_f64().unwrap();
        assert!((avg - expected).abs() < 1e-9, "{d}");
        assert!(d.get("gpu_util_mean_percent").is_none(), "{d}");
    }
}

/// A device per worker at least: a list longer than the workers is refused, naming the flag.
#[test]
fn more_devices_than_workers_is_refused() {
    let dir = temp_dir("devices-too-few-workers");
    let message = common::refusal(selfplay_with(
        &dir,
        1,
        &["--device", "cpu,cpu,cpu", "--workers", "2"],
    ));
    assert!(
        message.contains("3 devices need at least as many workers (--workers)"),
        "{message}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The same queries answered on one device and on two (the answers' times aside).
#[test]
fn analysis_answers_the_same_on_two_devices() {
    let queries = [
        r#"{"id": 1, "player": 1, "dealer": 0, "trump": 1, "cards_dealt": 2, "hands": [2, [23, 5], 2], "bids": [null, null, null], "sims": 40}"#,
        r#"{"id": 2, "player": 1, "dealer": 0, "trump": 2, "cards_dealt": 2, "hands": [2, [40, 7], 2], "bids": [null, null, null], "sims": 40}"#,
        r#"{"id": 3, "player": 1, "dealer": 0, "trump": 3, "cards_dealt": 2, "hands": [2, [12, 51], 2], "bids": [null, null, null], "sims": 40}"#,
    ]
    .join("\n");
    let answers = |device: &str| {
        let args = ["analyze", "--quiet", "--device", device, "--threads", "2"];
        let out = engine_with_input(&args, &queries);
        assert!(out.status.success(), "{device}: {}", common::stderr(&out));
        let mut answers: Vec<Value> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        for a in &mut answers {
            assert!(a.get("error").is_none(), "{device}: {a}");
            a["stats"].as_object_mut().unwrap().remove("time_ms");
        }
        answers.sort_by_key(|a| a["id"].as_u64());
        answers
    };
    let one = answers("cpu");
    assert_eq!(one.len(), 3);
    assert_eq!(one, answers("cpu,cpu"));
}

/// The arena's report (its wall time aside) does not depend on the devices.
#[test]
fn the_arena_reports_the_same_on_two_devices() {
    let weights = format!(
        "{}/tests/vectors/net.safetensors",
        env!("CARGO_MANIFEST_DIR")
    );
    let report = |device: &str| {
        let args = [
            "arena",
            "--quiet",
            "--json",
            "--a",
            &weights,
            "--b-set",
            "search.sims=5",
            "--players",
            "3",
            "--cards",
            "2",
            "--preset",
            "light",
            "--deals",
            "6",
            "--threads",
            "2",
            "--device",
            device,
        ];
        let out = engine(&args);
        assert!(out.status.success(), "{device}: {}", common::stderr(&out));
        let mut report: Value = serde_json::from_slice(&out.stdout).unwrap();
        report.as_object_mut().unwrap().remove("wall_s");
        report
    };
    assert_eq!(report("cpu"), report("cpu,cpu"));
}

/// The commands that time or serve one device refuse a list before any work, naming the flag;
/// a malformed list is a usage error saying what is wrong.
#[test]
fn one_device_commands_refuse_a_list_and_bad_lists_are_usage_errors() {
    for args in [
        &["bench", "--device", "cpu,cpu"][..],
        &["bench", "--device", "cpu,cpu", "--in-flight", "2"],
        &["serve", "--device", "cpu,cpu"],
    ] {
        usage_error(&engine(args), &args, "--device cpu,cpu: engine");
    }
    let selfplay = |device: &str| engine(&["selfplay", "--device", device, "--rounds", "1"]);
    usage_error(&selfplay("cpu,cuda:0"), &"mixed", "mixes the CPU and GPUs");
    usage_error(&selfplay("auto,auto"), &"auto", "auto picks one device");
}
