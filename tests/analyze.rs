//! `engine analyze` through its library entry point [`serve`], with in-memory input and output:
//! recorded positions round-trip, answers are deterministic, endgames find the card that makes
//! the bid, hidden hands are never read, bad lines get one error each, and queries in flight
//! come back under their own ids.

use engine::analyze::{serve, AnalyzeConfig, ServeSummary};
use engine::net::cpu::{CpuBackend, CpuKernel};
use engine::net::weights::{PreparedWeights, Weights};
use engine::net::{Backend, BatchIn, BatchOut, NetError, UniformBackend};
use engine::search::SearchConfig;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Cursor;
use std::sync::{Arc, OnceLock};

/// `games.json` as plain JSON, so recorded states can be sent as they are.
fn games() -> &'static Value {
    static GAMES: OnceLock<Value> = OnceLock::new();
    GAMES.get_or_init(|| {
        let path = engine::vectors::dir().join("games.json");
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_slice(&bytes).expect("games.json parses")
    })
}

fn uniform() -> Box<dyn Backend> {
    Box::new(UniformBackend {
        max_batch: default_rows(),
    })
}

/// The CPU network with fresh seed-0 weights, on the fastest kernel.
fn cpu_net() -> Box<dyn Backend> {
    cpu_net_on(CpuKernel::detect())
}

/// The CPU network with fresh seed-0 weights, on `kernel`.
fn cpu_net_on(kernel: CpuKernel) -> Box<dyn Backend> {
    static NET: OnceLock<Arc<PreparedWeights>> = OnceLock::new();
    let net = NET.get_or_init(|| Arc::new(PreparedWeights::new(&Weights::init(0))));
    Box::new(
        CpuBackend::with_kernel(net.clone(), default_rows(), kernel).expect("supported kernel"),
    )
}

/// Serves raw lines; returns the answers in output order and the summary.
fn serve_bytes(
    lines: &[Vec<u8>],
    backend: Box<dyn Backend>,
    threads: usize,
) -> (Vec<Value>, ServeSummary) {
    let mut input = Vec::new();
    for line in lines {
        input.extend_from_slice(line);
        input.push(b'\n');
    }
    let mut output = Vec::new();
    let config = AnalyzeConfig {
        threads,
        search: SearchConfig::default(),
    };
    let summary = serve(Cursor::new(input), &mut output, backend, &config).expect("serve");
    let answers = String::from_utf8(output)
        .expect("UTF-8 output")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("answer {l:?}: {e}")))
        .collect();
    (answers, summary)
}

fn serve_queries(queries: &[Value], backend: Box<dyn Backend>, threads: usize) -> Vec<Value> {
    let lines: Vec<Vec<u8>> = queries.iter().map(|q| q.to_string().into_bytes()).collect();
    let (answers, summary) = serve_bytes(&lines, backend, threads);
    assert_eq!(answers.len(), queries.len(), "one answer per query");
    assert_eq!(summary.answers, queries.len() as u64);
    answers
}

fn serve_one(query: Value, backend: Box<dyn Backend>) -> Value {
    serve_queries(&[query], backend, 1).remove(0)
}

/// Answers keyed by id (as its JSON text).
fn by_id(answers: Vec<Value>) -> HashMap<String, Value> {
    answers
        .into_iter()
        .map(|a| (a["id"].to_string(), a))
        .collect()
}

/// The answer without the one field that varies between runs.
fn without_time(mut answer: Value) -> Value {
    if let Some(stats) = answer.get_mut("stats").and_then(Value::as_object_mut) {
        stats.remove("time_ms");
    }
    answer
}

fn assert_answer(answer: &Value) {
    assert!(answer.get("error").is_none(), "unexpected error: {answer}");
}

fn error_of(answer: &Value) -> (&str, &str) {
    let e = &answer["error"];
    assert!(e.is_object(), "expected an error, got {answer}");
    (
        e["code"].as_str().expect("code"),
        e["field"].as_str().unwrap_or("<none>"),
    )
}

/// A recorded decision as a query: its state, `player`, an id and `extra` options.
fn query_of(decision: &Value, id: Value, extra: Value) -> Value {
    let mut q = decision["state"].clone();
    q["id"] = id;
    q["player"] = decision["player"].clone();
    for (k, v) in extra.as_object().expect("options object") {
        q[k] = v.clone();
    }
    q
}

/// Every `step`-th recorded decision, over all rounds.
fn decisions(step: usize) -> Vec<&'static Value> {
    games()["rounds"]
        .as_array()
        .expect("rounds")
        .iter()
        .flat_map(|r| r["decisions"].as_array().expect("decisions"))
        .step_by(step)
        .collect()
}

