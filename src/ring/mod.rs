//! The batch ring between search threads and one network backend.
//!
//! A fixed set of batch slots, allocated once: input rows, legal masks, output rows, a fill
//! count. A slot cycles free → filling (owned by one worker) → queued → running (owned by the
//! backend thread) → done → back to its worker → free. Slots move between threads by value (the
//! buffers are never copied), and results go back to the worker holding the slot's [`Ticket`].
//! Workers keep at least two slots in flight (one group of games fills a batch while the other's
//! batch runs), so search and the network overlap.
//!
//! With a backend that runs batches asynchronously ([`AsyncBackend`], the GPU), the slots'
//! memory comes from the backend (page-locked, copied to the device in place) and "running"
//! splits in two: the backend thread only launches a batch (copies, kernel, copies back, then
//! an event, all enqueued) and moves on to the next, and the worker that owns the batch waits
//! for its event in [`Ring::wait`]. Many batches are then on the device at once.
//!
//! The ring knows nothing of games or search: rows in, rows out. Backend errors reach every
//! waiting worker as [`RingError::Backend`], never as a hang.

use crate::net::{
    AsyncBackend, Backend, HeapSlot, NetError, Pending, SlotMemory, INPUT_DIM, POLICY_DIM,
};
use crate::telemetry;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::ops::Range;
use thiserror::Error;

// Under `--cfg loom` the ring's locks and counters are loom's, so the model tests below can
// explore the protocol's interleavings (scripts/loom.sh).
#[cfg(loom)]
use loom::sync::{
    atomic::{AtomicU64, Ordering},
    Condvar, Mutex, MutexGuard,
};
#[cfg(not(loom))]
use std::sync::{
    atomic::{AtomicU64, Ordering},
    Condvar, Mutex, MutexGuard,
};

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
pub struct Batch {
    memory: Box<dyn SlotMemory>,
    rows: usize,
    /// Rows the batch takes: the ring's rows per batch (a backend may allocate more memory,
    /// rounded up to its own sizes; the limit is the same on every backend).
    limit: usize,
    /// The slot's index, as the backend that allocated its memory knows it.
    index: usize,
}

impl fmt::Debug for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch")
            .field("index", &self.index)
            .field("rows", &self.rows)
            .field("limit", &self.limit)
            .finish()
    }
}

impl Batch {
    pub fn rows(&self) -> usize {
        self.rows
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
        let (start, end) = (self.rows, self.rows + masks.len());
        assert!(
            end <= self.limit,
            "{end} rows overflow a batch of {}",
            self.limit
        );
        let parts = self.memory.parts();
        parts.inputs[start * INPUT_DIM..end * INPUT_DIM].copy_from_slice(inputs);
        parts.masks[start..end].copy_from_slice(masks);
        self.rows = end;
        start..end
    }

    /// Network outputs of row `row`: policy over 52 actions and value.
    pub fn output(&self, row: usize) -> (&[f32], f32) {
        let (policy, value) = self.outputs(row..row + 1);
        (policy, value[0])
    }

    /// Network outputs of consecutive `rows`: policies `[n, 52]` and values `[n]`.
    pub fn outputs(&self, rows: Range<usize>) -> (&[f32], &[f32]) {
        assert!(
            rows.end <= self.rows,
            "rows {rows:?} of a batch of {}",
            self.rows
        );
        let (policy, value) = self.memory.outputs();
        (
            &policy[rows.start * POLICY_DIM..rows.end * POLICY_DIM],
            &value[rows],
        )
    }

    /// Runs the batch on the calling thread.
    fn run(&mut self, backend: &mut dyn Backend) -> Result<(), String> {
        let (inputs, outputs) = self.memory.parts().batch(self.rows);
        backend.forward(inputs, outputs).map_err(|e| e.to_string())
    }

    /// Enqueues the batch on an asynchronous backend.
    fn launch(&mut self, device: &mut dyn AsyncBackend) -> Result<Box<dyn Pending>, String> {
        // SAFETY: the ring keeps this batch (its memory) untouched in `launched` until its
        // owner has waited on the returned Pending (Ring::wait), and `Launched` drops the
        // Pending before the batch; nothing forgets a Pending.
        unsafe { device.launch(self.index, self.memory.as_mut(), self.rows) }
            .map_err(|e| e.to_string())
    }

