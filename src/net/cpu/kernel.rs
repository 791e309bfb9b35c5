//! Which instruction set the CPU backend computes with ([`CpuKernel`]), and the two operations
//! that differ per instruction set: dense layers ([`Dense`]) and LayerNorm rows.

use std::fmt;
use std::str::FromStr;

#[cfg(target_arch = "aarch64")]
use super::neon;
use super::panel::{self, DenseCall};
#[cfg(target_arch = "x86_64")]
use super::x86;
use super::PAD;
use crate::net::weights::{LayerNorm, Linear, LAYER_NORM_EPS};

/// Which matrix-product kernel a CPU backend runs. Every kernel gives a row the same bits
/// whatever other rows share its batch. The AVX-512 and AVX2 kernels run the same fused
/// operations in the same order and agree bit for bit (tested); the portable one rounds its
/// products separately and differs in the last bits (NEON is fused too, but its math library
/// is another).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuKernel {
    /// AVX-512F, 12 rows × 32 outputs per tile (x86-64).
    Avx512,
    /// AVX2 + FMA, 6 rows × 16 outputs per tile (x86-64).
    Avx2,
    /// NEON, 6 rows × 16 outputs per tile (aarch64).
    Neon,
    /// Plain Rust, for any other CPU.
    Portable,
}

impl CpuKernel {
    /// Every kernel, fastest first.
    pub const ALL: [CpuKernel; 4] = [
        CpuKernel::Avx512,
        CpuKernel::Avx2,
        CpuKernel::Neon,
        CpuKernel::Portable,
    ];

    /// The fastest kernel the running CPU supports.
    pub fn detect() -> CpuKernel {
        CpuKernel::supported()
            .next()
            .expect("the portable kernel runs everywhere")
    }

    /// The kernels the running CPU supports, fastest first.
    pub fn supported() -> impl Iterator<Item = CpuKernel> {
        CpuKernel::ALL.into_iter().filter(|k| k.is_supported())
    }

    pub fn is_supported(self) -> bool {
        self.engine().is_some()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CpuKernel::Avx512 => "avx512",
            CpuKernel::Avx2 => "avx2",
            CpuKernel::Neon => "neon",
            CpuKernel::Portable => "portable",
        }
    }

    pub(super) fn engine(self) -> Option<Engine> {
        match self {
            #[cfg(target_arch = "x86_64")]
            CpuKernel::Avx512 => x86::Avx512::detect().map(Engine::Avx512),
            #[cfg(target_arch = "x86_64")]
            CpuKernel::Avx2 => x86::Avx2::detect().map(Engine::Avx2),
            #[cfg(target_arch = "aarch64")]
            CpuKernel::Neon => Some(Engine::Neon),
            CpuKernel::Portable => Some(Engine::Portable),
            #[allow(unreachable_patterns)] // the kernels of other architectures
            _ => None,
        }
    }
}

impl fmt::Display for CpuKernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CpuKernel {
    type Err = String;

    fn from_str(s: &str) -> Result<CpuKernel, String> {
        CpuKernel::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = CpuKernel::ALL.iter().map(|k| k.as_str()).collect();
                format!("unknown CPU kernel {s:?} (one of {})", names.join(", "))
            })
    }
}

/// A selected kernel, with the proof of CPU support the x86 ones need.
#[derive(Clone, Copy, Debug)]
pub(super) enum Engine {
    #[cfg(target_arch = "x86_64")]
    Avx512(x86::Avx512),
    #[cfg(target_arch = "x86_64")]
    Avx2(x86::Avx2),
    #[cfg(target_arch = "aarch64")]
    Neon,
    Portable,
}

/// The portable kernel's panel: 2 vectors of 4 lanes, tiles of 6 rows: 12 accumulators, which
/// fit the 16 registers of x86-64's baseline SSE2 beside the weights and a broadcast.
const PORTABLE_VECS: usize = 2;
const PORTABLE_PANEL: usize = 4 * PORTABLE_VECS;
const PORTABLE_TILE_ROWS: usize = 6;

impl Engine {
    pub(super) fn kernel(self) -> CpuKernel {
        match self {
            #[cfg(target_arch = "x86_64")]
            Engine::Avx512(_) => CpuKernel::Avx512,
            #[cfg(target_arch = "x86_64")]
            Engine::Avx2(_) => CpuKernel::Avx2,
            #[cfg(target_arch = "aarch64")]
            Engine::Neon => CpuKernel::Neon,
            Engine::Portable => CpuKernel::Portable,
        }
    }

    /// Output features per packed weight panel.
    fn panel_width(self) -> usize {
        match self {
            #[cfg(target_arch = "x86_64")]
            Engine::Avx512(_) => x86::Avx512::PANEL,
            #[cfg(target_arch = "x86_64")]
            Engine::Avx2(_) => x86::Avx2::PANEL,
            #[cfg(target_arch = "aarch64")]
            Engine::Neon => neon::PANEL,
            Engine::Portable => PORTABLE_PANEL,
        }
    }

