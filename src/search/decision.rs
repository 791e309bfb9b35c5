//! The search for one decision across all its worlds, as a gather/apply state machine.
//!
//! [`Search::gather`] selects leaves in every world (world order, then selection order, so the
//! rows it asks for are deterministic), answers terminals at once, and appends the rows it
//! needs to the caller's [`Requests`]. A leaf answered by the cache waits, like one sent to
//! the network, until the call's outputs are applied: a cache hit saves a row but never
//! changes the course of the search, so a unit's games do not depend on what else its worker
//! played (and with it on `--workers`). (The roots' row is the exception that changes
//! nothing: answered by the cache, it expands the roots at once, before any selection, which
//! is where applying it would have left the search.) The caller evaluates them, possibly packed
//! with other searches' rows into one batch, and hands the outputs, in the same order, to
//! [`Search::apply`], which fills the cache, expands the leaves and backs their values up.
//! No threads, no blocking: a worker drives many searches at once.
//!
//! Cases of `gather`:
//! - first call: the roots need priors. The searching seat's root row is the same in every
//!   world (the encoder sees only that seat's information), so it is one row (or a cache hit);
//!   its value counts as the roots' first visit. Simulations start once the roots are expanded.
//! - with policy beliefs and past decisions of other seats to weigh ([`super::inference`]),
//!   between the root's row and the simulations: the rows of those decisions in every
//!   candidate world, in gathers of at most [`SearchConfig::max_rows_per_gather`] rows (so
//!   callers size batches as before); once all are answered, the worlds are resampled and
//!   their roots expanded.
//! - later calls: per world, up to `leaves_per_gather` leaves sent to the network; a collision
//!   with a leaf already in flight ends that world's selection for this call. A row identical
//!   to one already requested in this call shares it.
//! - all simulations backed up: [`Gathered::Done`]; [`Search::result`] holds the answer.

use super::beliefs::{sample_world, BeliefError, WorldSampler};
use super::cache::{legal_priors, CachedEval, EvalCache, RowKey, RowKeyMap, MAX_LEGAL};
use super::inference::{for_each_decision, resample};
use super::tree::{PvStep, SeatMask, Selection, Tree};
use super::{Beliefs, LeafValues, SearchConfig};
use crate::encode::{encode_into, Encoding};
use crate::game::{Round, Seat, MAX_PLAYERS};
use crate::net::{Backend, BatchIn, BatchOut, NetError, INPUT_DIM, POLICY_DIM};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use thiserror::Error;

/// Mask sent with rows asked only for their value (another seat's perspective): every action,
/// so any backend's masked softmax is well defined; that policy is never used.
const VALUE_ONLY_MASK: u64 = (1 << POLICY_DIM) - 1;

/// Marks a seat or policy of a pending leaf that is already known (no row to wait for).
const NO_ROW: u32 = u32::MAX;

#[derive(Debug, Error, PartialEq)]
pub enum SearchError {
    #[error("invalid search settings: {0}")]
    Config(String),
    #[error("the round is over: there is no move to search")]
    RoundOver,
    #[error("no world given to search")]
    NoWorlds,
    #[error("world {0} shows the searching seat a different position than world 0")]
    WorldsDisagree(usize),
    #[error("cannot sample a world: {0}")]
    Beliefs(#[from] BeliefError),
}

/// Network rows asked for by searches, in the layout of [`BatchIn`]: `inputs` row-major
/// `[rows, 256]`, one legal mask per row.
#[derive(Clone, Debug, Default)]
pub struct Requests {
    pub inputs: Vec<f32>,
    pub masks: Vec<u64>,
}

impl Requests {
    pub fn len(&self) -> usize {
        self.masks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.masks.is_empty()
    }

    pub fn clear(&mut self) {
        self.inputs.clear();
        self.masks.clear();
    }

    pub fn push(&mut self, input: &Encoding, mask: u64) {
        self.inputs.extend_from_slice(input);
        self.masks.push(mask);
    }

    /// The rows as a backend batch.
    pub fn batch(&self) -> BatchIn<'_> {
        BatchIn {
            inputs: &self.inputs,
            masks: &self.masks,
        }
    }
}

