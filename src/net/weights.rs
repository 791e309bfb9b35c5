//! BlobNet weights: loading and validating a safetensors state dict with PyTorch's key names
//! ([`Weights`]), a fresh network with PyTorch's default initialisation ([`Weights::init`],
//! in `init`), atomic saving, and the once-per-network preparation every backend starts from
//! ([`PreparedWeights`], in `prepared`: attention folded, matrices transposed to `[in, out]`).
//! The sizes of a net and its state-dict keys are in `dims`.
//!
//! Nothing here runs a forward pass; a malformed file is an error, never a panic. The container
//! is read and written by [`crate::safetensors`], whose reader also rejects duplicate keys,
//! holes and trailing bytes.

mod dims;
mod init;
mod prepared;

pub use dims::Dims;
pub use prepared::{LayerNorm, Linear, PreparedLayer, PreparedWeights, LAYER_NORM_EPS};

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::safetensors::{
    f32_bytes, serialize, Dtype, FieldOrder, SafetensorsError, SafetensorsFile, TensorBytes,
};

/// One tensor of the state dict, converted to f32, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Element type of the tensors in the file the weights came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileDtype {
    F32,
    F16,
    Bf16,
    /// Tensors of more than one of the above.
    Mixed,
}

impl FileDtype {
    pub fn as_str(self) -> &'static str {
        match self {
            FileDtype::F32 => "f32",
            FileDtype::F16 => "f16",
            FileDtype::Bf16 => "bf16",
            FileDtype::Mixed => "mixed",
        }
    }
}

/// Largest weights file read: 1 GiB, 50 times the default net in f32 (the whole file is read
/// into memory and converted to f32).
pub const MAX_WEIGHTS_BYTES: u64 = 1 << 30;

/// A weights file that could not be read, parsed or accepted. Every variant names the file,
/// and the tensor key where one is at fault.
#[derive(Debug, Error)]
pub enum WeightsError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a regular file (a device or a pipe?): refusing to read it as weights", path.display())]
    NotAFile { path: PathBuf },
    #[error(
        "{} is {bytes} bytes, more than the {MAX_WEIGHTS_BYTES} a BlobNet weights file may be",
        path.display()
    )]
    TooLarge { path: PathBuf, bytes: u64 },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Not a well-formed safetensors container (the error names the file).
    #[error(transparent)]
    Format(#[from] SafetensorsError),
    #[error("{file}: missing tensor `{key}`")]
    MissingKey { file: String, key: String },
    #[error("{file}: unexpected tensor `{key}` (not a BlobNet state-dict key)")]
    UnexpectedKey { file: String, key: String },
    #[error("{file}: tensor `{key}` has shape {found:?}, expected {expected}")]
    Shape {
        file: String,
        key: String,
        expected: String,
        found: Vec<usize>,
    },
    #[error("{file}: tensor `{key}` has unsupported dtype {dtype} (expected F32, F16 or BF16)")]
    Dtype {
        file: String,
        key: String,
        dtype: String,
    },
    #[error("{file}: tensor `{key}` holds {value} at flat index {index}")]
    NonFinite {
        file: String,
        key: String,
        index: usize,
        value: f32,
    },
}

/// A validated BlobNet state dict, every tensor converted to f32.
#[derive(Clone, Debug)]
pub struct Weights {
    dims: Dims,
    /// In state-dict order ([`Dims::state_dict`]).
    tensors: Vec<(String, Tensor)>,
    dtype: FileDtype,
    sha256: String,
}

