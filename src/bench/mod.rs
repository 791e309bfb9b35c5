//! Forward throughput of any [`Backend`] on synthetic encoder-like rows: what `engine bench`
//! prints and what `benches/forward.rs` feeds criterion. [`run`] times direct `forward` calls
//! (for the GPU: through its staging slot, host copies included); [`run_in_flight`] times
//! batches through the batch ring with several in flight, as self-play runs them.
//!
//! [`sweep`] times a grid of such runs (`engine bench --sweep`) and recommends self-play
//! settings from it; [`search`] times whole searches on a fixed, seeded set of positions
//! (`engine bench --search`).

pub mod search;
pub mod sweep;

use std::time::{Duration, Instant};

use serde::Serialize;
use thiserror::Error;

use crate::net::synthetic::{all_legal_masks, encoder_like_inputs};
use crate::net::{Backend, BatchIn, BatchOut, NetError, POLICY_DIM};
use crate::ring::{drive, Batch, Client, Ring, RingError};

/// Warm-up before timing, so the cores are at full clock and the scratch buffers exist.
const WARM_UP: Duration = Duration::from_millis(300);

#[derive(Debug, Error)]
pub enum BenchError {
    #[error("allocating the ring's slots: {0}")]
    Slots(#[source] NetError),
    #[error(transparent)]
    Ring(#[from] RingError),
}

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
    /// The CPU backend's rayon threads, when known (`engine bench --sweep` on the CPU).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
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
            threads: None,
            seconds,
            evals_per_s: (batches as usize * batch) as f64 / seconds,
            us_per_batch: seconds * 1e6 / batches as f64,
            latency_us: latency_s * 1e6 / batches as f64,
        }
    }
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
/// (copies, graph launch, kernel, event wait, output check) minus the search and the copy of
/// the rows into the slot.
pub fn run_in_flight(
    backend: &mut dyn Backend,
    batch: usize,
    in_flight: usize,
    seconds: f64,
    seed: u64,
) -> Result<BenchResult, BenchError> {
    let name = backend.name();
    let slots = in_flight.max(1);
    let ring = Ring::new(backend, slots, batch).map_err(BenchError::Slots)?;
    let mut timer = InFlight {
        inputs: encoder_like_inputs(batch, seed),
        masks: all_legal_masks(batch),
        seconds,
        warm_up: Instant::now() + WARM_UP,
        submitted: vec![Instant::now(); slots],
        returned: 0,
        start: Instant::now(),
        batches: 0,
        latency: 0.0,
        elapsed: None,
    };
    std::thread::scope(|scope| {
        let ring = &ring;
        let server = scope.spawn(move || ring.serve(backend));
        // Even if the client panics, the backend thread ends and the scope can join it.
        let _close = ring.close_on_drop();
        let timed = drive(&[ring], slots, &mut timer);
        ring.close();
        let served = server.join().expect("ring server panicked");
        timed?;
        served?;
        let elapsed = timer.elapsed.expect("timing ends with a measure");
        Ok(BenchResult::timed(
            name,
            batch,
            slots,
            timer.batches,
            elapsed,
            timer.latency,
        ))
    })
}

/// [`run_in_flight`]'s client: every group resubmits its slot, rows untouched, until time is up.
struct InFlight {
    inputs: Vec<f32>,
    masks: Vec<u64>,
    seconds: f64,
    warm_up: Instant,
    /// When each group's batch was last submitted.
    submitted: Vec<Instant>,
    returned: usize,
    start: Instant,
    batches: u64,
    latency: f64,
    /// The timed span, once over.
    elapsed: Option<f64>,
}

impl Client for InFlight {
    type Error = RingError;

    fn fill(&mut self, group: usize, batches: &mut [Batch], _: usize) -> Result<(), RingError> {
        let batch = &mut batches[0];
        if self.elapsed.is_some() {
            batch.clear(); // time is up: drain
        } else {
            if batch.rows() == 0 {
                batch.push_rows(&self.inputs, &self.masks);
            }
            self.submitted[group] = Instant::now();
        }
        Ok(())
    }

    fn take(&mut self, group: usize, _: &[Batch]) -> Result<(), RingError> {
        if self.elapsed.is_some() {
            return Ok(());
        }
        let now = Instant::now();
        self.returned += 1;
        // Warm-up: for WARM_UP, and until every slot has come back once (the clock must not
        // count filling the pipeline).
        if now < self.warm_up || self.returned <= self.submitted.len() {
            self.start = now;
            return Ok(());
        }
        self.batches += 1;
        self.latency += (now - self.submitted[group]).as_secs_f64();
        let elapsed = (now - self.start).as_secs_f64();
        if elapsed >= self.seconds {
            self.elapsed = Some(elapsed);
        }
        Ok(())
    }
}
