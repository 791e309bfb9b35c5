//! The x86-64 kernels: AVX-512F (zmm, 12 rows × 32 outputs in 24 accumulators) and AVX2+FMA
//! (ymm, 6 rows × 16 outputs in 12 accumulators, the 16-register file's classic tile). Each
//! instantiates [`panel::dense`] and the LayerNorm rows inside a function compiled with its
//! target features, reached only through a proof that the running CPU has them.
//!
//! Why not the `gemm` crate: it repacks the weights on every call, reaches about 105 GFLOP/s
//! per core on these shapes (M ≤ 128, K = 256/1024) against ~195 for the AVX-512 kernel on a
//! Sapphire-Rapids-class core (FMA peak ~238), and a row's result depends on the rows around
//! it (its blocking changes with the batch size).

use std::arch::x86_64::*;

use super::panel::{self, DenseCall, Lanes};
use crate::net::weights::LayerNorm;

/// Proof that the running CPU has AVX-512F; only [`Avx512::detect`] makes one.
#[derive(Clone, Copy, Debug)]
pub struct Avx512(());

impl Avx512 {
    /// Output features per packed panel: two zmm registers.
    pub const PANEL: usize = 32;
    /// 12 × 2 accumulators + 2 weight vectors + 1 broadcast fit the 32 zmm registers; 12
    /// measured faster than 6, 8 and 14.
    const TILE_ROWS: usize = 12;

    pub fn detect() -> Option<Avx512> {
        is_x86_feature_detected!("avx512f").then_some(Avx512(()))
    }

    pub fn dense(self, call: DenseCall<'_>) {
        // SAFETY: `self` proves AVX-512F.
        unsafe { dense_avx512(call) }
    }

    pub fn layer_norm(
        self,
        rows: usize,
        src: &[f32],
        dst: &mut [f32],
        stride: usize,
        norm: &LayerNorm,
    ) {
        // SAFETY: `self` proves AVX-512F; the function is otherwise safe code.
        unsafe { layer_norm_avx512(rows, src, dst, stride, norm) }
    }
}

#[target_feature(enable = "avx512f")]
unsafe fn dense_avx512(call: DenseCall<'_>) {
    const VECS: usize = Avx512::PANEL / 16;
    panel::dense::<Zmm, VECS, { Avx512::TILE_ROWS }>(call)
}

#[target_feature(enable = "avx512f")]
fn layer_norm_avx512(rows: usize, src: &[f32], dst: &mut [f32], stride: usize, norm: &LayerNorm) {
    super::kernel::layer_norm_rows(rows, src, dst, stride, norm);
}

/// Proof that the running CPU has AVX2 and FMA; only [`Avx2::detect`] makes one.
#[derive(Clone, Copy, Debug)]
pub struct Avx2(());

impl Avx2 {
    /// Output features per packed panel: two ymm registers.
    pub const PANEL: usize = 16;
    /// 6 × 2 accumulators + 2 weight vectors + 1 broadcast: 15 of the 16 ymm registers.
    const TILE_ROWS: usize = 6;

    pub fn detect() -> Option<Avx2> {
        (is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")).then_some(Avx2(()))
    }

    pub fn dense(self, call: DenseCall<'_>) {
        // SAFETY: `self` proves AVX2 and FMA.
        unsafe { dense_avx2(call) }
    }

    pub fn layer_norm(
        self,
        rows: usize,
        src: &[f32],
        dst: &mut [f32],
        stride: usize,
        norm: &LayerNorm,
    ) {
        // SAFETY: `self` proves AVX2 and FMA; the function is otherwise safe code.
        unsafe { layer_norm_avx2(rows, src, dst, stride, norm) }
    }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn dense_avx2(call: DenseCall<'_>) {
    const VECS: usize = Avx2::PANEL / 8;
    panel::dense::<Ymm, VECS, { Avx2::TILE_ROWS }>(call)
}

#[target_feature(enable = "avx2,fma")]
fn layer_norm_avx2(rows: usize, src: &[f32], dst: &mut [f32], stride: usize, norm: &LayerNorm) {
    super::kernel::layer_norm_rows(rows, src, dst, stride, norm);
}

const _: () =
    assert!(Avx512::TILE_ROWS <= panel::MAX_TILE_ROWS && Avx2::TILE_ROWS <= panel::MAX_TILE_ROWS);

/// 16 lanes in a zmm register (AVX-512F).
#[derive(Clone, Copy)]
struct Zmm(__m512);

impl Lanes for Zmm {
    const LANES: usize = 16;

    #[inline(always)]
    unsafe fn zero() -> Self {
        Zmm(_mm512_setzero_ps())
    }

    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        Zmm(_mm512_loadu_ps(p))
    }

    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        _mm512_storeu_ps(p, self.0)
    }

    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        Zmm(_mm512_set1_ps(x))
    }

    #[inline(always)]
    unsafe fn mul_add(a: Self, b: Self, acc: Self) -> Self {
        Zmm(_mm512_fmadd_ps(a.0, b.0, acc.0))
    }

    #[inline(always)]
    unsafe fn add(a: Self, b: Self) -> Self {
        Zmm(_mm512_add_ps(a.0, b.0))
    }

    #[inline(always)]
    unsafe fn relu(x: Self) -> Self {
        // MAXPS returns its second operand when either is NaN.
        Zmm(_mm512_max_ps(_mm512_setzero_ps(), x.0))
    }

    #[inline(always)]
    unsafe fn prefetch_l2(p: *const f32) {
        _mm_prefetch::<_MM_HINT_T1>(p.cast());
    }
}

/// 8 lanes in a ymm register (AVX2 + FMA).
#[derive(Clone, Copy)]
struct Ymm(__m256);

impl Lanes for Ymm {
    const LANES: usize = 8;

    #[inline(always)]
    unsafe fn zero() -> Self {
        Ymm(_mm256_setzero_ps())
    }

    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        Ymm(_mm256_loadu_ps(p))
    }

    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        _mm256_storeu_ps(p, self.0)
    }

    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        Ymm(_mm256_set1_ps(x))
    }

    #[inline(always)]
    unsafe fn mul_add(a: Self, b: Self, acc: Self) -> Self {
        Ymm(_mm256_fmadd_ps(a.0, b.0, acc.0))
    }

    #[inline(always)]
    unsafe fn add(a: Self, b: Self) -> Self {
        Ymm(_mm256_add_ps(a.0, b.0))
    }

    #[inline(always)]
    unsafe fn relu(x: Self) -> Self {
        // MAXPS returns its second operand when either is NaN.
        Ymm(_mm256_max_ps(_mm256_setzero_ps(), x.0))
    }

    #[inline(always)]
    unsafe fn prefetch_l2(p: *const f32) {
        _mm_prefetch::<_MM_HINT_T1>(p.cast());
    }
}
