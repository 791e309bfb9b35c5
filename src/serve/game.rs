//! One game between a person and engine seats: its settings, the rounds dealt so far, the moves,
//! what the person may see of it, and its record.
//!
//! The person's moves are checked here against the rules, with a message that says why a move
//! is refused. The engine's moves and the person's hints are analysis queries of the position
//! the seat to act sees (its own hand, the other hands by size: no seat's search reads a hand
//! it could not see). Each decision's query has its own seed, derived from the game's, and the
//! record of a finished game holds every decision's query with that seed, so replaying it
//! through `engine analyze` searches each engine decision again to the same move.

use super::error::{ApiError, ErrorCode};
use super::new_game::{GameSettings, Mode};
use super::record::{cards, Reveal, RoundRecord, Trick};
use crate::game::{Card, FullGame, Phase, Round, RoundConfig, Seat};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde_json::{json, Map, Value};

/// The engine's last move and why: the analysis answer it chose from (principal variations
/// left out: they would show the engine's later plays, from its own hand).
#[derive(Clone, Debug, Serialize)]
pub struct EngineMove {
    pub seat: u8,
    pub action: u8,
    pub analysis: Value,
}

/// A game in progress.
pub struct Game {
    settings: GameSettings,
    /// Every round's table settings, dealt or not.
    schedule: Vec<RoundConfig>,
    /// The rounds dealt so far; the last is being played (or was just finished).
    rounds: Vec<RoundRecord>,
    /// Deals the rounds.
    deals: ChaCha8Rng,
    /// The searches' seeds derive from it.
    seed: u64,
    last_engine_move: Option<EngineMove>,
}

/// A finished round's outcome.
#[derive(Clone, Debug, Serialize)]
pub struct RoundScore {
    pub cards: u8,
    pub dealer: u8,
    pub trump: Option<usize>,
    pub bids: Vec<Option<u8>>,
    pub tricks_won: Vec<u8>,
    pub scores: Vec<u32>,
}

/// What the person sees of the game (`GET /api/games/{id}`): their own hand, the other hands'
/// sizes, and everything played in the open.
#[derive(Clone, Debug, Serialize)]
pub struct View {
    pub id: String,
    pub settings: GameSettings,
    /// Index of the round being played, and how many the game has.
    pub round: usize,
    pub rounds: usize,
    pub cards_dealt: u8,
    pub dealer: u8,
    /// Suit 0..=3 (♠ ♥ ♣ ♦), or `null` for no trump.
    pub trump: Option<usize>,
    /// `"bid"`, `"play"`, or `"over"` (the round is over).
    pub phase: &'static str,
    /// The seat to act (`null` once the round is over).
    pub to_act: Option<u8>,
    /// The person's cards.
    pub hand: Vec<u8>,
    pub hand_sizes: Vec<u32>,
    pub bids: Vec<Option<u8>>,
    pub tricks_won: Vec<u8>,
    pub current_trick: Trick,
    /// The trick completed last in this round, with its winner.
    pub last_trick: Option<Trick>,
    /// The person's legal moves when they are to act (bids, or cards), else empty.
    pub legal_actions: Vec<u8>,
    /// Every finished round, in order.
    pub scores: Vec<RoundScore>,
    /// Sum of the finished rounds' scores, per seat.
    pub totals: Vec<u32>,
    pub game_over: bool,
    pub last_engine_move: Option<EngineMove>,
}

impl Game {
    /// A new game with its first round dealt; `seed` draws its deals and its searches' seeds.
    pub fn new(settings: GameSettings, seed: u64) -> Game {
        let mut deals = ChaCha8Rng::seed_from_u64(seed);
        let players = settings.players;
        let schedule = match settings.mode {
            Mode::Round => {
                let round = Round::deal_random(players, settings.cards, &mut deals)
                    .expect("settings were checked");
                vec![round.config()]
            }
            Mode::Game => {
                let game = FullGame::new(players, settings.cards).expect("settings were checked");
                (0..game.rounds()).map(|i| game.round_config(i)).collect()
            }
        };
        let mut game = Game {
            settings,
            schedule,
            rounds: Vec::new(),
            deals,
            seed,
            last_engine_move: None,
        };
        game.deal_next();
        game
    }

    fn deal_next(&mut self) {
        let config = self.schedule[self.rounds.len()];
        let deal = Round::deal(config, &mut self.deals).expect("the schedule was checked");
        self.rounds.push(RoundRecord::new(deal));
    }

    fn current(&self) -> &RoundRecord {
        self.rounds
            .last()
            .expect("a game has a round from the start")
    }

    fn person(&self) -> Seat {
        Seat(self.settings.seat)
    }

    pub fn is_over(&self) -> bool {
        self.rounds.len() == self.schedule.len() && self.current().round().is_over()
    }

