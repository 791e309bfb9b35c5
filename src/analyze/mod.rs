//! `engine analyze`: a JSON-lines analysis server, like KataGo's analysis engine. The protocol
//! — every field, action, answer and error, with examples — is documented in
//! `docs/analysis.md`; this is how the server is built.
//!
//! [`serve`] reads one JSON line at a time and writes one JSON answer per line (flushed each
//! time). A line is a query (a position to search, parsed in `query.rs` and rebuilt by
//! replaying its history in `position.rs`) or an action (`terminate`, `clear_cache`,
//! `query_version`). The reader thread answers actions and bad lines at once and hands the
//! accepted queries to worker threads, which search several at once (as [`Client`]s of a
//! [`Ring`]: one per device, worker `t` on device `t % devices` ([`serve_on`]); two groups each, one group's batch on the backend while the other's searches
//! advance) and answer each as it finishes, with partial answers on the way when asked
//! (`report_every`). Queries read and not yet answered are registered by id (`in_flight.rs`), so
//! that `terminate` can stop them. EOF drains the queries in flight and returns.
//!
//! # Determinism
//! Each query gets a fresh evaluation cache and its own random stream (`seed`), so the same
//! query gives the same answer (except `stats.time_ms`) whatever else is in flight, as long as
//! the backend's output for a row does not depend on the other rows of its batch. Partial
//! answers only read the search. `max_time_ms` and `terminate` stop a search at a point that
//! depends on timing, so their answers are not reproducible.

mod analysis;
mod fields;
mod in_flight;
mod position;
mod query;

pub use query::{
    parse_line, Action, ActionSpec, ErrorCode, Line, QueryError, QuerySpec, ACTIONS, C_PUCT_RANGE,
    FPU_REDUCTION_RANGE, MAX_DETS, MAX_SIMS, MAX_TIME_MS,
};

use crate::device::Opened;
use crate::error_text::error_chain;
use crate::net::Backend;
use crate::ring::{drive, Batch, Client, Ring, RingError, Servers};
use crate::search::{Gathered, LeafValues, Requests, SearchConfig};
use analysis::{Analysis, Job};
use anyhow::{bail, Context, Result};
use in_flight::InFlight;
use serde::Serialize;
use serde_json::Value;
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::Instant;

/// Rows of one batch with the server's `settings`: the largest gather of one query (64 worlds
/// × the leaves per gather × 8 seats; 2,048 with the defaults).
pub fn rows_per_batch(settings: &SearchConfig) -> usize {
    let largest = SearchConfig {
        worlds: MAX_DETS,
        leaf_values: LeafValues::All,
        ..*settings
    };
    largest.max_rows_per_gather(8)
}
/// Longest query line read; a longer one is skipped and answered with an error.
pub const MAX_LINE_BYTES: usize = 1 << 20;
/// Most queries one worker group searches at once (a worker has two groups).
const QUERIES_PER_GROUP: usize = 32;
/// Version of the protocol in `docs/analysis.md`, answered by `query_version`. Version 1 had
/// no actions, partial answers, principal variations, time limits or search settings.
pub const PROTOCOL_VERSION: u32 = 2;

/// Settings of an analysis server.
#[derive(Clone, Copy, Debug)]
pub struct AnalyzeConfig {
    /// Worker threads running searches.
    pub threads: usize,
    /// The searches' settings (root noise aside), which a query's options override.
    pub search: SearchConfig,
}

/// Counts of a finished [`serve`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServeSummary {
    /// Lines answered (one answer per line read: queries' final answers, actions, errors).
    pub answers: u64,
    /// Of which errors.
    pub errors: u64,
    /// Partial answers written besides (`report_every`).
    pub partial: u64,
}

/// What a line of output is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReplyKind {
    /// The one answer to a line read.
    Answer,
    /// The one answer to a line read, an error.
    Error,
    /// A partial answer to a query still searching.
    Partial,
}

/// One line of output.
struct Reply {
    line: String,
    kind: ReplyKind,
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
            kind: ReplyKind::Error,
        }
    }

    fn answer(answer: &impl Serialize, kind: ReplyKind) -> Reply {
        Reply {
            line: serde_json::to_string(answer).expect("answers serialize"),
            kind,
        }
    }
}

