//! `CheckBackend` (lc0's `network_check`): runs a backend and, on a sampled fraction of its
//! batches, the CPU reference too, keeping the largest and the 99th-percentile differences
//! and failing the batch when they pass a threshold. For running a GPU backend under watch.
//!
//! It is the backend it watches, seen through: its slots are the watched backend's slots and
//! its launches are that backend's launches; a sampled batch is compared when its owner waits
//! for it ([`Pending::wait`]), on the worker's thread. So `--check-every` watches the path a
//! run takes without it.

use super::{Backend, BatchIn, BatchOut, NetError, Pending, SlotMemory, SlotView, POLICY_DIM};
use serde::Serialize;
use std::sync::{Arc, Mutex, MutexGuard};

/// Differences between the checked backend and the reference so far.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CheckStats {
    pub batches_checked: u64,
    pub rows_checked: u64,
    /// Largest |Δ| over policy entries and values.
    pub max_abs_diff: f32,
    /// Per checked row, the largest |Δ| of that row, to report percentiles: every row up to
    /// [`CheckStats::KEPT_ROWS`], then a uniform sample of that many (a long run's memory
    /// stays bounded).
    #[serde(skip)]
    row_diffs: Vec<f32>,
}

impl CheckStats {
    /// Most per-row differences kept (4 MiB).
    pub const KEPT_ROWS: usize = 1 << 20;