    /// The person's move.
    pub fn play(&mut self, action: u8) -> Result<(), ApiError> {
        let round = *self.current().round();
        self.check_to_act(true)?;
        if let Some(why) = refusal(&round, action) {
            let code = match round.phase() {
                Phase::Bidding => ErrorCode::IllegalBid,
                _ => ErrorCode::IllegalPlay,
            };
            return Err(ApiError::field(code, "action", why));
        }
        self.rounds
            .last_mut()
            .expect("a game has a round")
            .apply(action)
            .map_err(|e| ApiError::field(ErrorCode::IllegalPlay, "action", e.to_string()))
    }

    /// Fails unless the round goes on and the seat to act is the person's (`person`) or an
    /// engine's (not `person`).
    fn check_to_act(&self, person: bool) -> Result<(), ApiError> {
        let round = self.current().round();
        if round.is_over() {
            let next = if self.is_over() {
                "the game is over"
            } else {
                "deal the next round"
            };
            return Err(ApiError::new(
                ErrorCode::WrongPhase,
                format!("the round is over: {next}"),
            ));
        }
        let to_act = round.to_act();
        match (to_act == self.person(), person) {
            (true, false) => Err(ApiError::new(
                ErrorCode::NotYourTurn,
                format!("{to_act} is yours to play, not the engine's"),
            )),
            (false, true) => Err(ApiError::new(
                ErrorCode::NotYourTurn,
                format!("{to_act} (the engine) is to act, not you"),
            )),
            _ => Ok(()),
        }
    }

    /// The analysis query of the decision at hand for the seat to act, with this game's search
    /// budget and the decision's seed.
    fn decision_query(&self) -> Map<String, Value> {
        let record = self.current();
        let mut query = record.query(Reveal::Mover);
        self.add_search_options(&mut query, self.rounds.len() - 1, record.actions().len());
        query
    }

    fn add_search_options(&self, query: &mut Map<String, Value>, round: usize, decision: usize) {
        let strength = self.settings.strength;
        query.insert("dets".into(), strength.dets.into());
        query.insert("sims".into(), strength.sims.into());
        // A decision has at most 8 bids and 52 cards: 64 seeds a round keep decisions apart.
        let seed = self
            .seed
            .wrapping_add((round as u64) << 6 | decision as u64);
        query.insert("seed".into(), seed.into());
    }

    /// The query for the engine's next move; fails unless an engine seat is to act.
    pub fn engine_query(&self) -> Result<Map<String, Value>, ApiError> {
        self.check_to_act(false)?;
        Ok(self.decision_query())
    }

    /// The query for a hint to the person; fails unless the person is to act.
    pub fn hint_query(&self) -> Result<Map<String, Value>, ApiError> {
        self.check_to_act(true)?;
        Ok(self.decision_query())
    }

    /// Plays the engine's move from the answer to [`Game::engine_query`] (its best action).
    pub fn play_engine(&mut self, mut analysis: Value) -> Result<(), ApiError> {
        self.check_to_act(false)?;
        let seat = self.current().round().to_act().0;
        let action = analysis
            .get("best_action")
            .and_then(Value::as_u64)
            .and_then(|a| u8::try_from(a).ok())
            .ok_or_else(|| ApiError::new(ErrorCode::Internal, "the search gave no best action"))?;
        self.rounds
            .last_mut()
            .expect("a game has a round")
            .apply(action)
            .map_err(|e| ApiError::new(ErrorCode::Internal, format!("the engine's move: {e}")))?;
        if let Some(moves) = analysis.get_mut("moves").and_then(Value::as_array_mut) {
            for m in moves.iter_mut().filter_map(Value::as_object_mut) {
                m.remove("pv");
            }
        }
        self.last_engine_move = Some(EngineMove {
            seat,
            action,
            analysis,
        });
        Ok(())
    }

    /// Deals the next round of a full game once the current one is over.
    pub fn next_round(&mut self) -> Result<(), ApiError> {
        if !self.current().round().is_over() {
            return Err(ApiError::new(
                ErrorCode::WrongPhase,
                "the round is still being played",
            ));
        }
        if self.is_over() {
            return Err(ApiError::new(ErrorCode::WrongPhase, "the game is over"));
        }
        self.deal_next();
        self.last_engine_move = None;
        Ok(())
    }

    /// A finished game as JSON lines: every decision's analysis query (all hands listed, the
    /// search options of the game), its `id` naming the round, the decision, the seat, who
    /// played (`"engine"` or `"person"`) and what.
    pub fn record(&self) -> Result<String, ApiError> {
        if !self.is_over() {
            return Err(ApiError::new(
                ErrorCode::WrongPhase,
                "the game is not over: a record is written once it is",
            ));
        }
        let mut lines = String::new();
        for (r, record) in self.rounds.iter().enumerate() {
            for (d, (seat, action, mut query)) in
                record.decisions(Reveal::All).into_iter().enumerate()
            {
                let by = if seat == self.person() {
                    "person"
                } else {
                    "engine"
                };
                query.insert(
                    "id".into(),
                    json!({"round": r, "decision": d, "seat": seat.0, "by": by, "played": action}),
                );
                self.add_search_options(&mut query, r, d);
                lines.push_str(&Value::Object(query).to_string());
                lines.push('\n');
            }
        }
        Ok(lines)
    }