/// What [`Search::gather`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gathered {
    /// Appended this many rows to the requests; call [`Search::apply`] with their outputs.
    NeedEval(usize),
    /// The search is finished; nothing was appended.
    Done,
}

/// Counters of one search.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SearchStats {
    /// Rows sent to the network.
    pub nn_rows: u32,
    /// Rows answered by the cache.
    pub cache_hits: u32,
    /// Rows identical to one already requested in the same gather, which shared it.
    pub shared_rows: u32,
    /// Selections that ran into a leaf already in flight.
    pub collisions: u32,
    /// Rows sent to the network for policy beliefs (counted in `nn_rows` too).
    pub belief_rows: u32,
}

/// The answer of a search: root statistics summed over the worlds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SearchResult {
    pub searcher: Seat,
    /// Legal actions at the root.
    pub legal: u64,
    /// Root visit counts per action, summed over worlds (exact, no rounding).
    pub visits: [u32; POLICY_DIM],
    /// Per action: sum and count of the searcher's values backed up through that child.
    pub value_sum: [f32; POLICY_DIM],
    pub value_count: [u32; POLICY_DIM],
    pub stats: SearchStats,
}

impl SearchResult {
    /// Simulations that reached a root child, over all worlds.
    pub fn simulations(&self) -> u32 {
        self.visits.iter().sum()
    }

    /// Mean value for the searcher after `action`, if any value reached that child.
    pub fn mean_value(&self, action: u8) -> Option<f32> {
        let a = usize::from(action);
        (self.value_count[a] > 0).then(|| self.value_sum[a] / self.value_count[a] as f32)
    }

    /// The visit distribution (the policy training target).
    pub fn policy(&self) -> [f32; POLICY_DIM] {
        let total = self.simulations().max(1) as f32;
        self.visits.map(|v| v as f32 / total)
    }
}

/// Answer to one row a leaf needs.
enum RowAnswer {
    Known(CachedEval),
    Row(u32),
}

/// A leaf waiting for network rows.
#[derive(Clone, Copy, Debug)]
struct PendingLeaf {
    world: u32,
    node: u32,
    /// Its path: `paths[path_start..path_start + path_len]`.
    path_start: u32,
    path_len: u32,
    mask: u64,
    /// Seats whose values it backs up.
    seats: SeatMask,
    /// Per seat: the row holding its value, or [`NO_ROW`] if `values` already has it.
    rows: [u32; MAX_PLAYERS],
    values: [f32; MAX_PLAYERS],
    /// Row holding the mover's policy, or [`NO_ROW`] if `priors` already has it.
    policy_row: u32,
    priors: [f32; MAX_LEGAL],
}

/// A past decision of another seat in one candidate world, whose likelihood weighs it.
#[derive(Clone, Copy, Debug)]
struct BeliefQuery {
    candidate: u32,
    /// The round as the deciding seat saw it in that world.
    state: Round,
    seat: Seat,
    action: u8,
}

/// Bytes of one belief query, for memory bounds.
pub(crate) const BELIEF_QUERY_BYTES: u64 = std::mem::size_of::<BeliefQuery>() as u64;

/// A belief query waiting for its row.
#[derive(Clone, Copy, Debug)]
struct PendingBelief {
    query: u32,
    row: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    ExpandRoots,
    /// Policy beliefs: weighing the candidate worlds (the root's row is known).
    Beliefs,
    Simulate,
    Done,
}

