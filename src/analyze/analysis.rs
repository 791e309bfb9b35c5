//! One query in flight: its search, its own evaluation cache, and the answers built from them
//! (partial ones during the search, then the final one).
//!
//! A search stops early, at its next gather after its root has been evaluated, when a
//! `terminate` action names it or its `max_time_ms` has passed; it is then answered with the
//! simulations it has backed up, marked with the reason. Partial answers are built from the
//! search's state after a batch has been applied and never change it.

use super::in_flight::Registration;
use super::query::{ErrorCode, Options, QueryError};
use crate::encode::{encode, EncoderVersion};
use crate::game::{Card, Phase, Round};
use crate::net::{INPUT_DIM, POLICY_DIM};
use crate::search::{Beliefs, EvalCache, Fpu, Gathered, PvStep, Requests, Search, SearchConfig};
use serde::Serialize;
use serde_json::Value;
use std::ops::Range;
use std::time::{Duration, Instant};

/// A query whose position passed every check, waiting for a worker.
#[derive(Debug)]
pub struct Job {
    pub id: Value,
    pub round: Round,
    pub options: Options,
    /// When the line was read: the answer's `time_ms` and `max_time_ms` count from here.
    pub received: Instant,
    /// Its place among the queries in flight (a `terminate` sets its flag).
    pub registration: Registration,
}

/// Why a search stopped before its budget of simulations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stopped {
    /// A `terminate` action named the query.
    Terminated,
    /// `max_time_ms` passed.
    TimeLimit,
}

/// The network's outputs for the root position, from the mover's perspective.
#[derive(Clone, Copy, Debug)]
struct RootEval {
    policy: [f32; POLICY_DIM],
    value: f32,
}

/// A query being searched.
pub struct Analysis {
    job: Job,
    search: Search,
    /// Fresh per query, so an answer depends on its query alone.
    cache: EvalCache,
    encoder: EncoderVersion,
    /// Set by the first [`Analysis::apply`]: the search's first row is the root's.
    root: Option<RootEval>,
    /// Rows of the batch in flight that belong to this query.
    pub rows: Option<Range<usize>>,
    /// When the search must stop (`max_time_ms` after the line was read).
    deadline: Option<Instant>,
    /// Partial answers: every this many simulations (`report_every` × worlds), and the total
    /// (all worlds) at which the next one is due.
    report_step: Option<u32>,
    next_report: u32,
    /// Set when the search stopped before its budget.
    stopped: Option<Stopped>,
}

impl Analysis {
    /// Starts the search of `job`: the server's `settings`, with what the query sets.
    pub fn start(job: Job, settings: &SearchConfig) -> Result<Analysis, QueryError> {
        let o = job.options;
        // Perfect information searches the one real deal.
        let worlds = match o.perfect_information {
            true => 1,
            false => o.dets.unwrap_or(settings.worlds),
        };
        let config = SearchConfig {
            worlds,
            sims_per_world: o.sims.unwrap_or(settings.sims_per_world),
            leaf_values: o.leaf_values.unwrap_or(settings.leaf_values),
            beliefs: o.beliefs.unwrap_or(settings.beliefs),
            root_noise: None,
            c_puct: o.c_puct.unwrap_or(settings.c_puct),
            fpu: o.fpu_reduction.map_or(settings.fpu, Fpu::Reduction),
            ..*settings
        };
        let search = if o.perfect_information {
            Search::with_worlds(&[job.round], config, o.seed)
        } else {
            Search::new(&job.round, config, o.seed)
        }
        .map_err(|e| QueryError::line(ErrorCode::Internal, format!("search refused: {e}")))?;
        Ok(Analysis {
            cache: EvalCache::for_search(&config, job.round.players()),
            search,
            encoder: config.encoder,
            root: None,
            rows: None,
            deadline: o
                .max_time_ms
                .map(|ms| job.received + Duration::from_millis(ms)),
            report_step: o.report_every.map(|n| n * worlds),
            next_report: o.report_every.map_or(0, |n| n * worlds),
            stopped: None,
            job,
        })
    }

