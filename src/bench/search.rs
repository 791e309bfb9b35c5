//! `engine bench --search`: whole searches on a fixed, seeded set of positions, on any
//! backend, timed as analysis runs them.
//!
//! The positions ([`positions`]): `deals` rounds dealt from the seed (deal `i` from the random
//! stream `(seed, i)`, dealer and trump drawn as self-play draws them), each played out with
//! uniformly random legal moves, and taken at four stages ([`Stage`]): the first bid, the
//! first card, the second card of the middle trick and the last card of the last trick but one
//! (rounds of one card give the bid only). Every play position has at least two cards in the
//! mover's hand.
//!
//! Each position is searched as an analysis query is: determinized MCTS with the given
//! settings, no root noise, a fresh evaluation cache of its own and its own seed. `threads`
//! workers each drive two groups of searches through one batch ring, so the network sees
//! batches of many searches' rows, as in `engine analyze` and self-play. Since a search
//! depends only on its position, seed and the network's outputs for its rows, and every
//! backend gives a row the same outputs whatever batch it is in, the counts of a run
//! ([`SearchCounts`]: simulations, network rows, cache hits, and a fingerprint of every root's
//! visits) are the same for a seed whatever the threads and batch sizes; only the times vary.

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use thiserror::Error;

use crate::game::{Phase, Round, RuleError};
use crate::net::{Backend, NetError};
use crate::ring::{drive, Batch, Client, Ring, RingError};
use crate::search::{
    Beliefs, EvalCache, Gathered, LeafValues, Requests, Search, SearchConfig, SearchError,
    SearchResult,
};

/// Deals of the position set by default (four positions each).
pub const DEFAULT_DEALS: u64 = 32;
/// Most deals: positions are held in memory, four per deal.
pub const MAX_DEALS: u64 = 100_000;
/// Where in its round a position is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The first bid.
    Bid,
    /// The first card of the round.
    Lead,
    /// The second card of the middle trick (trick `(cards - 1) / 2`).
    Mid,
    /// The last card of the last trick but one (the mover holds two cards).
    Late,
}

/// A position of the set: the round (every hand, as dealt) with a seat to act.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    pub round: Round,
    pub stage: Stage,
    /// The deal it comes from.
    pub deal: u64,
}

/// The stage `round` is at, if it is one of the set's.
fn stage_of(round: &Round) -> Option<Stage> {
    let cards = round.cards_dealt();
    match round.phase() {
        Phase::Bidding => round
            .seats()
            .all(|s| round.bid(s).is_none())
            .then_some(Stage::Bid),
        Phase::Playing if cards >= 2 => {
            let (trick, played) = (round.completed_tricks(), round.trick().len());
            if trick == 0 && played == 0 {
                Some(Stage::Lead)
            } else if trick == (cards - 1) / 2 && played == 1 {
                Some(Stage::Mid)
            } else if trick == cards - 2 && played == usize::from(round.players()) - 1 {
                Some(Stage::Late)
            } else {
                None
            }
        }
        Phase::Playing | Phase::Scoring => None,
    }
}

/// The position set: `deals` rounds of `players` × `cards` from `seed`, four positions each
/// (one for one-card rounds), in deal then stage order.
pub fn positions(
    players: u8,
    cards: u8,
    deals: u64,
    seed: u64,
) -> Result<Vec<Position>, RuleError> {
    let mut set = Vec::new();
    for deal in 0..deals {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(deal);
        let mut round = Round::deal_random(players, cards, &mut rng)?;
        while !round.is_over() {
            if let Some(stage) = stage_of(&round) {
                set.push(Position { round, stage, deal });
            }
            let legal = round.legal_mask();
            let k = rng.random_range(0..legal.count_ones());
            round.apply(nth_bit(legal, k));
        }
    }
    Ok(set)
}

/// The index of the `k`-th set bit of `mask` (from bit 0).
fn nth_bit(mut mask: u64, k: u32) -> u8 {
    for _ in 0..k {
        mask &= mask - 1;
    }
    mask.trailing_zeros() as u8
}

