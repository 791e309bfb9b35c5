//! AVX-512 dense layers for the CPU backend: weights packed once into panels of [`PANEL`]
//! output features, and a register-tiled microkernel (up to 12 rows × 32 outputs in 24 zmm
//! accumulators) that adds the bias, the residual and the ReLU before its single store.
//!
//! Why not the `gemm` crate here: it repacks the weights on every call and reaches about
//! 105 GFLOP/s per core on these shapes (M ≤ 128, K = 256/1024) against ~195 for this
//! kernel on the same Sapphire-Rapids-class core (FMA peak ~238).

use std::arch::x86_64::*;

use crate::net::weights::{LayerNorm, Linear};

/// Output features per packed weight panel: two zmm registers. Activation strides are padded
/// to it, so the kernel always writes whole panels.
const PANEL: usize = super::PAD;
const _: () = assert!(
    PANEL == 32,
    "the microkernel holds a panel in two zmm registers"
);
/// Rows per microkernel call: 12 × 2 accumulators + 2 weight vectors + 1 broadcast fit the
/// 32 zmm registers; 12 measured faster than 6, 8 and 14.
const TILE_ROWS: usize = 12;

/// Proof that the running CPU has AVX-512F; only [`Avx512::detect`] makes one.
#[derive(Clone, Copy, Debug)]
pub struct Avx512(());

impl Avx512 {
    pub fn detect() -> Option<Avx512> {
        is_x86_feature_detected!("avx512f").then_some(Avx512(()))
    }
}

/// Packs `linear.weight` (`[inputs, outputs]`) as `panels[p][i][j] = W[i][p·PANEL + j]`,
/// zero-padding the last panel, so the microkernel reads each panel front to back.
pub fn pack(linear: &Linear) -> Vec<f32> {
    let (inputs, outputs) = (linear.inputs, linear.outputs);
    let panels = outputs.div_ceil(PANEL);
    let mut packed = vec![0.0; panels * inputs * PANEL];
    for (p, panel) in packed.chunks_exact_mut(inputs * PANEL).enumerate() {
        let cols = PANEL.min(outputs - p * PANEL);
        for (i, dst) in panel.chunks_exact_mut(PANEL).enumerate() {
            let src = &linear.weight[i * outputs + p * PANEL..][..cols];
            dst[..cols].copy_from_slice(src);
        }
    }
    packed
}

/// `out[r] = act(x[r] · W + bias + residual[r])` for `r < rows`, over all `bias.len()`
/// (padded) output columns. `packed` comes from [`pack`], `bias` is zero-padded to a
/// multiple of [`PANEL`], and `residual` (if any) has `out`'s row stride.
///
/// Panics if a slice is too short for the rows and strides given.
#[allow(clippy::too_many_arguments)]
pub fn dense(
    _cpu: Avx512,
    rows: usize,
    inputs: usize,
    packed: &[f32],
    bias: &[f32],
    x: &[f32],
    x_stride: usize,
    out: &mut [f32],
    out_stride: usize,
    residual: Option<&[f32]>,
    relu: bool,
) {
    if rows == 0 {
        return;
    }
    let width = bias.len();
    let panel_len = inputs * PANEL;
    assert!(
        width.is_multiple_of(PANEL) && packed.len() == width * inputs,
        "packed weights and bias disagree"
    );
    assert!(x.len() >= (rows - 1) * x_stride + inputs, "x too short");
    let out_len = (rows - 1) * out_stride + width;
    assert!(out_stride >= width && out.len() >= out_len, "out too short");
    assert!(
        residual.is_none_or(|r| r.len() >= out_len),
        "residual too short"
    );

    // Split the rows into tiles of near-equal height (≤ TILE_ROWS): 11 and 12 run at the same
    // speed, a lone tile of 2 would not.
    let tiles = rows.div_ceil(TILE_ROWS);
    for (p, panel) in packed.chunks_exact(panel_len).enumerate() {
        let col = p * PANEL;
        // The weights stream from L3 once per block. While the tiles of this panel run, each
        // pulls its share of the next panel into L2, so that panel's first tile need not wait.
        let next_panel = packed.get((p + 1) * panel_len..).unwrap_or(&[]);
        let mut row = 0;
        for t in 0..tiles {
            let height = rows / tiles + usize::from(t < rows % tiles);
            let prefetch = match next_panel {
                [] => &[][..],
                next => &next[t * inputs / tiles * PANEL..(t + 1) * inputs / tiles * PANEL],
            };
            // SAFETY: rows `row..row + height` lie below `rows`, and the asserts above bound
            // every access the microkernel makes for them: `inputs` floats of each x row,
            // `PANEL` floats from `col` of each out and residual row; `panel` holds
            // `inputs * PANEL` floats and `prefetch` is in bounds.
            let args = unsafe {
                TileArgs {
                    inputs,
                    x: x.as_ptr().add(row * x_stride),
                    x_stride,
                    panel: panel.as_ptr(),
                    bias: bias.as_ptr().add(col),
                    out: out.as_mut_ptr().add(row * out_stride + col),
                    out_stride,
                    residual: residual
                        .map_or(std::ptr::null(), |r| r.as_ptr().add(row * out_stride + col)),
                    relu,
                    prefetch: prefetch.as_ptr(),
                    prefetch_steps: prefetch.len() / PANEL,
                }
            };
            // SAFETY: `_cpu` proves AVX-512F; `args` is valid for `height` rows (above).
            unsafe { tile(height, &args) };
            row += height;
        }
    }
}

