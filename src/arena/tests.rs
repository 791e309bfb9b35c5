use super::*;
use crate::game::{CardSet, Round};
use crate::net::cpu::CpuBackend;
use crate::net::weights::{PreparedWeights, Weights};
use crate::search::{choose_action, run_blocking, EvalCache, LeafValues, Search, SearchConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;

#[test]
fn each_net_sits_in_every_seat_equally_often() {
    for players in 3..=8u8 {
        for s in 0..players {
            let a_turns = (0..players)
                .filter(|&r| seats_of_a(players, r)(Seat(s)))
                .count();
            assert_eq!(
                a_turns,
                usize::from(players / 2),
                "players {players} seat {s}"
            );
        }
    }
}

/// 2 worlds × 8 simulations, the mover's row per leaf: fast enough for unit tests.
fn tiny_search() -> Searching {
    Searching {
        config: SearchConfig {
            leaf_values: LeafValues::Mover,
            ..SearchConfig::with_budget(2, 8)
        },
        cache_entries: 1 << 12,
    }
}

/// 3 players × 2 cards between two `tiny_search` sides: every deal still has searched
/// decisions for both sides.
fn tiny(deals: u64, threads: usize, deals_per_thread: usize) -> ArenaConfig {
    ArenaConfig {
        players: 3,
        cards: 2,
        deals,
        sides: [Side::Search(tiny_search()); 2],
        threads,
        deals_per_thread: Some(deals_per_thread),
        seed: 7,
        sprt: None,
    }
}

fn net(seed: u64) -> Arc<PreparedWeights> {
    Arc::new(PreparedWeights::new(&Weights::init(seed)))
}

/// A CPU backend on each side's net, `None` for a side that plays at random.
fn cpu_pair(
    config: &ArenaConfig,
    nets: [&Arc<PreparedWeights>; 2],
) -> [Option<Box<dyn Backend>>; 2] {
    let rows = config.rows_per_batch();
    let backend = |i: usize| -> Option<Box<dyn Backend>> {
        config.sides[i].search_config()?;
        Some(Box::new(CpuBackend::new(nets[i].clone(), rows)))
    };
    [backend(0), backend(1)]
}

fn run_quietly(config: &ArenaConfig, backends: [Option<Box<dyn Backend>>; 2]) -> ArenaResult {
    run(config, backends, &AtomicBool::new(false), |_| {}).unwrap()
}

/// The arena played directly: each rotation of a deal played move by move from the stream as
/// it was after dealing, each search run to the end with direct forward calls on the deciding
/// side's net (a fresh search each time, the oracle's over the true deal alone).
fn reference_deal(config: &ArenaConfig, nets: &mut [CpuBackend; 2], index: u64) -> DealScore {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    rng.set_stream(index);
    let dealt = Round::deal_random(config.players, config.cards, &mut rng).unwrap();
    let mut score = DealScore::default();
    for r in 0..config.players {
        let is_a = seats_of_a(config.players, r);
        let mut round = dealt;
        let mut rng = rng.clone();
        while !round.is_over() {
            let legal = round.legal_mask();
            if legal.count_ones() == 1 {
                round.apply(legal.trailing_zeros() as u8);
                continue;
            }
            let side = usize::from(!is_a(round.to_act()));
            let mut search = match config.sides[side] {
                Side::Random => {
                    round.apply(side::random_action(legal, &mut rng));
                    continue;
                }
                Side::Search(s) => Search::new(&round, s.config, rng.random()),
                Side::Oracle(s) => Search::with_worlds(&[round], s.config, rng.random()),
            }
            .unwrap();
            // A fresh cache per search: what a cache holds never changes a search.
            let net = &mut nets[side];
            let result = run_blocking(&mut search, net, &mut EvalCache::new(1 << 10)).unwrap();
            score.beliefs[side].add_search(search.worlds(), &round, round.to_act());
            round.apply(choose_action(&result.visits, 0.0, &mut rng));
        }
        for s in round.seats() {
            let points = u64::from(round.score(s));
            if is_a(s) {
                score.a_points += points;
                score.a_rounds += 1;
            } else {
                score.b_points += points;
                score.b_rounds += 1;
            }
        }
    }
    score
}

/// The same statistics, field by field, but the wall time.
fn same(x: &ArenaResult, y: &ArenaResult) {
    let strip = |r: &ArenaResult| {
        let mut v = serde_json::to_value(r).unwrap();
        v.as_object_mut().unwrap().remove("wall_s");
        v
    };
    assert_eq!(strip(x), strip(y));
}

/// The ring-based arena plays every deal exactly as the direct one did, whatever the threads
/// and the deals each plays at once, between any two kinds of side: two nets, two settings on
/// one net, the oracle, random play.
#[test]
fn results_match_direct_play_whatever_the_threads() {
    let (a, b) = (net(1), net(2));
    let more = Searching {
        config: SearchConfig {
            worlds: 3,
            sims_per_world: 30,
            c_puct: 0.5,
            ..tiny_search().config
        },
        ..tiny_search()
    };
    let cases = [
        ("two nets", [Side::Search(tiny_search()); 2], [&a, &b]),
        (
            "two settings, one net",
            [Side::Search(more), Side::Search(tiny_search())],
            [&a, &a],
        ),
        (
            "oracle against search",
            [Side::Oracle(tiny_search()), Side::Search(tiny_search())],
            [&a, &a],
        ),
        (
            "search against random",
            [Side::Search(more), Side::Random],
            [&a, &a],
        ),
        (
            "random against oracle",
            [Side::Random, Side::Oracle(more)],
            [&b, &b],
        ),
    ];
    let deals = 5;
    for (what, sides, nets) in cases {
        let config = ArenaConfig {
            sides,
            ..tiny(deals, 1, 1)
        };
        let mut direct = nets.map(|n| CpuBackend::new(n.clone(), 64));
        let mut tally = Tally::default();
        for i in 0..deals {
            tally.add(&reference_deal(&config, &mut direct, i));
        }
        let want = ArenaResult::new(&tally, config.players, None, false);
        // The oracle's one world is the deal; searched worlds are partly right; random play
        // has none.
        for (side, accuracy) in sides
            .iter()
            .zip([want.belief_accuracy_a, want.belief_accuracy_b])
        {
            match side {
                Side::Oracle(_) => assert_eq!(accuracy, Some(1.0), "{what}"),
                Side::Search(_) => assert!(
                    accuracy.is_some_and(|a| a > 0.0 && a < 1.0),
                    "{what}: {accuracy:?}"
                ),
                Side::Random => assert_eq!(accuracy, None, "{what}"),
            }
        }
        assert!(
            tally.wins + tally.losses > 0,
            "{what}: distinct sides never differed: {want:?}"
        );
        for (threads, per_thread) in [(1, 1), (1, 4), (3, 2), (2, 7)] {
            let config = ArenaConfig {
                sides,
                ..tiny(deals, threads, per_thread)
            };
            let got = run_quietly(&config, cpu_pair(&config, nets));
            same(&got, &want);
        }
    }
}

/// Two identical sides play every rotation alike (the same cards, the same random stream):
/// every deal is a draw, and an SPRT of 0 against 200 Elo accepts H0 after exactly 5 draws
/// (its LLR then crosses ln(0.05/0.95)), whatever the threads. Two searches, two oracles or
/// two random players alike.
#[test]
fn identical_sides_draw_and_the_sprt_stops_at_the_same_deal() {
    let w = net(3);
    for side in [
        Side::Search(tiny_search()),
        Side::Oracle(tiny_search()),
        Side::Random,
    ] {
        for (threads, per_thread) in [(1, 2), (3, 3)] {
            let config = ArenaConfig {
                sides: [side; 2],
                sprt: Some(Sprt::new(0.0, 200.0, 0.05, 0.05).unwrap()),
                ..tiny(40, threads, per_thread)
            };
            let r = run_quietly(&config, cpu_pair(&config, [&w, &w]));
            let what = side.name();
            assert_eq!(
                (r.deals, r.draws, r.wins, r.losses),
                (5, 5, 0, 0),
                "{what}: {r:?}"
            );
            assert_eq!(r.difference, 0.0);
            assert_eq!((r.ci95_low, r.ci95_high), (Some(0.0), Some(0.0)));
            assert_eq!(r.mean_score_a, r.mean_score_b);
            assert_eq!(r.rounds_played, 15);
            let sprt = r.sprt.unwrap();
            assert_eq!(sprt.decision, Decision::H0);
            assert!(sprt.llr <= sprt.lower_bound, "{sprt:?}");
            assert!(!r.interrupted);
        }
    }
}

/// A random side has no backend, so it cannot send a row: given one, or a searching side
/// given none, the run is refused before any deal.
#[test]
fn only_searching_sides_take_a_backend() {
    let w = net(3);
    let config = ArenaConfig {
        sides: [Side::Search(tiny_search()), Side::Random],
        ..tiny(3, 1, 1)
    };
    let rows = config.rows_per_batch();
    let cpu = || -> Option<Box<dyn Backend>> { Some(Box::new(CpuBackend::new(w.clone(), rows))) };
    let e = run(&config, [cpu(), cpu()], &AtomicBool::new(false), |_| {}).unwrap_err();
    assert!(e.to_string().contains("side B plays at random"), "{e}");
    let e = run(&config, [None, None], &AtomicBool::new(false), |_| {}).unwrap_err();
    assert!(e.to_string().contains("side A searches"), "{e}");
    // Random against random needs no net at all.
    let config = ArenaConfig {
        sides: [Side::Random; 2],
        ..config
    };
    assert_eq!(run_quietly(&config, [None, None]).deals, 3);
}

/// A world is scored card by card against the true hands of the other seats; the searcher's
/// own hand is not counted.
#[test]
fn belief_accuracy_counts_the_other_seats_cards_dealt_right() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let truth = Round::deal_random(4, 5, &mut rng).unwrap();
    let me = truth.to_act();
    let hands: Vec<CardSet> = truth.seats().map(|s| truth.hand(s)).collect();
    // Two other seats' hands swapped: only the third other seat is right.
    let others: Vec<usize> = truth
        .seats()
        .filter(|&s| s != me)
        .map(|s| s.index())
        .collect();
    let mut swapped = hands.clone();
    swapped.swap(others[0], others[1]);
    let swapped = Round::new(truth.config(), &swapped).unwrap();
    let mut accuracy = BeliefAccuracy::default();
    accuracy.add_search([&truth, &swapped], &truth, me);
    assert_eq!(
        accuracy,
        BeliefAccuracy {
            cards: 30,
            right: 15 + 5
        }
    );
    assert_eq!(accuracy.share(), Some(20.0 / 30.0));
    assert_eq!(BeliefAccuracy::default().share(), None);
}

