//! The `--out` directory of a self-play run, owned by one run at a time.
//!
//! [`OutDir::claim`] takes an advisory lock (`flock` on [`LOCK_FILE`]) for as long as the
//! value lives, so a second run on the same directory is refused with the holder's pid, host
//! and start time (a line the holder writes into the lock file once it holds the lock).
//! Holding the lock, it sweeps the shard temporaries a crashed run left (no live run can own
//! them then), proves the directory writable, and numbers the run's shards after the ones
//! already there, so no run overwrites another's.
//!
//! The lock file stays in the directory after the run: removing it would let a run that had
//! opened it lock a file no later run can see.

use crate::fsio::sweep_temporaries;
use crate::utc::Utc;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The lock file in `--out` (hidden, like the temporaries).
pub const LOCK_FILE: &str = ".selfplay.lock";
/// Names of the shards: `shard-NNNNNN.safetensors`.
pub(crate) const SHARD_PREFIX: &str = "shard-";
pub(crate) const SHARD_SUFFIX: &str = ".safetensors";
/// Size of the probe file written when claiming: a directory that cannot take this much is
/// refused before any work.
const PROBE_BYTES: usize = 1 << 20;

/// Why an output directory could not be claimed. Every variant names the path at fault.
#[derive(Debug, Error)]
pub enum OutDirError {
    #[error(
        "{} is in use by another self-play run ({holder}); wait for it to finish or choose \
         another --out",
        dir.display()
    )]
    Busy { dir: PathBuf, holder: String },
    #[error("{} is not writable: {what} {}: {source}", dir.display(), path.display())]
    Io {
        dir: PathBuf,
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// An output directory claimed for one run; the claim ends when the value is dropped.
#[derive(Debug)]
pub struct OutDir {
    path: PathBuf,
    /// Holds the `flock` while open.
    _lock: File,
    first_shard: u64,
    swept: usize,
}

impl OutDir {
    /// Creates `path` if needed, locks it for this run, sweeps temporaries left by crashed
    /// runs and writes, fsyncs and removes a probe file.
    pub fn claim(path: &Path) -> Result<OutDir, OutDirError> {
        let io = |what: &'static str, at: &Path| {
            let (dir, at) = (path.to_path_buf(), at.to_path_buf());
            move |source| OutDirError::Io {
                dir,
                what,
                path: at,
                source,
            }
        };
        std::fs::create_dir_all(path).map_err(io("creating", path))?;
        let lock_path = path.join(LOCK_FILE);
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(io("opening", &lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = lock.read_to_string(&mut text);
                let holder = match text.lines().next() {
                    Some(line) if !line.is_empty() => line.to_string(),
                    _ => "a run that is starting".to_string(),
                };
                return Err(OutDirError::Busy {
                    dir: path.to_path_buf(),
                    holder,
                });
            }
            Err(TryLockError::Error(e)) => return Err(io("locking", &lock_path)(e)),
        }
        // One line, written over the old one (then cut to length), so that a reader sees a
        // whole line.
        let record = format!("{}\n", holder_line());
        lock.write_all_at(record.as_bytes(), 0)
            .and_then(|()| lock.set_len(record.len() as u64))
            .and_then(|()| lock.sync_data())
            .map_err(io("writing", &lock_path))?;

        let swept = sweep_temporaries(path, SHARD_PREFIX).map_err(io("sweeping", path))?;
        probe(path).map_err(|(at, source)| io("probing", &at)(source))?;
        let first_shard = next_shard_number(path).map_err(io("listing", path))?;
        Ok(OutDir {
            path: path.to_path_buf(),
            _lock: lock,
            first_shard,
            swept,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The number of this run's first shard: one past the highest already in the directory.
    pub fn first_shard(&self) -> u64 {
        self.first_shard
    }

    /// Temporaries left by crashed runs that the claim removed.
    pub fn swept(&self) -> usize {
        self.swept
    }

    /// The path of shard number `n`.
    pub fn shard_path(&self, n: u64) -> PathBuf {
        self.path
            .join(format!("{SHARD_PREFIX}{n:06}{SHARD_SUFFIX}"))
    }
}

/// This machine's name, or `unknown`.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_or_else(|_| "unknown".to_string(), |h| h.trim().to_string())
}

/// `pid P on host H, started YYYY-MM-DD HH:MM:SS UTC`.
fn holder_line() -> String {
    format!(
        "pid {} on host {}, started {}",
        std::process::id(),
        hostname(),
        utc(Utc::now())
    )
}

/// `YYYY-MM-DD HH:MM:SS UTC`.
fn utc(t: Utc) -> String {
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

/// Writes [`PROBE_BYTES`] to a temporary in `dir` (named so that a crash leaves it to the
/// next sweep), fsyncs and removes it.
fn probe(dir: &Path) -> Result<(), (PathBuf, std::io::Error)> {
    let path = dir.join(format!(".{SHARD_PREFIX}probe.{}.tmp", std::process::id()));
    let written = File::create(&path).and_then(|mut f| {
        f.write_all(&vec![0; PROBE_BYTES])?;
        f.sync_all()
    });
    let removed = std::fs::remove_file(&path);
    written.and(removed).map_err(|e| (path, e))
}

/// One past the highest `shard-N.safetensors` number in `dir`, 0 when there is none.
fn next_shard_number(dir: &Path) -> std::io::Result<u64> {
    Ok(shards_in(dir)?.last().map_or(0, |(n, _)| n + 1))
}

/// The `shard-N.safetensors` files in `dir` with their numbers, in number order.
pub(crate) fn shards_in(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut shards = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let number = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix(SHARD_PREFIX))
            .and_then(|n| n.strip_suffix(SHARD_SUFFIX))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(n) = number {
            shards.push((n, path));
        }
    }
    shards.sort_unstable_by_key(|&(n, _)| n);
    Ok(shards)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("engine-outdir-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_second_claim_is_refused_with_the_holder_until_the_first_ends() {
        let dir = temp_dir("busy");
        let first = OutDir::claim(&dir).unwrap();
        let err = OutDir::claim(&dir).unwrap_err().to_string();
        let pid = format!("pid {} on host", std::process::id());
        assert!(err.contains("in use") && err.contains(&pid), "{err}");
        drop(first);
        OutDir::claim(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn numbering_continues_after_the_shards_already_there() {
        let dir = temp_dir("numbering");
        assert_eq!(OutDir::claim(&dir).unwrap().first_shard(), 0);
        for name in [
            "shard-000003.safetensors",
            "shard-x.safetensors",
            "notes.txt",
        ] {
            std::fs::write(dir.join(name), b"").unwrap();
        }
        let out = OutDir::claim(&dir).unwrap();
        assert_eq!(out.first_shard(), 4);
        assert_eq!(out.shard_path(4), dir.join("shard-000004.safetensors"));
        drop(out);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_the_lock_holder_sweeps_temporaries() {
        let dir = temp_dir("sweep");
        let live = OutDir::claim(&dir).unwrap();
        let tmp = dir.join(".shard-000000.safetensors.1.tmp");
        std::fs::write(&tmp, b"a live run's").unwrap();
        assert!(OutDir::claim(&dir).is_err());
        assert!(tmp.exists(), "a refused claim swept a live run's temporary");
        drop(live);
        assert_eq!(OutDir::claim(&dir).unwrap().swept(), 1);
        assert!(!tmp.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(Utc::of_unix(0)), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(Utc::of_unix(951_782_400)), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(Utc::of_unix(1_764_683_540)), "2025-12-02 13:52:20 UTC");
    }
}
