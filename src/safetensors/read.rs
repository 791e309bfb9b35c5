//! The strict reader: [`SafetensorsFile::parse`] checks the whole container before handing
//! out a tensor (see the module above for what it refuses).

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;

use half::{bf16, f16};

use super::json::Json;
use super::{Dtype, SafetensorsError, MAX_HEADER_LEN, METADATA_KEY};

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

        let expected = dtype
            .bytes_of(&shape)
            .ok_or_else(|| SafetensorsError::ShapeOverflow {
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
