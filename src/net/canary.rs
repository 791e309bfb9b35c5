//! Start-up canary: before a run does any work, a backend evaluates fixed encoder-like rows.
//! Every output must be finite ([`check_finite`]: a net whose forward overflows is refused
//! whatever backend runs it), and a device backend must agree with the CPU reference within
//! FP16 tolerances (the tolerances of the GPU parity tests; [`run`]). A backend that fails
//! never reaches self-play.

use super::check::nan_max;
use super::synthetic::encoder_like_inputs;
use super::{evaluate, Backend, NetError, POLICY_DIM};
use thiserror::Error;

/// Rows the canary evaluates.
pub const CANARY_ROWS: usize = 64;
/// Largest allowed relative L2 distance between the policies.
pub const MAX_POLICY_REL_L2: f64 = 2e-3;
/// Largest allowed |Δvalue| on any row.
pub const MAX_VALUE_DIFF: f32 = 5e-3;

/// How far the candidate was from the reference.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CanaryReport {
    pub policy_rel_l2: f64,
    pub max_value_diff: f32,
}

impl CanaryReport {
    pub fn passed(&self) -> bool {
        self.policy_rel_l2 <= MAX_POLICY_REL_L2 && self.max_value_diff <= MAX_VALUE_DIFF
    }
}

/// Masks of varied shapes: everything legal, bids 0..=k, a few scattered cards.
fn canary_masks() -> Vec<u64> {
    (0..CANARY_ROWS as u64)
        .map(|i| match i % 3 {
            0 => (1 << POLICY_DIM) - 1,
            1 => (1 << (i % 13 + 2)) - 1,
            _ => (0x9E37_79B9_7F4A_7C15u64.wrapping_mul(i + 1) & ((1 << POLICY_DIM) - 1)) | 1,
        })
        .collect()
}

/// Why [`check_finite`] refused a net.
#[derive(Debug, Error)]
pub enum CanaryError {
    #[error(transparent)]
    Net(#[from] NetError),
    #[error(
        "{source_name}: the {backend} forward gives {output} = {value} on canary row {row}: a \
         net whose forward is not finite is refused"
    )]
    NonFinite {
        /// The weights file (or other name of the net).
        source_name: String,
        backend: &'static str,
        output: &'static str,
        row: usize,
        value: f32,
    },
}

/// Runs the canary rows through `backend` and refuses a non-finite policy or value;
/// `source_name` names the net in the error.
pub fn check_finite(backend: &mut dyn Backend, source_name: &str) -> Result<(), CanaryError> {
    let (policy, value) = evaluate(
        backend,
        &encoder_like_inputs(CANARY_ROWS, SEED),
        &canary_masks(),
    )?;
    let first_bad = |output: &'static str, values: &[f32], width: usize| {
        values
            .iter()
            .position(|x| !x.is_finite())
            .map(|i| (output, i / width, values[i]))
    };
    match first_bad("policy", &policy, POLICY_DIM).or_else(|| first_bad("value", &value, 1)) {
        None => Ok(()),
        Some((output, row, value)) => Err(CanaryError::NonFinite {
            source_name: source_name.to_string(),
            backend: backend.name(),
            output,
            row,
            value,
        }),
    }
}

/// Seed of the canary's inputs.
const SEED: u64 = 0x00CA_4A81;

/// Compares `candidate` with `reference` on the canary rows.
pub fn run(
    candidate: &mut dyn Backend,
    reference: &mut dyn Backend,
) -> Result<CanaryReport, NetError> {
    let inputs = encoder_like_inputs(CANARY_ROWS, SEED);
    let masks = canary_masks();
    let (p_ref, v_ref) = evaluate(reference, &inputs, &masks)?;
    let (p, v) = evaluate(candidate, &inputs, &masks)?;
    let diff2: f64 = p
        .iter()
        .zip(&p_ref)
        .map(|(a, b)| f64::from(a - b).powi(2))
        .sum();
    let norm2: f64 = p_ref.iter().map(|&b| f64::from(b).powi(2)).sum();
    // NaN anywhere makes both figures NaN, which fails `passed`.
    let max_value_diff = v
        .iter()
        .zip(&v_ref)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, nan_max);
    Ok(CanaryReport {
        policy_rel_l2: (diff2 / norm2).sqrt(),
        max_value_diff,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::cpu::CpuBackend;
    use crate::net::weights::{PreparedWeights, Weights};
    use crate::net::UniformBackend;
    use std::sync::Arc;

    #[test]
    fn cpu_passes_and_a_wrong_backend_fails() {
        let net = Arc::new(PreparedWeights::new(&Weights::init(0)));
        let mut reference = CpuBackend::new(net.clone(), CANARY_ROWS);
        let same = run(&mut CpuBackend::new(net, CANARY_ROWS), &mut reference).unwrap();
        assert!(same.passed(), "{same:?}");
        let wrong = run(
            &mut UniformBackend {
                max_batch: CANARY_ROWS,
            },
            &mut reference,
        )
        .unwrap();
        assert!(!wrong.passed(), "{wrong:?}");
    }
}
