//! The shard writer of a run: examples in, numbered shard files out, in unit order.

use super::shard::{serialize, Example, MAX_SHARD_ROWS, SHARD_FORMAT_VERSION};
use super::{OutDir, ShardMetadata, UnitDone, UnitSet, UnitSink};
use crate::fsio::write_atomic;
use anyhow::Result;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

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
    /// Rounds an earlier run of the same identity wrote: never added, never waited for.
    finished: UnitSet,
}

impl ShardWriter {
    /// A writer into `out`; every shard's metadata is `metadata` plus `format_version`,
    /// `rows` and `first_shard` (the number of the run's first shard: the shards of one run
    /// are those with the same `first_shard`).
    pub fn new(
        out: OutDir,
        shard_size: usize,
        flush_every: Option<Duration>,
        metadata: ShardMetadata,
    ) -> ShardWriter {
        assert!(
            (1..=MAX_SHARD_ROWS).contains(&shard_size),
            "shards hold 1..={MAX_SHARD_ROWS} rows"
        );
        let mut metadata = metadata.to_map();
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
            finished: UnitSet::default(),
        }
    }

    /// A writer that continues a run: the rounds in `finished` are on disk already.
    pub fn continuing(mut self, finished: UnitSet) -> ShardWriter {
        self.next_round = finished.next_missing(0);
        self.finished = finished;
        self
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
            self.next_round = self.finished.next_missing(self.next_round + 1);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selfplay::shard::tests::example;
    use crate::selfplay::{read_shard, Shard};

    /// A run's provenance with seed 7.
    fn run_metadata() -> ShardMetadata {
        ShardMetadata {
            engine_version: "0.0.0".into(),
            weights_sha256: "ab12".into(),
            encoder: "v2".into(),
            rules: "rounds players=4 cards=3 dealer=random trump=random".into(),
            settings: "{}".into(),
            units: 2,
            seed: 7,
            device: "cpu".into(),
            host: "test".into(),
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
        let mut writer = ShardWriter::new(out, 3, None, run_metadata());
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
        // Exactly the documented keys: the run's and the writer's own.
        let mut keys: Vec<&str> = ShardMetadata::KEYS.to_vec();
        keys.extend(ShardMetadata::FILE_KEYS);
        keys.sort_unstable();
        for shard in &read {
            assert!(shard.metadata.keys().eq(&keys), "{:?}", shard.metadata);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_continuing_writer_skips_the_finished_rounds_and_keeps_order() {
        let out = temp_out("continuing");
        let dir = out.path().to_path_buf();
        let finished = UnitSet::from_indices(vec![0, 2]);
        let mut writer = ShardWriter::new(out, 2, None, run_metadata()).continuing(finished);
        writer.add_round(3, vec![example(3)]).unwrap();
        writer.add_round(1, vec![example(1)]).unwrap();
        // Rounds 1 and 3 are in order with 0 and 2 skipped: one full shard already.
        assert!(dir.join("shard-000000.safetensors").exists());
        writer.add_round(4, vec![example(4)]).unwrap();
        assert_eq!(writer.finish().unwrap(), (2, 3));
        let (examples, _) = read_back(&OutDir::claim(&dir).unwrap(), 0..2);
        assert_eq!(examples, [1, 3, 4].map(example));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_due_flush_puts_every_ordered_row_on_disk_and_changes_no_final_byte() {
        let (flushed, plain) = (temp_out("flushed"), temp_out("plain"));
        let dirs = [flushed.path().to_path_buf(), plain.path().to_path_buf()];
        let mut writer = ShardWriter::new(flushed, 4, Some(Duration::ZERO), run_metadata());
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

        let mut writer = ShardWriter::new(plain, 4, None, run_metadata());
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
