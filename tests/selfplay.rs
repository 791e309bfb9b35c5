//! Self-play end to end: shards load with the `safetensors` crate and hold consistent
//! examples, runs are reproducible from their seed whatever the number of workers (each row
//! naming its unit), and an interrupted run keeps only complete rounds.

use engine::device::Opened;
use engine::game::round_sequence;
use engine::net::cpu::{CpuBackend, CpuKernel};
use engine::net::weights::{PreparedWeights, Weights};
use engine::search::{Beliefs, LeafValues, SearchConfig};
use engine::selfplay::{
    read_shard, run, run_on, OutDir, SelfPlayConfig, ShardMetadata, ShardWriter, Summary, UnitDone,
    UnitSet,
};
use safetensors::{Dtype, SafeTensors};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

const PLAYERS: u8 = 4;
const CARDS: u8 = 3;

fn net() -> Arc<PreparedWeights> {
    static NET: OnceLock<Arc<PreparedWeights>> = OnceLock::new();
    NET.get_or_init(|| Arc::new(PreparedWeights::new(&Weights::init(0))))
        .clone()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("engine-selfplay-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Settings of `rounds` 4p×3c rounds, 4 games per worker.
fn config(seed: u64, rounds: u64, workers: usize) -> SelfPlayConfig {
    SelfPlayConfig {
        players: PLAYERS,
        cards: CARDS,
        start_cards: None,
        units: rounds,
        search: SearchConfig {
            leaf_values: LeafValues::Mover,
            ..SearchConfig::light()
        }
        .self_play(),
        workers,
        games_per_worker: 4,
        seed,
        cache_entries: 1 << 12,
        temperature: Default::default(),
    }
}

/// Plays `rounds` 4p×3c rounds into `dir`; `stop_after` sets the stop flag once that many
/// rounds are done. Returns the summary and the shard files' bytes in order.
fn play(
    dir: &Path,
    seed: u64,
    rounds: u64,
    workers: usize,
    stop_after: Option<u64>,
) -> (Summary, Vec<Vec<u8>>) {
    play_config(dir, config(seed, rounds, workers), stop_after)
}

/// Plays `config` into `dir` (shards of 40 rows) on the fastest CPU kernel; see [`play`].
fn play_config(
    dir: &Path,
    config: SelfPlayConfig,
    stop_after: Option<u64>,
) -> (Summary, Vec<Vec<u8>>) {
    play_config_on(dir, config, stop_after, CpuKernel::detect())
}

/// [`play_config`] on a given CPU kernel.
fn play_config_on(
    dir: &Path,
    config: SelfPlayConfig,
    stop_after: Option<u64>,
    kernel: CpuKernel,
) -> (Summary, Vec<Vec<u8>>) {
    let meta = ShardMetadata::new(&config, "test-weights", "cpu");
    let mut writer = ShardWriter::new(OutDir::claim(dir).unwrap(), 40, None, meta);
    let backend =
        Box::new(CpuBackend::with_kernel(net(), config.rows_per_batch(), kernel).unwrap());
    let stop = AtomicBool::new(false);
    let mut done = 0;
    let summary = run(
        config,
        &UnitSet::default(),
        backend,
        &stop,
        &mut |unit: UnitDone| {
            done += 1;
            if stop_after == Some(done) {
                stop.store(true, Ordering::SeqCst);
            }
            writer.add_round(unit.index, unit.examples)
        },
        |_| {},
    )
    .unwrap();
    writer.finish().unwrap();
    (
        summary,
        shard_files(dir)
            .iter()
            .map(|f| std::fs::read(f).unwrap())
            .collect(),
    )
}

/// The shard files in `dir`, in name order (the lock file left out).
fn shard_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    files.sort();
    files
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

#[test]
fn shards_load_and_hold_consistent_examples() {
    let dir = temp_dir("consistent");
    let (summary, shards) = play(&dir, 3, 6, 2, None);
    let per_round = usize::from(PLAYERS) * usize::from(CARDS);
    assert_eq!(summary.rounds, 6);
    assert_eq!(
        summary.examples as usize,
        6 * per_round,
        "P bids + P·(C−1) searched plays per round"
    );
    let made: Vec<f32> = (0..=CARDS)
        .map(|b| (2.0 * (10.0 + f64::from(b)) / 23.0 - 1.0) as f32)
        .collect();
    let mut rows = 0;
    let mut units = vec![];
    for bytes in &shards {
        let (_, header) = SafeTensors::read_metadata(bytes).unwrap();
        let meta = header.metadata().as_ref().unwrap();
        let st = SafeTensors::deserialize(bytes).unwrap();
        let n: usize = meta["rows"].parse().unwrap();
        assert_eq!(meta["format_version"], "2");
        assert_eq!(meta["seed"], "3");
        let mut keys: Vec<&str> = ShardMetadata::KEYS.to_vec();
        keys.extend(ShardMetadata::FILE_KEYS);
        keys.sort_unstable();
        let mut written: Vec<&str> = meta.keys().map(String::as_str).collect();
        written.sort_unstable();
        assert_eq!(written, keys, "the documented metadata keys");
        assert_eq!(st.len(), 5, "{:?}", st.names());
        let state = st.tensor("state").unwrap();
        let policy = st.tensor("policy").unwrap();
        let value = st.tensor("value").unwrap();
        let mask = st.tensor("mask").unwrap();
        let unit = st.tensor("unit").unwrap();
        assert_eq!((state.dtype(), state.shape()), (Dtype::F32, &[n, 256][..]));
        assert_eq!((policy.dtype(), policy.shape()), (Dtype::F32, &[n, 52][..]));
        assert_eq!((value.dtype(), value.shape()), (Dtype::F32, &[n][..]));
        assert_eq!((mask.dtype(), mask.shape()), (Dtype::U8, &[n, 52][..]));
        assert_eq!((unit.dtype(), unit.shape()), (Dtype::I64, &[n][..]));
        units.extend(
            unit.data()
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().unwrap())),
        );
        let policy = f32s(policy.data());
        for (i, (p, m)) in policy.chunks(52).zip(mask.data().chunks(52)).enumerate() {
            let sum: f32 = p.iter().sum();
            assert!((sum - 1.0).abs() < 1e-5, "row {i}: policy sums to {sum}");
            assert!(m.contains(&1), "row {i}: no legal action");
            assert!(
                p.iter().zip(m).all(|(&x, &l)| l == 1 || x == 0.0),
                "row {i}: policy on an illegal action"
            );
        }
        for v in f32s(value.data()) {
            assert!(
                v == -1.0 || made.contains(&v),
                "value {v} is not 2·score/23 − 1 of a possible score"
            );
        }
        rows += n;
    }
    assert_eq!(rows, 6 * per_round);
    let expected: Vec<i64> = (0..6)
        .flat_map(|u| std::iter::repeat_n(u, per_round))
        .collect();
    assert_eq!(units, expected, "each round's rows, in round order");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn same_seed_one_worker_gives_identical_shards() {
    let (dir_a, dir_b, dir_c) = (temp_dir("seed-a"), temp_dir("seed-b"), temp_dir("seed-c"));
    let (_, a) = play(&dir_a, 11, 5, 1, None);
    let (_, b) = play(&dir_b, 11, 5, 1, None);
    let (_, c) = play(&dir_c, 12, 5, 1, None);
    assert!(!a.is_empty());
    assert!(a == b, "same seed and settings gave different shards");
    assert!(a != c, "another seed played the same games");
    for d in [dir_a, dir_b, dir_c] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

/// The `unit` column of the shards in `dir`, read back with the strict reader in file order.
fn units_in(dir: &Path) -> Vec<u64> {
    shard_files(dir)
        .iter()
        .flat_map(|f| read_shard(f).unwrap().examples)
        .map(|e| e.unit)
        .collect()
}

/// Plays `config` with 1, 2 and 3 workers of `config.games_per_worker` games each: the shard
/// files must be byte-identical, and their `unit` column must be each unit's `per_unit` rows
/// in unit order. The workers' evaluation caches are on: which units share a worker's cache
/// must not matter. On every CPU kernel this machine runs (each against itself).
fn same_shards_for_any_worker_count(name: &str, config: SelfPlayConfig, per_unit: usize) {
    let expected: Vec<u64> = (0..config.units)
        .flat_map(|u| std::iter::repeat_n(u, per_unit))
        .collect();
    for kernel in CpuKernel::supported() {
        let mut first: Option<Vec<Vec<u8>>> = None;
        for workers in 1..=3 {
            let dir = temp_dir(&format!("{name}-{kernel}-workers-{workers}"));
            let config = SelfPlayConfig {
                workers,
                ..config.clone()
            };
            let (summary, shards) = play_config_on(&dir, config.clone(), None, kernel);
            assert_eq!(summary.units, config.units, "{kernel}, {workers} worker(s)");
            assert!(shards.len() >= 2, "a run of several shards");
            assert_eq!(
                units_in(&dir),
                expected,
                "{kernel}, {workers} worker(s): unit column"
            );
            match &first {
                None => first = Some(shards),
                Some(one) => assert!(
                    *one == shards,
                    "{kernel}: {workers} workers wrote other shards than 1 worker (same seed)"
                ),
            }
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }
}

/// Unit `i` draws its deal and searches from its own stream (seed, `i`) and shards are written
/// in unit order, so splitting the rounds differently between workers (3 games each: 1 worker
/// plays 3 at a time, 3 workers 9) changes no byte.
#[test]
fn same_seed_gives_identical_shards_for_any_worker_count() {
    let config = SelfPlayConfig {
        games_per_worker: 3,
        ..config(21, 8, 1)
    };
    let per_round = usize::from(PLAYERS) * usize::from(CARDS);
    same_shards_for_any_worker_count("rounds", config, per_round);
}

/// With policy beliefs too: their rows go through the workers' caches and batches like the
/// trees' rows, and the summary counts them.
#[test]
fn policy_beliefs_give_identical_shards_for_any_worker_count_and_count_their_rows() {
    let base = config(23, 6, 1);
    let config = SelfPlayConfig {
        games_per_worker: 3,
        search: SearchConfig {
            beliefs: Beliefs::Policy,
            ..base.search
        },
        ..base
    };
    let per_round = usize::from(PLAYERS) * usize::from(CARDS);
    same_shards_for_any_worker_count("policy-beliefs", config.clone(), per_round);
    let dir = temp_dir("policy-beliefs-summary");
    let (summary, _) = play_config(&dir, config, None);
    assert!(summary.belief_rows > 0 && summary.belief_rows < summary.nn_rows);
    let cap = u64::from(SearchConfig::default().policy_beliefs.max_rows);
    assert!(summary.belief_rows <= summary.decisions * cap);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The same in full-game mode, where a unit is a whole game (3 players from 3 cards).
#[test]
fn same_seed_gives_identical_full_game_shards_for_any_worker_count() {
    let players = 3;
    let config = SelfPlayConfig {
        players,
        start_cards: Some(3),
        units: 3,
        games_per_worker: 2,
        ..config(22, 0, 1)
    };
    // Every round gives one example per card dealt (P bids and P·(C−1) searched plays).
    let per_game = usize::from(players)
        * round_sequence(players, 3)
            .unwrap()
            .iter()
            .map(|&c| usize::from(c))
            .sum::<usize>();
    same_shards_for_any_worker_count("games", config, per_game);
}

/// Two CPU backends (each in its own pool of one thread) stand for two devices: workers 0
/// and 2 feed the first, 1 the second; the shards are those of one backend, and each device's
/// rows add up to the total.
#[test]
fn two_devices_give_the_shards_of_one() {
    let config = SelfPlayConfig {
        games_per_worker: 3,
        ..config(24, 8, 3)
    };
    let (dir_one, dir_two) = (temp_dir("devices-one"), temp_dir("devices-two"));
    let (_, one) = play_config(&dir_one, config.clone(), None);
    let meta = ShardMetadata::new(&config, "test-weights", "cpu");
    let mut writer = ShardWriter::new(OutDir::claim(&dir_two).unwrap(), 40, None, meta);
    let devices = (0..2)
        .map(|_| {
            let backend =
                CpuBackend::with_threads(net(), config.rows_per_batch(), CpuKernel::detect(), 1)
                    .unwrap();
            Opened {
                description: backend.describe(),
                backend: Box::new(backend),
                gpu: None,
                fallback: None,
            }
        })
        .collect();
    let stop = AtomicBool::new(false);
    let summary = run_on(
        config,
        &UnitSet::default(),
        devices,
        &stop,
        &mut |unit: UnitDone| writer.add_round(unit.index, unit.examples),
        |_| {},
    )
    .unwrap();
    writer.finish().unwrap();
    let two: Vec<Vec<u8>> = shard_files(&dir_two)
        .iter()
        .map(|f| std::fs::read(f).unwrap())
        .collect();
    assert!(
        one.len() >= 2 && one == two,
        "two devices wrote other shards"
    );
    assert_eq!(summary.devices.len(), 2);
    assert!(summary
        .devices
        .iter()
        .all(|d| d.rows > 0 && d.device == "cpu"));
    let rows: u64 = summary.devices.iter().map(|d| d.rows).sum();
    assert_eq!(rows, summary.nn_rows);
    for d in [dir_one, dir_two] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

/// Where positions recur between units (hundreds of 3 players × 1 card rounds), workers'
/// caches answer rows other units asked for; the shards still match a one-worker run.
#[test]
fn recurring_positions_in_shared_caches_change_nothing() {
    let config = SelfPlayConfig {
        players: 3,
        cards: 1,
        units: 300,
        games_per_worker: 5,
        cache_entries: 1 << 16,
        temperature: Default::default(),
        ..config(5, 0, 1)
    };
    same_shards_for_any_worker_count("recurring", config, 3);
}

#[test]
fn interrupted_run_writes_only_complete_rounds() {
    let dir = temp_dir("interrupt");
    let (summary, shards) = play(&dir, 5, 1000, 1, Some(3));
    assert!(summary.interrupted);
    assert!(
        summary.rounds >= 3 && summary.rounds < 1000,
        "{} rounds",
        summary.rounds
    );
    let rows: usize = shards
        .iter()
        .map(|b| {
            SafeTensors::deserialize(b)
                .unwrap()
                .tensor("value")
                .unwrap()
                .shape()[0]
        })
        .sum();
    assert_eq!(rows as u64, summary.examples);
    assert_eq!(
        rows % (usize::from(PLAYERS) * usize::from(CARDS)),
        0,
        "whole rounds only"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn slow_writer_throttles_without_losing_rounds() {
    let config = SelfPlayConfig {
        players: 3,
        cards: 1,
        start_cards: None,
        units: 60,
        search: SearchConfig {
            leaf_values: LeafValues::Mover,
            ..SearchConfig::light()
        },
        workers: 1,
        games_per_worker: 2,
        seed: 1,
        cache_entries: 0,
        temperature: Default::default(),
    };
    let backend = Box::new(CpuBackend::new(net(), config.rows_per_batch()));
    let mut indices = vec![];
    // Queue bound: 4 × 1 worker × 2 games = 8 units, far fewer than 60, so workers must wait.
    let summary = run(
        config,
        &UnitSet::default(),
        backend,
        &AtomicBool::new(false),
        &mut |unit: UnitDone| {
            std::thread::sleep(std::time::Duration::from_millis(5));
            indices.push(unit.index);
            Ok(())
        },
        |_| {},
    )
    .unwrap();
    indices.sort();
    assert_eq!(indices, (0..60).collect::<Vec<u64>>());
    assert_eq!(summary.rounds, 60);
}
