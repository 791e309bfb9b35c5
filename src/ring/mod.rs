//! The batch ring between search threads and one network backend.
//!
//! A fixed set of batch slots, allocated once by the backend ([`Backend::alloc_slot`]: plain
//! memory for the CPU, page-locked memory with its own stream and graphs for CUDA): input
//! rows, legal masks, output rows, a fill count. A slot cycles free → filling (owned by one
//! worker) → queued → launched (the backend thread started it with [`Backend::launch`]) →
//! back to its worker, who waits on it in [`Ring::wait`] → free. Slots move between threads
//! by value (the buffers are never copied). There is one path for every backend: the CPU
//! computes a batch inside `launch` (so its wait returns at once), the GPU only enqueues it
//! (so many batches are on the device at once and each worker waits for its own).
//!
//! The ring knows nothing of games or search: rows in, rows out. [`drive`] is the loop a
//! client runs over it. Backend errors, and non-finite outputs, reach every waiting worker as
//! [`RingError::Backend`] with the backend's [`NetError`] as its source, never as a hang.

mod drive;

pub use drive::{drive, Client};

use crate::net::{Backend, NetError, Pending, SlotMemory, INPUT_DIM, POLICY_DIM};
use crate::telemetry;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::ops::Range;
use std::sync::Arc;
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

#[derive(Clone, Debug, Error)]
pub enum RingError {
    /// The backend failed on batch `batch` (every later call sees the same error).
    #[error("network backend failed on batch {batch}: {source}")]
    Backend {
        batch: u64,
        #[source]
        source: Arc<NetError>,
    },
    #[error("the batch ring was shut down")]
    Closed,
    /// The backend thread panicked: no batch will run any more.
    #[error("the network backend's thread panicked")]
    BackendPanicked,
}

impl RingError {
    /// The backend's error, if the ring failed (not closed).
    pub fn net_error(&self) -> Option<&NetError> {
        match self {
            RingError::Backend { source, .. } => Some(source),
            RingError::Closed | RingError::BackendPanicked => None,
        }
    }
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
}

impl fmt::Debug for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch")
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
        let view = self.memory.view();
        (
            &view.policy[rows.start * POLICY_DIM..rows.end * POLICY_DIM],
            &view.value[rows],
        )
    }

    /// Empties the batch (its slot is kept) for new rows.
    pub fn clear(&mut self) {
        self.rows = 0;
    }

    /// Starts the batch on `backend`.
    fn launch(&mut self, backend: &mut dyn Backend) -> Result<Box<dyn Pending>, NetError> {
        // SAFETY: the ring keeps this batch (its memory) untouched in `launched` until its
        // owner has waited on the returned Pending (Ring::wait), and `Launched` drops the
        // Pending before the batch; nothing forgets a Pending.
        unsafe { backend.launch(self.memory.as_mut(), self.rows) }
    }

    /// Waits for the launched batch, then refuses non-finite outputs (a faulty device,
    /// corrupt weights) naming the row, so they can never reach a search or a shard.
    fn finish(&self, pending: Box<dyn Pending>, backend: &'static str) -> Result<(), NetError> {
        pending.wait(self.memory.as_ref(), self.rows)?;
        // Read only now: until the wait, the device may still be writing the outputs.
        match self.memory.view().rows(self.rows).first_non_finite() {
            Some(row) => Err(NetError::NonFinite {
                backend,
                row,
                rows: self.rows,
            }),
            None => Ok(()),
        }
    }
}

/// A launched batch. Field order matters: dropping it waits for the backend (`pending`)
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
    next_ticket: u64,
    closed: bool,
    failure: Option<RingError>,
}

/// Counters read by progress bars and the run summary.
#[derive(Debug, Default)]
pub struct RingStats {
    pub rows: AtomicU64,
    pub batches: AtomicU64,
}

pub struct Ring {
    state: Mutex<State>,
    /// Signalled when a slot becomes free, a batch is queued or launched, or the ring closes
    /// or fails.
    changed: Condvar,
    pub stats: RingStats,
    rows_per_batch: usize,
    /// The name of the backend whose slots these are, for error messages.
    backend: &'static str,
}