/// [`super::layer_norm`] compiled with AVX-512F, so its row loops run on zmm registers.
pub fn layer_norm(
    _cpu: Avx512,
    rows: usize,
    src: &[f32],
    dst: &mut [f32],
    stride: usize,
    norm: &LayerNorm,
) {
    // SAFETY: `_cpu` proves AVX-512F; the function is otherwise safe code.
    unsafe { layer_norm_avx512(rows, src, dst, stride, norm) }
}

#[target_feature(enable = "avx512f")]
fn layer_norm_avx512(rows: usize, src: &[f32], dst: &mut [f32], stride: usize, norm: &LayerNorm) {
    super::layer_norm_rows(rows, src, dst, stride, norm);
}

/// Raw operands of one tile of rows × [`PANEL`] columns.
struct TileArgs {
    inputs: usize,
    x: *const f32,
    x_stride: usize,
    /// `inputs` steps of `PANEL` packed weights.
    panel: *const f32,
    bias: *const f32,
    out: *mut f32,
    out_stride: usize,
    /// Added before the ReLU unless null; has `out_stride`.
    residual: *const f32,
    relu: bool,
    /// `prefetch_steps` steps of `PANEL` floats to pull into L2, one step per input.
    prefetch: *const f32,
    prefetch_steps: usize,
}

/// Dispatches a tile of `height` rows (1..=TILE_ROWS) to its register-allocated instance.
///
/// # Safety
/// As [`microkernel`], for `R = height`.
#[inline(always)]
unsafe fn tile(height: usize, args: &TileArgs) {
    let kernel = match height {
        1 => microkernel::<1>,
        2 => microkernel::<2>,
        3 => microkernel::<3>,
        4 => microkernel::<4>,
        5 => microkernel::<5>,
        6 => microkernel::<6>,
        7 => microkernel::<7>,
        8 => microkernel::<8>,
        9 => microkernel::<9>,
        10 => microkernel::<10>,
        11 => microkernel::<11>,
        12 => microkernel::<12>,
        _ => unreachable!("tile height {height} outside 1..={TILE_ROWS}"),
    };
    kernel(args);
}

/// `R` rows × [`PANEL`] columns: accumulate over all inputs in registers, then add the bias
/// (and residual), apply the ReLU if asked, and store once.
///
/// # Safety
/// AVX-512F must be available; `x` must be readable for `R` rows of `inputs` floats at
/// `x_stride`, `panel` for `inputs * PANEL` floats, `bias` for `PANEL` floats, `out` (and a
/// non-null `residual`) for `R` rows of `PANEL` floats at `out_stride`, and `prefetch` for
/// `prefetch_steps * PANEL` floats.
#[target_feature(enable = "avx512f")]
unsafe fn microkernel<const R: usize>(args: &TileArgs) {
    let &TileArgs {
        inputs,
        x,
        x_stride,
        panel,
        bias,
        out,
        out_stride,
        residual,
        relu,
        prefetch,
        prefetch_steps,
    } = args;
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    for i in 0..inputs {
        let w0 = _mm512_loadu_ps(panel.add(i * PANEL));
        let w1 = _mm512_loadu_ps(panel.add(i * PANEL + 16));
        if i < prefetch_steps {
            _mm_prefetch::<_MM_HINT_T1>(prefetch.add(i * PANEL).cast());
            _mm_prefetch::<_MM_HINT_T1>(prefetch.add(i * PANEL + 16).cast());
        }
        for (r, acc) in acc.iter_mut().enumerate() {
            let xi = _mm512_set1_ps(*x.add(r * x_stride + i));
            acc[0] = _mm512_fmadd_ps(xi, w0, acc[0]);
            acc[1] = _mm512_fmadd_ps(xi, w1, acc[1]);
        }
    }
    let bias = [_mm512_loadu_ps(bias), _mm512_loadu_ps(bias.add(16))];
    for (r, acc) in acc.iter().enumerate() {
        for half in 0..2 {
            let offset = r * out_stride + 16 * half;
            let mut y = _mm512_add_ps(acc[half], bias[half]);
            if !residual.is_null() {
                y = _mm512_add_ps(y, _mm512_loadu_ps(residual.add(offset)));
            }
            if relu {
                y = _mm512_max_ps(y, _mm512_setzero_ps());
            }
            _mm512_storeu_ps(out.add(offset), y);
        }
    }
}