/// Replaces every hand but the acting seat's with its size.
fn hide_others(mut query: Value) -> Value {
    let player = query["player"].as_u64().unwrap() as usize;
    for (s, hand) in query["hands"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .enumerate()
    {
        if s != player {
            *hand = json!(hand.as_array().unwrap().len());
        }
    }
    query
}

#[test]
fn recorded_positions_round_trip() {
    let spread = decisions(29);
    assert!(spread.len() > 200, "{} decisions", spread.len());
    let (dets, sims) = (2, 6);
    let mut queries = vec![];
    for (i, d) in spread.iter().enumerate() {
        let opts = json!({"dets": dets, "sims": sims, "seed": i});
        queries.push(query_of(d, json!(i), opts.clone()));
        queries.push(hide_others(query_of(d, json!(format!("hidden {i}")), opts)));
        queries.push(query_of(
            d,
            json!(format!("perfect {i}")),
            json!({"sims": sims, "perfect_information": true}),
        ));
    }
    let answers = by_id(serve_queries(&queries, uniform(), 2));
    for (i, d) in spread.iter().enumerate() {
        let recorded = &d["legal_actions"];
        let plain = &answers[&json!(i).to_string()];
        let hidden = &answers[&json!(format!("hidden {i}")).to_string()];
        let perfect = &answers[&json!(format!("perfect {i}")).to_string()];
        for (answer, simulations) in [(plain, dets * sims), (hidden, dets * sims), (perfect, sims)]
        {
            assert_answer(answer);
            assert_eq!(&answer["legal_actions"], recorded, "decision {i}: {answer}");
            assert_eq!(answer["player"], d["player"]);
            assert_eq!(answer["phase"], d["phase"]);
            let moves = answer["moves"].as_array().unwrap();
            let actions: Vec<&Value> = moves.iter().map(|m| &m["action"]).collect();
            assert_eq!(
                actions,
                recorded.as_array().unwrap().iter().collect::<Vec<_>>()
            );
            let visits: u64 = moves.iter().map(|m| m["visits"].as_u64().unwrap()).sum();
            assert_eq!(visits, simulations, "decision {i}: {answer}");
            assert_eq!(answer["is_during_search"], false);
            assert!(answer.get("stopped").is_none(), "{answer}");
            check_pv(answer);
            assert_eq!(answer["stats"]["simulations"], simulations);
            let best = &answer["best_action"];
            let most = moves.iter().map(|m| m["visits"].as_u64().unwrap()).max();
            let best_move = moves.iter().find(|m| &m["action"] == best).unwrap();
            assert_eq!(best_move["visits"].as_u64(), most);
        }
        // Hand sizes instead of the hidden cards change nothing.
        let strip = |a: &Value| {
            let mut a = without_time(a.clone());
            a["id"] = Value::Null;
            a
        };
        assert_eq!(strip(plain), strip(hidden), "decision {i}");
    }
}

/// A few recorded positions from the middle of rounds, with their options.
fn sample_queries(extra: Value) -> Vec<Value> {
    decisions(173)
        .into_iter()
        .enumerate()
        .map(|(i, d)| query_of(d, json!(i), extra.clone()))
        .collect()
}

/// On every kernel this CPU runs: the batches a query's rows share with other queries' rows
/// never change its answer.
#[test]
fn same_seed_same_answer() {
    let queries = sample_queries(json!({"dets": 3, "sims": 12, "seed": 5}));
    for kernel in CpuKernel::supported() {
        // All at once on two workers, then one at a time: batches are composed differently.
        let together = by_id(serve_queries(&queries, cpu_net_on(kernel), 2));
        for q in &queries {
            let alone = serve_one(q.clone(), cpu_net_on(kernel));
            assert_answer(&alone);
            let id = q["id"].to_string();
            assert_eq!(
                without_time(alone),
                without_time(together[&id].clone()),
                "{kernel}: query {id}"
            );
        }
    }
    let together = by_id(serve_queries(&queries, cpu_net(), 2));
    // Another seed gives another search (at least somewhere).
    let reseeded: Vec<Value> = queries
        .iter()
        .map(|q| {
            let mut q = q.clone();
            q["seed"] = json!(6);
            q
        })
        .collect();
    let other = by_id(serve_queries(&reseeded, cpu_net(), 2));
    let differs = queries.iter().any(|q| {
        let id = q["id"].to_string();
        without_time(other[&id].clone())["moves"] != without_time(together[&id].clone())["moves"]
    });
    assert!(
        differs,
        "seed 6 searched exactly like seed 5 on every position"
    );
}

/// No trump, 2 cards each, seat 1 leads having bid 1 and the others hold only clubs above 2♣:
/// A♥ wins now (nobody can follow) and 2♣ then loses; leading 2♣ loses both tricks. Whatever
/// the others do, only A♥ makes the bid.
fn lead_the_ace() -> Value {
    json!({
        "id": "lead", "player": 1, "dealer": 0, "trump": null, "cards_dealt": 2,
        // seat 0: 10♣ J♣, seat 1: A♥ 2♣, seat 2: Q♣ K♣
        "hands": [[34, 35], [25, 26], [36, 37]],
        "bids": [0, 1, 0], "tricks_won": [0, 0, 0],
        "current_trick": {"leader": 1, "cards": []}, "previous_tricks": [],
        "sims": 400, "perfect_information": true
    })
}

/// Spades trump, 2 cards each, the dealer (seat 3) plays last to 7♥ 8♥ 6♥ holding 9♥ 5♥; the
/// others hold one spade each, so the last trick is theirs. 9♥ takes exactly one trick, 5♥
/// none: the dealer's bid decides the card.
fn follow_low_or_high(bid: u8) -> Value {
    json!({
        "id": format!("follow {bid}"), "player": 3, "dealer": 3, "trump": 0, "cards_dealt": 2,
        "hands": [[0], [1], [2], [16, 20]],
        "bids": [0, 0, 0, bid], "tricks_won": [0, 0, 0, 0],
        "current_trick": {"leader": 0, "cards": [[0, 18], [1, 19], [2, 17]]},
        "previous_tricks": [],
        "sims": 400, "perfect_information": true
    })
}

/// Every move's principal variation starts with the move, played by the acting seat, and its
/// visits never grow along the line (a child is reached only through its parent).
fn check_pv(answer: &Value) {
    for m in answer["moves"].as_array().expect("moves") {
        let pv = m["pv"].as_array().expect("pv");
        assert_eq!(pv[0]["action"], m["action"], "{answer}");
        assert_eq!(pv[0]["seat"], answer["player"], "{answer}");
        assert_eq!(pv[0].get("card"), m.get("card"), "{answer}");
        let visits: Vec<u64> = pv.iter().map(|s| s["visits"].as_u64().unwrap()).collect();
        let total = m["visits"].as_u64().unwrap();
        assert!(visits[0] <= total, "{answer}");
        assert_eq!(visits[0] == 0, total == 0, "{answer}");
        assert!(
            visits.windows(2).all(|w| w[0] >= w[1] && w[1] > 0),
            "{answer}"
        );
    }
}

#[test]
fn perfect_information_endgames_find_the_card_that_makes_the_bid() {
    for backend in [uniform as fn() -> Box<dyn Backend>, cpu_net] {
        for (query, best, worse) in [
            (lead_the_ace(), 25, 26),
            (follow_low_or_high(0), 16, 20),
            (follow_low_or_high(1), 20, 16),
        ] {
            let answer = serve_one(query.clone(), backend());
            assert_answer(&answer);
            assert_eq!(answer["best_action"], best, "{query}\n{answer}");
            let value = |a: u64| {
                let m = answer["moves"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|m| m["action"] == a)
                    .unwrap();
                m["value"].as_f64().unwrap()
            };
            assert!(value(best) > value(worse), "{answer}");
            assert_eq!(answer["stats"]["worlds"], 1);
        }
    }
}

/// Other seats' cards swapped with unseen ones (same sizes), some not even cards.
fn scramble_others(query: &Value, rng: &mut ChaCha8Rng) -> Value {
    let mut q = query.clone();
    let player = q["player"].as_u64().unwrap() as usize;
    for (s, hand) in q["hands"].as_array_mut().unwrap().iter_mut().enumerate() {
        if s == player {
            continue;
        }
        for card in hand.as_array_mut().unwrap() {
            *card = match rng.random_range(0..4) {
                0 => json!("not a card"),
                1 => json!(99),
                _ => json!(rng.random_range(0..52)),
            };
        }
    }
    q
}

#[test]
fn hidden_hands_are_never_read() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut queries = vec![];
    // Policy beliefs replay the other seats' past decisions, in sampled worlds only.
    let beliefs = ["uniform", "policy"];
    for (i, d) in decisions(97).into_iter().enumerate() {
        for b in beliefs {
            let q = query_of(
                d,
                json!([i, b, "real"]),
                json!({"dets": 2, "sims": 10, "seed": i, "beliefs": b}),
            );
            let mut scrambled = scramble_others(&q, &mut rng);
            scrambled["id"] = json!([i, b, "scrambled"]);
            let mut sizes = hide_others(q.clone());
            sizes["id"] = json!([i, b, "sizes"]);
            queries.extend([q, scrambled, sizes]);
        }
    }
    // On every kernel this CPU runs (the three versions of a position share batches with
    // different neighbours).
    for kernel in CpuKernel::supported() {
        let answers = by_id(serve_queries(&queries, cpu_net_on(kernel), 2));
        let strip = |i: usize, b: &str, kind: &str| {
            let mut a = without_time(answers[&json!([i, b, kind]).to_string()].clone());
            assert_answer(&a);
            a["id"] = Value::Null;
            a
        };
        let mut weighed = 0;
        for i in 0..queries.len() / 6 {
            for b in beliefs {
                let real = strip(i, b, "real");
                assert_eq!(real, strip(i, b, "scrambled"), "{kernel} {b}: position {i}");
                assert_eq!(real, strip(i, b, "sizes"), "{kernel} {b}: position {i}");
                weighed += usize::from(real["stats"]["belief_rows"].as_u64() > Some(0));
            }
        }
        assert!(
            weighed > 20,
            "{kernel}: only {weighed} positions weighed their worlds"
        );
    }
    // With perfect information the given cards are the deal: different cards, another search.
    let known = |hands: Value| {
        let mut q = follow_low_or_high(0);
        q["hands"] = hands;
        serve_one(q, cpu_net())
    };
    let real = known(json!([[0], [1], [2], [16, 20]]));
    // Low hearts instead of spades: 9♥ now wins both tricks, 5♥ the last one.
    let swapped = known(json!([[13], [14], [15], [16, 20]]));
    assert_answer(&real);
    assert_answer(&swapped);
    assert_ne!(without_time(real)["moves"], without_time(swapped)["moves"]);
}

