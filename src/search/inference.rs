//! Policy-based inference (Rebstock, Solinas, Buro & Sturtevant, "Policy Based Inference in
//! Trick-Taking Card Games", 2019): a world is worth as much as the other seats' bids and plays
//! of this round are likely in it under a model of their policy, here the network's own.
//!
//! A search with `Beliefs::Policy` samples `worlds × oversampling` candidate worlds uniformly
//! ([`super::beliefs`]), replays each candidate's round from its deal (every hidden hand as it
//! was: its cards now plus those it has played since; the history itself is public), asks the
//! network for the policy of each other seat at each of its past decisions, weighs the
//! candidate by `Π max(q(action), floor)`, `q` the policy tempered by `T` (`p^(1/T)`
//! renormalised over the legal actions), and keeps `worlds` of the candidates by
//! systematic resampling. The searching seat's own decisions are left out (its view is the
//! same in every world, so they weigh every world alike), and so are forced moves (probability
//! 1 in every world).
//!
//! A cap bounds the extra rows per decision: past it the search first weighs fewer candidates
//! (down to `worlds`), because that only adds variance, while leaving decisions out ignores
//! evidence; past that it leaves out decisions, keeping the bids (a bid reflects a whole hand:
//! the strongest signal) and then the most recent plays (made with hands closest to the
//! cards still held).

use crate::game::{Phase, Round, Seat};
use rand::Rng;

/// Largest `oversampling`: 64 worlds × 64 candidates are 4,096 replays per decision.
pub const MAX_OVERSAMPLING: u32 = 64;
/// Largest `max_rows`.
pub const MAX_BELIEF_ROWS: u32 = 1 << 16;

/// How `Beliefs::Policy` weighs and samples worlds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PolicyBeliefs {
    /// Tempers the policy (`p^(1/T)`, renormalised): above 1 trusts it less, below 1 more.
    pub temperature: f32,
    /// Least factor one observed decision gives a world, so that one move the network finds
    /// unlikely does not rule a world out.
    pub floor: f32,
    /// Candidate worlds weighed per searched world.
    pub oversampling: u32,
    /// Most network rows the beliefs of one decision ask for.
    pub max_rows: u32,
}

impl Default for PolicyBeliefs {
    fn default() -> PolicyBeliefs {
        PolicyBeliefs {
            temperature: 1.0,
            floor: 0.05,
            oversampling: 8,
            max_rows: 160,
        }
    }
}

impl PolicyBeliefs {
    pub fn validate(&self) -> Result<(), String> {
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(format!(
                "belief temperature {} must be a positive number",
                self.temperature
            ));
        }
        if !(self.floor > 0.0 && self.floor <= 1.0) {
            return Err(format!("belief floor {} must be in (0, 1]", self.floor));
        }
        if !(1..=MAX_OVERSAMPLING).contains(&self.oversampling) {
            return Err(format!(
                "belief oversampling {} must be in 1..={MAX_OVERSAMPLING}",
                self.oversampling
            ));
        }
        if self.max_rows > MAX_BELIEF_ROWS {
            return Err(format!(
                "belief rows {} must be at most {MAX_BELIEF_ROWS}",
                self.max_rows
            ));
        }
        Ok(())
    }

    /// Log of the factor one observed decision gives a world: `max(q, floor)`, where `q` is the
    /// probability of the action taken under the tempered policy `p^(1/T)` renormalised over
    /// the legal actions (`priors`, which sum to 1). Renormalising matters at any T but 1:
    /// `p^(1/T)` alone would also favour the worlds where the seat's policy was more certain
    /// (T below 1) or more spread out (T above 1), whatever it did.
    pub(crate) fn log_factor(&self, priors: &[f32], taken: usize) -> f64 {
        let inverse_t = 1.0 / f64::from(self.temperature);
        let log_p = |p: f32| f64::from(p).ln() * inverse_t;
        let log_q = if self.temperature == 1.0 {
            // The priors are the policy itself, already summing to 1.
            log_p(priors[taken])
        } else {
            // Relative to the largest prior, so that no power underflows to 0 for small T.
            let top = log_p(priors.iter().copied().fold(0.0, f32::max));
            let total: f64 = priors.iter().map(|&p| (log_p(p) - top).exp()).sum();
            log_p(priors[taken]) - top - total.ln()
        };
        log_q.max(f64::from(self.floor).ln())
    }

    /// What the beliefs of a decision of `me` in `round` weigh, from public information only;
    /// `None` when there is nothing to weigh (then worlds are sampled uniformly).
    pub(crate) fn evidence(&self, round: &Round, me: Seat, worlds: u32) -> Option<Evidence> {
        let players = usize::from(round.players());
        let last_trick = usize::from(round.cards_dealt() - 1) * players;
        let bids = round.seats().filter(|&s| round.bid(s).is_some()).count();
        // Other seats' decisions, bids first, then plays from the most recent; a play of the
        // last trick is a seat's last card, always forced.
        let mut order: Vec<usize> = Vec::new();
        let history: Vec<Seat> = round.history().map(|(seat, _)| seat).collect();
        let others = |range: std::ops::Range<usize>| range.filter(|&i| history[i] != me);
        order.extend(others(0..bids));
        order.extend(
            others(bids..history.len())
                .rev()
                .filter(|&i| i - bids < last_trick),
        );
        let decisions = order.len() as u32;
        if decisions == 0 {
            return None;
        }
        let candidates = (self.max_rows / decisions).clamp(worlds, worlds * self.oversampling);
        let kept = decisions.min(self.max_rows / candidates);
        let steps = order[..kept as usize]
            .iter()
            .fold(0u64, |steps, &i| steps | 1 << i);
        (kept > 0).then_some(Evidence { candidates, steps })
    }
}