/// The search for one decision. Reuse it across decisions with [`Search::restart`] to keep its
/// memory.
#[derive(Debug)]
pub struct Search {
    config: SearchConfig,
    rng: ChaCha8Rng,
    searcher: Seat,
    legal: u64,
    stage: Stage,
    /// One tree per world; only the first `config.worlds` are in use.
    trees: Vec<Tree>,
    sampler: WorldSampler,
    /// Policy beliefs: whether the worlds are still to be chosen from the candidate worlds,
    /// the queries weighing them (`next_query` is the first not yet asked for) with the log
    /// of each one's factor, those waiting for rows, and the root's evaluation meanwhile.
    weighing: bool,
    candidates: Vec<Round>,
    belief_queries: Vec<BeliefQuery>,
    log_factors: Vec<f64>,
    next_query: usize,
    pending_beliefs: Vec<PendingBelief>,
    root_eval: CachedEval,
    /// Keys and masks of the rows the last gather asked for, in order.
    rows: Vec<(RowKey, u64)>,
    /// Row index of each key asked for in the current gather.
    row_of_key: RowKeyMap<u32>,
    pending: Vec<PendingLeaf>,
    /// Paths of the pending leaves, concatenated.
    paths: Vec<u32>,
    /// Selection scratch.
    path: Vec<u32>,
    encoding: Encoding,
    stats: SearchStats,
}

impl Search {
    /// A search for the seat to act in `round`, over worlds sampled from its information.
    pub fn new(round: &Round, config: SearchConfig, seed: u64) -> Result<Search, SearchError> {
        let mut search = Search::empty(config)?;
        search.restart(round, seed)?;
        Ok(search)
    }

    /// A search over the given worlds (one tree each, `config.worlds` ignored): for analysis
    /// with known hands, or tests. Every world must show the seat to act the same position.
    pub fn with_worlds(
        worlds: &[Round],
        config: SearchConfig,
        seed: u64,
    ) -> Result<Search, SearchError> {
        let mut search = Search::empty(config)?;
        search.restart_with_worlds(worlds, seed)?;
        Ok(search)
    }

    fn empty(config: SearchConfig) -> Result<Search, SearchError> {
        config.validate()?;
        Ok(Search {
            config,
            rng: ChaCha8Rng::seed_from_u64(0),
            searcher: Seat(0),
            legal: 0,
            stage: Stage::Done,
            trees: Vec::new(),
            sampler: WorldSampler::new(),
            weighing: false,
            candidates: Vec::new(),
            belief_queries: Vec::new(),
            log_factors: Vec::new(),
            next_query: 0,
            pending_beliefs: Vec::new(),
            root_eval: CachedEval {
                value: 0.0,
                priors: [0.0; MAX_LEGAL],
            },
            rows: Vec::new(),
            row_of_key: RowKeyMap::default(),
            pending: Vec::new(),
            paths: Vec::new(),
            path: Vec::new(),
            encoding: [0.0; INPUT_DIM],
            stats: SearchStats::default(),
        })
    }

    /// Starts a new decision for the seat to act in `round`, reusing this search's memory.
    /// After an error the search is finished and holds no result.
    pub fn restart(&mut self, round: &Round, seed: u64) -> Result<(), SearchError> {
        self.stage = Stage::Done;
        if round.is_over() {
            return Err(SearchError::RoundOver);
        }
        self.rng = ChaCha8Rng::seed_from_u64(seed);
        let me = round.to_act();
        let worlds = self.config.worlds;
        let evidence = match self.config.beliefs {
            Beliefs::Uniform => None,
            Beliefs::Policy => self.config.policy_beliefs.evidence(round, me, worlds),
        };
        let Some(evidence) = evidence else {
            for w in 0..worlds as usize {
                let world = sample_world(round, me, &mut self.sampler, &mut self.rng)?;
                self.set_world(w, world);
            }
            self.trees.truncate(worlds as usize);
            self.begin(me, round.legal_mask());
            return Ok(());
        };
        self.candidates.clear();
        self.belief_queries.clear();
        for candidate in 0..evidence.candidates {
            let world = sample_world(round, me, &mut self.sampler, &mut self.rng)?;
            for_each_decision(&world, evidence.steps, |state, seat, action| {
                self.belief_queries.push(BeliefQuery {
                    candidate,
                    state: *state,
                    seat,
                    action,
                })
            });
            self.candidates.push(world);
        }
        self.log_factors.clear();
        self.log_factors.resize(self.belief_queries.len(), 0.0);
        self.next_query = 0;
        self.begin(me, round.legal_mask());
        self.weighing = true;
        Ok(())
    }

    fn set_world(&mut self, w: usize, world: Round) {
        match self.trees.get_mut(w) {
            Some(tree) => tree.reset(world),
            None => self.trees.push(Tree::new(world)),
        }
    }

