//! A strict reader of the safetensors container, shared by the weights loader
//! ([`crate::net::weights`]) and the training-shard reader ([`crate::selfplay::read_shard`]).
//!
//! The container is an 8-byte little-endian header length, a JSON header of that many bytes
//! (an object: tensor name → `{"dtype", "shape", "data_offsets"}`, plus an optional
//! `__metadata__` object of strings), then the data the offsets point into.
//!
//! Stricter than the `safetensors` crate, because every file we read came from a writer we
//! know: duplicate JSON keys (which serde_json resolves silently to the last one), unknown fields
//! in a tensor entry, holes between tensors, trailing bytes and non-string metadata are all
//! errors. Every error names the file and, where one is at fault, the tensor or key. Nothing
//! here panics on any input: the fuzz targets in `fuzz/` and `tests/fuzz_smoke.rs` check that.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::fmt;

use half::{bf16, f16};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use thiserror::Error;

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

    fn from_name(name: &str) -> Option<Dtype> {
        Dtype::ALL.into_iter().find(|d| d.name() == name)
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

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
        source: std::str::Utf8Error,
    },
    #[error("{file}: header is not JSON: {source}")]
    HeaderNotJson {
        file: String,
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

/// One tensor of a parsed file: its bytes are a slice of the file, unaligned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawTensor<'a> {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    /// Little-endian, row-major; its length is `shape` product × `dtype` size.
    pub data: &'a [u8],
}

impl RawTensor<'_> {
    /// The values of an F32, F16 or BF16 tensor as f32; `None` for any other dtype.
    /// Reads with `from_le_bytes`, so the data may sit at any address.
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        Some(match self.dtype {
            Dtype::F32 => self
                .data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => self
                .data
                .chunks_exact(2)
                .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::BF16 => self
                .data
                .chunks_exact(2)
                .map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            _ => return None,
        })
    }
}

/// A safetensors file that passed every check of the container format, borrowing its bytes.
#[derive(Clone, Debug)]
pub struct SafetensorsFile<'a> {
    tensors: BTreeMap<String, RawTensor<'a>>,
    metadata: BTreeMap<String, String>,
}

impl<'a> SafetensorsFile<'a> {
    /// Parses and checks the container; `file` names it in errors. Checks nothing about which
    /// tensors there are: that is the caller's schema.
    pub fn parse(bytes: &'a [u8], file: &str) -> Result<SafetensorsFile<'a>, SafetensorsError> {
        let file = file.to_string();
        let Some((len_bytes, rest)) = bytes.split_first_chunk::<8>() else {
            return Err(SafetensorsError::TooShort {
                file,
                len: bytes.len(),
            });
        };
        let header_len = u64::from_le_bytes(*len_bytes);
        if header_len > MAX_HEADER_LEN {
            return Err(SafetensorsError::HeaderTooLarge { file, header_len });
        }
        // Below MAX_HEADER_LEN, so it fits a usize.
        let Some((header, data)) = rest.split_at_checked(header_len as usize) else {
            return Err(SafetensorsError::HeaderBeyondFile {
                file,
                header_len,
                available: rest.len(),
            });
        };
        let header = match std::str::from_utf8(header) {
            Ok(header) => header,
            Err(source) => return Err(SafetensorsError::HeaderNotUtf8 { file, source }),
        };
        let header: Json = match serde_json::from_str(header) {
            Ok(header) => header,
            Err(source) => return Err(SafetensorsError::HeaderNotJson { file, source }),
        };
        let Json::Object(entries) = header else {
            return Err(SafetensorsError::HeaderNotObject {
                file,
                found: header.kind(),
            });
        };

        let mut metadata = None;
        let mut infos = BTreeMap::new();
        for (key, value) in entries {
            let duplicate = if key == METADATA_KEY {
                metadata.replace(value).is_some()
            } else {
                match infos.entry(key.clone()) {
                    Entry::Occupied(_) => true,
                    Entry::Vacant(slot) => {
                        slot.insert(value);
                        false
                    }
                }
            };
            if duplicate {
                return Err(SafetensorsError::DuplicateKey { file, key });
            }
        }
        let metadata = match metadata {
            None => BTreeMap::new(),
            Some(value) => parse_metadata(value, &file)?,
        };
        let infos = infos
            .into_iter()
            .map(|(key, value)| {
                let info = TensorInfo::parse(value, &key, &file)?;
                Ok((key, info))
            })
            .collect::<Result<Vec<_>, SafetensorsError>>()?;
        check_layout(&infos, data.len(), &file)?;

        let tensors = infos
            .into_iter()
            .map(|(key, info)| {
                let tensor = RawTensor {
                    dtype: info.dtype,
                    shape: info.shape,
                    data: &data[info.begin..info.end],
                };
                (key, tensor)
            })
            .collect();
        Ok(SafetensorsFile { tensors, metadata })
    }

    pub fn tensor(&self, name: &str) -> Option<&RawTensor<'a>> {
        self.tensors.get(name)
    }