/// A random move is legal, and every legal move comes up.
#[test]
fn random_moves_are_legal_and_vary() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for legal in [1u64 << 51, 0b1011_0000, (1 << 52) - 1] {
        let mut seen = 0u64;
        for _ in 0..2000 {
            let action = side::random_action(legal, &mut rng);
            assert!(legal >> action & 1 == 1, "{action} not in {legal:#b}");
            seen |= 1 << action;
        }
        assert_eq!(seen, legal);
    }
}

#[test]
fn a_stopped_arena_reports_the_deals_finished() {
    let w = net(3);
    let config = tiny(3, 1, 1);
    let r = run(
        &config,
        cpu_pair(&config, [&w, &w]),
        &AtomicBool::new(true),
        |_| {},
    )
    .unwrap();
    assert_eq!(r.deals, 0);
    assert!(r.interrupted);
    assert_eq!((r.ci95_low, r.score, r.elo), (None, None, None));
}

#[test]
fn progress_counts_the_deals() {
    let w = net(3);
    let config = tiny(4, 2, 1);
    let mut last = 0;
    run(
        &config,
        cpu_pair(&config, [&w, &w]),
        &AtomicBool::new(false),
        |p| {
            assert!(p.tally.deals >= last);
            last = p.tally.deals;
            assert!(p.sprt.is_none());
        },
    )
    .unwrap();
    assert_eq!(last, 4, "the last report counts every deal");
}

