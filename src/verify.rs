//! `engine verify`: rules, legal masks, encoder and network checked against a directory of
//! recorded reference vectors (`games.json`, `net_io.json`, `net.safetensors`).

use crate::encode::{encode, EncoderVersion};
use crate::game::{Phase, Round, Seat};
use crate::net::cpu::CpuBackend;
use crate::net::weights::{PreparedWeights, Weights};
use crate::net::{evaluate, POLICY_DIM};
use crate::vectors::{mask_bits, Decision, GamesFile, NetIoFile, RecordedRound};
use anyhow::{Context, Result};
use serde::Serialize;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// Largest allowed |ours − reference| on network outputs.
pub const NET_TOLERANCE: f32 = 1e-5;
/// The recorder rounds encodings to 6 decimals: ours must round to the same value.
const ROUNDED_TOLERANCE: f64 = 5.0001e-7;
const MAX_LISTED_FAILURES: usize = 20;

/// Pass/fail counts of one kind of check.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Category {
    pub name: &'static str,
    pub passed: usize,
    pub failed: usize,
}

/// Everything `verify` found. An item (a decision, a round's result, a network case) passes
/// when every check on it passes.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub categories: Vec<Category>,
    pub passed: usize,
    pub failed: usize,
    pub failures: Vec<String>,
    pub max_policy_diff: f32,
    pub max_value_diff: f32,
}

impl Report {
    fn category(&mut self, name: &'static str) -> usize {
        match self.categories.iter().position(|c| c.name == name) {
            Some(i) => i,
            None => {
                self.categories.push(Category {
                    name,
                    ..Category::default()
                });
                self.categories.len() - 1
            }
        }
    }

    /// Records one check of `name`; `failure` describes it when it failed.
    fn check(&mut self, name: &'static str, failure: Option<String>) -> bool {
        let i = self.category(name);
        match failure {
            None => {
                self.categories[i].passed += 1;
                true
            }
            Some(msg) => {
                self.categories[i].failed += 1;
                if self.failures.len() < MAX_LISTED_FAILURES {
                    self.failures.push(format!("{name}: {msg}"));
                }
                false
            }
        }
    }

    fn item(&mut self, ok: bool) {
        if ok {
            self.passed += 1
        } else {
            self.failed += 1
        }
    }
}

/// Runs every check on the vectors in `dir`.
pub fn verify_dir(dir: &Path) -> Result<Report> {
    let mut report = Report::default();
    let games = GamesFile::load(&dir.join("games.json"))?;
    let encodings = check_games(&games, &mut report);
    check_net(dir, &encodings, &mut report)?;
    Ok(report)
}

/// Our encodings of every decision, keyed by (round id, step), for the exact-float check.
type Encodings = HashMap<(u64, u32), [f32; 256]>;

fn check_games(games: &GamesFile, report: &mut Report) -> Encodings {
    let mut encodings = Encodings::new();
    for rec in &games.rounds {
        let mut round = match rec.start() {
            Ok(r) => r,
            Err(e) => {
                report.check("deals", Some(format!("round {}: {e:#}", rec.round_id)));
                report.item(false);
                continue;
            }
        };
        let mut all_ok = true;
        for d in &rec.decisions {
            let ours = encode(&round, round.to_act(), EncoderVersion::V2);
            let ok = check_decision(rec, d, &round, &ours, report);
            report.item(ok);
            encodings.insert((rec.round_id, d.step), ours);
            if let Err(e) = round.try_apply(d.action) {
                report.check(
                    "actions",
                    Some(format!("round {} step {}: {e}", rec.round_id, d.step)),
                );
                all_ok = false;
                break;
            }
        }
        let ok = all_ok && report.check("round results", round_result_failure(rec, &round));
        report.item(ok);
    }
    encodings
}

