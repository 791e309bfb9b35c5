//! Forward throughput of any [`Backend`] on random encoder-like rows: what `engine bench`
//! prints and what `benches/forward.rs` feeds criterion.

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::{Backend, BatchIn, BatchOut, NetError, INPUT_DIM, POLICY_DIM};

/// Warm-up before timing, so the cores are at full clock and the scratch buffers exist.
const WARM_UP: Duration = Duration::from_millis(300);

/// One timed run: `batches` forward calls of `batch` rows in `seconds`.
#[derive(Clone, Debug, Serialize)]
pub struct BenchResult {
    pub backend: &'static str,
    pub batch: usize,
    pub batches: u64,
    pub seconds: f64,
    pub evals_per_s: f64,
    pub us_per_batch: f64,
}

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

/// Times `backend` on batches of `batch` encoder-like rows (all actions legal) for about
/// `seconds`, after a short warm-up.
pub fn run(
    backend: &mut dyn Backend,
    batch: usize,
    seconds: f64,
    seed: u64,
) -> Result<BenchResult, NetError> {
    let inputs = encoder_like_inputs(batch, seed);
    let masks = all_legal_masks(batch);
    let mut policy = vec![0.0; batch * POLICY_DIM];
    let mut value = vec![0.0; batch];
    let mut forward = |backend: &mut dyn Backend| {
        backend.forward(
            BatchIn {
                inputs: &inputs,
                masks: &masks,
            },
            BatchOut {
                policy: &mut policy,
                value: &mut value,
            },
        )
    };
    let start = Instant::now();
    while start.elapsed() < WARM_UP {
        forward(backend)?;
    }
    let start = Instant::now();
    let mut batches = 0u64;
    while batches == 0 || start.elapsed().as_secs_f64() < seconds {
        forward(backend)?;
        batches += 1;
    }
    let elapsed = start.elapsed().as_secs_f64();
    Ok(BenchResult {
        backend: backend.name(),
        batch,
        batches,
        seconds: elapsed,
        evals_per_s: (batches as usize * batch) as f64 / elapsed,
        us_per_batch: elapsed * 1e6 / batches as f64,
    })
}
