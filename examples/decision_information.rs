//! How much a seat's bids and plays say about its hidden hand, under the models a belief
//! weighting could use: the measure behind BENCHMARKS.md, "What a decision says about a hand".
//!
//!     cargo run --release --example decision_information -- WEIGHTS [--deals 100]
//!         [--alternatives 31] [--search-model] [--search-choices R] [--reader NET]
//!         [--cards 5] [--seed 7]
//!
//! Seats play 4 × 5 rounds (`--cards` sets the 5) with Medium searches, taking the most visited
//! action (as `engine arena` plays). At each decision with a choice, the next seat (the observer)
//! samples `--alternatives` worlds from its information after the decision, rewound to before it (so
//! the decider holds what it played, as policy beliefs assume). For each model of the decider,
//! the score is `ln L(true hand) − ln mean L(alternative hands)`, `L` the model's probability
//! of the action taken: averaged, the expected log Bayes factor in favour of the truth, in
//! nats. 0 means the model reads nothing from the decision that the observer did not know;
//! a negative mean means it reads the wrong thing. (The log of a mean over a sample
//! underestimates the log of the true mean, so the figures lean high, the more so for sharp
//! models and few alternatives.)
//!
//! Models (without policy beliefs' floor): `policy`, the net's policy over the legal actions
//! (policy beliefs at T 1); `policy T 0.3`, that policy tempered and renormalised
//! (`search.belief_temperature = 0.3`);
//! `prior × value`, the softmax over the legal actions of `ln p(a) + V(after a) / 0.1`, the
//! decider's value after each action weighed as a search would; and with `--search-model`
//! (slow: one Medium search per alternative), the visit counts of the decider's own search
//! in each alternative, plus one; and with `--search-choices R` (slower still: R Medium searches
//! per world), the share of R searches of the decider's with fresh seeds that take the action
//! (ties split, add-½ smoothed): the process that really chose it, so no model of the seat can
//! read much more than this one does; and with `--reader NET`, another net's policy (T 1), e.g.
//! one trained on the actions taken (`scripts/train.py --policy-target chosen`).

use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use engine::encode::{encode, EncoderVersion};
use engine::game::{Phase, Round, Seat};
use engine::net::cpu::CpuBackend;
use engine::net::weights::{PreparedWeights, Weights};
use engine::net::{Backend, BatchIn, BatchOut, INPUT_DIM, POLICY_DIM};
use engine::search::beliefs::{sample_world, WorldSampler};
use engine::search::{choose_action, run_blocking, EvalCache, Search, SearchConfig};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

