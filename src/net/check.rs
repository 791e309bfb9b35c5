//! `CheckBackend` (lc0's `network_check`): runs a backend and, on a sampled fraction of its
//! batches, the CPU reference too, keeping the largest and the 99th-percentile differences
//! and failing the batch when they pass a threshold. For running a GPU backend under watch.

use super::{Backend, BatchIn, BatchOut, NetError, POLICY_DIM};
use serde::Serialize;
use std::sync::{Arc, Mutex, MutexGuard};

/// Differences between the checked backend and the reference so far.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CheckStats {
    pub batches_checked: u64,
    pub rows_checked: u64,
    /// Largest |Δ| over policy entries and values.
    pub max_abs_diff: f32,
    /// Per checked row, the largest |Δ| of that row; kept to report percentiles.
    #[serde(skip)]
    row_diffs: Vec<f32>,
}

impl CheckStats {
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
    reference: Box<dyn Backend>,
    /// Check one batch in this many.
    every: u64,
    /// A checked batch with any |Δ| above this fails.
    threshold: f32,
    batches: u64,
    /// Shared so the run can report it after the backend moved to its thread.
    stats: Arc<Mutex<CheckStats>>,
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
            primary,
            reference,
            every: every.max(1),
            threshold,
            batches: 0,
            stats: Arc::default(),
            policy: vec![],
            value: vec![],
        }
    }

    /// A handle on the statistics that outlives the move of the backend into a ring.
    pub fn stats(&self) -> Arc<Mutex<CheckStats>> {
        self.stats.clone()
    }

    fn lock(&self) -> MutexGuard<'_, CheckStats> {
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Backend for CheckBackend {
    fn name(&self) -> &'static str {
        self.primary.name()
    }

    fn max_batch(&self) -> usize {
        self.primary.max_batch().min(self.reference.max_batch())
    }

    fn forward(&mut self, inp: BatchIn<'_>, out: BatchOut<'_>) -> Result<(), NetError> {
        let batch = self.batches;
        self.batches += 1;
        self.primary.forward(
            inp,
            BatchOut {
                policy: &mut *out.policy,
                value: &mut *out.value,
            },
        )?;
        if !batch.is_multiple_of(self.every) {
            return Ok(());
        }
        let rows = inp.rows();
        self.policy.resize(rows * POLICY_DIM, 0.0);
        self.value.resize(rows, 0.0);
        self.reference.forward(
            inp,
            BatchOut {
                policy: &mut self.policy,
                value: &mut self.value,
            },
        )?;
        let mut worst = 0.0f32;
        let mut stats = self.lock();
        for row in 0..rows {
            let p = &out.policy[row * POLICY_DIM..(row + 1) * POLICY_DIM];
            let q = &self.policy[row * POLICY_DIM..(row + 1) * POLICY_DIM];
            let value_diff = (out.value[row] - self.value[row]).abs();
            let d = p
                .iter()
                .zip(q)
                .map(|(a, b)| (a - b).abs())
                .fold(value_diff, nan_max);
            stats.row_diffs.push(d);
            worst = nan_max(worst, d);
        }
        stats.batches_checked += 1;
        stats.rows_checked += rows as u64;
        stats.max_abs_diff = nan_max(stats.max_abs_diff, worst);
        drop(stats);
        if worst.is_nan() || worst > self.threshold {
            return Err(NetError::Backend {
                backend: self.primary.name(),
                stage: "check against the CPU",
                message: format!(
                    "batch {batch}: |Δ| {worst:.3e} above the threshold {:.1e}",
                    self.threshold
                ),
            });
        }
        Ok(())
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
    use crate::net::bench::{all_legal_masks, encoder_like_inputs};
    use crate::net::cpu::CpuBackend;
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
    fn agreeing_backends_pass_and_a_wrong_one_fails() {
        let net = Arc::new(PreparedWeights::new(&Weights::init(0)));
        let cpu = || Box::new(CpuBackend::new(net.clone(), 16));
        let mut same = CheckBackend::new(cpu(), cpu(), 2, 1e-3);
        run(&mut same, 5).unwrap();
        let stats = same.lock().clone();
        assert_eq!(stats.batches_checked, 3, "batches 0, 2 and 4");
        assert_eq!(stats.rows_checked, 48);
        assert_eq!(stats.max_abs_diff, 0.0);
        assert_eq!(stats.p99_abs_diff(), 0.0);
        let mut wrong =
            CheckBackend::new(Box::new(UniformBackend { max_batch: 16 }), cpu(), 1, 1e-3);
        let err = run(&mut wrong, 1).unwrap_err();
        assert!(err.to_string().contains("batch 0"), "{err}");
        assert!(wrong.lock().max_abs_diff > 1e-3);
    }
}