/// A bidding position: 4 players, 3 cards, dealer 0, seat 1 to bid first.
fn bidding_query() -> Value {
    json!({
        "id": 1, "player": 1, "dealer": 0, "trump": 1, "cards_dealt": 3,
        "hands": [3, [0, 14, 28], 3, 3], "bids": [null, null, null, null],
        "dets": 2, "sims": 4
    })
}

/// Trick one in progress: 4 players, 3 cards, hearts trump; seats 1 and 2 have played.
fn playing_query() -> Value {
    json!({
        "id": 2, "player": 3, "dealer": 0, "trump": 1, "cards_dealt": 3,
        "hands": [3, 2, 2, [5, 6, 45]], "bids": [1, 0, 1, 2],
        "tricks_won": [0, 0, 0, 0],
        // seat 1 leads 3♠, seat 2 discards 2♣ (void in spades); seat 3 holds 7♠ 8♠ 8♦
        "current_trick": {"leader": 1, "cards": [[1, 1], [2, 26]]},
        "previous_tricks": [],
        "dets": 2, "sims": 4
    })
}

/// 4 × 13: seat 1 led 2♥ and everyone else discarded, so every other heart is seat 1's or
/// nowhere; seat 1 holds only 11 of the 12 left.
fn uncompletable_query() -> Value {
    let mut hand: Vec<u8> = (14..=24).collect();
    hand.push(26);
    json!({
        "id": 3, "player": 1, "dealer": 0, "trump": null, "cards_dealt": 13,
        "hands": [12, hand, 12, 12], "bids": [1, 1, 1, 1], "tricks_won": [0, 1, 0, 0],
        "previous_tricks": [{"leader": 1, "cards": [[1, 13], [2, 0], [3, 1], [0, 2]]}],
        "dets": 1, "sims": 2
    })
}

