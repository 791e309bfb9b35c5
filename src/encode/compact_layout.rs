//! The byte layout of a compact input row (see [`super::compact`]): which of the 256 encoder
//! columns live where, and how they are packed. The single source of truth for the layout:
//! `build.rs` includes this file and writes it out as `compact_layout.cuh` for the CUDA
//! expansion (`kernels/compact.cu`), so Rust and the kernel cannot disagree.
//!
//! | bytes   | dims    | packing | feature |
//! |---------|---------|---------|---------|
//! | 0..7    | 0..52   | bits    | my hand |
//! | 7..33   | 52..104 | nibbles | current trick, play order 0..=15 |
//! | 33..40  | 104..156| bits    | cards played this round |
//! | 40..84  | 156..178| ratios  | bids, tricks, my bid/tricks, cd/13, progress, seat, P/8 |
//! | 84..85  | 178..186| bits    | trump one-hot, dealer bidding, phase one-hot |
//! | 85..117 | 186..202| ratios  | hand/played fractions, suit counts, ace/king, trump rank, hook |
//! | —       | 202..256| zero    | GameContext (never filled) |
//! | 117..128| —       | padding | zero, so rows stay 16-byte aligned |
//!
//! Bits: dim `first + i` is bit `i % 8` of byte `offset + i / 8` (1.0 or +0.0). Nibbles: dim
//! `first + i` is the low (even `i`) or high (odd `i`) half of byte `offset + i / 2`, as an
//! integer float. Ratios: dim `first + i` is `k / d`, an f32 division (IEEE, round to nearest)
//! of the signed byte `k` at `offset + 2i` by the unsigned byte `d` at `offset + 2i + 1`;
//! every bid, trick, count and fraction the encoder writes is such a quotient of small
//! integers, which FP16 could not hold exactly (1/13 is not a binary fraction).

/// Bytes of one compact row (≤ 160, the budget; 1,024 as floats).
pub const ROW_BYTES: usize = 128;

/// How a section's columns are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packing {
    /// One bit per column: 0.0 or 1.0.
    Bits,
    /// Four bits per column: an integer 0..=15.
    Nibbles,
    /// Two bytes per column: `k / d`, k signed, d unsigned and non-zero.
    Ratios,
    /// No bytes: the column is always +0.0.
    Zero,
}

impl Packing {
    /// Bytes `dims` columns of this packing take.
    pub const fn bytes(self, dims: usize) -> usize {
        match self {
            Packing::Bits => dims.div_ceil(8),
            Packing::Nibbles => dims.div_ceil(2),
            Packing::Ratios => 2 * dims,
            Packing::Zero => 0,
        }
    }

    /// Its name in `compact_layout.cuh` (`compact_bits`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            Packing::Bits => "bits",
            Packing::Nibbles => "nibbles",
            Packing::Ratios => "ratios",
            Packing::Zero => "zero",
        }
    }
}

/// Dims `first..first + dims`, packed as `packing` from byte `offset` on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Section {
    pub packing: Packing,
    pub first: usize,
    pub dims: usize,
    pub offset: usize,
}

const fn section(packing: Packing, first: usize, dims: usize, offset: usize) -> Section {
    Section {
        packing,
        first,
        dims,
        offset,
    }
}

/// Every column of the row, in dim order (the table above).
pub const SECTIONS: [Section; 7] = [
    section(Packing::Bits, 0, 52, 0),
    section(Packing::Nibbles, 52, 52, 7),
    section(Packing::Bits, 104, 52, 33),
    section(Packing::Ratios, 156, 22, 40),
    section(Packing::Bits, 178, 8, 84),
    section(Packing::Ratios, 186, 16, 85),
    section(Packing::Zero, 202, 54, 117),
];
