//! `engine analyze`: a JSON-lines analysis server, like KataGo's analysis engine.
//!
//! [`serve`] reads one JSON query per line and writes one JSON answer per line (flushed each
//! time), answering queries as they finish: several are searched at once by worker threads,
//! and their network rows are batched together through one [`Ring`] and one backend thread,
//! as in self-play. EOF drains the queries in flight and returns.
//!
//! # Query
//! A position in the shape of a `state` object of `tests/vectors/games.json`, plus `id` (any
//! JSON value, echoed) and `player` (the seat to act). Cards are indices `suit·13 + rank`
//! (suits ♠ ♥ ♣ ♦, ranks 2..A), seats are `0..players`.
//! - required: `id`, `player`, `dealer`, `trump` (suit 0..=3 or `null` for no trump),
//!   `cards_dealt`, `hands`, `bids` (one per seat, `null` = not yet bid);
//! - optional: `tricks_won` (checked against the history when given), `current_trick` and
//!   `previous_tricks` (`{"leader": seat, "cards": [[seat, card], …], "winner": seat}`,
//!   leader and winner optional and checked when given; default: none played);
//! - `hands`: one entry per seat (their number is the number of players): a list of cards,
//!   or an integer, the hand's size, for a hidden hand. The acting seat's hand must be a list.
//!   Without `perfect_information` only the acting seat's list is read: another seat's list
//!   counts for its length alone, and its cards are neither read nor checked;
//! - options: `dets` (worlds, 1..=64, default 3), `sims` (simulations per world, 1..=65534,
//!   default 30), `seed` (default 0), `leaf_values` (`"all"` default, or `"mover"`),
//!   `include_policy_prior` (default false: add the 52-entry root policy), and
//!   `perfect_information` (default false: search the given hands as known, one world, every
//!   hand a list).
//!
//! Unknown fields are errors (a misspelt option is not silently ignored).
//!
//! # Answer
//! `id`, `player`, `phase` (`"bid"`/`"play"`), `legal_actions`, `best_action` (most visits;
//! ties → higher prior, then lower action), `network_value` (the network's value of the
//! position for the mover), `search_value` (mean over all simulations), `moves` (per legal
//! action: `action`, `card` name when playing, `visits`, `share`, `prior`, `value` = mean value
//! for the mover, `null` if none), `policy_prior` on request, and `stats` (`worlds`,
//! `sims_per_world`, `simulations`, `nn_rows`, `cache_hits`, `time_ms`). Values are on the
//! network's scale `2·score/23 − 1`. No root noise.
//!
//! A bad line gets `{"id": …, "error": {"code", "field", "message"}}` (`id` null when none
//! could be read; codes in [`ErrorCode`]) and the server goes on: every line, empty ones
//! included, gets exactly one answer.
//!
//! # Determinism
//! Each query gets a fresh evaluation cache and its own random stream (`seed`), so the same
//! query gives the same answer (except `stats.time_ms`) whatever else is in flight, as long as
//! the backend's output for a row does not depend on the other rows of its batch.

mod analysis;
mod position;
mod query;

pub use query::{parse_line, ErrorCode, QueryError, QuerySpec, MAX_DETS, MAX_SIMS};

use crate::encode::EncoderVersion;
use crate::error_text::error_chain;
use crate::net::Backend;
use crate::ring::{drive, Batch, Client, Ring, RingError};
use crate::search::{Gathered, Requests};
use analysis::{Analysis, Job};
use anyhow::{bail, Context, Result};
use serde::Serialize;
use serde_json::Value;
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Mutex, MutexGuard, TryLockError};
use std::time::Instant;

/// Rows of one batch: the largest gather of one query (64 worlds × 4 leaves × 8 seats).
pub const ROWS_PER_BATCH: usize = 2048;
/// Longest query line read; a longer one is skipped and answered with an error.
pub const MAX_LINE_BYTES: usize = 1 << 20;
/// Most queries one worker group searches at once (a worker has two groups).
const QUERIES_PER_GROUP: usize = 32;

/// Settings of an analysis server.
#[derive(Clone, Copy, Debug)]
pub struct AnalyzeConfig {
    /// Worker threads running searches.
    pub threads: usize,
    /// Encoder layout the network expects.
    pub encoder: EncoderVersion,
}

/// Counts of a finished [`serve`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServeSummary {
    /// Lines answered.
    pub answers: u64,
    /// Of which errors.
    pub errors: u64,
}

/// One line of output.
struct Reply {
    line: String,
    is_error: bool,
}

impl Reply {
    fn error(id: &Value, error: &QueryError) -> Reply {
        #[derive(Serialize)]
        struct ErrorAnswer<'a> {
            id: &'a Value,
            error: &'a QueryError,
        }
        Reply {
            line: serde_json::to_string(&ErrorAnswer { id, error }).expect("errors serialize"),
            is_error: true,
        }
    }
}