#[derive(Parser)]
struct Args {
    /// BlobNet weights (safetensors).
    weights: PathBuf,
    /// Rounds of 4 players × 5 cards to play.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    deals: u64,
    /// Observer's worlds each decision is weighed in besides the true one.
    #[arg(long, default_value_t = 31, value_parser = clap::value_parser!(u16).range(1..))]
    alternatives: u16,
    /// Also score the decider's own search as the model (a Medium search per alternative).
    #[arg(long)]
    search_model: bool,
    /// Also score the share of this many fresh searches of the decider's that take the action.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    search_choices: Option<u16>,
    /// Also score this net's policy as the model of the decider.
    #[arg(long)]
    reader: Option<PathBuf>,
    /// Cards dealt to each of the 4 seats.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u8).range(1..=13))]
    cards: u8,
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

const MODELS: [&str; 6] = [
    "policy",
    "policy T 0.3",
    "prior × value",
    "search visits",
    "search choices",
    "reader",
];
const BATCH: usize = 4096;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let weights = Weights::load(&args.weights)?;
    let mut net = CpuBackend::new(Arc::new(PreparedWeights::new(&weights)), BATCH);
    let mut reader = match &args.reader {
        Some(path) => Some(CpuBackend::new(
            Arc::new(PreparedWeights::new(&Weights::load(path)?)),
            BATCH,
        )),
        None => None,
    };
    let mut cache = EvalCache::new(1 << 16);
    let mut sampler = WorldSampler::new();
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    // Per phase (bids, plays): decisions and each model's summed score.
    let mut decisions = [0u32; 2];
    let mut scores = [[0.0f64; MODELS.len()]; 2];
    let started = std::time::Instant::now();
    for deal in 0..args.deals {
        if deal > 0 {
            let each = started.elapsed().as_secs_f64() / deal as f64;
            eprintln!(
                "deal {deal}/{}, {each:.1} s a deal, ETA {:.0} s",
                args.deals,
                each * (args.deals - deal) as f64
            );
        }
        let mut round = Round::deal_random(4, args.cards, &mut rng)?;
        while !round.is_over() {
            let step = round.history().count();
            let seat = round.to_act();
            let seed = deal << 8 | step as u64;
            let visits = search_visits(&round, seed, &mut net, &mut cache)?;
            let action = choose_action(&visits, 0.0, &mut rng);
            if round.legal_mask().count_ones() > 1 {
                let mut after = round;
                after.apply(action);
                let observer = seat.next(round.players());
                let mut worlds = vec![round];
                for _ in 0..args.alternatives {
                    let world = sample_world(&after, observer, &mut sampler, &mut rng)?;
                    worlds.push(rewind(&world, step));
                }
                let mut likelihoods = log_likelihoods(&mut net, &worlds, seat, action);
                if let Some(reader) = &mut reader {
                    let (policy, _) = evaluate(reader, worlds.iter().map(|w| (*w, seat)));
                    for (w, world) in worlds.iter().enumerate() {
                        let row = &policy[w * POLICY_DIM..(w + 1) * POLICY_DIM];
                        likelihoods[w][5] = policy_log_likelihood(row, world, action);
                    }
                }
                for (w, world) in worlds.iter().enumerate() {
                    let legal = world.legal_mask();
                    let world_seed = (seed << 16 | w as u64) ^ 1 << 63;
                    if args.search_model {
                        let visits = search_visits(world, world_seed, &mut net, &mut cache)?;
                        let count = |a: u8| f64::from(visits[usize::from(a)]) + 1.0;
                        let total: f64 = legal_actions(legal).map(count).sum();
                        likelihoods[w][3] = (count(action) / total).ln();
                    }
                    if let Some(repeats) = args.search_choices {
                        let mut taken = 0.0;
                        for r in 0..u64::from(repeats) {
                            let visits =
                                search_visits(world, world_seed ^ r << 40, &mut net, &mut cache)?;
                            let most = visits.iter().max().copied().unwrap_or(0);
                            if visits[usize::from(action)] == most {
                                let ties = visits.iter().filter(|&&v| v == most).count();
                                taken += 1.0 / ties as f64;
                            }
                        }
                        let choices = f64::from(legal.count_ones());
                        likelihoods[w][4] =
                            ((taken + 0.5) / (f64::from(repeats) + 0.5 * choices)).ln();
                    }
                }
                let phase = usize::from(round.phase() != Phase::Bidding);
                decisions[phase] += 1;
                for (m, score) in scores[phase].iter_mut().enumerate() {
                    let alternatives: Vec<f64> = likelihoods[1..].iter().map(|l| l[m]).collect();
                    *score += likelihoods[0][m]
                        - (log_sum_exp(&alternatives) - f64::from(args.alternatives).ln());
                }
            }
            round.apply(action);
        }
    }
    let scored = [
        true,
        true,
        true,
        args.search_model,
        args.search_choices.is_some(),
        args.reader.is_some(),
    ];
    for (phase, name) in ["bids", "plays"].into_iter().enumerate() {
        let n = f64::from(decisions[phase]);
        let each: Vec<String> = (0..MODELS.len())
            .filter(|&m| scored[m])
            .map(|m| format!("{} {:.3}", MODELS[m], scores[phase][m] / n))
            .collect();
        println!(
            "{name} ({} decisions), nats per decision: {}",
            decisions[phase],
            each.join(", ")
        );
    }
    Ok(())
}

/// The visit counts of a Medium search of `round` by the seat to act.
fn search_visits(
    round: &Round,
    seed: u64,
    net: &mut CpuBackend,
    cache: &mut EvalCache,
) -> Result<[u32; POLICY_DIM], Box<dyn std::error::Error>> {
    let mut search = Search::new(round, SearchConfig::medium(), seed)?;
    Ok(run_blocking(&mut search, net, cache)?.visits)
}