#[test]
fn bad_positions_name_the_field_and_the_problem() {
    let edit = |base: fn() -> Value, f: &dyn Fn(&mut Value)| {
        let mut q = base();
        f(&mut q);
        q
    };
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            edit(bidding_query, &|q| q["hands"][1][0] = json!(52)),
            "unknown_card",
            "hands[1][0]",
        ),
        (
            edit(bidding_query, &|q| q["hands"][1][2] = json!(0)),
            "duplicate_card",
            "hands[1][2]",
        ),
        (
            edit(playing_query, &|q| q["hands"][3][0] = json!(26)),
            "duplicate_card",
            "current_trick.cards[1][1]",
        ),
        (
            edit(bidding_query, &|q| q["hands"][2] = json!(2)),
            "wrong_hand_size",
            "hands[2]",
        ),
        (
            edit(playing_query, &|q| q["hands"][1] = json!(3)),
            "wrong_hand_size",
            "hands[1]",
        ),
        (
            edit(bidding_query, &|q| q["hands"][1] = json!(3)),
            "hidden_hand",
            "hands[1]",
        ),
        (
            edit(playing_query, &|q| q["perfect_information"] = json!(true)),
            "hidden_hand",
            "hands[0]",
        ),
        (
            edit(bidding_query, &|q| q["bids"] = json!([null, 1, null, null])),
            "not_to_act",
            "player",
        ),
        (
            edit(playing_query, &|q| q["bids"][2] = json!(4)),
            "illegal_bid",
            "bids[2]",
        ),
        // The dealer's hook: the others bid 0 + 1 + 2 = 3 of the 3 cards, so 0 is forbidden.
        (
            edit(playing_query, &|q| q["bids"][0] = json!(0)),
            "illegal_bid",
            "bids[0]",
        ),
        (
            edit(playing_query, &|q| q["bids"][2] = Value::Null),
            "illegal_bid",
            "bids[3]",
        ),
        (
            edit(bidding_query, &|q| q["bids"][2] = json!(1)),
            "illegal_bid",
            "bids[2]",
        ),
        (
            // Seat 3 plays 7♠ before seat 2.
            edit(playing_query, &|q| {
                q["current_trick"]["cards"][1] = json!([3, 5]);
                q["hands"] = json!([3, 2, 3, [6, 45]]);
            }),
            "illegal_play",
            "current_trick.cards[1]",
        ),
        (
            // Seat 2 discards 2♣ on 3♠ in trick one and plays 2♠ in trick two.
            edit(playing_query, &|q| {
                q["hands"] = json!([1, 1, 1, [6, 45]]);
                q["tricks_won"] = json!([1, 0, 0, 0]);
                q["previous_tricks"] =
                    json!([{"leader": 1, "cards": [[1, 1], [2, 26], [3, 5], [0, 7]], "winner": 0}]);
                q["current_trick"] = json!({"leader": 0, "cards": [[0, 3], [1, 4], [2, 0]]});
            }),
            "illegal_play",
            "previous_tricks[0].cards[1]",
        ),
        (
            // Seat 2 discards 2♣ on a spade lead but is shown holding a spade.
            edit(playing_query, &|q| {
                q["perfect_information"] = json!(true);
                q["hands"] = json!([[7, 8, 9], [10, 11], [12, 27], [5, 6, 45]]);
            }),
            "impossible_void",
            "hands[2]",
        ),
        (
            edit(playing_query, &|q| {
                q["current_trick"]["cards"] = json!([[1, 1], [2, 26], [3, 5], [0, 7]]);
            }),
            "invalid_value",
            "current_trick.cards",
        ),
        (uncompletable_query(), "impossible_void", "hands"),
        (
            edit(playing_query, &|q| q["current_trick"]["leader"] = json!(2)),
            "inconsistent_history",
            "current_trick.leader",
        ),
        (
            edit(playing_query, &|q| q["tricks_won"][3] = json!(1)),
            "inconsistent_history",
            "tricks_won[3]",
        ),
        (
            edit(playing_query, &|q| {
                q["player"] = json!(0);
                q["hands"] = json!([[7, 8, 9], 2, 2, 3]);
            }),
            "not_to_act",
            "player",
        ),
        (
            edit(playing_query, &|q| q["player"] = json!(4)),
            "invalid_value",
            "player",
        ),
        (
            edit(bidding_query, &|q| q["dets"] = json!("3")),
            "wrong_type",
            "dets",
        ),
        (
            edit(bidding_query, &|q| q["sims"] = json!(0)),
            "invalid_value",
            "sims",
        ),
        (
            edit(bidding_query, &|q| q["sims"] = json!(1e12)),
            "invalid_value",
            "sims",
        ),
        (
            edit(bidding_query, &|q| q["dets"] = json!(65)),
            "invalid_value",
            "dets",
        ),
        (
            edit(bidding_query, &|q| q["leaf_values"] = json!("some")),
            "invalid_value",
            "leaf_values",
        ),
        (
            edit(bidding_query, &|q| q["simz"] = json!(3)),
            "unknown_field",
            "simz",
        ),
        (
            edit(bidding_query, &|q| {
                q.as_object_mut().unwrap().remove("bids").map(drop).unwrap()
            }),
            "missing_field",
            "bids",
        ),
        (
            edit(bidding_query, &|q| q["hands"] = json!([3, [0, 14, 28]])),
            "invalid_value",
            "hands",
        ),
        (
            edit(bidding_query, &|q| q["cards_dealt"] = json!(14)),
            "invalid_value",
            "cards_dealt",
        ),
        (
            edit(bidding_query, &|q| q["trump"] = json!(4)),
            "invalid_value",
            "trump",
        ),
    ];
    // Search settings and the protocol's options, out of range or of the wrong type.
    let mut cases = cases;
    for (field, value, code) in [
        ("c_puct", json!(-0.5), "invalid_value"),
        ("c_puct", json!(100.5), "invalid_value"),
        ("c_puct", json!("1.5"), "wrong_type"),
        ("fpu_reduction", json!(2.5), "invalid_value"),
        ("fpu_reduction", json!(-3), "invalid_value"),
        ("fpu_reduction", json!(true), "wrong_type"),
        ("report_every", json!(0), "invalid_value"),
        ("report_every", json!(65_535), "invalid_value"),
        ("report_every", json!(2.5), "invalid_value"),
        ("report_every", json!([1]), "wrong_type"),
        ("max_time_ms", json!(0), "invalid_value"),
        ("max_time_ms", json!(3_600_001), "invalid_value"),
        ("max_time_ms", json!(-5), "invalid_value"),
        ("max_time_ms", json!("1s"), "wrong_type"),
    ] {
        let query = edit(bidding_query, &|q| q[field] = value.clone());
        cases.push((query, code, field));
    }
    let queries: Vec<Value> = cases
        .iter()
        .enumerate()
        .map(|(i, (q, _, _))| {
            let mut q = q.clone();
            q["id"] = json!(i);
            q
        })
        .collect();
    let answers = by_id(serve_queries(&queries, uniform(), 2));
    for (i, (query, code, field)) in cases.iter().enumerate() {
        let answer = &answers[&json!(i).to_string()];
        assert_eq!(
            error_of(answer),
            (*code, *field),
            "case {i}: {query}\n{answer}"
        );
        assert!(!answer["error"]["message"].as_str().unwrap().is_empty());
    }
    // The unedited queries are fine.
    for q in [bidding_query(), playing_query()] {
        assert_answer(&serve_one(q, uniform()));
    }
    // A missing id is an error with id null.
    let mut no_id = bidding_query();
    no_id.as_object_mut().unwrap().remove("id");
    let answer = serve_one(no_id, uniform());
    assert_eq!(error_of(&answer), ("missing_field", "id"));
    assert_eq!(answer["id"], Value::Null);
}

