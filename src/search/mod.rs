//! Search: information-set MCTS by determinization, driven as a state machine.
//!
//! A [`Search`] decides one move for the seat to act. It samples worlds (deals of the hidden
//! cards) from that seat's information only ([`beliefs`]), runs PUCT on each world's
//! perfect-information tree with per-seat values (`tree`), and sums the root visit counts
//! over the worlds. It never reads hidden hands and never sees network internals: it hands out
//! encoded rows (256 floats and a legal mask) and takes back policies and values, through
//! [`Search::gather`] / [`Search::apply`] or [`run_blocking`] with any [`crate::net::Backend`].
//! Identical rows share one evaluation through [`EvalCache`] and within a batch.
//!
//! Leaf values ([`LeafValues`]) — the trade-off:
//! - `All` (default) evaluates a leaf from every seat's perspective (one row per seat; the
//!   policy comes from the mover's row), so every seat's statistics get a value on every
//!   simulation and each seat's choices are guided from the first visits. It costs `players`
//!   rows per leaf.
//! - `Mover` evaluates only the mover's row and backs the value up for the mover's seat only;
//!   other seats learn values from terminals and from the leaves where they move. One row per
//!   leaf (`players` times cheaper), but a seat's values arrive only from leaves a full table
//!   round deeper, so at small simulation counts its choices lean on priors and first-play
//!   urgency.
//!
//! Beliefs ([`Beliefs`]): worlds are sampled uniformly from the deals consistent with the
//! searching seat's information ([`beliefs`]), or, with `Policy`, reweighted by how likely the
//! other seats' bids and plays of this round are under the network's own policy in each
//! sampled world ([`inference`]). The second costs extra network rows, capped per decision.
//!
//! Randomness (worlds, root noise, tie-breaks) comes from the seed given to the search, so the
//! same seed and network give the same result. The evaluation cache only saves rows: a leaf it
//! answers waits for [`Search::apply`] like one sent to the network, so what the cache holds
//! never changes a search (tests/search.rs checks a cold and a hot cache against none).

pub mod beliefs;
pub mod cache;
mod decision;
pub mod inference;
pub mod root;
mod tree;

pub use cache::EvalCache;
pub use decision::{
    run_blocking, Gathered, Requests, Search, SearchError, SearchResult, SearchStats,
};
pub use inference::PolicyBeliefs;
pub use root::{choose_action, RootNoise, TemperatureSchedule};
pub use tree::PvStep;

use crate::encode::EncoderVersion;
use serde::{Deserialize, Serialize};

/// How leaves are valued: see the module documentation for the trade-off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeafValues {
    /// One row per seat; every seat's statistics are updated.
    #[default]
    All,
    /// One row, the mover's; only the mover's statistics are updated.
    Mover,
}

/// How a search samples its worlds: see the module documentation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Beliefs {
    /// Uniformly among the deals consistent with the searching seat's information.
    #[default]
    Uniform,
    /// In proportion to the likelihood of the other seats' past decisions under the policy
    /// head ([`PolicyBeliefs`]).
    Policy,
}

/// Value assumed for a child that has no value yet for the seat choosing (first-play urgency).
/// In settings: `{ reduction = 0.2 }` or `{ absolute = -1.0 }`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fpu {
    /// The parent's mean value for that seat (0 if it has none) minus this reduction.
    Reduction(f32),
    /// A fixed value.
    Absolute(f32),
}

/// Search budgets by name: worlds × simulations per world.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// 2 worlds × 20 simulations.
    Light,
    /// 3 worlds × 30 simulations.
    #[default]
    Medium,
    /// 5 worlds × 50 simulations.
    Heavy,
}

impl Preset {
    /// The default settings with this budget.
    pub fn config(self) -> SearchConfig {
        match self {
            Preset::Light => SearchConfig::light(),
            Preset::Medium => SearchConfig::medium(),
            Preset::Heavy => SearchConfig::heavy(),
        }
    }
}

/// Most worlds one search samples: one gather of 64 worlds × 4 leaves × 8 seats fills a batch
/// of 2,048 rows, and a decision's time and memory grow with the worlds.
pub const MAX_WORLDS: u32 = 64;
/// Most simulations per world: the search counts visits per seat in 16 bits, and the root's
/// own evaluation adds one.
pub const MAX_SIMS_PER_WORLD: u32 = u16::MAX as u32 - 1;

/// Settings of one search.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SearchConfig {
    /// Determinized worlds per decision.
    pub worlds: u32,
    /// Simulations per world (forced moves inside the tree cost none).
    pub sims_per_world: u32,
    pub c_puct: f32,
    pub fpu: Fpu,
    pub leaf_values: LeafValues,
    /// Dirichlet noise at each world's root: self-play only, `None` for arena and analysis.
    pub root_noise: Option<RootNoise>,
    /// Most leaves one world sends to the network per [`Search::gather`].
    pub leaves_per_gather: u32,
    pub encoder: EncoderVersion,
    pub beliefs: Beliefs,
    /// How `Beliefs::Policy` weighs worlds (unused with `Uniform`).
    pub policy_beliefs: PolicyBeliefs,
}

