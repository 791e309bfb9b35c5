//! Continuing a run: which units an earlier run of the same identity already wrote to `--out`.
//!
//! A unit's rows depend only on the run's identity (weights, rules, encoder, search settings,
//! seed: [`ShardMetadata::is_same_run`]) and its index, so a rerun after a fault, a Ctrl-C or a
//! crash skips the units already on disk and plays the others: no row is lost or written twice.
//! Shards of other runs in the directory are left alone. A unit with fewer rows on disk than a
//! unit gives was cut by a crash between two shard writes (the writer splits units across
//! shards): it is not played again (that would duplicate its rows) and is reported.

use super::out_dir::shards_in;
use super::ShardMetadata;
use crate::safetensors::{Dtype, HeaderReadError, SafetensorsHeader};
use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// A set of unit indices, as sorted, disjoint, non-adjacent ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnitSet {
    ranges: Vec<Range<u64>>,
}

impl UnitSet {
    pub fn from_indices(mut indices: Vec<u64>) -> UnitSet {
        indices.sort_unstable();
        indices.dedup();
        let mut ranges: Vec<Range<u64>> = Vec::new();
        for i in indices {
            match ranges.last_mut() {
                Some(last) if last.end == i => last.end += 1,
                _ => ranges.push(i..i + 1),
            }
        }
        UnitSet { ranges }
    }

    pub fn contains(&self, unit: u64) -> bool {
        let after = self.ranges.partition_point(|r| r.end <= unit);
        self.ranges.get(after).is_some_and(|r| r.contains(&unit))
    }

    /// The first unit at or after `unit` that is not in the set.
    pub fn next_missing(&self, unit: u64) -> u64 {
        let after = self.ranges.partition_point(|r| r.end <= unit);
        match self.ranges.get(after) {
            Some(r) if r.start <= unit => r.end,
            _ => unit,
        }
    }

    /// Units of the set below `end`.
    pub fn count_below(&self, end: u64) -> u64 {
        self.ranges
            .iter()
            .map(|r| r.end.min(end).saturating_sub(r.start))
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
}

/// What an earlier run of the same identity left in `--out`.
#[derive(Debug, Default)]
pub struct Finished {
    /// Units with rows on disk: never played again.
    pub units: UnitSet,
    pub rows: u64,
    pub shards: usize,
    /// Units cut by a crash: (unit, rows on disk), fewer than a unit gives.
    pub partial: Vec<(u64, u64)>,
}

#[derive(Debug, Error)]
pub enum ResumeError {
    #[error("cannot list {}: {source}", dir.display())]
    List {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{0}; it sits among this run's shards, so the run cannot tell which rounds it holds: \
         move it out of --out, or choose another --out"
    )]
    Unreadable(#[source] crate::safetensors::SafetensorsError),
    #[error("{}: a shard of this run without a readable `unit` tensor", path.display())]
    NoUnits { path: PathBuf },
}

/// The units that shards of `identity`'s run in `dir` hold; `rows_per_unit` is the number of
/// rows one unit gives.
pub fn finished_units(
    dir: &Path,
    identity: &ShardMetadata,
    rows_per_unit: u64,
) -> Result<Finished, ResumeError> {
    let shards = shards_in(dir).map_err(|source| ResumeError::List {
        dir: dir.to_path_buf(),
        source,
    })?;
    let mut finished = Finished::default();
    let mut units = Vec::new();
    for (_, path) in shards {
        // The header and the `unit` tensor only: a run's shards may be many gigabytes.
        let read_error = |source| ResumeError::Read {
            path: path.clone(),
            source,
        };
        let mut file = File::open(&path).map_err(read_error)?;
        let header = match SafetensorsHeader::read(&mut file, &path.display().to_string()) {
            Ok(header) => header,
            Err(HeaderReadError::Io(source)) => return Err(read_error(source)),
            Err(HeaderReadError::Format(e)) => return Err(ResumeError::Unreadable(e)),
        };
        if !identity.is_same_run(header.metadata()) {
            continue;
        }
        let unit = match header.read_tensor(&mut file, "unit").map_err(read_error)? {
            Some(t) if t.dtype == Dtype::I64 => t.data,
            _ => return Err(ResumeError::NoUnits { path: path.clone() }),
        };
        let before = units.len();
        units.extend(
            unit.chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")) as u64),
        );
        finished.rows += (units.len() - before) as u64;
        finished.shards += 1;
    }
    units.sort_unstable();
    for chunk in units.chunk_by(|a, b| a == b) {
        if (chunk.len() as u64) < rows_per_unit {
            finished.partial.push((chunk[0], chunk.len() as u64));
        }
    }
    finished.units = UnitSet::from_indices(units);
    Ok(finished)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_sets_merge_ranges_and_answer_membership() {
        let set = UnitSet::from_indices(vec![5, 0, 1, 2, 7, 6, 2, 10]);
        assert_eq!(set.ranges, [0..3, 5..8, 10..11]);
        let members: Vec<u64> = (0..12).filter(|&u| set.contains(u)).collect();
        assert_eq!(members, [0, 1, 2, 5, 6, 7, 10]);
        let next: Vec<u64> = (0..12).map(|u| set.next_missing(u)).collect();
        assert_eq!(next, [3, 3, 3, 3, 4, 8, 8, 8, 8, 9, 11, 11]);
        assert_eq!(set.count_below(6), 4);
        assert_eq!(set.count_below(100), 7);
        assert!(UnitSet::default().is_empty() && !set.is_empty());
    }
}
