//! The batch ring between search threads and one network backend.
//!
//! A fixed set of batch slots, allocated once: input rows, legal masks, output rows, a fill
//! count. A slot cycles free → filling (owned by one worker) → queued → running (owned by the
//! backend thread) → done → back to its worker → free. Slots move between threads by value (the
//! buffers are never copied), and results go back to the worker holding the slot's [`Ticket`].
//! Workers keep at least two slots in flight (one group of games fills a batch while the other's
//! batch runs), so search and the network overlap.
//!
//! The ring knows nothing of games or search: rows in, rows out. Backend errors reach every
//! waiting worker as [`RingError::Backend`], never as a hang.

use crate::net::{Backend, BatchIn, BatchOut, INPUT_DIM, POLICY_DIM};
use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use thiserror::Error;

#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum RingError {
    #[error("network backend failed: {0}")]
    Backend(String),
    #[error("the batch ring was shut down")]
    Closed,
}

/// Names a submitted batch; redeem it with [`Ring::wait`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ticket(u64);

/// One slot: up to `capacity` rows of inputs and, once run, outputs.
#[derive(Debug)]
pub struct Batch {
    inputs: Vec<f32>,
    masks: Vec<u64>,
    policy: Vec<f32>,
    value: Vec<f32>,
    capacity: usize,
}

impl Batch {
    fn new(capacity: usize) -> Batch {
        Batch {
            inputs: Vec::with_capacity(capacity * INPUT_DIM),
            masks: Vec::with_capacity(capacity),
            policy: vec![0.0; capacity * POLICY_DIM],
            value: vec![0.0; capacity],
            capacity,
        }
    }

    pub fn rows(&self) -> usize {
        self.masks.len()
    }

    /// Appends one row and returns its index (the batch must not be full).
    pub fn push(&mut self, input: &[f32; INPUT_DIM], mask: u64) -> usize {
        self.push_rows(input, &[mask]).start
    }

    /// Appends rows (`inputs` row-major `[n, 256]`, one mask each) and returns their indices.
    pub fn push_rows(&mut self, inputs: &[f32], masks: &[u64]) -> Range<usize> {
        assert_eq!(
            inputs.len(),
            masks.len() * INPUT_DIM,
            "one mask per input row"
        );
        let start = self.rows();
        assert!(
            start + masks.len() <= self.capacity,
            "{} rows overflow a batch of {}",
            start + masks.len(),
            self.capacity
        );
        self.inputs.extend_from_slice(inputs);
        self.masks.extend_from_slice(masks);
        start..self.rows()
    }

    /// Network outputs of row `row`: policy over 52 actions and value.
    pub fn output(&self, row: usize) -> (&[f32], f32) {
        (
            &self.policy[row * POLICY_DIM..(row + 1) * POLICY_DIM],
            self.value[row],
        )
    }

    /// Network outputs of consecutive `rows`: policies `[n, 52]` and values `[n]`.
    pub fn outputs(&self, rows: Range<usize>) -> (&[f32], &[f32]) {
        (
            &self.policy[rows.start * POLICY_DIM..rows.end * POLICY_DIM],
            &self.value[rows],
        )
    }

    fn clear(&mut self) {
        self.inputs.clear();
        self.masks.clear();
    }

    /// Runs the batch; a non-finite output (a faulty device, corrupt weights) is an error
    /// naming the row, so it can never reach a search or a shard.
    fn run(&mut self, backend: &mut dyn Backend) -> Result<(), String> {
        let rows = self.rows();
        let (policy, value) = (
            &mut self.policy[..rows * POLICY_DIM],
            &mut self.value[..rows],
        );
        backend
            .forward(
                BatchIn {
                    inputs: &self.inputs,
                    masks: &self.masks,
                },
                BatchOut { policy, value },
            )
            .map_err(|e| e.to_string())?;
        let bad_policy = self.policy[..rows * POLICY_DIM]
            .iter()
            .position(|x| !x.is_finite())
            .map(|i| i / POLICY_DIM);
        let bad_value = self.value[..rows].iter().position(|x| !x.is_finite());
        match bad_policy.into_iter().chain(bad_value).min() {
            Some(row) => Err(format!(
                "{} backend gave a non-finite output for row {row} of {rows}",
                backend.name()
            )),
            None => Ok(()),
        }
    }
}

