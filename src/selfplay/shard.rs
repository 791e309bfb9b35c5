//! Training shards: safetensors files PyTorch reads with `safetensors.torch.load_file`.
//!
//! Tensors: `state` f32[N,256] (acting player's encoding), `policy` f32[N,52] (root visit
//! shares, 0 on illegal actions), `value` f32[N] (`2·score/23 − 1` of the acting player's
//! round score), `mask` u8[N,52] (legal actions), `unit` i64[N] (index of the unit of work
//! the row comes from: its round in round mode, its game in full-game mode; never negative,
//! stored as I64 rather than U64 so that every PyTorch version loads it). Metadata (all
//! strings): `format_version` ([`SHARD_FORMAT_VERSION`]), `rows`, `first_shard`, plus the
//! run's provenance, [`super::ShardMetadata`] (engine version, weights sha256, settings,
//! `seed`, device, host); its module lists every key.
//! [`serialize`] lays a shard out through the shared safetensors writer
//! ([`crate::safetensors::serialize`]), with the fields of each header entry in alphabetical
//! order ([`FieldOrder::Alphabetical`]) as shards have always had them; a run's
//! [`super::ShardWriter`] writes every file atomically ([`crate::fsio::write_atomic`]).
//!
//! Replaying a row: unit `i` draws its deal and every search seed from its own random stream,
//! ChaCha8 seeded with the run seed on stream `i` (see `start_unit` in the worker), so the
//! metadata `seed` and a row's `unit` name the stream its unit was played from; with the same
//! weights and settings (also in the metadata) the unit can be played again, exactly on the
//! CPU.
//!
//! Format versions: 1 had no `unit` tensor; 2 adds it. The reader reads only
//! [`SHARD_FORMAT_VERSION`] and names the version it found otherwise.
//!
//! [`read_shard`] reads a shard back through [`crate::safetensors`] and checks it
//! against this layout: the tests' reference reader, and the fuzz targets' entry point.

use crate::net::{INPUT_DIM, POLICY_DIM};
use crate::safetensors::{
    self, f32_bytes, Dtype, FieldOrder, RawTensor, SafetensorsError, SafetensorsFile, TensorBytes,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use thiserror::Error;

pub const SHARD_FORMAT_VERSION: &str = "2";

/// Most rows per shard: a shard is held in memory twice while it is written (its examples
/// and its bytes), about 2.5 KB a row.
pub const MAX_SHARD_ROWS: usize = 1_000_000;

/// The tensors of a shard, in the order [`serialize`] writes them.
const TENSORS: [&str; 5] = ["state", "policy", "value", "mask", "unit"];

/// One training example.
#[derive(Clone, Debug, PartialEq)]
pub struct Example {
    pub state: [f32; INPUT_DIM],
    pub policy: [f32; POLICY_DIM],
    pub mask: u64,
    pub value: f32,
    /// Index of the unit of work (round or full game) the example comes from; with the run
    /// seed it names the random stream the unit was played from. Below 2^63 (stored as I64).
    pub unit: u64,
}

/// The safetensors bytes of `examples` with `metadata`: the data of `state`, `policy`,
/// `value`, `mask` and `unit` in that order, the header as [`safetensors::serialize`] sorts
/// it, so the same examples always give the same bytes.
///
/// # Panics
/// If an example's `unit` is 2^63 or more (it does not fit the I64 tensor).
pub fn serialize(examples: &[Example], metadata: BTreeMap<String, String>) -> Vec<u8> {
    let n = examples.len();
    let mask: Vec<u8> = examples
        .iter()
        .flat_map(|e| (0..POLICY_DIM).map(move |a| (e.mask >> a & 1) as u8))
        .collect();
    let unit: Vec<u8> = examples
        .iter()
        .flat_map(|e| {
            i64::try_from(e.unit)
                .expect("unit index below 2^63")
                .to_le_bytes()
        })
        .collect();
    let tensor = |name, dtype, shape, data| TensorBytes {
        name,
        dtype,
        shape,
        data,
    };
    let tensors = [
        tensor(
            "state",
            Dtype::F32,
            vec![n, INPUT_DIM],
            f32_bytes(examples.iter().flat_map(|e| e.state)),
        ),
        tensor(
            "policy",
            Dtype::F32,
            vec![n, POLICY_DIM],
            f32_bytes(examples.iter().flat_map(|e| e.policy)),
        ),
        tensor(
            "value",
            Dtype::F32,
            vec![n],
            f32_bytes(examples.iter().map(|e| e.value)),
        ),
        tensor("mask", Dtype::U8, vec![n, POLICY_DIM], mask),
        tensor("unit", Dtype::I64, vec![n], unit),
    ];
    debug_assert!(tensors.iter().map(|t| t.name).eq(TENSORS));
    safetensors::serialize(&tensors, &metadata, FieldOrder::Alphabetical)
}

/// A shard as read back: its examples in file order, and its metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct Shard {
    pub examples: Vec<Example>,
    pub metadata: BTreeMap<String, String>,
}

