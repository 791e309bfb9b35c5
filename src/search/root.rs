//! Root-only randomness: Dirichlet exploration noise on a world's root priors, and the choice
//! of the move to play from the summed visit counts (temperature schedule, spec §4.10).

use crate::net::POLICY_DIM;
use rand::Rng;
use serde::{Deserialize, Serialize};

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

/// Self-play's move temperature, by how many searched decisions of the round came before (all
/// seats counted, forced moves not): a list of `(from, temperature)` steps, the first from 0,
/// strictly ascending. The default is BlobMaster's: 1 for 0–9, 0.5 for 10–19, 0.1 from 20.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Vec<(u32, f32)>", into = "Vec<(u32, f32)>")]
pub struct TemperatureSchedule(Vec<(u32, f32)>);

impl TemperatureSchedule {
    /// The steps, checked: a temperature is finite and ≥ 0 (0 plays the most visited move).
    pub fn new(steps: Vec<(u32, f32)>) -> Result<TemperatureSchedule, String> {
        if steps.first().map(|s| s.0) != Some(0) {
            return Err("the first step must start at move 0, e.g. [[0, 1.0], [10, 0.5]]".into());
        }
        if let Some(w) = steps.windows(2).find(|w| w[1].0 <= w[0].0) {
            return Err(format!(
                "steps must start at strictly ascending moves: {} then {}",
                w[0].0, w[1].0
            ));
        }
        if let Some(&(from, t)) = steps.iter().find(|s| !(s.1.is_finite() && s.1 >= 0.0)) {
            return Err(format!(
                "the temperature from move {from} is {t}: it must be finite and ≥ 0"
            ));
        }
        Ok(TemperatureSchedule(steps))
    }

    /// The temperature of the `searched_moves`-th searched decision of a round.
    pub fn at(&self, searched_moves: u32) -> f32 {
        let step = self.0.partition_point(|&(from, _)| from <= searched_moves);
        self.0[step - 1].1
    }
}

impl Default for TemperatureSchedule {
    fn default() -> TemperatureSchedule {
        TemperatureSchedule(vec![(0, 1.0), (10, 0.5), (20, 0.1)])
    }
}

impl TryFrom<Vec<(u32, f32)>> for TemperatureSchedule {
    type Error = String;
    fn try_from(steps: Vec<(u32, f32)>) -> Result<TemperatureSchedule, String> {
        TemperatureSchedule::new(steps)
    }
}

impl From<TemperatureSchedule> for Vec<(u32, f32)> {
    fn from(schedule: TemperatureSchedule) -> Vec<(u32, f32)> {
        schedule.0
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
