//! One query in flight: its search, its own evaluation cache, and the answer built from them.

use super::query::{ErrorCode, Options, QueryError};
use crate::encode::{encode, EncoderVersion};
use crate::game::{Card, Phase, Round};
use crate::net::{INPUT_DIM, POLICY_DIM};
use crate::search::{EvalCache, Gathered, Requests, Search, SearchConfig};
use serde::Serialize;
use serde_json::Value;
use std::ops::Range;
use std::time::Instant;

/// Most entries of a query's evaluation cache (about 80 bytes each).
const MAX_CACHE_ENTRIES: usize = 1 << 16;

/// A query whose position passed every check, waiting for a worker.
#[derive(Debug)]
pub struct Job {
    pub id: Value,
    pub round: Round,
    pub options: Options,
    /// When the line was read: the answer's `time_ms` counts from here.
    pub received: Instant,
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
}

impl Analysis {
    pub fn start(job: Job, encoder: EncoderVersion) -> Result<Analysis, QueryError> {
        let o = job.options;
        // Perfect information searches the one real deal.
        let worlds = if o.perfect_information { 1 } else { o.dets };
        let config = SearchConfig {
            leaf_values: o.leaf_values,
            encoder,
            root_noise: None,
            ..SearchConfig::with_budget(worlds, o.sims)
        };
        let search = if o.perfect_information {
            Search::with_worlds(&[job.round], config, o.seed)
        } else {
            Search::new(&job.round, config, o.seed)
        }
        .map_err(|e| QueryError::line(ErrorCode::Internal, format!("search refused: {e}")))?;
        let rows = worlds as usize * o.sims as usize * config.rows_per_leaf(job.round.players());
        Ok(Analysis {
            cache: EvalCache::new(rows.clamp(1, MAX_CACHE_ENTRIES)),
            search,
            encoder,
            root: None,
            rows: None,
            job,
        })
    }

    /// Most rows one [`Analysis::gather`] can append.
    pub fn max_rows(&self) -> usize {
        let players = self.job.round.players();
        self.search.config().max_rows_per_gather(players)
    }

    /// Appends the rows the search needs next, or says it is done.
    pub fn gather(&mut self, requests: &mut Requests) -> Result<Gathered, QueryError> {
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

    /// The answer of a finished search.
    pub fn answer(&self) -> Answer {
        let round = &self.job.round;
        let result = self.search.result();
        let root = self.root.expect("a finished search has evaluated its root");
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
                    card: playing
                        .then(|| Card::from_index(a).map(|c| c.to_string()))
                        .flatten(),
                    visits,
                    share: short(visits as f32 / total.max(1) as f32),
                    prior: short(root.policy[usize::from(a)]),
                    value: result.mean_value(a).map(short),
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
                time_ms: (self.job.received.elapsed().as_secs_f64() * 1e6).round() / 1e3,
            },
        }
    }
}

/// Network rows per new leaf: one per seat, or the mover's alone.
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
    /// From reading the query to its answer (the only field that varies between runs).
    pub time_ms: f64,
}

/// The answer to one query.
#[derive(Clone, Debug, Serialize)]
pub struct Answer {
    pub id: Value,
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