impl SearchConfig {
    /// 2 worlds × 20 simulations.
    pub fn light() -> SearchConfig {
        SearchConfig::with_budget(2, 20)
    }

    /// 3 worlds × 30 simulations (the default).
    pub fn medium() -> SearchConfig {
        SearchConfig::with_budget(3, 30)
    }

    /// 5 worlds × 50 simulations.
    pub fn heavy() -> SearchConfig {
        SearchConfig::with_budget(5, 50)
    }

    /// Default settings with `worlds` × `sims_per_world`.
    pub fn with_budget(worlds: u32, sims_per_world: u32) -> SearchConfig {
        SearchConfig {
            worlds,
            sims_per_world,
            c_puct: 1.5,
            fpu: Fpu::Reduction(0.2),
            leaf_values: LeafValues::All,
            root_noise: None,
            leaves_per_gather: 4,
            encoder: EncoderVersion::V2,
            beliefs: Beliefs::Uniform,
            policy_beliefs: PolicyBeliefs::default(),
        }
    }

    /// These settings with self-play's root noise (α 0.3, ε 0.25).
    pub fn self_play(self) -> SearchConfig {
        SearchConfig {
            root_noise: Some(RootNoise::default()),
            ..self
        }
    }

    /// Rows one network leaf takes at a table of `players`: one per seat, or the mover's.
    pub fn rows_per_leaf(&self, players: u8) -> usize {
        match self.leaf_values {
            LeafValues::All => usize::from(players),
            LeafValues::Mover => 1,
        }
    }

    /// Most network rows the beliefs of one decision ask for: 0 with uniform beliefs.
    pub fn belief_rows_bound(&self) -> usize {
        match self.beliefs {
            Beliefs::Uniform => 0,
            Beliefs::Policy => self.policy_beliefs.max_rows as usize,
        }
    }

    /// Most rows one [`Search::gather`] appends at a table of `players` (belief rows are
    /// handed out in gathers of at most this many too).
    pub fn max_rows_per_gather(&self, players: u8) -> usize {
        self.worlds as usize * self.leaves_per_gather as usize * self.rows_per_leaf(players)
    }

    /// Most bytes the trees of one search hold when no decision has more than `max_actions`
    /// legal actions: the root, then at most one expansion (adding its children) per
    /// simulation, the root's own included.
    pub fn tree_bytes_bound(&self, max_actions: usize) -> u64 {
        let nodes = 1 + (u64::from(self.sims_per_world) + 1) * max_actions as u64;
        u64::from(self.worlds) * nodes * tree::NODE_BYTES
    }

    /// Most bytes the policy beliefs of one search hold: the candidate worlds with their
    /// weights, and one query with its factor per belief row at most (0 with uniform
    /// beliefs).
    pub fn belief_bytes_bound(&self) -> u64 {
        if self.beliefs == Beliefs::Uniform {
            return 0;
        }
        let candidates = u64::from(self.worlds) * u64::from(self.policy_beliefs.oversampling);
        let candidate_bytes = std::mem::size_of::<crate::game::Round>() as u64 + 8;
        candidates * candidate_bytes
            + self.belief_rows_bound() as u64 * (decision::BELIEF_QUERY_BYTES + 8)
    }

    pub fn validate(&self) -> Result<(), SearchError> {
        let bad = |what: String| Err(SearchError::Config(what));
        if self.worlds == 0 || self.sims_per_world == 0 || self.leaves_per_gather == 0 {
            return bad(format!(
                "worlds ({}), sims_per_world ({}) and leaves_per_gather ({}) must be positive",
                self.worlds, self.sims_per_world, self.leaves_per_gather
            ));
        }
        if self.worlds > MAX_WORLDS || self.sims_per_world > MAX_SIMS_PER_WORLD {
            return bad(format!(
                "worlds ({}) must be at most {MAX_WORLDS} and sims_per_world ({}) at most \
                 {MAX_SIMS_PER_WORLD}",
                self.worlds, self.sims_per_world
            ));
        }
        if !(self.c_puct.is_finite() && self.c_puct >= 0.0) {
            return bad(format!("c_puct {} must be finite and ≥ 0", self.c_puct));
        }
        let fpu = match self.fpu {
            Fpu::Reduction(x) | Fpu::Absolute(x) => x,
        };
        if !fpu.is_finite() {
            return bad(format!("first-play urgency {fpu} must be finite"));
        }
        if let Some(n) = self.root_noise {
            if !(n.alpha > 0.0 && n.alpha.is_finite() && (0.0..=1.0).contains(&n.epsilon)) {
                return bad(format!(
                    "root noise needs alpha > 0 and epsilon in [0, 1], got alpha {} and epsilon {}",
                    n.alpha, n.epsilon
                ));
            }
        }
        if self.beliefs == Beliefs::Policy {
            self.policy_beliefs
                .validate()
                .map_err(SearchError::Config)?;
        }
        Ok(())
    }
}

impl Default for SearchConfig {
    fn default() -> SearchConfig {
        SearchConfig::medium()
    }
}
