//! Input lines: JSON → a [`QuerySpec`] (a position to search) or an [`ActionSpec`] (a line with
//! `"action"`), with errors that name the offending field.
//!
//! Parsing goes through [`serde_json::Value`] by hand rather than a derived `Deserialize`, so
//! every error can say which field (`hands[2][0]`, `previous_tricks[1].cards[3]`) is wrong and
//! why. Rules are not checked here: [`super::position`] replays the parsed history.

use super::fields::*;
use crate::game::{Card, Seat, Suit, DECK_SIZE, MAX_BID, MAX_PLAYERS, MIN_PLAYERS};
use crate::search::{Beliefs, LeafValues};
use serde::Serialize;
use serde_json::{Map, Value};
use std::ops::RangeInclusive;
use thiserror::Error;

/// Most worlds a query may ask for: the search's limit.
pub const MAX_DETS: u32 = crate::search::MAX_WORLDS;
/// Most simulations per world a query may ask for: the search's limit.
pub const MAX_SIMS: u32 = crate::search::MAX_SIMS_PER_WORLD;
/// Longest time budget a query may ask for (`max_time_ms`): one hour.
pub const MAX_TIME_MS: u64 = 3_600_000;
/// Range of `c_puct` a query may ask for.
pub const C_PUCT_RANGE: RangeInclusive<f64> = 0.0..=100.0;
/// Range of `fpu_reduction` a query may ask for (values are on a −1..1 scale).
pub const FPU_REDUCTION_RANGE: RangeInclusive<f64> = -2.0..=2.0;

/// Kind of problem with a query, stable for programs (`snake_case` in JSON).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The line is not a JSON object (or is empty, too long, not UTF-8).
    MalformedJson,
    MissingField,
    UnknownField,
    /// A field holds the wrong JSON type.
    WrongType,
    /// A value outside its range or set (seat, count, option), or a list of the wrong length.
    InvalidValue,
    /// A card that is not an index 0..=51.
    UnknownCard,
    /// A card shown twice (in a hand read, or in the history).
    DuplicateCard,
    /// A hand's size disagrees with cards dealt minus cards played.
    WrongHandSize,
    /// A seat shown void in a suit holds it, or the hidden hands cannot be completed.
    ImpossibleVoid,
    /// A hand that must list its cards is given as a size.
    HiddenHand,
    /// A bid the rules forbid, or bids out of the bidding order.
    IllegalBid,
    /// A card the rules forbid: out of turn, not following suit, before bidding ended.
    IllegalPlay,
    /// A stated fact (trick leader, trick winner, tricks won) contradicts the history.
    InconsistentHistory,
    /// `player` is not the seat to act, or the round is over.
    NotToAct,
    /// A `terminate` action names no query in flight (never sent, or already answered).
    UnknownId,
    /// The network backend failed while the query was in flight.
    Backend,
    /// The engine refused a position it had accepted: a bug, reported rather than panicking.
    Internal,
}

/// A problem with one query line: what kind, which field (`None` for the line itself), and why.
#[derive(Clone, Debug, Error, PartialEq, Eq, Serialize)]
#[error("{}{message}", field.as_ref().map_or(String::new(), |f| format!("{f}: ")))]
pub struct QueryError {
    pub code: ErrorCode,
    pub field: Option<String>,
    pub message: String,
}

impl QueryError {
    pub fn new(code: ErrorCode, field: impl Into<String>, message: impl Into<String>) -> Self {
        QueryError {
            code,
            field: Some(field.into()),
            message: message.into(),
        }
    }

    /// An error about the whole line rather than one field.
    pub fn line(code: ErrorCode, message: impl Into<String>) -> Self {
        QueryError {
            code,
            field: None,
            message: message.into(),
        }
    }
}

/// A seat's hand as given: its cards, or only its size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HandSpec {
    Cards(Vec<Card>),
    Size(u8),
}

impl HandSpec {
    pub fn size(&self) -> usize {
        match self {
            HandSpec::Cards(cards) => cards.len(),
            HandSpec::Size(n) => usize::from(*n),
        }
    }
}

/// One trick as given: optional leader and winner, cards in play order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrickSpec {
    pub leader: Option<Seat>,
    pub cards: Vec<(Seat, Card)>,
    pub winner: Option<Seat>,
}

