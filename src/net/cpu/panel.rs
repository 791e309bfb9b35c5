//! Dense layers as packed-panel products, written once over a SIMD vector type ([`Lanes`]) and
//! instantiated per instruction set (AVX-512, AVX2+FMA, NEON, and a portable one).
//!
//! The weights are packed once into panels of `WIDTH = LANES · VECS` output features; a
//! register-tiled microkernel computes up to `TILE_ROWS` rows × one panel with all
//! accumulators in registers, then adds the bias, the residual and the ReLU before its single
//! store.
//!
//! Batch invariance: every output is one multiply-add chain over the inputs in index order,
//! started from zero, with the bias and residual added after it. Nothing in that order depends
//! on how many rows the call has or which tile a row lands in, so a row gets the same bits
//! whatever batch it is evaluated in (tests/net.rs checks it for every kernel).

/// A vector of `LANES` f32 and the operations the microkernel needs. Implementations are
/// `#[inline(always)]` wrappers over intrinsics: they are inlined into a function compiled
/// with the instruction set's target features, never called on their own.
pub(super) trait Lanes: Copy {
    const LANES: usize;
    /// # Safety
    /// The CPU has the vector type's instruction set (as for every method).
    unsafe fn zero() -> Self;
    /// # Safety
    /// `p` is readable for `LANES` floats.
    unsafe fn load(p: *const f32) -> Self;
    /// # Safety
    /// `p` is writable for `LANES` floats.
    unsafe fn store(self, p: *mut f32);
    unsafe fn splat(x: f32) -> Self;
    /// `acc + a · b`, fused where the instruction set has FMA.
    unsafe fn mul_add(a: Self, b: Self, acc: Self) -> Self;
    unsafe fn add(a: Self, b: Self) -> Self;
    /// `max(x, 0)`, with NaN kept as NaN (so a broken net shows in its outputs instead of
    /// turning into zeros).
    unsafe fn relu(x: Self) -> Self;
    /// A hint to pull the cache line holding `p` into L2; may do nothing.
    #[inline(always)]
    unsafe fn prefetch_l2(_p: *const f32) {}
}

/// Packs `weight` (`[inputs, outputs]` row-major) as `panels[p][i][j] = W[i][p·width + j]`,
/// zero-padding the last panel, so the microkernel reads each panel front to back.
pub(super) fn pack(weight: &[f32], inputs: usize, outputs: usize, width: usize) -> Vec<f32> {
    let panels = outputs.div_ceil(width);
    let mut packed = vec![0.0; panels * inputs * width];
    for (p, panel) in packed.chunks_exact_mut(inputs * width).enumerate() {
        let cols = width.min(outputs - p * width);
        for (i, dst) in panel.chunks_exact_mut(width).enumerate() {
            dst[..cols].copy_from_slice(&weight[i * outputs + p * width..][..cols]);
        }
    }
    packed
}

/// One dense layer's call: `out[r] = act(x[r] · W + bias + residual[r])` for `r < rows`, over
/// all `bias.len()` (padded) output columns.
pub(super) struct DenseCall<'a> {
    pub rows: usize,
    pub inputs: usize,
    /// From [`pack`] with the kernel's panel width.
    pub packed: &'a [f32],
    /// Zero-padded to a multiple of the panel width.
    pub bias: &'a [f32],
    pub x: &'a [f32],
    pub x_stride: usize,
    pub out: &'a mut [f32],
    pub out_stride: usize,
    /// Has `out`'s row stride.
    pub residual: Option<&'a [f32]>,
    pub relu: bool,
}

/// Runs `call` with `VECS` vectors of `V` per panel and tiles of at most `TILE_ROWS` rows.
///
/// # Safety
/// The CPU has `V`'s instruction set. Inline this only into a function compiled with it.
///
/// Panics if a slice is too short for the rows and strides given.
#[inline(always)]
pub(super) unsafe fn dense<V: Lanes, const VECS: usize, const TILE_ROWS: usize>(
    call: DenseCall<'_>,
) {
    let DenseCall {
        rows,
        inputs,
        packed,
        bias,
        x,
        x_stride,
        out,
        out_stride,
        residual,
        relu,
    } = call;
    if rows == 0 {
        return;
    }
    let width = V::LANES * VECS;
    let columns = bias.len();
    let panel_len = inputs * width;
    // Checked arithmetic: a wrapped length would let a short slice pass and the kernel run
    // past it.
    let span = |stride: usize, width: usize| (rows - 1).checked_mul(stride)?.checked_add(width);
    assert!(inputs > 0, "a dense layer without inputs");
    assert!(
        columns.is_multiple_of(width) && columns.checked_mul(inputs) == Some(packed.len()),
        "packed weights and bias disagree"
    );
    assert!(
        span(x_stride, inputs).is_some_and(|n| x.len() >= n),
        "x too short"
    );
    let out_len = span(out_stride, columns).expect("out too long");
    assert!(
        out_stride >= columns && out.len() >= out_len,
        "out too short"
    );
    assert!(
        residual.is_none_or(|r| r.len() >= out_len),
        "residual too short"
    );

    // Split the rows into tiles of near-equal height (≤ TILE_ROWS): 11 and 12 run at the same
    // speed, a lone tile of 2 would not.
    let tiles = rows.div_ceil(TILE_ROWS);
    for (p, panel) in packed.chunks_exact(panel_len).enumerate() {
        let col = p * width;
        // The weights stream from L3 once per block. While the tiles of this panel run, each
        // pulls its share of the next panel into L2, so that panel's first tile need not wait.
        let next_panel = packed.get((p + 1) * panel_len..).unwrap_or(&[]);
        let mut row = 0;
        for t in 0..tiles {
            let height = rows / tiles + usize::from(t < rows % tiles);
            let prefetch = match next_panel {
                [] => &[][..],
                next => &next[t * inputs / tiles * width..(t + 1) * inputs / tiles * width],
            };
            // SAFETY: rows `row..row + height` lie below `rows`, and the asserts above bound
            // every access the microkernel makes for them: `inputs` floats of each x row,
            // `width` floats from `col` of each out and residual row; `panel` holds
            // `inputs * width` floats and `prefetch` is in bounds.
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
                    prefetch_steps: prefetch.len() / width,
                }
            };
            // SAFETY: the caller vouches for the instruction set; `args` is valid for
            // `height` (1..=TILE_ROWS) rows (above).
            unsafe { tile::<V, VECS, TILE_ROWS>(height, &args) };
            row += height;
        }
    }
}

