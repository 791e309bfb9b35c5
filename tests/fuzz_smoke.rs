//! The fuzz targets' entry points on stable Rust, for CI (which has no cargo-fuzz): thousands of
//! seeded inputs per entry point, random bytes and valid files or lines with bytes flipped,
//! cut, inserted or copied, must each come back as `Ok` or a named `Err`, never a panic; the
//! shard inputs also through the header-only safetensors reader, which must agree with the
//! whole-file one.
//!
//! `scripts/fuzz.sh` runs the same entry points under libFuzzer (`fuzz/fuzz_targets/`), with
//! this test's valid inputs as its seed corpus: with `FUZZ_SEED_DIR` set, the test writes them
//! to `$FUZZ_SEED_DIR/<target>/`.

use engine::analyze::{parse_line, serve, AnalyzeConfig, ServeSummary};
use engine::net::weights::{Dims, Weights};
use engine::net::UniformBackend;
use engine::safetensors::{HeaderReadError, SafetensorsFile, SafetensorsHeader};
use engine::search::SearchConfig;
use engine::selfplay::{parse_shard, serialize, Example, SHARD_FORMAT_VERSION};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Inputs per entry point: the three together take well under a second in release.
const CASES: usize = 20_000;
/// Mutated queries sent through the whole analysis server.
const SERVED: usize = 3_000;

/// Names the input in errors; every rejection must mention it.
const SOURCE: &str = "fuzz-input";

/// Runs `entry` on `input`; a panic fails the test, with the input saved for replaying
/// (`cargo +nightly fuzz run <target> <file>`).
fn run_one<R>(target: &str, input: &[u8], entry: impl FnOnce(&[u8]) -> R) -> R {
    match catch_unwind(AssertUnwindSafe(|| entry(input))) {
        Ok(result) => result,
        Err(_) => {
            let path = std::env::temp_dir().join(format!("fuzz-smoke-{target}.crash"));
            std::fs::write(&path, input).expect("saving the input that panicked");
            panic!(
                "{target} panicked (message above) on an input saved to {}",
                path.display()
            );
        }
    }
}

/// Writes the valid inputs as seed files when `FUZZ_SEED_DIR` is set.
fn export_seeds(target: &str, seeds: &[Vec<u8>]) {
    let Some(root) = std::env::var_os("FUZZ_SEED_DIR") else {
        return;
    };
    let dir = std::path::Path::new(&root).join(target);
    std::fs::create_dir_all(&dir).expect("creating the seed directory");
    for (i, seed) in seeds.iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i}")), seed).expect("writing a seed");
    }
}

/// Bytes that matter to JSON and to little-endian lengths, for overwriting and inserting.
const INTERESTING: &[u8] = b"{}[],:\"\\0123456789-+.eE \x00\x7f\x80\xff";
/// JSON fragments to splice in: wrong types, huge and negative numbers, broken structure.
const TOKENS: &[&str] = &[
    "null",
    "true",
    "-1",
    "0",
    "52",
    "1e400",
    "1.5",
    "-0",
    "\"\"",
    "\"x\"",
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    "[]",
    "{}",
    "18446744073709551616",
    "\"\\ud800\"",
    "\"F32\"",
    "\"U8\"",
];

/// Applies 1 to 4 random edits to `seed`. Positions fall before `focus` (a file's header)
/// half the time, since the data bytes behind it are rarely interesting.
fn mutate(rng: &mut ChaCha8Rng, seed: &[u8], focus: usize) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        let len = bytes.len();
        let limit = if rng.random_bool(0.5) {
            focus.min(len)
        } else {
            len
        };
        let at = if limit == 0 {
            0
        } else {
            rng.random_range(0..=limit)
        };
        match rng.random_range(0..7) {
            0 if at < len => bytes[at] ^= 1 << rng.random_range(0..8),
            1 if at < len => bytes[at] = INTERESTING[rng.random_range(0..INTERESTING.len())],
            2 => bytes.truncate(at),
            3 => {
                let token = TOKENS[rng.random_range(0..TOKENS.len())];
                bytes.splice(at..at, token.bytes());
            }
            4 => {
                let end = rng.random_range(at..=len.min(at + 16));
                bytes.drain(at..end);
            }
            5 if len > 0 => {
                let from = rng.random_range(0..len);
                let chunk = bytes[from..len.min(from + 32)].to_vec();
                bytes.splice(at..at, chunk);
            }
            6 if len >= 8 => {
                // A little-endian integer, most often over the header length.
                let at = if rng.random_bool(0.5) {
                    0
                } else {
                    rng.random_range(0..=len - 8)
                };
                let value: u64 = match rng.random_range(0..5) {
                    0 => 0,
                    1 => u64::MAX,
                    2 => len as u64,
                    3 => 100_000_001,
                    _ => rng.random_range(0..2 * len as u64),
                };
                bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
            }
            _ => bytes.insert(at, rng.random()),
        }
    }
    bytes
}