/// A shard file that could not be read or does not hold what [`serialize`] writes. Every
/// variant names the file, and the tensor where one is at fault.
#[derive(Debug, Error)]
pub enum ShardError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Not a well-formed safetensors container (the error names the file).
    #[error(transparent)]
    Format(#[from] SafetensorsError),
    #[error("{file}: no `{key}` tensor")]
    MissingTensor { file: String, key: &'static str },
    #[error(
        "{file}: unexpected tensor `{key}` (a shard holds state, policy, value, mask and unit)"
    )]
    UnexpectedTensor { file: String, key: String },
    #[error("{file}: tensor `{key}` is {found}, expected {expected}")]
    Dtype {
        file: String,
        key: &'static str,
        expected: Dtype,
        found: Dtype,
    },
    /// `expected` is written with `N` for the row count when `state` does not give one.
    #[error("{file}: tensor `{key}` has shape {found:?}, expected {expected}")]
    Shape {
        file: String,
        key: &'static str,
        expected: String,
        found: Vec<usize>,
    },
    #[error("{file}: metadata has no `{key}`")]
    MissingMetadata { file: String, key: &'static str },
    #[error(
        "{file}: format_version {found}, this reader reads {SHARD_FORMAT_VERSION}; regenerate the \
         shard with this engine's `selfplay`, or read it with the engine version that wrote it"
    )]
    FormatVersion { file: String, found: String },
    #[error("{file}: metadata says rows = `{stated}`, the tensors hold {rows}")]
    RowCount {
        file: String,
        stated: String,
        rows: usize,
    },
    #[error("{file}: tensor `{key}` holds {value} at flat index {index}")]
    NonFinite {
        file: String,
        key: &'static str,
        index: usize,
        value: f32,
    },
    #[error("{file}: mask of row {row} holds {value} for action {action}, expected 0 or 1")]
    Mask {
        file: String,
        row: usize,
        action: usize,
        value: u8,
    },
    #[error("{file}: unit of row {row} is {value}, expected a unit index (0 or more)")]
    Unit {
        file: String,
        row: usize,
        value: i64,
    },
}

