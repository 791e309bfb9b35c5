//! The sweep's grid parsing, recommendation and self-play mapping, on synthetic timing tables:
//! no test here times anything.

use super::*;
use crate::selfplay::SelfPlayConfig;

/// A synthetic result: `evals_per_s` at this point, the other figures derived.
fn point(batch: usize, in_flight: usize, threads: Option<usize>, evals_per_s: f64) -> BenchResult {
    BenchResult {
        backend: "cpu",
        batch,
        in_flight,
        batches: 10,
        threads,
        seconds: 1.0,
        evals_per_s,
        us_per_batch: 1e6 * batch as f64 / evals_per_s,
        latency_us: 1e6 * batch as f64 / evals_per_s,
    }
}

#[test]
fn lists_parse_sorted_and_bad_ones_are_refused_naming_the_value() {
    assert_eq!(parse_list("64,256,1024", 65_536), Ok(vec![64, 256, 1024]));
    assert_eq!(
        parse_list(" 1024, 64 ,256", 65_536),
        Ok(vec![64, 256, 1024])
    );
    assert_eq!(parse_list("8", 64), Ok(vec![8]));
    assert_eq!(parse_list("", 64), Err(GridError::Empty));
    assert_eq!(parse_list(" ", 64), Err(GridError::Empty));
    assert_eq!(
        parse_list("64,,256", 65_536),
        Err(GridError::NotANumber(String::new()))
    );
    assert_eq!(
        parse_list("64;256", 65_536),
        Err(GridError::NotANumber("64;256".into()))
    );
    assert_eq!(
        parse_list("-1", 64),
        Err(GridError::NotANumber("-1".into()))
    );
    assert_eq!(
        parse_list("2,0", 64),
        Err(GridError::OutOfRange { value: 0, max: 64 })
    );
    assert_eq!(
        parse_list("65", 64),
        Err(GridError::OutOfRange { value: 65, max: 64 })
    );
    assert_eq!(parse_list("4,2,4", 64), Err(GridError::Duplicate(4)));
    let many: Vec<String> = (1..=MAX_VALUES + 1).map(|v| v.to_string()).collect();
    assert_eq!(
        parse_list(&many.join(","), 1000),
        Err(GridError::TooManyValues(MAX_VALUES + 1))
    );
    // The messages name the value and the range, as clap's own do.
    let message = parse_list("0", 64).unwrap_err().to_string();
    assert!(message.contains("0 is not in 1..=64"), "{message}");
}

#[test]
fn grids_take_the_devices_defaults_and_list_points_threads_first() {
    let cpu = Grid::new(false, None, None, None).unwrap();
    assert_eq!(
        (cpu.batches.as_slice(), cpu.in_flight.as_slice()),
        (&CPU_BATCHES[..], &CPU_IN_FLIGHT[..])
    );
    let gpu = Grid::new(true, None, Some(vec![3]), None).unwrap();
    assert_eq!(
        (gpu.batches.as_slice(), gpu.in_flight.as_slice()),
        (&GPU_BATCHES[..], &[3][..])
    );
    assert_eq!(gpu.max_batch(), 4096);
    let grid = Grid::new(false, Some(vec![8, 16]), Some(vec![1, 2]), Some(vec![1, 2])).unwrap();
    assert_eq!(grid.len(), 8);
    let points = grid.points();
    assert_eq!(points.len(), 8);
    assert_eq!(
        points[..3],
        [
            Point {
                batch: 8,
                in_flight: 1,
                threads: Some(1)
            },
            Point {
                batch: 8,
                in_flight: 2,
                threads: Some(1)
            },
            Point {
                batch: 16,
                in_flight: 1,
                threads: Some(1)
            },
        ]
    );
    assert_eq!(points[4].threads, Some(2));
    assert!(Grid::new(false, None, None, None)
        .unwrap()
        .points()
        .iter()
        .all(|p| p.threads.is_none()));
}

#[test]
fn grids_of_too_many_points_or_an_empty_list_are_refused() {
    let values: Vec<usize> = (1..=MAX_VALUES).collect();
    // 32 × 32 = 1024 points.
    assert_eq!(
        Grid::new(false, Some(values.clone()), Some(values.clone()), None),
        Err(GridError::TooManyPoints(MAX_VALUES * MAX_VALUES))
    );
    assert_eq!(
        Grid::new(
            false,
            Some(values[..16].to_vec()),
            Some(values[..16].to_vec()),
            None
        )
        .map(|g| g.len()),
        Ok(MAX_POINTS)
    );
    assert_eq!(
        Grid::new(false, Some(vec![]), None, None),
        Err(GridError::Empty)
    );
    assert_eq!(
        Grid::new(false, None, None, Some(vec![])),
        Err(GridError::Empty)
    );
}

#[test]
fn the_recommendation_is_the_smallest_point_within_the_tolerance_of_the_best() {
    // Throughput saturates at 1024 × 2; 256 × 4 (1,024 rows in flight) is within 5%.
    let table = [
        point(64, 1, None, 100.0),
        point(256, 1, None, 400.0),
        point(256, 4, None, 960.0),
        point(1024, 1, None, 900.0),
        point(1024, 2, None, 1000.0),
        point(1024, 4, None, 990.0),
    ];
    let pick = recommend(&table, TOLERANCE).unwrap();
    assert_eq!((pick.batch, pick.in_flight), (256, 4));
    assert_eq!(pick.best_evals_per_s, 1000.0);
    assert!((pick.share_of_best - 0.96).abs() < 1e-12);
    // A tighter tolerance takes the best itself; a looser one, smaller points.
    let strict = recommend(&table, 0.0).unwrap();
    assert_eq!((strict.batch, strict.in_flight), (1024, 2));
    let loose = recommend(&table, 0.65).unwrap();
    assert_eq!((loose.batch, loose.in_flight), (256, 1));
    // Exactly at the edge counts.
    let edge = [point(64, 1, None, 95.0), point(128, 1, None, 100.0)];
    assert_eq!(recommend(&edge, 0.05).unwrap().batch, 64);
}

