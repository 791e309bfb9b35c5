//! Where a command's words go. Results on stdout (`out!`); notes and progress bars on stderr,
//! none of them with `--quiet`; errors on stderr always. With `--log-file FILE`, a copy of
//! all of it (results, notes, errors, and a progress line every [`PROGRESS_EVERY`]) is
//! appended to FILE, each line stamped with the UTC time.

use engine::utc::Utc;
use indicatif::{ProgressBar, ProgressStyle};
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How often a running progress bar writes its state to the log file.
const PROGRESS_EVERY: Duration = Duration::from_secs(30);

struct Log {
    quiet: bool,
    file: Option<Mutex<File>>,
}

static LOG: OnceLock<Log> = OnceLock::new();

fn log() -> &'static Log {
    LOG.get_or_init(|| Log {
        quiet: false,
        file: None,
    })
}

/// Sets `--quiet` and opens `--log-file` (appending), which records the command line first.
pub(crate) fn init(quiet: bool, log_file: Option<&Path>) -> std::io::Result<()> {
    let file = match log_file {
        Some(path) => {
            let file = File::options().create(true).append(true).open(path)?;
            Some(Mutex::new(file))
        }
        None => None,
    };
    let _ = LOG.set(Log { quiet, file });
    let args: Vec<String> = std::env::args().collect();
    record(&format!("$ {}", args.join(" ")));
    Ok(())
}

/// True with `--quiet`.
pub(crate) fn quiet() -> bool {
    log().quiet
}

/// Appends `text`, one stamped line per line of it, to the log file if there is one. A write
/// error is dropped: a log nobody can write must not stop the work.
pub(crate) fn record(text: &str) {
    let Some(file) = &log().file else { return };
    let stamp = utc_timestamp(Utc::now());
    let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let _ = writeln!(file, "{stamp} {line}");
    }
    let _ = file.flush();
}

/// A note (device, fallbacks, hints): stderr unless `--quiet`, and the log file.
pub(crate) fn note(text: &str) {
    if !quiet() {
        let _ = writeln!(std::io::stderr(), "{text}");
    }
    record(text);
}

/// An error: stderr always, and the log file.
pub(crate) fn error(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
    record(text);
}

/// A progress bar on stderr (hidden with `--quiet`) that also writes its state to the log
/// file every [`PROGRESS_EVERY`].
pub(crate) struct Progress {
    bar: ProgressBar,
    /// What the position counts, for the log ("rounds", "deals").
    unit: &'static str,
    last_logged: Mutex<Instant>,
}

impl Progress {
    /// A bar of `len` steps (0: set later) drawn by `template` (indicatif's).
    pub(crate) fn new(len: u64, unit: &'static str, template: &str) -> Progress {
        let bar = if quiet() {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(len)
        };
        bar.set_style(ProgressStyle::with_template(template).expect("valid template"));
        Progress {
            bar,
            unit,
            last_logged: Mutex::new(Instant::now()),
        }
    }

    /// The bar itself, for what the wrapper does not set (length, ticks).
    pub(crate) fn bar(&self) -> &ProgressBar {
        &self.bar
    }

    /// Moves the bar to `position` with `message`.
    pub(crate) fn update(&self, position: u64, message: String) {
        self.bar.set_position(position);
        if log().file.is_some() {
            let mut last = self.last_logged.lock().unwrap_or_else(|e| e.into_inner());
            if last.elapsed() >= PROGRESS_EVERY {
                *last = Instant::now();
                let len = self.bar.length().unwrap_or(0);
                let eta = self.bar.eta().as_secs();
                record(&format!(
                    "progress: {position}/{len} {}, {message}, ETA {eta} s",
                    self.unit
                ));
            }
        }
        self.bar.set_message(message);
    }

    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// `2026-12-02T18:44:52Z`.
fn utc_timestamp(t: Utc) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

#[cfg(test)]
mod tests {
    use super::utc_timestamp;
    use engine::utc::Utc;

    #[test]
    fn timestamps_are_iso_8601_utc() {
        let at = |secs| utc_timestamp(Utc::of_unix(secs));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_796_150_692), "2026-12-01T18:44:52Z");
    }
}
