//! The arena's statistics, from per-deal paired results.
//!
//! # The model
//! A deal is the arena's unit of observation: it is played once per seat rotation, so both nets
//! hold every seat equally often on the same cards and the luck of the deal cancels within it
//! (the paired design of chess's game pairs with colours reversed, with `players` games to the
//! pair). Deals are independent (each from its own random stream). Two summaries come from each
//! deal:
//!
//! - **The score difference** `d = (A's mean round score) − (B's mean round score)` over the
//!   deal's rotations. The report is the mean of `d` over deals with a two-sided 95% Student-t
//!   confidence interval, `mean ± t(0.975, n − 1) · sd / √n` (`sd` with `n − 1` in the
//!   denominator): exact for normal `d`, and the t quantile (not z = 1.96) keeps short matches
//!   honest.
//! - **The deal's outcome** for A: a win when `d > 0`, a draw when `d = 0`, a loss when `d < 0`,
//!   scored 1, ½ and 0: the trinomial (win/draw/loss) model of cutechess-cli and fishtest,
//!   applied to deals instead of games. Its mean `s` is the share of deals A takes, and the Elo
//!   difference is the logistic one, `Elo = −400 · log10(1/s − 1)` (a 10× odds ratio per 400
//!   points): a "deal Elo", the chance that A outscores B on a deal, not a rating of single
//!   rounds. Its 95% interval maps the Student-t interval of `s` (the per-deal scores' sample
//!   standard deviation) through the same function; an end outside (0, 1) is infinite, as is
//!   the Elo of a match A won (or lost) on every deal. The likelihood of superiority is cutechess's,
//!   `LOS = Φ((W − L) / √(W + L))` (draws carry no information on which net is better).
//!
//! The SPRT on these outcomes is in [`super::sprt`].

use std::f64::consts::PI;

use crate::game::{Round, Seat};

/// One deal's points over its rotations: net A's and B's summed round scores, and the
/// seat-rounds each net played (A holds `⌊P/2⌋` seats of each rotation, B the others).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DealScore {
    pub a_points: u64,
    pub a_rounds: u64,
    pub b_points: u64,
    pub b_rounds: u64,
    /// Per side (0 = A), how near its searches' worlds came to the true deal.
    pub beliefs: [BeliefAccuracy; 2],
}

/// How near a side's searched worlds came to the true deal: over its searches and each
/// search's worlds, the other seats' cards the world dealt, and how many of them it dealt to
/// the seat that holds them. The referee counts this after each search, from the true round;
/// a search never sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BeliefAccuracy {
    pub cards: u64,
    pub right: u64,
}

impl BeliefAccuracy {
    /// Counts the worlds of one search by `me` against `truth`, the round it searched.
    pub fn add_search<'a>(
        &mut self,
        worlds: impl IntoIterator<Item = &'a Round>,
        truth: &Round,
        me: Seat,
    ) {
        for world in worlds {
            for seat in truth.seats().filter(|&s| s != me) {
                let held = truth.hand(seat);
                self.cards += u64::from(held.len());
                self.right += u64::from(world.hand(seat).intersection(held).len());
            }
        }
    }

    pub fn add(&mut self, other: &BeliefAccuracy) {
        self.cards += other.cards;
        self.right += other.right;
    }

    /// The share of cards dealt to the right seat (`None` before any: a side that does not
    /// search).
    pub fn share(&self) -> Option<f64> {
        (self.cards > 0).then(|| self.right as f64 / self.cards as f64)
    }
}

/// A deal's outcome for net A.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Win,
    Draw,
    Loss,
}

impl DealScore {
    /// A's mean round score minus B's (0 for a deal with no rounds).
    pub fn difference(&self) -> f64 {
        let mean = |points: u64, rounds: u64| points as f64 / rounds.max(1) as f64;
        mean(self.a_points, self.a_rounds) - mean(self.b_points, self.b_rounds)
    }

