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

/// A kernel's proof type: made only by `detect` when the running CPU has `$features`, it
/// unlocks the dense layers and LayerNorm rows compiled with them.
macro_rules! x86_kernel {
    ($(#[$doc:meta])* $name:ident, $features:literal [$($feature:tt),+], $lanes:ty,
     $(#[$panel_doc:meta])* PANEL = $panel:expr, $(#[$tile_doc:meta])* TILE_ROWS = $tile_rows:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug)]
        pub struct $name(());

        impl $name {
            $(#[$panel_doc])*
            pub const PANEL: usize = $panel;
            $(#[$tile_doc])*
            const TILE_ROWS: usize = $tile_rows;

            pub fn detect() -> Option<$name> {
                ($(is_x86_feature_detected!($feature))&&+).then_some($name(()))
            }

            pub fn dense(self, call: DenseCall<'_>) {
                #[target_feature(enable = $features)]
                unsafe fn dense(call: DenseCall<'_>) {
                    const VECS: usize = $name::PANEL / <$lanes>::LANES;
                    panel::dense::<$lanes, VECS, { $name::TILE_ROWS }>(call)
                }
                // SAFETY: `self` proves the features.
                unsafe { dense(call) }
            }

            pub fn layer_norm(
                self,
                rows: usize,
                src: &[f32],
                dst: &mut [f32],
                stride: usize,
                norm: &LayerNorm,
            ) {
                #[target_feature(enable = $features)]
                fn layer_norm(rows: usize, src: &[f32], dst: &mut [f32], stride: usize, norm: &LayerNorm) {
                    super::kernel::layer_norm_rows(rows, src, dst, stride, norm);
                }
                // SAFETY: `self` proves the features; the function is otherwise safe code.
                unsafe { layer_norm(rows, src, dst, stride, norm) }
            }
        }

        const _: () = assert!($name::TILE_ROWS <= panel::MAX_TILE_ROWS);
    };
}

x86_kernel!(
    /// Proof that the running CPU has AVX-512F.
    Avx512, "avx512f" ["avx512f"], Zmm,
    /// Output features per packed panel: two zmm registers.
    PANEL = 32,
    /// 12 × 2 accumulators + 2 weight vectors + 1 broadcast fit the 32 zmm registers; 12
    /// measured faster than 6, 8 and 14.
    TILE_ROWS = 12
);

x86_kernel!(
    /// Proof that the running CPU has AVX2 and FMA.
    Avx2, "avx2,fma" ["avx2", "fma"], Ymm,
    /// Output features per packed panel: two ymm registers.
    PANEL = 16,
    /// 6 × 2 accumulators + 2 weight vectors + 1 broadcast: 15 of the 16 ymm registers.
    TILE_ROWS = 6
);

/// A [`Lanes`] type over one x86 vector register type, from its intrinsics (AVX and
/// AVX-512 name the same operations alike).
macro_rules! x86_lanes {
    ($(#[$doc:meta])* $name:ident($vec:ty), $lanes:expr, $setzero:ident, $load:ident,
     $store:ident, $set1:ident, $fmadd:ident, $add:ident, $max:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy)]
        struct $name($vec);

        impl Lanes for $name {
            const LANES: usize = $lanes;

            #[inline(always)]
            unsafe fn zero() -> Self {
                $name($setzero())
            }

            #[inline(always)]
            unsafe fn load(p: *const f32) -> Self {
                $name($load(p))
            }

            #[inline(always)]
            unsafe fn store(self, p: *mut f32) {
                $store(p, self.0)
            }

            #[inline(always)]
            unsafe fn splat(x: f32) -> Self {
                $name($set1(x))
            }

            #[inline(always)]
            unsafe fn mul_add(a: Self, b: Self, acc: Self) -> Self {
                $name($fmadd(a.0, b.0, acc.0))
            }

            #[inline(always)]
            unsafe fn add(a: Self, b: Self) -> Self {
                $name($add(a.0, b.0))
            }

            #[inline(always)]
            unsafe fn relu(x: Self) -> Self {
                // MAXPS returns its second operand when either is NaN.
                $name($max($setzero(), x.0))
            }

            #[inline(always)]
            unsafe fn prefetch_l2(p: *const f32) {
                _mm_prefetch::<_MM_HINT_T1>(p.cast());
            }
        }
    };
}

x86_lanes!(
    /// 16 lanes in a zmm register (AVX-512F).
    Zmm(__m512), 16, _mm512_setzero_ps, _mm512_loadu_ps, _mm512_storeu_ps, _mm512_set1_ps,
    _mm512_fmadd_ps, _mm512_add_ps, _mm512_max_ps
);

x86_lanes!(
    /// 8 lanes in a ymm register (AVX2 + FMA).
    Ymm(__m256), 8, _mm256_setzero_ps, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_set1_ps,
    _mm256_fmadd_ps, _mm256_add_ps, _mm256_max_ps
);