/// A safetensors file with its header edited as text and the length prefix fixed up, so the
/// edit reaches the JSON and layout checks instead of failing at the length.
fn mutate_header(rng: &mut ChaCha8Rng, file: &[u8]) -> Vec<u8> {
    let header_len = u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
    let (header, data) = file[8..].split_at(header_len);
    let header = mutate(rng, header, header.len());
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&header);
    out.extend_from_slice(data);
    out
}

fn random_bytes(rng: &mut ChaCha8Rng) -> Vec<u8> {
    let len = rng.random_range(0..64);
    (0..len).map(|_| rng.random()).collect()
}

/// A safetensors file: mutated as bytes (mostly in the header) or as header text.
fn mutate_file(rng: &mut ChaCha8Rng, file: &[u8]) -> Vec<u8> {
    if rng.random_bool(0.5) {
        mutate_header(rng, file)
    } else {
        let header_end = 8 + u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
        mutate(rng, file, header_end)
    }
}

/// JSON values to put in place of a query's: wrong types, edges of the ranges, huge numbers.
const VALUES: &[&str] = &[
    "null",
    "true",
    "-1",
    "0",
    "1",
    "2",
    "3",
    "7",
    "8",
    "13",
    "51",
    "52",
    "255",
    "256",
    "65535",
    "65536",
    "4294967296",
    "1.5",
    "1e30",
    "\"x\"",
    "\"mover\"",
    "[]",
    "{}",
    "[0,1]",
    "[[0,51]]",
    "[null]",
    "[3,3,3]",
    "{\"leader\":0,\"cards\":[[0,1]]}",
];

/// Replaces a random node of `value` (or removes an object's key) with one of [`VALUES`].
fn mutate_value(rng: &mut ChaCha8Rng, value: &mut Value) {
    match value {
        Value::Array(items) if !items.is_empty() && rng.random_bool(0.7) => {
            let i = rng.random_range(0..items.len());
            mutate_value(rng, &mut items[i]);
        }
        Value::Object(map) if !map.is_empty() && rng.random_bool(0.8) => {
            let key = map
                .keys()
                .nth(rng.random_range(0..map.len()))
                .unwrap()
                .clone();
            if rng.random_bool(0.15) {
                map.remove(&key);
            } else {
                mutate_value(rng, map.get_mut(&key).unwrap());
            }
        }
        _ => {
            let text = VALUES[rng.random_range(0..VALUES.len())];
            *value = serde_json::from_str(text).expect("VALUES are JSON");
        }
    }
}

/// A query line: mutated as bytes, or as JSON (so the edit reaches the field checks).
fn mutate_line(rng: &mut ChaCha8Rng, line: &[u8]) -> Vec<u8> {
    match serde_json::from_slice::<Value>(line) {
        Ok(mut value) if rng.random_bool(0.5) => {
            for _ in 0..rng.random_range(1..=3) {
                mutate_value(rng, &mut value);
            }
            value.to_string().into_bytes()
        }
        _ => mutate(rng, line, line.len()),
    }
}

/// Feeds `entry` the seeds, then random bytes and seeds changed by `mutator`; `entry` says
/// whether it accepted the input.
fn fuzz(
    target: &str,
    seed: u64,
    seeds: &[Vec<u8>],
    mutator: fn(&mut ChaCha8Rng, &[u8]) -> Vec<u8>,
    mut entry: impl FnMut(&[u8]) -> bool,
) {
    export_seeds(target, seeds);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut accepted = 0;
    for seed in seeds {
        assert!(
            run_one(target, seed, &mut entry),
            "{target}: a seed was rejected"
        );
    }
    for case in 0..CASES {
        let input = if case % 8 == 0 {
            random_bytes(&mut rng)
        } else {
            let seed = &seeds[rng.random_range(0..seeds.len())];
            mutator(&mut rng, seed)
        };
        accepted += usize::from(run_one(target, &input, &mut entry));
    }
    eprintln!("{target}: {CASES} inputs, {accepted} accepted");
}