/// The search seed of position `index`.
fn search_seed(seed: u64, index: usize) -> u64 {
    seed ^ (index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Settings of a search benchmark.
#[derive(Clone, Copy, Debug)]
pub struct SearchBenchConfig {
    pub players: u8,
    pub cards: u8,
    pub deals: u64,
    pub seed: u64,
    /// Every position's search (root noise is ignored: analysis searches have none).
    pub search: SearchConfig,
    /// Worker threads driving searches.
    pub threads: usize,
    /// Rows of a batch slot: at least one search's largest gather.
    pub rows_per_batch: usize,
}

#[derive(Debug, Error)]
pub enum SearchBenchError {
    #[error(transparent)]
    Rules(#[from] RuleError),
    #[error(transparent)]
    Config(#[from] SearchError),
    #[error(
        "batches of {rows} rows cannot hold one search's gather of {need} rows \
         ({worlds} worlds × {leaves} leaves × {per_leaf} rows per leaf)"
    )]
    BatchTooSmall {
        rows: usize,
        need: usize,
        worlds: u32,
        leaves: u32,
        per_leaf: usize,
    },
    #[error("searching position {index} ({stage:?} of deal {deal}): {source}")]
    Search {
        index: usize,
        stage: Stage,
        deal: u64,
        #[source]
        source: SearchError,
    },
    #[error("allocating the ring's slots: {0}")]
    Slots(#[source] NetError),
    #[error(transparent)]
    Ring(#[from] RingError),
}

/// What a run searched: the same for a seed and settings on any backend that gives a row the
/// same outputs whatever its batch, with any threads and batch size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SearchCounts {
    pub positions: u64,
    /// Simulations that reached a root child, over all worlds and positions.
    pub simulations: u64,
    /// Rows sent to the network.
    pub nn_rows: u64,
    /// Of `nn_rows`, those asked for by policy beliefs.
    pub belief_rows: u64,
    /// Rows answered by a position's evaluation cache.
    pub cache_hits: u64,
    /// Rows shared with an identical row of the same gather.
    pub shared_rows: u64,
    /// Selections that ran into a leaf already in flight.
    pub collisions: u64,
    /// FNV-1a of every position's root visit counts, in position order (16 hex digits).
    pub fingerprint: String,
}

/// A timed run.
#[derive(Clone, Debug, Serialize)]
pub struct SearchReport {
    /// The backend's name ("cpu", "cuda").
    #[serde(rename = "device")]
    pub backend: &'static str,
    pub players: u8,
    pub cards: u8,
    pub deals: u64,
    pub seed: u64,
    pub worlds: u32,
    pub sims_per_world: u32,
    pub leaf_values: &'static str,
    pub beliefs: &'static str,
    pub threads: usize,
    pub rows_per_batch: usize,
    #[serde(flatten)]
    pub counts: SearchCounts,
    /// Batches the network ran (depends on timing, unlike the counts).
    pub batches: u64,
    pub avg_batch: f64,
    pub seconds: f64,
    pub simulations_per_s: f64,
    pub nn_rows_per_s: f64,
    pub positions_per_s: f64,
}

/// Searches every position of the set `config` names on `backend` (which must take
/// `config.rows_per_batch` rows), calling `progress(done, total)` as positions finish.
pub fn run(
    backend: &mut dyn Backend,
    config: &SearchBenchConfig,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<SearchReport, SearchBenchError> {
    let search = SearchConfig {
        root_noise: None,
        ..config.search
    };
    search.validate()?;
    let need = search.max_rows_per_gather(config.players);
    if config.rows_per_batch < need {
        return Err(SearchBenchError::BatchTooSmall {
            rows: config.rows_per_batch,
            need,
            worlds: search.worlds,
            leaves: search.leaves_per_gather,
            per_leaf: search.rows_per_leaf(config.players),
        });
    }
    let set = positions(config.players, config.cards, config.deals, config.seed)?;
    let threads = config.threads.max(1);
    // Every group gets a share of the positions, as many at once as fit its batch.
    let per_group = (config.rows_per_batch / need)
        .min(set.len().div_ceil(2 * threads))
        .max(1);
    let shared = Shared {
        positions: &set,
        search,
        seed: config.seed,
        per_group,
        next: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
        results: Mutex::new(vec![None; set.len()]),
        progress,
    };
    let name = backend.name();
    let ring =
        Ring::new(backend, 2 * threads, config.rows_per_batch).map_err(SearchBenchError::Slots)?;
    let start = Instant::now();
    std::thread::scope(|scope| -> Result<(), SearchBenchError> {
        let ring = &ring;
        let server = scope.spawn(move || ring.serve(backend));
        // Even if a worker panics, the backend thread ends and the scope can join it.
        let _close = ring.close_on_drop();
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let shared = &shared;
                scope.spawn(move || {
                    let mut worker = Worker {
                        shared,
                        requests: Requests::default(),
                        groups: [Vec::new(), Vec::new()],
                    };
                    let driven = drive(&[ring], 2, &mut worker);
                    if driven.is_err() {
                        // The others stop at their next admission.
                        shared.next.store(usize::MAX / 2, Ordering::Relaxed);
                    }
                    driven
                })
            })
            .collect();
        let mut failure = None;
        for w in workers {
            if let Err(e) = w.join().expect("search bench worker panicked") {
                failure.get_or_insert(e);
            }
        }
        ring.close();
        let served = server.join().expect("ring server panicked");
        if let Some(e) = failure {
            return Err(e);
        }
        Ok(served?)
    })?;
    let seconds = start.elapsed().as_secs_f64();
    let results = shared
        .results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner());
    let counts = count(&results);
    let batches = ring.stats.batches.load(Ordering::Relaxed);
    let rows = ring.stats.rows.load(Ordering::Relaxed);
    let per_s = |n: u64| n as f64 / seconds;
    Ok(SearchReport {
        backend: name,
        players: config.players,
        cards: config.cards,
        deals: config.deals,
        seed: config.seed,
        worlds: search.worlds,
        sims_per_world: search.sims_per_world,
        leaf_values: match search.leaf_values {
            LeafValues::All => "all",
            LeafValues::Mover => "mover",
        },
        beliefs: match search.beliefs {
            Beliefs::Uniform => "uniform",
            Beliefs::Policy => "policy",
        },
        threads,
        rows_per_batch: config.rows_per_batch,
        batches,
        avg_batch: if batches == 0 {
            0.0
        } else {
            rows as f64 / batches as f64
        },
        seconds,
        simulations_per_s: per_s(counts.simulations),
        nn_rows_per_s: per_s(counts.nn_rows),
        positions_per_s: per_s(counts.positions),
        counts,
    })
}

/// The counts of the results, in position order.
fn count(results: &[Option<SearchResult>]) -> SearchCounts {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = FNV_OFFSET;
    let mut counts = SearchCounts {
        positions: 0,
        simulations: 0,
        nn_rows: 0,
        belief_rows: 0,
        cache_hits: 0,
        shared_rows: 0,
        collisions: 0,
        fingerprint: String::new(),
    };
    for r in results.iter().flatten() {
        counts.positions += 1;
        counts.simulations += u64::from(r.simulations());
        counts.nn_rows += u64::from(r.stats.nn_rows);
        counts.belief_rows += u64::from(r.stats.belief_rows);
        counts.cache_hits += u64::from(r.stats.cache_hits);
        counts.shared_rows += u64::from(r.stats.shared_rows);
        counts.collisions += u64::from(r.stats.collisions);
        for v in r.visits {
            for byte in v.to_le_bytes() {
                hash = (hash ^ u64::from(byte)).wrapping_mul(FNV_PRIME);
            }
        }
    }
    counts.fingerprint = format!("{hash:016x}");
    counts
}

/// What the workers share: the positions, which one is next, and the results.
struct Shared<'a> {
    positions: &'a [Position],
    search: SearchConfig,
    seed: u64,
    /// Most searches a group runs at once.
    per_group: usize,
    next: AtomicUsize,
    done: AtomicUsize,
    results: Mutex<Vec<Option<SearchResult>>>,
    progress: &'a (dyn Fn(usize, usize) + Sync),
}