    /// Starts a new decision over the given worlds, reusing this search's memory.
    pub fn restart_with_worlds(&mut self, worlds: &[Round], seed: u64) -> Result<(), SearchError> {
        self.stage = Stage::Done;
        let first = worlds.first().ok_or(SearchError::NoWorlds)?;
        if first.is_over() {
            return Err(SearchError::RoundOver);
        }
        let me = first.to_act();
        let view = |r: &Round| {
            let mut e = [0.0; INPUT_DIM];
            encode_into(r, me, self.config.encoder, &mut e);
            (e, r.to_act(), r.legal_mask())
        };
        let seen = view(first);
        if let Some(w) = worlds.iter().position(|r| view(r) != seen) {
            return Err(SearchError::WorldsDisagree(w));
        }
        self.rng = ChaCha8Rng::seed_from_u64(seed);
        self.trees.truncate(worlds.len());
        for (w, &world) in worlds.iter().enumerate() {
            self.set_world(w, world);
        }
        self.begin(me, first.legal_mask());
        Ok(())
    }

    fn begin(&mut self, me: Seat, legal: u64) {
        self.searcher = me;
        self.legal = legal;
        self.stage = Stage::ExpandRoots;
        self.weighing = false;
        self.rows.clear();
        self.pending.clear();
        self.pending_beliefs.clear();
        self.paths.clear();
        self.stats = SearchStats::default();
    }

    pub fn config(&self) -> &SearchConfig {
        &self.config
    }

    /// The seat this search decides for.
    pub fn searcher(&self) -> Seat {
        self.searcher
    }

    pub fn is_done(&self) -> bool {
        self.stage == Stage::Done
    }

    /// Selects leaves and appends the rows they need to `requests` (see the module doc).
    ///
    /// # Panics
    /// If the rows of the previous call have not been applied.
    pub fn gather(&mut self, cache: &mut EvalCache, requests: &mut Requests) -> Gathered {
        assert!(
            self.rows.is_empty(),
            "gather called with {} rows not yet applied",
            self.rows.len()
        );
        loop {
            self.row_of_key.clear();
            self.paths.clear();
            match self.stage {
                Stage::Done => return Gathered::Done,
                Stage::ExpandRoots => {
                    // Every world (and candidate) shows the searcher the same position.
                    let root = match self.weighing {
                        true => self.candidates[0],
                        false => *self.trees[0].world(),
                    };
                    match self.request_row(cache, requests, &root, self.searcher, self.legal) {
                        RowAnswer::Known(eval) => {
                            self.roots_evaluated(eval);
                            continue;
                        }
                        RowAnswer::Row(_) => return Gathered::NeedEval(1),
                    }
                }
                Stage::Beliefs => {
                    self.gather_beliefs(cache, requests);
                    if !self.rows.is_empty() {
                        return Gathered::NeedEval(self.rows.len());
                    }
                    // Every query is answered: the worlds can be chosen.
                    self.choose_worlds();
                    continue;
                }
                Stage::Simulate => {}
            }
            for w in 0..self.trees.len() {
                self.gather_world(w, cache, requests);
            }
            if !self.rows.is_empty() {
                return Gathered::NeedEval(self.rows.len());
            }
            if self.pending.is_empty() {
                // Selection only stops early on a collision, which needs a leaf in flight.
                debug_assert!(self
                    .trees
                    .iter()
                    .all(|t| t.finished == self.config.sims_per_world));
                self.stage = Stage::Done;
                return Gathered::Done;
            }
            // Every leaf of this call was a cache hit: apply them now, exactly as the outputs
            // of a batch would have been, and select again.
            self.apply(cache, &[], &[]);
        }
    }

