//! One round as it was played: its deal, the actions taken, and the tricks they made; and the
//! position at any point of it as a query of the analysis protocol (`docs/analysis.md`), the one
//! shape the server speaks to its searches, shows its tricks in and writes a finished game in.

use crate::game::{Card, Phase, Round, RuleError, Seat};
use serde::Serialize;
use serde_json::{json, Map, Value};

/// A trick as the analysis protocol writes one: who led, `[seat, card]` pairs in play order,
/// and once complete, who won it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Trick {
    pub leader: u8,
    pub cards: Vec<(u8, u8)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub winner: Option<u8>,
}

/// Which hands a position lists card by card.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reveal {
    /// The acting seat's only; the others by their sizes (what that seat may know).
    Mover,
    /// Every hand (a finished game's record: `perfect_information` can then search the real deal).
    All,
}

/// One round: the deal and every action since, with the round they lead to.
#[derive(Clone, Debug)]
pub struct RoundRecord {
    deal: Round,
    actions: Vec<u8>,
    now: Round,
    /// Completed tricks, then the one being played (possibly empty).
    tricks: Vec<Trick>,
}

impl RoundRecord {
    pub fn new(deal: Round) -> RoundRecord {
        RoundRecord {
            deal,
            actions: Vec::new(),
            now: deal,
            tricks: vec![Trick {
                leader: deal.leader().0,
                cards: Vec::new(),
                winner: None,
            }],
        }
    }

    /// The round as it stands.
    pub fn round(&self) -> &Round {
        &self.now
    }

    /// Actions taken so far, in order.
    pub fn actions(&self) -> &[u8] {
        &self.actions
    }

    /// Takes `action` for the seat to act, if the rules allow it.
    pub fn apply(&mut self, action: u8) -> Result<(), RuleError> {
        let seat = self.now.to_act();
        let playing = self.now.phase() == Phase::Playing;
        self.now.try_apply(action)?;
        self.actions.push(action);
        if playing {
            let trick = self.tricks.last_mut().expect("a trick is always open");
            trick.cards.push((seat.0, action));
            if trick.cards.len() == usize::from(self.now.players()) {
                // The trick's winner leads the next one.
                let winner = self.now.leader().0;
                trick.winner = Some(winner);
                self.tricks.push(Trick {
                    leader: winner,
                    cards: Vec::new(),
                    winner: None,
                });
            }
        }
        Ok(())
    }

    /// The trick being played (empty between tricks).
    pub fn current_trick(&self) -> &Trick {
        self.tricks.last().expect("a trick is always open")
    }

    /// The tricks completed so far.
    pub fn completed_tricks(&self) -> &[Trick] {
        &self.tricks[..self.tricks.len() - 1]
    }

    /// The position as it stands as an analysis query (without `id` or search options), the
    /// seat to act as `player`.
    pub fn query(&self, reveal: Reveal) -> Map<String, Value> {
        let round = &self.now;
        let mover = round.to_act();
        let hands: Vec<Value> = round
            .seats()
            .map(|s| {
                if reveal == Reveal::All || s == mover {
                    json!(cards(round.hand(s).iter()))
                } else {
                    json!(round.hand(s).len())
                }
            })
            .collect();
        let bids: Vec<Option<u8>> = round.seats().map(|s| round.bid(s)).collect();
        let tricks_won: Vec<u8> = round.seats().map(|s| round.tricks_won(s)).collect();
        let Value::Object(query) = json!({
            "player": mover.0,
            "dealer": round.dealer().0,
            "trump": round.trump().map(|t| t.index()),
            "cards_dealt": round.cards_dealt(),
            "hands": hands,
            "bids": bids,
            "tricks_won": tricks_won,
            "current_trick": self.current_trick(),
            "previous_tricks": self.completed_tricks(),
        }) else {
            unreachable!("json! of an object is an object")
        };
        query
    }

    /// Each decision of the round so far: the seat that took it, the action, and the position
    /// before it as an analysis query (see [`RoundRecord::query`]).
    pub fn decisions(&self, reveal: Reveal) -> Vec<(Seat, u8, Map<String, Value>)> {
        let mut replay = RoundRecord::new(self.deal);
        self.actions
            .iter()
            .map(|&action| {
                let seat = replay.round().to_act();
                let query = replay.query(reveal);
                replay.apply(action).expect("a recorded action was legal");
                (seat, action, query)
            })
            .collect()
    }
}

/// Card indices, ascending.
pub fn cards(cards: impl Iterator<Item = Card>) -> Vec<u8> {
    cards.map(Card::index).collect()
}