    /// What the person sees.
    pub fn view(&self, id: &str) -> View {
        let record = self.current();
        let round = record.round();
        let person = self.person();
        let scores: Vec<RoundScore> = self
            .rounds
            .iter()
            .map(RoundRecord::round)
            .filter(|r| r.is_over())
            .map(|r| RoundScore {
                cards: r.cards_dealt(),
                dealer: r.dealer().0,
                trump: r.trump().map(|t| t.index()),
                bids: r.seats().map(|s| r.bid(s)).collect(),
                tricks_won: r.seats().map(|s| r.tricks_won(s)).collect(),
                scores: r.seats().map(|s| r.score(s)).collect(),
            })
            .collect();
        let totals = (0..usize::from(self.settings.players))
            .map(|s| scores.iter().map(|r| r.scores[s]).sum())
            .collect();
        let to_act = (!round.is_over()).then(|| round.to_act().0);
        View {
            id: id.to_string(),
            settings: self.settings,
            round: self.rounds.len() - 1,
            rounds: self.schedule.len(),
            cards_dealt: round.cards_dealt(),
            dealer: round.dealer().0,
            trump: round.trump().map(|t| t.index()),
            phase: match round.phase() {
                Phase::Bidding => "bid",
                Phase::Playing => "play",
                Phase::Scoring => "over",
            },
            to_act,
            hand: cards(round.hand(person).iter()),
            hand_sizes: round.seats().map(|s| round.hand(s).len()).collect(),
            bids: round.seats().map(|s| round.bid(s)).collect(),
            tricks_won: round.seats().map(|s| round.tricks_won(s)).collect(),
            current_trick: record.current_trick().clone(),
            last_trick: record.completed_tricks().last().cloned(),
            legal_actions: if to_act == Some(person.0) {
                (0..64).filter(|&a| round.is_legal(a)).collect()
            } else {
                Vec::new()
            },
            scores,
            totals,
            game_over: self.is_over(),
            last_engine_move: self.last_engine_move.clone(),
        }
    }
}

/// Why the rules refuse `action` from the seat to act, in words for the person; `None` if
/// they allow it.
fn refusal(round: &Round, action: u8) -> Option<String> {
    if round.is_legal(action) {
        return None;
    }
    let seat = round.to_act();
    let cards = round.cards_dealt();
    Some(match round.phase() {
        Phase::Bidding if action > cards => {
            format!("a bid of {action}: with {cards} cards dealt, bid 0 to {cards}")
        }
        Phase::Bidding => format!(
            "as the dealer you may not bid {action}: the bids would add up to the {cards} \
             tricks, and someone must miss"
        ),
        _ => match Card::from_index(action) {
            None => format!("{action} is not a card (cards are 0..=51)"),
            Some(card) if !round.hand(seat).contains(card) => format!("{card} is not in your hand"),
            Some(card) => {
                let led = round.trick()[0].suit().symbol();
                format!("you must follow suit: {led} was led and you hold {led}, so {card} cannot be played")
            }
        },
    })
}

#[cfg(test)]
mod tests {
    use super::refusal;
    use crate::game::{CardSet, Round, RoundConfig, Seat};

    /// 3 players, 2 cards, seat 0 deals: seat 0 holds 2♠ 3♠, seat 1 2♥ 3♥, seat 2 4♥ 2♣.
    fn round() -> Round {
        let hand = |cards: [u8; 2]| CardSet(cards.iter().fold(0, |m, &c| m | 1 << c));
        let config = RoundConfig {
            players: 3,
            cards: 2,
            dealer: Seat(0),
            trump: None,
        };
        Round::new(config, &[hand([0, 1]), hand([13, 14]), hand([15, 26])]).unwrap()
    }

    #[test]
    fn refusals_say_which_rule() {
        let mut r = round();
        assert_eq!(refusal(&r, 0), None);
        assert!(refusal(&r, 3).unwrap().contains("bid 0 to 2"));
        r.apply(1); // seat 1
        r.apply(0); // seat 2
        assert!(refusal(&r, 1)
            .unwrap()
            .contains("as the dealer you may not bid 1"));
        r.apply(0); // the dealer; seat 1 leads
        assert!(refusal(&r, 0).unwrap().contains("2♠ is not in your hand"));
        assert!(refusal(&r, 60).unwrap().contains("not a card"));
        r.apply(13); // 2♥
        let why = refusal(&r, 26).unwrap();
        assert!(
            why.contains("♥ was led") && why.contains("2♣ cannot be played"),
            "{why}"
        );
        assert_eq!(refusal(&r, 15), None);
    }
}
