//! `engine selfplay`'s `--out`: one run owns it at a time, shard numbers never collide across
//! runs, the directory is proven writable before any work, write errors name the file, the
//! shard being filled reaches the disk every `--flush-secs`, and the shards of a seed do not
//! depend on `--workers` or on the flushes. Every case counts the rows on disk.

mod common;

use common::{
    examples_in_summary, refusal, rows_on_disk, selfplay, selfplay_with, shard_files, signal,
    stderr, temp_dir, wait_for, ROWS_PER_ROUND,
};
use engine::selfplay::{read_shard, LOCK_FILE};
use std::process::Stdio;
use std::time::Duration;

/// Generous: the machine may be busy with other tests.
const DEADLINE: Duration = Duration::from_secs(180);

#[test]
fn a_second_run_numbers_its_shards_after_the_first_and_every_row_stays() {
    let dir = temp_dir("out-second-run");
    assert!(selfplay(&dir, 6).status().unwrap().success());
    assert_eq!(shard_files(&dir).len(), 3);
    assert!(selfplay_with(&dir, 3, &["--seed", "2"])
        .status()
        .unwrap()
        .success());
    assert_eq!(rows_on_disk(&dir), 9 * ROWS_PER_ROUND);
    let files = shard_files(&dir);
    let names: Vec<_> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        (0..5)
            .map(|n| format!("shard-{n:06}.safetensors"))
            .collect::<Vec<_>>()
    );
    // The metadata says which run a shard belongs to.
    let first_shard = |n: usize| read_shard(&files[n]).unwrap().metadata["first_shard"].clone();
    assert_eq!([first_shard(2), first_shard(3)], ["0", "3"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Both started together: one may finish before the other claims the directory, or one is
/// refused; either way the rows on disk are exactly those the successful runs report.
#[test]
fn two_runs_started_together_on_one_out_keep_every_row_they_report() {
    let dir = temp_dir("out-together");
    let start = |seed: &str| {
        selfplay_with(&dir, 20, &["--json", "--seed", seed])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (start("1"), start("2"));
    let mut reported = 0;
    let mut refused = 0;
    for out in [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()] {
        match out.status.code() {
            Some(0) => reported += examples_in_summary(&out.stdout),
            Some(1) => {
                assert!(
                    stderr(&out).contains("in use by another self-play run"),
                    "{}",
                    stderr(&out)
                );
                refused += 1;
            }
            other => panic!("exit {other:?}: {}", stderr(&out)),
        }
    }
    assert!(refused < 2, "both runs refused");
    assert_eq!(rows_on_disk(&dir), reported);
    assert_eq!(reported, (2 - refused) * 20 * ROWS_PER_ROUND);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A run started beside a live one is refused, naming the live run, and touches none of its
/// files (its temporaries included); the live run then finishes with every row it reports.
#[test]
fn a_run_beside_a_live_one_is_refused_and_touches_nothing() {
    let dir = temp_dir("out-beside");
    let live = selfplay_with(
        &dir,
        1_000_000,
        &["--json", "--flush-secs", "1", "--shard-size", "1000000"],
    )
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let holder = format!("pid {} on host", live.id());
    wait_for("the live run's first shard", DEADLINE, || {
        !shard_files(&dir).is_empty()
    });
    assert!(std::fs::read_to_string(dir.join(LOCK_FILE))
        .unwrap()
        .contains(&holder));
    // What a live run's shard being written looks like.
    let temporary = dir.join(format!(".shard-000001.safetensors.{}.tmp", live.id()));
    std::fs::write(&temporary, b"being written").unwrap();

    let message = refusal(selfplay(&dir, 2));
    assert!(
        message.contains("in use by another self-play run") && message.contains(&holder),
        "{message}"
    );
    assert!(
        temporary.exists(),
        "the refused run swept the live run's file"
    );

    signal(live.id(), "-INT");
    let out = live.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "an interrupted run exits 130");
    let reported = examples_in_summary(&out.stdout);
    assert!(reported > 0);
    assert_eq!(rows_on_disk(&dir), reported);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_out_that_cannot_be_created_is_refused_before_any_work() {
    let dir = temp_dir("out-unwritable");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("a-file");
    std::fs::write(&file, b"").unwrap();
    let message = refusal(selfplay(&file.join("out"), 1_000_000));
    assert!(
        message.contains("a-file/out is not writable") && message.contains("Not a directory"),
        "{message}"
    );
    assert!(
        !message.contains("freshly initialised"),
        "the net was loaded before the directory was checked: {message}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The refusal of `selfplay` with a file size limit of `bytes` (`ulimit -f`).
fn refusal_with_file_limit(bytes: u64, args: &[&str], out: &std::path::Path) -> String {
    use std::os::unix::process::CommandExt;
    let mut cmd = selfplay_with(out, 1, args);
    let limit = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: bytes,
    };
    // SAFETY: setrlimit is async-signal-safe; it only changes the child's own limit.
    unsafe {
        cmd.pre_exec(move || match libc::setrlimit(libc::RLIMIT_FSIZE, &limit) {
            0 => Ok(()),
            _ => Err(std::io::Error::last_os_error()),
        });
    }
    refusal(cmd)
}

/// A file size limit (`ulimit -f`) is an error that names the file, not a silent SIGXFSZ:
/// below the probe's size before any work, above it at the first shard.
#[test]
fn a_file_size_limit_is_an_error_naming_the_file() {
    let dir = temp_dir("out-fsize");
    let message = refusal_with_file_limit(512 << 10, &[], &dir);
    assert!(
        message.contains("probing") && message.contains("File too large"),
        "{message}"
    );
    // 1,100 KiB: the 1 MiB probe fits, a 1,000-row shard (1.3 MB) does not (and no flush
    // writes a smaller one first, however slow the machine).
    let args = [
        "--rounds",
        "200",
        "--shard-size",
        "1000",
        "--flush-secs",
        "86400",
    ];
    let message = refusal_with_file_limit(1100 << 10, &args, &dir);
    assert!(
        message.contains(".shard-000000.safetensors") && message.contains("File too large"),
        "{message}"
    );
    assert_eq!(rows_on_disk(&dir), 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// With shards far larger than the run, the shard being filled still reaches the disk every
/// `--flush-secs`: a SIGKILL then keeps whole rounds.
#[test]
fn a_long_run_commits_its_rows_every_flush_period() {
    let dir = temp_dir("out-flush");
    let mut child = selfplay_with(
        &dir,
        1_000_000,
        &["--flush-secs", "1", "--shard-size", "1000000"],
    )
    .spawn()
    .unwrap();
    wait_for("a flushed shard", DEADLINE, || {
        !shard_files(&dir).is_empty()
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let rows = rows_on_disk(&dir);
    assert!(
        rows > 0 && rows.is_multiple_of(ROWS_PER_ROUND),
        "{rows} rows"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// README's guarantee: the same seed gives byte-identical shards for any --workers on the
/// CPU, whatever the flushes wrote on the way.
#[test]
fn the_same_seed_gives_byte_identical_shards_for_any_workers_and_flush_period() {
    let run = |name: &str, args: &[&str]| {
        let dir = temp_dir(name);
        let args = [&["--seed", "7", "--shard-size", "40"], args].concat();
        let status = selfplay_with(&dir, 30, &args).status().unwrap();
        assert!(status.success());
        let bytes: Vec<Vec<u8>> = shard_files(&dir)
            .iter()
            .map(|f| std::fs::read(f).unwrap())
            .collect();
        std::fs::remove_dir_all(&dir).unwrap();
        bytes
    };
    let one = run("out-seed-1", &["--workers", "1"]);
    assert_eq!(one.len(), 5);
    assert!(one == run("out-seed-2", &["--workers", "2", "--games-per-worker", "3"]));
    assert!(one == run("out-seed-flush", &["--workers", "2", "--flush-secs", "1"]));
}
