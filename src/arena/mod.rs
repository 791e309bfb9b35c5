//! `engine arena`: two nets compared on paired deals.
//!
//! Every deal is played `players` times with the seats rotated: in rotation `r`, net A holds
//! the seats `s` with `(s − r) mod P < P/2` and net B the others, so over a deal each net sits
//! in every seat equally often and the luck of the cards cancels within the deal. Play is
//! greedy (most-visited action, no noise). The difference of mean round scores is reported per
//! deal and summarised with a 95% confidence interval over deals.

pub mod sprt;
pub mod stats;

use crate::game::{Round, RoundConfig, Seat, TRUMP_ROTATION};
use crate::net::Backend;
use crate::search::{choose_action, run_blocking, EvalCache, Search, SearchConfig};
use anyhow::{Context, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// Most deals one arena plays: each deal's result (40 bytes) is kept until the end.
pub const MAX_DEALS: u64 = 10_000_000;

#[derive(Clone, Debug)]
pub struct ArenaConfig {
    pub players: u8,
    pub cards: u8,
    pub deals: u64,
    pub search: SearchConfig,
    pub threads: usize,
    pub seed: u64,
}

/// Net A's and B's mean round scores and the paired difference.
#[derive(Clone, Debug, Serialize)]
pub struct ArenaResult {
    pub deals: u64,
    pub rounds_played: u64,
    pub mean_score_a: f64,
    pub mean_score_b: f64,
    /// Mean over deals of (A's mean score − B's mean score) in that deal.
    pub difference: f64,
    pub ci95_low: f64,
    pub ci95_high: f64,
}

/// Seats net A holds in rotation `r` at a table of `players`.
pub fn seats_of_a(players: u8, r: u8) -> impl Fn(Seat) -> bool {
    move |s: Seat| (s.0 + players - r % players) % players < players / 2
}

/// Plays one round from `round` with `is_a(seat)` choosing which side's backend decides;
/// returns the finished round.
fn play_round(
    mut round: Round,
    is_a: &dyn Fn(Seat) -> bool,
    sides: &mut [(Box<dyn Backend>, EvalCache); 2],
    search: &mut Option<Search>,
    config: &SearchConfig,
    rng: &mut ChaCha8Rng,
) -> Result<Round> {
    while !round.is_over() {
        let legal = round.legal_mask();
        // One legal action (a last card included): nothing to search.
        if legal.count_ones() == 1 {
            round.apply(legal.trailing_zeros() as u8);
            continue;
        }
        let seed = rng.random();
        let s = match search {
            Some(s) => {
                s.restart(&round, seed)?;
                s
            }
            None => search.insert(Search::new(&round, *config, seed)?),
        };
        let (backend, cache) = &mut sides[usize::from(!is_a(round.to_act()))];
        let result = run_blocking(s, backend.as_mut(), cache)?;
        round.apply(choose_action(&result.visits, 0.0, rng));
    }
    Ok(round)
}

/// Runs the arena; `make_backends` builds one (A, B) backend pair per thread.
pub fn run(
    config: &ArenaConfig,
    make_backends: &(dyn Fn() -> (Box<dyn Backend>, Box<dyn Backend>) + Sync),
    stop: &AtomicBool,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<ArenaResult> {
    RoundConfig {
        players: config.players,
        cards: config.cards,
        dealer: Seat(0),
        trump: None,
    }
    .validate()?;
    config.search.validate()?;
    let next = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    // Per deal: (A's summed score, A's seat-rounds, B's summed score, B's seat-rounds).
    let per_deal: Mutex<Vec<Option<[f64; 4]>>> = Mutex::new(vec![None; config.deals as usize]);
    std::thread::scope(|scope| -> Result<()> {
        let handles: Vec<_> = (0..config.threads.max(1))
            .map(|_| {
                scope.spawn(|| -> Result<()> {
                    let (a, b) = make_backends();
                    let mut sides = [(a, EvalCache::new(1 << 14)), (b, EvalCache::new(1 << 14))];
                    let mut search = None;
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= config.deals || stop.load(Ordering::Relaxed) {
                            return Ok(());
                        }
                        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
                        rng.set_stream(i);
                        let deal = Round::deal(
                            RoundConfig {
                                players: config.players,
                                cards: config.cards,
                                dealer: Seat(rng.random_range(0..config.players)),
                                trump: TRUMP_ROTATION[rng.random_range(0..TRUMP_ROTATION.len())],
                            },
                            &mut rng,
                        )?;
                        let mut sums = [0.0; 4];
                        for r in 0..config.players {
                            let is_a = seats_of_a(config.players, r);
                            let end = play_round(
                                deal,
                                &is_a,
                                &mut sides,
                                &mut search,
                                &config.search,
                                &mut rng,
                            )
                            .with_context(|| format!("deal {i}, rotation {r}"))?;
                            for s in end.seats() {
                                let k = if is_a(s) { 0 } else { 2 };
                                sums[k] += f64::from(end.score(s));
                                sums[k + 1] += 1.0;
                            }
                        }
                        per_deal.lock().unwrap_or_else(|e| e.into_inner())[i as usize] = Some(sums);
                        progress(done.fetch_add(1, Ordering::Relaxed) + 1);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("arena thread panicked")?;
        }
        Ok(())
    })?;
    let deals: Vec<[f64; 4]> = per_deal
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .flatten()
        .collect();
    Ok(summarise(&deals, config.players))
}

fn summarise(deals: &[[f64; 4]], players: u8) -> ArenaResult {
    let n = deals.len() as f64;
    let total = |k: usize| deals.iter().map(|d| d[k]).sum::<f64>();
    let diffs: Vec<f64> = deals.iter().map(|d| d[0] / d[1] - d[2] / d[3]).collect();
    let mean = diffs.iter().sum::<f64>() / n.max(1.0);
    let var = diffs.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    let half = 1.96 * (var / n.max(1.0)).sqrt();
    ArenaResult {
        deals: deals.len() as u64,
        rounds_played: deals.len() as u64 * u64::from(players),
        mean_score_a: total(0) / total(1).max(1.0),
        mean_score_b: total(2) / total(3).max(1.0),
        difference: mean,
        ci95_low: mean - half,
        ci95_high: mean + half,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_net_sits_in_every_seat_equally_often() {
        for players in 3..=8u8 {
            for s in 0..players {
                let a_turns = (0..players)
                    .filter(|&r| seats_of_a(players, r)(Seat(s)))
                    .count();
                assert_eq!(
                    a_turns,
                    usize::from(players / 2),
                    "players {players} seat {s}"
                );
            }
        }
    }

    #[test]
    fn identical_deals_give_zero_difference() {
        let r = summarise(&[[30.0, 2.0, 30.0, 2.0], [20.0, 2.0, 10.0, 2.0]], 4);
        assert_eq!(r.difference, 2.5);
        assert!(r.ci95_low < 2.5 && r.ci95_high > 2.5);
    }
}