    /// Asks for the rows of the next belief queries, up to one gather's worth of new rows;
    /// queries the cache answers weigh their candidate at once.
    fn gather_beliefs(&mut self, cache: &mut EvalCache, requests: &mut Requests) {
        let limit = self
            .config
            .max_rows_per_gather(self.candidates[0].players());
        let sent_before = self.stats.nn_rows;
        while self.next_query < self.belief_queries.len() && self.rows.len() < limit {
            let q = self.next_query;
            let query = self.belief_queries[q];
            self.next_query += 1;
            let mask = query.state.legal_mask();
            match self.request_row(cache, requests, &query.state, query.seat, mask) {
                RowAnswer::Known(eval) => {
                    self.log_factors[q] = self.log_factor(&eval.priors, mask, query.action);
                }
                RowAnswer::Row(row) => self.pending_beliefs.push(PendingBelief {
                    query: q as u32,
                    row,
                }),
            }
        }
        self.stats.belief_rows += self.stats.nn_rows - sent_before;
    }

    /// What an observed decision (`action` among `mask`'s, with these priors) makes of its
    /// candidate world.
    fn log_factor(&self, priors: &[f32; MAX_LEGAL], mask: u64, action: u8) -> f64 {
        let legal = (mask.count_ones() as usize).min(MAX_LEGAL);
        let taken = legal_index(mask, action);
        self.config
            .policy_beliefs
            .log_factor(&priors[..legal], taken)
    }

    /// With the root's evaluation: expands the roots, or, while the worlds are still to be
    /// chosen, keeps it for then.
    fn roots_evaluated(&mut self, eval: CachedEval) {
        if self.weighing {
            self.root_eval = eval;
            self.stage = Stage::Beliefs;
        } else {
            self.expand_roots(eval.value, &eval.priors);
        }
    }

    /// Keeps `worlds` of the weighed candidates, in proportion to their weights, and expands
    /// their roots.
    fn choose_worlds(&mut self) {
        // Summed in query order, whichever rows the cache answered: the same bits either way.
        let mut log_weights = vec![0.0; self.candidates.len()];
        for (query, &factor) in self.belief_queries.iter().zip(&self.log_factors) {
            log_weights[query.candidate as usize] += factor;
        }
        let mut chosen = Vec::with_capacity(self.config.worlds as usize);
        resample(
            &log_weights,
            self.config.worlds as usize,
            &mut self.rng,
            &mut chosen,
        );
        for (w, &c) in chosen.iter().enumerate() {
            self.set_world(w, self.candidates[c]);
        }
        self.trees.truncate(chosen.len());
        self.weighing = false;
        let root = self.root_eval;
        self.expand_roots(root.value, &root.priors);
    }

    fn gather_world(&mut self, w: usize, cache: &mut EvalCache, requests: &mut Requests) {
        let sims = self.config.sims_per_world;
        let mut sent = 0;
        while self.trees[w].started < sims && sent < self.config.leaves_per_gather {
            let selection = self.trees[w].select(&self.config, &mut self.rng, &mut self.path);
            match selection {
                Selection::Collision => {
                    self.stats.collisions += 1;
                    break;
                }
                Selection::Terminal { round } => {
                    self.trees[w].started += 1;
                    let mut values = [0.0; MAX_PLAYERS];
                    for seat in round.seats() {
                        values[seat.index()] = round.value_target(seat);
                    }
                    let all = seat_mask(&round);
                    self.trees[w].backup(&self.path, &values, all, false);
                }
                Selection::Leaf { node, round, mask } => {
                    self.trees[w].started += 1;
                    let mover = round.to_act();
                    let seats = match self.config.leaf_values {
                        LeafValues::All => seat_mask(&round),
                        LeafValues::Mover => 1 << mover.index(),
                    };
                    let mut leaf = PendingLeaf {
                        world: w as u32,
                        node,
                        path_start: self.paths.len() as u32,
                        path_len: self.path.len() as u32,
                        mask,
                        seats,
                        rows: [NO_ROW; MAX_PLAYERS],
                        values: [0.0; MAX_PLAYERS],
                        policy_row: NO_ROW,
                        priors: [0.0; MAX_LEGAL],
                    };
                    for seat in round.seats().filter(|s| seats >> s.index() & 1 == 1) {
                        let row_mask = if seat == mover { mask } else { VALUE_ONLY_MASK };
                        match self.request_row(cache, requests, &round, seat, row_mask) {
                            RowAnswer::Known(eval) => {
                                leaf.values[seat.index()] = eval.value;
                                if seat == mover {
                                    leaf.priors = eval.priors;
                                }
                            }
                            RowAnswer::Row(r) => {
                                leaf.rows[seat.index()] = r;
                                if seat == mover {
                                    leaf.policy_row = r;
                                }
                            }
                        }
                    }
                    // Pending until apply even when the cache answered every row (see the
                    // module doc): the search goes exactly as it would without a cache.
                    self.paths.extend_from_slice(&self.path);
                    self.pending.push(leaf);
                    sent += 1;
                }
            }
        }
    }

