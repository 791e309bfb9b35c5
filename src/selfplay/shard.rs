//! Training shards: safetensors files PyTorch reads with `safetensors.torch.load_file`.
//!
//! Tensors: `state` f32[N,256] (acting player's encoding), `policy` f32[N,52] (root visit
//! shares, 0 on illegal actions), `value` f32[N] (`2·score/23 − 1` of the acting player's
//! round score), `mask` u8[N,52] (legal actions), `unit` i64[N] (index of the unit of work
//! the row comes from: its round in round mode, its game in full-game mode; never negative,
//! stored as I64 rather than U64 so that every PyTorch version loads it). Metadata (all
//! strings): `format_version` ([`SHARD_FORMAT_VERSION`]), `rows`, plus what the run adds
//! (engine version, weights sha256, settings, `seed`).
//! Every file is written atomically ([`crate::fsio::write_atomic`]).
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
//! [`read_shard`] reads a shard back through [`crate::safetensors_strict`] and checks it
//! against this layout: the tests' reference reader, and the fuzz targets' entry point.

use super::{OutDir, UnitDone, UnitSink};
use crate::fsio::write_atomic;
use crate::net::{INPUT_DIM, POLICY_DIM};
use crate::safetensors_strict::{Dtype, RawTensor, SafetensorsError, SafetensorsFile};
use anyhow::Result;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
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

/// Collects examples and writes them as numbered shards of `shard_size` rows into a claimed
/// [`OutDir`], numbered from its [`OutDir::first_shard`].
///
/// Rounds are written in round-index order whatever order they finish in (a reorder buffer),
/// so the output depends on the seed and settings, not on thread scheduling. With
/// `flush_every`, the shard being filled is also written (atomically, over its earlier
/// versions) once that long has passed since the last write with rows not yet on disk: a
/// crash then loses at most that much work, and the final files are the same as without it.
pub struct ShardWriter {
    out: OutDir,
    shard_size: usize,
    flush_every: Option<Duration>,
    metadata: BTreeMap<String, String>,
    /// Rows of the shard being filled (`shard`), the first `on_disk` of them written.
    pending: Vec<Example>,
    on_disk: usize,
    shard: u64,
    last_write: Instant,
    /// Finished rounds waiting for an earlier round index.
    reorder: BTreeMap<u64, Vec<Example>>,
    next_round: u64,
}

impl ShardWriter {
    /// A writer into `out`; every shard's metadata is `metadata` plus `format_version`,
    /// `rows` and `first_shard` (the number of the run's first shard: the shards of one run
    /// are those with the same `first_shard`).
    pub fn new(
        out: OutDir,
        shard_size: usize,
        flush_every: Option<Duration>,
        mut metadata: BTreeMap<String, String>,
    ) -> ShardWriter {
        assert!(
            (1..=MAX_SHARD_ROWS).contains(&shard_size),
            "shards hold 1..={MAX_SHARD_ROWS} rows"
        );
        metadata.insert("format_version".into(), SHARD_FORMAT_VERSION.into());
        metadata.insert("first_shard".into(), out.first_shard().to_string());
        ShardWriter {
            shard: out.first_shard(),
            out,
            shard_size,
            flush_every,
            metadata,
            pending: Vec::new(),
            on_disk: 0,
            last_write: Instant::now(),
            reorder: BTreeMap::new(),
            next_round: 0,
        }
    }

    /// Most bytes a writer of `shard_size`-row shards holds: a shard's examples and bytes.
    pub fn memory_bound(shard_size: usize) -> u64 {
        2 * (shard_size * std::mem::size_of::<Example>()) as u64
    }

    /// Adds the examples of round `index`. Rounds that are never added (dropped at shutdown)
    /// are skipped by [`ShardWriter::finish`].
    pub fn add_round(&mut self, index: u64, examples: Vec<Example>) -> Result<()> {
        self.reorder.insert(index, examples);
        while let Some(examples) = self.reorder.remove(&self.next_round) {
            self.next_round += 1;
            self.pending.extend(examples);
            while self.pending.len() >= self.shard_size {
                let rest = self.pending.split_off(self.shard_size);
                self.write_pending()?;
                self.pending = rest;
                self.on_disk = 0;
                self.shard += 1;
            }
        }
        self.flush_if_due()
    }

    /// Writes the shard being filled when `flush_every` has passed since the last write and
    /// it holds rows not yet on disk.
    pub fn flush_if_due(&mut self) -> Result<()> {
        match self.flush_every {
            Some(every)
                if self.last_write.elapsed() >= every && self.pending.len() > self.on_disk =>
            {
                self.write_pending()
            }
            _ => Ok(()),
        }
    }

    /// Writes everything still held (later rounds past a gap included); returns the number
    /// of shards the run wrote and the rows in them.
    pub fn finish(mut self) -> Result<(u64, u64)> {
        let held: Vec<Vec<Example>> = std::mem::take(&mut self.reorder).into_values().collect();
        let rows_before = (self.shard - self.out.first_shard()) * self.shard_size as u64;
        let mut rest: Vec<Example> = std::mem::take(&mut self.pending);
        rest.extend(held.into_iter().flatten());
        let rows = rows_before + rest.len() as u64;
        for chunk in rest.chunks(self.shard_size) {
            self.pending = chunk.to_vec();
            self.write_pending()?;
            self.shard += 1;
        }
        Ok((self.shard - self.out.first_shard(), rows))
    }

    /// Writes `pending` as shard number `shard`.
    fn write_pending(&mut self) -> Result<()> {
        let path = self.out.shard_path(self.shard);
        let mut meta = self.metadata.clone();
        meta.insert("rows".into(), self.pending.len().to_string());
        write_atomic(&path, &serialize(&self.pending, meta))?;
        self.on_disk = self.pending.len();
        self.last_write = Instant::now();
        Ok(())
    }
}

