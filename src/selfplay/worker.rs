//! One self-play worker thread: many games at once, each a resumable state machine.
//!
//! The worker splits its games into two groups. While the batch of one group runs on the
//! backend, it advances the other group's games until each needs network outputs, so the
//! network and the search overlap and a worker never waits on a single game.

use super::shard::Example;
use super::{Shared, UnitDone};
use crate::encode::encode;
use crate::game::{FullGame, Phase, Round, Seat};
use crate::ring::{drive, Batch, Client, Ring};
use crate::search::{choose_action, EvalCache, Gathered, Requests, Search};
use crate::telemetry;
use anyhow::Result;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::io::Write;
use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{SyncSender, TrySendError};

/// A searched decision whose value target waits for the end of the round.
struct PendingExample {
    seat: Seat,
    example: Example,
}

/// What a game slot is doing.
enum Play {
    /// Waiting for a unit of work.
    Idle,
    /// Playing unit `index` (one round, or one full game).
    Active(Box<Unit>),
}

struct Unit {
    index: u64,
    rng: ChaCha8Rng,
    /// The schedule in full-game mode.
    game: Option<FullGame>,
    round: Round,
    rounds_done: u32,
    searched_moves: u32,
    /// Is `search` deciding the current move?
    searching: bool,
    pending: Vec<PendingExample>,
    examples: Vec<Example>,
}

struct Slot {
    play: Play,
    search: Option<Search>,
    /// Rows of the in-flight batch that belong to this slot's search.
    rows: Option<Range<usize>>,
}

/// The games of one worker, in two groups: one group's batch runs while the other's games
/// are searched.
struct Worker<'a> {
    shared: &'a Shared<'a>,
    tx: SyncSender<UnitDone>,
    cache: EvalCache,
    requests: Requests,
    groups: [Vec<Slot>; 2],
}

pub(super) fn run(
    shared: &Shared<'_>,
    ring: &Ring,
    games: usize,
    tx: SyncSender<UnitDone>,
) -> Result<()> {
    let group = |n: usize| {
        (0..n)
            .map(|_| Slot {
                play: Play::Idle,
                search: None,
                rows: None,
            })
            .collect()
    };
    let mut worker = Worker {
        shared,
        tx,
        cache: EvalCache::new(shared.config.cache_entries),
        requests: Requests::default(),
        groups: [group(games.div_ceil(2)), group(games / 2)],
    };
    drive(&[ring], worker.groups.len(), &mut worker)?;
    let cache = &worker.cache;
    shared.cache_hits.fetch_add(cache.hits(), Ordering::Relaxed);
    shared
        .cache_lookups
        .fetch_add(cache.hits() + cache.misses(), Ordering::Relaxed);
    Ok(())
}

impl Client for Worker<'_> {
    type Error = anyhow::Error;

    /// Advances the group's games until each needs network rows (or, once the run is
    /// stopped, nothing).
    fn fill(&mut self, group: usize, batches: &mut [Batch], _in_flight: usize) -> Result<()> {
        let batch = &mut batches[0];
        batch.clear();
        if self.shared.stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let _searching = telemetry::range("search");
        let requests = &mut self.requests;
        requests.clear();
        for slot in &mut self.groups[group] {
            let start = requests.len();
            advance(slot, self.shared, &mut self.cache, requests, &self.tx)?;
            if requests.len() > start {
                slot.rows = Some(start..requests.len());
            }
        }
        if !requests.is_empty() {
            batch.push_rows(&requests.inputs, &requests.masks);
        }
        Ok(())
    }

    fn take(&mut self, group: usize, batches: &[Batch]) -> Result<()> {
        let batch = &batches[0];
        let _apply = telemetry::range("apply");
        for slot in &mut self.groups[group] {
            if let Some(rows) = slot.rows.take() {
                let (policy, value) = batch.outputs(rows);
                slot.search
                    .as_mut()
                    .expect("rows belong to a search")
                    .apply(&mut self.cache, policy, value);
            }
        }
        Ok(())
    }
}

