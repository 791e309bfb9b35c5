//! The safetensors container, read and written for the weights ([`crate::net::weights`]) and
//! the training shards ([`crate::selfplay`]): one strict reader ([`SafetensorsFile::parse`];
//! [`SafetensorsHeader::read`] makes its checks with the data left on disk) and one
//! deterministic writer ([`serialize`]).
//!
//! The container is an 8-byte little-endian header length, a JSON header of that many bytes
//! (an object: tensor name → `{"dtype", "shape", "data_offsets"}`, plus an optional
//! `__metadata__` object of strings), then the data the offsets point into.
//!
//! The reader is stricter than the `safetensors` crate, because every file we read came from
//! a writer we know: duplicate JSON keys (which serde_json resolves silently to the last one),
//! unknown fields in a tensor entry, holes between tensors, trailing bytes and non-string
//! metadata are all errors. Every error names the file and, where one is at fault, the tensor
//! or key. Nothing in the reader panics on any input: the fuzz targets in `fuzz/` and
//! `tests/fuzz_smoke.rs` check that.
//!
//! The writer gives the same bytes for the same tensors and metadata: `__metadata__` first
//! with its keys sorted, then the tensors' entries sorted by name, the data in the order the
//! caller lists the tensors. The `safetensors` crate is no longer a dependency of the engine;
//! the tests keep it as an independent reader and writer to check this module against.

mod error;
mod json;
mod read;
mod write;

pub use error::SafetensorsError;
pub use read::{HeaderReadError, OwnedTensor, RawTensor, SafetensorsFile, SafetensorsHeader};
pub use write::{f32_bytes, serialize, FieldOrder, TensorBytes};

use std::fmt;

/// Largest header accepted, as in the `safetensors` crate (a header is a few kB in practice).
pub const MAX_HEADER_LEN: u64 = 100_000_000;

/// Key of the optional metadata object in the header.
pub const METADATA_KEY: &str = "__metadata__";

/// Element type of a tensor, as spelt in the header. The sub-byte float types of recent
/// safetensors versions (F4, F6_*) are not accepted: nothing in this crate reads them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    Bool,
    U8,
    I8,
    F8E5M2,
    F8E4M3,
    F8E8M0,
    I16,
    U16,
    F16,
    BF16,
    I32,
    U32,
    F32,
    F64,
    I64,
    U64,
    C64,
}

impl Dtype {
    const ALL: [Dtype; 17] = [
        Dtype::Bool,
        Dtype::U8,
        Dtype::I8,
        Dtype::F8E5M2,
        Dtype::F8E4M3,
        Dtype::F8E8M0,
        Dtype::I16,
        Dtype::U16,
        Dtype::F16,
        Dtype::BF16,
        Dtype::I32,
        Dtype::U32,
        Dtype::F32,
        Dtype::F64,
        Dtype::I64,
        Dtype::U64,
        Dtype::C64,
    ];

    /// The name in a safetensors header (`"F32"`, `"BF16"`, `"F8_E4M3"`, …).
    pub fn name(self) -> &'static str {
        match self {
            Dtype::Bool => "BOOL",
            Dtype::U8 => "U8",
            Dtype::I8 => "I8",
            Dtype::F8E5M2 => "F8_E5M2",
            Dtype::F8E4M3 => "F8_E4M3",
            Dtype::F8E8M0 => "F8_E8M0",
            Dtype::I16 => "I16",
            Dtype::U16 => "U16",
            Dtype::F16 => "F16",
            Dtype::BF16 => "BF16",
            Dtype::I32 => "I32",
            Dtype::U32 => "U32",
            Dtype::F32 => "F32",
            Dtype::F64 => "F64",
            Dtype::I64 => "I64",
            Dtype::U64 => "U64",
            Dtype::C64 => "C64",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::Bool | Dtype::U8 | Dtype::I8 => 1,
            Dtype::F8E5M2 | Dtype::F8E4M3 | Dtype::F8E8M0 => 1,
            Dtype::I16 | Dtype::U16 | Dtype::F16 | Dtype::BF16 => 2,
            Dtype::I32 | Dtype::U32 | Dtype::F32 => 4,
            Dtype::F64 | Dtype::I64 | Dtype::U64 | Dtype::C64 => 8,
        }
    }

    /// The dtype a header spells `name`, if any.
    pub fn from_name(name: &str) -> Option<Dtype> {
        Dtype::ALL.into_iter().find(|d| d.name() == name)
    }

    /// Bytes of a tensor of this dtype and `shape` (0 when a dim is 0, whatever the others
    /// are); `None` when that does not fit a usize.
    pub fn bytes_of(self, shape: &[usize]) -> Option<usize> {
        if shape.contains(&0) {
            return Some(0);
        }
        shape
            .iter()
            .try_fold(self.size(), |bytes, &n| bytes.checked_mul(n))
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