    /// Encodes `round` for `seat` and finds its evaluation: in the cache, in a row already
    /// requested by this gather, or in a new row appended to `requests`.
    fn request_row(
        &mut self,
        cache: &mut EvalCache,
        requests: &mut Requests,
        round: &Round,
        seat: Seat,
        mask: u64,
    ) -> RowAnswer {
        encode_into(round, seat, self.config.encoder, &mut self.encoding);
        let key = RowKey::of(&self.encoding, mask);
        if let Some(&row) = self.row_of_key.get(&key) {
            self.stats.shared_rows += 1;
            return RowAnswer::Row(row);
        }
        if let Some(eval) = cache.get(key) {
            self.stats.cache_hits += 1;
            return RowAnswer::Known(eval);
        }
        let row = self.rows.len() as u32;
        self.rows.push((key, mask));
        self.row_of_key.insert(key, row);
        requests.push(&self.encoding, mask);
        self.stats.nn_rows += 1;
        RowAnswer::Row(row)
    }

    /// Expands every world's root with the searcher's priors (plus fresh noise per world in
    /// self-play) and records the root value as its first visit.
    fn expand_roots(&mut self, value: f32, priors: &[f32; MAX_LEGAL]) {
        let legal = self.legal.count_ones() as usize;
        for tree in &mut self.trees {
            let mut p = *priors;
            if let Some(noise) = self.config.root_noise {
                noise.apply(&mut p[..legal], &mut self.rng);
            }
            tree.expand(0, self.legal, &p);
            tree.record_root_value(self.searcher.index(), value);
        }
        self.stage = Stage::Simulate;
    }

    /// Takes the outputs of the rows the last [`Search::gather`] asked for (`policy` row-major
    /// `[rows, 52]`, `value` `[rows]`, same order), stores them in `cache`, expands the leaves
    /// and backs their values up.
    ///
    /// # Panics
    /// If the output sizes do not match the rows asked for.
    pub fn apply(&mut self, cache: &mut EvalCache, policy: &[f32], value: &[f32]) {
        let rows = self.rows.len();
        assert!(
            value.len() == rows && policy.len() == rows * POLICY_DIM,
            "apply got {} values and {} policy floats for {rows} rows",
            value.len(),
            policy.len()
        );
        let policy_row = |r: u32| &policy[r as usize * POLICY_DIM..][..POLICY_DIM];
        for (r, &(key, mask)) in self.rows.iter().enumerate() {
            cache.insert(key, mask, policy_row(r as u32), value[r]);
        }
        if self.stage == Stage::Beliefs {
            for belief in &self.pending_beliefs {
                let query = &self.belief_queries[belief.query as usize];
                let mask = query.state.legal_mask();
                // Through `legal_priors`, as the cache keeps it: a hit weighs alike.
                let priors = legal_priors(mask, policy_row(belief.row));
                self.log_factors[belief.query as usize] =
                    self.log_factor(&priors, mask, query.action);
            }
            self.pending_beliefs.clear();
        } else if self.stage == Stage::ExpandRoots {
            let priors = legal_priors(self.legal, policy_row(0));
            self.roots_evaluated(CachedEval {
                value: value[0],
                priors,
            });
        } else {
            for leaf in &self.pending {
                let mut values = leaf.values;
                for (v, &r) in values.iter_mut().zip(&leaf.rows) {
                    if r != NO_ROW {
                        *v = value[r as usize];
                    }
                }
                let priors = if leaf.policy_row == NO_ROW {
                    leaf.priors
                } else {
                    legal_priors(leaf.mask, policy_row(leaf.policy_row))
                };
                let path = &self.paths[leaf.path_start as usize..][..leaf.path_len as usize];
                let tree = &mut self.trees[leaf.world as usize];
                tree.expand(leaf.node, leaf.mask, &priors);
                tree.backup(path, &values, leaf.seats, true);
            }
            let sims = self.config.sims_per_world;
            if self.trees.iter().all(|t| t.finished == sims) {
                self.stage = Stage::Done;
            }
        }
        self.rows.clear();
        self.pending.clear();
    }

