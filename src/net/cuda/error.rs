//! [`CudaError`]: every way the CUDA backend can fail, each naming what failed (stage, kernel
//! symbol, GPU and bucket, tensor), and [`Stage`], which tags a driver error with the stage it hit.

use cudarc::driver::DriverError;
use thiserror::Error;

use crate::net::NetError;

#[derive(Debug, Error)]
pub enum CudaError {
    #[error(
        "this build has no CUDA kernels (nvcc was not found when it was compiled): run \
         scripts/install-cuda-toolchain.sh and rebuild with ENGINE_REQUIRE_CUDA_KERNELS=1"
    )]
    NoKernelsCompiledIn,
    #[error("the CUDA driver is unavailable: {reason}")]
    DriverUnavailable { reason: String },
    #[error("CUDA device {device} does not exist ({count} device(s) visible)")]
    NoSuchDevice { device: usize, count: usize },
    #[error("CUDA device {device} ({name}) cannot run the kernels: {reason}")]
    UnsupportedDevice {
        device: usize,
        name: String,
        reason: String,
    },
    #[error("kernel `{name}` is missing from the embedded fatbin: {source}")]
    MissingKernel {
        name: &'static str,
        #[source]
        source: DriverError,
    },
    #[error(
        "the embedded kernels were built for layout {found:?}, this binary packs {expected:?} \
         (stale build: rebuild the crate)"
    )]
    AbiMismatch {
        expected: [Option<u32>; 8],
        found: [u32; 8],
    },
    #[error("the CUDA kernels cannot run this network: {0}")]
    UnsupportedNetwork(String),
    #[error("weight `{name}` holds {value}, which FP16 cannot represent")]
    WeightOutOfRange { name: String, value: f32 },
    #[error("invalid CUDA backend config: {0}")]
    Config(String),
    #[error("CUDA graph capture for bucket {bucket} failed at {stage}: {source}")]
    Capture {
        bucket: usize,
        stage: &'static str,
        #[source]
        source: DriverError,
    },
    #[error("CUDA graph capture for bucket {bucket} produced no graph")]
    EmptyCapture { bucket: usize },
    #[error("CUDA failed on {at} at {stage}: {source}")]
    Batch {
        stage: &'static str,
        at: BatchAt,
        #[source]
        source: DriverError,
    },
    /// The kernel left a CTA's rows unwritten: its tag is not the batch's (a previous batch's
    /// outputs are in those rows), so they are an error, never data.
    #[error(
        "stale outputs on {at}: rows {first_row}.. were not written by this batch (CTA tag \
         {found}, expected {expected})"
    )]
    StaleOutputs {
        at: BatchAt,
        first_row: usize,
        found: u32,
        expected: u32,
    },
    #[error("CUDA failed at {stage}: {source}")]
    Driver {
        stage: &'static str,
        #[source]
        source: DriverError,
    },
}

/// Which batch failed: the GPU, the batch's rows and the bucket (graph) it ran in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchAt {
    pub device: usize,
    pub rows: usize,
    pub bucket: usize,
}

impl std::fmt::Display for BatchAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cuda:{}, batch of {} rows in bucket {}",
            self.device, self.rows, self.bucket
        )
    }
}

impl CudaError {
    /// True for the errors that mean "no usable GPU here" (as opposed to a GPU that failed):
    /// callers with `--device auto` fall back to the CPU on these.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            CudaError::NoKernelsCompiledIn
                | CudaError::DriverUnavailable { .. }
                | CudaError::NoSuchDevice { .. }
                | CudaError::UnsupportedDevice { .. }
        )
    }

    /// The error as the [`crate::net::Backend`] trait reports it.
    pub fn into_net(self, stage: &'static str) -> NetError {
        NetError::Device {
            backend: "cuda",
            stage,
            source: Box::new(self),
        }
    }
}

/// Tags a driver error with the stage it failed at (candle's `WrapErr::w()`).
pub trait Stage<T> {
    fn stage(self, stage: &'static str) -> Result<T, CudaError>;
    fn batch_stage(self, stage: &'static str, at: BatchAt) -> Result<T, CudaError>;
}

impl<T> Stage<T> for Result<T, DriverError> {
    fn stage(self, stage: &'static str) -> Result<T, CudaError> {
        self.map_err(|source| CudaError::Driver { stage, source })
    }

    fn batch_stage(self, stage: &'static str, at: BatchAt) -> Result<T, CudaError> {
        self.map_err(|source| CudaError::Batch { stage, at, source })
    }
}