/// A position as given, ranges checked, rules not yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PositionSpec {
    pub player: Seat,
    pub dealer: Seat,
    pub trump: Option<Suit>,
    pub cards_dealt: u8,
    /// One per seat; its length is the number of players.
    pub hands: Vec<HandSpec>,
    pub bids: Vec<Option<u8>>,
    /// `None` when the query leaves it out (then nothing is checked).
    pub tricks_won: Option<Vec<u8>>,
    pub current_trick: TrickSpec,
    pub previous_tricks: Vec<TrickSpec>,
}

impl PositionSpec {
    pub fn players(&self) -> u8 {
        self.hands.len() as u8
    }
}

/// Search options of a query; `None`: the server's setting.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Options {
    pub dets: Option<u32>,
    pub sims: Option<u32>,
    pub seed: u64,
    pub leaf_values: Option<LeafValues>,
    pub beliefs: Option<Beliefs>,
    pub include_policy_prior: bool,
    pub perfect_information: bool,
    /// A partial answer each time the simulations pass another multiple of this many per
    /// world (`None`: the final answer only).
    pub report_every: Option<u32>,
    /// Stop searching this long after the line was read (`None`: no time limit).
    pub max_time_ms: Option<u64>,
    /// PUCT's exploration constant.
    pub c_puct: Option<f32>,
    /// First-play urgency reduction.
    pub fpu_reduction: Option<f32>,
}

/// A parsed query line.
#[derive(Clone, Debug, PartialEq)]
pub struct QuerySpec {
    pub id: Value,
    pub position: PositionSpec,
    pub options: Options,
}

/// What an action line asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Stop the queries in flight whose id is this value and answer them with what they have.
    Terminate { terminate_id: Value },
    /// Clear the server's shared caches (there are none: each query has its own).
    ClearCache,
    /// The engine's and the protocol's versions.
    QueryVersion,
}

impl Action {
    /// The name of the action in JSON.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Terminate { .. } => "terminate",
            Action::ClearCache => "clear_cache",
            Action::QueryVersion => "query_version",
        }
    }
}

/// A parsed action line.
#[derive(Clone, Debug, PartialEq)]
pub struct ActionSpec {
    pub id: Value,
    pub action: Action,
}

/// A parsed line: a position to search, or an action.
#[derive(Clone, Debug, PartialEq)]
pub enum Line {
    Query(QuerySpec),
    Action(ActionSpec),
}

/// The actions, by name.
pub const ACTIONS: [&str; 3] = ["terminate", "clear_cache", "query_version"];

const TOP_FIELDS: [&str; 21] = [
    "id",
    "player",
    "dealer",
    "trump",
    "cards_dealt",
    "hands",
    "bids",
    "tricks_won",
    "current_trick",
    "previous_tricks",
    "dets",
    "sims",
    "seed",
    "leaf_values",
    "beliefs",
    "include_policy_prior",
    "perfect_information",
    "report_every",
    "max_time_ms",
    "c_puct",
    "fpu_reduction",
];
const TRICK_FIELDS: [&str; 3] = ["leader", "cards", "winner"];

/// Parses one line. On error, also returns the line's `id` when it could be read (else null).
pub fn parse_line(line: &[u8]) -> Result<Line, (Value, QueryError)> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Err((
            Value::Null,
            QueryError::line(
                ErrorCode::MalformedJson,
                "empty line: expected a JSON object",
            ),
        ));
    }
    let value: Value = serde_json::from_slice(line).map_err(|e| {
        (
            Value::Null,
            QueryError::line(ErrorCode::MalformedJson, format!("not valid JSON: {e}")),
        )
    })?;
    let Value::Object(obj) = value else {
        return Err((
            Value::Null,
            QueryError::line(
                ErrorCode::MalformedJson,
                format!("expected a JSON object, found {}", describe(&value)),
            ),
        ));
    };
    let id = obj.get("id").cloned().unwrap_or(Value::Null);
    let parsed = if obj.contains_key("action") {
        parse_action(&obj).map(Line::Action)
    } else {
        parse_query(&obj).map(Line::Query)
    };
    parsed.map_err(|e| (id, e))
}