    /// The sign of [`DealScore::difference`], compared exactly (in integers).
    pub fn outcome(&self) -> Outcome {
        let a = u128::from(self.a_points) * u128::from(self.b_rounds.max(1));
        let b = u128::from(self.b_points) * u128::from(self.a_rounds.max(1));
        match a.cmp(&b) {
            std::cmp::Ordering::Greater => Outcome::Win,
            std::cmp::Ordering::Equal => Outcome::Draw,
            std::cmp::Ordering::Less => Outcome::Loss,
        }
    }
}

/// Running totals over deals, added one at a time (in deal order, for results that do not
/// depend on which thread finished first).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tally {
    pub deals: u64,
    pub wins: u64,
    pub draws: u64,
    pub losses: u64,
    a_points: u64,
    a_rounds: u64,
    b_points: u64,
    b_rounds: u64,
    /// Per side, over all its searches.
    pub beliefs: [BeliefAccuracy; 2],
    /// Mean of the per-deal differences so far (Welford).
    mean: f64,
    /// Sum of squared deviations of the differences from their mean (Welford).
    m2: f64,
}

impl Tally {
    pub fn add(&mut self, deal: &DealScore) {
        self.deals += 1;
        match deal.outcome() {
            Outcome::Win => self.wins += 1,
            Outcome::Draw => self.draws += 1,
            Outcome::Loss => self.losses += 1,
        }
        self.a_points += deal.a_points;
        self.a_rounds += deal.a_rounds;
        self.b_points += deal.b_points;
        self.b_rounds += deal.b_rounds;
        for (sum, deal) in self.beliefs.iter_mut().zip(&deal.beliefs) {
            sum.add(deal);
        }
        let d = deal.difference();
        let delta = d - self.mean;
        self.mean += delta / self.deals as f64;
        self.m2 += delta * (d - self.mean);
    }

    /// A's mean round score over all its seat-rounds (0 before any).
    pub fn mean_score_a(&self) -> f64 {
        self.a_points as f64 / self.a_rounds.max(1) as f64
    }

    pub fn mean_score_b(&self) -> f64 {
        self.b_points as f64 / self.b_rounds.max(1) as f64
    }

    /// Mean over deals of A's mean round score minus B's (0 before any deal).
    pub fn difference(&self) -> f64 {
        self.mean
    }

    /// Sample standard deviation of the per-deal differences (`None` below two deals).
    pub fn difference_sd(&self) -> Option<f64> {
        (self.deals >= 2).then(|| (self.m2 / (self.deals - 1) as f64).sqrt())
    }

    /// The Student-t 95% confidence interval of [`Tally::difference`] (`None` below two deals:
    /// no spread can be estimated).
    pub fn difference_ci95(&self) -> Option<(f64, f64)> {
        let sd = self.difference_sd()?;
        let half = t_ci95_half_width(sd, self.deals);
        Some((self.mean - half, self.mean + half))
    }

    /// A's share of the deals, a draw counting half (`None` before any deal).
    pub fn score(&self) -> Option<f64> {
        (self.deals > 0).then(|| (self.wins as f64 + 0.5 * self.draws as f64) / self.deals as f64)
    }

    /// The logistic Elo difference of [`Tally::score`] (`None` before any deal; infinite when
    /// A won or lost every deal).
    pub fn elo(&self) -> Option<f64> {
        self.score().map(elo_from_score)
    }

    /// The 95% interval of [`Tally::elo`]: the Student-t interval of the score mapped to Elo,
    /// an end infinite where the score's interval leaves (0, 1) (`None` below two deals).
    pub fn elo_ci95(&self) -> Option<(f64, f64)> {
        let s = self.score().filter(|_| self.deals >= 2)?;
        let n = self.deals as f64;
        let (w, d, l) = (self.wins as f64, self.draws as f64, self.losses as f64);
        let squares = w * (1.0 - s).powi(2) + d * (0.5 - s).powi(2) + l * s.powi(2);
        let sd = (squares / (n - 1.0)).sqrt();
        let half = t_ci95_half_width(sd, self.deals);
        Some((elo_from_score(s - half), elo_from_score(s + half)))
    }

