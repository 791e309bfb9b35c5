//! The Python scripts' tests (`scripts/tests/`: checkpoint conversion, training, the generation loop, its plots
//! and the sweep's, the fair PyTorch GPU baseline's CPU smoke run, atomic writes),
//! run against this build's `engine` binary when a Python with PyTorch is at hand: `ENGINE_PYTHON`,
//! else `python3`. Without one the tests report `ignored (<why>)` (tests/harness); `make python-tests` sets up
//! a virtual environment from `scripts/requirements.txt` and runs them. Also: `scripts/shard_format.py`, the
//! Python side's one copy of the engine's constants, matches them, and `scripts/read_shard.py` and the Rust
//! shard reader agree on real self-play shards. The scripts are a package, run as `python -m scripts.NAME`
//! from the repository root.

mod harness;

use engine::net::{INPUT_DIM, POLICY_DIM};
use engine::selfplay::{read_shard, serialize, Example, Shard, SHARD_FORMAT_VERSION};
use harness::{Outcome, Skip};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// The Python to use, if it imports `modules` (comma-separated); else why the test skips.
/// `ENGINE_REQUIRE_PYTHON=1` (set by CI) turns that skip into a failure.
fn python_with(modules: &str) -> Result<String, Skip> {
    let python = std::env::var("ENGINE_PYTHON").unwrap_or_else(|_| "python3".to_string());
    let probe = Command::new(&python)
        .args(["-c", &format!("import {modules}")])
        .output();
    let why = match probe {
        Ok(out) if out.status.success() => return Ok(python),
        Ok(out) => {
            let err = String::from_utf8_lossy(&out.stderr);
            let reason = err.lines().last().unwrap_or("").to_string();
            format!("`{python}` lacks {modules} ({reason})")
        }
        Err(e) => format!("no `{python}` ({e})"),
    };
    let why = format!("{why}; set ENGINE_PYTHON or run `make python-tests`");
    if std::env::var("ENGINE_REQUIRE_PYTHON").is_ok_and(|v| v == "1") {
        panic!("ENGINE_REQUIRE_PYTHON=1, but {why}");
    }
    Err(Skip(why))
}

fn python_scripts() -> Outcome {
    let python = python_with("torch, safetensors, tqdm, matplotlib, tensorboard")?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(&python)
        .args("-m unittest discover -s scripts/tests -t . -v".split(' '))
        .current_dir(root)
        .env("ENGINE_BIN", env!("CARGO_BIN_EXE_engine"))
        .env("PYTHONDONTWRITEBYTECODE", "1") // no __pycache__ in the source tree
        .output()
        .expect("running the Python tests");
    // unittest reports on stderr; pass it on (this harness does not capture output).
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "Python tests failed (see above)");
    Ok(())
}