/// Serves queries from `input` until EOF, writing answers to `output`, with the network on
/// `backend` (which must take [`ROWS_PER_BATCH`] rows). Returns once every query read has
/// been answered; fails on an I/O error or a backend failure (after answering the queries in
/// flight with a `backend` error).
pub fn serve<R: BufRead, W: Write + Send>(
    mut input: R,
    mut output: W,
    mut backend: Box<dyn Backend>,
    config: &AnalyzeConfig,
) -> Result<ServeSummary> {
    if backend.max_batch() < ROWS_PER_BATCH {
        bail!(
            "the {} backend takes {} rows per batch; analysis needs {ROWS_PER_BATCH}",
            backend.name(),
            backend.max_batch()
        );
    }
    let threads = config.threads.max(1);
    let encoder = config.encoder;
    // One slot per group of each worker (filling, or in flight).
    let ring = Ring::new(backend.as_mut(), 2 * threads, ROWS_PER_BATCH)
        .context("allocating the batch ring's slots")?;
    let (job_tx, job_rx) = mpsc::channel::<Job>();
    let jobs = Mutex::new(job_rx);
    let (reply_tx, reply_rx) = mpsc::channel::<Reply>();
    let failed = AtomicBool::new(false);

    std::thread::scope(|scope| -> Result<ServeSummary> {
        let ring = &ring;
        let (jobs, failed) = (&jobs, &failed);
        let server = scope.spawn(move || ring.serve(backend.as_mut()));
        let writer = scope.spawn(move || -> std::io::Result<ServeSummary> {
            let mut summary = ServeSummary::default();
            for reply in reply_rx {
                let written = writeln!(output, "{}", reply.line).and_then(|()| output.flush());
                if let Err(e) = written {
                    failed.store(true, Ordering::Relaxed);
                    return Err(e);
                }
                summary.answers += 1;
                summary.errors += u64::from(reply.is_error);
            }
            Ok(summary)
        });
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let replies = reply_tx.clone();
                scope.spawn(move || {
                    let r = run_worker(jobs, ring, &replies, encoder);
                    if r.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    r
                })
            })
            .collect();

        let read = read_queries(&mut input, &job_tx, &reply_tx, failed);
        drop(job_tx);
        let mut worker_failure = None;
        for w in workers {
            if let Err(e) = w.join().expect("analysis worker panicked") {
                worker_failure = Some(e);
            }
        }
        // Jobs no worker took (only after a failure) still get their answer.
        for job in lock(jobs).try_iter() {
            let error = QueryError::line(ErrorCode::Backend, "the network backend failed");
            let _ = reply_tx.send(Reply::error(&job.id, &error));
        }
        ring.close();
        let served = server.join().expect("backend thread panicked");
        drop(reply_tx);
        let summary = writer
            .join()
            .expect("writer thread panicked")
            .context("writing answers")?;
        read.context("reading queries")?;
        served.context("network backend")?;
        if let Some(e) = worker_failure {
            return Err(e).context("analysis worker");
        }
        Ok(summary)
    })
}

/// Reads lines until EOF (or a failure elsewhere): parses each, sends the searchable ones to
/// the workers and answers the others at once.
fn read_queries<R: BufRead>(
    input: &mut R,
    jobs: &Sender<Job>,
    replies: &Sender<Reply>,
    failed: &AtomicBool,
) -> std::io::Result<()> {
    let mut line = Vec::new();
    while !failed.load(Ordering::Relaxed) {
        let fits = match read_line(input, &mut line)? {
            None => return Ok(()),
            Some(fits) => fits,
        };
        let received = Instant::now();
        let parsed = if fits {
            query::parse_line(&line)
        } else {
            Err((
                Value::Null,
                QueryError::line(
                    ErrorCode::MalformedJson,
                    format!("line longer than {MAX_LINE_BYTES} bytes"),
                ),
            ))
        };
        let job = parsed.and_then(|q| {
            position::build_round(&q.position, q.options.perfect_information)
                .map(|round| Job {
                    id: q.id.clone(),
                    round,
                    options: q.options,
                    received,
                })
                .map_err(|e| (q.id, e))
        });
        match job {
            Ok(job) => {
                if let Err(mpsc::SendError(job)) = jobs.send(job) {
                    let error = QueryError::line(ErrorCode::Backend, "no analysis worker is left");
                    let _ = replies.send(Reply::error(&job.id, &error));
                }
            }
            Err((id, error)) => {
                let _ = replies.send(Reply::error(&id, &error));
            }
        }
    }
    Ok(())
}

