//! `engine serve`'s web API over real HTTP: each test starts a server on port 0 (the library's
//! [`Server`], the fresh seed-0 net on the CPU) and talks to it through a minimal HTTP/1.1
//! client. A full round is played through the API and its record replays through `engine
//! analyze` to the engine's own moves; illegal moves, unknown and expired ids, oversized and
//! malformed bodies are refused with their error; games run side by side up to the cap. Nothing
//! waits for a fixed time: every request is answered when its work is done.

use engine::analyze::{rows_per_batch, AnalyzeConfig};
use engine::net::cpu::{CpuBackend, CpuKernel};
use engine::net::weights::{PreparedWeights, Weights};
use engine::search::SearchConfig;
use engine::serve::{ServeConfig, Server, MAX_BODY_BYTES};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// Starts a server with `config`'s limits on a free port; returns its address.
fn start(adjust: impl FnOnce(&mut ServeConfig)) -> SocketAddr {
    let analysis = AnalyzeConfig {
        threads: 2,
        search: SearchConfig::default(),
    };
    let mut config = ServeConfig::new("127.0.0.1:0".parse().unwrap(), analysis);
    adjust(&mut config);
    let net = Arc::new(PreparedWeights::new(&Weights::init(0)));
    let backend =
        CpuBackend::with_kernel(net, rows_per_batch(&analysis.search), CpuKernel::detect())
            .unwrap();
    let server = Server::bind(&config, Box::new(backend)).expect("binding port 0");
    let addr = server.local_addr();
    std::thread::spawn(move || server.run());
    addr
}

/// An HTTP answer: its status and body.
struct Answer {
    status: u16,
    content_type: String,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("status {}, body {:?}: {e}", self.status, self.body))
    }

    /// The JSON of a successful answer: a refusal fails the test instead of being read as a view.
    fn ok(&self) -> Value {
        assert_eq!(self.status, 200, "body {}", self.body);
        self.json()
    }

    /// The error's code, checking the error's shape and status.
    fn error_code(&self, status: u16) -> String {
        assert_eq!(self.status, status, "body {}", self.body);
        let error = &self.json()["error"];
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
        error["code"].as_str().expect("an error code").to_string()
    }
}

/// Sends `head` (request line and headers, without the final blank line) and `body`, and reads
/// the answer to the end (`Connection: close`).
fn raw(addr: SocketAddr, head: &str, body: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(addr).unwrap();
    let request = format!("{head}\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).unwrap();
    let text = String::from_utf8(bytes).expect("UTF-8 answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Type: "))
        .unwrap_or("")
        .to_string();
    Answer {
        status,
        content_type,
        body: body.to_string(),
    }
}