/// Raw operands of one tile of rows × one panel.
struct TileArgs {
    inputs: usize,
    x: *const f32,
    x_stride: usize,
    /// `inputs` steps of one panel's width of packed weights.
    panel: *const f32,
    bias: *const f32,
    out: *mut f32,
    out_stride: usize,
    /// Added before the ReLU unless null; has `out_stride`.
    residual: *const f32,
    relu: bool,
    /// `prefetch_steps` steps of the panel width to pull into L2, one step per input.
    prefetch: *const f32,
    prefetch_steps: usize,
}

/// Dispatches a tile of `height` rows to its register-allocated instance. Heights above the
/// instruction set's `TILE_ROWS` are never asked for; the first arm says so to the compiler,
/// which then drops the instances above it.
///
/// # Safety
/// As [`microkernel`], for `R = height`.
#[inline(always)]
unsafe fn tile<V: Lanes, const VECS: usize, const TILE_ROWS: usize>(
    height: usize,
    args: &TileArgs,
) {
    match height {
        _ if height > TILE_ROWS => unreachable!("tile height {height} above {TILE_ROWS}"),
        1 => microkernel::<V, VECS, 1>(args),
        2 => microkernel::<V, VECS, 2>(args),
        3 => microkernel::<V, VECS, 3>(args),
        4 => microkernel::<V, VECS, 4>(args),
        5 => microkernel::<V, VECS, 5>(args),
        6 => microkernel::<V, VECS, 6>(args),
        7 => microkernel::<V, VECS, 7>(args),
        8 => microkernel::<V, VECS, 8>(args),
        9 => microkernel::<V, VECS, 9>(args),
        10 => microkernel::<V, VECS, 10>(args),
        11 => microkernel::<V, VECS, 11>(args),
        12 => microkernel::<V, VECS, 12>(args),
        _ => unreachable!("tile height {height} outside 1..=12"),
    }
}

/// The most rows a tile may have ([`tile`] has an instance for each height up to it).
pub(super) const MAX_TILE_ROWS: usize = 12;

/// `R` rows × one panel: accumulate over all inputs in registers, then add the bias (and
/// residual), apply the ReLU if asked, and store once.
///
/// # Safety
/// The CPU has `V`'s instruction set; `x` is readable for `R` rows of `inputs` floats at
/// `x_stride`, `panel` for `inputs` panel widths, `bias` for one, `out` (and a non-null
/// `residual`) for `R` rows of one panel width at `out_stride`, and `prefetch` for
/// `prefetch_steps` panel widths.
#[inline(always)]
unsafe fn microkernel<V: Lanes, const VECS: usize, const R: usize>(args: &TileArgs) {
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
    let width = V::LANES * VECS;
    let mut acc = [[V::zero(); VECS]; R];
    let mut w = [V::zero(); VECS];
    for i in 0..inputs {
        for (v, w) in w.iter_mut().enumerate() {
            *w = V::load(panel.add(i * width + v * V::LANES));
        }
        if i < prefetch_steps {
            // One hint per 64-byte line of the step.
            for line in (0..width).step_by(16) {
                V::prefetch_l2(prefetch.add(i * width + line));
            }
        }
        for (r, acc) in acc.iter_mut().enumerate() {
            let xi = V::splat(*x.add(r * x_stride + i));
            for (acc, &w) in acc.iter_mut().zip(&w) {
                *acc = V::mul_add(xi, w, *acc);
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        for (v, &acc) in acc.iter().enumerate() {
            let offset = r * out_stride + v * V::LANES;
            let mut y = V::add(acc, V::load(bias.add(v * V::LANES)));
            if !residual.is_null() {
                y = V::add(y, V::load(residual.add(offset)));
            }
            if relu {
                y = V::relu(y);
            }
            y.store(out.add(offset));
        }
    }
}

/// Plain Rust lanes for CPUs without a vector kernel here: multiply and add rounded
/// separately (no FMA), in the same order as every other kernel.
#[derive(Clone, Copy)]
pub(super) struct Portable([f32; 4]);

impl Lanes for Portable {
    const LANES: usize = 4;

    #[inline(always)]
    unsafe fn zero() -> Self {
        Portable([0.0; 4])
    }

    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        Portable(p.cast::<[f32; 4]>().read_unaligned())
    }

    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        p.cast::<[f32; 4]>().write_unaligned(self.0)
    }

    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        Portable([x; 4])
    }

    #[inline(always)]
    unsafe fn mul_add(a: Self, b: Self, acc: Self) -> Self {
        Portable(std::array::from_fn(|i| acc.0[i] + a.0[i] * b.0[i]))
    }

    #[inline(always)]
    unsafe fn add(a: Self, b: Self) -> Self {
        Portable(std::array::from_fn(|i| a.0[i] + b.0[i]))
    }

    #[inline(always)]
    unsafe fn relu(x: Self) -> Self {
        // `0 > y` is false for NaN, which stays.
        Portable(x.0.map(|y| if 0.0 > y { 0.0 } else { y }))
    }
}