/// One random corruption of a valid query line.
fn mutate(line: &[u8], rng: &mut ChaCha8Rng) -> Vec<u8> {
    let mut out = line.to_vec();
    match rng.random_range(0..11) {
        0 => {
            let i = rng.random_range(0..out.len());
            out[i] ^= 1 << rng.random_range(0..8);
        }
        1 => {
            let i = rng.random_range(0..out.len());
            out[i] = rng.random();
        }
        2 => out.truncate(rng.random_range(0..out.len())),
        3 => {
            let i = rng.random_range(0..out.len());
            out.remove(i);
        }
        4 => {
            let i = rng.random_range(0..=out.len());
            let junk = [
                b'{', b'}', b'[', b']', b',', b':', b'"', b'0', b'-', b'e', b'\\',
            ];
            out.insert(i, junk[rng.random_range(0..junk.len())]);
        }
        5..=7 => {
            // A field set to a value of the wrong type or size.
            let mut q: Value = serde_json::from_slice(line).unwrap();
            let obj = q.as_object_mut().unwrap();
            let keys: Vec<String> = obj.keys().cloned().collect();
            let key = &keys[rng.random_range(0..keys.len())];
            let values = [
                json!(null),
                json!(true),
                json!("x"),
                json!(-1),
                json!(3.5),
                json!(1e300),
                json!(u64::MAX),
                json!(18_446_744_073_709_551_615_u64),
                json!([]),
                json!({}),
                json!([[[[[[[[1]]]]]]]]),
                json!([1, 2, 3, 4, 5, 6, 7, 8, 9]),
                json!({"leader": 0, "cards": [[0, 1]]}),
            ];
            let value = values[rng.random_range(0..values.len())].clone();
            if rng.random_range(0..4) == 0 {
                obj.remove(key);
            } else {
                match obj[key].as_array_mut() {
                    Some(list) if !list.is_empty() => {
                        let i = rng.random_range(0..list.len());
                        list[i] = value;
                    }
                    _ => obj[key] = value,
                }
            }
            out = q.to_string().into_bytes();
        }
        8 | 9 => {
            // A card, seat, bid or count changed to another small number: rule errors.
            let mut q: Value = serde_json::from_slice(line).unwrap();
            let mut numbers = vec![];
            collect_numbers(&mut q, &mut numbers);
            let i = rng.random_range(0..numbers.len());
            *numbers[i] = json!(rng.random_range(0..56));
            out = q.to_string().into_bytes();
        }
        _ => {
            out = (0..rng.random_range(0..200))
                .map(|_| rng.random())
                .collect();
        }
    }
    // One line stays one line.
    for b in &mut out {
        if *b == b'\n' {
            *b = b' ';
        }
    }
    out
}

/// Every number in `value`, for editing in place.
fn collect_numbers<'a>(value: &'a mut Value, out: &mut Vec<&'a mut Value>) {
    match value {
        Value::Number(_) => out.push(value),
        Value::Array(list) => list.iter_mut().for_each(|v| collect_numbers(v, out)),
        Value::Object(map) => map.values_mut().for_each(|v| collect_numbers(v, out)),
        _ => {}
    }
}

const ERROR_CODES: [&str; 17] = [
    "malformed_json",
    "missing_field",
    "unknown_field",
    "wrong_type",
    "invalid_value",
    "unknown_card",
    "duplicate_card",
    "wrong_hand_size",
    "impossible_void",
    "hidden_hand",
    "illegal_bid",
    "illegal_play",
    "inconsistent_history",
    "not_to_act",
    "unknown_id",
    "backend",
    "internal",
];