    /// Most rows one [`Analysis::gather`] can append.
    pub fn max_rows(&self) -> usize {
        let players = self.job.round.players();
        self.search.config().max_rows_per_gather(players)
    }

    /// Appends the rows the search needs next, or says it is done: at the end of its budget,
    /// or earlier when it is terminated or out of time (once its root has been evaluated).
    pub fn gather(&mut self, requests: &mut Requests) -> Result<Gathered, QueryError> {
        if self.root.is_some() && !self.search.is_done() {
            self.stopped = if self.job.registration.is_terminated() {
                Some(Stopped::Terminated)
            } else if self.deadline.is_some_and(|d| Instant::now() >= d) {
                Some(Stopped::TimeLimit)
            } else {
                None
            };
            if self.stopped.is_some() {
                return Ok(Gathered::Done);
            }
        }
        let start = requests.len();
        let gathered = self.search.gather(&mut self.cache, requests);
        if self.root.is_none() && !self.is_root_row(requests, start, gathered) {
            requests.inputs.truncate(start * INPUT_DIM);
            requests.masks.truncate(start);
            return Err(QueryError::line(
                ErrorCode::Internal,
                "the search's first request was not the root position's row",
            ));
        }
        Ok(gathered)
    }

    /// With a fresh cache, a search's first gather asks for exactly one row: the root, seen by
    /// the seat to act, with its legal mask. Its outputs are the network's view of the position.
    fn is_root_row(&self, requests: &Requests, start: usize, gathered: Gathered) -> bool {
        let round = &self.job.round;
        let root = encode(round, round.to_act(), self.encoder);
        gathered == Gathered::NeedEval(1)
            && requests.masks[start] == round.legal_mask()
            && requests.inputs[start * INPUT_DIM..][..INPUT_DIM] == root[..]
    }

    /// Takes the outputs of the rows the last gather appended (`policy` `[rows, 52]`).
    pub fn apply(&mut self, policy: &[f32], value: &[f32]) {
        if self.root.is_none() {
            self.root = Some(RootEval {
                policy: policy[..POLICY_DIM].try_into().expect("one policy row"),
                value: value[0],
            });
        }
        self.search.apply(&mut self.cache, policy, value);
    }

    pub fn id(&self) -> &Value {
        &self.job.id
    }

    /// A partial answer, if the search (not yet done) has passed another multiple of
    /// `report_every` simulations per world since the last one.
    pub fn report_due(&mut self) -> Option<Answer> {
        let step = self.report_step?;
        let total = self.search.result().simulations();
        if self.root.is_none() || self.search.is_done() || total < self.next_report {
            return None;
        }
        self.next_report = (total / step + 1) * step;
        Some(self.answer(true))
    }

    /// The answer: partial (`during_search`) or final, from the simulations backed up so far.
    pub fn answer(&self, during_search: bool) -> Answer {
        let round = &self.job.round;
        let result = self.search.result();
        let root = self
            .root
            .expect("an answered search has evaluated its root");
        let total = result.simulations();
        let legal: Vec<u8> = (0..POLICY_DIM as u8)
            .filter(|&a| result.legal >> a & 1 == 1)
            .collect();
        let playing = round.phase() == Phase::Playing;
        let moves: Vec<MoveStats> = legal
            .iter()
            .map(|&a| {
                let visits = result.visits[usize::from(a)];
                MoveStats {
                    action: a,
                    card: card_name(round.phase(), a),
                    visits,
                    share: short(visits as f32 / total.max(1) as f32),
                    prior: short(root.policy[usize::from(a)]),
                    value: result.mean_value(a).map(short),
                    pv: self
                        .search
                        .principal_variation(a)
                        .iter()
                        .map(PvMove::of)
                        .collect(),
                }
            })
            .collect();
        // Most visits; ties go to the higher prior, then to the lower action.
        let best = moves
            .iter()
            .max_by(|x, y| {
                (x.visits.cmp(&y.visits))
                    .then(x.prior.total_cmp(&y.prior))
                    .then(y.action.cmp(&x.action))
            })
            .expect("a position to act in has a legal action");
        let value_sum: f32 = result.value_sum.iter().sum();
        let value_count: u32 = result.value_count.iter().sum();
        let o = &self.job.options;
        let config = self.search.config();
        Answer {
            id: self.job.id.clone(),
            is_during_search: during_search,
            stopped: if during_search { None } else { self.stopped },
            player: round.to_act().0,
            phase: if playing { "play" } else { "bid" },
            best_action: best.action,
            legal_actions: legal.clone(),
            network_value: short(root.value),
            search_value: (value_count > 0).then(|| short(value_sum / value_count as f32)),
            policy_prior: o
                .include_policy_prior
                .then(|| root.policy.iter().map(|&p| short(p)).collect()),
            moves,
            stats: Stats {
                worlds: config.worlds,
                sims_per_world: config.sims_per_world,
                simulations: total,
                nn_rows: result.stats.nn_rows,
                cache_hits: result.stats.cache_hits,
                belief_rows: (config.beliefs == Beliefs::Policy)
                    .then_some(result.stats.belief_rows),
                time_ms: (self.job.received.elapsed().as_secs_f64() * 1e6).round() / 1e3,
            },
        }
    }
}