impl Ring {
    /// A ring of `slots` slots of `rows_per_batch` rows, allocated by `backend` (which, or a
    /// backend that accepts its memory, must then serve it).
    pub fn new(
        backend: &mut dyn Backend,
        slots: usize,
        rows_per_batch: usize,
    ) -> Result<Ring, NetError> {
        let free = (0..slots)
            .map(|_| {
                let memory = backend.alloc_slot(rows_per_batch)?;
                Ok(Batch {
                    limit: memory.capacity().min(rows_per_batch),
                    memory,
                    rows: 0,
                })
            })
            .collect::<Result<_, NetError>>()?;
        Ok(Ring {
            state: Mutex::new(State {
                free,
                ..State::default()
            }),
            changed: Condvar::new(),
            stats: RingStats::default(),
            rows_per_batch,
            backend: backend.name(),
        })
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
            (Some(f), _) => Err(f.clone()),
            (None, true) => Err(RingError::Closed),
            (None, false) => Ok(()),
        }
    }

    /// Fails the ring: every waiter and every later call sees the first failure. The batch
    /// goes back to the free list (its memory stays owned by the ring).
    fn fail(&self, ticket: Ticket, error: NetError, batch: Batch) -> RingError {
        let error = RingError::Backend {
            batch: ticket.0,
            source: Arc::new(error),
        };
        let mut st = self.lock();
        let first = st.failure.get_or_insert(error).clone();
        st.free.push(batch);
        drop(st);
        self.changed.notify_all();
        first
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

    /// Waits for a submitted batch's outputs (on the backend's signal, outside the ring's
    /// lock). Give the slot back with [`Ring::release`], or fill and submit it again.
    pub fn wait(&self, ticket: Ticket) -> Result<Batch, RingError> {
        // Opened before the batch leaves the ring, so nothing between taking the Launched
        // entry apart and waiting on it can unwind (which would free the memory first).
        let _waiting = telemetry::range("wait");
        let mut st = self.wait_while(self.lock(), |s| {
            !s.launched.contains_key(&ticket) && s.failure.is_none() && !s.closed
        });
        let Some(Launched { pending, batch }) = st.launched.remove(&ticket) else {
            return Err(Self::check_open(&st).err().unwrap_or(RingError::Closed));
        };
        drop(st);
        match batch.finish(pending, self.backend) {
            Ok(()) => Ok(batch),
            Err(e) => Err(self.fail(ticket, e, batch)),
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

    /// A guard that closes the ring when dropped: made right after the backend thread is
    /// spawned in a thread scope, it lets that thread end even when a worker panics (the scope
    /// then joins it and the panic goes on).
    pub fn close_on_drop(&self) -> CloseOnDrop<'_> {
        CloseOnDrop(self)
    }

    /// The backend loop: launches queued batches in order until the ring is closed and
    /// drained. A backend error fails the ring (every waiter sees it) and is returned, as is a
    /// failure found at a worker's wait.
    pub fn serve(&self, backend: &mut dyn Backend) -> Result<(), RingError> {
        // A panic here (a bug in a backend) must not leave the workers waiting for batches
        // that will never run: the ring fails as the thread unwinds.
        let _fail_on_panic = FailOnPanic(self);
        loop {
            let mut st = self.wait_while(self.lock(), |s| {
                s.queued.is_empty() && !s.closed && s.failure.is_none()
            });
            // A batch that failed at its owner's wait (a device error) fails the ring: stop.
            if let Some(failure) = &st.failure {
                return Err(failure.clone());
            }
            let Some((ticket, mut batch)) = st.queued.pop_front() else {
                return Ok(());
            };
            drop(st);
            let launched = {
                let _range = telemetry::range("launch");
                batch.launch(backend)
            };
            let pending = match launched {
                Ok(pending) => pending,
                Err(e) => return Err(self.fail(ticket, e, batch)),
            };
            self.stats
                .rows
                .fetch_add(batch.rows() as u64, Ordering::Relaxed);
            self.stats.batches.fetch_add(1, Ordering::Relaxed);
            self.lock()
                .launched
                .insert(ticket, Launched { pending, batch });
            self.changed.notify_all();
        }
    }
}

/// The backend threads of several rings (one per device), spawned in a thread scope: ring `i`
/// served by `backends[i]`. Dropping it closes every ring, so the threads end even when a
/// worker panics (the scope then joins them and the panic goes on).
pub struct Servers<'scope, 'env> {
    rings: &'env [Ring],
    threads: Vec<std::thread::ScopedJoinHandle<'scope, Result<(), RingError>>>,
}

impl<'scope, 'env> Servers<'scope, 'env> {
    pub fn spawn(
        scope: &'scope std::thread::Scope<'scope, 'env>,
        rings: &'env [Ring],
        backends: &'env mut [Box<dyn Backend>],
    ) -> Servers<'scope, 'env> {
        assert_eq!(rings.len(), backends.len(), "one backend per ring");
        let threads = rings
            .iter()
            .zip(backends)
            .map(|(ring, backend)| scope.spawn(move || ring.serve(backend.as_mut())))
            .collect();
        Servers { rings, threads }
    }

    /// Closes every ring and waits for its thread: the first failure, with its ring's index.
    pub fn join(mut self) -> Result<(), (usize, RingError)> {
        self.close();
        let mut first = Ok(());
        for (i, thread) in std::mem::take(&mut self.threads).into_iter().enumerate() {
            let result = thread.join().expect("backend thread panicked");
            if let (Ok(()), Err(e)) = (&first, result) {
                first = Err((i, e));
            }
        }
        first
    }

    fn close(&self) {
        for ring in self.rings {
            ring.close();
        }
    }
}

impl Drop for Servers<'_, '_> {
    fn drop(&mut self) {
        self.close();
    }
}

/// See [`Ring::close_on_drop`].
#[must_use = "the ring closes when the guard is dropped"]
pub struct CloseOnDrop<'a>(&'a Ring);

impl Drop for CloseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Fails the ring if the backend thread unwinds from a panic.
struct FailOnPanic<'a>(&'a Ring);

impl Drop for FailOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut st = self.0.lock();
            st.failure.get_or_insert(RingError::BackendPanicked);
            drop(st);
            self.0.changed.notify_all();
        }
    }
}

#[cfg(test)]
mod doubles;
#[cfg(all(test, loom))]
mod loom_model;
#[cfg(all(test, not(loom)))]
mod tests;
