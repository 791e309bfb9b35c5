//! Host and device memory of the backend: [`PinnedBuf`] (page-locked host memory with a
//! chosen caching mode), one batch slot as [`PinnedSlot`] (its host memory) and [`DeviceSlot`]
//! (its stream, device buffers, event and graphs; together lc0's `InputsOutputs`), and
//! [`DeviceNet`] (the packed weights on the device).
//!
//! Pinned memory: the host only writes inputs, masks and the fill count, so those may be
//! write-combined (faster PCIe reads by the GPU); the host reads the outputs and the CTA tags,
//! so those are default (cached) pinned memory: reading write-combined memory is ~70x slower.
//!
//! The batch ring's slots are [`PinnedSlot`]s allocated by the backend, so a worker fills the
//! memory the device copies from (no staging copy), and each ring slot has its
//! [`DeviceSlot`] on its own stream: many batches are on the device at once.

use std::sync::{Arc, Weak};

use cudarc::driver::sys::CUevent_flags;
use cudarc::driver::{
    result, sys, CudaContext, CudaEvent, CudaSlice, CudaStream, DevicePtr, DeviceRepr,
    ValidAsZeroBits,
};
use half::f16;

use super::error::{CudaError, Stage};
use super::graph::GraphSet;
use super::layout::ROWS_PER_CTA;
use super::pack::PackedNet;
use crate::net::{SlotMemory, SlotParts, SlotView, INPUT_DIM, POLICY_DIM};

/// Page-locked host memory from `cuMemHostAlloc`, zero-initialised.
///
/// SAFETY contract: `ptr` points to `len` initialised `T`s (zeroed at allocation, and `T` is
/// valid as zero bits) that this value owns exclusively until `Drop` frees them with
/// `cuMemFreeHost`. The device only reads or writes the memory through copies enqueued by the
/// owner of the [`PinnedBuf`], which waits for them (an event or stream sync) before the host
/// touches the memory again or drops it.
pub struct PinnedBuf<T> {
    ptr: *mut T,
    len: usize,
    ctx: Arc<CudaContext>,
}

// SAFETY: the buffer is plain host memory owned by this value (like a Box<[T]>); the CUDA
// driver allows freeing it from any thread once the context is bound, which Drop does.
unsafe impl<T: Send> Send for PinnedBuf<T> {}
// SAFETY: a shared reference only reads (`as_slice`), under the same contract as an owner's
// reads: never across a pending device copy into the memory.
unsafe impl<T: Sync> Sync for PinnedBuf<T> {}

impl<T: DeviceRepr + ValidAsZeroBits> PinnedBuf<T> {
    /// `len` zeroed elements; `write_combined` for memory the host only writes.
    pub fn new(
        ctx: &Arc<CudaContext>,
        len: usize,
        write_combined: bool,
    ) -> Result<Self, CudaError> {
        let flags = if write_combined {
            sys::CU_MEMHOSTALLOC_WRITECOMBINED
        } else {
            0
        };
        ctx.bind_to_thread().stage("bind context")?;
        let bytes = len.max(1) * std::mem::size_of::<T>();
        // SAFETY: a fresh allocation of `bytes` bytes; zeroing it makes every T valid.
        let ptr = unsafe {
            let ptr = result::malloc_host(bytes, flags).stage("cuMemHostAlloc")? as *mut T;
            std::ptr::write_bytes(ptr as *mut u8, 0, bytes);
            ptr
        };
        Ok(PinnedBuf {
            ptr,
            len,
            ctx: ctx.clone(),
        })
    }
}