/// What the beliefs of one decision weigh.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Evidence {
    /// Candidate worlds to sample and weigh.
    pub candidates: u32,
    /// Bit `i`: the `i`-th action of [`Round::history`] is weighed (a round has at most 8
    /// bids and 52 plays).
    pub steps: u64,
}

/// Calls `weigh(state, seat, action)` for each decision of `steps` (see [`Evidence`]) in
/// `world`'s history that had a choice: `state` is the round as that seat saw it, with the
/// world's hands as they were then.
pub(crate) fn for_each_decision(
    world: &Round,
    steps: u64,
    mut weigh: impl FnMut(&Round, Seat, u8),
) {
    let mut state = world.as_dealt();
    for (i, (seat, action)) in world.history().enumerate() {
        debug_assert!(state.phase() != Phase::Scoring && state.to_act() == seat);
        if steps >> i & 1 == 1 && state.legal_mask().count_ones() > 1 {
            weigh(&state, seat, action);
        }
        state.apply(action);
    }
}

/// Systematic resampling: `n` indices of `log_weights` (natural logs), each drawn in
/// proportion to its weight, from one uniform draw of `rng`; they come out in ascending order.
pub(crate) fn resample<R: Rng + ?Sized>(
    log_weights: &[f64],
    n: usize,
    rng: &mut R,
    out: &mut Vec<usize>,
) {
    out.clear();
    let max = log_weights
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    let weight = |i: usize| (log_weights[i] - max).exp();
    let total: f64 = (0..log_weights.len()).map(weight).sum();
    let step = total / n as f64;
    let mut target = rng.random::<f64>() * step;
    let (mut i, mut below) = (0, weight(0));
    for _ in 0..n {
        // `below`: the weight of candidates 0..=i; rounding may leave the last target past it.
        while below <= target && i + 1 < log_weights.len() {
            i += 1;
            below += weight(i);
        }
        out.push(i);
        target += step;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::game::{RoundConfig, Suit};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn systematic_resampling_follows_the_weights() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut out = Vec::new();
        resample(&[0.0, 3f64.ln()], 4, &mut rng, &mut out);
        assert_eq!(out, [0, 1, 1, 1]);
        // Weights far below the largest are not lost to underflow of the largest.
        resample(&[-2000.0, -1000.0, -2000.0], 3, &mut rng, &mut out);
        assert_eq!(out, [1, 1, 1]);
    }

    #[test]
    fn the_tempered_policy_is_renormalised_over_the_legal_actions() {
        let beliefs = |temperature| PolicyBeliefs {
            temperature,
            floor: 0.01,
            ..PolicyBeliefs::default()
        };
        let priors = [0.5, 0.3, 0.2];
        let close = |a: f64, b: f64| (a - b).abs() < 1e-6;
        assert!(close(beliefs(1.0).log_factor(&priors, 1), 0.3f64.ln()));
        // T 0.5 squares the priors: 0.25, 0.09, 0.04 of 0.38.
        assert!(close(
            beliefs(0.5).log_factor(&priors, 0),
            (0.25f64 / 0.38).ln()
        ));
        assert!(close(
            beliefs(0.5).log_factor(&priors, 2),
            (0.04f64 / 0.38).ln()
        ));
        // An action the policy was sure of weighs 1 at any temperature.
        assert!(close(beliefs(0.25).log_factor(&[1.0, 0.0], 0), 0.0));
        assert!(close(beliefs(4.0).log_factor(&[1.0, 0.0], 0), 0.0));
        // Below the floor, the floor.
        assert!(close(
            beliefs(0.5).log_factor(&[0.99, 0.01], 1),
            0.01f64.ln()
        ));
    }

    #[test]
    fn the_cap_trims_candidates_first_then_keeps_bids_and_recent_plays() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let config = RoundConfig {
            players: 4,
            cards: 5,
            dealer: Seat(0),
            trump: Some(Suit::Hearts),
        };
        let mut round = Round::deal(config, &mut rng).unwrap();
        // Four bids and two tricks: seat `me` sees 3 bids and 6 plays of others.
        for _ in 0..12 {
            let a = round.legal_mask().trailing_zeros() as u8;
            round.apply(a);
        }
        let me = round.to_act();
        let beliefs = |max_rows| PolicyBeliefs {
            max_rows,
            ..PolicyBeliefs::default()
        };
        let others: Vec<usize> = round
            .history()
            .enumerate()
            .filter(|&(_, (s, _))| s != me)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(others.len(), 9);
        let all = others.iter().fold(0u64, |m, &i| m | 1 << i);
        // Room for 24 candidates × 9 decisions: everything.
        let e = beliefs(1000).evidence(&round, me, 3).unwrap();
        assert_eq!((e.candidates, e.steps), (24, all));
        // 96 rows: 10 candidates weigh every decision.
        let e = beliefs(96).evidence(&round, me, 3).unwrap();
        assert_eq!((e.candidates, e.steps), (10, all));
        // 15 rows: 3 candidates (the worlds) × 5 decisions, the bids and the latest plays.
        let e = beliefs(15).evidence(&round, me, 3).unwrap();
        assert_eq!(e.candidates, 3);
        let kept: Vec<usize> = (0..64).filter(|i| e.steps >> i & 1 == 1).collect();
        assert_eq!(kept, [&others[..3], &others[7..]].concat());
        // Fewer rows than worlds: nothing to weigh.
        assert_eq!(beliefs(2).evidence(&round, me, 3), None);
    }
}