/// Reads one line into `line` (newline and a trailing `\r` removed). Returns `None` at EOF,
/// else whether the line fitted in [`MAX_LINE_BYTES`] (the rest of a longer one is skipped).
fn read_line<R: BufRead>(input: &mut R, line: &mut Vec<u8>) -> std::io::Result<Option<bool>> {
    line.clear();
    let limit = MAX_LINE_BYTES as u64 + 1;
    if std::io::Read::take(&mut *input, limit).read_until(b'\n', line)? == 0 {
        return Ok(None);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        return Ok(Some(true));
    }
    if line.len() <= MAX_LINE_BYTES {
        return Ok(Some(true)); // the last line, without a newline
    }
    loop {
        let buf = input.fill_buf()?;
        match buf.iter().position(|&b| b == b'\n') {
            Some(i) => {
                input.consume(i + 1);
                return Ok(Some(false));
            }
            None if buf.is_empty() => return Ok(Some(false)),
            None => {
                let n = buf.len();
                input.consume(n);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One worker: takes queries, searches up to [`QUERIES_PER_GROUP`] at once in each of two
/// groups (one group's batch runs while the other's searches advance) and answers each query
/// when its search is done.
struct Worker<'a> {
    jobs: &'a Mutex<Receiver<Job>>,
    replies: &'a Sender<Reply>,
    encoder: EncoderVersion,
    requests: Requests,
    groups: [Vec<Analysis>; 2],
}

fn run_worker(
    jobs: &Mutex<Receiver<Job>>,
    ring: &Ring,
    replies: &Sender<Reply>,
    encoder: EncoderVersion,
) -> Result<(), RingError> {
    let mut worker = Worker {
        jobs,
        replies,
        encoder,
        requests: Requests::default(),
        groups: [Vec::new(), Vec::new()],
    };
    let driven = drive(ring, worker.groups.len(), &mut worker);
    if let Err(e) = &driven {
        let error = QueryError::line(ErrorCode::Backend, error_chain(e));
        for query in worker.groups.iter().flatten() {
            let _ = replies.send(Reply::error(query.id(), &error));
        }
    }
    driven
}

impl Worker<'_> {
    /// Takes the queries waiting, up to the group's room, without waiting for any.
    fn admit_waiting(&mut self, group: usize) {
        while self.groups[group].len() < QUERIES_PER_GROUP {
            // A busy worker never waits on the queue: an idle one may be holding it.
            let next = match self.jobs.try_lock() {
                Ok(rx) => rx.try_recv().ok(),
                Err(TryLockError::Poisoned(e)) => e.into_inner().try_recv().ok(),
                Err(TryLockError::WouldBlock) => None,
            };
            match next {
                Some(job) => self.admit(group, job),
                None => break,
            }
        }
    }

    /// Gathers the group's next rows into `requests`, answering the searches that are done.
    fn gather(&mut self, group: usize) {
        let (active, requests) = (&mut self.groups[group], &mut self.requests);
        requests.clear();
        let mut i = 0;
        while i < active.len() {
            let query = &mut active[i];
            query.rows = None;
            if requests.len() + query.max_rows() > ROWS_PER_BATCH {
                i += 1; // next batch
                continue;
            }
            let start = requests.len();
            match query.gather(requests) {
                Ok(Gathered::NeedEval(_)) => {
                    query.rows = Some(start..requests.len());
                    i += 1;
                }
                Ok(Gathered::Done) => {
                    let done = active.swap_remove(i);
                    let line = serde_json::to_string(&done.answer()).expect("answers serialize");
                    let _ = self.replies.send(Reply {
                        line,
                        is_error: false,
                    });
                }
                Err(e) => {
                    let failed = active.swap_remove(i);
                    let _ = self.replies.send(Reply::error(failed.id(), &e));
                }
            }
        }
    }

    fn admit(&mut self, group: usize, job: Job) {
        let id = job.id.clone();
        match Analysis::start(job, self.encoder) {
            Ok(a) => self.groups[group].push(a),
            Err(e) => {
                let _ = self.replies.send(Reply::error(&id, &e));
            }
        }
    }
}

impl Client for Worker<'_> {
    type Error = RingError;

    /// Admits new queries into the group, then gathers the rows of as many of the group's
    /// searches as fit a batch, answering the queries whose search is done. When this worker
    /// has nothing in flight and nothing to search, waits for a query; the batch stays empty
    /// only then once the reader is done (or while other groups' batches are in flight).
    fn fill(&mut self, group: usize, batch: &mut Batch, in_flight: usize) -> Result<(), RingError> {
        batch.clear();
        loop {
            if in_flight == 0 && self.groups.iter().all(Vec::is_empty) {
                let next = lock(self.jobs).recv();
                match next {
                    Ok(job) => self.admit(group, job),
                    Err(_) => return Ok(()),
                }
            }
            self.admit_waiting(group);
            self.gather(group);
            if !self.requests.is_empty() {
                batch.push_rows(&self.requests.inputs, &self.requests.masks);
                return Ok(());
            }
            if in_flight > 0 {
                return Ok(());
            }
        }
    }

    fn take(&mut self, group: usize, batch: &Batch) -> Result<(), RingError> {
        for query in &mut self.groups[group] {
            if let Some(rows) = query.rows.take() {
                let (policy, value) = batch.outputs(rows);
                query.apply(policy, value);
            }
        }
        Ok(())
    }
}
