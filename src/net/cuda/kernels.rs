//! The kernel table: every `extern "C"` kernel of `kernels/*.cu` ([`Kernel`]), the geometry
//! the kernels were compiled with (mirrors `kernels/common.cuh`; checked against the fatbin's
//! `blobnet_abi` block at load) and the embedded fatbin itself.

/// The kernels of the fatbin. All are resolved when the backend starts, so a missing symbol
/// fails there ([`super::CudaError::MissingKernel`]), never in the middle of a capture.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// `blobnet_forward_f32`: the whole network on FP32 input rows, one CTA per 32 rows.
    ForwardF32,
}

impl Kernel {
    pub const ALL: [Kernel; 1] = [Kernel::ForwardF32];

    pub fn symbol(self) -> &'static str {
        match self {
            Kernel::ForwardF32 => "blobnet_forward_f32",
        }
    }
}

/// Batch rows one CTA owns; buckets are multiples of it.
pub const ROWS_PER_CTA: usize = 32;
/// Threads per CTA.
pub const THREADS: u32 = 256;
/// Dynamic shared memory per CTA (opt-in above 48 KiB).
pub const SMEM_BYTES: u32 = 167_424;
/// K rows of one weight-stream tile.
pub const TILE_K: usize = 32;
/// Model width: the N of every tile and the K of every GEMM.
pub const WIDTH: usize = 256;
/// FP16 values per weight-stream tile (`TILE_K x WIDTH`).
pub const TILE_ELEMS: usize = TILE_K * WIDTH;
/// Tiles per 256 x 256 matrix product.
pub const TILES_PER_GEMM: usize = WIDTH / TILE_K;
const STAGES: u32 = 4;
/// Floats in the heads' part of the parameter block.
pub const HEAD_PARAMS: usize = 640;
/// Layout version of the weight stream, parameter block and kernel arguments.
const ABI_VERSION: u32 = 1;

/// What `blobnet_abi` in the fatbin must hold for this build's packing to be valid.
pub const EXPECTED_ABI: [u32; 8] = [
    ABI_VERSION,
    ROWS_PER_CTA as u32,
    THREADS,
    SMEM_BYTES,
    TILE_K as u32,
    WIDTH as u32,
    STAGES,
    HEAD_PARAMS as u32,
];
/// Name of the ABI block in the fatbin.
pub const ABI_SYMBOL: &str = "blobnet_abi";

#[cfg(engine_kernels)]
mod embedded {
    include!(concat!(env!("OUT_DIR"), "/kernels.rs"));
}

/// The fatbin nvcc built from `kernels/*.cu`, or `None` in a CPU-only build.
pub fn fatbin() -> Option<&'static [u8]> {
    #[cfg(engine_kernels)]
    {
        Some(embedded::BLOBNET_FATBIN)
    }
    #[cfg(not(engine_kernels))]
    {
        None
    }
}
