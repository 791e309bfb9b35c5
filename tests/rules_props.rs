//! Property tests: random legal play over random tables.

use engine::encode::{encode, EncoderVersion};
use engine::game::{Phase, Round, RoundConfig, Seat, TRUMP_ROTATION};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Documented range of each encoder dim (spec §2.3), for a table of `players`.
fn dim_range(i: usize, players: f32) -> (f32, f32) {
    match i {
        0..=51 | 104..=155 | 174..=188 | 190..=200 => (0.0, 1.0),
        52..=103 => (0.0, players),
        // bid/trick ÷ seat 0's shrinking hand: up to 13 bid with 1 card left
        156..=173 => (-1.0, 13.0),
        189 | 201 => (-1.0, 1.0),
        _ => (0.0, 0.0),
    }
}

fn random_round(seed: u64) -> (Round, ChaCha8Rng) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let players = rng.random_range(3..=8u8);
    let cards = rng.random_range(1..=RoundConfig::max_cards(players));
    let config = RoundConfig {
        players,
        cards,
        dealer: Seat(rng.random_range(0..players)),
        trump: TRUMP_ROTATION[rng.random_range(0..5)],
    };
    (Round::deal(config, &mut rng).unwrap(), rng)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn random_play_is_consistent(seed in any::<u64>()) {
        let (mut round, mut rng) = random_round(seed);
        let players = round.players();
        let mut decisions = 0;
        while !round.is_over() {
            let mask = round.legal_mask();
            prop_assert!(mask != 0, "a seat to act always has a legal action");
            if round.phase() == Phase::Playing {
                prop_assert_eq!(mask & !round.hand(round.to_act()).0, 0, "plays come from the hand");
            }
            for seat in round.seats() {
                let enc = encode(&round, seat, EncoderVersion::V2);
                for (i, &x) in enc.iter().enumerate() {
                    let (lo, hi) = dim_range(i, f32::from(players));
                    prop_assert!(x.is_finite() && x >= lo && x <= hi, "dim {} = {} outside [{}, {}]", i, x, lo, hi);
                }
            }
            let legal: Vec<u8> = (0..52).filter(|&a| mask >> a & 1 == 1).collect();
            round.try_apply(legal[rng.random_range(0..legal.len())]).unwrap();
            decisions += 1;
        }
        let cards = u32::from(round.cards_dealt());
        prop_assert_eq!(decisions, u32::from(players) * (cards + 1));
        let tricks: u32 = round.seats().map(|s| u32::from(round.tricks_won(s))).sum();
        prop_assert_eq!(tricks, cards);
        prop_assert_ne!(round.bid_total(), cards, "the dealer's hook keeps bids off the card count");
        for s in round.seats() {
            let made = round.bid(s) == Some(round.tricks_won(s));
            prop_assert_eq!(round.score(s), if made { 10 + u32::from(round.bid(s).unwrap()) } else { 0 });
            prop_assert!(round.hand(s).is_empty());
        }
    }
}
