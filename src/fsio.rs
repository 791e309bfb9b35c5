//! Atomic file output: a reader sees the old file or the complete new one, never a torn write.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The step of [`write_atomic`] that failed and the file it failed on, with the OS error as
/// its source. [`write_atomic`] returns it inside an [`io::Error`] of the OS error's kind:
/// the message names the file, and `source()` of that error is the OS error.
#[derive(Debug, Error)]
#[error("{step} {}{}: {source}", .path.display(), destination(.to.as_deref()))]
pub struct WriteStepError {
    /// `creating`, `writing`, `syncing`, `renaming` (to [`WriteStepError::to`]) or
    /// `syncing directory`.
    pub step: &'static str,
    pub path: PathBuf,
    /// The final path, for `renaming` (then part of the message).
    pub to: Option<PathBuf>,
    #[source]
    pub source: io::Error,
}

/// ` to <path>` for a rename, nothing for the other steps.
fn destination(to: Option<&Path>) -> String {
    to.map_or_else(String::new, |to| format!(" to {}", to.display()))
}

impl WriteStepError {
    /// Wraps the OS error of `step` on `path` (renamed `to`, for a rename) in an
    /// [`io::Error`] of the same kind.
    fn wrap<'a>(
        step: &'static str,
        path: &'a Path,
        to: Option<&'a Path>,
    ) -> impl FnOnce(io::Error) -> io::Error + 'a {
        move |source| {
            let kind = source.kind();
            let path = path.to_owned();
            let to = to.map(Path::to_owned);
            io::Error::new(
                kind,
                WriteStepError {
                    step,
                    path,
                    to,
                    source,
                },
            )
        }
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory: write, fsync,
/// rename over `path`, fsync the directory (so the rename itself survives a crash). An error
/// names the file and the step that failed ([`WriteStepError`]) and keeps the OS error's kind
/// (`File too large` past `ulimit -f`, `No space left on device`, …).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Some(name) = path.file_name() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} has no file name", path.display()),
        ));
    };
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| -> io::Result<()> {
        let step = |step| WriteStepError::wrap(step, &tmp, None);
        let mut f = File::create(&tmp).map_err(step("creating"))?;
        f.write_all(bytes).map_err(step("writing"))?;
        f.sync_all().map_err(step("syncing"))?;
        std::fs::rename(&tmp, path).map_err(WriteStepError::wrap("renaming", &tmp, Some(path)))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(WriteStepError::wrap("syncing directory", dir, None))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Removes temporary files [`write_atomic`] left in `dir` for names starting with `prefix`
/// (a crash between create and rename); returns how many were removed. Only the owner of
/// `dir` may call it: another live writer's temporaries look the same.
pub fn sweep_temporaries(dir: &Path, prefix: &str) -> std::io::Result<usize> {
    let mut removed = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(&format!(".{prefix}")) && name.ends_with(".tmp") {
            std::fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_file_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("engine-fsio-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out.bin");
        write_atomic(&path, b"first").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        std::fs::write(dir.join(".out.bin.123.tmp"), b"torn").unwrap();
        std::fs::write(dir.join(".other.123.tmp"), b"not ours").unwrap();
        assert_eq!(sweep_temporaries(&dir, "out").unwrap(), 1);
        assert!(dir.join(".other.123.tmp").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_error_names_the_step_and_file_and_keeps_the_os_error() {
        let dir = std::env::temp_dir().join(format!("engine-fsio-missing-{}", std::process::id()));
        let err = write_atomic(&dir.join("out.bin"), b"x").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        let tmp = dir.join(format!(".out.bin.{}.tmp", std::process::id()));
        assert!(
            err.to_string()
                .starts_with(&format!("creating {}: ", tmp.display())),
            "{err}"
        );
        let step = err.get_ref().unwrap().downcast_ref::<WriteStepError>();
        assert!(matches!(step, Some(s) if s.step == "creating" && s.path == tmp));
        let source = std::error::Error::source(&err).unwrap();
        let os = source.downcast_ref::<io::Error>().unwrap();
        assert_eq!(os.kind(), io::ErrorKind::NotFound);
        let err = write_atomic(Path::new("/"), b"x").unwrap_err();
        assert_eq!(err.to_string(), "/ has no file name");
    }
}
