//! Requests and answers: the routes of the web API and the embedded page, request bodies read
//! up to a bound, every answer JSON (errors included) except the page's own files.
//!
//! | route | |
//! |---|---|
//! | `GET /`, `/app.js`, `/style.css`, `/favicon.svg` | the page (embedded in the binary; nothing else is served) |
//! | `POST /api/games` | a new game ([`NewGame`]): its view |
//! | `GET /api/games/{id}` | the game's view |
//! | `POST /api/games/{id}/move` | the person's move, `{"action": a}`: the view after it |
//! | `POST /api/games/{id}/engine` | the engine's move for the seat to act: the view after it |
//! | `POST /api/games/{id}/hint` | `{"hint": analysis}` for the person's decision |
//! | `POST /api/games/{id}/next` | deals a full game's next round: the view |
//!
//! `engine`, `hint` and `next` take no body, or an empty object.
//! | `GET /api/games/{id}/record` | a finished game's decisions as analysis queries (JSON lines) |

use super::analyst::Analyst;
use super::error::{ApiError, ErrorCode};
use super::games::{lock_game, Games};
use super::new_game::NewGame;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;
use std::io::Read;
use tiny_http::{Header, Method, Request, Response};

/// Longest request body read: the API's bodies are a few dozen bytes.
pub const MAX_BODY_BYTES: usize = 4096;

/// The page's files, embedded at build time: (path, content type, content).
const ASSETS: [(&str, &str, &str); 4] = [
    (
        "/",
        "text/html; charset=utf-8",
        include_str!("page/index.html"),
    ),
    (
        "/app.js",
        "text/javascript; charset=utf-8",
        include_str!("page/app.js"),
    ),
    (
        "/style.css",
        "text/css; charset=utf-8",
        include_str!("page/style.css"),
    ),
    (
        "/favicon.svg",
        "image/svg+xml",
        include_str!("page/favicon.svg"),
    ),
];

/// What a request is answered with.
struct Reply {
    status: u16,
    content_type: &'static str,
    body: String,
}

impl Reply {
    fn json(value: &impl serde::Serialize) -> Reply {
        Reply {
            status: 200,
            content_type: "application/json",
            body: serde_json::to_string(value).expect("views serialize"),
        }
    }
}

/// The person's move.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Move {
    action: u8,
}

/// The body of the routes that take none: nothing, or an empty object.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoFields {}

/// Answers one request.
pub fn handle(mut request: Request, games: &Games, analyst: &Analyst) {
    let reply = route(&mut request, games, analyst).unwrap_or_else(|e| Reply {
        status: e.status,
        content_type: "application/json",
        body: e.body(),
    });
    let header = |name: &str, value: &str| {
        Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("ASCII header")
    };
    let response = Response::from_string(reply.body)
        .with_status_code(reply.status)
        .with_header(header("Content-Type", reply.content_type))
        .with_header(header("Cache-Control", "no-store"))
        .with_header(header("X-Content-Type-Options", "nosniff"))
        .with_header(header(
            "Content-Security-Policy",
            "default-src 'self'; frame-ancestors 'none'",
        ));
    // A client that hung up needs no answer.
    let _ = request.respond(response);
}

fn route(request: &mut Request, games: &Games, analyst: &Analyst) -> Result<Reply, ApiError> {
    let path = request
        .url()
        .split(['?', '#'])
        .next()
        .unwrap_or("")
        .to_string();
    let method = request.method().clone();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let get = method == Method::Get;
    let post = method == Method::Post;
    match segments[..] {
        ["api", "games"] if post => {
            let settings = read_body::<NewGame>(request)?.check()?;
            let (id, game) = games.create(settings)?;
            let view = lock_game(&game).view(&id);
            Ok(Reply::json(&view))
        }
        ["api", "games", id] if get => {
            let game = games.get(id)?;
            let view = lock_game(&game).view(id);
            Ok(Reply::json(&view))
        }
        ["api", "games", id, "record"] if get => {
            let game = games.get(id)?;
            let record = lock_game(&game).record()?;
            Ok(Reply {
                status: 200,
                content_type: "application/x-ndjson",
                body: record,
            })
        }
        ["api", "games", id, action @ ("move" | "engine" | "hint" | "next")] if post => {
            let game = games.get(id)?;
            let body = read_body_bytes(request)?;
            if action != "move" && !body.is_empty() {
                parse::<NoFields>(&body)?;
            }
            let mut game = lock_game(&game);
            match action {
                "move" => game.play(parse::<Move>(&body)?.action)?,
                "engine" => {
                    let analysis = analyst.analyse(game.engine_query()?)?;
                    game.play_engine(analysis)?;
                }
                "hint" => {
                    let hint = analyst.analyse(game.hint_query()?)?;
                    return Ok(Reply::json(&json!({ "hint": hint })));
                }
                _ => game.next_round()?,
            }
            Ok(Reply::json(&game.view(id)))
        }
        _ => match ASSETS.iter().find(|(p, _, _)| *p == path) {
            Some(&(_, content_type, body)) if get => Ok(Reply {
                status: 200,
                content_type,
                body: body.to_string(),
            }),
            Some(_) => Err(not_allowed(&method, &path)),
            None if path.starts_with("/api/") && is_route(&segments) => {
                Err(not_allowed(&method, &path))
            }
            None => Err(ApiError::new(
                ErrorCode::NotFound,
                format!("nothing is served at {path:?}"),
            )),
        },
    }
}

/// True for the API's paths (whatever the method).
fn is_route(segments: &[&str]) -> bool {
    matches!(
        segments,
        ["api", "games"]
            | ["api", "games", _]
            | [
                "api",
                "games",
                _,
                "move" | "engine" | "hint" | "next" | "record"
            ]
    )
}

fn not_allowed(method: &Method, path: &str) -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("{method} is not served at {path:?}"),
    )
}

/// The request's body, refused past [`MAX_BODY_BYTES`] (whatever its stated length).
fn read_body_bytes(request: &mut Request) -> Result<Vec<u8>, ApiError> {
    let too_large = || {
        ApiError::new(
            ErrorCode::BodyTooLarge,
            format!("the body is longer than {MAX_BODY_BYTES} bytes"),
        )
    };
    if request.body_length().is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    request
        .as_reader()
        .take(MAX_BODY_BYTES as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| ApiError::new(ErrorCode::MalformedJson, format!("reading the body: {e}")))?;
    if body.len() > MAX_BODY_BYTES {
        return Err(too_large());
    }
    Ok(body)
}

fn read_body<T: DeserializeOwned>(request: &mut Request) -> Result<T, ApiError> {
    parse(&read_body_bytes(request)?)
}

/// The body as `T`: malformed JSON, or a value of the wrong type or range, named.
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        let code = match e.classify() {
            serde_json::error::Category::Data => ErrorCode::InvalidValue,
            _ => ErrorCode::MalformedJson,
        };
        ApiError::new(code, format!("the body: {e}"))
    })
}
