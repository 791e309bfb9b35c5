//! A host-side stand-in for a device backend, shared by the unit and the model tests.

use super::*;
use crate::net::{BatchIn, BatchOut, HeapSlot, NetError, UniformBackend};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

/// Allocates its own slots (and refuses any other memory), and `launch` computes uniform
/// outputs at once (plus `nan_row`'s NaN value) but returns a [`Pending`] that fails if
/// `fail_wait` is set; counts batches launched and not yet waited for.
#[derive(Clone, Default)]
pub struct Deferred {
    /// Addresses of the slots' inputs, in allocation order.
    pub slots: Vec<usize>,
    /// Slots allocated and batches launched, shared with clones (and readable once the
    /// double is boxed inside another backend).
    pub allocated: Arc<AtomicUsize>,
    pub launches: Arc<AtomicUsize>,
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
    fn wait(self: Box<Self>, _: &dyn SlotMemory, _: usize) -> Result<(), NetError> {
        self.in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        if self.fail {
            return Err(NetError::Device {
                backend: "deferred",
                stage: "batch",
                source: "device fault".into(),
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
        unreachable!("the ring only launches")
    }
    fn alloc_slot(&mut self, capacity: usize) -> Result<Box<dyn SlotMemory>, NetError> {
        let mut memory = HeapSlot::new(capacity);
        self.slots.push(memory.parts().inputs.as_ptr() as usize);
        self.allocated
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(Box::new(memory))
    }
    unsafe fn launch(
        &mut self,
        memory: &mut dyn SlotMemory,
        rows: usize,
    ) -> Result<Box<dyn Pending>, NetError> {
        let parts = memory.parts();
        if !self.slots.contains(&(parts.inputs.as_ptr() as usize)) {
            return Err(NetError::ForeignSlot {
                backend: "deferred",
            });
        }
        let (inputs, outputs) = parts.batch(rows);
        UniformBackend { max_batch: 8 }.forward(inputs, outputs)?;
        if let Some(row) = self.nan_row {
            memory.parts().value[row] = f32::NAN;
        }
        self.launches
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
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
