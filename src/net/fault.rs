//! `FaultBackend`: a backend that fails on purpose, standing in for a device fault so that the
//! way a run survives one can be tested on any machine (`engine selfplay
//! --fault-after-batches N`, a hidden flag for tests).
//!
//! It is the backend it wraps, seen through, for its first `healthy` launches; from then on
//! every batch fails at its owner's wait, as a sticky device fault does (a CUDA context that
//! faulted fails every later operation), and is never started on the wrapped backend.

use super::{Backend, BatchIn, BatchOut, NetError, Pending, SlotMemory};

pub struct FaultBackend {
    inner: Box<dyn Backend>,
    healthy: u64,
    launched: u64,
}

impl FaultBackend {
    /// `inner`, failing from its launch number `healthy` (0-based) on.
    pub fn new(inner: Box<dyn Backend>, healthy: u64) -> FaultBackend {
        FaultBackend {
            inner,
            healthy,
            launched: 0,
        }
    }
}

/// A batch that was never started: its wait reports the injected fault.
struct Faulted {
    backend: &'static str,
    batch: u64,
}

impl Pending for Faulted {
    fn wait(self: Box<Self>, _: &dyn SlotMemory, _: usize) -> Result<(), NetError> {
        Err(NetError::Device {
            backend: self.backend,
            stage: "wait",
            source: format!(
                "injected fault (--fault-after-batches): launch {} of this backend",
                self.batch
            )
            .into(),
        })
    }
}

impl Backend for FaultBackend {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn max_batch(&self) -> usize {
        self.inner.max_batch()
    }

    fn forward(&mut self, inp: BatchIn<'_>, out: BatchOut<'_>) -> Result<(), NetError> {
        self.inner.forward(inp, out)
    }

    fn alloc_slot(&mut self, capacity: usize) -> Result<Box<dyn SlotMemory>, NetError> {
        self.inner.alloc_slot(capacity)
    }

    unsafe fn launch(
        &mut self,
        slot: &mut dyn SlotMemory,
        rows: usize,
    ) -> Result<Box<dyn Pending>, NetError> {
        let batch = self.launched;
        self.launched += 1;
        if batch < self.healthy {
            // SAFETY: the caller's contract is passed on unchanged.
            return unsafe { self.inner.launch(slot, rows) };
        }
        Ok(Box::new(Faulted {
            backend: self.inner.name(),
            batch,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::UniformBackend;
    use crate::ring::Ring;

    #[test]
    fn batches_from_the_nth_launch_on_fail_at_their_wait_and_the_ring_reports_the_first() {
        let inner = Box::new(UniformBackend { max_batch: 4 });
        let mut backend = FaultBackend::new(inner, 2);
        let ring = Ring::new(&mut backend, 3, 4).unwrap();
        std::thread::scope(|scope| {
            let server = scope.spawn(|| ring.serve(&mut backend));
            let _close = ring.close_on_drop();
            let run = |ring: &Ring| -> Result<(), crate::ring::RingError> {
                let mut batch = ring.acquire()?;
                batch.push(&[0.0; crate::net::INPUT_DIM], 1);
                let batch = ring.wait(ring.submit(batch)?)?;
                assert_eq!(batch.output(0).0[0], 1.0, "a healthy batch is computed");
                ring.release(batch);
                Ok(())
            };
            assert!(run(&ring).is_ok() && run(&ring).is_ok());
            let err = run(&ring).unwrap_err();
            assert!(err.to_string().contains("failed on batch 2"), "{err}");
            assert!(
                format!("{:?}", err.net_error()).contains("injected fault"),
                "{err:?}"
            );
            // Sticky: the ring refuses every later batch with the same, first error.
            assert_eq!(run(&ring).unwrap_err().to_string(), err.to_string());
            ring.close();
            assert!(server.join().unwrap().is_err());
        });
    }
}