/// A tiny net as written by [`Weights::save`], in f32, and the same net in f16.
fn weights_seeds() -> Vec<Vec<u8>> {
    let dims = Dims {
        embedding: 2,
        layers: 2,
        ffn: 2,
        policy_hidden: 2,
        value_hidden: 2,
        ..Dims::default()
    };
    let weights = Weights::init_with_dims(dims, 9);
    let path = std::env::temp_dir().join(format!("fuzz-smoke-{}.safetensors", std::process::id()));
    weights.save(&path).unwrap();
    let f32_file = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();

    let halves: Vec<(String, Vec<usize>, Vec<u8>)> = weights
        .tensors()
        .map(|(key, t)| {
            let bytes = t
                .data
                .iter()
                .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
                .collect();
            (key.to_string(), t.shape.clone(), bytes)
        })
        .collect();
    let views = halves.iter().map(|(key, shape, bytes)| {
        let view =
            safetensors::tensor::TensorView::new(safetensors::Dtype::F16, shape.clone(), bytes)
                .unwrap();
        (key.as_str(), view)
    });
    let f16_file = safetensors::serialize(views, None).unwrap();
    vec![f32_file, f16_file]
}

#[test]
fn weights_loader_never_panics() {
    fuzz(
        "weights_loader",
        1,
        &weights_seeds(),
        mutate_file,
        |bytes| match Weights::from_bytes(bytes, SOURCE) {
            Ok(weights) => {
                assert_eq!(weights.param_count(), weights.dims().param_count());
                true
            }
            Err(err) => {
                assert!(err.to_string().contains(SOURCE), "unnamed: {err}");
                false
            }
        },
    );
}

fn example(i: usize) -> Example {
    Example {
        state: std::array::from_fn(|j| ((i + j) % 3) as f32 - 1.0),
        policy: std::array::from_fn(|a| if a == i % 52 { 1.0 } else { 0.0 }),
        mask: (1 << (i % 52)) | 1,
        value: i as f32 / 10.0 - 0.5,
        unit: (i / 2) as u64,
    }
}

fn shard_seeds() -> Vec<Vec<u8>> {
    [0, 1, 3]
        .into_iter()
        .map(|rows| {
            let examples: Vec<Example> = (0..rows).map(example).collect();
            let metadata = BTreeMap::from([
                (
                    "format_version".to_string(),
                    SHARD_FORMAT_VERSION.to_string(),
                ),
                ("rows".to_string(), rows.to_string()),
                ("seed".to_string(), "1".to_string()),
            ]);
            serialize(&examples, metadata)
        })
        .collect()
}

/// The header-only reader agrees with the whole-file parser: the same error, or the same
/// metadata and, read from the file, the same tensors.
fn header_reader_agrees(bytes: &[u8]) {
    let header = SafetensorsHeader::read(&mut Cursor::new(bytes), SOURCE);
    match (SafetensorsFile::parse(bytes, SOURCE), header) {
        (Ok(file), Ok(header)) => {
            assert_eq!(header.metadata(), file.metadata());
            for (name, tensor) in file.tensors() {
                let read = header.read_tensor(&mut Cursor::new(bytes), name).unwrap();
                let read = read.expect("the header lists every tensor");
                assert_eq!(
                    (read.dtype, &read.shape, &read.data[..]),
                    (tensor.dtype, &tensor.shape, tensor.data)
                );
            }
        }
        (Err(e), Err(HeaderReadError::Format(h))) => assert_eq!(h.to_string(), e.to_string()),
        (file, header) => panic!("the readers disagree: {file:?} against {header:?}"),
    }
}

#[test]
fn shard_reader_never_panics() {
    fuzz("shard_reader", 2, &shard_seeds(), mutate_file, |bytes| {
        header_reader_agrees(bytes);
        match parse_shard(bytes, SOURCE) {
            // What the reader accepts, the writer writes back as an equal shard.
            Ok(shard) => {
                let again = serialize(&shard.examples, shard.metadata.clone());
                let reread = parse_shard(&again, SOURCE).expect("a shard we wrote reads back");
                assert_eq!(reread, shard);
                true
            }
            Err(err) => {
                assert!(err.to_string().contains(SOURCE), "unnamed: {err}");
                false
            }
        }
    });
}