/// The card's name when `action` is a play.
fn card_name(phase: Phase, action: u8) -> Option<String> {
    (phase == Phase::Playing)
        .then(|| Card::from_index(action).map(|c| c.to_string()))
        .flatten()
}

/// `x` as the shortest decimal that reads back as the same `f32` (0.1, not 0.100000001…).
fn short(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(f64::NAN)
}

/// One legal action's search statistics.
#[derive(Clone, Debug, Serialize)]
pub struct MoveStats {
    pub action: u8,
    /// The card's name (`"Q♥"`) when the action is a play.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub card: Option<String>,
    pub visits: u32,
    /// `visits` over all root visits.
    pub share: f64,
    /// The network's policy for this action at the root (mover's perspective).
    pub prior: f64,
    /// Mean value for the mover of the simulations through this action (`null` if none).
    pub value: Option<f64>,
    /// Principal variation: this action, then the most-visited line after it in one world
    /// (see [`Search::principal_variation`]).
    pub pv: Vec<PvMove>,
}

/// One step of a principal variation.
#[derive(Clone, Debug, Serialize)]
pub struct PvMove {
    pub seat: u8,
    /// A bid, or a card index when `card` is given.
    pub action: u8,
    /// The card's name when the step is a play.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub card: Option<String>,
    /// Simulations through this step in its world.
    pub visits: u32,
}

impl PvMove {
    fn of(step: &PvStep) -> PvMove {
        PvMove {
            seat: step.seat.0,
            action: step.action,
            card: card_name(step.phase, step.action),
            visits: step.visits,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Stats {
    /// Worlds searched (1 under perfect information: the given deal).
    pub worlds: u32,
    pub sims_per_world: u32,
    /// Root visits, all worlds together.
    pub simulations: u32,
    /// Rows this query sent to the network (the root's included).
    pub nn_rows: u32,
    /// Rows answered by this query's cache instead.
    pub cache_hits: u32,
    /// With policy beliefs: of `nn_rows`, those that weighed the worlds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub belief_rows: Option<u32>,
    /// From reading the query to this answer (the only field that varies between runs of a
    /// query without `max_time_ms` or `terminate`).
    pub time_ms: f64,
}

/// The answer to one query.
#[derive(Clone, Debug, Serialize)]
pub struct Answer {
    pub id: Value,
    /// True for a partial answer (`report_every`), false for the final one.
    pub is_during_search: bool,
    /// In a final answer, why the search stopped before its budget (absent: it did not).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<Stopped>,
    pub player: u8,
    /// `"bid"` or `"play"`.
    pub phase: &'static str,
    pub legal_actions: Vec<u8>,
    pub best_action: u8,
    /// The network's value of the position for the mover, on the scale `2·score/23 − 1`.
    pub network_value: f64,
    /// Mean value for the mover over every simulation (`null` if none reached a value).
    pub search_value: Option<f64>,
    pub moves: Vec<MoveStats>,
    /// The network's whole root policy, 52 entries indexed by action (on request).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_prior: Option<Vec<f64>>,
    pub stats: Stats,
}