/// Plays `slot` forward until its search needs network rows (appended to `requests`) or no
/// work is left.
fn advance(
    slot: &mut Slot,
    shared: &Shared<'_>,
    cache: &mut EvalCache,
    requests: &mut Requests,
    tx: &SyncSender<UnitDone>,
) -> Result<()> {
    loop {
        let unit = match &mut slot.play {
            Play::Active(unit) => unit,
            Play::Idle => match shared.claim_unit() {
                Some(index) => {
                    slot.play = Play::Active(Box::new(start_unit(shared, index)));
                    continue;
                }
                None => return Ok(()),
            },
        };
        if unit.searching {
            let search = slot.search.as_mut().expect("searching without a search");
            if let Gathered::NeedEval(_) = search.gather(cache, requests) {
                return Ok(());
            }
            unit.searching = false;
            let result = search.result();
            let belief_rows = u64::from(result.stats.belief_rows);
            shared.belief_rows.fetch_add(belief_rows, Ordering::Relaxed);
            let seat = unit.round.to_act();
            let example = Example {
                state: encode(&unit.round, seat, shared.config.search.encoder),
                policy: result.policy(),
                mask: unit.round.legal_mask(),
                value: 0.0,
                unit: unit.index,
            };
            let t = shared.config.temperature.at(unit.searched_moves);
            let action = choose_action(&result.visits, t, &mut unit.rng);
            unit.pending.push(PendingExample { seat, example });
            unit.searched_moves += 1;
            shared.decisions.fetch_add(1, Ordering::Relaxed);
            unit.round.apply(action);
            continue;
        }
        if unit.round.is_over() {
            for p in unit.pending.drain(..) {
                unit.examples.push(Example {
                    value: unit.round.value_target(p.seat),
                    ..p.example
                });
            }
            unit.rounds_done += 1;
            if let Some(next) = unit.game.as_mut().and_then(|g| {
                g.record(&unit.round);
                g.deal_next(&mut unit.rng)
            }) {
                unit.round = next;
                unit.searched_moves = 0;
                continue;
            }
            let done = UnitDone {
                index: unit.index,
                rounds: unit.rounds_done,
                examples: std::mem::take(&mut unit.examples),
            };
            slot.play = Play::Idle;
            send_done(shared, tx, done);
            continue;
        }
        let seat = unit.round.to_act();
        let hand = unit.round.hand(seat);
        if unit.round.phase() == Phase::Playing && hand.len() == 1 {
            // BlobMaster's zero-choice fast path: the last card is played unsearched, no example.
            unit.round
                .apply(hand.iter().next().expect("one card").index());
            continue;
        }
        let legal = unit.round.legal_mask();
        if legal.count_ones() == 1 {
            // One legal action: the search's answer is known (all visits on it).
            let action = legal.trailing_zeros() as u8;
            let mut policy = [0.0; crate::net::POLICY_DIM];
            policy[usize::from(action)] = 1.0;
            let state = encode(&unit.round, seat, shared.config.search.encoder);
            unit.pending.push(PendingExample {
                seat,
                example: Example {
                    state,
                    policy,
                    mask: legal,
                    value: 0.0,
                    unit: unit.index,
                },
            });
            unit.searched_moves += 1;
            shared.decisions.fetch_add(1, Ordering::Relaxed);
            unit.round.apply(action);
            continue;
        }
        let seed = unit.rng.random();
        match &mut slot.search {
            Some(search) => search.restart(&unit.round, seed)?,
            None => slot.search = Some(Search::new(&unit.round, shared.config.search, seed)?),
        }
        unit.searching = true;
    }
}

/// Deals unit `index` from its own random stream (run seed, unit index): the same unit plays
/// the same way whichever worker takes it.
fn start_unit(shared: &Shared<'_>, index: u64) -> Unit {
    let cfg = &shared.config;
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    rng.set_stream(index);
    let (game, round) = match cfg.start_cards {
        Some(start) => {
            let mut game = FullGame::new(cfg.players, start).expect("validated settings");
            let round = game.deal_next(&mut rng).expect("a game has rounds");
            (Some(game), round)
        }
        None => (
            None,
            Round::deal_random(cfg.players, cfg.cards, &mut rng).expect("validated settings"),
        ),
    };
    Unit {
        index,
        rng,
        game,
        round,
        rounds_done: 0,
        searched_moves: 0,
        searching: false,
        pending: vec![],
        examples: vec![],
    }
}

/// Hands a finished unit to the writer, waiting while its queue is full (a slow disk then
/// throttles self-play, with one warning).
fn send_done(shared: &Shared<'_>, tx: &SyncSender<UnitDone>, done: UnitDone) {
    match tx.try_send(done) {
        Err(TrySendError::Full(done)) => {
            if !shared.writer_behind.swap(true, Ordering::Relaxed) {
                // Not eprintln!: a closed stderr must not stop the run.
                let _ = writeln!(
                    std::io::stderr(),
                    "note: the shard writer is falling behind (slow disk?): self-play waits for it"
                );
            }
            // The receiver only hangs up after the workers have stopped.
            let _ = tx.send(done);
        }
        Ok(()) | Err(TrySendError::Disconnected(_)) => {}
    }
}