/// A position being searched.
struct Active {
    index: usize,
    search: Search,
    cache: EvalCache,
    /// Rows of the batch in flight that are this search's.
    rows: Option<Range<usize>>,
}

/// One worker: two groups of searches, one's batch on the backend while the other's gather.
struct Worker<'a> {
    shared: &'a Shared<'a>,
    requests: Requests,
    groups: [Vec<Active>; 2],
}

impl Worker<'_> {
    /// Starts the next positions until the group is full or none is left.
    fn admit(&mut self, group: usize) -> Result<(), SearchBenchError> {
        let shared = self.shared;
        while self.groups[group].len() < shared.per_group {
            let index = shared.next.fetch_add(1, Ordering::Relaxed);
            let Some(position) = shared.positions.get(index) else {
                return Ok(());
            };
            let search = Search::new(
                &position.round,
                shared.search,
                search_seed(shared.seed, index),
            )
            .map_err(|source| SearchBenchError::Search {
                index,
                stage: position.stage,
                deal: position.deal,
                source,
            })?;
            self.groups[group].push(Active {
                index,
                search,
                cache: EvalCache::for_search(&shared.search, position.round.players()),
                rows: None,
            });
        }
        Ok(())
    }

    fn finish(&self, done: Active) {
        let shared = self.shared;
        shared.results.lock().unwrap_or_else(|e| e.into_inner())[done.index] =
            Some(done.search.result());
        let finished = shared.done.fetch_add(1, Ordering::Relaxed) + 1;
        (shared.progress)(finished, shared.positions.len());
    }
}

