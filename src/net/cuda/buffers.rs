//! Host and device memory of the backend: [`PinnedBuf`] (page-locked host memory with a
//! chosen caching mode), [`IoBuffers`] (one batch slot: pinned staging and device buffers for
//! inputs, masks, the fill count and outputs, plus the event that marks the batch done; lc0's
//! `InputsOutputs`) and [`DeviceNet`] (the packed weights on the device).
//!
//! Pinned memory: the host only writes inputs, masks and the fill count, so those may be
//! write-combined (faster PCIe reads by the GPU); the host reads the outputs, so those are
//! default (cached) pinned memory: reading write-combined memory is ~70x slower.
//!
//! The ring (`src/ring.rs`) can later own slots of this shape directly: a slot whose input
//! rows, masks and output rows live in an [`IoBuffers`] is copied to and from the device with
//! no staging copy (today `CudaBackend::forward` copies the caller's rows into its one
//! [`IoBuffers`] and back), and several slots in flight overlap copies, kernels and the CPU
//! search: the backend thread replays slot `i`'s graph, records `done`, and the slot's owner
//! polls the event instead of blocking. A captured graph bakes in its buffers' addresses, so
//! each slot gets its own graph per bucket (7 small graphs per slot).

use std::sync::Arc;

use cudarc::driver::sys::CUevent_flags;
use cudarc::driver::{
    result, sys, CudaContext, CudaEvent, CudaSlice, CudaStream, DevicePtr, DeviceRepr,
    ValidAsZeroBits,
};
use half::f16;

use super::error::{CudaError, Stage};
use super::pack::PackedNet;
use crate::net::{INPUT_DIM, POLICY_DIM};

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

    /// Enqueues `self[..n] = device[..n]` on `stream`.
    ///
    /// # Safety
    /// The host must not read or write `self[..n]` until the copy completed, and `device`
    /// must be a live allocation of at least `n` `T`s.
    pub unsafe fn copy_from_device(
        &mut self,
        device: sys::CUdeviceptr,
        n: usize,
        stream: &CudaStream,
    ) -> Result<(), cudarc::driver::DriverError> {
        assert!(
            n <= self.len,
            "copy of {n} elements into a buffer of {}",
            self.len
        );
        result::memcpy_dtoh_async(&mut self.as_mut_slice()[..n], device, stream.cu_stream())
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

/// One batch slot with room for `capacity` rows.
pub struct IoBuffers {
    pub capacity: usize,
    pub host_inputs: PinnedBuf<f32>,
    pub host_masks: PinnedBuf<u64>,
    pub host_fill: PinnedBuf<u32>,
    pub host_policy: PinnedBuf<f32>,
    pub host_value: PinnedBuf<f32>,
    pub inputs: DeviceBuf<f32>,
    pub masks: DeviceBuf<u64>,
    pub fill: DeviceBuf<u32>,
    pub policy: DeviceBuf<f32>,
    pub value: DeviceBuf<f32>,
    /// Recorded after a batch's last copy; the host waits on it before reading outputs.
    pub done: CudaEvent,
}

impl IoBuffers {
    pub fn new(
        ctx: &Arc<CudaContext>,
        stream: &Arc<CudaStream>,
        capacity: usize,
    ) -> Result<Self, CudaError> {
        Ok(IoBuffers {
            capacity,
            host_inputs: PinnedBuf::new(ctx, capacity * INPUT_DIM, true)?,
            host_masks: PinnedBuf::new(ctx, capacity, true)?,
            host_fill: PinnedBuf::new(ctx, 1, true)?,
            host_policy: PinnedBuf::new(ctx, capacity * POLICY_DIM, false)?,
            host_value: PinnedBuf::new(ctx, capacity, false)?,
            inputs: DeviceBuf::zeros(stream, capacity * INPUT_DIM)?,
            masks: DeviceBuf::zeros(stream, capacity)?,
            fill: DeviceBuf::zeros(stream, 1)?,
            policy: DeviceBuf::zeros(stream, capacity * POLICY_DIM)?,
            value: DeviceBuf::zeros(stream, capacity)?,
            done: ctx
                .new_event(Some(CUevent_flags::CU_EVENT_DISABLE_TIMING))
                .stage("event creation")?,
        })
    }
}
