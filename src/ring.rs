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
    AsyncBackend, Backend, BatchIn, BatchOut, HeapSlot, NetError, Pending, SlotMemory, INPUT_DIM,
    POLICY_DIM,
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
    /// The slot's index, as the backend that allocated its memory knows it.
    index: usize,
}

impl fmt::Debug for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch")
            .field("index", &self.index)
            .field("rows", &self.rows)
            .field("capacity", &self.memory.capacity())
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
        let capacity = self.memory.capacity();
        assert!(end <= capacity, "{end} rows overflow a batch of {capacity}");
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
        let rows = self.rows;
        let parts = self.memory.parts();
        backend
            .forward(
                BatchIn {
                    inputs: &parts.inputs[..rows * INPUT_DIM],
                    masks: &parts.masks[..rows],
                },
                BatchOut {
                    policy: &mut parts.policy[..rows * POLICY_DIM],
                    value: &mut parts.value[..rows],
                },
            )
            .map_err(|e| e.to_string())
    }

    /// Enqueues the batch on an asynchronous backend.
    fn launch(&mut self, device: &mut dyn AsyncBackend) -> Result<Box<dyn Pending>, String> {
        device
            .launch(self.index, self.memory.as_mut(), self.rows)
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

    /// Waits for a submitted batch's outputs (for a launched batch: on the device's signal,
    /// outside the ring's lock). Give the slot back with [`Ring::release`].
    pub fn wait(&self, ticket: Ticket) -> Result<Batch, RingError> {
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
        let waiting = telemetry::range("wait");
        let result = pending.wait();
        drop(waiting);
        let result = result
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

#[cfg(all(test, not(loom)))]
mod tests {
    use super::doubles::Deferred;
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

    /// Submits one batch per entry of `legal` (entry n: n rows with n legal actions).
    fn submit_all(ring: &Ring, legal: &[u32]) -> Vec<(u32, Ticket)> {
        legal
            .iter()
            .map(|&n| {
                let mut b = ring.acquire().unwrap();
                for _ in 0..n {
                    b.push(&[0.0; INPUT_DIM], (1u64 << n) - 1);
                }
                (n, ring.submit(b).unwrap())
            })
            .collect()
    }

    #[test]
    fn an_async_backend_keeps_batches_in_flight_until_their_owners_wait() {
        let mut backend = Deferred::default();
        let ring = Arc::new(Ring::for_backend(4, 8, &mut backend).unwrap());
        assert_eq!(backend.slots.len(), 4, "the slots are the backend's memory");
        let tickets = submit_all(&ring, &[1, 2, 3, 4]);
        ring.close();
        ring.serve(&mut backend).unwrap();
        assert_eq!(backend.most_in_flight, 4, "launching never waits");
        for (n, t) in tickets.into_iter().rev() {
            let b = ring.wait(t).unwrap();
            assert_eq!(b.rows(), n as usize);
            let (p, v) = b.outputs(0..b.rows());
            assert!(p.chunks(POLICY_DIM).all(|r| r[0] == 1.0 / n as f32));
            assert!(v.iter().all(|&x| x == 0.0));
            ring.release(b);
        }
        assert_eq!(backend.in_flight.load(Ordering::SeqCst), 0);
        assert_eq!(ring.stats.rows.load(Ordering::Relaxed), 10);
    }

    #[test]
    fn async_failures_and_non_finite_outputs_fail_the_ring_at_the_wait() {
        for (fail_wait, nan_row, expect) in
            [(true, None, "device fault"), (false, Some(1), "row 1")]
        {
            let mut backend = Deferred {
                fail_wait,
                nan_row,
                ..Deferred::default()
            };
            let ring = Ring::for_backend(2, 8, &mut backend).unwrap();
            let tickets = submit_all(&ring, &[2, 2]);
            ring.close();
            ring.serve(&mut backend).unwrap();
            let err = ring.wait(tickets[0].1).unwrap_err();
            assert!(
                matches!(&err, RingError::Backend(m) if m.contains("batch 0") && m.contains(expect)),
                "{err}"
            );
            // The other batch's owner learns of the failure instead of its outputs.
            assert!(matches!(
                ring.wait(tickets[1].1),
                Err(RingError::Backend(_))
            ));
        }
    }

    #[test]
    fn a_failure_at_a_wait_stops_the_backend_loop() {
        let mut backend = Deferred {
            fail_wait: true,
            ..Deferred::default()
        };
        let ring = Arc::new(Ring::for_backend(2, 8, &mut backend).unwrap());
        let t = submit_all(&ring, &[1])[0].1;
        let server = {
            let ring = ring.clone();
            std::thread::spawn(move || ring.serve(&mut backend))
        };
        assert!(ring.wait(t).is_err());
        // No close(): the loop ends on the failure alone.
        let served = server.join().unwrap();
        assert!(matches!(&served, Err(RingError::Backend(m)) if m.contains("device fault")));
    }

    #[test]
    fn a_ring_of_device_slots_refuses_another_backend() {
        let ring = Ring::for_backend(1, 8, &mut Deferred::default()).unwrap();
        let t = submit_all(&ring, &[1])[0].1;
        ring.close();
        let err = ring
            .serve(&mut UniformBackend { max_batch: 8 })
            .unwrap_err();
        assert!(matches!(&err, RingError::Backend(m) if m.contains("belong to the deferred")));
        assert!(ring.wait(t).is_err());
    }
}

/// Model checks of the ring protocol (claim → fill → publish → complete → recycle) with loom:
/// every interleaving of the threads up to a preemption bound (3 with two workers, 1 with
/// three), at capacity 1 and 2 with
/// more workers than slots, on the synchronous and the asynchronous path, and a failing
/// backend: every batch comes back to its owner with its own outputs, slots are recycled, and
/// nobody hangs. Run with `scripts/loom.sh`.
#[cfg(all(test, loom))]
mod loom_model {
    use super::doubles::Deferred;
    use super::*;
    use crate::net::{NetError, UniformBackend};
    use loom::sync::Arc;
    use loom::thread;

    /// Worker `w` submits a batch of `w + 1` rows whose masks allow `w + 1` actions, waits for
    /// it and checks the uniform policy it gets back is its own.
    fn worker(ring: &Ring, w: usize) {
        let mut batch = ring.acquire().expect("a slot");
        for _ in 0..=w {
            batch.push(&[0.0; INPUT_DIM], (1u64 << (w + 1)) - 1);
        }
        let ticket = ring.submit(batch).expect("submitted");
        let batch = ring.wait(ticket).expect("outputs");
        assert_eq!(batch.rows(), w + 1);
        let (policy, value) = batch.output(w);
        assert_eq!(policy[0], 1.0 / (w + 1) as f32, "another batch's outputs");
        assert_eq!(value, 0.0);
        ring.release(batch);
    }

    /// Explores `f`'s interleavings with up to `preemptions` preemptions (the state space
    /// grows steeply with threads: three workers, the server and the main thread take
    /// minutes at 1).
    fn check(preemptions: usize, f: impl Fn() + Sync + Send + 'static) {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(preemptions);
        builder.check(f);
    }

    fn run<B: Backend + Clone + Sync + 'static>(
        slots: usize,
        workers: usize,
        backend: B,
        use_device: bool,
    ) {
        let preemptions = if workers > 2 { 1 } else { 3 };
        check(preemptions, move || {
            let mut backend = Box::new(backend.clone()) as Box<dyn Backend>;
            let ring = Arc::new(if use_device {
                Ring::for_backend(slots, 4, backend.as_mut()).unwrap()
            } else {
                Ring::new(slots, 4)
            });
            let server = {
                let ring = ring.clone();
                thread::spawn(move || ring.serve(backend.as_mut()))
            };
            let handles: Vec<_> = (0..workers)
                .map(|w| {
                    let ring = ring.clone();
                    thread::spawn(move || worker(&ring, w))
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
            ring.close();
            server.join().unwrap().unwrap();
            assert_eq!(ring.lock().free.len(), slots, "every slot recycled");
        });
    }

    #[test]
    fn two_workers_share_one_slot() {
        run(1, 2, UniformBackend { max_batch: 4 }, false);
    }

    #[test]
    fn two_workers_two_slots() {
        run(2, 2, UniformBackend { max_batch: 4 }, false);
    }

    #[test]
    fn three_workers_two_slots() {
        run(2, 3, UniformBackend { max_batch: 4 }, false);
    }

    #[test]
    fn async_two_workers_one_slot() {
        run(1, 2, Deferred::default(), true);
    }

    #[test]
    fn async_three_workers_two_slots() {
        run(2, 3, Deferred::default(), true);
    }

    /// A backend that fails: both workers get the error, none hangs.
    #[test]
    fn a_failing_backend_releases_every_waiter() {
        #[derive(Clone)]
        struct Failing;
        impl Backend for Failing {
            fn name(&self) -> &'static str {
                "failing"
            }
            fn max_batch(&self) -> usize {
                4
            }
            fn forward(&mut self, _: BatchIn<'_>, _: BatchOut<'_>) -> Result<(), NetError> {
                Err(NetError::Shape("device lost".into()))
            }
        }
        check(3, || {
            let ring = Arc::new(Ring::new(2, 4));
            let server = {
                let ring = ring.clone();
                thread::spawn(move || ring.serve(&mut Failing))
            };
            let handles: Vec<_> = (0..2)
                .map(|_| {
                    let ring = ring.clone();
                    thread::spawn(move || {
                        let Ok(mut batch) = ring.acquire() else {
                            return; // the ring failed before this worker got a slot
                        };
                        batch.push(&[0.0; INPUT_DIM], 1);
                        if let Ok(ticket) = ring.submit(batch) {
                            assert!(ring.wait(ticket).is_err());
                        }
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
            ring.close();
            assert!(server.join().unwrap().is_err());
        });
    }
}

/// A host-side stand-in for an asynchronous backend, shared by the unit and the model tests.
#[cfg(test)]
mod doubles {
    use super::*;
    use crate::net::{NetError, UniformBackend};
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    /// `launch` computes uniform outputs at once (plus `nan_row`'s NaN value) and returns a
    /// [`Pending`] that fails if `fail_wait` is set; counts batches launched and not yet
    /// waited for.
    #[derive(Clone, Default)]
    pub struct Deferred {
        pub slots: Vec<usize>,
        pub in_flight: Arc<AtomicUsize>,
        pub most_in_flight: usize,
        pub fail_wait: bool,
        pub nan_row: Option<usize>,
    }

    struct DeferredPending {
        in_flight: Arc<AtomicUsize>,
        fail: bool,
    }

    impl Pending for DeferredPending {
        fn wait(self: Box<Self>) -> Result<(), NetError> {
            self.in_flight
                .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            if self.fail {
                return Err(NetError::Backend {
                    backend: "deferred",
                    stage: "batch",
                    message: "device fault".into(),
                });
            }
            Ok(())
        }
    }

    impl Backend for Deferred {
        fn name(&self) -> &'static str {
            "deferred"
        }
        fn max_batch(&self) -> usize {
            8
        }
        fn forward(&mut self, _: BatchIn<'_>, _: BatchOut<'_>) -> Result<(), NetError> {
            unreachable!("a ring built for an async backend only launches")
        }
        fn as_async(&mut self) -> Option<&mut dyn AsyncBackend> {
            Some(self)
        }
    }

    impl AsyncBackend for Deferred {
        fn alloc_slot(
            &mut self,
            index: usize,
            capacity: usize,
        ) -> Result<Box<dyn SlotMemory>, NetError> {
            assert_eq!(index, self.slots.len(), "slots allocated in order");
            let mut memory = HeapSlot::new(capacity);
            self.slots.push(memory.parts().inputs.as_ptr() as usize);
            Ok(Box::new(memory))
        }
        fn launch(
            &mut self,
            index: usize,
            memory: &mut dyn SlotMemory,
            rows: usize,
        ) -> Result<Box<dyn Pending>, NetError> {
            let parts = memory.parts();
            assert_eq!(
                parts.inputs.as_ptr() as usize,
                self.slots[index],
                "own memory"
            );
            UniformBackend { max_batch: 8 }.forward(
                BatchIn {
                    inputs: &parts.inputs[..rows * INPUT_DIM],
                    masks: &parts.masks[..rows],
                },
                BatchOut {
                    policy: &mut parts.policy[..rows * POLICY_DIM],
                    value: &mut parts.value[..rows],
                },
            )?;
            if let Some(row) = self.nan_row {
                parts.value[row] = f32::NAN;
            }
            let now = self
                .in_flight
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                + 1;
            self.most_in_flight = self.most_in_flight.max(now);
            Ok(Box::new(DeferredPending {
                in_flight: self.in_flight.clone(),
                fail: self.fail_wait,
            }))
        }
    }
}