    /// Likelihood of superiority of A: `Φ((W − L) / √(W + L))`, ½ with no decisive deal.
    pub fn los(&self) -> f64 {
        likelihood_of_superiority(self.wins, self.losses)
    }
}

/// `t(0.975, n − 1) · sd / √n`.
fn t_ci95_half_width(sd: f64, n: u64) -> f64 {
    student_t_quantile(0.975, (n - 1) as f64) * sd / (n as f64).sqrt()
}

/// The logistic Elo difference of an expected score `s`: `−400 · log10(1/s − 1)` (as
/// `400 · log10(s / (1 − s))`, so that an even score is +0, not −0), −∞ for `s ≤ 0` and +∞
/// for `s ≥ 1`.
pub fn elo_from_score(s: f64) -> f64 {
    if s <= 0.0 {
        f64::NEG_INFINITY
    } else if s >= 1.0 {
        f64::INFINITY
    } else {
        400.0 * (s / (1.0 - s)).log10()
    }
}

/// The expected score of a logistic Elo difference: `1 / (1 + 10^(−elo/400))`.
pub fn score_from_elo(elo: f64) -> f64 {
    1.0 / (1.0 + 10f64.powf(-elo / 400.0))
}

/// cutechess-cli's likelihood of superiority from decisive results: `Φ((W − L) / √(W + L))`,
/// ½ when there are none.
pub fn likelihood_of_superiority(wins: u64, losses: u64) -> f64 {
    if wins + losses == 0 {
        return 0.5;
    }
    normal_cdf((wins as f64 - losses as f64) / ((wins + losses) as f64).sqrt())
}

/// Lanczos' approximation of `ln Γ(x)` for `x ≥ 0.5` (g = 7, 9 terms; relative error about
/// 1e-15).
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    debug_assert!(x >= 0.5, "ln_gamma({x}) is only defined here for x ≥ 0.5");
    let x = x - 1.0;
    let t = x + G + 0.5;
    let sum = C[0]
        + C[1..]
            .iter()
            .enumerate()
            .map(|(i, c)| c / (x + (i + 1) as f64))
            .sum::<f64>();
    0.5 * (2.0 * PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

/// Smallest magnitude a continued fraction's terms are kept from (modified Lentz).
const TINY: f64 = 1e-300;
/// Relative change at which a series or continued fraction has converged.
const CONVERGED: f64 = 1e-15;
/// A bound on iterations: the continued fractions converge in `O(√a)` steps.
const MAX_ITERATIONS: usize = 1_000_000;

/// The regularized incomplete beta function `I_x(a, b)`: its continued fraction (Numerical
/// Recipes' `betacf`, modified Lentz) on the side of `x` where it converges fast.
fn incomplete_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let front = (ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (-x).ln_1p()).exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_continued_fraction(a, b, x) / a
    } else {
        1.0 - front * beta_continued_fraction(b, a, 1.0 - x) / b
    }
}

fn beta_continued_fraction(a: f64, b: f64, x: f64) -> f64 {
    let keep = |v: f64| if v.abs() < TINY { TINY } else { v };
    let mut c = 1.0;
    let mut d = 1.0 / keep(1.0 - (a + b) * x / (a + 1.0));
    let mut h = d;
    for m in 1..=MAX_ITERATIONS {
        let m = m as f64;
        let even = m * (b - m) * x / ((a + 2.0 * m - 1.0) * (a + 2.0 * m));
        d = 1.0 / keep(1.0 + even * d);
        c = keep(1.0 + even / c);
        h *= d * c;
        let odd = -(a + m) * (a + b + m) * x / ((a + 2.0 * m) * (a + 2.0 * m + 1.0));
        d = 1.0 / keep(1.0 + odd * d);
        c = keep(1.0 + odd / c);
        let step = d * c;
        h *= step;
        if (step - 1.0).abs() <= CONVERGED {
            break;
        }
    }
    h
}

/// `P(T > t)` for `t ≥ 0`, `T` Student's t with `df` degrees of freedom:
/// `½ I_{df/(df+t²)}(df/2, ½)`.
fn student_t_upper_tail(t: f64, df: f64) -> f64 {
    0.5 * incomplete_beta(0.5 * df, 0.5, df / (df + t * t))
}