    /// A non-finite output (a faulty device, corrupt weights) is an error naming the row, so
    /// it can never reach a search or a shard.
    fn check_finite(&self, backend: &str) -> Result<(), String> {
        let (policy, value) = self.outputs(0..self.rows);
        let bad_policy = policy
            .iter()
            .position(|x| !x.is_finite())
            .map(|i| i / POLICY_DIM);
        let bad_value = value.iter().position(|x| !x.is_finite());
        match bad_policy.into_iter().chain(bad_value).min() {
            Some(row) => Err(format!(
                "{backend} backend gave a non-finite output for row {row} of {}",
                self.rows
            )),
            None => Ok(()),
        }
    }
}

/// A batch on the device. Field order matters: dropping it waits for the device (`pending`)
/// before the slot's memory (`batch`) can be freed.
struct Launched {
    pending: Box<dyn Pending>,
    batch: Batch,
}

#[derive(Default)]
struct State {
    free: Vec<Batch>,
    queued: VecDeque<(Ticket, Batch)>,
    launched: HashMap<Ticket, Launched>,
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
    /// Signalled when a slot becomes free, a batch is queued, launched or done, or the ring
    /// closes or fails.
    changed: Condvar,
    pub stats: RingStats,
    rows_per_batch: usize,
    /// The asynchronous backend (by name) whose memory the slots are; `None`: heap slots,
    /// run synchronously by whatever backend serves the ring.
    device: Option<&'static str>,
}

impl Ring {
    /// A ring of heap slots, served synchronously by any backend.
    pub fn new(slots: usize, rows_per_batch: usize) -> Ring {
        let memory = (0..slots)
            .map(|_| Box::new(HeapSlot::new(rows_per_batch)) as Box<dyn SlotMemory>)
            .collect();
        Ring::with_slots(memory, rows_per_batch, None)
    }

