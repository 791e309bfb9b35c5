//! Model checks of the ring protocol (claim → fill → publish → complete → recycle) with loom:
//! every interleaving of the threads up to a preemption bound (3 with two workers, 1 with
//! three), at capacity 1 and 2 with more workers than slots, with host slots (computed at
//! launch) and device slots (waited for by their owner), and a failing backend: every batch
//! comes back to its owner with its own outputs, slots are recycled, and nobody hangs. Run
//! with `scripts/loom.sh`.

use super::doubles::Deferred;
use super::*;
use crate::net::{BatchIn, BatchOut, NetError, UniformBackend};
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

fn run<B: Backend + Clone + Sync + 'static>(slots: usize, workers: usize, backend: B) {
    let preemptions = if workers > 2 { 1 } else { 3 };
    check(preemptions, move || {
        let mut backend = Box::new(backend.clone()) as Box<dyn Backend>;
        let ring = Arc::new(Ring::new(backend.as_mut(), slots, 4).unwrap());
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
    run(1, 2, UniformBackend { max_batch: 4 });
}

#[test]
fn two_workers_two_slots() {
    run(2, 2, UniformBackend { max_batch: 4 });
}

#[test]
fn three_workers_two_slots() {
    run(2, 3, UniformBackend { max_batch: 4 });
}

#[test]
fn async_two_workers_one_slot() {
    run(1, 2, Deferred::default());
}

#[test]
fn async_three_workers_two_slots() {
    run(2, 3, Deferred::default());
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
        let ring = Arc::new(Ring::new(&mut Failing, 2, 4).unwrap());
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
