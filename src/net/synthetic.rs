//! Synthetic network rows for benchmarks and start-up checks: no game is played to make them.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{INPUT_DIM, POLICY_DIM};

/// `rows` rows that look like encoder output (spec §2.3): a hand, a trick in play order,
/// played cards as 0/1 bits, bid and trick ratios, one-hots and fractions, zero context.
pub fn encoder_like_inputs(rows: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut inputs = vec![0.0; rows * INPUT_DIM];
    for row in inputs.chunks_exact_mut(INPUT_DIM) {
        let mut set_random =
            |range: std::ops::Range<usize>, count: usize, value: &dyn Fn(usize) -> f32| {
                for n in 0..count {
                    row[rng.random_range(range.clone())] = value(n);
                }
            };
        set_random(0..52, 13, &|_| 1.0); // hand
        set_random(52..104, 3, &|n| (n + 1) as f32); // current trick, play order
        set_random(104..156, 20, &|_| 1.0); // cards played this round
        for x in &mut row[156..202] {
            *x = match rng.random_range(0..4) {
                0 => 0.0,
                1 => 1.0,
                2 => -1.0,
                _ => rng.random_range(0.0..1.5),
            };
        }
    }
    inputs
}

/// Every action legal, in every row.
pub fn all_legal_masks(rows: usize) -> Vec<u64> {
    vec![(1 << POLICY_DIM) - 1; rows]
}
