//! Typed reads of JSON fields for the query parser: each names the field's path
//! (`hands[2][0]`) and what it expected when the value is missing, of the wrong type or out of
//! range.

use super::query::{ErrorCode, QueryError};
use crate::game::Card;
use serde_json::{Map, Value};
use std::ops::RangeInclusive;

/// `prefix.name`, or `name` at the top level.
pub(super) fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

pub(super) fn check_fields(
    obj: &Map<String, Value>,
    prefix: &str,
    allowed: &[&str],
) -> Result<(), QueryError> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        None => Ok(()),
        Some(k) => Err(QueryError::new(
            ErrorCode::UnknownField,
            join(prefix, k),
            format!("unknown field (expected one of {})", allowed.join(", ")),
        )),
    }
}

pub(super) fn required<'a>(
    obj: &'a Map<String, Value>,
    prefix: &str,
    name: &str,
) -> Result<&'a Value, QueryError> {
    obj.get(name).ok_or_else(|| {
        QueryError::new(
            ErrorCode::MissingField,
            join(prefix, name),
            "required field is missing",
        )
    })
}

/// An optional field; `null` counts as absent.
pub(super) fn optional<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name).and_then(nullable)
}

pub(super) fn nullable(v: &Value) -> Option<&Value> {
    (!v.is_null()).then_some(v)
}

/// A required list with one entry per seat.
pub(super) fn per_seat<'a>(
    obj: &'a Map<String, Value>,
    name: &str,
    players: usize,
) -> Result<&'a Vec<Value>, QueryError> {
    let list = array(required(obj, "", name)?, name)?;
    if list.len() != players {
        return Err(QueryError::new(
            ErrorCode::InvalidValue,
            name,
            format!("{} entries for {players} seats (one per seat)", list.len()),
        ));
    }
    Ok(list)
}

pub(super) fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

pub(super) fn wrong_type(v: &Value, path: &str, expected: &str) -> QueryError {
    QueryError::new(
        ErrorCode::WrongType,
        path,
        format!("expected {expected}, found {}", describe(v)),
    )
}

pub(super) fn object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, QueryError> {
    v.as_object()
        .ok_or_else(|| wrong_type(v, path, "an object"))
}

pub(super) fn array<'a>(v: &'a Value, path: &str) -> Result<&'a Vec<Value>, QueryError> {
    v.as_array().ok_or_else(|| wrong_type(v, path, "a list"))
}

pub(super) fn boolean(v: &Value, path: &str) -> Result<bool, QueryError> {
    v.as_bool()
        .ok_or_else(|| wrong_type(v, path, "true or false"))
}

pub(super) fn integer(
    v: &Value,
    path: &str,
    range: RangeInclusive<u64>,
) -> Result<u64, QueryError> {
    let Value::Number(n) = v else {
        return Err(wrong_type(v, path, "an integer"));
    };
    match n.as_u64() {
        Some(x) if range.contains(&x) => Ok(x),
        _ => Err(QueryError::new(
            ErrorCode::InvalidValue,
            path,
            format!(
                "{n} is not an integer in {}..={}",
                range.start(),
                range.end()
            ),
        )),
    }
}

/// Any JSON number (integer or not) in `range`.
pub(super) fn number(v: &Value, path: &str, range: RangeInclusive<f64>) -> Result<f64, QueryError> {
    let Value::Number(n) = v else {
        return Err(wrong_type(v, path, "a number"));
    };
    match n.as_f64() {
        Some(x) if range.contains(&x) => Ok(x),
        _ => Err(QueryError::new(
            ErrorCode::InvalidValue,
            path,
            format!("{n} is not a number in {}..={}", range.start(), range.end()),
        )),
    }
}

pub(super) fn card(v: &Value, path: &str) -> Result<Card, QueryError> {
    let Value::Number(n) = v else {
        return Err(wrong_type(v, path, "a card index (integer 0..=51)"));
    };
    n.as_u64()
        .and_then(|i| u8::try_from(i).ok())
        .and_then(Card::from_index)
        .ok_or_else(|| {
            QueryError::new(
                ErrorCode::UnknownCard,
                path,
                format!("{n} is not a card: cards are 0..=51 (suit·13 + rank, suits ♠ ♥ ♣ ♦, ranks 2..A)"),
            )
        })
}