/// Valid queries: bidding with hidden hands, play with a finished trick, perfect information,
/// and one with the protocol's options and search settings.
const QUERIES: [&str; 4] = [
    r#"{"id":1,"player":1,"dealer":0,"trump":2,"cards_dealt":3,"hands":[3,[1,15,25],3],"bids":[null,null,null],"dets":2,"sims":4}"#,
    r#"{"id":"play","player":0,"dealer":3,"trump":1,"cards_dealt":2,"hands":[[23],[19],[16],[]],"bids":[0,0,0,0],"tricks_won":[0,0,0,1],"current_trick":{"leader":3,"cards":[[3,35]]},"previous_tricks":[{"leader":0,"cards":[[0,6],[1,0],[2,32],[3,20]],"winner":3}]}"#,
    r#"{"id":[null],"player":0,"dealer":1,"trump":null,"cards_dealt":1,"hands":[[7],[51],[30]],"bids":[null,null,0],"perfect_information":true,"leaf_values":"mover","include_policy_prior":true,"seed":3}"#,
    r#"{"id":2.5,"player":2,"dealer":1,"trump":0,"cards_dealt":2,"hands":[2,2,[3,40]],"bids":[null,null,null],"sims":4,"report_every":1,"max_time_ms":60000,"c_puct":2.5,"fpu_reduction":-0.1}"#,
];

/// Valid action lines (a `terminate` of an id that may or may not be in flight).
const ACTION_LINES: [&str; 3] = [
    r#"{"id":"t","action":"terminate","terminate_id":{"gui":[1,2]}}"#,
    r#"{"id":9,"action":"clear_cache"}"#,
    r#"{"id":null,"action":"query_version"}"#,
];

#[test]
fn analyze_query_parser_never_panics() {
    let seeds: Vec<Vec<u8>> = QUERIES
        .iter()
        .chain(&ACTION_LINES)
        .map(|q| q.as_bytes().to_vec())
        .collect();
    fuzz(
        "analyze_query",
        3,
        &seeds,
        mutate_line,
        |line| match parse_line(line) {
            Ok(_) => true,
            Err((_, err)) => {
                assert!(!err.message.is_empty(), "an error without a message");
                false
            }
        },
    );
}

/// Caps `dets` and `sims` of a line that is a JSON object at 2, so that searches stay tiny.
fn cap_search(line: Vec<u8>) -> Vec<u8> {
    let Ok(Value::Object(mut query)) = serde_json::from_slice::<Value>(&line) else {
        return line;
    };
    for key in ["dets", "sims"] {
        if query
            .get(key)
            .and_then(Value::as_u64)
            .is_some_and(|n| n > 2)
        {
            query.insert(key.into(), 2.into());
        }
    }
    Value::Object(query).to_string().into_bytes()
}

/// Beyond the parser: mutated queries through the whole server (parsing, replaying the rules,
/// searching) on a uniform network. Every line gets one answer; nothing panics or fails.
/// Serves `input` (lines) with a uniform network on two threads; returns the answers.
fn serve_lines(input: Vec<u8>) -> (String, ServeSummary) {
    let mut output = Vec::new();
    let backend = Box::new(UniformBackend {
        max_batch: default_rows(),
    });
    let config = AnalyzeConfig {
        threads: 2,
        search: SearchConfig::default(),
    };
    let summary = serve(Cursor::new(input), &mut output, backend, &config).expect("serve");
    (String::from_utf8(output).expect("UTF-8 answers"), summary)
}

#[test]
fn analyze_server_answers_every_mutated_line() {
    let (answers, summary) = serve_lines(QUERIES.join("\n").into_bytes());
    assert_eq!(summary.errors, 0, "the seed queries are legal: {answers}");
    let seeds: Vec<&str> = QUERIES.iter().chain(&ACTION_LINES).copied().collect();

    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let mut input = Vec::new();
    for _ in 0..SERVED {
        let seed = seeds[rng.random_range(0..seeds.len())].as_bytes();
        let mut line = cap_search(mutate_line(&mut rng, seed));
        // One line each: a newline from a mutation would split it.
        line.iter_mut()
            .filter(|b| **b == b'\n')
            .for_each(|b| *b = b' ');
        input.extend_from_slice(&line);
        input.push(b'\n');
    }
    let (answers, summary) = serve_lines(input);
    // One answer per line, and the partial answers of queries that still ask for them.
    assert_eq!(
        answers.lines().count() as u64,
        SERVED as u64 + summary.partial
    );
    assert_eq!(summary.answers, SERVED as u64);
    eprintln!(
        "analyze server: {SERVED} lines, {} searched",
        summary.answers - summary.errors
    );
}

/// Rows of the server's batches with the default settings.
fn default_rows() -> usize {
    engine::analyze::rows_per_batch(&SearchConfig::default())
}