    /// All tensors, by name.
    pub fn tensors(&self) -> impl Iterator<Item = (&str, &RawTensor<'a>)> {
        self.tensors.iter().map(|(k, t)| (k.as_str(), t))
    }

    /// The `__metadata__` object (empty when the header has none).
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }
}

/// A tensor's header entry, checked on its own (not yet against the other tensors).
struct TensorInfo {
    dtype: Dtype,
    shape: Vec<usize>,
    begin: usize,
    end: usize,
}

impl TensorInfo {
    fn parse(value: Json, key: &str, file: &str) -> Result<TensorInfo, SafetensorsError> {
        let Json::Object(fields) = value else {
            return Err(SafetensorsError::EntryNotObject {
                file: file.into(),
                key: key.into(),
                found: value.kind(),
            });
        };
        let (mut dtype, mut shape, mut offsets) = (None, None, None);
        for (field, value) in fields {
            let slot = match field.as_str() {
                "dtype" => &mut dtype,
                "shape" => &mut shape,
                "data_offsets" => &mut offsets,
                _ => {
                    return Err(SafetensorsError::UnknownField {
                        file: file.into(),
                        key: key.into(),
                        field,
                    })
                }
            };
            if slot.replace(value).is_some() {
                return Err(SafetensorsError::DuplicateKey {
                    file: file.into(),
                    key: format!("{key}.{field}"),
                });
            }
        }
        let missing = |field| SafetensorsError::MissingField {
            file: file.into(),
            key: key.into(),
            field,
        };
        let wrong_type = |field, expected, found: &Json| SafetensorsError::FieldType {
            file: file.into(),
            key: key.into(),
            field,
            expected,
            found: found.kind(),
        };

        let dtype = dtype.ok_or_else(|| missing("dtype"))?;
        let Json::String(name) = &dtype else {
            return Err(wrong_type("dtype", "a string", &dtype));
        };
        let dtype = Dtype::from_name(name).ok_or_else(|| SafetensorsError::UnknownDtype {
            file: file.into(),
            key: key.into(),
            dtype: name.clone(),
        })?;

        const INDICES: &str = "an array of non-negative integers";
        let shape_value = shape.ok_or_else(|| missing("shape"))?;
        let shape = shape_value
            .as_indices()
            .ok_or_else(|| wrong_type("shape", INDICES, &shape_value))?;

        const PAIR: &str = "an array of two non-negative integers";
        let offsets_value = offsets.ok_or_else(|| missing("data_offsets"))?;
        let [begin, end] = offsets_value
            .as_indices()
            .and_then(|o| <[usize; 2]>::try_from(o).ok())
            .ok_or_else(|| wrong_type("data_offsets", PAIR, &offsets_value))?;
        if begin > end {
            return Err(SafetensorsError::ReversedOffsets {
                file: file.into(),
                key: key.into(),
                begin,
                end,
            });
        }

        // An empty tensor takes no bytes whatever its other dims are.
        let expected = if shape.contains(&0) {
            Some(0)
        } else {
            shape
                .iter()
                .try_fold(dtype.size(), |bytes, &n| bytes.checked_mul(n))
        };
        let expected = expected.ok_or_else(|| SafetensorsError::ShapeOverflow {
            file: file.into(),
            key: key.into(),
            dtype,
            shape: shape.clone(),
        })?;
        if expected != end - begin {
            return Err(SafetensorsError::ByteLength {
                file: file.into(),
                key: key.into(),
                dtype,
                shape,
                expected,
                found: end - begin,
            });
        }
        Ok(TensorInfo {
            dtype,
            shape,
            begin,
            end,
        })
    }
}