impl<T> PinnedBuf<T> {
    /// The memory as a slice. The caller must not hold it across an enqueued device copy
    /// that has not completed (see the type's SAFETY contract).
    pub fn as_slice(&self) -> &[T] {
        // SAFETY: `ptr` holds `len` initialised elements owned by `self`.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [T] {
        // SAFETY: as above, and `&mut self` makes the access exclusive on the host.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }

    /// Enqueues `device[..n] = self[..n]` on `stream`. `device` must hold `n` elements.
    ///
    /// # Safety
    /// The host must not write `self[..n]` until the copy completed (wait on an event
    /// recorded after it), and `device` must be a live allocation of at least `n` `T`s.
    pub unsafe fn copy_to_device(
        &self,
        device: sys::CUdeviceptr,
        n: usize,
        stream: &CudaStream,
    ) -> Result<(), cudarc::driver::DriverError> {
        assert!(
            n <= self.len,
            "copy of {n} elements from a buffer of {}",
            self.len
        );
        result::memcpy_htod_async(device, &self.as_slice()[..n], stream.cu_stream())
    }
}

impl<T> Drop for PinnedBuf<T> {
    fn drop(&mut self) {
        // Errors cannot be returned from Drop; the context records them (checked at shutdown).
        self.ctx.record_err(self.ctx.bind_to_thread());
        // SAFETY: `ptr` came from cuMemHostAlloc and no copy into or out of it is pending
        // (owners wait for their batch before dropping, per the SAFETY contract).
        self.ctx
            .record_err(unsafe { result::free_host(self.ptr as *mut std::ffi::c_void) });
    }
}

/// A device allocation with its raw address cached (event tracking is off, so the address is
/// all a kernel argument or copy needs).
pub struct DeviceBuf<T> {
    /// Owns the allocation (freed on drop); only `ptr` is used while it lives.
    _slice: CudaSlice<T>,
    pub ptr: sys::CUdeviceptr,
}

impl<T: DeviceRepr + ValidAsZeroBits> DeviceBuf<T> {
    pub fn zeros(stream: &Arc<CudaStream>, len: usize) -> Result<Self, CudaError> {
        let slice = stream.alloc_zeros::<T>(len.max(1)).stage("cuMemAlloc")?;
        Ok(DeviceBuf::wrap(slice, stream))
    }

    pub fn from_host(stream: &Arc<CudaStream>, data: &[T]) -> Result<Self, CudaError> {
        let slice = stream.clone_htod(data).stage("weights upload")?;
        Ok(DeviceBuf::wrap(slice, stream))
    }

    fn wrap(slice: CudaSlice<T>, stream: &Arc<CudaStream>) -> Self {
        let ptr = {
            let (ptr, _no_event) = slice.device_ptr(stream);
            ptr
        };
        DeviceBuf { _slice: slice, ptr }
    }
}

/// The packed network on the device.
pub struct DeviceNet {
    pub weights: DeviceBuf<f16>,
    pub params: DeviceBuf<f32>,
    pub layers: i32,
    pub ffn: i32,
}

impl DeviceNet {
    pub fn upload(stream: &Arc<CudaStream>, net: &PackedNet) -> Result<Self, CudaError> {
        Ok(DeviceNet {
            weights: DeviceBuf::from_host(stream, &net.weights)?,
            params: DeviceBuf::from_host(stream, &net.params)?,
            layers: net.layers as i32,
            ffn: net.ffn as i32,
        })
    }
}

/// The host side of one batch slot: page-locked inputs and masks (write-combined: the host
/// only writes them) and outputs (cached: the host reads them). The batch ring owns its
/// slots' host memory (so workers fill it in place); the backend keeps one for `forward`.
pub struct PinnedSlot {
    capacity: usize,
    /// Alive as long as this memory: the [`DeviceSlot`] made over it holds a `Weak` and
    /// refuses to launch once the memory is gone.
    alive: Arc<()>,
    inputs: PinnedBuf<f32>,
    masks: PinnedBuf<u64>,
    policy: PinnedBuf<f32>,
    value: PinnedBuf<f32>,
}

impl PinnedSlot {
    pub fn new(ctx: &Arc<CudaContext>, capacity: usize) -> Result<Self, CudaError> {
        Ok(PinnedSlot {
            capacity,
            alive: Arc::new(()),
            inputs: PinnedBuf::new(ctx, capacity * INPUT_DIM, true)?,
            masks: PinnedBuf::new(ctx, capacity, true)?,
            policy: PinnedBuf::new(ctx, capacity * POLICY_DIM, false)?,
            value: PinnedBuf::new(ctx, capacity, false)?,
        })
    }
}

impl SlotMemory for PinnedSlot {
    fn capacity(&self) -> usize {
        self.capacity
    }
    fn parts(&mut self) -> SlotParts<'_> {
        SlotParts {
            inputs: self.inputs.as_mut_slice(),
            masks: self.masks.as_mut_slice(),
            policy: self.policy.as_mut_slice(),
            value: self.value.as_mut_slice(),
        }
    }
    fn view(&self) -> SlotView<'_> {
        SlotView {
            inputs: self.inputs.as_slice(),
            masks: self.masks.as_slice(),
            policy: self.policy.as_slice(),
            value: self.value.as_slice(),
        }
    }
}