#[test]
fn garbage_lines_each_get_one_answer_and_never_stop_the_server() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let bases: Vec<Vec<u8>> = [bidding_query(), playing_query(), follow_low_or_high(1)]
        .into_iter()
        .chain(
            sample_queries(json!({"dets": 2, "sims": 3}))
                .into_iter()
                .take(4),
        )
        .map(|mut q| {
            q["sims"] = json!(3);
            q.to_string().into_bytes()
        })
        .collect();
    let mut lines: Vec<Vec<u8>> = (0..800)
        .map(|i| mutate(&bases[i % bases.len()], &mut rng))
        .collect();
    lines.extend([
        vec![],
        b"   ".to_vec(),
        b"\r".to_vec(),
        b"null".to_vec(),
        b"[1, 2]".to_vec(),
        b"\"id\"".to_vec(),
        b"{}".to_vec(),
        b"{\"id\": 1}".to_vec(),
        vec![0xff, 0xfe, b'{', b'}'],
        "[".repeat(10_000).into_bytes(),
        vec![b' '; engine::analyze::MAX_LINE_BYTES + 10],
    ]);
    lines.extend(bases.clone());
    let (answers, summary) = serve_bytes(&lines, uniform(), 2);
    assert_eq!(answers.len(), lines.len(), "one answer per line");
    assert_eq!(summary.answers, lines.len() as u64);
    let mut errors = 0;
    let mut codes = std::collections::BTreeMap::new();
    for answer in &answers {
        let obj = answer.as_object().expect("answers are objects");
        assert!(obj.contains_key("id"));
        match obj.get("error") {
            Some(e) => {
                errors += 1;
                *codes
                    .entry(e["code"].as_str().unwrap().to_string())
                    .or_insert(0) += 1;
                assert!(
                    ERROR_CODES.contains(&e["code"].as_str().unwrap()),
                    "{answer}"
                );
                assert!(!e["message"].as_str().unwrap().is_empty(), "{answer}");
                assert_ne!(e["code"], "internal", "{answer}");
            }
            None => {
                let moves = answer["moves"].as_array().expect("moves");
                assert!(!moves.is_empty(), "{answer}");
            }
        }
    }
    assert_eq!(summary.errors, errors);
    eprintln!("error codes: {codes:?}");
    assert!(codes.len() >= 12, "few kinds of errors: {codes:?}");
    assert!(
        errors > 300,
        "only {errors} errors: the mutations are too gentle"
    );
    // The unmutated queries at the end were all answered.
    let valid = answers.iter().filter(|a| a.get("error").is_none()).count();
    assert!(valid >= bases.len());
}

#[test]
fn queries_in_flight_come_back_under_their_own_ids() {
    let ids = [
        json!(0),
        json!("a"),
        json!({"gui": [1, 2]}),
        json!([null]),
        json!(-3.5),
        json!(true),
        json!(null),
    ];
    let mut queries = vec![];
    for (i, d) in decisions(211).into_iter().enumerate() {
        queries.push(query_of(
            d,
            json!({"n": i, "tag": ids[i % ids.len()]}),
            json!({"sims": 2 + i % 7, "dets": 1 + i % 3, "leaf_values": (["all", "mover"][i % 2])}),
        ));
    }
    // One heavy query first: on one worker the light ones finish before it.
    let mut heavy = bidding_query();
    heavy["id"] = json!("heavy");
    heavy["dets"] = json!(4);
    heavy["sims"] = json!(2_000);
    let mut all = vec![heavy];
    all.extend(queries.iter().cloned());
    let answers = serve_queries(&all, uniform(), 1);
    assert_ne!(answers[0]["id"], "heavy", "answers come as queries finish");
    let answers = by_id(answers);
    assert_eq!(
        answers.len(),
        all.len(),
        "ids are distinct and all answered"
    );
    assert_eq!(answers["\"heavy\""]["stats"]["simulations"], 8_000);
    for q in &queries {
        let answer = &answers[&q["id"].to_string()];
        assert_answer(answer);
        let alone = serve_one(q.clone(), uniform());
        assert_eq!(without_time(alone), without_time(answer.clone()), "{q}");
    }
}

/// A backend that always fails.
struct Broken;

impl Backend for Broken {
    fn name(&self) -> &'static str {
        "broken"
    }
    fn max_batch(&self) -> usize {
        default_rows()
    }
    fn forward(&mut self, _: BatchIn<'_>, _: BatchOut<'_>) -> Result<(), NetError> {
        Err(NetError::Device {
            backend: "broken",
            stage: "forward",
            source: "device lost".into(),
        })
    }
}

#[test]
fn a_backend_failure_answers_every_query_and_ends_the_server() {
    let lines: Vec<Vec<u8>> = (0..5)
        .map(|i| {
            let mut q = bidding_query();
            q["id"] = json!(i);
            q.to_string().into_bytes()
        })
        .collect();
    let mut input = lines.join(&b'\n');
    input.push(b'\n');
    let mut output = Vec::new();
    let config = AnalyzeConfig {
        threads: 2,
        search: SearchConfig::default(),
    };
    let result = serve(Cursor::new(input), &mut output, Box::new(Broken), &config);
    assert!(result.is_err(), "a failed backend fails the server");
    let text = String::from_utf8(output).unwrap();
    for line in text.lines() {
        let answer: Value = serde_json::from_str(line).unwrap();
        assert_eq!(error_of(&answer).0, "backend", "{answer}");
    }
}

/// Serves lines given as JSON values; returns every line written (partial answers included)
/// and the summary.
fn serve_all(
    lines: &[Value],
    backend: Box<dyn Backend>,
    threads: usize,
) -> (Vec<Value>, ServeSummary) {
    let lines: Vec<Vec<u8>> = lines.iter().map(|l| l.to_string().into_bytes()).collect();
    serve_bytes(&lines, backend, threads)
}

/// A search that takes minutes (64 worlds × 65,534 simulations), cut to two by its time limit
/// should nothing else stop it.
fn endless_query(id: Value) -> Value {
    let mut q = bidding_query();
    q["id"] = id;
    q["dets"] = json!(64);
    q["sims"] = json!(65_534);
    q["max_time_ms"] = json!(120_000);
    q
}

