//! `engine selfplay` killed with SIGKILL at random moments: every shard on disk is whole (it
//! loads, and its rows match its metadata), and the next run sweeps the temporaries. Nothing
//! here depends on how fast the machine is: a run counts as started when it has put a shard
//! on disk, and is only then killed or interrupted.

mod common;

use common::{selfplay, selfplay_with, shard_files, temp_dir, wait_for, KillOnDrop};
use engine::selfplay::LOCK_FILE;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use safetensors::SafeTensors;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

/// Checks every shard in `dir`; returns how many there are.
fn check_shards(dir: &Path) -> usize {
    let mut shards = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with('.') {
            assert!(
                name.ends_with(".tmp") || name == LOCK_FILE,
                "unexpected hidden file {name}"
            );
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let (_, header) =
            SafeTensors::read_metadata(&bytes).unwrap_or_else(|e| panic!("{name} is torn: {e}"));
        let rows: usize = header.metadata().as_ref().unwrap()["rows"].parse().unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        for (tensor, width) in [
            ("state", 256),
            ("policy", 52),
            ("mask", 52),
            ("value", 1),
            ("unit", 1),
        ] {
            let t = st.tensor(tensor).unwrap();
            assert_eq!(t.shape()[0], rows, "{name}: {tensor} rows");
            assert_eq!(
                t.data().len() * 8 / t.dtype().bitsize() / rows.max(1),
                width,
                "{name}: {tensor} width"
            );
        }
        shards += 1;
    }
    shards
}

/// Twelve runs into one directory, each killed at a random moment after it was seen running
/// (a shard of its own on disk: numbering continues after the earlier runs' shards). The kill
/// moments are random, not synchronisation: whatever they hit, every shard must be whole.
#[test]
fn sigkill_never_leaves_a_torn_shard() {
    let dir = temp_dir("crash");
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    for _ in 0..12 {
        let before = shard_files(&dir).len();
        let mut run = KillOnDrop(selfplay(&dir, 100_000).spawn().unwrap());
        wait_for("a shard of this run", Duration::from_secs(300), || {
            assert!(run.0.try_wait().unwrap().is_none(), "the run exited early");
            shard_files(&dir).len() > before
        });
        std::thread::sleep(Duration::from_millis(rng.random_range(0..400)));
        run.0.kill().unwrap(); // SIGKILL on Unix
        run.0.wait().unwrap();
        assert!(check_shards(&dir) > before);
    }
    // A clean run in the same directory sweeps what the kills left behind.
    assert!(selfplay(&dir, 2).status().unwrap().success());
    check_shards(&dir);
    let leftovers = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".tmp")
        })
        .count();
    assert_eq!(leftovers, 0, "temporaries survived a clean start");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `timeout` and terminals can deliver one interrupt twice (to the process, then to its
/// process group): two SIGINTs back to back still mean "finish up", so the run ends with its
/// summary, whole shards and status 130 instead of aborting.
#[test]
fn an_interrupt_delivered_twice_still_finishes_the_run() {
    let dir = temp_dir("sigint");
    let child = selfplay_with(&dir, 100_000, &["--json", "--flush-secs", "1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // A shard on disk: the run is past its start-up, interrupt handler included.
    wait_for("the first shard", Duration::from_secs(120), || {
        !shard_files(&dir).is_empty()
    });
    let pid = child.id().to_string();
    // One kill(1) sends both, so they land within microseconds even on a loaded machine.
    let kill = std::process::Command::new("kill")
        .args(["-INT", &pid, &pid])
        .status();
    assert!(kill.unwrap().success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "exited with {:?}", out.status);
    let summary = String::from_utf8(out.stdout).unwrap();
    assert!(
        summary.contains("\"interrupted\":true"),
        "summary: {summary}"
    );
    check_shards(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
}
