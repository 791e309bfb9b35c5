//! Root-only randomness: Dirichlet exploration noise on a world's root priors, and the choice
//! of the move to play from the summed visit counts (temperature schedule, spec §4.10).

use crate::net::POLICY_DIM;
use rand::Rng;

/// Dirichlet noise mixed into each world's root priors in self-play:
/// `P' = (1 − epsilon)·P + epsilon·η`, `η ~ Dir(alpha, …, alpha)` over the legal actions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RootNoise {
    pub alpha: f32,
    pub epsilon: f32,
}

impl Default for RootNoise {
    /// BlobMaster's self-play values: α 0.3, ε 0.25.
    fn default() -> RootNoise {
        RootNoise {
            alpha: 0.3,
            epsilon: 0.25,
        }
    }
}

impl RootNoise {
    /// Mixes fresh noise into `priors` (one entry per legal action, summing to 1).
    pub fn apply<R: Rng + ?Sized>(&self, priors: &mut [f32], rng: &mut R) {
        let mut eta = [0.0f64; POLICY_DIM];
        let eta = &mut eta[..priors.len()];
        for e in eta.iter_mut() {
            *e = sample_gamma(f64::from(self.alpha), rng);
        }
        let sum: f64 = eta.iter().sum();
        if sum <= 0.0 {
            // Every draw underflowed (only possible for tiny alpha): no noise this time.
            return;
        }
        let eps = self.epsilon;
        for (p, e) in priors.iter_mut().zip(eta.iter()) {
            *p = (1.0 - eps) * *p + eps * (e / sum) as f32;
        }
    }
}

/// A Gamma(shape, 1) draw: Marsaglia–Tsang for shape ≥ 1, boosted by `U^(1/shape)` below 1.
fn sample_gamma<R: Rng + ?Sized>(shape: f64, rng: &mut R) -> f64 {
    if shape < 1.0 {
        let u: f64 = rng.random();
        return sample_gamma(shape + 1.0, rng) * u.powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = standard_normal(rng);
        let v = (1.0 + c * x).powi(3);
        if v <= 0.0 {
            continue;
        }
        let u: f64 = rng.random();
        if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return d * v;
        }
    }
}

/// A standard normal draw (Box–Muller, one of the pair).
fn standard_normal<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]: ln is finite
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// BlobMaster's self-play temperature for the `searched_moves`-th searched decision of a
/// round (all seats counted, forced moves not): 1 for 0–9, 0.5 for 10–19, 0.1 from 20.
pub fn temperature(searched_moves: u32) -> f32 {
    match searched_moves {
        0..=9 => 1.0,
        10..=19 => 0.5,
        _ => 0.1,
    }
}

/// Picks an action with probability ∝ `visits^(1/temperature)`; temperature 0 picks the most
/// visited action, breaking ties uniformly at random.
///
/// # Panics
/// If no action has a visit (a search always visits at least one root child).
pub fn choose_action<R: Rng + ?Sized>(
    visits: &[u32; POLICY_DIM],
    temperature: f32,
    rng: &mut R,
) -> u8 {
    let max = *visits.iter().max().expect("52 entries");
    assert!(max > 0, "choose_action needs at least one visited action");
    if temperature <= 0.0 {
        let mut best = 0;
        let mut ties = 0;
        for (a, &v) in visits.iter().enumerate() {
            if v == max {
                ties += 1;
                if rng.random_range(0..ties) == 0 {
                    best = a;
                }
            }
        }
        return best as u8;
    }
    // Scale by the maximum first so a small temperature cannot overflow.
    let power = 1.0 / f64::from(temperature);
    let weight = |v: u32| (f64::from(v) / f64::from(max)).powf(power);
    let total: f64 = visits.iter().map(|&v| weight(v)).sum();
    let mut target = rng.random::<f64>() * total;
    let mut last = 0;
    for (a, &v) in visits.iter().enumerate() {
        if v == 0 {
            continue;
        }
        last = a;
        target -= weight(v);
        if target < 0.0 {
            return a as u8;
        }
    }
    last as u8
}
