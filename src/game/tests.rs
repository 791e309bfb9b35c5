use super::*;

fn card(s: &str) -> Card {
    let (rank, suit) = s.split_at(s.len() - 1);
    let r = [
        "2", "3", "4", "5", "6", "7", "8", "9", "10", "J", "Q", "K", "A",
    ]
    .iter()
    .position(|&x| x == rank)
    .unwrap();
    let suit = match suit {
        "S" => Suit::Spades,
        "H" => Suit::Hearts,
        "C" => Suit::Clubs,
        _ => Suit::Diamonds,
    };
    Card::new(suit, r as u8)
}

fn hand(cards: &str) -> CardSet {
    cards.split_whitespace().map(card).collect()
}

fn round(trump: Option<Suit>, hands: &[&str]) -> Round {
    let hands: Vec<CardSet> = hands.iter().map(|h| hand(h)).collect();
    let cards = hands[0].len() as u8;
    Round::new(
        RoundConfig {
            players: hands.len() as u8,
            cards,
            dealer: Seat(0),
            trump,
        },
        &hands,
    )
    .unwrap()
}

fn bids(mask: u64) -> Vec<u8> {
    (0..14).filter(|&b| mask >> b & 1 == 1).collect()
}

#[test]
fn dealer_may_not_make_bids_sum_to_cards() {
    let mut r = round(Some(Suit::Spades), &["2S 3S", "4S 5S", "6S 7S"]);
    assert_eq!(r.to_act(), Seat(1), "bidding starts left of the dealer");
    assert_eq!(bids(r.legal_mask()), vec![0, 1, 2]);
    r.apply(1);
    r.apply(0);
    assert_eq!(r.to_act(), Seat(0), "dealer bids last");
    assert_eq!(
        bids(r.legal_mask()),
        vec![0, 2],
        "1 would make the bids sum to 2 cards"
    );
}

#[test]
fn dealer_hook_out_of_range_forbids_nothing() {
    let mut r = round(None, &["2S 3S", "4S 5S", "6S 7S"]);
    r.apply(2);
    r.apply(2);
    assert_eq!(r.forbidden_bid(), None, "others already bid 4 > 2 cards");
    assert_eq!(bids(r.legal_mask()), vec![0, 1, 2]);
    let mut r = round(None, &["2S 3S", "4S 5S", "6S 7S"]);
    r.apply(0);
    r.apply(0);
    assert_eq!(
        bids(r.legal_mask()),
        vec![0, 1],
        "forbidden bid 2 = all cards"
    );
}

#[test]
fn only_the_dealer_is_restricted() {
    let mut r = round(None, &["2S 3S", "4S 5S", "6S 7S"]);
    r.apply(1);
    assert_eq!(
        bids(r.legal_mask()),
        vec![0, 1, 2],
        "seat 2 could complete the sum but is not the dealer"
    );
}

#[test]
fn must_follow_suit_when_able() {
    let mut r = round(Some(Suit::Spades), &["2H 3S", "4H 5C", "6D 7S"]);
    for b in [0, 0, 0] {
        r.apply(b);
    }
    assert_eq!(r.phase(), Phase::Playing);
    assert_eq!(r.to_act(), Seat(1), "dealer + 1 leads");
    r.apply(card("5C").index());
    // seat 2 has no club: anything goes (no obligation to trump)
    assert_eq!(r.legal_mask(), hand("6D 7S").0);
    r.apply(card("6D").index());
    assert!(r.is_void(Seat(2), Suit::Clubs));
    // seat 0 has no club either
    assert_eq!(r.legal_mask(), hand("2H 3S").0);
    r.apply(card("2H").index());
    assert_eq!(
        r.tricks_won(Seat(1)),
        1,
        "off-suit cards never win: 5♣ led and highest club"
    );
    assert_eq!(r.to_act(), Seat(1), "winner leads");
    r.apply(card("4H").index());
    assert_eq!(r.legal_mask(), hand("7S").0);
    assert!(!r.is_legal(card("2H").index()));
}

#[test]
fn trump_beats_led_suit() {
    let trick = [card("AH"), card("2S"), card("KH")];
    assert_eq!(trick_winner(&trick, Some(Suit::Spades)), 1);
    assert_eq!(trick_winner(&trick, Some(Suit::Clubs)), 0);
    let trick = [card("AH"), card("2S"), card("3S"), card("KD")];
    assert_eq!(trick_winner(&trick, Some(Suit::Spades)), 2, "highest trump");
}

#[test]
fn no_trump_highest_of_led_suit() {
    let trick = [card("5D"), card("AS"), card("9D"), card("AC")];
    assert_eq!(trick_winner(&trick, None), 2);
}