#[derive(Default)]
struct State {
    free: Vec<Batch>,
    queued: VecDeque<(Ticket, Batch)>,
    done: HashMap<Ticket, Batch>,
    next_ticket: u64,
    closed: bool,
    failure: Option<String>,
}

/// Counters read by progress bars and the run summary.
#[derive(Debug, Default)]
pub struct RingStats {
    pub rows: AtomicU64,
    pub batches: AtomicU64,
}

pub struct Ring {
    state: Mutex<State>,
    /// Signalled when a slot becomes free, a batch is queued or done, or the ring closes.
    changed: Condvar,
    pub stats: RingStats,
    rows_per_batch: usize,
}

impl Ring {
    pub fn new(slots: usize, rows_per_batch: usize) -> Ring {
        let free = (0..slots).map(|_| Batch::new(rows_per_batch)).collect();
        Ring {
            state: Mutex::new(State {
                free,
                ..State::default()
            }),
            changed: Condvar::new(),
            stats: RingStats::default(),
            rows_per_batch,
        }
    }

    pub fn rows_per_batch(&self) -> usize {
        self.rows_per_batch
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind: keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait_while<'a>(
        &self,
        guard: MutexGuard<'a, State>,
        cond: impl FnMut(&mut State) -> bool,
    ) -> MutexGuard<'a, State> {
        self.changed
            .wait_while(guard, cond)
            .unwrap_or_else(|e| e.into_inner())
    }

    fn check_open(state: &State) -> Result<(), RingError> {
        match (&state.failure, state.closed) {
            (Some(f), _) => Err(RingError::Backend(f.clone())),
            (None, true) => Err(RingError::Closed),
            (None, false) => Ok(()),
        }
    }

    /// Takes a free slot to fill, waiting for one if all are in flight.
    pub fn acquire(&self) -> Result<Batch, RingError> {
        let mut st = self.wait_while(self.lock(), |s| s.free.is_empty() && !s.closed);
        Self::check_open(&st)?;
        Ok(st.free.pop().expect("woken with a free slot"))
    }

    /// Queues a filled slot for the backend.
    pub fn submit(&self, batch: Batch) -> Result<Ticket, RingError> {
        let mut st = self.lock();
        if let Err(e) = Self::check_open(&st) {
            st.free.push(batch);
            return Err(e);
        }
        let ticket = Ticket(st.next_ticket);
        st.next_ticket += 1;
        st.queued.push_back((ticket, batch));
        drop(st);
        self.changed.notify_all();
        Ok(ticket)
    }

    /// Waits for a submitted batch's outputs. Give the slot back with [`Ring::release`].
    pub fn wait(&self, ticket: Ticket) -> Result<Batch, RingError> {
        let mut st = self.wait_while(self.lock(), |s| {
            !s.done.contains_key(&ticket) && s.failure.is_none() && !s.closed
        });
        match st.done.remove(&ticket) {
            Some(batch) => Ok(batch),
            None => Err(Self::check_open(&st).err().unwrap_or(RingError::Closed)),
        }
    }

    /// Returns a slot (emptied) to the free list.
    pub fn release(&self, mut batch: Batch) {
        batch.clear();
        self.lock().free.push(batch);
        self.changed.notify_all();
    }

    /// Stops the ring: the backend loop ends once the queue is drained, and waiting workers
    /// get [`RingError::Closed`] for batches never run.
    pub fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }

    /// The backend loop: runs queued batches in order until the ring is closed and drained.
    /// A backend error fails the ring (every waiter sees it) and is returned.
    pub fn serve(&self, backend: &mut dyn Backend) -> Result<(), RingError> {
        loop {
            let mut st = self.wait_while(self.lock(), |s| s.queued.is_empty() && !s.closed);
            let Some((ticket, mut batch)) = st.queued.pop_front() else {
                return Ok(());
            };
            drop(st);
            let result = batch.run(backend);
            let mut st = self.lock();
            if let Err(e) = result {
                let msg = format!("batch {}: {e}", ticket.0);
                st.failure = Some(msg.clone());
                st.free.push(batch);
                drop(st);
                self.changed.notify_all();
                return Err(RingError::Backend(msg));
            }
            self.stats
                .rows
                .fetch_add(batch.rows() as u64, Ordering::Relaxed);
            self.stats.batches.fetch_add(1, Ordering::Relaxed);
            st.done.insert(ticket, batch);
            drop(st);
            self.changed.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::{NetError, UniformBackend};
    use std::sync::Arc;

    #[test]
    fn rows_come_back_to_their_ticket() {
        let ring = Arc::new(Ring::new(4, 8));
        let server = {
            let ring = ring.clone();
            std::thread::spawn(move || ring.serve(&mut UniformBackend { max_batch: 8 }))
        };
        let mut tickets = vec![];
        for legal in 1..=3u32 {
            let mut b = ring.acquire().unwrap();
            for _ in 0..legal {
                b.push(&[0.0; INPUT_DIM], (1u64 << legal) - 1);
            }
            tickets.push((legal, ring.submit(b).unwrap()));
        }
        for (legal, t) in tickets.into_iter().rev() {
            let b = ring.wait(t).unwrap();
            assert_eq!(b.rows(), legal as usize);
            let (p, v) = b.output(0);
            assert_eq!(p[0], 1.0 / legal as f32);
            assert_eq!(v, 0.0);
            ring.release(b);
        }
        ring.close();
        server.join().unwrap().unwrap();
        assert_eq!(ring.stats.rows.load(Ordering::Relaxed), 6);
    }

    struct Failing;
    impl Backend for Failing {
        fn name(&self) -> &'static str {
            "failing"
        }
        fn max_batch(&self) -> usize {
            8
        }
        fn forward(&mut self, _: BatchIn<'_>, _: BatchOut<'_>) -> Result<(), NetError> {
            Err(NetError::Backend {
                backend: "failing",
                stage: "forward",
                message: "device lost".into(),
            })
        }
    }

    /// Returns NaN values: what a faulty device might do.
    struct NanValues;
    impl Backend for NanValues {
        fn name(&self) -> &'static str {
            "nan"
        }
        fn max_batch(&self) -> usize {
            8
        }
        fn forward(&mut self, inp: BatchIn<'_>, out: BatchOut<'_>) -> Result<(), NetError> {
            out.policy.fill(0.5);
            out.value.fill(0.0);
            out.value[inp.rows() - 1] = f32::NAN;
            Ok(())
        }
    }

    #[test]
    fn non_finite_outputs_fail_the_batch() {
        let ring = Arc::new(Ring::new(2, 4));
        let mut b = ring.acquire().unwrap();
        b.push_rows(&[0.0; 2 * INPUT_DIM], &[1, 1]);
        let t = ring.submit(b).unwrap();
        let server = {
            let ring = ring.clone();
            std::thread::spawn(move || ring.serve(&mut NanValues))
        };
        let err = ring.wait(t).unwrap_err();
        assert!(
            matches!(&err, RingError::Backend(m) if m.contains("batch 0") && m.contains("row 1")),
            "{err}"
        );
        assert!(server.join().unwrap().is_err());
    }

    #[test]
    fn backend_failure_reaches_waiters() {
        let ring = Arc::new(Ring::new(2, 4));
        let mut b = ring.acquire().unwrap();
        b.push(&[0.0; INPUT_DIM], 1);
        let t = ring.submit(b).unwrap();
        let server = {
            let ring = ring.clone();
            std::thread::spawn(move || ring.serve(&mut Failing))
        };
        assert!(matches!(ring.wait(t), Err(RingError::Backend(m)) if m.contains("device lost")));
        assert!(server.join().unwrap().is_err());
        assert!(ring.acquire().is_err(), "a failed ring takes no more work");
    }
}
