//! Search settings through the command line: `--config`, `--set` and flags, their precedence,
//! their errors, and what a run records of them.

mod common;

use common::{engine, engine_with_input, selfplay_with, shard_files, temp_dir, usage_error};
use engine::selfplay::read_shard;
use engine::settings::{Settings, TEMPLATE};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Stdio};

/// `--print-settings` of `engine ARGS`, read back.
fn printed(args: &[&str]) -> Settings {
    let out = engine(args);
    assert!(out.status.success(), "{args:?}: {}", common::stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    toml::from_str(&text).unwrap_or_else(|e| panic!("{args:?} printed {text:?}: {e}"))
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn flags_and_set_override_the_file_which_overrides_the_defaults() {
    let dir = temp_dir("settings-precedence");
    let file = write(
        &dir,
        "run.toml",
        "[search]\npreset = \"heavy\"\nsims = 40\nc_puct = 2.5\n\n[selfplay]\ndirichlet_alpha = 0.5\n",
    );
    let args = [
        "--config",
        &file,
        "--set",
        "search.c_puct=3",
        "--set",
        "selfplay.temperature=[[0, 1.0], [4, 0.0]]",
        "--dets",
        "2",
        "--print-settings",
    ];
    let selfplay = printed(&[&["selfplay", "--dirichlet-epsilon", "0"], &args[..]].concat());
    let config = selfplay.self_play_search_config();
    // dets from the flag, sims from the file, c_puct from --set, the preset's worlds replaced.
    assert_eq!(
        (config.worlds, config.sims_per_world, config.c_puct),
        (2, 40, 3.0)
    );
    assert_eq!(
        config.root_noise, None,
        "--dirichlet-epsilon 0 turns the noise off"
    );
    assert_eq!(selfplay.selfplay.dirichlet_alpha, 0.5);
    assert_eq!(selfplay.selfplay.temperature.at(4), 0.0);
    let layout = printed(&[
        "selfplay",
        "--workers",
        "3",
        "--games-per-worker",
        "5",
        "--print-settings",
    ]);
    assert_eq!((layout.workers(), layout.games_per_worker()), (3, 5));

    // Arena and analyze read the same layers.
    for command in ["arena", "analyze"] {
        let extra: &[&str] = match command {
            "arena" => &["--a", "unused", "--b", "unused"],
            _ => &[],
        };
        let settings = printed(&[&[command], extra, &args[..]].concat());
        let search = settings.search_config();
        assert_eq!(
            (search.worlds, search.sims_per_world, search.c_puct),
            (2, 40, 3.0)
        );
    }

    // No file, no flags: the defaults, which the documented template also gives.
    let defaults = printed(&["selfplay", "--print-settings"]);
    assert_eq!(defaults, Settings::default());
    let template = write(&dir, "template.toml", TEMPLATE);
    assert_eq!(
        printed(&["selfplay", "--config", &template, "--print-settings"]),
        Settings::default()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_settings_are_usage_errors_that_name_the_cause() {
    let dir = temp_dir("settings-errors");
    let unknown = write(&dir, "unknown.toml", "[search]\ncpuct = 2\n");
    let missing = dir.join("missing.toml");
    let missing = missing.to_str().unwrap();
    let cases: [(&[&str], &str); 7] = [
        (
            &["--sims", "4", "--set", "search.sims=5"],
            "search.sims is given twice: by --set search.sims=5 and by --sims 4",
        ),
        (
            &["--set", "search.cpuct=1"],
            "--set search.cpuct=1: unknown field `cpuct`",
        ),
        (
            &["--set", "search.c_puct=-1"],
            "search.c_puct must be finite and ≥ 0, not -1",
        ),
        (&["--set", "c_puct"], "expected KEY=VALUE"),
        (
            &["--config", &unknown],
            "unknown.toml: TOML parse error at line 2",
        ),
        (&["--config", missing], "cannot read the settings file"),
        (
            &["--set", "selfplay.temperature=[[2, 1.0]]"],
            "the first step must start at move 0",
        ),
    ];
    for (args, expected) in cases {
        for command in ["selfplay", "analyze"] {
            let out = engine(&[&[command, "--print-settings"], args].concat());
            usage_error(&out, &(command, args), expected);
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A run records the settings it searched with in every shard, as JSON that `--config` reads
/// back: the same settings, and the same shards.
#[test]
fn shards_record_the_settings_and_they_replay_the_run() {
    let dir = temp_dir("settings-shards");
    let file = write(
        &dir,
        "run.toml",
        "[search]\nc_puct = 2\nfpu = { absolute = -0.5 }\n",
    );
    let first = dir.join("first");
    let flags = [
        "--config",
        &file,
        "--set",
        "selfplay.temperature=[[0, 1.0], [3, 0.25]]",
        "--seed",
        "5",
    ];
    let status = selfplay_with(&first, 2, &flags).status().unwrap();
    assert!(status.success());
    let shards = shard_files(&first);
    let metadata = read_shard(&shards[0]).unwrap().metadata;
    let recorded = &metadata["settings"];
    let settings: Value = serde_json::from_str(recorded).unwrap();
    assert_eq!(settings["search"]["c_puct"], json!(2.0));
    assert_eq!(settings["search"]["fpu"], json!({ "absolute": -0.5 }));
    // selfplay_with's flags: the light preset, the mover's row per leaf.
    assert_eq!(
        (&settings["search"]["dets"], &settings["search"]["sims"]),
        (&json!(2), &json!(20))
    );
    assert_eq!(settings["search"]["leaf_values"], json!("mover"));
    assert_eq!(
        settings["selfplay"]["temperature"],
        json!([[0, 1.0], [3, 0.25]])
    );

    // The record, as a settings file, replays the run: its shards are the same bytes.
    let replay_settings = write(&dir, "recorded.json", recorded);
    let second = dir.join("second");
    let mut replay = Command::new(env!("CARGO_BIN_EXE_engine"));
    replay
        .args([
            "selfplay",
            "--quiet",
            "--device",
            "cpu",
            "--players",
            "3",
            "--cards",
            "2",
        ])
        .args([
            "--workers",
            "1",
            "--games-per-worker",
            "4",
            "--shard-size",
            "12",
        ])
        .args(["--rounds", "2", "--seed", "5", "--config", &replay_settings])
        .arg("--out")
        .arg(&second)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    assert!(replay.status().unwrap().success());
    let replayed = shard_files(&second);
    assert_eq!(shards.len(), replayed.len());
    for (a, b) in shards.iter().zip(&replayed) {
        let (a, b) = (read_shard(a).unwrap(), read_shard(b).unwrap());
        assert_eq!(a.examples, b.examples);
        assert_eq!(a.metadata["settings"], b.metadata["settings"]);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The server's settings are a query's defaults; a query's own options win.
#[test]
fn analyze_searches_with_its_settings_unless_the_query_says_otherwise() {
    let query = |id: u32, extra: Value| {
        let mut q = json!({
            "id": id, "player": 1, "dealer": 0, "trump": 1, "cards_dealt": 3,
            "hands": [3, [0, 14, 28], 3, 3], "bids": [null, null, null, null],
        });
        q.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        q.to_string()
    };
    let input = format!(
        "{}\n{}\n",
        query(1, json!({})),
        query(2, json!({"sims": 5}))
    );
    let args = ["analyze", "--device", "cpu", "--threads", "1"];
    let settings = ["--set", "search.sims=7", "--dets", "2"];
    let out = engine_with_input(&[&args[..], &settings].concat(), &input);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let mut stats: Vec<(u64, u64, u64)> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let a: Value = serde_json::from_str(l).unwrap();
            let s = &a["stats"];
            let n = |v: &Value| v.as_u64().unwrap();
            (n(&a["id"]), n(&s["worlds"]), n(&s["sims_per_world"]))
        })
        .collect();
    stats.sort();
    assert_eq!(stats, [(1, 2, 7), (2, 2, 5)]);
}
