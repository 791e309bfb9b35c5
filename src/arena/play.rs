//! One arena worker thread: many deals at once, each a resumable state machine, their searches
//! batched per net.
//!
//! The worker splits its deals into two groups. A group's searches need rows of both nets at
//! once (each search those of the net whose seat is to act), so a group sends up to two
//! batches, one to each net's ring; while they run, the other group's deals are searched
//! ([`crate::ring::drive`] with two rings).

use super::{seats_of_a, DealScore, Finished, Shared};
use crate::game::Round;
use crate::ring::{drive, Batch, Client, Ring};
use crate::search::{choose_action, EvalCache, Gathered, Requests, Search};
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

/// One place at the worker's tables: a deal (or none) and the search deciding its move.
#[derive(Default)]
struct Table {
    deal: Option<Box<Deal>>,
    search: Option<Search>,
    /// The net (0 = A, 1 = B) whose search decides the current move, while one runs.
    searching: Option<usize>,
    /// Rows of that net's batch in flight that belong to this table's search.
    rows: Option<Range<usize>>,
}

/// Per net: the evaluation cache (a net's outputs must never answer the other's rows) and
/// the rows gathered for the next batch.
struct Worker<'a> {
    shared: &'a Shared,
    tx: Sender<Finished>,
    caches: [EvalCache; 2],
    requests: [Requests; 2],
    groups: [Vec<Table>; 2],
}

pub(super) fn run(shared: &Shared, rings: [&Ring; 2], tx: Sender<Finished>) -> Result<()> {
    let deals = shared.config.deals_per_thread();
    let group = |n: usize| (0..n).map(|_| Table::default()).collect();
    let cache = || EvalCache::new(shared.config.cache_entries);
    let mut worker = Worker {
        shared,
        tx,
        caches: [cache(), cache()],
        requests: [Requests::default(), Requests::default()],
        groups: [group(deals.div_ceil(2)), group(deals / 2)],
    };
    drive(&rings, worker.groups.len(), &mut worker)
}

impl Client for Worker<'_> {
    type Error = anyhow::Error;

    /// Plays the group's deals on until each needs rows (or none is left, or the run is
    /// stopped: then the deals in play are dropped); each net's rows go to its batch.
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
        for (batch, requests) in batches.iter_mut().zip(&self.requests) {
            if !requests.is_empty() {
                batch.push_rows(&requests.inputs, &requests.masks);
            }
        }
        Ok(())
    }

    /// Hands each net's outputs to the searches that asked that net.
    fn take(&mut self, group: usize, batches: &[Batch]) -> Result<()> {
        for (net, batch) in batches.iter().enumerate() {
            for table in &mut self.groups[group] {
                if table.searching != Some(net) {
                    continue;
                }
                if let Some(rows) = table.rows.take() {
                    let (policy, value) = batch.outputs(rows);
                    let search = table.search.as_mut().expect("rows belong to a search");
                    search.apply(&mut self.caches[net], policy, value);
                }
            }
        }
        Ok(())
    }
}

impl Worker<'_> {
    /// Plays `table` forward until its search needs rows (appended to its net's requests) or
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
            if let Some(net) = table.searching {
                let search = table.search.as_mut().expect("searching without a search");
                let requests = &mut self.requests[net];
                let start = requests.len();
                if let Gathered::NeedEval(_) = search.gather(&mut self.caches[net], requests) {
                    table.rows = Some(start..requests.len());
                    return Ok(());
                }
                table.searching = None;
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
            let seed: u64 = deal.rng.random();
            let net = usize::from(!seats_of_a(players, deal.rotation)(deal.round.to_act()));
            let (index, rotation) = (deal.index, deal.rotation);
            let context = || format!("deal {index}, rotation {rotation}");
            match &mut table.search {
                Some(search) => search.restart(&deal.round, seed).with_context(context)?,
                None => {
                    let config = self.shared.config.search;
                    let search = Search::new(&deal.round, config, seed).with_context(context)?;
                    table.search = Some(search);
                }
            }
            table.searching = Some(net);
        }
    }
}
