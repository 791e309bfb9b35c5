//! The sequential probability ratio test of an arena (`--sprt elo0,elo1`).
//!
//! The observations are the deals' outcomes for net A (win, draw, loss: see [`super::stats`]),
//! and the hypotheses are on their expected score `s`: H0 `s = L(elo0)` against H1
//! `s = L(elo1)`, with `L(e) = 1 / (1 + 10^(−e/400))` the logistic Elo curve. The statistic is
//! fishtest's generalized log-likelihood ratio for a multinomial with a given expectation (its
//! `LLR_logistic` on trinomial results; M. Van den Bergh, "Support of MLE for multinomial
//! distributions"): under each hypothesis the win/draw/loss probabilities are the maximum
//! likelihood estimate among the distributions whose expectation is that `s`,
//! `q_i = p_i / (1 + x (a_i − s))` with `p` the observed frequencies, `a = (0, ½, 1)` and `x`
//! the root of `Σ p_i (a_i − s) / (1 + x (a_i − s)) = 0`, and
//! `LLR = N · Σ p_i ln(q1_i / q0_i)`. No draw ratio or draw Elo has to be assumed. As in
//! fishtest, a count of zero is replaced by 0.001 so that the estimate exists (a run of draws
//! alone then has a finite LLR that falls as the draws pile up).
//!
//! Wald's bounds: the test accepts H1 once `LLR ≥ ln((1 − β) / α)` and H0 once
//! `LLR ≤ ln(β / (1 − α))`. The arena checks it after every deal in deal order, so where it
//! stops does not depend on the threads.

use super::stats::{score_from_elo, Tally};
use serde::Serialize;
use std::fmt;

/// Default type I error (accepting H1 when H0 holds) and type II error.
pub const DEFAULT_ALPHA: f64 = 0.05;
pub const DEFAULT_BETA: f64 = 0.05;
/// Largest |Elo| a hypothesis may name: beyond it the expected score is within 0.3% of 0 or 1.
pub const MAX_ELO: f64 = 1000.0;

/// A test of `elo0` (H0) against `elo1` (H1), with error rates `alpha` and `beta`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Sprt {
    pub elo0: f64,
    pub elo1: f64,
    pub alpha: f64,
    pub beta: f64,
}

/// What the test concluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Decision {
    /// A is not better by `elo1`: the LLR reached the lower bound.
    H0,
    /// A is better than by `elo0`: the LLR reached the upper bound.
    H1,
    /// Neither bound was reached.
    #[serde(rename = "none")]
    None,
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Decision::H0 => "H0",
            Decision::H1 => "H1",
            Decision::None => "none",
        })
    }
}

/// The test's state over a tally, as reported.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct SprtReport {
    #[serde(flatten)]
    pub test: Sprt,
    pub llr: f64,
    pub lower_bound: f64,
    pub upper_bound: f64,
    pub decision: Decision,
}

impl Sprt {
    /// Checks the settings: finite Elos with `elo0 < elo1` and `|elo| ≤` [`MAX_ELO`], error
    /// rates in (0, 1) with `alpha + beta < 1` (so that the bounds lie either side of 0).
    pub fn new(elo0: f64, elo1: f64, alpha: f64, beta: f64) -> Result<Sprt, String> {
        if !(elo0.is_finite() && elo1.is_finite() && elo0 < elo1) {
            return Err(format!(
                "the SPRT needs elo0 < elo1, both finite (got {elo0}, {elo1})"
            ));
        }
        if elo0.abs() > MAX_ELO || elo1.abs() > MAX_ELO {
            return Err(format!(
                "the SPRT's Elos must lie within ±{MAX_ELO} (got {elo0}, {elo1})"
            ));
        }
        let rate = |r: f64| r > 0.0 && r < 1.0;
        if !(rate(alpha) && rate(beta) && alpha + beta < 1.0) {
            return Err(format!(
                "the SPRT's alpha and beta must lie in (0, 1) with alpha + beta < 1 (got {alpha}, \
                 {beta})"
            ));
        }
        Ok(Sprt {
            elo0,
            elo1,
            alpha,
            beta,
        })
    }

    /// Wald's bounds `(ln(β / (1 − α)), ln((1 − β) / α))`.
    pub fn bounds(&self) -> (f64, f64) {
        (
            (self.beta / (1.0 - self.alpha)).ln(),
            ((1.0 - self.beta) / self.alpha).ln(),
        )
    }

    /// The generalized log-likelihood ratio of H1 against H0 for `wins`, `draws` and
    /// `losses` (see the module documentation).
    pub fn llr(&self, wins: u64, draws: u64, losses: u64) -> f64 {
        let counts = [losses, draws, wins].map(|c| if c == 0 { 1e-3 } else { c as f64 });
        let n: f64 = counts.iter().sum();
        let pdf: [(f64, f64); 3] = [0.0, 0.5, 1.0]
            .iter()
            .zip(counts)
            .map(|(&a, c)| (a, c / n))
            .collect::<Vec<_>>()
            .try_into()
            .expect("three outcomes");
        let (s0, s1) = (score_from_elo(self.elo0), score_from_elo(self.elo1));
        let (x0, x1) = (mle_multiplier(&pdf, s0), mle_multiplier(&pdf, s1));
        n * pdf
            .iter()
            .map(|&(a, p)| p * ((x0 * (a - s0)).ln_1p() - (x1 * (a - s1)).ln_1p()))
            .sum::<f64>()
    }