/// `P(T ≤ t)`, `T` Student's t with `df > 0` degrees of freedom.
pub fn student_t_cdf(t: f64, df: f64) -> f64 {
    if t >= 0.0 {
        1.0 - student_t_upper_tail(t, df)
    } else {
        student_t_upper_tail(-t, df)
    }
}

/// The `p`-quantile of Student's t with `df > 0` degrees of freedom, `p` in (0, 1): by
/// bisection of the upper tail (to about 1e-12 relative).
pub fn student_t_quantile(p: f64, df: f64) -> f64 {
    assert!(
        p > 0.0 && p < 1.0 && df > 0.0,
        "t quantile of p {p}, df {df}"
    );
    if p < 0.5 {
        return -student_t_quantile(1.0 - p, df);
    }
    let tail = 1.0 - p;
    let mut hi = 1.0;
    while student_t_upper_tail(hi, df) > tail {
        hi *= 2.0;
    }
    let mut lo = 0.0;
    loop {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi || hi - lo <= 1e-13 * hi {
            return mid;
        }
        if student_t_upper_tail(mid, df) > tail {
            lo = mid;
        } else {
            hi = mid;
        }
    }
}

/// The regularized upper incomplete gamma function `Q(a, x)`, `x ≥ 0`: its series below
/// `a + 1`, its continued fraction above (Numerical Recipes' `gser`/`gcf`).
fn upper_incomplete_gamma(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    let front = (-x + a * x.ln() - ln_gamma(a)).exp();
    if x < a + 1.0 {
        let (mut term, mut sum, mut ap) = (1.0 / a, 1.0 / a, a);
        for _ in 0..MAX_ITERATIONS {
            ap += 1.0;
            term *= x / ap;
            sum += term;
            if term.abs() <= sum.abs() * CONVERGED {
                break;
            }
        }
        1.0 - front * sum
    } else {
        let keep = |v: f64| if v.abs() < TINY { TINY } else { v };
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / TINY;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..=MAX_ITERATIONS {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = 1.0 / keep(an * d + b);
            c = keep(b + an / c);
            let step = d * c;
            h *= step;
            if (step - 1.0).abs() <= CONVERGED {
                break;
            }
        }
        front * h
    }
}