/// Reads and checks the shard at `path` (see [`parse_shard`]).
pub fn read_shard(path: &Path) -> Result<Shard, ShardError> {
    let bytes = std::fs::read(path).map_err(|source| ShardError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse_shard(&bytes, &path.display().to_string())
}

/// Parses the bytes of a shard; `source` names it in errors. Accepts exactly what
/// [`serialize`] writes: `format_version` [`SHARD_FORMAT_VERSION`] in the metadata (checked
/// first, so that a shard of another version is reported as such), the five tensors with
/// their dtypes, shapes that agree on the row count, `rows` (when present) equal to the row
/// count, finite values, a mask of 0s and 1s, and unit indices of 0 or more.
pub fn parse_shard(bytes: &[u8], source: &str) -> Result<Shard, ShardError> {
    let st = SafetensorsFile::parse(bytes, source)?;
    let file = || source.to_string();
    let metadata = st.metadata().clone();
    match metadata.get("format_version") {
        None => {
            return Err(ShardError::MissingMetadata {
                file: file(),
                key: "format_version",
            })
        }
        Some(v) if v != SHARD_FORMAT_VERSION => {
            return Err(ShardError::FormatVersion {
                file: file(),
                found: v.clone(),
            })
        }
        Some(_) => {}
    }
    if let Some((key, _)) = st.tensors().find(|(key, _)| !TENSORS.contains(key)) {
        return Err(ShardError::UnexpectedTensor {
            file: file(),
            key: key.to_string(),
        });
    }
    let tensor = |key: &'static str, dtype: Dtype| -> Result<&RawTensor<'_>, ShardError> {
        let t = st
            .tensor(key)
            .ok_or(ShardError::MissingTensor { file: file(), key })?;
        if t.dtype != dtype {
            return Err(ShardError::Dtype {
                file: file(),
                key,
                expected: dtype,
                found: t.dtype,
            });
        }
        Ok(t)
    };
    let (state, policy) = (tensor("state", Dtype::F32)?, tensor("policy", Dtype::F32)?);
    let (value, mask) = (tensor("value", Dtype::F32)?, tensor("mask", Dtype::U8)?);
    let unit = tensor("unit", Dtype::I64)?;

    // `state` sets the row count; the other four must agree with it.
    let rows = match state.shape[..] {
        [rows, INPUT_DIM] => rows,
        _ => {
            return Err(ShardError::Shape {
                file: file(),
                key: "state",
                expected: format!("[N, {INPUT_DIM}]"),
                found: state.shape.clone(),
            })
        }
    };
    for (key, t, expected) in [
        ("policy", policy, vec![rows, POLICY_DIM]),
        ("value", value, vec![rows]),
        ("mask", mask, vec![rows, POLICY_DIM]),
        ("unit", unit, vec![rows]),
    ] {
        if t.shape != expected {
            return Err(ShardError::Shape {
                file: file(),
                key,
                expected: format!("{expected:?}"),
                found: t.shape.clone(),
            });
        }
    }

    if let Some(stated) = metadata.get("rows") {
        if *stated != rows.to_string() {
            return Err(ShardError::RowCount {
                file: file(),
                stated: stated.clone(),
                rows,
            });
        }
    }

    let finite = |key: &'static str, t: &RawTensor<'_>| -> Result<Vec<f32>, ShardError> {
        let data = t.to_f32().expect("dtype checked to be F32");
        match data.iter().position(|x| !x.is_finite()) {
            Some(index) => Err(ShardError::NonFinite {
                file: file(),
                key,
                index,
                value: data[index],
            }),
            None => Ok(data),
        }
    };
    let (state, policy) = (finite("state", state)?, finite("policy", policy)?);
    let value = finite("value", value)?;
    if let Some(index) = mask.data.iter().position(|&m| m > 1) {
        return Err(ShardError::Mask {
            file: file(),
            row: index / POLICY_DIM,
            action: index % POLICY_DIM,
            value: mask.data[index],
        });
    }
    let unit: Vec<u64> = unit
        .data
        .chunks_exact(8)
        .enumerate()
        .map(|(row, b)| {
            let value = i64::from_le_bytes(b.try_into().expect("8 bytes"));
            u64::try_from(value).map_err(|_| ShardError::Unit {
                file: file(),
                row,
                value,
            })
        })
        .collect::<Result<_, _>>()?;

    let examples = (0..rows)
        .map(|row| Example {
            state: state[row * INPUT_DIM..][..INPUT_DIM]
                .try_into()
                .expect("INPUT_DIM values"),
            policy: policy[row * POLICY_DIM..][..POLICY_DIM]
                .try_into()
                .expect("POLICY_DIM values"),
            mask: mask.data[row * POLICY_DIM..][..POLICY_DIM]
                .iter()
                .enumerate()
                .map(|(action, &m)| u64::from(m) << action)
                .sum(),
            value: value[row],
            unit: unit[row],
        })
        .collect();
    Ok(Shard { examples, metadata })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A made-up example, different for every `seed` (the writer's tests use it too).
    pub(in crate::selfplay) fn example(seed: usize) -> Example {
        let x = |i: usize| ((seed * 7919 + i * 104_729) % 1000) as f32 / 250.0 - 2.0;
        Example {
            state: std::array::from_fn(x),
            policy: std::array::from_fn(|a| x(a + 300) / 52.0),
            mask: (seed as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) & ((1 << POLICY_DIM) - 1),
            value: x(999) / 2.0,
            unit: (seed / 2) as u64,
        }
    }

    fn metadata(rows: usize) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("format_version".into(), SHARD_FORMAT_VERSION.into()),
            ("rows".into(), rows.to_string()),
            ("seed".into(), "7".into()),
        ])
    }

    #[test]
    fn serialize_then_parse_gives_back_the_examples() {
        for rows in [0, 1, 5] {
            let examples: Vec<Example> = (0..rows).map(example).collect();
            let bytes = serialize(&examples, metadata(rows));
            let shard = parse_shard(&bytes, "round-trip").unwrap();
            assert_eq!(shard.examples, examples);
            assert_eq!(shard.metadata, metadata(rows));
        }
    }

    fn sha256(bytes: &[u8]) -> String {
        use sha2::{Digest, Sha256};
        Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The bytes of fixed shards, recorded with the hand-written serializer this module had
    /// before the shared safetensors writer (commit 921c432): a shard must not change by a
    /// byte. The metadata includes characters JSON escapes.
    #[test]
    fn serialize_writes_the_bytes_it_always_has() {
        let escapes = BTreeMap::from([
            (
                "note".to_string(),
                "quote \" backslash \\ tab \t é ✓ \u{1}".to_string(),
            ),
            ("rows".to_string(), "7".to_string()),
        ]);
        let cases = [
            (
                0,
                BTreeMap::new(),
                320,
                "c771f80424b4f7008e17451cf618f9dc8d01df08f45fde592fa1b7ac60919bfe",
            ),
            (
                3,
                metadata(3),
                4280,
                "6bcca578405140daaa5a4fa73c3eb1ee0961b4f3dbdcb606499e394723f8c8fc",
            ),
            (
                7,
                escapes,
                9488,
                "d82dc730bf299c661bd09c8ba4f7feff97561fd6d0a2c9d3ccd20ba86be055ba",
            ),
        ];
        for (rows, meta, len, expected) in cases {
            let examples: Vec<Example> = (0..rows).map(example).collect();
            let bytes = serialize(&examples, meta);
            assert_eq!(bytes.len(), len, "{rows} rows");
            assert_eq!(sha256(&bytes), expected, "{rows} rows");
        }
    }
}
