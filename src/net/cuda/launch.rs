//! One typed wrapper per kernel of `kernels/*.cu`, in the same order, each restating the
//! kernel's shape contract.

use cudarc::driver::{
    sys, CudaFunction, CudaSlice, CudaStream, DriverError, LaunchConfig, PushKernelArg,
};

use super::kernels::Geometry;
use super::layout::{ROWS_PER_CTA, THREADS, WIDTH};
use crate::encode::compact_layout::ROW_BYTES;

/// Arguments of `blobnet_forward_f32` (outputs first, sizes last), as device addresses.
#[derive(Clone, Copy, Debug)]
pub struct ForwardArgs {
    /// f32 `[capacity, 52]`, written for rows `[0, fill)`.
    pub policy: sys::CUdeviceptr,
    /// f32 `[capacity]`, written for rows `[0, fill)`.
    pub value: sys::CUdeviceptr,
    /// u32 `[capacity / 32]`: CTA `b` writes the batch tag (`fill[1]`) once its rows are done.
    pub tags: sys::CUdeviceptr,
    /// f32 `[capacity, 256]`, read for rows `[0, fill)`.
    pub inputs: sys::CUdeviceptr,
    /// u64 `[capacity]`, read for rows `[0, fill)`.
    pub masks: sys::CUdeviceptr,
    /// u32 `[2]`: the batch's row count and tag, read on the device when the kernel runs.
    pub fill: sys::CUdeviceptr,
    /// f16 weight stream, `pack::tile_count(layers, ffn)` tiles.
    pub weights: sys::CUdeviceptr,
    /// f32 parameter block, `pack::param_count(layers, ffn)` floats.
    pub params: sys::CUdeviceptr,
    pub layers: i32,
    pub ffn: i32,
}

/// Enqueues `blobnet_forward_f32` on `stream` for `rows` rows (rounded up to whole CTAs of
/// [`ROWS_PER_CTA`]); CTAs past the device-side fill count exit at once.
///
/// # Safety
/// SAFETY contract of the kernel: every buffer of `args` is a live device allocation of the
/// documented size for a capacity of at least `rows.next_multiple_of(ROWS_PER_CTA)` rows,
/// `*fill <= rows` when the kernel runs, `weights`/`params` were packed for `layers`/`ffn`,
/// and `f` is `blobnet_forward_f32` with its dynamic shared memory opted in to
/// `geometry.smem_bytes` (read from its fatbin).
pub unsafe fn forward_f32(
    stream: &CudaStream,
    f: &CudaFunction,
    geometry: Geometry,
    args: &ForwardArgs,
    rows: usize,
) -> Result<(), DriverError> {
    let cfg = LaunchConfig {
        grid_dim: (rows.div_ceil(ROWS_PER_CTA) as u32, 1, 1),
        block_dim: (THREADS as u32, 1, 1),
        shared_mem_bytes: geometry.smem_bytes,
    };
    let mut launch = stream.launch_builder(f);
    launch
        .arg(&args.policy)
        .arg(&args.value)
        .arg(&args.tags)
        .arg(&args.inputs)
        .arg(&args.masks)
        .arg(&args.fill)
        .arg(&args.weights)
        .arg(&args.params)
        .arg(&args.layers)
        .arg(&args.ffn);
    launch.launch(cfg).map(|_| ())
}

/// Enqueues `expand_compact_rows` on `stream`: `out[r * 256 + c]` = column `c` of compact row
/// `r`, for the `rows.len() / ROW_BYTES` rows of `rows`.
///
/// # Safety
/// SAFETY contract of the kernel: `out` holds at least 256 floats per row of `rows`, `rows`
/// holds whole rows made by `encode::compact::compact`, and `f` is `expand_compact_rows`.
pub unsafe fn expand_compact_rows(
    stream: &CudaStream,
    f: &CudaFunction,
    out: &mut CudaSlice<f32>,
    rows: &CudaSlice<u8>,
) -> Result<(), DriverError> {
    let n_rows = (rows.len() / ROW_BYTES) as i32;
    assert!(
        out.len() >= n_rows as usize * WIDTH,
        "out holds every expanded row"
    );
    let cfg = LaunchConfig {
        grid_dim: ((n_rows as usize * WIDTH).div_ceil(THREADS) as u32, 1, 1),
        block_dim: (THREADS as u32, 1, 1),
        shared_mem_bytes: 0,
    };
    let mut launch = stream.launch_builder(f);
    launch.arg(out).arg(rows).arg(&n_rows);
    launch.launch(cfg).map(|_| ())
}