#[test]
fn query_version_and_clear_cache_answer_at_once() {
    let mut query = playing_query();
    query["id"] = json!("before");
    let mut again = query.clone();
    again["id"] = json!("after");
    let lines = [
        json!({"id": "v", "action": "query_version"}),
        query,
        json!({"id": ["c", 1], "action": "clear_cache"}),
        again,
    ];
    let (answers, summary) = serve_all(&lines, cpu_net(), 1);
    assert_eq!(summary.answers, 4);
    assert_eq!((summary.errors, summary.partial), (0, 0));
    let answers = by_id(answers);
    assert_eq!(
        answers["\"v\""],
        json!({
            "id": "v", "action": "query_version",
            "engine_version": env!("CARGO_PKG_VERSION"),
            "protocol_version": engine::analyze::PROTOCOL_VERSION,
        })
    );
    assert_eq!(engine::analyze::PROTOCOL_VERSION, 2);
    assert_eq!(
        answers["[\"c\",1]"],
        json!({"id": ["c", 1], "action": "clear_cache", "ok": true})
    );
    // Each query has its own cache: clearing none changes nothing.
    let strip = |id: &str| {
        let mut a = without_time(answers[&json!(id).to_string()].clone());
        assert_answer(&a);
        a["id"] = Value::Null;
        a
    };
    assert_eq!(strip("before"), strip("after"));
}

#[test]
fn bad_actions_are_answered_with_errors() {
    let cases = [
        (
            json!({"id": 0, "action": "stop"}),
            "invalid_value",
            "action",
        ),
        (json!({"id": 1, "action": ""}), "invalid_value", "action"),
        (json!({"id": 2, "action": 3}), "wrong_type", "action"),
        (json!({"id": 3, "action": null}), "wrong_type", "action"),
        (
            json!({"id": 4, "action": "terminate"}),
            "missing_field",
            "terminate_id",
        ),
        (
            json!({"id": 5, "action": "terminate", "terminate_id": "nobody"}),
            "unknown_id",
            "terminate_id",
        ),
        (
            json!({"id": 6, "action": "terminate", "terminate_id": null}),
            "unknown_id",
            "terminate_id",
        ),
        (
            json!({"id": 7, "action": "clear_cache", "terminate_id": 1}),
            "unknown_field",
            "terminate_id",
        ),
        (
            json!({"id": 8, "action": "query_version", "sims": 3}),
            "unknown_field",
            "sims",
        ),
        (json!({"action": "query_version"}), "missing_field", "id"),
    ];
    let lines: Vec<Value> = cases.iter().map(|(l, _, _)| l.clone()).collect();
    let (answers, summary) = serve_all(&lines, uniform(), 1);
    assert_eq!(summary.answers, cases.len() as u64);
    assert_eq!(summary.errors, cases.len() as u64);
    let answers = by_id(answers);
    for (line, code, field) in &cases {
        let answer = &answers[&line["id"].to_string()];
        assert_eq!(error_of(answer), (*code, *field), "{line}\n{answer}");
        assert!(!answer["error"]["message"].as_str().unwrap().is_empty());
    }
    // A query with an unknown action field is a query with an unknown field.
    let mut query = bidding_query();
    query["actoin"] = json!("terminate");
    assert_eq!(
        error_of(&serve_one(query, uniform())),
        ("unknown_field", "actoin")
    );
}

#[test]
fn terminate_stops_the_queries_with_that_id_and_answers_them_with_what_they_have() {
    let lines = [
        endless_query(json!("long")),
        endless_query(json!({"twice": true})),
        endless_query(json!({"twice": true})),
        json!({"id": "stop long", "action": "terminate", "terminate_id": "long"}),
        json!({"id": "stop both", "action": "terminate", "terminate_id": {"twice": true}}),
        json!({"id": "stop nobody", "action": "terminate", "terminate_id": "short"}),
    ];
    let (answers, summary) = serve_all(&lines, uniform(), 2);
    assert_eq!(summary.answers, lines.len() as u64, "{answers:?}");
    assert_eq!((summary.errors, summary.partial), (1, 0));
    let find = |id: Value| -> Vec<&Value> { answers.iter().filter(|a| a["id"] == id).collect() };
    assert_eq!(
        find(json!("stop long")),
        [
            &json!({"id": "stop long", "action": "terminate", "ok": true,
                 "terminate_id": "long", "queries": 1})
        ]
    );
    assert_eq!(find(json!("stop both"))[0]["queries"], 2);
    assert_eq!(
        error_of(find(json!("stop nobody"))[0]),
        ("unknown_id", "terminate_id")
    );
    let stopped: Vec<&Value> = [json!("long"), json!({"twice": true})]
        .into_iter()
        .flat_map(find)
        .collect();
    assert_eq!(stopped.len(), 3);
    for answer in stopped {
        assert_answer(answer);
        assert_eq!(answer["stopped"], "terminated", "{answer}");
        assert_eq!(answer["is_during_search"], false);
        let simulations = answer["stats"]["simulations"].as_u64().unwrap();
        assert!(simulations < 64 * 65_534, "{answer}");
        let visits: u64 = answer["moves"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["visits"].as_u64().unwrap())
            .sum();
        assert_eq!(visits, simulations);
        check_pv(answer);
    }
}

#[test]
fn max_time_ms_stops_the_search_and_a_generous_one_changes_nothing() {
    let mut short = endless_query(json!("short"));
    short["max_time_ms"] = json!(300);
    let answer = serve_one(short, uniform());
    assert_answer(&answer);
    assert_eq!(answer["stopped"], "time_limit", "{answer}");
    assert!(answer["stats"]["simulations"].as_u64().unwrap() < 64 * 65_534);
    assert!(
        answer["stats"]["time_ms"].as_f64().unwrap() >= 300.0,
        "{answer}"
    );
    check_pv(&answer);
    // A limit the search does not reach: the answer of the query without one.
    for q in sample_queries(json!({"dets": 2, "sims": 10, "seed": 3}))
        .into_iter()
        .take(4)
    {
        let mut limited = q.clone();
        limited["max_time_ms"] = json!(600_000);
        let answer = serve_one(limited, cpu_net());
        assert!(answer.get("stopped").is_none(), "{answer}");
        assert_eq!(without_time(answer), without_time(serve_one(q, cpu_net())));
    }
}