impl UnitSink for ShardWriter {
    fn unit_done(&mut self, done: UnitDone) -> Result<()> {
        self.add_round(done.index, done.examples)
    }

    fn tick(&mut self) -> Result<()> {
        self.flush_if_due()
    }
}

/// The safetensors bytes of `examples` with `metadata`.
///
/// Written by hand rather than with `safetensors::serialize`, whose header holds the metadata
/// in hash-map order: here keys are sorted, so the same examples always give the same bytes.
///
/// # Panics
/// If an example's `unit` is 2^63 or more (it does not fit the I64 tensor).
pub fn serialize(examples: &[Example], metadata: BTreeMap<String, String>) -> Vec<u8> {
    let n = examples.len();
    let f32_bytes = |v: Vec<f32>| -> Vec<u8> { v.into_iter().flat_map(f32::to_le_bytes).collect() };
    let state = f32_bytes(examples.iter().flat_map(|e| e.state).collect());
    let policy = f32_bytes(examples.iter().flat_map(|e| e.policy).collect());
    let value = f32_bytes(examples.iter().map(|e| e.value).collect());
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
    let tensors = [
        ("state", "F32", vec![n, INPUT_DIM], state),
        ("policy", "F32", vec![n, POLICY_DIM], policy),
        ("value", "F32", vec![n], value),
        ("mask", "U8", vec![n, POLICY_DIM], mask),
        ("unit", "I64", vec![n], unit),
    ];
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), serde_json::json!(metadata));
    let mut offset = 0;
    for (name, dtype, shape, bytes) in &tensors {
        header.insert(
            name.to_string(),
            serde_json::json!({ "dtype": dtype, "shape": shape, "data_offsets": [offset, offset + bytes.len()] }),
        );
        offset += bytes.len();
    }
    let mut header = serde_json::Value::Object(header).to_string().into_bytes();
    // The format pads the header with spaces so the data starts 8-byte aligned.
    header.resize(header.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + header.len() + offset);
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(&header);
    for (_, _, _, bytes) in &tensors {
        out.extend_from_slice(bytes);
    }
    out
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
mod tests {
    use super::*;

    fn example(seed: usize) -> Example {
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

    fn temp_out(name: &str) -> OutDir {
        let dir = std::env::temp_dir().join(format!("engine-shard-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        OutDir::claim(&dir).unwrap()
    }

    /// The examples of shards `numbers` of `out`, in order, and each shard's metadata.
    fn read_back(out: &OutDir, numbers: std::ops::Range<u64>) -> (Vec<Example>, Vec<Shard>) {
        let shards: Vec<Shard> = numbers
            .map(|n| read_shard(&out.shard_path(n)).unwrap())
            .collect();
        let examples = shards.iter().flat_map(|s| s.examples.clone()).collect();
        (examples, shards)
    }

    #[test]
    fn shard_writer_files_read_back_in_order() {
        let out = temp_out("order");
        let dir = out.path().to_path_buf();
        let meta = BTreeMap::from([("seed".to_string(), "7".to_string())]);
        let mut writer = ShardWriter::new(out, 3, None, meta);
        // Round 1 finishes first: the writer holds it until round 0 is in.
        writer.add_round(1, (3..5).map(example).collect()).unwrap();
        writer.add_round(0, (0..3).map(example).collect()).unwrap();
        assert_eq!(writer.finish().unwrap(), (2, 5));
        let out = OutDir::claim(&dir).unwrap();
        assert_eq!(out.first_shard(), 2, "the next run numbers after these");
        let (examples, read) = read_back(&out, 0..2);
        assert_eq!(examples, (0..5).map(example).collect::<Vec<_>>());
        assert_eq!(read[1].metadata["rows"], "2");
        assert_eq!(read[1].metadata["seed"], "7");
        assert_eq!(read[1].metadata["first_shard"], "0");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_due_flush_puts_every_ordered_row_on_disk_and_changes_no_final_byte() {
        let (flushed, plain) = (temp_out("flushed"), temp_out("plain"));
        let dirs = [flushed.path().to_path_buf(), plain.path().to_path_buf()];
        let mut writer = ShardWriter::new(flushed, 4, Some(Duration::ZERO), BTreeMap::new());
        writer.add_round(0, (0..3).map(example).collect()).unwrap();
        let on_disk = |n| read_shard(&dirs[0].join(format!("shard-00000{n}.safetensors")));
        assert_eq!(on_disk(0).unwrap().examples.len(), 3);
        // Round 2 waits for round 1: not on disk yet.
        writer.add_round(2, (6..9).map(example).collect()).unwrap();
        assert_eq!(on_disk(0).unwrap().examples.len(), 3);
        writer.add_round(1, (3..6).map(example).collect()).unwrap();
        assert_eq!(on_disk(0).unwrap().examples.len(), 4);
        assert_eq!(on_disk(1).unwrap().examples.len(), 4);
        assert_eq!(on_disk(2).unwrap().examples.len(), 1);
        assert_eq!(writer.finish().unwrap(), (3, 9));

        let mut writer = ShardWriter::new(plain, 4, None, BTreeMap::new());
        for r in 0..3 {
            writer
                .add_round(r, (3 * r..3 * r + 3).map(|i| example(i as usize)).collect())
                .unwrap();
        }
        assert_eq!(writer.finish().unwrap(), (3, 9));
        for n in 0..3 {
            let name = format!("shard-00000{n}.safetensors");
            let [a, b] = dirs.clone().map(|d| std::fs::read(d.join(&name)).unwrap());
            assert!(a == b, "{name} differs after flushes");
        }
        dirs.iter()
            .for_each(|d| std::fs::remove_dir_all(d).unwrap());
    }
}