    /// A ring for `backend`: with an asynchronous backend its slots are the backend's memory
    /// (and only that backend may serve the ring); otherwise as [`Ring::new`].
    pub fn for_backend(
        slots: usize,
        rows_per_batch: usize,
        backend: &mut dyn Backend,
    ) -> Result<Ring, NetError> {
        let name = backend.name();
        match backend.as_async() {
            Some(device) => {
                let memory = (0..slots)
                    .map(|i| device.alloc_slot(i, rows_per_batch))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Ring::with_slots(memory, rows_per_batch, Some(name)))
            }
            None => Ok(Ring::new(slots, rows_per_batch)),
        }
    }

    fn with_slots(
        memory: Vec<Box<dyn SlotMemory>>,
        rows_per_batch: usize,
        device: Option<&'static str>,
    ) -> Ring {
        let free = memory
            .into_iter()
            .enumerate()
            .map(|(index, memory)| Batch {
                limit: memory.capacity().min(rows_per_batch),
                memory,
                rows: 0,
                index,
            })
            .collect();
        Ring {
            state: Mutex::new(State {
                free,
                ..State::default()
            }),
            changed: Condvar::new(),
            stats: RingStats::default(),
            rows_per_batch,
            device,
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
        mut guard: MutexGuard<'a, State>,
        mut cond: impl FnMut(&mut State) -> bool,
    ) -> MutexGuard<'a, State> {
        while cond(&mut guard) {
            guard = self.changed.wait(guard).unwrap_or_else(|e| e.into_inner());
        }
        guard
    }

    fn check_open(state: &State) -> Result<(), RingError> {
        match (&state.failure, state.closed) {
            (Some(f), _) => Err(RingError::Backend(f.clone())),
            (None, true) => Err(RingError::Closed),
            (None, false) => Ok(()),
        }
    }

    /// Fails the ring: every waiter and every later call sees `message`. The batch goes back
    /// to the free list (its memory stays owned by the ring).
    fn fail(&self, message: String, batch: Batch) -> RingError {
        let mut st = self.lock();
        st.failure.get_or_insert_with(|| message.clone());
        st.free.push(batch);
        drop(st);
        self.changed.notify_all();
        RingError::Backend(message)
    }

    /// Takes a free slot to fill, waiting for one if all are in flight.
    pub fn acquire(&self) -> Result<Batch, RingError> {
        let mut st = self.wait_while(self.lock(), |s| {
            s.free.is_empty() && !s.closed && s.failure.is_none()
        });
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

    /// Waits for a submitted batch's outputs (for a launched batch: on the device's signal,
    /// outside the ring's lock). Give the slot back with [`Ring::release`].
    pub fn wait(&self, ticket: Ticket) -> Result<Batch, RingError> {
        // Opened before the batch leaves the ring, so nothing between taking the Launched
        // entry apart and waiting on it can unwind (which would free the memory first).
        let _waiting = telemetry::range("wait");
        let mut st = self.wait_while(self.lock(), |s| {
            !s.done.contains_key(&ticket)
                && !s.launched.contains_key(&ticket)
                && s.failure.is_none()
                && !s.closed
        });
        if let Some(batch) = st.done.remove(&ticket) {
            return Ok(batch);
        }
        let Some(Launched { pending, batch }) = st.launched.remove(&ticket) else {
            return Err(Self::check_open(&st).err().unwrap_or(RingError::Closed));
        };
        drop(st);
        let name = self.device.unwrap_or("async");
        let result = pending
            .wait()
            .map_err(|e| e.to_string())
            .and_then(|()| batch.check_finite(name));
        match result {
            Ok(()) => Ok(batch),
            Err(e) => Err(self.fail(format!("batch {}: {e}", ticket.0), batch)),
        }
    }

    /// Returns a slot (emptied) to the free list.
    pub fn release(&self, mut batch: Batch) {
        batch.rows = 0;
        self.lock().free.push(batch);
        self.changed.notify_all();
    }

    /// Stops the ring: the backend loop ends once the queue is drained, and waiting workers
    /// get [`RingError::Closed`] for batches never run.
    pub fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }

    /// The backend loop: runs (or, on an asynchronous backend, launches) queued batches in
    /// order until the ring is closed and drained. A backend error fails the ring (every
    /// waiter sees it) and is returned, as is a failure found at a worker's wait.
    pub fn serve(&self, backend: &mut dyn Backend) -> Result<(), RingError> {
        loop {
            let mut st = self.wait_while(self.lock(), |s| {
                s.queued.is_empty() && !s.closed && s.failure.is_none()
            });
            // A batch that failed at its owner's wait (a device error) fails the ring: stop.
            if let Some(failure) = &st.failure {
                return Err(RingError::Backend(failure.clone()));
            }
            let Some((ticket, mut batch)) = st.queued.pop_front() else {
                return Ok(());
            };
            drop(st);
            let name = backend.name();
            let _range = telemetry::range(if self.device.is_some() {
                "launch"
            } else {
                "forward"
            });
            let result = match self.device {
                Some(owner) => match backend.as_async() {
                    Some(device) if owner == name => batch.launch(device).map(Some),
                    _ => Err(format!(
                        "the ring's slots belong to the {owner} backend, not {name}"
                    )),
                },
                None => batch
                    .run(backend)
                    .and_then(|()| batch.check_finite(name))
                    .map(|()| None),
            };
            let pending = match result {
                Ok(pending) => pending,
                Err(e) => return Err(self.fail(format!("batch {}: {e}", ticket.0), batch)),
            };
            self.stats
                .rows
                .fetch_add(batch.rows() as u64, Ordering::Relaxed);
            self.stats.batches.fetch_add(1, Ordering::Relaxed);
            let mut st = self.lock();
            match pending {
                Some(pending) => {
                    st.launched.insert(ticket, Launched { pending, batch });
                }
                None => {
                    st.done.insert(ticket, batch);
                }
            }
            drop(st);
            self.changed.notify_all();
        }
    }
}

#[cfg(test)]
mod doubles;
#[cfg(all(test, loom))]
mod loom_model;
#[cfg(all(test, not(loom)))]
mod tests;
