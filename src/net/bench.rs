//! Forward throughput of any [`Backend`] on random encoder-like rows: what `engine bench`
//! prints and what `benches/forward.rs` feeds criterion. [`run`] times direct `forward` calls
//! (for the GPU: through its staging slot, host copies included); [`run_in_flight`] times
//! batches through the batch ring with several in flight, as self-play runs them.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::{Backend, BatchIn, BatchOut, NetError, INPUT_DIM, POLICY_DIM};
use crate::ring::{Ring, RingError};

/// Warm-up before timing, so the cores are at full clock and the scratch buffers exist.
const WARM_UP: Duration = Duration::from_millis(300);

/// One timed run: `batches` batches of `batch` rows in `seconds`.
#[derive(Clone, Debug, Serialize)]
pub struct BenchResult {
    /// The backend's name ("cpu", "cuda").
    #[serde(rename = "device")]
    pub backend: &'static str,
    pub batch: usize,
    /// Batches in flight through the ring (0: direct `forward` calls).
    pub in_flight: usize,
    pub batches: u64,
    pub seconds: f64,
    pub evals_per_s: f64,
    /// Wall time per batch (`seconds / batches`).
    pub us_per_batch: f64,
    /// Mean time from submitting a batch to holding its outputs.
    pub latency_us: f64,
}

impl BenchResult {
    /// The figures of `batches` batches of `batch` rows timed over `seconds`, their
    /// submit-to-outputs times summing to `latency_s`.
    fn timed(
        backend: &'static str,
        batch: usize,
        in_flight: usize,
        batches: u64,
        seconds: f64,
        latency_s: f64,
    ) -> BenchResult {
        BenchResult {
            backend,
            batch,
            in_flight,
            batches,
            seconds,
            evals_per_s: (batches as usize * batch) as f64 / seconds,
            us_per_batch: seconds * 1e6 / batches as f64,
            latency_us: latency_s * 1e6 / batches as f64,
        }
    }
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
    // One call at a time: each batch's latency is its share of the wall time.
    Ok(BenchResult::timed(
        backend.name(),
        batch,
        0,
        batches,
        elapsed,
        elapsed,
    ))
}

/// Times batches of `batch` encoder-like rows through a [`Ring`] of `in_flight` slots (the
/// backend's own page-locked slots on a GPU) for about `seconds`: each slot is filled once and
/// resubmitted as soon as its outputs are back, so a batch costs what it costs self-play
/// (copies, graph launch, kernel, event wait, output check) minus the search.
pub fn run_in_flight(
    backend: &mut dyn Backend,
    batch: usize,
    in_flight: usize,
    seconds: f64,
    seed: u64,
) -> Result<BenchResult, RingError> {
    let name = backend.name();
    let slots = in_flight.max(1);
    let ring =
        Ring::for_backend(slots, batch, backend).map_err(|e| RingError::Backend(e.to_string()))?;
    let inputs = encoder_like_inputs(batch, seed);
    let masks = all_legal_masks(batch);
    std::thread::scope(|scope| {
        let server = scope.spawn(|| ring.serve(backend));
        let timed = (|| {
            let mut queue = VecDeque::new();
            for _ in 0..slots {
                let mut slot = ring.acquire()?;
                slot.push_rows(&inputs, &masks);
                queue.push_back((ring.submit(slot)?, Instant::now()));
            }
            // Warm-up: for WARM_UP, and until every slot has come back once (the clock must
            // not count filling the pipeline).
            let warm_up = Instant::now() + WARM_UP;
            let (mut start, mut batches, mut latency) = (Instant::now(), 0u64, 0.0f64);
            let mut returned = 0;
            loop {
                let (ticket, submitted) = queue.pop_front().expect("slots in flight");
                let slot = ring.wait(ticket)?;
                let now = Instant::now();
                returned += 1;
                if now < warm_up || returned <= slots {
                    start = now;
                } else {
                    batches += 1;
                    latency += (now - submitted).as_secs_f64();
                    if (now - start).as_secs_f64() >= seconds {
                        // Drain: every slot back before the ring closes.
                        for (ticket, _) in queue.drain(..) {
                            ring.wait(ticket)?;
                        }
                        return Ok((batches, (now - start).as_secs_f64(), latency));
                    }
                }
                // The slot keeps its rows: submit it again as is.
                queue.push_back((ring.submit(slot)?, Instant::now()));
            }
        })();
        ring.close();
        let served = server.join().expect("ring server panicked");
        let (batches, elapsed, latency) = timed?;
        served?;
        Ok(BenchResult::timed(
            name, batch, slots, batches, elapsed, latency,
        ))
    })
}