#[test]
fn partial_answers_come_during_the_search_and_never_change_the_final_one() {
    let (dets, sims, every) = (3_u64, 40_u64, 7_u64);
    let mut queries = sample_queries(json!({"dets": dets, "sims": sims, "seed": 9}));
    queries.truncate(8);
    queries.push(query_of(
        decisions(173)[0],
        json!("perfect"),
        json!({"sims": sims, "perfect_information": true}),
    ));
    let reporting: Vec<Value> = queries
        .iter()
        .map(|q| {
            let mut q = q.clone();
            q["report_every"] = json!(every);
            q
        })
        .collect();
    let plain = by_id(serve_queries(&queries, cpu_net(), 2));
    let run = || {
        let (answers, summary) = serve_all(&reporting, cpu_net(), 2);
        assert_eq!(summary.answers, queries.len() as u64);
        assert_eq!(summary.partial as usize, answers.len() - queries.len());
        answers
    };
    let answers = run();
    let mut partial_count = 0;
    for q in &queries {
        let id = &q["id"];
        let mine: Vec<&Value> = answers.iter().filter(|a| &a["id"] == id).collect();
        let (last, partial) = mine.split_last().unwrap();
        // The final answer comes last and is the answer without reports.
        assert_eq!(last["is_during_search"], false);
        assert_eq!(
            without_time((*last).clone()),
            without_time(plain[&id.to_string()].clone()),
            "{q}"
        );
        let worlds = last["stats"]["worlds"].as_u64().unwrap();
        let mut previous = 0;
        for (k, p) in partial.iter().enumerate() {
            assert_answer(p);
            assert_eq!(p["is_during_search"], true, "{p}");
            assert!(p.get("stopped").is_none());
            let simulations = p["stats"]["simulations"].as_u64().unwrap();
            // The k-th report once k+1 multiples of `every` per world are done, before the end.
            assert!(simulations >= (k as u64 + 1) * every * worlds, "{p}");
            assert!(simulations > previous && simulations < sims * worlds, "{p}");
            previous = simulations;
            check_pv(p);
        }
        partial_count += partial.len();
    }
    assert!(
        partial_count >= queries.len(),
        "{partial_count} partial answers"
    );
    // Partial answers are reproducible too (the search's state after a batch).
    let strip = |answers: Vec<Value>| -> Vec<Value> {
        let mut answers: Vec<Value> = answers.into_iter().map(without_time).collect();
        answers.sort_by_key(|a| (a["id"].to_string(), a["stats"]["simulations"].as_u64()));
        answers
    };
    assert_eq!(strip(answers), strip(run()));
}

#[test]
fn search_settings_per_query_reach_the_search_and_their_defaults_change_nothing() {
    let mut queries = sample_queries(json!({"dets": 2, "sims": 24, "seed": 1}));
    queries.truncate(8);
    let with = |extra: Value| -> Vec<Value> {
        let edited: Vec<Value> = queries
            .iter()
            .map(|q| {
                let mut q = q.clone();
                for (k, v) in extra.as_object().unwrap() {
                    q[k] = v.clone();
                }
                q
            })
            .collect();
        let answers = by_id(serve_queries(&edited, cpu_net(), 2));
        queries
            .iter()
            .map(|q| without_time(answers[&q["id"].to_string()].clone()))
            .collect()
    };
    let plain = with(json!({}));
    assert_eq!(with(json!({"c_puct": 1.5, "fpu_reduction": 0.2})), plain);
    assert_eq!(with(json!({"c_puct": null, "fpu_reduction": null})), plain);
    for extra in [
        json!({"c_puct": 0}),
        json!({"c_puct": 6.5}),
        json!({"fpu_reduction": -1}),
        json!({"fpu_reduction": 1.5}),
    ] {
        let answers = with(extra.clone());
        assert!(answers.iter().all(|a| a.get("error").is_none()));
        assert_ne!(answers, plain, "{extra} searched like the defaults");
    }
}

#[test]
fn the_principal_variation_is_the_most_visited_line() {
    // Perfect information, 2 cards each: every line of the search ends the round, and A♥'s
    // line plays all six cards in turn.
    let answer = serve_one(lead_the_ace(), cpu_net());
    check_pv(&answer);
    let ace = answer["moves"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["action"] == 25)
        .unwrap();
    let pv = ace["pv"].as_array().unwrap();
    let seats: Vec<u64> = pv.iter().map(|s| s["seat"].as_u64().unwrap()).collect();
    assert_eq!(seats, [1, 2, 0, 1, 2, 0], "{answer}");
    assert_eq!(pv[0]["card"], "A♥");
    assert_eq!(pv[0]["visits"], ace["visits"], "one world");
    // Seat 1 wins the first trick and leads its last card, 2♣ (forced, so its visits are
    // those of the step before it).
    assert_eq!(pv[3]["action"], 26);
    assert_eq!(pv[3]["visits"], pv[2]["visits"]);
    assert!(pv.iter().all(|s| s["card"].is_string()));
    // Bidding: the line starts with bids (no card names), one per seat in order from the
    // dealer's left, and carries on into the play when it gets that far.
    let mut bid = bidding_query();
    bid["sims"] = json!(300);
    let answer = serve_one(bid, cpu_net());
    check_pv(&answer);
    let best = answer["best_action"].clone();
    let best = answer["moves"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["action"] == best)
        .unwrap();
    let pv = best["pv"].as_array().unwrap();
    assert!(pv.len() > 1, "{answer}");
    for (i, step) in pv.iter().enumerate().take(4) {
        assert_eq!(step["seat"], (1 + i as u64) % 4, "{answer}");
        assert!(step.get("card").is_none(), "{answer}");
    }
    for step in pv.iter().skip(4) {
        assert!(step["card"].is_string(), "{answer}");
    }
}

/// Rows of the server's batches with the default settings.
fn default_rows() -> usize {
    engine::analyze::rows_per_batch(&SearchConfig::default())
}
