//! Full games: a sequence of rounds with a rotating dealer and trump (spec §1.7).
//!
//! Rounds deal `[C, C−1, …, 1] + [1] × P + [2, …, C]` cards; round `r` has dealer `r mod P`
//! and trump `TRUMP_ROTATION[r mod 5]`. Scores accumulate; the highest total wins, ties going
//! to the lower seat.

use super::round::{Round, RoundConfig, RuleError, Seat, MAX_PLAYERS, TRUMP_ROTATION};
use rand::Rng;

/// Cards dealt in each round of a full game starting at `start_cards` for `players`.
pub fn round_sequence(players: u8, start_cards: u8) -> Result<Vec<u8>, RuleError> {
    RoundConfig {
        players,
        cards: start_cards,
        dealer: Seat(0),
        trump: None,
    }
    .validate()?;
    let mut seq: Vec<u8> = (1..=start_cards).rev().collect();
    seq.extend(std::iter::repeat_n(1, usize::from(players)));
    seq.extend(2..=start_cards);
    Ok(seq)
}

/// A full game in progress.
#[derive(Clone, Debug)]
pub struct FullGame {
    players: u8,
    sequence: Vec<u8>,
    next_round: usize,
    totals: [u32; MAX_PLAYERS],
}

impl FullGame {
    pub fn new(players: u8, start_cards: u8) -> Result<FullGame, RuleError> {
        Ok(FullGame {
            players,
            sequence: round_sequence(players, start_cards)?,
            next_round: 0,
            totals: [0; MAX_PLAYERS],
        })
    }

    pub fn rounds(&self) -> usize {
        self.sequence.len()
    }

    pub fn is_over(&self) -> bool {
        self.next_round == self.sequence.len()
    }

    /// Settings of round `index` (dealer and trump rotate, card count from the sequence).
    pub fn round_config(&self, index: usize) -> RoundConfig {
        RoundConfig {
            players: self.players,
            cards: self.sequence[index],
            dealer: Seat((index % usize::from(self.players)) as u8),
            trump: TRUMP_ROTATION[index % TRUMP_ROTATION.len()],
        }
    }

    /// Deals the next round, or `None` when the game is over.
    pub fn deal_next<R: Rng + ?Sized>(&mut self, rng: &mut R) -> Option<Round> {
        if self.is_over() {
            return None;
        }
        let round =
            Round::deal(self.round_config(self.next_round), rng).expect("sequence was validated");
        self.next_round += 1;
        Some(round)
    }

    /// Adds a finished round's scores to the totals.
    pub fn record(&mut self, round: &Round) {
        debug_assert!(round.is_over());
        for seat in round.seats() {
            self.totals[seat.index()] += round.score(seat);
        }
    }

    pub fn totals(&self) -> &[u32] {
        &self.totals[..usize::from(self.players)]
    }

    /// Highest total; ties go to the lower seat.
    pub fn leader(&self) -> Seat {
        let best = self
            .totals()
            .iter()
            .enumerate()
            .fold(0, |b, (i, &t)| if t > self.totals[b] { i } else { b });
        Seat(best as u8)
    }
}
