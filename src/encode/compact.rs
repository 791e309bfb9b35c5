//! Compact input rows: an [`Encoding`]'s 256 floats (1,024 bytes) as
//! [`ROW_BYTES`](super::compact_layout::ROW_BYTES) bytes of bitsets, nibbles and small
//! integer ratios, which expand back to the same f32 bits, on the host ([`expand`]) or on the
//! GPU (`kernels/compact.cu`, same layout, same arithmetic). Byte layout:
//! [`super::compact_layout`].
//!
//! Opt-in: nothing sends compact rows to the GPU yet (issue 17, item 2).

use thiserror::Error;

use super::compact_layout::{Packing, Section, ROW_BYTES, SECTIONS};
use super::Encoding;
use super::INPUT_DIM;

const _: () = {
    let last = SECTIONS[SECTIONS.len() - 1];
    assert!(
        last.first + last.dims == INPUT_DIM,
        "the sections end at the last column"
    );
    assert!(last.offset + last.packing.bytes(last.dims) <= ROW_BYTES);
};

/// One encoding in the compact layout. Only [`compact`] makes one, so every ratio's
/// denominator is non-zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, align(16))]
pub struct CompactRow([u8; ROW_BYTES]);

impl CompactRow {
    pub fn as_bytes(&self) -> &[u8; ROW_BYTES] {
        &self.0
    }
}

/// A column whose value the compact layout cannot hold bit for bit.
#[derive(Clone, Copy, Debug, Error, PartialEq)]
#[error("column {column} holds {value:e} (bits {bits:#010x}), not {expected}", bits = value.to_bits())]
pub struct CompactError {
    pub column: usize,
    pub value: f32,
    /// What the column's packing holds.
    pub expected: &'static str,
}

/// The compact row of `encoding`, or the first column that does not fit its packing.
pub fn compact(encoding: &Encoding) -> Result<CompactRow, CompactError> {
    let mut row = [0u8; ROW_BYTES];
    for s in &SECTIONS {
        for i in 0..s.dims {
            let value = encoding[s.first + i];
            let refuse = |expected| CompactError {
                column: s.first + i,
                value,
                expected,
            };
            match s.packing {
                Packing::Bits => {
                    let bit = exact_integer(value, 1).ok_or(refuse("0 or 1"))?;
                    row[s.offset + i / 8] |= bit << (i % 8);
                }
                Packing::Nibbles => {
                    let nibble = exact_integer(value, 15).ok_or(refuse("an integer 0..=15"))?;
                    row[s.offset + i / 2] |= nibble << (4 * (i % 2));
                }
                Packing::Ratios => {
                    let (k, d) = ratio_of(value)
                        .ok_or(refuse("k/d with k in -128..=127 and d in 1..=255"))?;
                    row[s.offset + 2 * i] = k as u8;
                    row[s.offset + 2 * i + 1] = d;
                }
                Packing::Zero => {
                    exact_integer(value, 0)
                        .ok_or(refuse("+0 (a column the encoder never fills)"))?;
                }
            }
        }
    }
    Ok(CompactRow(row))
}

/// The encoding `row` was compacted from, bit for bit.
pub fn expand(row: &CompactRow) -> Encoding {
    let mut out = [0.0; INPUT_DIM];
    for s in &SECTIONS {
        for i in 0..s.dims {
            out[s.first + i] = column(&row.0, s, i);
        }
    }
    out
}

/// Column `s.first + i` of `row`; `kernels/compact.cu` computes the same.
fn column(row: &[u8; ROW_BYTES], s: &Section, i: usize) -> f32 {
    match s.packing {
        Packing::Bits => f32::from(row[s.offset + i / 8] >> (i % 8) & 1),
        Packing::Nibbles => f32::from(row[s.offset + i / 2] >> (4 * (i % 2)) & 15),
        Packing::Ratios => quotient(row[s.offset + 2 * i] as i8, row[s.offset + 2 * i + 1]),
        Packing::Zero => 0.0,
    }
}

/// `k / d` as the kernel computes it: one IEEE f32 division (`__fdiv_rn`).
fn quotient(k: i8, d: u8) -> f32 {
    f32::from(k) / f32::from(d)
}

/// `value` as an integer `0..=max`, if it is exactly that (+0.0, not −0.0).
fn exact_integer(value: f32, max: u8) -> Option<u8> {
    (0..=max).find(|&n| f32::from(n).to_bits() == value.to_bits())
}

/// The `(k, d)` with the smallest `d` whose [`quotient`] has `value`'s bits.
fn ratio_of(value: f32) -> Option<(i8, u8)> {
    (1..=u8::MAX).find_map(|d| {
        let k = (f64::from(value) * f64::from(d)).round();
        let k = i8::try_from(k as i64).ok()?;
        (quotient(k, d).to_bits() == value.to_bits()).then_some((k, d))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_tile_the_row_without_overlap() {
        let mut dim = 0;
        let mut byte = 0;
        for s in &SECTIONS {
            assert_eq!(s.first, dim, "{s:?} starts where the last one ended");
            assert_eq!(s.offset, byte, "{s:?} packs right after the last one");
            dim += s.dims;
            byte += s.packing.bytes(s.dims);
        }
        assert_eq!(dim, INPUT_DIM);
        assert!(byte <= ROW_BYTES && ROW_BYTES <= 160 && ROW_BYTES.is_multiple_of(16));
    }

    #[test]
    fn every_ratio_value_round_trips() {
        for k in i8::MIN..=i8::MAX {
            for d in 1..=u8::MAX {
                let x = quotient(k, d);
                let (k2, d2) = ratio_of(x).expect("a quotient is a ratio");
                assert_eq!(quotient(k2, d2).to_bits(), x.to_bits(), "{k}/{d}");
            }
        }
    }
}
