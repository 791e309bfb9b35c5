//! One arena worker thread: many deals at once, each a resumable state machine, their searches
//! batched per side.
//!
//! The worker splits its deals into two groups. A group's searches need rows of both sides at
//! once (each search those of the side whose seat is to act), so a group sends up to two
//! batches, one to each searching side's ring; while they run, the other group's deals are
//! searched ([`crate::ring::drive`] with a ring per searching side). A random side's moves
//! need no rows: they are played as the deal reaches them.

use super::side::random_action;
use super::{seats_of_a, DealScore, Finished, Shared, Side};
use crate::game::Round;
use crate::ring::{drive, Batch, Client, Ring};
use crate::search::{choose_action, EvalCache, Gathered, Requests, Search, SearchError};
use anyhow::{Context, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;

/// A deal being played: its rotations in turn, each from the same dealt cards and the same
/// random stream.
struct Deal {
    index: u64,
    rng: ChaCha8Rng,
    /// The stream as it was after dealing: each rotation starts from it.
    dealt_rng: ChaCha8Rng,
    dealt: Round,
    rotation: u8,
    round: Round,
    score: DealScore,
}

impl Deal {
    /// Deals deal `index` from its own random stream (run seed, deal index).
    fn start(shared: &Shared, index: u64) -> Result<Deal> {
        let config = &shared.config;
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        rng.set_stream(index);
        let dealt = Round::deal_random(config.players, config.cards, &mut rng)?;
        Ok(Deal {
            index,
            dealt_rng: rng.clone(),
            rng,
            dealt,
            rotation: 0,
            round: dealt,
            score: DealScore::default(),
        })
    }
}

/// One place at the worker's tables: a deal (or none) and the searches deciding its moves.
#[derive(Default)]
struct Table {
    deal: Option<Box<Deal>>,
    /// Per side, its search (kept to reuse its memory: the sides' settings may differ).
    searches: [Option<Search>; 2],
    /// The side (0 = A, 1 = B) whose search decides the current move, while one runs.
    searching: Option<usize>,
    /// Rows of that side's batch in flight that belong to this table's search.
    rows: Option<Range<usize>>,
}

/// Per side: the evaluation cache (one side's outputs must never answer the other's rows:
/// their nets or encoders may differ) and the rows gathered for the next batch.
struct Worker<'a> {
    shared: &'a Shared,
    tx: Sender<Finished>,
    caches: [EvalCache; 2],
    requests: [Requests; 2],
    groups: [Vec<Table>; 2],
}

/// Plays deals until none is left; `rings` are the searching sides' (see
/// `Shared::ring_of_side`).
pub(super) fn run(shared: &Shared, rings: &[&Ring], tx: Sender<Finished>) -> Result<()> {
    let deals = shared.config.deals_per_thread();
    let group = |n: usize| (0..n).map(|_| Table::default()).collect();
    let mut worker = Worker {
        shared,
        tx,
        caches: shared
            .config
            .sides
            .map(|s| EvalCache::new(s.cache_entries())),
        requests: [Requests::default(), Requests::default()],
        groups: [group(deals.div_ceil(2)), group(deals / 2)],
    };
    drive(rings, worker.groups.len(), &mut worker)
}

impl Client for Worker<'_> {
    type Error = anyhow::Error;

    /// Plays the group's deals on until each needs rows (or none is left, or the run is
    /// stopped: then the deals in play are dropped); each side's rows go to its ring's batch.
    fn fill(&mut self, group: usize, batches: &mut [Batch], _in_flight: usize) -> Result<()> {
        for batch in batches.iter_mut() {
            batch.clear();
        }
        if self.shared.stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        for requests in &mut self.requests {
            requests.clear();
        }
        let mut tables = std::mem::take(&mut self.groups[group]);
        let advanced = tables.iter_mut().try_for_each(|table| self.advance(table));
        self.groups[group] = tables;
        advanced?;
        for (ring, requests) in self.shared.ring_of_side.iter().zip(&self.requests) {
            if let (Some(ring), false) = (ring, requests.is_empty()) {
                batches[*ring].push_rows(&requests.inputs, &requests.masks);
            }
        }
        Ok(())
    }

    /// Hands each side's outputs to the searches that asked that side.
    fn take(&mut self, group: usize, batches: &[Batch]) -> Result<()> {
        for (side, ring) in self.shared.ring_of_side.iter().enumerate() {
            let Some(batch) = ring.map(|r| &batches[r]) else {
                continue;
            };
            for table in &mut self.groups[group] {
                if table.searching != Some(side) {
                    continue;
                }
                if let Some(rows) = table.rows.take() {
                    let (policy, value) = batch.outputs(rows);
                    let search = table.searches[side]
                        .as_mut()
                        .expect("rows belong to a search");
                    search.apply(&mut self.caches[side], policy, value);
                }
            }
        }
        Ok(())
    }
}