    fn dense(self, call: DenseCall<'_>) {
        match self {
            #[cfg(target_arch = "x86_64")]
            Engine::Avx512(cpu) => cpu.dense(call),
            #[cfg(target_arch = "x86_64")]
            Engine::Avx2(cpu) => cpu.dense(call),
            #[cfg(target_arch = "aarch64")]
            Engine::Neon => neon::dense(call),
            // SAFETY: the portable lanes are plain Rust.
            Engine::Portable => unsafe {
                panel::dense::<panel::Portable, PORTABLE_VECS, PORTABLE_TILE_ROWS>(call)
            },
        }
    }

    /// `dst[r] = LayerNorm(src[r])` over the first `gamma.len()` columns of each row.
    pub(super) fn layer_norm(
        self,
        rows: usize,
        src: &[f32],
        dst: &mut [f32],
        stride: usize,
        norm: &LayerNorm,
    ) {
        match self {
            #[cfg(target_arch = "x86_64")]
            Engine::Avx512(cpu) => cpu.layer_norm(rows, src, dst, stride, norm),
            #[cfg(target_arch = "x86_64")]
            Engine::Avx2(cpu) => cpu.layer_norm(rows, src, dst, stride, norm),
            #[cfg(target_arch = "aarch64")]
            Engine::Neon => layer_norm_rows(rows, src, dst, stride, norm),
            Engine::Portable => layer_norm_rows(rows, src, dst, stride, norm),
        }
    }
}

const _: () = assert!(
    PAD.is_multiple_of(PORTABLE_PANEL) && PORTABLE_TILE_ROWS <= panel::MAX_TILE_ROWS,
    "activation strides hold whole panels"
);

/// What a dense layer does to `x · W + bias` before storing it.
#[derive(Clone, Copy)]
pub(super) enum Epilogue<'a> {
    None,
    Relu,
    /// Adds a matrix with the output's row stride (the residual stream).
    Residual(&'a [f32]),
}

/// One linear layer packed for one kernel, which it keeps: packed panels only make sense to
/// the kernel of their width.
pub(super) struct Dense {
    engine: Engine,
    inputs: usize,
    /// Zero-padded to a multiple of [`PAD`].
    bias: Vec<f32>,
    /// Panels of the kernel's width ([`panel::pack`]).
    packed: Vec<f32>,
}

impl Dense {
    pub(super) fn new(linear: &Linear, engine: Engine) -> Dense {
        let mut bias = linear.bias.clone();
        bias.resize(linear.outputs.next_multiple_of(PAD), 0.0);
        let width = engine.panel_width();
        debug_assert!(PAD.is_multiple_of(width));
        let mut packed = panel::pack(&linear.weight, linear.inputs, linear.outputs, width);
        // Whole panels up to the padded width: the kernel writes every padded column.
        packed.resize(bias.len() * linear.inputs, 0.0);
        Dense {
            engine,
            inputs: linear.inputs,
            bias,
            packed,
        }
    }

    /// `out[r] = epilogue(x[r] · W + bias)` for `r < rows`; rows of `x` and `out` are
    /// `x_stride` and `out_stride` floats apart.
    pub(super) fn apply(
        &self,
        rows: usize,
        x: &[f32],
        x_stride: usize,
        out: &mut [f32],
        out_stride: usize,
        epilogue: Epilogue<'_>,
    ) {
        let (residual, relu) = match epilogue {
            Epilogue::None => (None, false),
            Epilogue::Relu => (None, true),
            Epilogue::Residual(r) => (Some(r), false),
        };
        self.engine.dense(DenseCall {
            rows,
            inputs: self.inputs,
            packed: &self.packed,
            bias: &self.bias,
            x,
            x_stride,
            out,
            out_stride,
            residual,
            relu,
        });
    }
}

/// LayerNorm of each row, inlined into each caller so it is vectorised for that caller's
/// target features.
#[inline(always)]
pub(super) fn layer_norm_rows(
    rows: usize,
    src: &[f32],
    dst: &mut [f32],
    stride: usize,
    norm: &LayerNorm,
) {
    let width = norm.gamma.len();
    for (s, d) in src.chunks(stride).zip(dst.chunks_mut(stride)).take(rows) {
        let s = &s[..width];
        let mean = lane_sum(s, |x| x) / width as f32;
        let var = lane_sum(s, |x| (x - mean) * (x - mean)) / width as f32;
        let inv_std = 1.0 / (var + LAYER_NORM_EPS).sqrt();
        for ((y, &x), (g, b)) in d[..width]
            .iter_mut()
            .zip(s)
            .zip(norm.gamma.iter().zip(&norm.beta))
        {
            *y = (x - mean) * inv_std * g + b;
        }
    }
}

/// Σ f(x) with 16 independent partial sums, which the compiler vectorises (a plain float
/// sum is one serial dependency chain).
#[inline(always)]
fn lane_sum(xs: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut lanes = [0.0f32; 16];
    let chunks = xs.chunks_exact(16);
    let tail: f32 = chunks.remainder().iter().map(|&x| f(x)).sum();
    for chunk in chunks {
        for (lane, &x) in lanes.iter_mut().zip(chunk) {
            *lane += f(x);
        }
    }
    lanes.iter().sum::<f32>() + tail
}