fn check_decision(
    rec: &RecordedRound,
    d: &Decision,
    round: &Round,
    ours: &[f32; 256],
    report: &mut Report,
) -> bool {
    let at = format!("round {} step {}", rec.round_id, d.step);
    let phase = match round.phase() {
        Phase::Bidding => "bid",
        Phase::Playing => "play",
        Phase::Scoring => "over",
    };
    let turn_ok = report.check(
        "turns",
        (round.to_act() != Seat(d.player) || phase != d.phase).then(|| {
            format!(
                "{at}: recorded {} {}, rules say {phase} {}",
                d.phase,
                d.player,
                round.to_act()
            )
        }),
    );
    let state_ok = report.check(
        "states",
        match d.state.to_round() {
            Ok(r) if r == *round => None,
            Ok(r) => Some(format!(
                "{at}: recorded state differs from the replay: {r:?}"
            )),
            Err(e) => Some(format!("{at}: {e:#}")),
        },
    );
    let mask = round.legal_mask();
    let listed: Vec<u8> = (0..64).filter(|&a| mask >> a & 1 == 1).collect();
    let mask_ok = report.check(
        "legal masks",
        (mask != mask_bits(&d.mask) || listed != d.legal_actions)
            .then(|| format!("{at}: legal {listed:?}, recorded {:?}", d.legal_actions)),
    );
    let bad: Vec<usize> = (0..256)
        .filter(|&i| {
            d.encoding
                .get(i)
                .is_none_or(|&r| (f64::from(ours[i]) - r).abs() > ROUNDED_TOLERANCE)
        })
        .collect();
    let enc_ok = report.check(
        "encodings",
        (!bad.is_empty() || d.encoding.len() != 256).then(|| {
            let shown: Vec<String> = bad
                .iter()
                .take(4)
                .map(|&i| format!("{i}: ours {} ref {:?}", ours[i], d.encoding.get(i)))
                .collect();
            format!("{at}: {} dims differ ({})", bad.len(), shown.join(", "))
        }),
    );
    turn_ok && state_ok && mask_ok && enc_ok
}

fn round_result_failure(rec: &RecordedRound, round: &Round) -> Option<String> {
    if !round.is_over() {
        return Some(format!(
            "round {}: not over after its recorded decisions",
            rec.round_id
        ));
    }
    let seats: Vec<Seat> = round.seats().collect();
    let bids: Vec<u8> = seats
        .iter()
        .map(|&s| round.bid(s).unwrap_or(u8::MAX))
        .collect();
    let tricks: Vec<u8> = seats.iter().map(|&s| round.tricks_won(s)).collect();
    let scores: Vec<u32> = seats.iter().map(|&s| round.score(s)).collect();
    let r = &rec.result;
    (bids != r.bids || tricks != r.tricks_won || scores != r.scores).then(|| {
        format!("round {}: ours bids {bids:?} tricks {tricks:?} scores {scores:?}, recorded {:?} {:?} {:?}", rec.round_id, r.bids, r.tricks_won, r.scores)
    })
}

fn check_net(dir: &Path, encodings: &Encodings, report: &mut Report) -> Result<()> {
    let io = NetIoFile::load(&dir.join("net_io.json"))?;
    let weights = Weights::load(&dir.join("net.safetensors"))?;
    let rows = io.cases.len();
    let mut backend = CpuBackend::new(Arc::new(PreparedWeights::new(&weights)), rows.max(1));
    let inputs: Vec<f32> = io
        .cases
        .iter()
        .flat_map(|c| c.input.iter().copied())
        .collect();
    let masks: Vec<u64> = io.cases.iter().map(|c| mask_bits(&c.mask)).collect();
    let (policy, value) =
        evaluate(&mut backend, &inputs, &masks).context("CPU forward of net_io.json's cases")?;
    for (i, case) in io.cases.iter().enumerate() {
        let p = &policy[i * POLICY_DIM..(i + 1) * POLICY_DIM];
        let dp = p
            .iter()
            .zip(&case.policy)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        let dv = (value[i] - case.value).abs();
        report.max_policy_diff = report.max_policy_diff.max(dp);
        report.max_value_diff = report.max_value_diff.max(dv);
        let illegal_mass = p
            .iter()
            .enumerate()
            .any(|(a, &x)| masks[i] >> a & 1 == 0 && x != 0.0);
        let mut ok = report.check(
            "network",
            (dp > NET_TOLERANCE || dv > NET_TOLERANCE || illegal_mass || case.input.len() != 256)
                .then(|| format!("case {}: |policy diff| {dp:.3e}, |value diff| {dv:.3e}, illegal mass {illegal_mass}", case.id)),
        );
        if let Some(r) = &case.reference {
            // Real states are recorded unrounded: our encoder must give the same f32 bits.
            let exact = encodings.get(&(r.round_id, r.step));
            ok &= report.check(
                "exact encodings",
                match exact {
                    None => Some(format!(
                        "case {}: round {} step {} is not in games.json",
                        case.id, r.round_id, r.step
                    )),
                    Some(e)
                        if e.iter()
                            .zip(&case.input)
                            .any(|(a, b)| a.to_bits() != b.to_bits()) =>
                    {
                        Some(format!(
                            "case {}: encoding of round {} step {} differs in its bits",
                            case.id, r.round_id, r.step
                        ))
                    }
                    Some(_) => None,
                },
            );
        }
        report.item(ok);
    }
    Ok(())
}