impl Worker<'_> {
    /// Plays `table` forward until its search needs rows (appended to its side's requests) or
    /// no deal is left.
    fn advance(&mut self, table: &mut Table) -> Result<()> {
        let players = self.shared.config.players;
        loop {
            let deal = match &mut table.deal {
                Some(deal) => deal,
                None => match self.shared.claim_deal() {
                    Some(index) => {
                        table.deal = Some(Box::new(Deal::start(self.shared, index)?));
                        continue;
                    }
                    None => return Ok(()),
                },
            };
            if let Some(side) = table.searching {
                let search = table.searches[side]
                    .as_mut()
                    .expect("searching without a search");
                let requests = &mut self.requests[side];
                let start = requests.len();
                if let Gathered::NeedEval(_) = search.gather(&mut self.caches[side], requests) {
                    table.rows = Some(start..requests.len());
                    return Ok(());
                }
                table.searching = None;
                deal.score.beliefs[side].add_search(
                    search.worlds(),
                    &deal.round,
                    deal.round.to_act(),
                );
                let action = choose_action(&search.result().visits, 0.0, &mut deal.rng);
                deal.round.apply(action);
                continue;
            }
            if deal.round.is_over() {
                let is_a = seats_of_a(players, deal.rotation);
                for s in deal.round.seats() {
                    let points = u64::from(deal.round.score(s));
                    if is_a(s) {
                        deal.score.a_points += points;
                        deal.score.a_rounds += 1;
                    } else {
                        deal.score.b_points += points;
                        deal.score.b_rounds += 1;
                    }
                }
                deal.rotation += 1;
                if deal.rotation < players {
                    deal.round = deal.dealt;
                    deal.rng = deal.dealt_rng.clone();
                    continue;
                }
                let done = Finished {
                    index: deal.index,
                    score: deal.score,
                };
                table.deal = None;
                // The receiver only hangs up after the workers have stopped.
                let _ = self.tx.send(done);
                continue;
            }
            let legal = deal.round.legal_mask();
            // One legal action (a last card included): nothing to search.
            if legal.count_ones() == 1 {
                deal.round.apply(legal.trailing_zeros() as u8);
                continue;
            }
            let side = usize::from(!seats_of_a(players, deal.rotation)(deal.round.to_act()));
            let (index, rotation) = (deal.index, deal.rotation);
            let context = || format!("deal {index}, rotation {rotation}");
            match &self.shared.config.sides[side] {
                Side::Random => deal.round.apply(random_action(legal, &mut deal.rng)),
                searching => {
                    let seed: u64 = deal.rng.random();
                    start_search(&mut table.searches[side], searching, &deal.round, seed)
                        .with_context(context)?;
                    table.searching = Some(side);
                }
            }
        }
    }
}

/// Starts `side`'s search of the move to play in `round`, in `search` (made on first use,
/// then reused): the `search` kind from what the seat to act knows, the oracle on the true
/// deal.
fn start_search(
    search: &mut Option<Search>,
    side: &Side,
    round: &Round,
    seed: u64,
) -> Result<(), SearchError> {
    let config = side
        .search_config()
        .expect("only a searching side starts a search");
    let oracle = matches!(side, Side::Oracle(_));
    match (search, oracle) {
        (Some(search), false) => search.restart(round, seed),
        (Some(search), true) => search.restart_with_worlds(&[*round], seed),
        (slot @ None, false) => Search::new(round, config, seed).map(|s| *slot = Some(s)),
        (slot @ None, true) => {
            Search::with_worlds(&[*round], config, seed).map(|s| *slot = Some(s))
        }
    }
}