    /// Records the largest difference of one more checked row (reservoir sampling, with a
    /// fixed hash of the row's number as its random draw, so runs are reproducible).
    fn keep_row_diff(&mut self, diff: f32) {
        let seen = self.rows_checked;
        if self.row_diffs.len() < Self::KEPT_ROWS {
            self.row_diffs.push(diff);
            return;
        }
        let draw = seen.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29) % (seen + 1);
        if let Some(slot) = self.row_diffs.get_mut(draw as usize) {
            *slot = diff;
        }
    }

    /// The 99th percentile of the per-row largest differences (0 before any check).
    pub fn p99_abs_diff(&self) -> f32 {
        let mut d = self.row_diffs.clone();
        d.sort_by(f32::total_cmp);
        d.get((d.len() * 99 / 100).min(d.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
    }
}

pub struct CheckBackend {
    primary: Box<dyn Backend>,
    /// Batches launched or run so far (the sample is every `every`-th).
    batches: u64,
    every: u64,
    checker: Arc<Checker>,
}

/// What compares a batch with the reference: shared by the pending batches of every worker.
struct Checker {
    backend: &'static str,
    reference: Mutex<Reference>,
    /// A checked batch with any |Δ| above this fails.
    threshold: f32,
    /// Shared so the run can report it after the backend moved to its thread.
    stats: Arc<Mutex<CheckStats>>,
}

struct Reference {
    backend: Box<dyn Backend>,
    /// The batch's inputs, copied once: a GPU slot's inputs are write-combined memory, slow to
    /// read more than once.
    inputs: Vec<f32>,
    masks: Vec<u64>,
    policy: Vec<f32>,
    value: Vec<f32>,
}

impl CheckBackend {
    /// Checks one batch in `every` (at least 1) against `reference`.
    pub fn new(
        primary: Box<dyn Backend>,
        reference: Box<dyn Backend>,
        every: u64,
        threshold: f32,
    ) -> CheckBackend {
        CheckBackend {
            checker: Arc::new(Checker {
                backend: primary.name(),
                reference: Mutex::new(Reference {
                    backend: reference,
                    inputs: vec![],
                    masks: vec![],
                    policy: vec![],
                    value: vec![],
                }),
                threshold,
                stats: Arc::default(),
            }),
            primary,
            batches: 0,
            every: every.max(1),
        }
    }

    /// A handle on the statistics that outlives the move of the backend into a ring.
    pub fn stats(&self) -> Arc<Mutex<CheckStats>> {
        self.checker.stats.clone()
    }

    /// The number of the next batch, if it is one to check.
    fn sample(&mut self) -> Option<u64> {
        let batch = self.batches;
        self.batches += 1;
        batch.is_multiple_of(self.every).then_some(batch)
    }
}

impl Checker {
    /// Runs the reference on `done`'s inputs and compares its outputs with `done`'s.
    fn compare(&self, batch: u64, done: SlotView<'_>) -> Result<(), NetError> {
        let rows = done.masks.len();
        let mut reference = lock(&self.reference);
        let Reference {
            backend,
            inputs,
            masks,
            policy,
            value,
        } = &mut *reference;
        inputs.clear();
        inputs.extend_from_slice(done.inputs);
        masks.clear();
        masks.extend_from_slice(done.masks);
        policy.resize(rows * POLICY_DIM, 0.0);
        value.resize(rows, 0.0);
        backend.forward(
            BatchIn {
                inputs: &inputs[..],
                masks: &masks[..],
            },
            BatchOut {
                policy: &mut policy[..],
                value: &mut value[..],
            },
        )?;
        let mut worst = 0.0f32;
        let mut stats = lock(&self.stats);
        for row in 0..rows {
            let p = &done.policy[row * POLICY_DIM..(row + 1) * POLICY_DIM];
            let q = &policy[row * POLICY_DIM..(row + 1) * POLICY_DIM];
            let value_diff = (done.value[row] - value[row]).abs();
            let d = p
                .iter()
                .zip(q)
                .map(|(a, b)| (a - b).abs())
                .fold(value_diff, nan_max);
            stats.keep_row_diff(d);
            stats.rows_checked += 1;
            worst = nan_max(worst, d);
        }
        stats.batches_checked += 1;
        stats.max_abs_diff = nan_max(stats.max_abs_diff, worst);
        if worst.is_nan() || worst > self.threshold {
            return Err(NetError::CheckFailed {
                backend: self.backend,
                batch,
                diff: worst,
                threshold: self.threshold,
            });
        }
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Backend for CheckBackend {
    fn name(&self) -> &'static str {
        self.primary.name()
    }

    fn max_batch(&self) -> usize {
        let reference = lock(&self.checker.reference).backend.max_batch();
        self.primary.max_batch().min(reference)
    }

    fn forward(&mut self, inp: BatchIn<'_>, out: BatchOut<'_>) -> Result<(), NetError> {
        let sampled = self.sample();
        self.primary.forward(
            inp,
            BatchOut {
                policy: &mut *out.policy,
                value: &mut *out.value,
            },
        )?;
        match sampled {
            Some(batch) => self.checker.compare(
                batch,
                SlotView {
                    inputs: inp.inputs,
                    masks: inp.masks,
                    policy: out.policy,
                    value: out.value,
                },
            ),
            None => Ok(()),
        }
    }

    fn alloc_slot(&mut self, capacity: usize) -> Result<Box<dyn SlotMemory>, NetError> {
        self.primary.alloc_slot(capacity)
    }

    unsafe fn launch(
        &mut self,
        slot: &mut dyn SlotMemory,
        rows: usize,
    ) -> Result<Box<dyn Pending>, NetError> {
        let sampled = self.sample();
        // SAFETY: the caller's obligations are passed on unchanged.
        let pending = unsafe { self.primary.launch(slot, rows) }?;
        Ok(match sampled {
            Some(batch) => Box::new(CheckedPending {
                pending,
                batch,
                checker: self.checker.clone(),
            }),
            None => pending,
        })
    }
}

/// A sampled batch: compared with the reference once the watched backend has finished it.
struct CheckedPending {
    pending: Box<dyn Pending>,
    batch: u64,
    checker: Arc<Checker>,
}

impl Pending for CheckedPending {
    fn wait(self: Box<Self>, slot: &dyn SlotMemory, rows: usize) -> Result<(), NetError> {
        self.pending.wait(slot, rows)?;
        // Read only now: until the wait, the device may still be writing the outputs.
        self.checker.compare(self.batch, slot.view().rows(rows))
    }
}

/// The larger of two differences, NaN if either is NaN (so a NaN output always fails).
pub fn nan_max(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else {
        a.max(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::cpu::CpuBackend;
    use crate::net::synthetic::{all_legal_masks, encoder_like_inputs};
    use crate::net::weights::{PreparedWeights, Weights};
    use crate::net::UniformBackend;
    use std::sync::Arc;

    fn run(backend: &mut CheckBackend, batches: usize) -> Result<(), NetError> {
        let (inputs, masks) = (encoder_like_inputs(16, 3), all_legal_masks(16));
        let (mut p, mut v) = (vec![0.0; 16 * POLICY_DIM], vec![0.0; 16]);
        for _ in 0..batches {
            backend.forward(
                BatchIn {
                    inputs: &inputs,
                    masks: &masks,
                },
                BatchOut {
                    policy: &mut p,
                    value: &mut v,
                },
            )?;
        }
        Ok(())
    }

    #[test]
    fn the_kept_row_differences_are_bounded_and_still_give_the_percentile() {
        let mut stats = CheckStats::default();
        let rows = 2 * CheckStats::KEPT_ROWS;
        for i in 0..rows {
            // Uniform on [0, 1): the 99th percentile is about 0.99.
            stats.keep_row_diff((i * 7919 % rows) as f32 / rows as f32);
            stats.rows_checked += 1;
        }
        assert_eq!(stats.row_diffs.len(), CheckStats::KEPT_ROWS);
        let p99 = stats.p99_abs_diff();
        assert!((p99 - 0.99).abs() < 0.005, "{p99}");
    }

    #[test]
    fn agreeing_backends_pass_and_a_wrong_one_fails() {
        let net = Arc::new(PreparedWeights::new(&Weights::init(0)));
        let cpu = || Box::new(CpuBackend::new(net.clone(), 16));
        let mut same = CheckBackend::new(cpu(), cpu(), 2, 1e-3);
        run(&mut same, 5).unwrap();
        let stats = same.stats().lock().unwrap().clone();
        assert_eq!(stats.batches_checked, 3, "batches 0, 2 and 4");
        assert_eq!(stats.rows_checked, 48);
        assert_eq!(stats.max_abs_diff, 0.0);
        assert_eq!(stats.p99_abs_diff(), 0.0);
        let mut wrong =
            CheckBackend::new(Box::new(UniformBackend { max_batch: 16 }), cpu(), 1, 1e-3);
        let err = run(&mut wrong, 1).unwrap_err();
        assert!(
            matches!(err, NetError::CheckFailed { batch: 0, diff, .. } if diff > 1e-3),
            "{err}"
        );
        assert!(wrong.stats().lock().unwrap().max_abs_diff > 1e-3);
    }
}