/// The standard normal distribution function `Φ(x)`, through `erfc(z) = Q(½, z²)` (accurate in
/// both tails).
pub fn normal_cdf(x: f64) -> f64 {
    let z = x / std::f64::consts::SQRT_2;
    let tail = 0.5 * upper_incomplete_gamma(0.5, z * z);
    if x >= 0.0 {
        1.0 - tail
    } else {
        tail
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(got: f64, want: f64, tolerance: f64) {
        assert!(
            (got - want).abs() <= tolerance,
            "got {got}, want {want} (± {tolerance})"
        );
    }

    /// Γ at integers and halves: (n − 1)! and √π · (2n)! / (4ⁿ n!).
    #[test]
    fn ln_gamma_matches_factorials() {
        close(ln_gamma(1.0), 0.0, 1e-14);
        close(ln_gamma(5.0), 24f64.ln(), 1e-13);
        close(ln_gamma(0.5), PI.sqrt().ln(), 1e-14);
        close(ln_gamma(2.5), (0.75 * PI.sqrt()).ln(), 1e-14);
        // Stirling's series as the reference far out.
        let x: f64 = 1e6;
        let stirling = (x - 0.5) * x.ln() - x + 0.5 * (2.0 * PI).ln() + 1.0 / (12.0 * x);
        close(ln_gamma(x), stirling, 1e-9 * stirling);
    }

    /// Closed forms: Cauchy (df 1), `½ + t / (2√(2 + t²))` (df 2), and df 4's.
    #[test]
    fn t_cdf_matches_closed_forms() {
        for t in [-3.0, -1.0, -0.2, 0.0, 0.5, 1.0, 2.0, 10.0] {
            close(student_t_cdf(t, 1.0), 0.5 + t.atan() / PI, 1e-13);
            close(
                student_t_cdf(t, 2.0),
                0.5 + t / (2.0 * (2.0 + t * t).sqrt()),
                1e-13,
            );
            let x = t / (4.0 + t * t).sqrt();
            close(
                student_t_cdf(t, 4.0),
                0.5 + 0.75 * x * (1.0 - x * x / 3.0),
                1e-13,
            );
        }
    }

    /// Two-sided 95% critical values of the t tables (and the normal one at 10⁷ df).
    #[test]
    fn t_quantiles_match_the_tables() {
        let table = [
            (1.0, 12.706_204_736),
            (2.0, 4.302_652_730),
            (3.0, 3.182_446_305),
            (4.0, 2.776_445_105),
            (5.0, 2.570_581_836),
            (10.0, 2.228_138_852),
            (30.0, 2.042_272_456),
            (100.0, 1.983_971_519),
            (1e7, 1.959_964_222),
        ];
        for (df, want) in table {
            close(student_t_quantile(0.975, df), want, 5e-8);
            close(student_t_quantile(0.025, df), -want, 5e-8);
        }
        // df 2 inverts in closed form: t = (2p − 1) √(2 / (4p(1 − p))).
        let p: f64 = 0.9;
        close(
            student_t_quantile(p, 2.0),
            (2.0 * p - 1.0) * (2.0 / (4.0 * p * (1.0 - p))).sqrt(),
            1e-10,
        );
    }

    #[test]
    fn normal_cdf_matches_the_tables() {
        close(normal_cdf(0.0), 0.5, 1e-15);
        close(normal_cdf(1.0), 0.841_344_746_068_543, 1e-13);
        close(normal_cdf(1.959_963_984_540_054), 0.975, 1e-13);
        close(normal_cdf(-1.0), 0.158_655_253_931_457, 1e-13);
        close(normal_cdf(-5.0), 2.866_515_718_791_939e-7, 1e-18);
        close(normal_cdf(0.3), 0.617_911_422_188_953, 1e-13);
    }

    #[test]
    fn elo_and_score_are_inverse() {
        assert!(elo_from_score(0.5) == 0.0 && elo_from_score(0.5).is_sign_positive());
        // 3:1 odds: 400 · log10(3).
        close(elo_from_score(0.75), 190.848_501_887_864_9, 1e-9);
        close(elo_from_score(0.25), -190.848_501_887_864_9, 1e-9);
        // 10:1 odds: 400 points.
        close(score_from_elo(400.0), 10.0 / 11.0, 1e-15);
        for elo in [-600.0, -35.5, 0.0, 5.0, 250.0] {
            close(elo_from_score(score_from_elo(elo)), elo, 1e-9);
        }
        assert_eq!(elo_from_score(0.0), f64::NEG_INFINITY);
        assert_eq!(elo_from_score(-0.1), f64::NEG_INFINITY);
        assert_eq!(elo_from_score(1.0), f64::INFINITY);
        assert_eq!(elo_from_score(1.2), f64::INFINITY);
    }

    #[test]
    fn los_is_cutechess_formula() {
        assert_eq!(likelihood_of_superiority(0, 0), 0.5);
        // (3 − 1) / √4 = 1.
        close(
            likelihood_of_superiority(3, 1),
            0.841_344_746_068_543,
            1e-13,
        );
        close(
            likelihood_of_superiority(1, 3),
            0.158_655_253_931_457,
            1e-13,
        );
        // (10 − 5) / √15.
        close(
            likelihood_of_superiority(10, 5),
            normal_cdf(5.0 / 15f64.sqrt()),
            0.0,
        );
        close(likelihood_of_superiority(10, 10), 0.5, 1e-15);
    }

    /// A deal of `a` points to A and `b` to B over `rounds` seat-rounds each.
    fn deal(a: u64, b: u64, rounds: u64) -> DealScore {
        DealScore {
            a_points: a,
            a_rounds: rounds,
            b_points: b,
            b_rounds: rounds,
            ..DealScore::default()
        }
    }

    #[test]
    fn outcomes_are_compared_exactly() {
        assert_eq!(deal(30, 20, 2).outcome(), Outcome::Win);
        assert_eq!(deal(20, 30, 2).outcome(), Outcome::Loss);
        // 3 players: A holds 1 seat of each of 3 rotations, B 2.
        let odd = DealScore {
            a_points: 37,
            a_rounds: 3,
            b_points: 74,
            b_rounds: 6,
            ..DealScore::default()
        };
        assert_eq!(odd.outcome(), Outcome::Draw);
        assert_eq!(odd.difference(), 0.0);
    }

    /// Differences 2, 4 and 9: mean 5, sample variance 13, t(0.975, 2) = 4.302652730.
    #[test]
    fn the_difference_interval_is_student_t() {
        let mut tally = Tally::default();
        for (a, b) in [(12, 10), (14, 10), (19, 10)] {
            tally.add(&deal(a, b, 1));
        }
        assert_eq!(tally.difference(), 5.0);
        close(tally.difference_sd().unwrap(), 13f64.sqrt(), 1e-12);
        let half = 4.302_652_730 * 13f64.sqrt() / 3f64.sqrt();
        let (low, high) = tally.difference_ci95().unwrap();
        close(low, 5.0 - half, 1e-8);
        close(high, 5.0 + half, 1e-8);
        assert_eq!((tally.wins, tally.draws, tally.losses), (3, 0, 0));
        close(tally.mean_score_a(), 15.0, 1e-12);
        close(tally.mean_score_b(), 10.0, 1e-12);
    }

    /// W 3, D 1, L 1: score 0.7, per-deal variance 0.8 / 4 = 0.2, so the half-width is
    /// t(0.975, 4) · √0.2 / √5 = 2.776445105 · 0.2; the upper end leaves (0, 1).
    #[test]
    fn elo_and_its_interval_come_from_the_trinomial() {
        let mut tally = Tally::default();
        for (a, b) in [(20, 10), (20, 10), (20, 10), (10, 10), (10, 20)] {
            tally.add(&deal(a, b, 2));
        }
        assert_eq!((tally.wins, tally.draws, tally.losses), (3, 1, 1));
        close(tally.score().unwrap(), 0.7, 1e-15);
        close(tally.elo().unwrap(), -400.0 * (3f64 / 7.0).log10(), 1e-9);
        let low: f64 = 0.7 - 2.776_445_105 * 0.2;
        let (elo_low, elo_high) = tally.elo_ci95().unwrap();
        close(elo_low, -400.0 * (1.0 / low - 1.0).log10(), 1e-5);
        assert_eq!(elo_high, f64::INFINITY);
        close(tally.los(), 0.841_344_746_068_543, 1e-13);
    }

    /// A lost every deal: Elo −∞, and so is the whole interval (no spread).
    #[test]
    fn a_clean_sweep_has_an_infinite_elo() {
        let mut tally = Tally::default();
        for _ in 0..4 {
            tally.add(&deal(0, 10, 1));
        }
        assert_eq!(tally.score(), Some(0.0));
        assert_eq!(tally.elo(), Some(f64::NEG_INFINITY));
        assert_eq!(
            tally.elo_ci95(),
            Some((f64::NEG_INFINITY, f64::NEG_INFINITY))
        );
        assert_eq!(tally.los(), normal_cdf(-2.0));
    }

    #[test]
    fn small_tallies_have_no_interval() {
        let mut tally = Tally::default();
        assert_eq!(tally.score(), None);
        assert_eq!(tally.elo(), None);
        assert_eq!(tally.difference_ci95(), None);
        assert_eq!(tally.los(), 0.5);
        tally.add(&deal(10, 10, 1));
        assert_eq!(tally.difference_ci95(), None);
        assert_eq!(tally.elo(), Some(0.0));
        assert_eq!(tally.elo_ci95(), None);
        // Identical deals: no spread, a zero-width interval.
        tally.add(&deal(10, 10, 1));
        assert_eq!(tally.difference_ci95(), Some((0.0, 0.0)));
        assert_eq!(tally.elo_ci95(), Some((0.0, 0.0)));
    }
}