/// The tensors must tile the data exactly: in offset order, each starts where the one before
/// ends, the first at 0, and the last ends at the end of the file.
fn check_layout(
    infos: &[(String, TensorInfo)],
    data_len: usize,
    file: &str,
) -> Result<(), SafetensorsError> {
    if let Some((key, info)) = infos.iter().find(|(_, info)| info.end > data_len) {
        return Err(SafetensorsError::OffsetsBeyondFile {
            file: file.into(),
            key: key.clone(),
            end: info.end,
            data_len,
        });
    }
    let mut by_offset: Vec<&(String, TensorInfo)> = infos.iter().collect();
    by_offset.sort_by_key(|(_, info)| (info.begin, info.end));
    // Data bytes covered so far, and the tensor that covers the last of them.
    let mut end = 0;
    let mut previous: Option<&String> = None;
    for (key, info) in by_offset {
        if info.begin > end {
            return Err(SafetensorsError::Hole {
                file: file.into(),
                key: key.clone(),
                begin: end,
                end: info.begin,
            });
        }
        if let Some(other) = previous.filter(|_| info.begin < end) {
            return Err(SafetensorsError::Overlap {
                file: file.into(),
                key: key.clone(),
                begin: info.begin,
                end: info.end,
                other: other.clone(),
                other_end: end,
            });
        }
        end = info.end;
        previous = Some(key);
    }
    if end != data_len {
        return Err(SafetensorsError::TrailingBytes {
            file: file.into(),
            end,
            data_len,
        });
    }
    Ok(())
}

fn parse_metadata(value: Json, file: &str) -> Result<BTreeMap<String, String>, SafetensorsError> {
    let Json::Object(entries) = value else {
        return Err(SafetensorsError::MetadataNotObject {
            file: file.into(),
            found: value.kind(),
        });
    };
    let mut metadata = BTreeMap::new();
    for (key, value) in entries {
        let Json::String(value) = value else {
            return Err(SafetensorsError::MetadataNotString {
                file: file.into(),
                found: value.kind(),
                key,
            });
        };
        match metadata.entry(key) {
            Entry::Vacant(slot) => {
                slot.insert(value);
            }
            Entry::Occupied(slot) => {
                return Err(SafetensorsError::DuplicateKey {
                    file: file.into(),
                    key: format!("{METADATA_KEY}.{}", slot.key()),
                })
            }
        }
    }
    Ok(metadata)
}

/// A JSON value whose objects keep every entry in file order, duplicates included
/// (`serde_json::Value` keeps only the last of duplicate keys, hiding them).
enum Json {
    Null,
    Bool,
    /// A non-negative integer (what shapes and offsets hold).
    Index(u64),
    /// Any other number: negative, fractional or exponent form.
    OtherNumber,
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    /// What the value is, for error messages.
    fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool => "a boolean",
            Json::Index(_) | Json::OtherNumber => "a number",
            Json::String(_) => "a string",
            Json::Array(_) => "an array",
            Json::Object(_) => "an object",
        }
    }

    /// An array of non-negative integers that fit a usize.
    fn as_indices(&self) -> Option<Vec<usize>> {
        let Json::Array(items) = self else {
            return None;
        };
        items
            .iter()
            .map(|item| match item {
                Json::Index(n) => usize::try_from(*n).ok(),
                _ => None,
            })
            .collect()
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Json, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

/// Builds a [`Json`]; serde_json's recursion limit (128) bounds the nesting of hostile input.
struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Json, E> {
        Ok(Json::Bool)
    }

    fn visit_u64<E>(self, n: u64) -> Result<Json, E> {
        Ok(Json::Index(n))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Json, E> {
        Ok(u64::try_from(n).map_or(Json::OtherNumber, Json::Index))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Json, E> {
        Ok(Json::OtherNumber)
    }

    fn visit_str<E>(self, s: &str) -> Result<Json, E> {
        Ok(Json::String(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Json, E> {
        Ok(Json::String(s))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Json::Object(entries))
    }
}
