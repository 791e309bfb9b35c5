//! Unit tests of the ring: host slots computed at launch, device slots launched
//! asynchronously (with the host-side double), failures, non-finite outputs, the checking
//! backend on the same path, and the client loop.

use super::doubles::Deferred;
use super::*;
use crate::net::check::CheckBackend;
use crate::net::{BatchIn, BatchOut, NetError, UniformBackend};
use std::sync::Arc;

#[test]
fn rows_come_back_to_their_ticket() {
    let ring = Arc::new(Ring::new(&mut UniformBackend { max_batch: 8 }, 4, 8).unwrap());
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
        Err(NetError::Device {
            backend: "failing",
            stage: "forward",
            source: "device lost".into(),
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
    let ring = Arc::new(Ring::new(&mut NanValues, 2, 4).unwrap());
    let mut b = ring.acquire().unwrap();
    b.push_rows(&[0.0; 2 * INPUT_DIM], &[1, 1]);
    let t = ring.submit(b).unwrap();
    let server = {
        let ring = ring.clone();
        std::thread::spawn(move || ring.serve(&mut NanValues))
    };
    let err = ring.wait(t).unwrap_err();
    assert!(
        matches!(
            &err,
            RingError::Backend { batch: 0, source }
                if matches!(**source, NetError::NonFinite { row: 1, rows: 2, .. })
        ),
        "{err}"
    );
    assert!(server.join().unwrap().is_err());
}

#[test]
fn backend_failure_reaches_waiters() {
    let ring = Arc::new(Ring::new(&mut Failing, 2, 4).unwrap());
    let mut b = ring.acquire().unwrap();
    b.push(&[0.0; INPUT_DIM], 1);
    let t = ring.submit(b).unwrap();
    let server = {
        let ring = ring.clone();
        std::thread::spawn(move || ring.serve(&mut Failing))
    };
    let err = ring.wait(t).unwrap_err();
    let source = err.net_error().expect("a backend failure");
    assert!(
        matches!(
            source,
            NetError::Device {
                stage: "forward",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("device lost"), "{err}");
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
    let ring = Arc::new(Ring::new(&mut backend, 4, 8).unwrap());
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
        [(true, None, "device fault"), (false, Some(1), "row 1 of 2")]
    {
        let mut backend = Deferred {
            fail_wait,
            nan_row,
            ..Deferred::default()
        };
        let ring = Ring::new(&mut backend, 2, 8).unwrap();
        let tickets = submit_all(&ring, &[2, 2]);
        ring.close();
        ring.serve(&mut backend).unwrap();
        let err = ring.wait(tickets[0].1).unwrap_err();
        assert!(
            matches!(&err, RingError::Backend { batch: 0, .. }) && err.to_string().contains(expect),
            "{err}"
        );
        // The other batch's owner learns of the failure instead of its outputs.
        assert!(matches!(
            ring.wait(tickets[1].1),
            Err(RingError::Backend { batch: 0, .. })
        ));
    }
}

#[test]
fn a_failure_at_a_wait_stops_the_backend_loop() {
    let mut backend = Deferred {
        fail_wait: true,
        ..Deferred::default()
    };
    let ring = Arc::new(Ring::new(&mut backend, 2, 8).unwrap());
    let t = submit_all(&ring, &[1])[0].1;
    let server = {
        let ring = ring.clone();
        std::thread::spawn(move || ring.serve(&mut backend))
    };
    assert!(ring.wait(t).is_err());
    // No close(): the loop ends on the failure alone.
    let served = server.join().unwrap();
    assert!(
        matches!(&served, Err(e) if e.to_string().contains("device fault")),
        "{served:?}"
    );
}

#[test]
fn a_ring_of_device_slots_refuses_another_backend() {
    let ring = Ring::new(&mut Deferred::default(), 1, 8).unwrap();
    let t = submit_all(&ring, &[1])[0].1;
    ring.close();
    let err = ring.serve(&mut Deferred::default()).unwrap_err();
    assert!(
        matches!(err.net_error(), Some(NetError::ForeignSlot { .. })),
        "{err}"
    );
    assert!(ring.wait(t).is_err());
}

/// Serves two one-row batches through a ring of `backend`'s 2 slots, both in flight.
fn serve_two(backend: &mut dyn Backend) -> Result<(), RingError> {
    let ring = Ring::new(backend, 2, 8).unwrap();
    let tickets = submit_all(&ring, &[1, 1]);
    ring.close();
    ring.serve(backend)?;
    for (_, t) in tickets {
        ring.release(ring.wait(t)?);
    }
    Ok(())
}

#[test]
fn the_checking_backend_takes_the_watched_backends_path_and_checks_at_the_wait() {
    let counts = |d: &Deferred| {
        (
            d.allocated.load(Ordering::SeqCst),
            d.launches.load(Ordering::SeqCst),
        )
    };
    // Without the check: the device double allocates both slots and launches both batches.
    let mut plain = Deferred::default();
    serve_two(&mut plain).unwrap();
    assert_eq!(counts(&plain), (2, 2));
    // With it: the same slots and launches, each batch compared when its owner waits (the
    // double's uniform outputs against a uniform reference: no difference).
    let watched = Deferred::default();
    let handle = watched.clone();
    let uniform = Box::new(UniformBackend { max_batch: 8 });
    let mut checked = CheckBackend::new(Box::new(watched), uniform, 1, 0.0);
    let stats = checked.stats();
    serve_two(&mut checked).unwrap();
    assert_eq!(
        counts(&handle),
        (2, 2),
        "the watched backend's slots and launches"
    );
    assert_eq!(handle.in_flight.load(Ordering::SeqCst), 0);
    assert_eq!(stats.lock().unwrap().batches_checked, 2);
    // A checked batch that differs fails at its owner's wait, as a device fault would.
    let mut wrong = CheckBackend::new(Box::new(Deferred::default()), Box::new(NanValues), 1, 1e-3);
    let err = serve_two(&mut wrong).unwrap_err();
    assert!(
        matches!(
            err.net_error(),
            Some(NetError::CheckFailed { batch: 0, .. })
        ),
        "{err}"
    );
}

/// Panics in a backend.
struct Panicking;
impl Backend for Panicking {
    fn name(&self) -> &'static str {
        "panicking"
    }
    fn max_batch(&self) -> usize {
        8
    }
    fn forward(&mut self, _: BatchIn<'_>, _: BatchOut<'_>) -> Result<(), NetError> {
        panic!("a bug in the backend")
    }
}

#[test]
fn a_panicking_backend_fails_the_ring_instead_of_hanging_its_waiters() {
    let ring = Arc::new(Ring::new(&mut Panicking, 2, 4).unwrap());
    let t = submit_all(&ring, &[1])[0].1;
    let server = {
        let ring = ring.clone();
        std::thread::spawn(move || ring.serve(&mut Panicking))
    };
    assert!(matches!(ring.wait(t), Err(RingError::BackendPanicked)));
    assert!(server.join().is_err(), "the panic goes on");
    assert!(matches!(ring.acquire(), Err(RingError::BackendPanicked)));
}

#[test]
fn a_panicking_client_lets_the_scope_end() {
    let ring = Ring::new(&mut UniformBackend { max_batch: 8 }, 2, 8).unwrap();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        std::thread::scope(|scope| {
            let ring = &ring;
            scope.spawn(move || ring.serve(&mut UniformBackend { max_batch: 8 }));
            let _close = ring.close_on_drop();
            panic!("a bug in a worker");
        })
    }));
    assert!(outcome.is_err(), "the worker's panic reaches the caller");
}

