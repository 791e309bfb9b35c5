//! The strict reader: [`SafetensorsFile::parse`] checks the whole container before handing
//! out a tensor (see the module above for what it refuses); [`SafetensorsHeader::read`] makes
//! the same checks from the header and the file's length alone, leaving the data on disk.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};

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

/// One tensor read from a file on its own ([`SafetensorsHeader::read_tensor`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedTensor {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    /// Little-endian, row-major; its length is `shape` product × `dtype` size.
    pub data: Vec<u8>,
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
        let header_len = header_len(bytes, bytes.len() as u64, file)?;
        // Checked against the length by `header_len`.
        let (header, data) = bytes[8..].split_at(header_len);
        let header = SafetensorsHeader::parse(header, data.len(), 8 + header_len as u64, file)?;
        let tensors = header
            .tensors
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
        Ok(SafetensorsFile {
            tensors,
            metadata: header.metadata,
        })
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

/// The header length a file starting with `start` (at least its first 8 bytes, if it has
/// them) declares, checked against the limit and the file's `file_len` bytes.
fn header_len(start: &[u8], file_len: u64, file: &str) -> Result<usize, SafetensorsError> {
    let Some(len_bytes) = start.first_chunk::<8>() else {
        return Err(SafetensorsError::TooShort {
            file: file.into(),
            len: start.len(),
        });
    };
    let header_len = u64::from_le_bytes(*len_bytes);
    if header_len > MAX_HEADER_LEN {
        return Err(SafetensorsError::HeaderTooLarge {
            file: file.into(),
            header_len,
        });
    }
    let available = file_len.saturating_sub(8);
    if header_len > available {
        return Err(SafetensorsError::HeaderBeyondFile {
            file: file.into(),
            header_len,
            available: available.try_into().unwrap_or(usize::MAX),
        });
    }
    // Below MAX_HEADER_LEN, so it fits a usize.
    Ok(header_len as usize)
}

/// Why [`SafetensorsHeader::read`] failed: the file could not be read, or is not a
/// well-formed container.
#[derive(Debug, thiserror::Error)]
pub enum HeaderReadError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Format(#[from] SafetensorsError),
}

/// A file's header, checked as [`SafetensorsFile::parse`] checks it (the tensors must tile the
/// rest of the file exactly), with the tensors' bytes left on disk: for reading a small tensor
/// or the metadata of a large file.
#[derive(Clone, Debug)]
pub struct SafetensorsHeader {
    tensors: BTreeMap<String, TensorInfo>,
    metadata: BTreeMap<String, String>,
    /// Where the data section starts in the file.
    data_start: u64,
}

impl SafetensorsHeader {
    /// Reads the header of `reader`'s file (from its start; the length is found by seeking to
    /// the end); `file` names it in errors.
    pub fn read<R: Read + Seek>(
        reader: &mut R,
        file: &str,
    ) -> Result<SafetensorsHeader, HeaderReadError> {
        let file_len = reader.seek(SeekFrom::End(0))?;
        reader.seek(SeekFrom::Start(0))?;
        let mut start = Vec::with_capacity(8);
        reader.by_ref().take(8).read_to_end(&mut start)?;
        let header_len = header_len(&start, file_len, file)?;
        let mut header = vec![0; header_len];
        reader.read_exact(&mut header)?;
        let data_start = 8 + header_len as u64;
        let data_len = (file_len - data_start)
            .try_into()
            .map_err(|_| std::io::Error::other(format!("{file}: too large for this machine")))?;
        Ok(SafetensorsHeader::parse(
            &header, data_len, data_start, file,
        )?)
    }

    /// Checks the header bytes `header` against a data section of `data_len` bytes that starts
    /// at `data_start` in the file.
    fn parse(
        header: &[u8],
        data_len: usize,
        data_start: u64,
        file: &str,
    ) -> Result<SafetensorsHeader, SafetensorsError> {
        let file = file.to_string();
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
        check_layout(&infos, data_len, &file)?;
        Ok(SafetensorsHeader {
            tensors: infos.into_iter().collect(),
            metadata,
            data_start,
        })
    }

    /// The `__metadata__` object (empty when the header has none).
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// Reads tensor `name` from `reader`'s file (the one the header was read from); `None` if
    /// the file has no such tensor.
    pub fn read_tensor<R: Read + Seek>(
        &self,
        reader: &mut R,
        name: &str,
    ) -> std::io::Result<Option<OwnedTensor>> {
        let Some(info) = self.tensors.get(name) else {
            return Ok(None);
        };
        reader.seek(SeekFrom::Start(self.data_start + info.begin as u64))?;
        let mut data = vec![0; info.end - info.begin];
        reader.read_exact(&mut data)?;
        Ok(Some(OwnedTensor {
            dtype: info.dtype,
            shape: info.shape.clone(),
            data,
        }))
    }
}

/// A tensor's header entry, checked on its own (not yet against the other tensors).
#[derive(Clone, Debug)]
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
