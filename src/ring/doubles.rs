//! A host-side stand-in for an asynchronous backend, shared by the unit and the model tests.

use super::*;
use crate::net::{BatchIn, BatchOut, NetError, UniformBackend};
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
    unsafe fn launch(
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
        let (inputs, outputs) = parts.batch(rows);
        UniformBackend { max_batch: 8 }.forward(inputs, outputs)?;
        if let Some(row) = self.nan_row {
            memory.parts().value[row] = f32::NAN;
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