/// `Servers`: one thread per ring, each ring on its own backend; `join` closes the rings and
/// names the first ring whose backend failed, while the other ring kept serving.
#[test]
fn servers_serve_each_ring_on_its_backend_and_name_the_one_that_failed() {
    use crate::net::fault::FaultBackend;
    let mut backends: Vec<Box<dyn Backend>> = vec![
        Box::new(UniformBackend { max_batch: 4 }),
        Box::new(FaultBackend::new(
            Box::new(UniformBackend { max_batch: 4 }),
            0,
        )),
    ];
    let rings: Vec<Ring> = backends
        .iter_mut()
        .map(|b| Ring::new(b.as_mut(), 2, 4).unwrap())
        .collect();
    let one = |ring: &Ring| {
        let mut batch = ring.acquire()?;
        batch.push(&[0.0; INPUT_DIM], 1);
        let batch = ring.wait(ring.submit(batch)?)?;
        ring.release(batch);
        Ok::<(), RingError>(())
    };
    std::thread::scope(|scope| {
        let servers = Servers::spawn(scope, &rings, &mut backends);
        assert!(one(&rings[1]).is_err(), "ring 1's backend fails");
        assert!(one(&rings[0]).is_ok() && one(&rings[0]).is_ok());
        let (ring, err) = servers.join().unwrap_err();
        assert_eq!(ring, 1);
        assert!(err.to_string().contains("injected fault"), "{err}");
    });
    assert!(matches!(one(&rings[0]), Err(RingError::Closed)));
}
