//! Telemetry: the profiling and monitoring libraries, loaded at run time and optional, and
//! nothing else (this module never drives a device: that is [`crate::net::cuda`]'s).
//!
//! - GPU state through NVML ([`nvml_snapshot`], [`GpuStats`]) and a run's utilisation samples
//!   ([`GpuSampler`]);
//! - NVTX ranges (through cudarc's NVTX bindings), so that an Nsight Systems timeline of a run
//!   (`nsys profile --trace=cuda,nvtx engine selfplay ...`) shows what each thread does:
//!   - `search`: a worker advancing one group of games until their searches need the network
//!     (leaf selection, state encoding and legal masks included);
//!   - `apply`: a worker backing a finished batch's policies and values up into its searches;
//!   - `wait`: a worker waiting for its batch (time the GPU or the ring costs it);
//!   - `launch`: the backend thread starting a batch (the CPU computes it there; the GPU only
//!     enqueues copies, graph and event).
//!
//! Ranges cost one check of a flag when off. They are on when the NVTX library
//! (`libnvToolsExt.so`, from a CUDA toolkit or the `nvidia-nvtx` wheel) is on the library path
//! and answers a probe range; it is probed once.

mod nvml;
mod sampler;

pub use nvml::{nvml_snapshot, GpuStats};
pub use sampler::GpuSampler;

use std::panic::catch_unwind;
use std::sync::OnceLock;

/// An open range; it ends when dropped.
#[must_use = "a range ends when dropped"]
pub struct Range {
    _open: Option<cudarc::nvtx::Range>,
}

/// Opens the NVTX range `name` on the calling thread (a no-op without the NVTX library).
pub fn range(name: &'static str) -> Range {
    Range {
        _open: nvtx_active().then(|| cudarc::nvtx::scoped_range(name)),
    }
}

/// Whether NVTX ranges are being emitted (the library loaded and answered).
pub fn nvtx_active() -> bool {
    static ACTIVE: OnceLock<bool> = OnceLock::new();
    // A library that loads but lacks a symbol makes cudarc panic on first use: probe with one
    // real range, so that the ranges on the hot path can never panic.
    *ACTIVE.get_or_init(|| {
        catch_unwind(|| {
            // SAFETY: only tries to dlopen the NVTX library by its usual names.
            let present = unsafe { cudarc::nvtx::sys::is_culib_present() };
            if present {
                drop(cudarc::nvtx::scoped_range("engine: nvtx probe"));
            }
            present
        })
        .unwrap_or(false)
    })
}
