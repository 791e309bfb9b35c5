//! The engine's searches for the web server: an `engine analyze` server ([`analyze::serve`]) run
//! in-process on its own thread, fed query lines through a channel and answering through
//! another. The server's moves and hints are analysis queries, so they are searched, batched
//! and checked exactly as `engine analyze` does it, and a finished game's record replays
//! through `engine analyze` to the same answers.

use super::error::{ApiError, ErrorCode};
use crate::analyze::{self, AnalyzeConfig};
use crate::error_text::error_chain;
use crate::net::Backend;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::io::{BufRead, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard};

/// Who waits for the answer to each query id.
type Waiting = Arc<Mutex<HashMap<u64, Sender<Value>>>>;

/// A running analysis server.
pub struct Analyst {
    lines: Sender<Vec<u8>>,
    waiting: Waiting,
    next_id: AtomicU64,
}

impl Analyst {
    /// Starts the analysis server on `backend` (which must take
    /// [`analyze::rows_per_batch`] rows per batch). It runs until the analyst is dropped.
    pub fn start(backend: Box<dyn Backend>, config: AnalyzeConfig) -> Analyst {
        let (line_tx, line_rx) = mpsc::channel();
        let waiting = Waiting::default();
        let answers = AnswerWriter {
            pending: Vec::new(),
            waiting: waiting.clone(),
        };
        let on_exit = waiting.clone();
        std::thread::spawn(move || {
            let input = LineReader {
                lines: line_rx,
                buffer: Vec::new(),
                read: 0,
            };
            if let Err(e) = analyze::serve(input, answers, backend, &config) {
                eprintln!(
                    "engine serve: the analysis server stopped: {}",
                    error_chain(e.as_ref())
                );
            }
            // Nobody will answer now: whoever waits gets an error instead of waiting forever.
            lock(&on_exit).clear();
        });
        Analyst {
            lines: line_tx,
            waiting,
            next_id: AtomicU64::new(0),
        }
    }

    /// Searches one query (a position and search options; its `id` is set here) and returns
    /// the analysis server's answer.
    pub fn analyse(&self, mut query: Map<String, Value>) -> Result<Value, ApiError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        query.insert("id".into(), id.into());
        let (tx, rx) = mpsc::channel();
        lock(&self.waiting).insert(id, tx);
        let line = Value::Object(query).to_string().into_bytes();
        let stopped = || {
            ApiError::new(
                ErrorCode::Internal,
                "the engine's search server has stopped",
            )
        };
        if self.lines.send(line).is_err() {
            lock(&self.waiting).remove(&id);
            return Err(stopped());
        }
        let mut answer = rx.recv().map_err(|_| stopped())?;
        match answer.get_mut("error") {
            // The server builds its queries from positions the rules accepted: a refusal is a bug.
            Some(error) => Err(ApiError::new(
                ErrorCode::Internal,
                format!("the search refused the position: {}", error.take()),
            )),
            None => Ok(answer),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The analysis server's input: one query per line, from the channel; EOF once the
/// [`Analyst`] (the sender) is gone.
struct LineReader {
    lines: Receiver<Vec<u8>>,
    buffer: Vec<u8>,
    read: usize,
}

impl Read for LineReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for LineReader {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.read == self.buffer.len() {
            if let Ok(mut line) = self.lines.recv() {
                line.push(b'\n');
                self.buffer = line;
                self.read = 0;
            }
        }
        Ok(&self.buffer[self.read..])
    }

    fn consume(&mut self, n: usize) {
        self.read += n;
    }
}

/// The analysis server's output: each complete line is an answer, handed to whoever waits
/// for its id.
struct AnswerWriter {
    pending: Vec<u8>,
    waiting: Waiting,
}

impl Write for AnswerWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(bytes);
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            let answer: Value = serde_json::from_slice(&line).map_err(std::io::Error::other)?;
            let waiter = answer
                .get("id")
                .and_then(Value::as_u64)
                .and_then(|id| lock(&self.waiting).remove(&id));
            if let Some(waiter) = waiter {
                let _ = waiter.send(answer); // a waiter that gave up is no error
            }
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