/// Serves queries from `input` until EOF, writing answers to `output`, with the network on
/// `backend` (which must take [`ROWS_PER_BATCH`] rows). Returns once every query read has
/// been answered; fails on an I/O error or a backend failure (after answering the queries in
/// flight with a `backend` error).
pub fn serve<R: BufRead, W: Write + Send>(
    input: R,
    output: W,
    backend: Box<dyn Backend>,
    config: &AnalyzeConfig,
) -> Result<ServeSummary> {
    serve_on(input, output, vec![Opened::of(backend)], config)
}

/// [`serve`] over several devices: one batch ring and one backend thread per device, worker
/// `t` searching through device `t % devices.len()` (so `config.threads` must be at least the
/// number of devices). An answer does not depend on the device its query ran on, as long as
/// the devices compute the same bits for a row.
pub fn serve_on<R: BufRead, W: Write + Send>(
    mut input: R,
    mut output: W,
    devices: Vec<Opened>,
    config: &AnalyzeConfig,
) -> Result<ServeSummary> {
    let rows = rows_per_batch(&config.search);
    let threads = config.threads.max(1);
    if devices.is_empty() {
        bail!("analysis needs a device to run the network on");
    }
    if devices.len() > threads {
        bail!(
            "{} devices need at least as many threads (--threads), each searching on one device: \
             there are \
             {threads}",
            devices.len()
        );
    }
    let (names, mut backends): (Vec<String>, Vec<Box<dyn Backend>>) = devices
        .into_iter()
        .map(|opened| (opened.device(), opened.backend))
        .unzip();
    for (name, backend) in names.iter().zip(&backends) {
        if backend.max_batch() < rows {
            bail!(
                "the {} backend on {name} takes {} rows per batch; analysis needs {rows}",
                backend.name(),
                backend.max_batch()
            );
        }
    }
    let settings = config.search;
    let n = backends.len();
    // One slot per group of each worker (filling, or in flight) of the device's ring.
    let rings = backends
        .iter_mut()
        .zip(&names)
        .enumerate()
        .map(|(d, (backend, name))| {
            let feeding = (d..threads).step_by(n).count();
            Ring::new(backend.as_mut(), 2 * feeding, rows)
                .with_context(|| format!("allocating the batch ring's slots on {name}"))
        })
        .collect::<Result<Vec<_>>>()?;
    let (job_tx, job_rx) = mpsc::channel::<Job>();
    let jobs = Mutex::new(job_rx);
    let (reply_tx, reply_rx) = mpsc::channel::<Reply>();
    let failed = AtomicBool::new(false);
    let in_flight = Arc::new(InFlight::default());

    std::thread::scope(|scope| -> Result<ServeSummary> {
        let rings = &rings;
        let (jobs, failed) = (&jobs, &failed);
        let servers = Servers::spawn(scope, rings, &mut backends);
        let writer = scope.spawn(move || -> std::io::Result<ServeSummary> {
            let mut summary = ServeSummary::default();
            for reply in reply_rx {
                let written = writeln!(output, "{}", reply.line).and_then(|()| output.flush());
                if let Err(e) = written {
                    failed.store(true, Ordering::Relaxed);
                    return Err(e);
                }
                match reply.kind {
                    ReplyKind::Answer => summary.answers += 1,
                    ReplyKind::Error => {
                        summary.answers += 1;
                        summary.errors += 1;
                    }
                    ReplyKind::Partial => summary.partial += 1,
                }
            }
            Ok(summary)
        });
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (replies, ring) = (reply_tx.clone(), &rings[t % n]);
                scope.spawn(move || {
                    let r = run_worker(jobs, ring, &replies, &settings, rows);
                    if r.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    r
                })
            })
            .collect();

        let read = read_lines(&mut input, &job_tx, &reply_tx, &in_flight, failed);
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
        let served = servers.join().map_err(|(d, e)| {
            anyhow::Error::new(e).context(format!("network backend on {}", names[d]))
        });
        drop(reply_tx);
        let summary = writer
            .join()
            .expect("writer thread panicked")
            .context("writing answers")?;
        read.context("reading queries")?;
        served?;
        if let Some(e) = worker_failure {
            return Err(e).context("analysis worker");
        }
        Ok(summary)
    })
}

