//! BlobMaster's 256-float state encoder (spec §2), bit-exact, quirks included.
//! (Legal masks are `Round::legal_mask`, a 52-bit mask.)
//!
//! Every feature is computed for one seat ("me") from what that seat may see: its own hand,
//! the public history and the public hand sizes. Ratios are computed in f64 and rounded once
//! to f32, as Python does, so the floats are bit-identical to BlobMaster's.
//!
//! Quirks copied on purpose (they are what BlobMaster's nets were trained on):
//! - bid/trick features are divided by `n0`, seat 0's *current* hand size (see [`bid_normaliser`]);
//! - bid/trick slots are absolute seats, unbid = −1, seats beyond the table = 0;
//! - the current trick holds play order 1..P at `52 + card`, not seats;
//! - dim 201 (v2) defaults to −1.

pub mod compact;
pub mod compact_layout;

use crate::game::{Phase, Round, Seat, Suit};

/// Width of one encoded state (BlobMaster's v1/v2 encoder).
pub const INPUT_DIM: usize = 256;
/// Width of the action space: bids 0..=13 and card indices 0..=51 share one 52-wide vector.
pub const POLICY_DIM: usize = 52;

/// Encoder layout. V1 is every existing BlobMaster checkpoint's (dims 191..256 zero); V2 is
/// BlobMaster HEAD's (191..=201 filled). In settings and metadata: `v1`, `v2`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum EncoderVersion {
    V1,
    #[default]
    V2,
}

impl EncoderVersion {
    /// The name in settings, metadata and flags.
    pub fn name(self) -> &'static str {
        match self {
            EncoderVersion::V1 => "v1",
            EncoderVersion::V2 => "v2",
        }
    }
}

/// One encoded state.
pub type Encoding = [f32; INPUT_DIM];

/// Normaliser of every bid/trick feature: seat 0's current hand size if non-zero, else
/// (cards played this round) / players, else 0 (then those features read 0).
pub fn bid_normaliser(round: &Round) -> u32 {
    let seat0 = round.hand(Seat(0)).len();
    if seat0 > 0 {
        seat0
    } else {
        round.played().len() / u32::from(round.players())
    }
}

/// Writes the encoding of `round` as seen by `me` into `out` (every one of the 256 floats).
pub fn encode_into(round: &Round, me: Seat, version: EncoderVersion, out: &mut Encoding) {
    out.fill(0.0);
    let players = u32::from(round.players());
    let hand = round.hand(me);
    for c in hand.iter() {
        out[usize::from(c.index())] = 1.0;
    }
    for (i, c) in round.trick().iter().enumerate() {
        out[52 + usize::from(c.index())] = (i + 1) as f32;
    }
    for c in round.played().iter() {
        out[104 + usize::from(c.index())] = 1.0;
    }

    let n0 = f64::from(bid_normaliser(round));
    let ratio = |x: f64, d: f64| if d > 0.0 { (x / d) as f32 } else { 0.0 };
    for seat in round.seats() {
        out[156 + seat.index()] = match round.bid(seat) {
            None => -1.0,
            Some(b) => ratio(f64::from(b), n0),
        };
        out[164 + seat.index()] = ratio(f64::from(round.tricks_won(seat)), n0);
    }
    let my_bid = round.bid(me);
    let my_tricks = round.tricks_won(me);
    out[172] = my_bid.map_or(-1.0, |b| ratio(f64::from(b), n0));
    out[173] = ratio(f64::from(my_tricks), n0);

    // Every seat is dealt the same number of cards, so my cards played = dealt − in hand.
    let in_hand = hand.len();
    let dealt = u32::from(round.cards_dealt());
    let my_played = dealt - in_hand;
    let completed = f64::from(round.completed_tricks());
    // "cd": my hand + my played cards, but 0 once my hand is empty.
    let cd = if in_hand > 0 { f64::from(dealt) } else { 0.0 };
    out[174] = (cd / 13.0) as f32;
    out[175] = ratio(completed, cd);
    let rel = (u32::from(me.0) + players - u32::from(round.dealer().0)) % players;
    out[176] = (f64::from(rel) / f64::from(players)) as f32;
    out[177] = (f64::from(players) / 8.0) as f32;
    if let Some(t) = round.trump() {
        out[178 + t.index()] = 1.0;
    }
    let bidding = round.phase() == Phase::Bidding;
    let dealer_bidding = bidding && me == round.dealer();
    out[182] = if dealer_bidding { 1.0 } else { 0.0 };
    out[183 + round.phase() as usize] = 1.0;

    let total = f64::from(dealt); // in hand + played, whether or not the hand is empty
    out[186] = (f64::from(in_hand) / 13.0) as f32;
    out[187] = (f64::from(my_played) / 13.0) as f32;
    out[188] = ratio(completed, total);
    if let Some(b) = my_bid {
        out[189] = ratio(f64::from(my_tricks) - f64::from(b), total);
    }
    if round.phase() == Phase::Playing {
        out[190] = (round.trick().len() as f64 / f64::from(players)) as f32;
    }
    if version == EncoderVersion::V1 {
        return;
    }

    let trumps = round
        .trump()
        .map_or(crate::game::CardSet::EMPTY, |t| hand.of_suit(t));
    out[191] = (f64::from(trumps.len()) / 13.0) as f32;
    for suit in Suit::ALL {
        let cards = hand.of_suit(suit);
        out[192 + suit.index()] = (f64::from(cards.len()) / 13.0) as f32;
        let top = cards.0 >> (13 * suit.index());
        out[196 + suit.index()] = if top >> 12 & 1 == 1 {
            1.0
        } else if top >> 11 & 1 == 1 {
            0.5
        } else {
            0.0
        };
    }
    if !trumps.is_empty() {
        let rank_sum: u32 = trumps.iter().map(|c| u32::from(c.rank()) + 2).sum();
        out[200] = ((f64::from(rank_sum) / f64::from(trumps.len()) - 2.0) / 12.0) as f32;
    }
    out[201] = -1.0;
    if dealer_bidding {
        let others: u32 = round
            .seats()
            .filter(|&s| s != me)
            .filter_map(|s| round.bid(s))
            .map(u32::from)
            .sum();
        let forbidden = total - f64::from(others);
        if (0.0..=total).contains(&forbidden) {
            out[201] = ratio(forbidden, total);
        }
    }
}

/// The encoding of `round` as seen by `me`.
pub fn encode(round: &Round, me: Seat, version: EncoderVersion) -> Encoding {
    let mut out = [0.0; INPUT_DIM];
    encode_into(round, me, version, &mut out);
    out
}

#[cfg(test)]
mod tests;
