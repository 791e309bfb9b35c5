//! The worked golden cases of spec §2.3 (P=4, C=5, trump ♠, dealer 0).
use super::*;
use crate::game::{Card, CardSet, RoundConfig};

fn cards(list: &[(Suit, u8)]) -> CardSet {
    list.iter().map(|&(s, r)| Card::new(s, r - 2)).collect()
}

fn start() -> Round {
    use Suit::*;
    let hands = [
        cards(&[
            (Spades, 2),
            (Spades, 13),
            (Hearts, 14),
            (Clubs, 5),
            (Diamonds, 9),
        ]),
        cards(&[
            (Spades, 3),
            (Spades, 12),
            (Hearts, 13),
            (Clubs, 11),
            (Diamonds, 2),
        ]),
        cards(&[
            (Spades, 14),
            (Hearts, 4),
            (Clubs, 10),
            (Clubs, 12),
            (Diamonds, 12),
        ]),
        cards(&[
            (Spades, 7),
            (Hearts, 8),
            (Hearts, 9),
            (Clubs, 14),
            (Diamonds, 13),
        ]),
    ];
    Round::new(
        RoundConfig {
            players: 4,
            cards: 5,
            dealer: Seat(0),
            trump: Some(Spades),
        },
        &hands,
    )
    .unwrap()
}

fn check(round: &Round, expected: &str) {
    let me = round.to_act();
    let got = encode(round, me, EncoderVersion::V2);
    let mut want = [0.0f32; 256];
    for pair in expected.split_whitespace() {
        let (i, v) = pair.split_once(':').unwrap();
        want[i.parse::<usize>().unwrap()] = v.parse().unwrap();
    }
    for i in 0..256 {
        assert!(
            (got[i] - want[i]).abs() < 1e-6,
            "dim {i}: got {} want {}",
            got[i],
            want[i]
        );
    }
    let v1 = encode(round, me, EncoderVersion::V1);
    assert_eq!(&v1[..191], &got[..191]);
    assert!(v1[191..].iter().all(|&x| x == 0.0), "v1 leaves 191.. zero");
}

fn play(round: &mut Round, suit: Suit, rank: u8) {
    round.apply(Card::new(suit, rank - 2).index());
}

#[test]
fn golden_cases_a_b_c() {
    let mut r = start();
    for b in [2, 1, 1] {
        r.apply(b);
    }
    assert_eq!(r.legal_mask(), 0b111101);
    check(&r, "0:1 11:1 25:1 29:1 46:1 156:-1 157:0.4 158:0.2 159:0.2 172:-1 174:0.384615 177:0.5 178:1 182:1 183:1 186:0.384615 191:0.153846 192:0.153846 193:0.076923 194:0.076923 195:0.076923 196:0.5 197:1 200:0.458333 201:0.2");
    r.apply(0);
    play(&mut r, Suit::Spades, 12);
    play(&mut r, Suit::Spades, 14);
    check(&r, "5:1 19:1 20:1 38:1 50:1 62:1 64:2 114:1 116:1 157:0.4 158:0.2 159:0.2 172:0.2 174:0.384615 176:0.75 177:0.5 178:1 184:1 186:0.384615 189:-0.2 190:0.5 191:0.076923 192:0.076923 193:0.153846 194:0.076923 195:0.076923 198:1 199:0.5 200:0.416667 201:-1");
    play(&mut r, Suit::Spades, 7);
    play(&mut r, Suit::Spades, 2);
    assert_eq!(r.to_act(), Seat(2));
    check(&r, "15:1 34:1 36:1 49:1 104:1 109:1 114:1 116:1 157:0.5 158:0.25 159:0.25 166:0.25 172:0.25 173:0.25 174:0.384615 175:0.2 176:0.5 177:0.5 178:1 184:1 186:0.307692 187:0.076923 188:0.2 193:0.076923 194:0.153846 195:0.076923 201:-1");
}