/// Reads lines until EOF (or a failure elsewhere): parses each, registers the searchable
/// queries and sends them to the workers, and answers the others (actions, errors) at once.
fn read_lines<R: BufRead>(
    input: &mut R,
    jobs: &Sender<Job>,
    replies: &Sender<Reply>,
    in_flight: &Arc<InFlight>,
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
        let query = match parsed {
            Ok(Line::Query(q)) => q,
            Ok(Line::Action(a)) => {
                let _ = replies.send(act(&a, in_flight));
                continue;
            }
            Err((id, error)) => {
                let _ = replies.send(Reply::error(&id, &error));
                continue;
            }
        };
        let job = position::build_round(&query.position, query.options.perfect_information)
            .map(|round| Job {
                registration: in_flight.register(&query.id),
                id: query.id.clone(),
                round,
                options: query.options,
                received,
            })
            .map_err(|e| (query.id, e));
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

/// Carries out an action line; returns its answer.
fn act(spec: &ActionSpec, in_flight: &InFlight) -> Reply {
    #[derive(Serialize)]
    struct ActionAnswer<'a> {
        id: &'a Value,
        action: &'static str,
        #[serde(flatten)]
        result: ActionResult<'a>,
    }
    #[derive(Serialize)]
    #[serde(untagged)]
    enum ActionResult<'a> {
        Terminate {
            ok: bool,
            terminate_id: &'a Value,
            /// Queries in flight with that id, asked to stop.
            queries: usize,
        },
        Ok {
            ok: bool,
        },
        Version {
            engine_version: &'static str,
            protocol_version: u32,
        },
    }
    let result = match &spec.action {
        Action::Terminate { terminate_id } => match in_flight.terminate(terminate_id) {
            0 => {
                let error = QueryError::new(
                    ErrorCode::UnknownId,
                    "terminate_id",
                    format!("no query in flight has the id {terminate_id}"),
                );
                return Reply::error(&spec.id, &error);
            }
            queries => ActionResult::Terminate {
                ok: true,
                terminate_id,
                queries,
            },
        },
        // Each query has its own cache, dropped with it: the server shares none to clear.
        Action::ClearCache => ActionResult::Ok { ok: true },
        Action::QueryVersion => ActionResult::Version {
            engine_version: env!("CARGO_PKG_VERSION"),
            protocol_version: PROTOCOL_VERSION,
        },
    };
    let answer = ActionAnswer {
        id: &spec.id,
        action: spec.action.name(),
        result,
    };
    Reply::answer(&answer, ReplyKind::Answer)
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
    settings: &'a SearchConfig,
    /// Rows of one batch.
    rows: usize,
    requests: Requests,
    groups: [Vec<Analysis>; 2],
}

fn run_worker(
    jobs: &Mutex<Receiver<Job>>,
    ring: &Ring,
    replies: &Sender<Reply>,
    settings: &SearchConfig,
    rows: usize,
) -> Result<(), RingError> {
    let mut worker = Worker {
        jobs,
        replies,
        settings,
        rows,
        requests: Requests::default(),
        groups: [Vec::new(), Vec::new()],
    };
    let driven = drive(&[ring], worker.groups.len(), &mut worker);
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
            if requests.len() + query.max_rows() > self.rows {
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
                    let answer = Reply::answer(&done.answer(false), ReplyKind::Answer);
                    let _ = self.replies.send(answer);
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
        match Analysis::start(job, self.settings) {
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
    fn fill(
        &mut self,
        group: usize,
        batches: &mut [Batch],
        in_flight: usize,
    ) -> Result<(), RingError> {
        let batch = &mut batches[0];
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

    fn take(&mut self, group: usize, batches: &[Batch]) -> Result<(), RingError> {
        let batch = &batches[0];
        for query in &mut self.groups[group] {
            if let Some(rows) = query.rows.take() {
                let (policy, value) = batch.outputs(rows);
                query.apply(policy, value);
                if let Some(partial) = query.report_due() {
                    let _ = self
                        .replies
                        .send(Reply::answer(&partial, ReplyKind::Partial));
                }
            }
        }
        Ok(())
    }
}