/// Each tensor of `shard` as the little-endian bytes a shard file holds.
fn tensor_bytes(shard: &Shard) -> [(&'static str, Vec<u8>); 5] {
    let ex = &shard.examples;
    let f32s = |xs: Vec<f32>| -> Vec<u8> { xs.into_iter().flat_map(f32::to_le_bytes).collect() };
    [
        ("state", f32s(ex.iter().flat_map(|e| e.state).collect())),
        ("policy", f32s(ex.iter().flat_map(|e| e.policy).collect())),
        ("value", f32s(ex.iter().map(|e| e.value).collect())),
        (
            "mask",
            ex.iter()
                .flat_map(|e| (0..POLICY_DIM).map(move |a| (e.mask >> a & 1) as u8))
                .collect(),
        ),
        (
            "unit",
            ex.iter()
                .flat_map(|e| (e.unit as i64).to_le_bytes())
                .collect(),
        ),
    ]
}

/// `python -m scripts.MODULE ARGS` from the repository root, without writing `__pycache__` there.
fn python_module(python: &str, module: &str) -> Command {
    let mut cmd = Command::new(python);
    cmd.args(["-m", &format!("scripts.{module}")])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("PYTHONDONTWRITEBYTECODE", "1");
    cmd
}

/// `rows` examples: every state entry 0.5, all visits and the only legal action on action 0, value −1, unit = row.
fn examples(rows: u64) -> Vec<Example> {
    (0..rows)
        .map(|i| Example {
            state: [0.5; INPUT_DIM],
            policy: std::array::from_fn(|a| f32::from(u8::from(a == 0))),
            mask: 1,
            value: -1.0,
            unit: i,
        })
        .collect()
}

/// `scripts/shard_format.py`, where every script takes the engine's constants from, holds the
/// engine's: the network's input and policy sizes, the shard format version, and the tensors of a
/// shard (names, dtypes, shapes after the row count, in order) as [`serialize`] writes them.
fn python_shard_format_is_the_engines() -> Outcome {
    let python = python_with("json")?;
    let out = python_module(&python, "shard_format")
        .output()
        .expect("running scripts.shard_format");
    assert!(
        out.status.success(),
        "scripts.shard_format: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let py: Value = serde_json::from_slice(&out.stdout).expect("scripts.shard_format prints JSON");

    // A safetensors file: an 8-byte little-endian header length, then the header (JSON).
    let rows = 3;
    let bytes = serialize(&examples(rows), BTreeMap::new());
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: BTreeMap<String, Value> = serde_json::from_slice(&bytes[8..8 + len]).unwrap();
    let mut tensors: Vec<(&String, &Value)> = header
        .iter()
        .filter(|(name, _)| *name != "__metadata__")
        .collect();
    tensors.sort_by_key(|(_, t)| t["data_offsets"][0].as_u64().unwrap());
    let tensors: Vec<Value> = tensors
        .into_iter()
        .map(|(name, t)| {
            let dtype = match t["dtype"].as_str().unwrap() {
                "F32" => "float32",
                "U8" => "uint8",
                "I64" => "int64",
                other => panic!("{name}: dtype {other} has no numpy name here"),
            };
            let shape = t["shape"].as_array().unwrap();
            assert_eq!(shape[0], json!(rows), "{name}: rows first");
            let shape: Vec<Value> = std::iter::once(json!("N"))
                .chain(shape[1..].iter().cloned())
                .collect();
            json!({"name": name, "dtype": dtype, "shape": shape})
        })
        .collect();
    let engine = json!({
        "input_dim": INPUT_DIM,
        "policy_dim": POLICY_DIM,
        "shard_format_version": SHARD_FORMAT_VERSION,
        "shard_tensors": tensors,
    });
    assert_eq!(
        py, engine,
        "scripts/shard_format.py (left) differs from the engine (right)"
    );
    Ok(())
}

/// 8 rounds of 3 players × 2 cards: a few dozen examples, so several shards of 20 rows.
const SELFPLAY: &str = "selfplay --players 3 --cards 2 --rounds 8 --shard-size 20 \
                        --preset light --device cpu --workers 1 --seed 1 --quiet";

/// `engine selfplay` writes a few shards (the last one partial); `scripts/read_shard.py` and
/// [`read_shard`] must see the same rows, metadata and tensor bytes (SHA-256) in each, and
/// `scripts/count_units.py` every round's rows once.
fn read_shard_py_agrees_with_the_rust_reader() -> Outcome {
    let python = python_with("numpy, safetensors")?;
    let dir = std::env::temp_dir().join(format!("engine-read-shard-py-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new(env!("CARGO_BIN_EXE_engine"))
        .args(SELFPLAY.split_whitespace())
        .arg("--out")
        .arg(&dir)
        .output()
        .expect("running engine selfplay");
    assert!(
        out.status.success(),
        "engine selfplay: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut shards: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    shards.sort();
    assert!(shards.len() >= 2, "expected several shards, got {shards:?}");

    let out = python_module(&python, "read_shard")
        .args(&shards)
        .output()
        .expect("running scripts.read_shard");
    assert!(
        out.status.success(),
        "scripts.read_shard: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let summaries: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(summaries.len(), shards.len(), "{stdout}");

    for (path, py) in shards.iter().zip(&summaries) {
        let shard = read_shard(path).unwrap();
        let name = path.display();
        assert_eq!(py["rows"], json!(shard.examples.len()), "{name}");
        assert_eq!(py["metadata"], json!(shard.metadata), "{name}");
        for (key, bytes) in tensor_bytes(&shard) {
            let sha: String = Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(py["sha256"][key], json!(sha), "{name}: tensor {key}");
        }
    }

    // scripts/count_units.py: 8 rounds of 6 rows each, no unit missing or doubled; asked for 9
    // rounds, it names the missing one and fails.
    let count = |units: &str| {
        python_module(&python, "count_units")
            .arg(&dir)
            .args(["--units", units, "--rows-per-unit", "6"])
            .output()
            .expect("running scripts.count_units")
    };
    let out = count("8");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let counted: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (&counted["rows"], &counted["units"]),
        (&json!(48), &json!(8))
    );
    let out = count("9");
    assert_eq!(out.status.code(), Some(1));
    let counted: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(counted["missing"], json!([8]));
    std::fs::remove_dir_all(&dir).unwrap();
    Ok(())
}

/// `scripts/read_shard.py` refuses what the Rust reader refuses for the `unit` column: a
/// format-1 shard (named by its version, not by its missing tensor) and a negative unit.
fn read_shard_py_refuses_old_versions_and_negative_units() -> Outcome {
    let python = python_with("numpy, safetensors")?;
    let dir = std::env::temp_dir().join(format!("engine-read-shard-bad-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let examples = examples(3);
    let meta = |version: &str| {
        BTreeMap::from([
            ("format_version".to_string(), version.to_string()),
            ("rows".to_string(), "3".to_string()),
        ])
    };
    // The unit tensor is written last: its last 8 bytes are row 2's unit.
    let mut negative = serialize(&examples, meta(SHARD_FORMAT_VERSION));
    let len = negative.len();
    negative[len - 8..].copy_from_slice(&(-4i64).to_le_bytes());
    let cases = [
        (
            "good",
            serialize(&examples, meta(SHARD_FORMAT_VERSION)),
            None,
        ),
        (
            "old",
            serialize(&examples, meta("1")),
            Some("format_version 1, this reader reads 2;"),
        ),
        ("negative", negative, Some("unit of row 2 is -4")),
    ];
    for (name, bytes, error) in cases {
        let path = dir.join(format!("{name}.safetensors"));
        std::fs::write(&path, &bytes).unwrap();
        let rust = read_shard(&path);
        let out = python_module(&python, "read_shard")
            .arg(&path)
            .output()
            .expect("running scripts.read_shard");
        let stderr = String::from_utf8_lossy(&out.stderr);
        match error {
            None => {
                assert!(out.status.success(), "{name}: {stderr}");
                assert_eq!(rust.unwrap().examples, examples);
            }
            Some(text) => {
                assert!(
                    !out.status.success(),
                    "{name}: scripts.read_shard accepted it"
                );
                assert!(stderr.contains(text), "{name}: {stderr}");
                let err = rust.expect_err(name).to_string();
                assert!(err.contains(text), "{name}: {err}");
            }
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
    Ok(())
}

fn main() -> ExitCode {
    harness::run(tests![
        python_scripts,
        python_shard_format_is_the_engines,
        read_shard_py_agrees_with_the_rust_reader,
        read_shard_py_refuses_old_versions_and_negative_units
    ])
}
