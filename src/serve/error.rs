//! Errors of the web API: an HTTP status, a stable code for programs, the field at fault and a
//! message for people, sent as `{"error": {"code", "field", "message"}}` (as `engine analyze`
//! answers a bad line).

use serde::Serialize;
use thiserror::Error;

/// Kind of problem with a request, stable for programs (`snake_case` in JSON).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The body is not the JSON object the route takes (or is not UTF-8, or has unknown fields).
    MalformedJson,
    /// The body is longer than the server reads.
    BodyTooLarge,
    /// A value outside its range or set.
    InvalidValue,
    /// No route at this path, or not with this method.
    NotFound,
    MethodNotAllowed,
    /// No game has this id: never created, or expired after being idle.
    UnknownGame,
    /// The server already holds as many games as it may.
    TooManyGames,
    /// The move was asked of the wrong player: an engine seat is to act, or the person is.
    NotYourTurn,
    /// A bid the rules forbid.
    IllegalBid,
    /// A card the rules forbid.
    IllegalPlay,
    /// The round or game is not at the point the request needs (over, or not over yet).
    WrongPhase,
    /// The server failed: its searches stopped (the network backend failed), or the operating
    /// system's entropy did.
    Internal,
}

/// One failed request.
#[derive(Clone, Debug, Error, PartialEq, Eq, Serialize)]
#[error("{}{message}", field.as_ref().map_or(String::new(), |f| format!("{f}: ")))]
pub struct ApiError {
    /// The HTTP status it is answered with.
    #[serde(skip)]
    pub status: u16,
    pub code: ErrorCode,
    /// The request field at fault (`None`: the request as a whole).
    pub field: Option<String>,
    pub message: String,
}

impl ApiError {
    /// An error about the request as a whole; its status follows from its code.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        let status = match code {
            ErrorCode::MalformedJson | ErrorCode::InvalidValue => 400,
            ErrorCode::NotFound | ErrorCode::UnknownGame => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::NotYourTurn
            | ErrorCode::IllegalBid
            | ErrorCode::IllegalPlay
            | ErrorCode::WrongPhase => 409,
            ErrorCode::BodyTooLarge => 413,
            ErrorCode::TooManyGames => 503,
            ErrorCode::Internal => 500,
        };
        ApiError {
            status,
            code,
            field: None,
            message: message.into(),
        }
    }

    /// An error about one field of the request.
    pub fn field(code: ErrorCode, field: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            field: Some(field.to_string()),
            ..ApiError::new(code, message)
        }
    }

    /// The JSON body it is answered with.
    pub fn body(&self) -> String {
        serde_json::json!({ "error": self }).to_string()
    }
}