/// The device side of one batch slot: its own stream (batches of different slots run
/// concurrently), device buffers, the row count, the event that marks a batch done, and the
/// graphs captured over these buffers and one [`PinnedSlot`] (a graph bakes in the addresses
/// it copies, so each slot has its own graph per bucket).
pub struct DeviceSlot {
    pub capacity: usize,
    pub stream: Arc<CudaStream>,
    /// `[rows, tag]` of the batch being launched; copied to `fill` by every launch.
    pub host_fill: PinnedBuf<u32>,
    pub inputs: DeviceBuf<f32>,
    pub masks: DeviceBuf<u64>,
    pub fill: DeviceBuf<u32>,
    pub policy: DeviceBuf<f32>,
    pub value: DeviceBuf<f32>,
    /// One word per CTA: the tag of the last batch whose rows the CTA wrote.
    pub tags: DeviceBuf<u32>,
    /// `tags` copied back by every launch, read by whoever waits for the batch.
    pub host_tags: Arc<PinnedBuf<u32>>,
    /// Recorded after a batch's last copy; whoever reads the outputs waits on it.
    pub done: Arc<CudaEvent>,
    pub graphs: GraphSet,
    /// The [`PinnedSlot`] this slot copies from and to (owned elsewhere: by the ring while the
    /// slot is in use, or by the backend for its staging slot), and whether it still lives.
    pub host: HostAddrs,
    host_alive: Weak<()>,
}

/// Addresses of a [`PinnedSlot`]'s buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostAddrs {
    pub inputs: usize,
    pub masks: usize,
    pub policy: usize,
    pub value: usize,
}

impl HostAddrs {
    pub fn of(host: &mut dyn SlotMemory) -> HostAddrs {
        let parts = host.parts();
        HostAddrs {
            inputs: parts.inputs.as_ptr() as usize,
            masks: parts.masks.as_ptr() as usize,
            policy: parts.policy.as_ptr() as usize,
            value: parts.value.as_ptr() as usize,
        }
    }
}

impl DeviceSlot {
    /// A slot over `host` (which must outlive every launch) on `stream`. `blocking_wait`: the
    /// event puts a waiting thread to sleep instead of spinning (for ring slots, whose
    /// workers wait while the other cores search).
    pub fn new(
        ctx: &Arc<CudaContext>,
        stream: Arc<CudaStream>,
        host: &mut PinnedSlot,
        blocking_wait: bool,
    ) -> Result<Self, CudaError> {
        let capacity = host.capacity;
        // cudarc's flags are an enum, so BLOCKING_SYNC cannot be combined with DISABLE_TIMING:
        // ring-slot events keep timing on (a slightly dearer record).
        let flags = if blocking_wait {
            CUevent_flags::CU_EVENT_BLOCKING_SYNC
        } else {
            CUevent_flags::CU_EVENT_DISABLE_TIMING
        };
        Ok(DeviceSlot {
            capacity,
            host_fill: PinnedBuf::new(ctx, 2, true)?,
            inputs: DeviceBuf::zeros(&stream, capacity * INPUT_DIM)?,
            masks: DeviceBuf::zeros(&stream, capacity)?,
            fill: DeviceBuf::zeros(&stream, 2)?,
            policy: DeviceBuf::zeros(&stream, capacity * POLICY_DIM)?,
            value: DeviceBuf::zeros(&stream, capacity)?,
            tags: DeviceBuf::zeros(&stream, capacity.div_ceil(ROWS_PER_CTA))?,
            host_tags: Arc::new(PinnedBuf::new(ctx, capacity.div_ceil(ROWS_PER_CTA), false)?),
            done: Arc::new(ctx.new_event(Some(flags)).stage("event creation")?),
            graphs: GraphSet::default(),
            host: HostAddrs::of(host),
            host_alive: Arc::downgrade(&host.alive),
            stream,
        })
    }

    /// Whether `memory` is this slot's host memory, still alive (a graph of this slot copies
    /// exactly those addresses, so no other memory may be launched with it).
    pub fn is_over(&self, memory: &mut dyn SlotMemory) -> bool {
        self.is_bound() && HostAddrs::of(memory) == self.host
    }

    /// Whether the host memory this slot was made over still lives.
    pub fn is_bound(&self) -> bool {
        self.host_alive.strong_count() > 0
    }
}
