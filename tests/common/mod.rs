//! Helpers of the tests that run `engine selfplay` as a process and look at what it leaves on
//! disk.
#![allow(dead_code)] // each test binary uses its own part

use engine::selfplay::read_shard;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `engine selfplay` of `rounds` small, fast rounds (3 players × 2 cards: 6 rows each) into
/// `out`, one worker, shards of 12 rows, output discarded; a flag in `args` replaces its
/// default.
pub fn selfplay_with(out: &Path, rounds: u64, args: &[&str]) -> Command {
    let rounds = rounds.to_string();
    let defaults = [
        ("--device", "cpu"),
        ("--players", "3"),
        ("--cards", "2"),
        ("--preset", "light"),
        ("--leaf-values", "mover"),
        ("--workers", "1"),
        ("--games-per-worker", "4"),
        ("--shard-size", "12"),
        ("--rounds", rounds.as_str()),
    ];
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_engine"));
    cmd.args(["selfplay", "--quiet"]);
    for (flag, value) in defaults {
        if !args.contains(&flag) {
            cmd.args([flag, value]);
        }
    }
    cmd.args(args)
        .arg("--out")
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// [`selfplay_with`] the defaults.
pub fn selfplay(out: &Path, rounds: u64) -> Command {
    selfplay_with(out, rounds, &[])
}

/// Rows of one round of [`selfplay`].
pub const ROWS_PER_ROUND: u64 = 6;

/// A fresh, empty-to-be directory for test `name`.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("engine-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A fresh directory for a test (see [`temp_dir`]), created, and removed when dropped: also
/// when the test fails, so failed runs leave nothing behind either.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let dir = temp_dir(name);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The shard files in `dir`, in name order (none while `dir` does not exist yet).
pub fn shard_files(dir: &Path) -> Vec<PathBuf> {
    let entries = match std::fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return vec![],
        entries => entries.unwrap(),
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("shard-") && name.ends_with(".safetensors")
        })
        .collect();
    files.sort();
    files
}

/// Rows in all shards of `dir`, each read with the strict reader (a torn or malformed shard
/// fails the test).
pub fn rows_on_disk(dir: &Path) -> u64 {
    shard_files(dir)
        .iter()
        .map(|f| {
            read_shard(f)
                .unwrap_or_else(|e| panic!("{e}"))
                .examples
                .len() as u64
        })
        .sum()
}

/// Polls `condition` until it holds; fails the test after `deadline` (generous: the machine
/// may be busy).
pub fn wait_for(what: &str, deadline: Duration, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child process killed (SIGKILL) and reaped when dropped, so a test that fails while a
/// run is going leaves no run behind.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // Already exited and reaped: both calls fail harmlessly.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends `signal` (`-INT`, `-KILL`, …) to process `pid`.
pub fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {signal} {pid}");
}

/// The `examples` field of a `selfplay --json` summary.
pub fn examples_in_summary(stdout: &[u8]) -> u64 {
    let summary: serde_json::Value = serde_json::from_slice(stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(stdout)));
    summary["examples"].as_u64().unwrap()
}

/// What a process wrote to stderr.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `cmd`, which must fail with status 1; returns its error message.
pub fn refusal(mut cmd: Command) -> String {
    let out = cmd.stderr(Stdio::piped()).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    stderr(&out)
}

/// Asserts `out` is a usage error (status 2, before any work) whose message says `expected`;
/// `what` names the case in a failure. Returns the message.
pub fn usage_error(out: &Output, what: &dyn std::fmt::Debug, expected: &str) -> String {
    let message = stderr(out);
    assert_eq!(out.status.code(), Some(2), "{what:?}: {message}");
    assert!(message.contains(expected), "{what:?}: {message}");
    message
}

/// Runs `engine ARGS` to the end with `input` on its stdin.
pub fn engine_with_input(args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_engine"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    drop(stdin); // EOF

    child.wait_with_output().unwrap()
}

/// Runs `engine ARGS` to the end, stdin empty.
pub fn engine(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_engine"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}
