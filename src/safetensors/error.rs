//! Why a file is not a well-formed safetensors container.

use thiserror::Error;

use super::{Dtype, MAX_HEADER_LEN};

/// Why a file is not a well-formed safetensors container. `file` names the file in every
/// variant; `key` is a tensor name, or a dotted path (`mask.dtype`, `__metadata__.rows`) for
/// a key inside an entry.
#[derive(Debug, Error)]
pub enum SafetensorsError {
    #[error("{file}: {len} bytes, too short for the 8-byte header length")]
    TooShort { file: String, len: usize },
    #[error("{file}: header length {header_len} runs past the end of the file ({available} bytes follow the length)")]
    HeaderBeyondFile {
        file: String,
        header_len: u64,
        available: usize,
    },
    #[error("{file}: header length {header_len} is over the limit of {MAX_HEADER_LEN} bytes")]
    HeaderTooLarge { file: String, header_len: u64 },
    #[error("{file}: header is not UTF-8: {source}")]
    HeaderNotUtf8 {
        file: String,
        #[source]
        source: std::str::Utf8Error,
    },
    #[error("{file}: header is not JSON: {source}")]
    HeaderNotJson {
        file: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{file}: header is {found}, expected a JSON object")]
    HeaderNotObject { file: String, found: &'static str },
    #[error("{file}: key `{key}` appears more than once in the header")]
    DuplicateKey { file: String, key: String },
    #[error(
        "{file}: tensor `{key}` is {found}, expected an object with dtype, shape and data_offsets"
    )]
    EntryNotObject {
        file: String,
        key: String,
        found: &'static str,
    },
    #[error("{file}: tensor `{key}` has no `{field}`")]
    MissingField {
        file: String,
        key: String,
        field: &'static str,
    },
    #[error(
        "{file}: tensor `{key}` has unknown field `{field}` (expected dtype, shape, data_offsets)"
    )]
    UnknownField {
        file: String,
        key: String,
        field: String,
    },
    #[error("{file}: tensor `{key}`: `{field}` is {found}, expected {expected}")]
    FieldType {
        file: String,
        key: String,
        field: &'static str,
        expected: &'static str,
        found: &'static str,
    },
    #[error("{file}: tensor `{key}` has unknown dtype `{dtype}`")]
    UnknownDtype {
        file: String,
        key: String,
        dtype: String,
    },
    #[error("{file}: tensor `{key}` has data_offsets [{begin}, {end}]: begin after end")]
    ReversedOffsets {
        file: String,
        key: String,
        begin: usize,
        end: usize,
    },
    #[error("{file}: tensor `{key}` ends at byte {end} of the data, which has only {data_len}")]
    OffsetsBeyondFile {
        file: String,
        key: String,
        end: usize,
        data_len: usize,
    },
    #[error("{file}: tensor `{key}`: {dtype} shape {shape:?} has more bytes than fit in memory")]
    ShapeOverflow {
        file: String,
        key: String,
        dtype: Dtype,
        shape: Vec<usize>,
    },
    #[error("{file}: tensor `{key}`: {dtype} shape {shape:?} takes {expected} bytes, its data_offsets span {found}")]
    ByteLength {
        file: String,
        key: String,
        dtype: Dtype,
        shape: Vec<usize>,
        expected: usize,
        found: usize,
    },
    #[error("{file}: tensor `{key}` (data bytes {begin}..{end}) overlaps `{other}`, which ends at {other_end}")]
    Overlap {
        file: String,
        key: String,
        begin: usize,
        end: usize,
        other: String,
        other_end: usize,
    },
    #[error("{file}: data bytes {begin}..{end}, before tensor `{key}`, belong to no tensor")]
    Hole {
        file: String,
        key: String,
        begin: usize,
        end: usize,
    },
    #[error("{file}: trailing bytes: the tensors end at data byte {end}, the data has {data_len}")]
    TrailingBytes {
        file: String,
        end: usize,
        data_len: usize,
    },
    #[error("{file}: `__metadata__` is {found}, expected an object of strings")]
    MetadataNotObject { file: String, found: &'static str },
    #[error("{file}: metadata `{key}` is {found}, expected a string")]
    MetadataNotString {
        file: String,
        key: String,
        found: &'static str,
    },
}
