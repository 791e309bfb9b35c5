//! `engine selfplay` killed with SIGKILL at random moments: every shard on disk is whole (it
//! loads, and its rows match its metadata), and the next run sweeps the temporaries. Nothing
//! here depends on how fast the machine is: a run counts as started when its first shard is
//! on disk.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use safetensors::SafeTensors;
use std::io::ErrorKind;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn selfplay(out: &Path, rounds: u32) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_engine"));
    cmd.args([
        "selfplay",
        "--device",
        "cpu",
        "--players",
        "3",
        "--cards",
        "2",
        "--preset",
        "light",
    ])
    .args([
        "--leaf-values",
        "mover",
        "--workers",
        "1",
        "--games-per-worker",
        "4",
        "--shard-size",
        "12",
        "--quiet",
    ])
    .arg("--rounds")
    .arg(rounds.to_string())
    .arg("--out")
    .arg(out)
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    cmd
}

/// Checks every shard in `dir`; returns how many there are (none if `dir` does not exist yet).
fn check_shards(dir: &Path) -> usize {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return 0,
        Err(e) => panic!("{}: {e}", dir.display()),
    };
    let mut shards = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with('.') {
            assert!(name.ends_with(".tmp"), "unexpected hidden file {name}");
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

/// Final shards in `dir`, without reading them (none if `dir` does not exist yet).
fn shard_count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                let name = name.to_string_lossy();
                !name.starts_with('.') && name.ends_with(".safetensors")
            })
            .count()
    })
}

/// Waits until `child`'s run has written a shard into `dir`: proof that it is running, whatever
/// the machine's load. Polls; panics if the run exits first or nothing comes for minutes.
fn wait_for_first_shard(child: &mut Child, dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while shard_count(dir) == 0 {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run exited ({status}) before writing a shard");
        }
        assert!(Instant::now() < deadline, "no shard after 5 minutes");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Kills runs at random moments after they are seen running (a first shard written), each in
/// its own directory; every shard left is whole, and a clean run in each directory sweeps the
/// temporaries. The kill moments are random, not synchronisation: whatever they hit, the
/// check must hold.
#[test]
fn sigkill_never_leaves_a_torn_shard() {
    let root = std::env::temp_dir().join(format!("engine-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    for kill in 0..12 {
        let dir = root.join(kill.to_string());
        let mut child = selfplay(&dir, 100_000).spawn().unwrap();
        wait_for_first_shard(&mut child, &dir);
        std::thread::sleep(Duration::from_millis(rng.random_range(0..400)));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        assert!(check_shards(&dir) > 0);
        // A clean run in the same directory sweeps what the kill left behind.
        assert!(selfplay(&dir, 2).status().unwrap().success());
        check_shards(&dir);
        let leftovers = std::fs::read_dir(&dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with('.')
            })
            .count();
        assert_eq!(leftovers, 0, "temporaries survived a clean start");
    }
    std::fs::remove_dir_all(&root).unwrap();
}

/// `timeout` and terminals can deliver one interrupt twice (to the process, then to its
/// process group): two SIGINTs back to back still mean "finish up", so the run ends cleanly
/// with its summary and whole shards instead of aborting.
#[test]
fn an_interrupt_delivered_twice_still_finishes_the_run() {
    let dir = std::env::temp_dir().join(format!("engine-sigint-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut child = selfplay(&dir, 100_000)
        .arg("--json")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Running (its handlers are installed before any work) once a shard is out.
    wait_for_first_shard(&mut child, &dir);
    let pid = child.id().to_string();
    // One kill(1) sends both, so they land within microseconds even on a loaded machine.
    let kill = Command::new("kill").args(["-INT", &pid, &pid]).status();
    assert!(kill.unwrap().success());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "exited with {:?}", out.status);
    let summary = String::from_utf8(out.stdout).unwrap();
    assert!(
        summary.contains("\"interrupted\":true"),
        "summary: {summary}"
    );
    check_shards(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
}