/// An action line: `id`, `action`, and the action's own fields (a `null` action included:
/// a line with the key `action` is never a query).
fn parse_action(obj: &Map<String, Value>) -> Result<ActionSpec, QueryError> {
    let name = match &obj["action"] {
        Value::String(s) => s.as_str(),
        v => return Err(wrong_type(v, "action", "an action name (a string)")),
    };
    let (action, fields): (_, &[&str]) = match name {
        "terminate" => (None, &["id", "action", "terminate_id"]),
        "clear_cache" => (Some(Action::ClearCache), &["id", "action"]),
        "query_version" => (Some(Action::QueryVersion), &["id", "action"]),
        other => {
            return Err(QueryError::new(
                ErrorCode::InvalidValue,
                "action",
                format!(
                    "{:?} is not an action (expected {})",
                    other,
                    ACTIONS.join(", ")
                ),
            ))
        }
    };
    check_fields(obj, "", fields)?;
    let id = required(obj, "", "id")?.clone();
    let action = match action {
        Some(a) => a,
        // Any JSON value, `null` included: it is compared with the queries' ids.
        None => Action::Terminate {
            terminate_id: required(obj, "", "terminate_id")?.clone(),
        },
    };
    Ok(ActionSpec { id, action })
}

fn parse_query(obj: &Map<String, Value>) -> Result<QuerySpec, QueryError> {
    check_fields(obj, "", &TOP_FIELDS)?;
    let id = required(obj, "", "id")?.clone();
    let options = parse_options(obj)?;

    let hands_value = array(required(obj, "", "hands")?, "hands")?;
    let players = hands_value.len();
    if !(MIN_PLAYERS..=MAX_PLAYERS).contains(&players) {
        return Err(QueryError::new(
            ErrorCode::InvalidValue,
            "hands",
            format!("{players} seats: Blob is played by {MIN_PLAYERS} to {MAX_PLAYERS}"),
        ));
    }
    let seat_range = 0..=players as u64 - 1;
    let seat = |v: &Value, path: &str| -> Result<Seat, QueryError> {
        Ok(Seat(integer(v, path, seat_range.clone())? as u8))
    };
    let player = seat(required(obj, "", "player")?, "player")?;
    let dealer = seat(required(obj, "", "dealer")?, "dealer")?;
    let trump = match nullable(required(obj, "", "trump")?) {
        None => None,
        Some(v) => Suit::from_index(integer(v, "trump", 0..=3)? as u8),
    };
    let max_cards = (DECK_SIZE / players).min(usize::from(MAX_BID)) as u64;
    let cards_dealt = integer(
        required(obj, "", "cards_dealt")?,
        "cards_dealt",
        1..=max_cards,
    )
    .map_err(|e| QueryError {
        message: format!("{} (1..={max_cards} for {players} players)", e.message),
        ..e
    })? as u8;

    let mut hands = Vec::with_capacity(players);
    for (s, v) in hands_value.iter().enumerate() {
        let path = format!("hands[{s}]");
        // Without perfect information only the acting seat's cards are read: another seat's
        // list counts for its length alone, so the answer cannot depend on its cards.
        let read_cards = options.perfect_information || s == player.index();
        hands.push(match v {
            Value::Array(cards) if read_cards => HandSpec::Cards(
                cards
                    .iter()
                    .enumerate()
                    .map(|(i, c)| card(c, &format!("{path}[{i}]")))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Array(cards) => HandSpec::Size(cards.len().min(usize::from(u8::MAX)) as u8),
            Value::Number(_) => HandSpec::Size(integer(v, &path, 0..=u64::from(u8::MAX))? as u8),
            _ => {
                return Err(QueryError::new(
                    ErrorCode::WrongType,
                    path,
                    format!(
                        "expected a list of cards or a hand size, found {}",
                        describe(v)
                    ),
                ))
            }
        });
    }

    let bids = per_seat(obj, "bids", players)?
        .iter()
        .enumerate()
        .map(|(s, v)| {
            nullable(v)
                .map(|b| integer(b, &format!("bids[{s}]"), 0..=u64::from(MAX_BID)).map(|b| b as u8))
                .transpose()
        })
        .collect::<Result<_, _>>()?;
    let tricks_won = match optional(obj, "tricks_won") {
        None => None,
        Some(_) => Some(
            per_seat(obj, "tricks_won", players)?
                .iter()
                .enumerate()
                .map(|(s, v)| {
                    integer(v, &format!("tricks_won[{s}]"), 0..=u64::from(MAX_BID)).map(|t| t as u8)
                })
                .collect::<Result<_, _>>()?,
        ),
    };
    let trick = |v: &Value, path: &str| parse_trick(v, path, &seat);
    let current_trick = match optional(obj, "current_trick") {
        None => TrickSpec {
            leader: None,
            cards: vec![],
            winner: None,
        },
        Some(v) => trick(v, "current_trick")?,
    };
    let previous_tricks = match optional(obj, "previous_tricks") {
        None => vec![],
        Some(v) => array(v, "previous_tricks")?
            .iter()
            .enumerate()
            .map(|(i, t)| trick(t, &format!("previous_tricks[{i}]")))
            .collect::<Result<_, _>>()?,
    };
    Ok(QuerySpec {
        id,
        position: PositionSpec {
            player,
            dealer,
            trump,
            cards_dealt,
            hands,
            bids,
            tricks_won,
            current_trick,
            previous_tricks,
        },
        options,
    })
}

fn parse_options(obj: &Map<String, Value>) -> Result<Options, QueryError> {
    let flag = |name: &str| optional(obj, name).map_or(Ok(false), |v| boolean(v, name));
    let count = |name: &str, max: u32| {
        optional(obj, name)
            .map(|v| integer(v, name, 1..=u64::from(max)).map(|n| n as u32))
            .transpose()
    };
    let leaf_values = match optional(obj, "leaf_values") {
        None => None,
        Some(Value::String(s)) if s == "all" => Some(LeafValues::All),
        Some(Value::String(s)) if s == "mover" => Some(LeafValues::Mover),
        Some(v @ Value::String(_)) => {
            return Err(QueryError::new(
                ErrorCode::InvalidValue,
                "leaf_values",
                format!("{v} is not \"all\" or \"mover\""),
            ))
        }
        Some(v) => {
            return Err(QueryError::new(
                ErrorCode::WrongType,
                "leaf_values",
                format!("expected \"all\" or \"mover\", found {}", describe(v)),
            ))
        }
    };
    let beliefs = match optional(obj, "beliefs") {
        None => None,
        Some(Value::String(s)) if s == "uniform" => Some(Beliefs::Uniform),
        Some(Value::String(s)) if s == "policy" => Some(Beliefs::Policy),
        Some(v @ Value::String(_)) => {
            return Err(QueryError::new(
                ErrorCode::InvalidValue,
                "beliefs",
                format!("{v} is not \"uniform\" or \"policy\""),
            ))
        }
        Some(v) => {
            return Err(QueryError::new(
                ErrorCode::WrongType,
                "beliefs",
                format!("expected \"uniform\" or \"policy\", found {}", describe(v)),
            ))
        }
    };
    let real = |name: &str, range: RangeInclusive<f64>| {
        optional(obj, name)
            .map(|v| number(v, name, range).map(|x| x as f32))
            .transpose()
    };
    Ok(Options {
        dets: count("dets", MAX_DETS)?,
        sims: count("sims", MAX_SIMS)?,
        seed: optional(obj, "seed").map_or(Ok(0), |v| integer(v, "seed", 0..=u64::MAX))?,
        leaf_values,
        beliefs,
        include_policy_prior: flag("include_policy_prior")?,
        perfect_information: flag("perfect_information")?,
        report_every: optional(obj, "report_every")
            .map(|v| integer(v, "report_every", 1..=u64::from(MAX_SIMS)).map(|n| n as u32))
            .transpose()?,
        max_time_ms: optional(obj, "max_time_ms")
            .map(|v| integer(v, "max_time_ms", 1..=MAX_TIME_MS))
            .transpose()?,
        c_puct: real("c_puct", C_PUCT_RANGE)?,
        fpu_reduction: real("fpu_reduction", FPU_REDUCTION_RANGE)?,
    })
}

fn parse_trick(
    value: &Value,
    path: &str,
    seat: &dyn Fn(&Value, &str) -> Result<Seat, QueryError>,
) -> Result<TrickSpec, QueryError> {
    let obj = object(value, path)?;
    check_fields(obj, path, &TRICK_FIELDS)?;
    let optional_seat = |name: &str| {
        optional(obj, name)
            .map(|v| seat(v, &format!("{path}.{name}")))
            .transpose()
    };
    let cards = array(required(obj, path, "cards")?, &format!("{path}.cards"))?
        .iter()
        .enumerate()
        .map(|(i, pair)| {
            let at = format!("{path}.cards[{i}]");
            match array(pair, &at)?.as_slice() {
                [s, c] => Ok((seat(s, &format!("{at}[0]"))?, card(c, &format!("{at}[1]"))?)),
                other => Err(QueryError::new(
                    ErrorCode::InvalidValue,
                    at,
                    format!(
                        "expected a [seat, card] pair, found {} entries",
                        other.len()
                    ),
                )),
            }
        })
        .collect::<Result<_, _>>()?;
    Ok(TrickSpec {
        leader: optional_seat("leader")?,
        cards,
        winner: optional_seat("winner")?,
    })
}