    pub fn decide(&self, llr: f64) -> Decision {
        let (lower, upper) = self.bounds();
        if llr >= upper {
            Decision::H1
        } else if llr <= lower {
            Decision::H0
        } else {
            Decision::None
        }
    }

    /// The test over `tally`'s outcomes.
    pub fn report(&self, tally: &Tally) -> SprtReport {
        let llr = self.llr(tally.wins, tally.draws, tally.losses);
        let (lower_bound, upper_bound) = self.bounds();
        SprtReport {
            test: *self,
            llr,
            lower_bound,
            upper_bound,
            decision: self.decide(llr),
        }
    }
}

/// The `x` with `Σ p_i (a_i − s) / (1 + x (a_i − s)) = 0`, by bisection: the sum falls from +∞
/// to −∞ as `x` runs over `(−1 / max(a − s), −1 / min(a − s))`, the range where every
/// `1 + x (a_i − s)` is positive (`s` must lie strictly between the smallest and largest `a`).
fn mle_multiplier(pdf: &[(f64, f64)], s: f64) -> f64 {
    let sum = |x: f64| {
        pdf.iter()
            .map(|&(a, p)| p * (a - s) / (1.0 + x * (a - s)))
            .sum::<f64>()
    };
    let (lowest, highest) = pdf
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &(a, _)| {
            (l.min(a - s), h.max(a - s))
        });
    debug_assert!(lowest < 0.0 && highest > 0.0, "s {s} outside the outcomes");
    let (mut lo, mut hi) = (-1.0 / highest, -1.0 / lowest);
    loop {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            return mid;
        }
        if sum(mid) > 0.0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arena::stats::DealScore;

    fn sprt(elo0: f64, elo1: f64) -> Sprt {
        Sprt::new(elo0, elo1, DEFAULT_ALPHA, DEFAULT_BETA).unwrap()
    }

    fn close(got: f64, want: f64, tolerance: f64) {
        assert!(
            (got - want).abs() <= tolerance,
            "got {got}, want {want} (± {tolerance})"
        );
    }

    #[test]
    fn bounds_are_walds() {
        let (lower, upper) = sprt(0.0, 5.0).bounds();
        close(lower, (0.05f64 / 0.95).ln(), 1e-15);
        close(upper, 19f64.ln(), 1e-15);
        close(upper, 2.944_438_979_166_44, 1e-12);
        let (lower, upper) = Sprt::new(0.0, 5.0, 0.01, 0.2).unwrap().bounds();
        close(lower, (0.2f64 / 0.99).ln(), 1e-15);
        close(upper, 80f64.ln(), 1e-15);
    }

    /// Reference values from an independent implementation of the same statistic (Python,
    /// the secular equation solved by bisection).
    #[test]
    fn llr_matches_the_reference() {
        let cases = [
            // (elo0, elo1, W, D, L, LLR)
            (0.0, 10.0, 300, 100, 100, 6.949_110_819_696_439),
            (0.0, 10.0, 60, 30, 10, 2.005_543_991_301_651),
            (0.0, 10.0, 100, 800, 100, -2.057_343_825_017_869_5),
            (0.0, 10.0, 1000, 1000, 1000, -1.863_498_504_634_493_8),
            (0.0, 10.0, 5, 5, 4, 0.035_779_662_541_250_125),
            (-3.0, 1.0, 52, 40, 48, 0.070_963_210_824_265_18),
            (0.0, 5.0, 0, 100, 0, -1.441_906_164_816_636_2),
            (0.0, 400.0, 0, 2, 0, -3.403_493_042_749_288),
            (0.0, 5.0, 10, 0, 0, 0.142_875_867_061_314_36),
        ];
        for (elo0, elo1, w, d, l, want) in cases {
            close(
                sprt(elo0, elo1).llr(w, d, l),
                want,
                1e-9 * want.abs().max(1.0),
            );
        }
        // Symmetric hypotheses, symmetric results: no evidence either way.
        close(sprt(-5.0, 5.0).llr(30, 40, 30), 0.0, 1e-12);
        close(
            sprt(0.0, 10.0).llr(0, 0, 0),
            -1.863_498_504_634_494e-6,
            1e-15,
        );
    }

    /// Near the hypotheses the exact statistic agrees with fishtest's quadratic approximation,
    /// `N (s1 − s0)(2ŝ − s0 − s1) / (2 σ̂²)`.
    #[test]
    fn llr_is_close_to_the_gsprt_approximation_near_the_hypotheses() {
        let (w, d, l) = (520u64, 1000u64, 480u64);
        let n = (w + d + l) as f64;
        let s = (w as f64 + 0.5 * d as f64) / n;
        let var =
            (w as f64 * (1.0 - s).powi(2) + d as f64 * (0.5 - s).powi(2) + l as f64 * s.powi(2))
                / n;
        let (s0, s1) = (score_from_elo(0.0), score_from_elo(10.0));
        let approx = n * (s1 - s0) * (2.0 * s - s0 - s1) / (2.0 * var);
        close(sprt(0.0, 10.0).llr(w, d, l), approx, 1e-3);
    }

    #[test]
    fn decisions() {
        let test = sprt(0.0, 10.0);
        // Clearly better: far above elo1.
        assert_eq!(test.decide(test.llr(300, 100, 100)), Decision::H1);
        // Clearly equal: thousands of balanced deals.
        assert_eq!(test.decide(test.llr(3000, 3000, 3000)), Decision::H0);
        // Inconclusive: too few deals.
        assert_eq!(test.decide(test.llr(5, 5, 4)), Decision::None);
        assert_eq!(test.decide(test.llr(0, 0, 0)), Decision::None);
        // Clearly worse is H0 as well.
        assert_eq!(test.decide(test.llr(100, 100, 300)), Decision::H0);
        // The bounds themselves decide.
        let (lower, upper) = test.bounds();
        assert_eq!(test.decide(upper), Decision::H1);
        assert_eq!(test.decide(lower), Decision::H0);
    }

    /// Deals drawn one by one from a fixed win/draw/loss distribution, the test checked after
    /// each: returns the decision and the deals it took (or `None` within `max` deals).
    fn sequential(test: &Sprt, probs: [f64; 3], max: u64, seed: u64) -> (Decision, u64) {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut tally = Tally::default();
        for n in 1..=max {
            let u: f64 = rng.random();
            let (a, b) = if u < probs[0] {
                (1, 0)
            } else if u < probs[0] + probs[1] {
                (0, 0)
            } else {
                (0, 1)
            };
            tally.add(&DealScore {
                a_points: a,
                a_rounds: 1,
                b_points: b,
                b_rounds: 1,
                ..DealScore::default()
            });
            let decision = test.report(&tally).decision;
            if decision != Decision::None {
                return (decision, n);
            }
        }
        (Decision::None, max)
    }

    #[test]
    fn sequential_runs_stop_on_the_right_side() {
        let test = sprt(0.0, 30.0);
        // A clearly better net (score 0.65, about +108 Elo): H1 well within the budget.
        for seed in 0..5 {
            let (decision, deals) = sequential(&test, [0.5, 0.3, 0.2], 10_000, seed);
            assert_eq!(decision, Decision::H1, "seed {seed}");
            assert!(deals < 1000, "seed {seed}: {deals} deals");
        }
        // Equal nets (score 0.5): H0.
        for seed in 0..5 {
            let (decision, _) = sequential(&test, [0.3, 0.4, 0.3], 100_000, seed);
            assert_eq!(decision, Decision::H0, "seed {seed}");
        }
        // Equal nets, a budget far too small to tell 0 from 30 Elo: inconclusive.
        assert_eq!(
            sequential(&test, [0.3, 0.4, 0.3], 10, 0),
            (Decision::None, 10)
        );
        // Identical nets draw every deal: H0 after a few.
        let (decision, deals) = sequential(&sprt(0.0, 200.0), [0.0, 1.0, 0.0], 100, 0);
        assert_eq!((decision, deals), (Decision::H0, 5));
    }

    #[test]
    fn bad_settings_are_refused() {
        for (elo0, elo1, alpha, beta) in [
            (5.0, 0.0, 0.05, 0.05),
            (5.0, 5.0, 0.05, 0.05),
            (f64::NAN, 5.0, 0.05, 0.05),
            (0.0, f64::INFINITY, 0.05, 0.05),
            (0.0, 2000.0, 0.05, 0.05),
            (0.0, 5.0, 0.0, 0.05),
            (0.0, 5.0, 0.05, 1.0),
            (0.0, 5.0, 0.6, 0.5),
            (0.0, 5.0, f64::NAN, 0.05),
        ] {
            assert!(
                Sprt::new(elo0, elo1, alpha, beta).is_err(),
                "{elo0} {elo1} {alpha} {beta}"
            );
        }
        assert!(Sprt::new(-1.75, 0.25, 0.05, 0.05).is_ok());
    }

    #[test]
    fn reports_serialize_with_their_decision() {
        let test = sprt(0.0, 10.0);
        let mut tally = Tally::default();
        tally.add(&DealScore::default());
        let json = serde_json::to_value(test.report(&tally)).unwrap();
        assert_eq!(json["decision"], "none");
        assert_eq!(json["elo0"], 0.0);
        assert_eq!(json["alpha"], 0.05);
        assert!(json["llr"].is_f64() && json["upper_bound"].is_f64());
    }
}