fn request(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> Answer {
    let body = body.map_or(String::new(), Value::to_string);
    let head = format!(
        "{method} {path} HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {}",
        body.len()
    );
    raw(addr, &head, body.as_bytes())
}

fn get(addr: SocketAddr, path: &str) -> Answer {
    request(addr, "GET", path, None)
}

fn post(addr: SocketAddr, path: &str, body: &Value) -> Answer {
    request(addr, "POST", path, Some(body))
}

/// A new game (`body`); returns its view.
fn new_game(addr: SocketAddr, body: Value) -> Value {
    post(addr, "/api/games", &body).ok()
}

/// A small, fast game: 4 players, 2 cards, the person in seat 1, 1 world × 8 simulations.
fn small_game() -> Value {
    json!({"players": 4, "seat": 1, "cards": 2, "dets": 1, "sims": 8})
}

/// Plays the round on: the person's moves are their first legal action (after checking a
/// hint), the engine's are asked for. Returns the view once the round is over.
fn play_round(addr: SocketAddr, mut view: Value) -> Value {
    let id = view["id"].as_str().unwrap().to_string();
    let seat = view["settings"]["seat"].clone();
    while view["phase"] != "over" {
        if view["to_act"] == seat {
            let legal = view["legal_actions"].as_array().unwrap().clone();
            assert!(!legal.is_empty(), "the person to act has moves: {view}");
            let hint = post(addr, &format!("/api/games/{id}/hint"), &json!({})).ok();
            let hint = &hint["hint"];
            assert_eq!(hint["legal_actions"], Value::Array(legal.clone()), "{hint}");
            let shares: f64 = hint["moves"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["share"].as_f64().unwrap())
                .sum();
            assert!((shares - 1.0).abs() < 1e-3, "shares sum to {shares}");
            let answer = post(
                addr,
                &format!("/api/games/{id}/move"),
                &json!({"action": legal[0]}),
            );
            view = answer.ok();
        } else {
            assert_eq!(view["legal_actions"], json!([]), "no moves shown off turn");
            view = post(addr, &format!("/api/games/{id}/engine"), &json!({})).ok();
            let last = &view["last_engine_move"];
            assert_eq!(last["analysis"]["best_action"], last["action"]);
        }
    }
    view
}

/// Scores follow from bids and tricks (10 + bid on an exact bid), and the totals add them up.
fn check_scores(view: &Value) {
    let players = view["settings"]["players"].as_u64().unwrap() as usize;
    let mut totals = vec![0; players];
    for round in view["scores"].as_array().unwrap() {
        for s in 0..players {
            let (bid, won) = (&round["bids"][s], &round["tricks_won"][s]);
            let expected = if bid == won {
                10 + bid.as_u64().unwrap()
            } else {
                0
            };
            assert_eq!(round["scores"][s], expected, "{round}");
            totals[s] += expected;
        }
    }
    assert_eq!(view["totals"], json!(totals));
}

#[test]
fn a_round_through_http_replays_through_engine_analyze() {
    let addr = start(|_| {});
    let page = get(addr, "/");
    assert_eq!(page.status, 200);
    assert!(page.content_type.starts_with("text/html"));
    assert!(page.body.contains("/app.js"));

    let view = new_game(addr, small_game());
    let id = view["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 32, "128 bits as hex: {id}");
    assert_eq!(view["hand"].as_array().unwrap().len(), 2);
    assert_eq!(view["hand_sizes"], json!([2, 2, 2, 2]));
    let recorded = get(addr, &format!("/api/games/{id}/record"));
    assert_eq!(recorded.error_code(409), "wrong_phase");

    let view = play_round(addr, view);
    assert_eq!(view["game_over"], true);
    assert_eq!(view["scores"].as_array().unwrap().len(), 1);
    check_scores(&view);
    assert_eq!(get(addr, &format!("/api/games/{id}")).json(), view);
    let after = post(addr, &format!("/api/games/{id}/engine"), &json!({}));
    assert_eq!(after.error_code(409), "wrong_phase");

    let record = get(addr, &format!("/api/games/{id}/record"));
    assert_eq!(record.status, 200);
    assert_eq!(record.content_type, "application/x-ndjson");
    let lines: Vec<&str> = record.body.lines().collect();
    assert_eq!(lines.len(), 4 + 8, "4 bids and 8 cards");
    let mut analyze = Command::new(env!("CARGO_BIN_EXE_engine"))
        .args(["analyze", "--device", "cpu", "--threads", "1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting engine analyze");
    analyze
        .stdin
        .take()
        .unwrap()
        .write_all(record.body.as_bytes())
        .unwrap();
    let out = analyze.wait_with_output().unwrap();
    assert!(out.status.success());
    let answers: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(answers.len(), lines.len(), "one answer per decision");
    for answer in &answers {
        assert!(answer.get("error").is_none(), "{answer}");
        let id = &answer["id"];
        let played = &id["played"];
        assert!(
            answer["legal_actions"].as_array().unwrap().contains(played),
            "{answer}"
        );
        if id["by"] == "engine" {
            // The same query and seed: the engine's search again, to the same move.
            assert_eq!(&answer["best_action"], played, "{answer}");
        } else {
            assert_eq!(id["seat"], 1);
        }
    }
}

#[test]
fn a_full_game_deals_every_round() {
    let addr = start(|_| {});
    let body = json!({"players": 3, "seat": 0, "mode": "game", "cards": 2, "dets": 1, "sims": 4});
    let mut view = new_game(addr, body);
    let id = view["id"].as_str().unwrap().to_string();
    // 2, 1, then 1 per player, then 2.
    assert_eq!(view["rounds"], 6);
    let mut dealt = vec![];
    loop {
        dealt.push(view["cards_dealt"].as_u64().unwrap());
        let early = post(addr, &format!("/api/games/{id}/next"), &json!({}));
        assert_eq!(early.error_code(409), "wrong_phase");
        view = play_round(addr, view);
        check_scores(&view);
        if view["game_over"] == true {
            break;
        }
        view = post(addr, &format!("/api/games/{id}/next"), &json!({})).ok();
        assert_eq!(view["last_engine_move"], Value::Null);
    }
    assert_eq!(dealt, [2, 1, 1, 1, 1, 2]);
    assert_eq!(view["scores"].as_array().unwrap().len(), 6);
    let over = post(addr, &format!("/api/games/{id}/next"), &json!({}));
    assert_eq!(over.error_code(409), "wrong_phase");
    let record = get(addr, &format!("/api/games/{id}/record")).body;
    // Per round 3 bids and 3 cards per card dealt.
    assert_eq!(record.lines().count(), 6 * 3 + 3 * (2 + 1 + 1 + 1 + 1 + 2));
}

#[test]
fn illegal_moves_are_refused_with_their_reason() {
    let addr = start(|_| {});
    let view = new_game(addr, small_game());
    let id = view["id"].as_str().unwrap().to_string();
    let mut view = view;
    let move_path = format!("/api/games/{id}/move");
    let engine_path = format!("/api/games/{id}/engine");
    while view["to_act"] != 1 {
        let wrong = post(addr, &move_path, &json!({"action": 0}));
        assert_eq!(wrong.error_code(409), "not_your_turn");
        view = post(addr, &engine_path, &json!({})).ok();
    }
    let engine_now = post(addr, &engine_path, &json!({}));
    assert_eq!(engine_now.error_code(409), "not_your_turn");
    let too_many = post(addr, &move_path, &json!({"action": 3}));
    assert_eq!(too_many.error_code(409), "illegal_bid");
    assert_eq!(too_many.json()["error"]["field"], "action");
    assert!(too_many.body.contains("bid 0 to 2"), "{}", too_many.body);
    for (body, code) in [
        (json!({"action": 300}), "invalid_value"),
        (json!({"action": -1}), "invalid_value"),
        (json!({"action": "1"}), "invalid_value"),
        (json!({}), "invalid_value"),
        (json!({"action": 1, "seat": 1}), "invalid_value"),
    ] {
        let answer = post(addr, &move_path, &body);
        assert_eq!(answer.error_code(400), code, "{body}");
    }
    let hint = post(
        addr,
        &format!("/api/games/{id}/hint"),
        &json!({"sims": 100000}),
    );
    assert_eq!(hint.error_code(400), "invalid_value");
    // Nothing refused changed the game.
    assert_eq!(get(addr, &format!("/api/games/{id}")).json(), view);

    // Bid (a legal bid: the deal and dealer are random, and a dealer may not bid every
    // number), then play on to the person's first card: one not in their hand is refused.
    let bid = view["legal_actions"][0].clone();
    view = post(addr, &move_path, &json!({ "action": bid })).ok();
    while view["phase"] == "bid" || view["to_act"] != 1 {
        view = post(addr, &engine_path, &json!({})).ok();
    }
    let hand: Vec<u64> = serde_json::from_value(view["hand"].clone()).unwrap();
    let foreign = (0..52).find(|c| !hand.contains(c)).unwrap();
    let answer = post(addr, &move_path, &json!({"action": foreign}));
    assert_eq!(answer.error_code(409), "illegal_play");
    assert!(answer.body.contains("not in your hand"), "{}", answer.body);
}

#[test]
fn unknown_and_expired_games_are_not_found() {
    let addr = start(|_| {});
    for path in [
        "/api/games/00000000000000000000000000000000",
        "/api/games/not-an-id/hint",
        "/api/games/..%2F..%2Fetc%2Fpasswd",
    ] {
        let answer = if path.ends_with("hint") {
            post(addr, path, &json!({}))
        } else {
            get(addr, path)
        };
        assert_eq!(answer.error_code(404), "unknown_game", "{path}");
    }

    // Games idle for 0 s expire at once: the next request finds none.
    let expiring = start(|c| c.idle_timeout = Duration::ZERO);
    let view = new_game(expiring, small_game());
    let id = view["id"].as_str().unwrap();
    let answer = get(expiring, &format!("/api/games/{id}"));
    assert_eq!(answer.error_code(404), "unknown_game");
    assert!(answer.body.contains("expired"), "{}", answer.body);
}

#[test]
fn oversized_and_malformed_bodies_are_refused() {
    let addr = start(|_| {});
    let long = vec![b' '; MAX_BODY_BYTES + 1];
    let head = format!(
        "POST /api/games HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {}",
        long.len()
    );
    assert_eq!(raw(addr, &head, &long).error_code(413), "body_too_large");
    // Without a stated length (chunked), the body is cut off at the bound all the same.
    let mut chunked = format!("{:x}\r\n", long.len()).into_bytes();
    chunked.extend_from_slice(&long);
    chunked.extend_from_slice(b"\r\n0\r\n\r\n");
    let head = "POST /api/games HTTP/1.1\r\nTransfer-Encoding: chunked";
    assert_eq!(raw(addr, head, &chunked).error_code(413), "body_too_large");

    let malformed = |body: &[u8]| {
        let head = format!("POST /api/games HTTP/1.1\r\nContent-Length: {}", body.len());
        raw(addr, &head, body)
    };
    for body in [&b""[..], b"{", b"[1, 2]", b"\xff\xfe", b"{\"players\": 4,}"] {
        let answer = malformed(body);
        assert_eq!(answer.status, 400, "{:?}: {}", body, answer.body);
    }
    for (body, field) in [
        (json!({"players": 9, "seat": 0, "cards": 2}), "players"),
        (json!({"players": 4, "seat": 4, "cards": 2}), "seat"),
        (json!({"players": 4, "seat": 0, "cards": 14}), "cards"),
        (json!({"players": 8, "seat": 0, "cards": 7}), "cards"),
        (
            json!({"players": 4, "seat": 0, "cards": 2, "dets": 0}),
            "dets",
        ),
        (
            json!({"players": 4, "seat": 0, "cards": 2, "sims": 2001}),
            "sims",
        ),
        (
            json!({"players": 4, "seat": 0, "cards": 2, "dets": 16, "sims": 1000}),
            "sims",
        ),
    ] {
        let answer = post(addr, "/api/games", &body);
        assert_eq!(answer.error_code(400), "invalid_value", "{body}");
        assert_eq!(answer.json()["error"]["field"], field, "{body}");
    }
    for body in [
        json!({"players": 4, "seat": 0, "cards": 2, "preset": "godlike"}),
        json!({"players": 4, "seat": 0, "cards": 2, "mode": "tournament"}),
        json!({"players": 4, "seat": 0}),
        json!({"players": "4", "seat": 0, "cards": 2}),
    ] {
        let answer = post(addr, "/api/games", &body);
        assert_eq!(answer.error_code(400), "invalid_value", "{body}");
    }

    // Nothing but the page's own files is served, and routes take their own method.
    for path in [
        "/index.html",
        "/../Cargo.toml",
        "/app.js/../../src/lib.rs",
        "/api",
    ] {
        assert_eq!(get(addr, path).error_code(404), "not_found", "{path}");
    }
    assert_eq!(
        get(addr, "/api/games/00/move").error_code(405),
        "method_not_allowed"
    );
    assert_eq!(
        post(addr, "/", &json!({})).error_code(405),
        "method_not_allowed"
    );
    assert_eq!(
        request(addr, "DELETE", "/api/games", None).error_code(405),
        "method_not_allowed"
    );
}

#[test]
fn games_run_side_by_side_up_to_the_cap() {
    let addr = start(|c| c.max_games = 3);
    let views: Vec<Value> = std::thread::scope(|scope| {
        let games: Vec<_> = (0..3)
            .map(|_| scope.spawn(move || play_round(addr, new_game(addr, small_game()))))
            .collect();
        games.into_iter().map(|g| g.join().unwrap()).collect()
    });
    let mut ids: Vec<&str> = views.iter().map(|v| v["id"].as_str().unwrap()).collect();
    for view in &views {
        check_scores(view);
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 3, "each game its own id");
    let full = post(addr, "/api/games", &small_game());
    assert_eq!(full.error_code(503), "too_many_games");
}

/// `engine serve` as a process: it prints the address it listens on (stdout's first line),
/// warns when that is not a loopback address, and names the address it cannot listen on.
#[test]
fn the_command_says_where_it_listens() {
    let mut wide = Command::new(env!("CARGO_BIN_EXE_engine"))
        .args(["serve", "--device", "cpu", "--threads", "1"])
        .args(["--host", "0.0.0.0", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting engine serve");
    let mut line = String::new();
    BufReader::new(wide.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("http://0.0.0.0:"), "{line}");
    wide.kill().unwrap();
    let out = wide.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning: listening on 0.0.0.0:"),
        "{stderr}"
    );

    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_engine"))
        .args([
            "serve",
            "--device",
            "cpu",
            "--threads",
            "1",
            "--port",
            &port,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("listening on 127.0.0.1:{port}")),
        "{stderr}"
    );
}
