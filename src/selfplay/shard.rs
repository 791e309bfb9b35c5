//! Training shards: safetensors files PyTorch reads with `safetensors.torch.load_file`.
//!
//! Tensors: `state` f32[N,256] (acting player's encoding), `policy` f32[N,52] (root visit
//! shares, 0 on illegal actions), `value` f32[N] (`2·score/23 − 1` of the acting player's
//! round score), `mask` u8[N,52] (legal actions). Metadata (all strings): `format_version`,
//! `rows`, plus what the run adds (engine version, weights sha256, settings, seed).
//! Every file is written atomically ([`crate::fsio::write_atomic`]).

use crate::fsio::{sweep_temporaries, write_atomic};
use crate::net::{INPUT_DIM, POLICY_DIM};
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const SHARD_FORMAT_VERSION: &str = "1";

/// One training example.
#[derive(Clone, Debug)]
pub struct Example {
    pub state: [f32; INPUT_DIM],
    pub policy: [f32; POLICY_DIM],
    pub mask: u64,
    pub value: f32,
}

/// Collects examples and writes them as numbered shards of `shard_size` rows.
///
/// Rounds are written in round-index order whatever order they finish in (a reorder buffer),
/// so the output depends on the seed and settings, not on thread scheduling.
pub struct ShardWriter {
    dir: PathBuf,
    shard_size: usize,
    metadata: BTreeMap<String, String>,
    pending: Vec<Example>,
    /// Finished rounds waiting for an earlier round index.
    reorder: BTreeMap<u64, Vec<Example>>,
    next_round: u64,
    shards_written: usize,
    rows_written: usize,
}

impl ShardWriter {
    pub fn new(
        dir: &Path,
        shard_size: usize,
        metadata: BTreeMap<String, String>,
    ) -> Result<ShardWriter> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating output directory {}", dir.display()))?;
        let stale = sweep_temporaries(dir, "shard-")?;
        if stale > 0 {
            eprintln!(
                "note: removed {stale} unfinished shard file(s) left in {} by a crash",
                dir.display()
            );
        }
        Ok(ShardWriter {
            dir: dir.to_path_buf(),
            shard_size: shard_size.max(1),
            metadata,
            pending: Vec::new(),
            reorder: BTreeMap::new(),
            next_round: 0,
            shards_written: 0,
            rows_written: 0,
        })
    }

    /// Adds the examples of round `index`. Rounds that are never added (dropped at shutdown)
    /// are skipped by [`ShardWriter::finish`].
    pub fn add_round(&mut self, index: u64, examples: Vec<Example>) -> Result<()> {
        self.reorder.insert(index, examples);
        while let Some(examples) = self.reorder.remove(&self.next_round) {
            self.next_round += 1;
            self.push(examples)?;
        }
        Ok(())
    }

    fn push(&mut self, examples: Vec<Example>) -> Result<()> {
        self.pending.extend(examples);
        while self.pending.len() >= self.shard_size {
            let rest = self.pending.split_off(self.shard_size);
            let full = std::mem::replace(&mut self.pending, rest);
            self.write(&full)?;
        }
        Ok(())
    }

    /// Writes everything still held (later rounds past a gap included) as a last shard.
    pub fn finish(mut self) -> Result<(usize, usize)> {
        let held: Vec<Vec<Example>> = std::mem::take(&mut self.reorder).into_values().collect();
        for examples in held {
            self.pending.extend(examples);
        }
        let rest = std::mem::take(&mut self.pending);
        for chunk in rest.chunks(self.shard_size) {
            self.write(chunk)?;
        }
        Ok((self.shards_written, self.rows_written))
    }

    fn write(&mut self, examples: &[Example]) -> Result<()> {
        let path = self
            .dir
            .join(format!("shard-{:06}.safetensors", self.shards_written));
        let mut meta = self.metadata.clone();
        meta.insert("format_version".into(), SHARD_FORMAT_VERSION.into());
        meta.insert("rows".into(), examples.len().to_string());
        write_atomic(&path, &serialize(examples, meta))?;
        self.shards_written += 1;
        self.rows_written += examples.len();
        Ok(())
    }
}

/// The safetensors bytes of `examples` with `metadata`.
///
/// Written by hand rather than with `safetensors::serialize`, whose header holds the metadata
/// in hash-map order: here keys are sorted, so the same examples always give the same bytes.
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
    let tensors = [
        ("state", "F32", vec![n, INPUT_DIM], state),
        ("policy", "F32", vec![n, POLICY_DIM], policy),
        ("value", "F32", vec![n], value),
        ("mask", "U8", vec![n, POLICY_DIM], mask),
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