impl Client for Worker<'_> {
    type Error = SearchBenchError;

    /// Admits positions into the group and gathers every search's next rows, recording the
    /// searches that are done; an empty batch once the group has nothing left to search.
    fn fill(&mut self, group: usize, batches: &mut [Batch], _: usize) -> Result<(), Self::Error> {
        let batch = &mut batches[0];
        batch.clear();
        loop {
            self.admit(group)?;
            if self.groups[group].is_empty() {
                return Ok(());
            }
            self.requests.clear();
            let mut i = 0;
            while i < self.groups[group].len() {
                let active = &mut self.groups[group][i];
                let start = self.requests.len();
                match active.search.gather(&mut active.cache, &mut self.requests) {
                    Gathered::NeedEval(_) => {
                        active.rows = Some(start..self.requests.len());
                        i += 1;
                    }
                    Gathered::Done => {
                        let done = self.groups[group].swap_remove(i);
                        self.finish(done);
                    }
                }
            }
            if !self.requests.is_empty() {
                batch.push_rows(&self.requests.inputs, &self.requests.masks);
                return Ok(());
            }
        }
    }

    fn take(&mut self, group: usize, batches: &[Batch]) -> Result<(), Self::Error> {
        let batch = &batches[0];
        for active in &mut self.groups[group] {
            if let Some(rows) = active.rows.take() {
                let (policy, value) = batch.outputs(rows);
                active.search.apply(&mut active.cache, policy, value);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::UniformBackend;

    #[test]
    fn the_position_set_is_seeded_and_takes_each_stage_once_per_deal() {
        let set = positions(4, 5, 6, 7).unwrap();
        assert_eq!(set, positions(4, 5, 6, 7).unwrap());
        assert_ne!(set, positions(4, 5, 6, 8).unwrap());
        assert_eq!(set.len(), 24);
        for (deal, four) in set.chunks(4).enumerate() {
            let stages: Vec<Stage> = four.iter().map(|p| p.stage).collect();
            assert_eq!(stages, [Stage::Bid, Stage::Lead, Stage::Mid, Stage::Late]);
            assert!(four.iter().all(|p| p.deal == deal as u64));
        }
        for p in &set {
            assert!(!p.round.is_over());
            if p.stage != Stage::Bid {
                let hand = p.round.hand(p.round.to_act()).len();
                assert!(hand >= 2, "{:?} with {hand} cards", p.stage);
            }
        }
        // One-card rounds give their bid only; every stage exists from two cards on.
        assert!(positions(5, 1, 3, 0)
            .unwrap()
            .iter()
            .all(|p| p.stage == Stage::Bid));
        assert_eq!(positions(3, 2, 3, 0).unwrap().len(), 12);
        assert!(positions(9, 5, 1, 0).is_err());
    }

    #[test]
    fn counts_do_not_depend_on_threads_or_batch_size() {
        let config = SearchBenchConfig {
            players: 4,
            cards: 4,
            deals: 3,
            seed: 11,
            search: SearchConfig::light(),
            threads: 1,
            rows_per_batch: 2048,
        };
        let mut uniform = UniformBackend { max_batch: 2048 };
        let one = run(&mut uniform, &config, &|_, _| {}).unwrap();
        assert_eq!(one.counts.positions, 12);
        // Light: 2 worlds × 20 simulations per position.
        assert_eq!(one.counts.simulations, 12 * 40);
        assert!(one.counts.nn_rows > 0);
        let other = SearchBenchConfig {
            threads: 3,
            rows_per_batch: 32,
            ..config
        };
        let three = run(&mut uniform, &other, &|_, _| {}).unwrap();
        assert_eq!(one.counts, three.counts);
        let reseeded = run(
            &mut uniform,
            &SearchBenchConfig { seed: 12, ..config },
            &|_, _| {},
        )
        .unwrap();
        assert_ne!(one.counts.fingerprint, reseeded.counts.fingerprint);
        let small = SearchBenchConfig {
            rows_per_batch: 31,
            ..config
        };
        let err = run(&mut uniform, &small, &|_, _| {}).unwrap_err();
        assert!(err.to_string().contains("32 rows"), "{err}");
    }
}
