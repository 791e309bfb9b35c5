//! A self-play run stopped by a device fault (injected with the hidden
//! `--fault-after-batches`) writes every round it finished, exits non-zero naming the failed
//! batch once, and the same command run again continues it: the rows on disk are then exactly
//! those of an uninterrupted run, none lost, none twice.

mod common;

use common::{selfplay_with, shard_files, stderr, TempDir};
use engine::selfplay::{read_shard, Example};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

const ROUNDS: u64 = 10;

/// The run of seed 5 (unless `args` names another) into `dir`, its summary on stdout.
fn run(dir: &Path, args: &[&str]) -> Output {
    let seed: &[&str] = if args.contains(&"--seed") {
        &[]
    } else {
        &["--seed", "5"]
    };
    selfplay_with(dir, ROUNDS, args)
        .arg("--json")
        .args(seed)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap()
}

/// Every row on disk, grouped by unit in file order.
fn rows_by_unit(dir: &Path) -> BTreeMap<u64, Vec<Example>> {
    let mut units: BTreeMap<u64, Vec<Example>> = BTreeMap::new();
    for file in shard_files(dir) {
        for example in read_shard(&file).unwrap().examples {
            units.entry(example.unit).or_default().push(example);
        }
    }
    units
}

#[test]
fn a_run_stopped_by_a_device_fault_continues_on_rerun_with_no_row_lost_or_doubled() {
    let (clean, faulted) = (TempDir::new("resume-clean"), TempDir::new("resume-faulted"));
    let out = run(&clean, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let expected = rows_by_unit(&clean);
    assert_eq!(expected.len() as u64, ROUNDS);

    // One game at a time: units finish one after another, so some are done before the fault.
    let one_game = ["--games-per-worker", "1", "--fault-after-batches", "40"];
    let out = run(&faulted, &one_game);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.matches("injected fault").count(), 1, "{err}");
    assert!(err.contains("failed on batch 40"), "{err}");
    assert!(err.contains("rerun the same command"), "{err}");
    let before = rows_by_unit(&faulted);
    assert!(
        !before.is_empty() && (before.len() as u64) < ROUNDS,
        "the fault came after {} of {ROUNDS} rounds",
        before.len()
    );
    for (unit, rows) in &before {
        assert_eq!(rows, &expected[unit], "unit {unit} before the rerun");
    }

    let out = run(&faulted, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["resumed_units"], before.len() as u64);
    assert_eq!(summary["units"], ROUNDS - before.len() as u64);
    assert_eq!(rows_by_unit(&faulted), expected);

    // Once complete, the same command has nothing left to play and writes nothing.
    let files = shard_files(&faulted);
    let out = run(&faulted, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (summary["units"].as_u64(), summary["shards"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(shard_files(&faulted), files);

    // Another seed is another run: it does not continue this one.
    let other = run(&faulted, &["--seed", "6"]);
    assert!(other.status.success(), "{}", stderr(&other));
    let summary: serde_json::Value = serde_json::from_slice(&other.stdout).unwrap();
    assert_eq!(summary["units"], ROUNDS);
}