#[test]
fn equal_rows_in_flight_prefer_fewer_threads_then_fewer_batches_in_flight() {
    let table = [
        point(256, 4, Some(2), 1000.0),
        point(1024, 1, Some(2), 1000.0),
        point(1024, 1, Some(1), 980.0),
        point(512, 2, Some(1), 990.0),
    ];
    let pick = recommend(&table, TOLERANCE).unwrap();
    assert_eq!(
        (pick.batch, pick.in_flight, pick.threads),
        (1024, 1, Some(1))
    );
    // Same size, same threads: the faster of two identical points (repeated in a grid).
    let twins = [point(64, 1, None, 10.0), point(64, 1, None, 11.0)];
    assert_eq!(recommend(&twins, TOLERANCE).unwrap().evals_per_s, 11.0);
}

#[test]
fn an_empty_or_unusable_table_has_no_recommendation() {
    assert_eq!(recommend(&[], TOLERANCE), None);
    let broken = [point(64, 1, None, f64::NAN), point(64, 2, None, 0.0)];
    assert_eq!(recommend(&broken, TOLERANCE), None);
    let one_good = [point(64, 1, None, f64::INFINITY), point(64, 2, None, 5.0)];
    assert_eq!(recommend(&one_good, TOLERANCE).unwrap().in_flight, 2);
}

fn pick(batch: usize, in_flight: usize, threads: Option<usize>) -> Pick {
    Pick {
        batch,
        in_flight,
        threads,
        evals_per_s: 1.0,
        best_evals_per_s: 1.0,
        share_of_best: 1.0,
        tolerance: TOLERANCE,
    }
}

/// The mapping agrees with self-play's own sizing of a worker's batch slot.
fn slot_rows(flags: &SelfPlayFlags, search: SearchConfig) -> usize {
    SelfPlayConfig {
        players: flags.players,
        cards: 5,
        start_cards: None,
        units: 1,
        search,
        workers: flags.workers,
        games_per_worker: flags.games_per_worker,
        seed: 0,
        cache_entries: 1,
        temperature: Default::default(),
    }
    .rows_per_batch()
}

#[test]
fn batch_rows_map_to_the_fewest_games_per_worker_that_fill_them() {
    // Medium, every seat valued: 3 worlds × 4 leaves × 4 seats = 48 rows per gather;
    // 256 rows need 6 games per group (288 rows), 12 games per worker.
    let medium = SearchConfig::medium();
    let flags = selfplay_flags(&pick(256, 1, Some(2)), 4, &medium, 2);
    assert_eq!(
        (
            flags.rows_per_gather,
            flags.games_per_worker,
            flags.rows_per_batch
        ),
        (48, 12, 288)
    );
    assert_eq!(slot_rows(&flags, medium), flags.rows_per_batch);
    assert!(!flags.games_capped);
    assert_eq!(flags.rayon_threads, Some(2));
    assert_eq!(
        flags.args().join(" "),
        "--players 4 --dets 3 --sims 30 --leaf-values all --games-per-worker 12 --workers 2"
    );
    // The mover's row only: 12 rows per gather; 22 games per group fill 264 ≥ 256 rows.
    let mover = SearchConfig {
        leaf_values: LeafValues::Mover,
        ..SearchConfig::medium()
    };
    let flags = selfplay_flags(&pick(256, 1, None), 4, &mover, 2);
    assert_eq!(
        (
            flags.rows_per_gather,
            flags.games_per_worker,
            flags.rows_per_batch
        ),
        (12, 44, 264)
    );
    assert_eq!(slot_rows(&flags, mover), 264);
    assert_eq!(flags.leaf_values, "mover");
    // A batch one gather fits: 2 games (a group of one).
    let heavy8 = SearchConfig::heavy(); // 5 × 4 × 8 = 160 rows per gather
    let flags = selfplay_flags(&pick(64, 1, None), 8, &heavy8, 2);
    assert_eq!((flags.games_per_worker, flags.rows_per_batch), (2, 160));
}

#[test]
fn games_per_worker_are_capped_and_workers_cover_the_batches_in_flight() {
    let light_mover = SearchConfig {
        leaf_values: LeafValues::Mover,
        ..SearchConfig::light()
    }; // 2 × 4 × 1 = 8 rows per gather: 65,536 rows would need 16,384 games
    let flags = selfplay_flags(&pick(65_536, 1, None), 4, &light_mover, 2);
    assert_eq!(flags.games_per_worker, MAX_GAMES_PER_WORKER);
    assert_eq!(flags.rows_per_batch, 2048 * 8);
    assert!(flags.games_capped);
    // Two ring slots per worker: 16 in flight need 8 workers; never fewer than the cores.
    let medium = SearchConfig::medium();
    assert_eq!(
        selfplay_flags(&pick(1024, 16, None), 4, &medium, 2).workers,
        8
    );
    assert_eq!(
        selfplay_flags(&pick(1024, 3, None), 4, &medium, 1).workers,
        2
    );
    assert_eq!(
        selfplay_flags(&pick(1024, 1, None), 4, &medium, 16).workers,
        16
    );
    assert_eq!(
        selfplay_flags(&pick(1024, 1, None), 4, &medium, 100_000).workers,
        MAX_WORKERS
    );
}