impl Weights {
    /// Reads and validates a safetensors file. Anything but a regular file (a device, a
    /// pipe), or a file over [`MAX_WEIGHTS_BYTES`], is refused before reading.
    pub fn load(path: &Path) -> Result<Weights, WeightsError> {
        let io = |source| WeightsError::Io {
            path: path.to_owned(),
            source,
        };
        let file = fs::File::open(path).map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        if !meta.is_file() {
            return Err(WeightsError::NotAFile {
                path: path.to_owned(),
            });
        }
        if meta.len() > MAX_WEIGHTS_BYTES {
            return Err(WeightsError::TooLarge {
                path: path.to_owned(),
                bytes: meta.len(),
            });
        }
        // Read at most one byte past the bound, in case the file grew since.
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        file.take(MAX_WEIGHTS_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(io)?;
        if bytes.len() as u64 > MAX_WEIGHTS_BYTES {
            return Err(WeightsError::TooLarge {
                path: path.to_owned(),
                bytes: bytes.len() as u64,
            });
        }
        Weights::from_bytes(&bytes, &path.display().to_string())
    }

    /// Parses and validates the bytes of a safetensors file; `source` names it in errors.
    pub fn from_bytes(bytes: &[u8], source: &str) -> Result<Weights, WeightsError> {
        let file = source.to_string();
        let st = SafetensorsFile::parse(bytes, source)?;
        let dims = dims::infer_dims(&st, &file)?;
        let expected = dims.state_dict();

        let mut tensors = Vec::with_capacity(expected.len());
        let mut dtype = None;
        for (key, shape) in &expected {
            let view = st.tensor(key).ok_or_else(|| WeightsError::MissingKey {
                file: file.clone(),
                key: key.clone(),
            })?;
            if view.shape != *shape {
                return Err(WeightsError::Shape {
                    file,
                    key: key.clone(),
                    expected: format!("{shape:?}"),
                    found: view.shape.clone(),
                });
            }
            let data = view.to_f32().ok_or_else(|| WeightsError::Dtype {
                file: file.clone(),
                key: key.clone(),
                dtype: view.dtype.name().to_string(),
            })?;
            if let Some((index, &value)) = data.iter().enumerate().find(|(_, x)| !x.is_finite()) {
                return Err(WeightsError::NonFinite {
                    file,
                    key: key.clone(),
                    index,
                    value,
                });
            }
            let this = match view.dtype {
                Dtype::F16 => FileDtype::F16,
                Dtype::BF16 => FileDtype::Bf16,
                _ => FileDtype::F32,
            };
            dtype = match dtype {
                None => Some(this),
                Some(seen) if seen == this => Some(seen),
                Some(_) => Some(FileDtype::Mixed),
            };
            tensors.push((
                key.clone(),
                Tensor {
                    shape: shape.clone(),
                    data,
                },
            ));
        }
        let known: HashSet<&str> = expected.iter().map(|(k, _)| k.as_str()).collect();
        if let Some((key, _)) = st.tensors().find(|(name, _)| !known.contains(name)) {
            return Err(WeightsError::UnexpectedKey {
                file,
                key: key.to_string(),
            });
        }
        Ok(Weights {
            dims,
            tensors,
            dtype: dtype.unwrap_or(FileDtype::F32),
            sha256: hex_sha256(bytes),
        })
    }
    /// Writes the weights as an f32 safetensors file with PyTorch's key names and metadata
    /// `{"format": "pt"}`, atomically ([`crate::fsio::write_atomic`]).
    pub fn save(&self, path: &Path) -> Result<(), WeightsError> {
        crate::fsio::write_atomic(path, &self.to_safetensors()).map_err(|source| {
            WeightsError::Write {
                path: path.to_owned(),
                source,
            }
        })
    }

    /// The f32 safetensors bytes [`Weights::save`] writes: the data in key order, as the
    /// `safetensors` crate (which wrote the engine's weights before [`crate::safetensors`] did)
    /// lays out tensors of one dtype, so that a seed's file has not changed by a byte.
    fn to_safetensors(&self) -> Vec<u8> {
        let mut tensors: Vec<TensorBytes<'_>> = self
            .tensors
            .iter()
            .map(|(key, t)| TensorBytes {
                name: key,
                dtype: Dtype::F32,
                shape: t.shape.clone(),
                data: f32_bytes(t.data.iter().copied()),
            })
            .collect();
        tensors.sort_by_key(|t| t.name);
        let metadata = BTreeMap::from([("format".to_string(), "pt".to_string())]);
        serialize(&tensors, &metadata, FieldOrder::Spec)
    }

    pub fn dims(&self) -> &Dims {
        &self.dims
    }

    /// Total number of elements over all tensors, dead Q/K projections included.
    pub fn param_count(&self) -> usize {
        self.tensors.iter().map(|(_, t)| t.data.len()).sum()
    }

    /// Element type of the file the weights came from (f32 for [`Weights::init`]).
    pub fn dtype(&self) -> FileDtype {
        self.dtype
    }

    /// Lower-case hex SHA-256 of the file bytes (for [`Weights::init`], of the bytes
    /// [`Weights::save`] writes).
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The tensor with PyTorch key `key`, if it is part of the state dict.
    pub fn tensor(&self, key: &str) -> Option<&Tensor> {
        self.tensors.iter().find(|(k, _)| k == key).map(|(_, t)| t)
    }

    /// All tensors in state-dict order.
    pub fn tensors(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.tensors.iter().map(|(k, t)| (k.as_str(), t))
    }

    /// Like [`Weights::tensor`] for a key that validation guarantees.
    fn get(&self, key: &str) -> &Tensor {
        self.tensor(key)
            .unwrap_or_else(|| panic!("validated weights lack `{key}`"))
    }
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `engine init-weights --seed 0` and `--seed 7` wrote these files before the shared
    /// safetensors writer replaced the `safetensors` crate's (commit 921c432): not a byte may
    /// change.
    #[test]
    fn init_writes_the_bytes_it_always_has() {
        for (seed, expected) in [
            (
                0,
                "00f0109896c41906bcd8aff81fa81d16116832da0b41d28d241e5ce8a952f91b",
            ),
            (
                7,
                "5aa4de7d1e2214f2275c8514f5260aae31d55ab4ccfb6c9c58f5e2e93dbf26e5",
            ),
        ] {
            let weights = Weights::init(seed);
            assert_eq!(weights.sha256(), expected, "seed {seed}");
            assert_eq!(
                hex_sha256(&weights.to_safetensors()),
                expected,
                "seed {seed}"
            );
        }
    }
}