#[test]
fn scoring_exact_bid_only() {
    let mut r = round(Some(Suit::Spades), &["AS", "2H", "3H"]);
    r.apply(0); // seat 1
    r.apply(1); // seat 2
    r.apply(1); // dealer: 0 forbidden (0+1+0 = 1)
    assert_eq!(r.legal_mask(), hand("2H").0);
    r.apply(card("2H").index());
    r.apply(card("3H").index());
    r.apply(card("AS").index());
    assert!(r.is_over());
    assert_eq!(r.tricks_won(Seat(0)), 1);
    assert_eq!(
        (r.score(Seat(0)), r.score(Seat(1)), r.score(Seat(2))),
        (11, 10, 0)
    );
    assert_eq!(r.value_target(Seat(2)), -1.0);
    assert!((r.value_target(Seat(1)) - (20.0 / 23.0 - 1.0)).abs() < 1e-7);
}

#[test]
fn illegal_actions_rejected() {
    let mut r = round(None, &["2S 3S", "4S 5S", "6S 7S"]);
    assert!(r.try_apply(3).is_err(), "bid above cards dealt");
    assert!(r.try_apply(2).is_ok());
}

#[test]
fn invalid_deals_rejected() {
    let cfg = RoundConfig {
        players: 3,
        cards: 1,
        dealer: Seat(0),
        trump: None,
    };
    assert!(Round::new(cfg, &[hand("2S"), hand("2S"), hand("3S")]).is_err());
    assert!(Round::new(cfg, &[hand("2S 4S"), hand("5S"), hand("3S")]).is_err());
    assert!(Round::new(RoundConfig { players: 9, ..cfg }, &[]).is_err());
    assert!(Round::new(
        RoundConfig {
            players: 4,
            cards: 14,
            ..cfg
        },
        &[]
    )
    .is_err());
    assert!(Round::new(
        RoundConfig {
            dealer: Seat(3),
            ..cfg
        },
        &[hand("2S"), hand("4S"), hand("3S")]
    )
    .is_err());
}

#[test]
fn full_game_sequence_and_rotation() {
    assert_eq!(round_sequence(5, 7).unwrap().len(), 18);
    assert_eq!(round_sequence(3, 3).unwrap(), vec![3, 2, 1, 1, 1, 1, 2, 3]);
    assert!(round_sequence(4, 14).is_err());
    let g = FullGame::new(4, 3).unwrap();
    assert_eq!(g.rounds(), 9, "[3, 2, 1] + [1] * 4 + [2, 3]");
    let c = g.round_config(7);
    assert_eq!(
        (c.cards, c.dealer, c.trump),
        (2, Seat(3), Some(Suit::Clubs))
    );
    assert_eq!(g.round_config(4).trump, None);
}

#[test]
fn deal_is_seeded_and_valid() {
    use rand::SeedableRng;
    let cfg = RoundConfig {
        players: 4,
        cards: 13,
        dealer: Seat(1),
        trump: None,
    };
    let a = Round::deal(cfg, &mut rand_chacha::ChaCha8Rng::seed_from_u64(7)).unwrap();
    let b = Round::deal(cfg, &mut rand_chacha::ChaCha8Rng::seed_from_u64(7)).unwrap();
    assert_eq!(a, b);
    let all: CardSet = a
        .seats()
        .fold(CardSet::EMPTY, |s, seat| s.union(a.hand(seat)));
    assert_eq!(all, CardSet::DECK);
}

#[test]
fn as_dealt_is_the_deal_and_replaying_the_history_returns() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
    for _ in 0..100 {
        let players = rng.random_range(3..=8);
        let cards = rng.random_range(1..=RoundConfig::max_cards(players));
        let dealt = Round::deal_random(players, cards, &mut rng).unwrap();
        let mut round = dealt;
        loop {
            assert_eq!(round.as_dealt(), dealt);
            let mut replayed = round.as_dealt();
            round
                .history()
                .for_each(|(_, action)| replayed.apply(action));
            assert_eq!(replayed, round);
            if round.is_over() {
                break;
            }
            let legal: Vec<u8> = (0..52).filter(|&a| round.is_legal(a)).collect();
            round.apply(legal[rng.random_range(0..legal.len())]);
        }
    }
}

#[test]
fn history_is_every_action_in_order_with_its_seat() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    for _ in 0..200 {
        let players = rng.random_range(3..=8);
        let config = RoundConfig {
            players,
            cards: rng.random_range(1..=RoundConfig::max_cards(players)),
            dealer: Seat(rng.random_range(0..players)),
            trump: TRUMP_ROTATION[rng.random_range(0..5)],
        };
        let mut round = Round::deal(config, &mut rng).unwrap();
        let mut taken = Vec::new();
        while !round.is_over() {
            assert_eq!(round.history().collect::<Vec<_>>(), taken);
            let legal: Vec<u8> = (0..52).filter(|&a| round.is_legal(a)).collect();
            let action = legal[rng.random_range(0..legal.len())];
            taken.push((round.to_act(), action));
            round.apply(action);
        }
        assert_eq!(round.history().collect::<Vec<_>>(), taken);
    }
}