#[test]
fn backends_too_small_for_a_batch_are_refused() {
    let w = net(3);
    let config = tiny(3, 1, 8);
    let backends: [Option<Box<dyn Backend>>; 2] = [
        Some(Box::new(CpuBackend::new(
            w.clone(),
            config.rows_per_batch(),
        ))),
        Some(Box::new(CpuBackend::new(w.clone(), 8))),
    ];
    let e = run(&config, backends, &AtomicBool::new(false), |_| {}).unwrap_err();
    assert!(e.to_string().contains("side B"), "{e}");
}

/// Batches of about a thousand rows, but never more deals at once than a thread's share.
#[test]
fn deals_per_thread_fill_batches_without_taking_others_work() {
    let medium = Side::Search(Searching {
        config: SearchConfig::medium(),
        cache_entries: 0,
    });
    let config = |deals, threads| ArenaConfig {
        players: 4,
        sides: [medium, Side::Random],
        deals_per_thread: None,
        ..tiny(deals, threads, 1)
    };
    // Medium at 4 players: 3 worlds × 4 leaves × 4 seats = 48 rows a gather.
    assert_eq!(config(100_000, 2).deals_per_thread(), 4 * 1024 / 48);
    assert_eq!(
        config(100_000, 2).rows_per_batch(),
        (4 * 1024 / 48usize).div_ceil(2) * 48
    );
    assert_eq!(config(100, 16).deals_per_thread(), 7);
    assert_eq!(config(1, 16).deals_per_thread(), 1);
    assert_eq!(tiny(100, 2, 3).deals_per_thread(), 3);
}