    /// The worlds being searched, one per tree: sampled deals (or the given ones). With policy
    /// beliefs, chosen once the root's row and the belief rows are applied.
    pub fn worlds(&self) -> impl Iterator<Item = &Round> {
        self.trees.iter().map(|t| t.world())
    }

    /// The principal variation of the root action `action`: in the world whose root gave
    /// `action` the most visits (ties: the first such world), the line that starts with
    /// `action` and then follows the most-visited child (ties: the higher prior, then the
    /// lower action) as long as that child has been visited. Other seats' moves in it are
    /// those of that world's deal (a sampled one, unless the worlds were given). Empty before
    /// the roots are expanded or for an illegal action.
    pub fn principal_variation(&self, action: u8) -> Vec<PvStep> {
        let seat = self.searcher.index();
        let visits = |tree: &Tree| {
            tree.root_children(seat)
                .find(|c| c.action == action)
                .map_or(0, |c| c.visits)
        };
        // `max_by_key` keeps the last of equal maxima: reversed, the first world wins ties.
        self.trees
            .iter()
            .rev()
            .max_by_key(|t| visits(t))
            .map_or_else(Vec::new, |t| t.principal_variation(action))
    }

    /// Root statistics summed over the worlds (complete once [`Search::is_done`]).
    pub fn result(&self) -> SearchResult {
        let seat = self.searcher.index();
        let mut result = SearchResult {
            searcher: self.searcher,
            legal: self.legal,
            visits: [0; POLICY_DIM],
            value_sum: [0.0; POLICY_DIM],
            value_count: [0; POLICY_DIM],
            stats: self.stats,
        };
        for tree in &self.trees {
            for child in tree.root_children(seat) {
                let a = usize::from(child.action);
                result.visits[a] += child.visits;
                result.value_sum[a] += child.value_sum;
                result.value_count[a] += child.value_visits;
            }
        }
        result
    }
}

/// The index of legal `action` among priors in `mask`'s bit order.
fn legal_index(mask: u64, action: u8) -> usize {
    debug_assert!(mask >> action & 1 == 1, "action {action} is not legal");
    let below = mask & ((1u64 << action) - 1);
    below.count_ones() as usize
}

/// Every seat at the table.
fn seat_mask(round: &Round) -> SeatMask {
    ((1u16 << round.players()) - 1) as SeatMask
}

/// Runs `search` to the end, evaluating its rows on `backend` (in chunks of the backend's
/// maximum batch): for tests and benches.
pub fn run_blocking<B: Backend + ?Sized>(
    search: &mut Search,
    backend: &mut B,
    cache: &mut EvalCache,
) -> Result<SearchResult, NetError> {
    let mut requests = Requests::default();
    let mut policy = Vec::new();
    let mut value = Vec::new();
    loop {
        requests.clear();
        let rows = match search.gather(cache, &mut requests) {
            Gathered::Done => return Ok(search.result()),
            Gathered::NeedEval(rows) => rows,
        };
        policy.resize(rows * POLICY_DIM, 0.0);
        value.resize(rows, 0.0);
        let chunk = backend.max_batch().max(1);
        for start in (0..rows).step_by(chunk) {
            let end = (start + chunk).min(rows);
            backend.forward(
                BatchIn {
                    inputs: &requests.inputs[start * INPUT_DIM..end * INPUT_DIM],
                    masks: &requests.masks[start..end],
                },
                BatchOut {
                    policy: &mut policy[start * POLICY_DIM..end * POLICY_DIM],
                    value: &mut value[start..end],
                },
            )?;
        }
        search.apply(cache, &policy, &value);
    }
}