/// Each world's log-probability of `action` by `seat` under the net's models (the searches'
/// left 0).
fn log_likelihoods(
    net: &mut CpuBackend,
    worlds: &[Round],
    seat: Seat,
    action: u8,
) -> Vec<[f64; MODELS.len()]> {
    let (policy, _) = evaluate(net, worlds.iter().map(|w| (*w, seat)));
    let successors = worlds.iter().flat_map(|w| {
        legal_actions(w.legal_mask()).map(move |a| {
            let mut next = *w;
            next.apply(a);
            (next, seat)
        })
    });
    let (_, values) = evaluate(net, successors);
    let mut values = values.into_iter();
    worlds
        .iter()
        .enumerate()
        .map(|(w, world)| {
            let legal: Vec<u8> = legal_actions(world.legal_mask()).collect();
            let value: Vec<f64> = values.by_ref().take(legal.len()).map(f64::from).collect();
            let Some(taken) = legal.iter().position(|&a| a == action) else {
                return [f64::NEG_INFINITY; MODELS.len()];
            };
            let log_p = legal_log_policy(&policy[w * POLICY_DIM..(w + 1) * POLICY_DIM], &legal);
            let tempered: Vec<f64> = log_p.iter().map(|l| l / 0.3).collect();
            let weighed: Vec<f64> = log_p.iter().zip(&value).map(|(l, v)| l + v / 0.1).collect();
            let log_softmax = |x: &[f64]| x[taken] - log_sum_exp(x);
            [
                log_softmax(&log_p),
                log_softmax(&tempered),
                log_softmax(&weighed),
                0.0,
                0.0,
                0.0,
            ]
        })
        .collect()
}

/// The log-probability of `action` under a policy row renormalised over `world`'s legal actions.
fn policy_log_likelihood(policy: &[f32], world: &Round, action: u8) -> f64 {
    let legal: Vec<u8> = legal_actions(world.legal_mask()).collect();
    match legal.iter().position(|&a| a == action) {
        Some(taken) => {
            let log_p = legal_log_policy(policy, &legal);
            log_p[taken] - log_sum_exp(&log_p)
        }
        None => f64::NEG_INFINITY,
    }
}

/// The log of a policy row's entries for `legal` (floored at 1e-12, so never −∞).
fn legal_log_policy(policy: &[f32], legal: &[u8]) -> Vec<f64> {
    legal
        .iter()
        .map(|&a| f64::from(policy[usize::from(a)]).max(1e-12).ln())
        .collect()
}

/// The world as it was `steps` actions into its round.
fn rewind(world: &Round, steps: usize) -> Round {
    let mut round = world.as_dealt();
    for (_, action) in world.history().take(steps) {
        round.apply(action);
    }
    round
}

/// Policies `[rows, 52]` and values of `rows` (each a round seen by a seat).
fn evaluate(
    net: &mut CpuBackend,
    rows: impl Iterator<Item = (Round, Seat)>,
) -> (Vec<f32>, Vec<f32>) {
    let (mut inputs, mut masks) = (Vec::new(), Vec::new());
    for (round, seat) in rows {
        inputs.extend_from_slice(&encode(&round, seat, EncoderVersion::V2));
        masks.push(round.legal_mask());
    }
    let n = masks.len();
    let (mut policy, mut value) = (vec![0.0; n * POLICY_DIM], vec![0.0; n]);
    for start in (0..n).step_by(BATCH) {
        let end = (start + BATCH).min(n);
        let inp = BatchIn {
            inputs: &inputs[start * INPUT_DIM..end * INPUT_DIM],
            masks: &masks[start..end],
        };
        let out = BatchOut {
            policy: &mut policy[start * POLICY_DIM..end * POLICY_DIM],
            value: &mut value[start..end],
        };
        net.forward(inp, out).expect("a forward pass on the CPU");
    }
    (policy, value)
}

fn legal_actions(mask: u64) -> impl Iterator<Item = u8> {
    (0..POLICY_DIM as u8).filter(move |&a| mask >> a & 1 == 1)
}

fn log_sum_exp(x: &[f64]) -> f64 {
    let max = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return max;
    }
    max + x.iter().map(|v| (v - max).exp()).sum::<f64>().ln()
}