#[test]
fn bad_settings_are_refused() {
    for config in [
        ArenaConfig {
            players: 2,
            ..tiny(1, 1, 1)
        },
        tiny(0, 1, 1),
        tiny(1, 0, 1),
        tiny(1, 1, 0),
        tiny(1, 1, MAX_DEALS_PER_THREAD + 1),
        ArenaConfig {
            sides: [
                Side::Random,
                Side::Oracle(Searching {
                    config: SearchConfig::with_budget(1, 0),
                    cache_entries: 0,
                }),
            ],
            ..tiny(1, 1, 1)
        },
    ] {
        assert!(config.validate().is_err(), "{config:?}");
    }
}

fn finished(index: u64, a: u64, b: u64) -> Finished {
    Finished {
        index,
        score: DealScore {
            a_points: a,
            a_rounds: 1,
            b_points: b,
            b_rounds: 1,
            ..DealScore::default()
        },
    }
}

/// Deals arriving out of order are folded in deal order: the same tally as in order.
#[test]
fn the_collector_folds_in_deal_order() {
    let scores = [(10, 0), (0, 13), (11, 11), (12, 0), (0, 10)];
    let mut in_order = Tally::default();
    for &(a, b) in &scores {
        in_order.add(&DealScore {
            a_points: a,
            a_rounds: 1,
            b_points: b,
            b_rounds: 1,
            ..DealScore::default()
        });
    }
    let mut collector = Collector::new(None);
    for i in [3, 1, 4, 0, 2] {
        let (a, b) = scores[i as usize];
        assert!(!collector.add(finished(i, a, b)));
    }
    assert_eq!(collector.next, 5);
    assert_eq!(collector.finish(), in_order);
}

/// The SPRT decides on a prefix of deals: deals after it, finished earlier or later, are left
/// out; after an interrupt, deals after a gap count too.
#[test]
fn the_collector_stops_on_the_prefix_the_sprt_decided() {
    let test = Sprt::new(0.0, 200.0, 0.05, 0.05).unwrap();
    let mut collector = Collector::new(Some(test));
    // Deal 9 and 5 finish early; deals 0..5 are draws, and the fifth decides.
    assert!(!collector.add(finished(9, 20, 0)));
    assert!(!collector.add(finished(5, 20, 0)));
    for i in [1, 2, 3, 4] {
        assert!(!collector.add(finished(i, 10, 10)));
    }
    assert!(collector.add(finished(0, 10, 10)));
    assert!(collector.add(finished(6, 20, 0)));
    let tally = collector.finish();
    assert_eq!((tally.deals, tally.draws), (5, 5));

    let mut interrupted = Collector::new(None);
    for i in [0, 2, 3] {
        interrupted.add(finished(i, 10, 0));
    }
    let tally = interrupted.finish();
    assert_eq!((tally.deals, tally.wins), (3, 3));
}

/// JSON has no infinity: a clean sweep's Elo and interval serialize as null.
#[test]
fn infinite_elos_are_json_nulls() {
    let mut tally = Tally::default();
    for _ in 0..3 {
        tally.add(&DealScore {
            a_points: 10,
            a_rounds: 1,
            b_points: 0,
            b_rounds: 1,
            ..DealScore::default()
        });
    }
    let r = ArenaResult::new(&tally, 3, None, false);
    assert_eq!(r.elo, Some(f64::INFINITY));
    let json = serde_json::to_value(&r).unwrap();
    for field in ["elo", "elo_low", "elo_high"] {
        assert!(json[field].is_null(), "{field}: {json}");
    }
    assert_eq!(json["score"], 1.0);
    assert_eq!(json["wins"], 3);
    assert!(json.get("sprt").is_none());
}
