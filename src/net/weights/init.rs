//! A fresh BlobNet, initialised as PyTorch initialises one (spec §3.5).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{hex_sha256, Dims, FileDtype, Tensor, Weights};
use crate::net::{INPUT_DIM, POLICY_DIM};

impl Weights {
    /// A fresh BlobNet with the default dims, initialised as PyTorch does (spec §3.5).
    pub fn init(seed: u64) -> Weights {
        Weights::init_with_dims(Dims::default(), seed)
    }

    /// A fresh BlobNet of any size (tests use tiny ones): Xavier-uniform weights for every
    /// Linear, the same `in_proj_weight` in every layer (PyTorch deep-copies one layer), zero
    /// biases, LayerNorm 1/0, positional encoding ~ N(0, 0.02²). Deterministic in `seed`.
    ///
    /// Panics if `dims.input` is not [`INPUT_DIM`] or `dims.actions` not [`POLICY_DIM`].
    pub fn init_with_dims(dims: Dims, seed: u64) -> Weights {
        assert!(
            dims.input == INPUT_DIM && dims.actions == POLICY_DIM,
            "BlobNet reads {INPUT_DIM} inputs and writes {POLICY_DIM} actions"
        );
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut in_proj: Option<Vec<f32>> = None;
        let tensors = dims
            .state_dict()
            .into_iter()
            .map(|(key, shape)| {
                let len = shape.iter().product();
                let data = if key == "positional_encoding" {
                    (0..len).map(|_| 0.02 * standard_normal(&mut rng)).collect()
                } else if key.ends_with("in_proj_weight") {
                    in_proj
                        .get_or_insert_with(|| xavier_uniform(&mut rng, &shape))
                        .clone()
                } else if key.ends_with(".weight") && shape.len() == 2 {
                    xavier_uniform(&mut rng, &shape)
                } else if key.ends_with(".weight") {
                    vec![1.0; len]
                } else {
                    vec![0.0; len]
                };
                (key, Tensor { shape, data })
            })
            .collect();
        let mut weights = Weights {
            dims,
            tensors,
            dtype: FileDtype::F32,
            sha256: String::new(),
        };
        weights.sha256 = hex_sha256(&weights.to_safetensors());
        weights
    }
}

/// Xavier-uniform for a PyTorch `[out, in]` weight: U(-b, b) with b = √(6 / (in + out)).
fn xavier_uniform(rng: &mut ChaCha8Rng, shape: &[usize]) -> Vec<f32> {
    let (fan_out, fan_in) = (shape[0], shape[1]);
    let bound = (6.0 / (fan_in + fan_out) as f64).sqrt() as f32;
    (0..fan_out * fan_in)
        .map(|_| rng.random_range(-bound..bound))
        .collect()
}

/// One N(0, 1) draw (Box–Muller; `rand_distr` is not worth a dependency for one tensor).
fn standard_normal(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]: keeps ln finite
    let u2: f64 = rng.random();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}
