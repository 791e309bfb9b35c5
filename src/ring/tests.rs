//! Unit tests of the ring: heap slots served synchronously, device slots launched
//! asynchronously (with the host-side double), failures and non-finite outputs.

use super::doubles::Deferred;
use super::*;
use crate::net::{BatchIn, BatchOut, NetError, UniformBackend};
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
    for (fail_wait, nan_row, expect) in [(true, None, "device fault"), (false, Some(1), "row 1")] {
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
