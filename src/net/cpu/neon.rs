//! The aarch64 kernel: NEON (baseline on every aarch64 CPU), 6 rows × 16 outputs in 24 of the
//! 32 q registers, with 4 weight vectors and a broadcast beside them.

use std::arch::aarch64::*;

use super::panel::{self, DenseCall, Lanes};

/// Output features per packed panel: four q registers.
pub const PANEL: usize = 16;
const TILE_ROWS: usize = 6;
const _: () = assert!(TILE_ROWS <= panel::MAX_TILE_ROWS);

pub fn dense(call: DenseCall<'_>) {
    // SAFETY: NEON is part of the aarch64 baseline.
    unsafe { panel::dense::<Q, { PANEL / 4 }, TILE_ROWS>(call) }
}

/// 4 lanes in a q register.
#[derive(Clone, Copy)]
struct Q(float32x4_t);

impl Lanes for Q {
    const LANES: usize = 4;

    #[inline(always)]
    unsafe fn zero() -> Self {
        Q(vdupq_n_f32(0.0))
    }

    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        Q(vld1q_f32(p))
    }

    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        vst1q_f32(p, self.0)
    }

    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        Q(vdupq_n_f32(x))
    }

    #[inline(always)]
    unsafe fn mul_add(a: Self, b: Self, acc: Self) -> Self {
        Q(vfmaq_f32(acc.0, a.0, b.0))
    }

    #[inline(always)]
    unsafe fn add(a: Self, b: Self) -> Self {
        Q(vaddq_f32(a.0, b.0))
    }

    #[inline(always)]
    unsafe fn relu(x: Self) -> Self {
        // FMAX returns NaN when either operand is NaN.
        Q(vmaxq_f32(x.0, vdupq_n_f32(0.0)))
    }
}
