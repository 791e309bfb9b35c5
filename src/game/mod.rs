//! Blob (Oh Hell) rules as BlobMaster implements them (spec §1): cards, rounds, full games.
//!
//! This module owns the rules and nothing else: it knows no encoder, network or search.

mod card;
mod full;
mod round;

pub use card::{Card, CardSet, Suit, DECK_SIZE, RANKS};
pub use full::{round_sequence, FullGame};
pub use round::{
    trick_winner, Phase, Round, RoundConfig, RuleError, Seat, MAX_BID, MAX_PLAYERS, MIN_PLAYERS,
    TRUMP_ROTATION,
};

#[cfg(test)]
mod tests;
