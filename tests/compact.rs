//! Compact input rows (`engine::encode::compact`): every encoding of every recorded position
//! (`$ENGINE_VECTORS/games.json`, default `tests/vectors`), for both encoder versions, survives
//! compact → expand bit for bit, and values the layout cannot hold are refused by column.

use engine::encode::compact::{compact, expand, CompactError};
use engine::encode::{encode, EncoderVersion, Encoding};
use engine::vectors::GamesFile;

fn same_bits(a: &Encoding, b: &Encoding) -> bool {
    a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

#[test]
fn every_recorded_encoding_round_trips_bit_for_bit() {
    let games =
        GamesFile::load(&engine::vectors::dir().join("games.json")).expect("games.json loads");
    let positions = games.positions().expect("every round replays");
    let decisions: usize = games.rounds.iter().map(|r| r.decisions.len()).sum();
    assert_eq!(positions.len(), decisions);
    for version in [EncoderVersion::V1, EncoderVersion::V2] {
        for (i, round) in positions.iter().enumerate() {
            let encoding = encode(round, round.to_act(), version);
            let row = compact(&encoding)
                .unwrap_or_else(|e| panic!("{version:?} decision {i} does not compact: {e}"));
            assert!(
                same_bits(&expand(&row), &encoding),
                "{version:?} decision {i}: expand(compact(x)) differs from x in its bits"
            );
        }
    }
}

#[test]
fn values_outside_the_layout_are_refused_by_column() {
    let games =
        GamesFile::load(&engine::vectors::dir().join("games.json")).expect("games.json loads");
    let round = games.positions().expect("every round replays")[0];
    let valid = encode(&round, round.to_act(), EncoderVersion::V2);
    compact(&valid).expect("the unaltered encoding compacts");
    for (column, value) in [
        (3, 0.5),                        // hand bit
        (110, -0.0),                     // played bit: −0 is not +0
        (60, 2.5),                       // trick play order: not an integer
        (70, 16.0),                      // trick play order: past a nibble
        (157, 1.0 / 3.0 + f32::EPSILON), // bid ratio: no k/d gives these bits
        (190, f32::NAN),                 // ratio
        (200, 200.0),                    // ratio: k past a signed byte
        (181, 1.0e-3),                   // trump one-hot bit
        (230, 1.0),                      // a column the encoder never fills
    ] {
        let mut encoding = valid;
        encoding[column] = value;
        let e: CompactError = compact(&encoding).expect_err("the altered encoding is refused");
        assert_eq!(e.column, column, "{e}");
        assert!(e.to_string().contains(&format!("column {column} ")), "{e}");
    }
}
