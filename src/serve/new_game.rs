//! A new game's settings, as the page (or any client) asks for them: the table, the person's
//! seat, one round or a full game, and the engine's strength. Every value is checked here, each
//! error naming its field.

use super::error::{ApiError, ErrorCode};
use crate::game::{round_sequence, RoundConfig, MAX_PLAYERS, MIN_PLAYERS};
use crate::search::Preset;
use serde::{Deserialize, Serialize};

/// Most worlds one of the server's searches may sample.
pub const MAX_DETS: u32 = 16;
/// Most simulations per world one of the server's searches may run.
pub const MAX_SIMS: u32 = 2000;
/// Most simulations (worlds × simulations per world) one request may cost: a bound on the
/// search work any one request can ask of the server.
pub const MAX_SIMULATIONS: u32 = 8000;

/// One round, or a full game (`cards`, `cards − 1`, …, 1, then 1 per player, 2, …, `cards`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Round,
    Game,
}

/// `POST /api/games`'s body. `dets` and `sims` override the preset's.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewGame {
    pub players: u8,
    /// The person's seat, 0..players.
    pub seat: u8,
    #[serde(default)]
    pub mode: Mode,
    /// Cards per player: of the round, or of a full game's first round.
    pub cards: u8,
    #[serde(default)]
    pub preset: Preset,
    pub dets: Option<u32>,
    pub sims: Option<u32>,
}

/// The engine's search budget per decision (and per hint).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Strength {
    pub dets: u32,
    pub sims: u32,
}

/// A game's checked settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct GameSettings {
    pub players: u8,
    pub seat: u8,
    pub mode: Mode,
    pub cards: u8,
    pub strength: Strength,
}

impl NewGame {
    /// Checks every value; the first one out of range is the error.
    pub fn check(&self) -> Result<GameSettings, ApiError> {
        let players = self.players;
        if !(MIN_PLAYERS..=MAX_PLAYERS).contains(&usize::from(players)) {
            return Err(invalid(
                "players",
                format!("{players}: Blob is played by {MIN_PLAYERS} to {MAX_PLAYERS}"),
            ));
        }
        if self.seat >= players {
            return Err(invalid(
                "seat",
                format!("{}: the seats are 0..={}", self.seat, players - 1),
            ));
        }
        let max_cards = RoundConfig::max_cards(players);
        if round_sequence(players, self.cards).is_err() {
            return Err(invalid(
                "cards",
                format!("{}: {players} players hold 1..={max_cards}", self.cards),
            ));
        }
        let preset = self.preset.config();
        let dets = self.dets.unwrap_or(preset.worlds);
        let sims = self.sims.unwrap_or(preset.sims_per_world);
        if !(1..=MAX_DETS).contains(&dets) {
            return Err(invalid("dets", format!("{dets} is not in 1..={MAX_DETS}")));
        }
        if !(1..=MAX_SIMS).contains(&sims) {
            return Err(invalid("sims", format!("{sims} is not in 1..={MAX_SIMS}")));
        }
        if dets * sims > MAX_SIMULATIONS {
            return Err(invalid(
                "sims",
                format!(
                    "{dets} worlds × {sims} simulations = {}: this server searches at most \
                     {MAX_SIMULATIONS} per move",
                    dets * sims
                ),
            ));
        }
        Ok(GameSettings {
            players,
            seat: self.seat,
            mode: self.mode,
            cards: self.cards,
            strength: Strength { dets, sims },
        })
    }
}

fn invalid(field: &str, message: String) -> ApiError {
    ApiError::field(ErrorCode::InvalidValue, field, message)
}
