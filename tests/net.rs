//! BlobNet weights and the CPU forward: parity with `net_io.json` (vectors dir from
//! `$ENGINE_VECTORS`, default `tests/vectors`) on every kernel this CPU runs, batching,
//! masks, the init/save/load round trip, and one crafted file per weights error.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use engine::net::cpu::{CpuBackend, CpuKernel};
use engine::net::weights::{Dims, FileDtype, PreparedWeights, Weights, WeightsError};
use engine::net::{Backend, BatchIn, BatchOut, NetError, POLICY_DIM};
use engine::vectors::{mask_bits, NetIoFile};
use half::{bf16, f16};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use safetensors::tensor::{Dtype, TensorView};

const TOLERANCE: f32 = 1e-5;

fn reference_weights() -> Weights {
    Weights::load(&engine::vectors::dir().join("net.safetensors")).expect("net.safetensors loads")
}

/// The kernels this CPU runs; says which are skipped and why.
fn kernels() -> Vec<CpuKernel> {
    CpuKernel::ALL
        .into_iter()
        .filter(|k| {
            let ok = k.is_supported();
            if !ok {
                eprintln!("skipping the {} kernel: this CPU lacks it", k.as_str());
            }
            ok
        })
        .collect()
}

fn backend(weights: &Weights, kernel: CpuKernel, max_batch: usize) -> CpuBackend {
    CpuBackend::with_kernel(Arc::new(PreparedWeights::new(weights)), max_batch, kernel)
        .expect("supported kernel")
}

/// Outputs of one forward call.
struct Outputs {
    policy: Vec<f32>,
    value: Vec<f32>,
    logits: Vec<f32>,
}

fn forward(backend: &mut CpuBackend, inputs: &[f32], masks: &[u64]) -> Outputs {
    let rows = masks.len();
    let mut o = Outputs {
        policy: vec![0.0; rows * POLICY_DIM],
        value: vec![0.0; rows],
        logits: vec![0.0; rows * POLICY_DIM],
    };
    backend
        .forward_with_logits(
            BatchIn { inputs, masks },
            BatchOut {
                policy: &mut o.policy,
                value: &mut o.value,
            },
            &mut o.logits,
        )
        .expect("forward");
    o
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// `net_io.json` as flat batch arrays.
struct Cases {
    inputs: Vec<f32>,
    masks: Vec<u64>,
    policy: Vec<f32>,
    value: Vec<f32>,
    logits: Vec<f32>,
}

fn cases() -> Cases {
    let io =
        NetIoFile::load(&engine::vectors::dir().join("net_io.json")).expect("net_io.json loads");
    assert_eq!(io.cases.len(), 96);
    let flat = |f: fn(&engine::vectors::NetCase) -> &[f32]| {
        io.cases.iter().flat_map(|c| f(c).to_vec()).collect()
    };
    Cases {
        inputs: flat(|c| &c.input),
        masks: io.cases.iter().map(|c| mask_bits(&c.mask)).collect(),
        policy: flat(|c| &c.policy),
        value: io.cases.iter().map(|c| c.value).collect(),
        logits: flat(|c| &c.logits),
    }
}

#[test]
fn net_io_cases_match_the_reference_on_every_kernel() {
    let (weights, cases) = (reference_weights(), cases());
    for kernel in kernels() {
        let out = forward(
            &mut backend(&weights, kernel, 96),
            &cases.inputs,
            &cases.masks,
        );
        let (dp, dv, dl) = (
            max_abs_diff(&out.policy, &cases.policy),
            max_abs_diff(&out.value, &cases.value),
            max_abs_diff(&out.logits, &cases.logits),
        );
        eprintln!(
            "{}: max |policy diff| {dp:.2e}, |value diff| {dv:.2e}, |logit diff| {dl:.2e}",
            kernel.as_str()
        );
        assert!(
            dp <= TOLERANCE && dv <= TOLERANCE && dl <= TOLERANCE,
            "{} kernel off",
            kernel.as_str()
        );
        for (row, &mask) in out.policy.chunks(POLICY_DIM).zip(&cases.masks) {
            for (a, &p) in row.iter().enumerate() {
                assert!(
                    if mask >> a & 1 == 1 {
                        p > 0.0
                    } else {
                        p == 0.0
                    },
                    "action {a}: {p} under mask {mask:#x}"
                );
            }
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
    }
}

/// Every output of `rows` rows as bits: policy, value and logits per row.
fn row_bits(out: &Outputs, rows: std::ops::Range<usize>) -> Vec<Vec<u32>> {
    rows.map(|r| {
        let policy = &out.policy[r * POLICY_DIM..][..POLICY_DIM];
        let logits = &out.logits[r * POLICY_DIM..][..POLICY_DIM];
        policy
            .iter()
            .chain(logits)
            .chain([&out.value[r]])
            .map(|x| x.to_bits())
            .collect()
    })
    .collect()
}

/// Batch invariance, bit for bit: a row's outputs do not depend on the batch size, on its
/// position, or on the rows beside it. Without it the same search query gets different visit
/// counts depending on what else was evaluated with it.
#[test]
fn every_kernel_gives_a_row_the_same_bits_in_any_batch() {
    const POOL: usize = 300;
    let (weights, cases) = (reference_weights(), cases());
    // 96 recorded rows, then random encoder-like rows (0/1 features and a few scalars).
    let mut rng = ChaCha8Rng::seed_from_u64(14);
    let mut inputs = cases.inputs.clone();
    let mut masks = cases.masks.clone();
    while masks.len() < POOL {
        inputs.extend((0..256).map(|i| match i % 5 {
            0 => rng.random_range(-1.0..1.0),
            _ => f32::from(u8::from(rng.random_bool(0.2))),
        }));
        masks.push(rng.random::<u64>());
    }
    let row_input = |r: usize| &inputs[r * 256..][..256];
    // The kernels with FMA run the same operations in the same order: they must agree bit for
    // bit with each other too (only the portable kernel rounds its products separately).
    let mut fused: Option<(CpuKernel, Vec<Vec<u32>>)> = None;
    for kernel in kernels() {
        let mut net = backend(&weights, kernel, POOL);
        let alone: Vec<Vec<u32>> = (0..POOL)
            .flat_map(|r| row_bits(&forward(&mut net, row_input(r), &masks[r..=r]), 0..1))
            .collect();
        match (&fused, kernel) {
            (_, CpuKernel::Portable) => {}
            (None, _) => fused = Some((kernel, alone.clone())),
            (Some((first, bits)), _) => {
                if let Some(r) = (0..POOL).find(|&r| bits[r] != alone[r]) {
                    panic!("{kernel} and {first} differ on row {r}");
                }
            }
        }
        // Every batch size, the pool's first rows.
        for size in 1..=POOL {
            let out = forward(&mut net, &inputs[..size * 256], &masks[..size]);
            let bits = row_bits(&out, 0..size);
            if let Some(r) = (0..size).find(|&r| bits[r] != alone[r]) {
                panic!("{kernel}: row {r} differs in a batch of {size} from alone");
            }
        }
        // Mixed batches: random rows (repeats allowed) in random order.
        for _ in 0..40 {
            let size = rng.random_range(1..=POOL);
            let picks: Vec<usize> = (0..size).map(|_| rng.random_range(0..POOL)).collect();
            let batch_inputs: Vec<f32> =
                picks.iter().flat_map(|&r| row_input(r).to_vec()).collect();
            let batch_masks: Vec<u64> = picks.iter().map(|&r| masks[r]).collect();
            let bits = row_bits(&forward(&mut net, &batch_inputs, &batch_masks), 0..size);
            for (position, &r) in picks.iter().enumerate() {
                assert!(
                    bits[position] == alone[r],
                    "{kernel}: row {r} differs at position {position} of a mixed batch of {size}"
                );
            }
        }
    }
}

#[test]
fn empty_mask_falls_back_to_all_actions_and_high_bits_are_ignored() {
    let (weights, cases) = (reference_weights(), cases());
    let mut net = CpuBackend::new(Arc::new(PreparedWeights::new(&weights)), 4);
    let inputs = &cases.inputs[..2 * 256];
    let out = forward(&mut net, inputs, &[0, u64::MAX]);
    for row in out.policy.chunks(POLICY_DIM) {
        assert!(row.iter().all(|&p| p > 0.0 && p.is_finite()));
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
    let all = forward(&mut net, inputs, &[(1 << 52) - 1, (1 << 52) - 1]);
    assert_eq!(out.policy[POLICY_DIM..], all.policy[POLICY_DIM..]);
}

#[test]
fn bad_batches_are_errors() {
    let mut net = CpuBackend::new(Arc::new(PreparedWeights::new(&reference_weights())), 2);
    let (mut policy, mut value) = (vec![0.0; 3 * POLICY_DIM], vec![0.0; 3]);
    let inputs = vec![0.0; 3 * 256];
    let err = net
        .forward(
            BatchIn {
                inputs: &inputs,
                masks: &[1; 3],
            },
            BatchOut {
                policy: &mut policy,
                value: &mut value,
            },
        )
        .unwrap_err();
    assert!(
        matches!(err, NetError::BatchTooLarge { rows: 3, max: 2 }),
        "{err}"
    );
    let err = net
        .forward(
            BatchIn {
                inputs: &inputs[..256],
                masks: &[1; 2],
            },
            BatchOut {
                policy: &mut policy[..2 * POLICY_DIM],
                value: &mut value[..2],
            },
        )
        .unwrap_err();
    assert!(matches!(err, NetError::Shape(_)), "{err}");
    let zero_rows = net.forward(
        BatchIn {
            inputs: &[],
            masks: &[],
        },
        BatchOut {
            policy: &mut [],
            value: &mut [],
        },
    );
    assert!(zero_rows.is_ok());
}

/// A fresh directory for one test (removed when the guard drops) and `name` in it.
fn temp_path(name: &str) -> (common::TempDir, PathBuf) {
    let dir = common::TempDir::new(&format!("net-test-{name}"));
    let path = dir.join(name);
    (dir, path)
}

#[test]
fn init_save_load_round_trip() {
    let fresh = Weights::init(7);
    assert_eq!(*fresh.dims(), Dims::default());
    assert_eq!(fresh.param_count(), 4_917_301);
    assert_eq!(Dims::default().param_count(), 4_917_301);
    assert_eq!(fresh.tensors().count(), 85);
    let (_dir, path) = temp_path("init.safetensors");
    fresh.save(&path).unwrap();
    let loaded = Weights::load(&path).unwrap();
    assert_eq!(loaded.dims(), fresh.dims());
    assert_eq!(loaded.dtype(), FileDtype::F32);
    assert_eq!(
        loaded.sha256(),
        fresh.sha256(),
        "init's sha256 is that of the file save writes"
    );
    assert!(fresh.tensors().zip(loaded.tensors()).all(|(a, b)| a == b));
    assert!(
        Weights::init(7)
            .tensors()
            .zip(fresh.tensors())
            .all(|(a, b)| a == b),
        "same seed, same net"
    );
    assert_ne!(Weights::init(8).sha256(), fresh.sha256());
    std::fs::remove_file(&path).unwrap();

    // PyTorch's scheme (spec §3.5).
    let t = |k: &str| &fresh.tensor(k).unwrap().data;
    let in_proj = t("transformer.layers.0.self_attn.in_proj_weight");
    assert!(
        (1..6).all(|i| t(&format!("transformer.layers.{i}.self_attn.in_proj_weight")) == in_proj)
    );
    let bound = |fan_in: usize, fan_out: usize| (6.0 / (fan_in + fan_out) as f32).sqrt();
    let max_abs = |xs: &[f32]| xs.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    assert!(max_abs(in_proj) <= bound(256, 768) && max_abs(in_proj) > 0.95 * bound(256, 768));
    let w1 = t("transformer.layers.3.linear1.weight");
    assert!(max_abs(w1) <= bound(256, 1024) && max_abs(w1) > 0.95 * bound(256, 1024));
    assert!(t("transformer.layers.3.linear1.weight") != t("transformer.layers.4.linear1.weight"));
    assert!(t("transformer.layers.2.norm1.weight")
        .iter()
        .all(|&x| x == 1.0));
    assert!(t("policy_fc.3.bias")
        .iter()
        .chain(t("input_norm.bias"))
        .all(|&x| x == 0.0));
    let pos = t("positional_encoding");
    let std = (pos.iter().map(|x| x * x).sum::<f32>() / pos.len() as f32).sqrt();
    assert!((0.015..0.025).contains(&std), "positional std {std}");
}

// ---- crafted files, one per error ----

/// A tiny BlobNet as (key, dtype, shape, little-endian bytes) to edit and serialise.
fn tiny_tensors() -> Vec<(String, Dtype, Vec<usize>, Vec<u8>)> {
    let dims = Dims {
        embedding: 8,
        layers: 2,
        ffn: 16,
        policy_hidden: 8,
        value_hidden: 4,
        ..Dims::default()
    };
    Weights::init_with_dims(dims, 1)
        .tensors()
        .map(|(k, t)| {
            (
                k.to_string(),
                Dtype::F32,
                t.shape.clone(),
                f32_bytes(&t.data),
            )
        })
        .collect()
}

fn f32_bytes(xs: &[f32]) -> Vec<u8> {
    xs.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn serialize(tensors: &[(String, Dtype, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
    let views = tensors.iter().map(|(k, dtype, shape, data)| {
        (
            k.as_str(),
            TensorView::new(*dtype, shape.clone(), data).unwrap(),
        )
    });
    safetensors::serialize(views, None).unwrap()
}

fn load_error(bytes: &[u8]) -> WeightsError {
    let err = Weights::from_bytes(bytes, "crafted.safetensors")
        .expect_err("crafted file must be rejected");
    assert!(
        err.to_string().contains("crafted.safetensors"),
        "error names the file: {err}"
    );
    err
}

fn edit(key: &str, f: impl FnOnce(&mut (String, Dtype, Vec<usize>, Vec<u8>))) -> Vec<u8> {
    let mut tensors = tiny_tensors();
    f(tensors.iter_mut().find(|t| t.0 == key).unwrap());
    serialize(&tensors)
}

#[test]
fn tiny_net_loads_with_inferred_dims() {
    let w = Weights::from_bytes(&serialize(&tiny_tensors()), "tiny").unwrap();
    let d = w.dims();
    assert_eq!(
        (
            d.input,
            d.embedding,
            d.layers,
            d.ffn,
            d.policy_hidden,
            d.value_hidden,
            d.actions
        ),
        (256, 8, 2, 16, 8, 4, 52)
    );
}

#[test]
fn missing_key_is_named() {
    let mut tensors = tiny_tensors();
    tensors.retain(|t| t.0 != "transformer.layers.1.norm2.bias");
    let err = load_error(&serialize(&tensors));
    assert!(
        matches!(&err, WeightsError::MissingKey { key, .. } if key == "transformer.layers.1.norm2.bias"),
        "{err}"
    );
    assert!(err.to_string().contains("transformer.layers.1.norm2.bias"));
}

#[test]
fn wrong_shape_shows_expected_and_found() {
    let bytes = edit("policy_fc.0.bias", |t| {
        t.2 = vec![7];
        t.3.truncate(7 * 4);
    });
    let err = load_error(&bytes);
    assert!(
        matches!(&err, WeightsError::Shape { key, found, .. } if key == "policy_fc.0.bias" && found == &[7]),
        "{err}"
    );
    assert!(err.to_string().contains("[7], expected [8]"), "{err}");
    // An input width other than 256 is a shape error on the embedding.
    let mut tensors = tiny_tensors();
    let emb = tensors
        .iter_mut()
        .find(|t| t.0 == "input_embedding.weight")
        .unwrap();
    emb.2 = vec![8, 128];
    emb.3.truncate(8 * 128 * 4);
    let err = load_error(&serialize(&tensors));
    assert!(
        err.to_string().contains("input_embedding.weight") && err.to_string().contains("[8, 256]"),
        "{err}"
    );
}

#[test]
fn unsupported_dtype_is_named() {
    let err = load_error(&edit("value_fc.3.bias", |t| t.1 = Dtype::I32));
    assert!(
        matches!(&err, WeightsError::Dtype { key, dtype, .. } if key == "value_fc.3.bias" && dtype == "I32"),
        "{err}"
    );
}

#[test]
fn unexpected_and_gapped_layer_keys_are_rejected() {
    let mut tensors = tiny_tensors();
    tensors.push((
        "module.extra".into(),
        Dtype::F32,
        vec![1],
        f32_bytes(&[0.0]),
    ));
    let err = load_error(&serialize(&tensors));
    assert!(
        matches!(&err, WeightsError::UnexpectedKey { key, .. } if key == "module.extra"),
        "{err}"
    );
    // Layers 0 and 2 without 1: the net has one layer and layer 2 is not part of it.
    let mut tensors = tiny_tensors();
    for t in &mut tensors {
        t.0 = t.0.replace("layers.1.", "layers.2.");
    }
    let err = load_error(&serialize(&tensors));
    assert!(
        matches!(&err, WeightsError::UnexpectedKey { key, .. } if key.starts_with("transformer.layers.2.")),
        "{err}"
    );
}

#[test]
fn truncated_or_corrupt_files_are_format_errors() {
    let good = serialize(&tiny_tensors());
    let header_len = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    let mut corrupt_json = good.clone();
    corrupt_json[8] = b'#'; // was the header's opening brace
    let mut huge_header = good.clone();
    huge_header[..8].copy_from_slice(&(good.len() as u64).to_le_bytes());
    for (what, bytes) in [
        ("empty", &good[..0]),
        ("cut in the length prefix", &good[..5]),
        ("cut in the header", &good[..8 + header_len / 2]),
        ("cut in the data", &good[..good.len() - 3]),
        ("corrupt JSON header", &corrupt_json[..]),
        ("header longer than the file", &huge_header[..]),
    ] {
        let err = load_error(bytes);
        assert!(matches!(err, WeightsError::Format { .. }), "{what}: {err}");
    }
}

#[test]
fn nan_and_inf_name_the_tensor_and_index() {
    for (key, bad) in [
        ("transformer.layers.0.linear1.weight", f32::NAN),
        ("input_norm.weight", f32::NEG_INFINITY),
    ] {
        let err = load_error(&edit(key, |t| {
            t.3[12..16].copy_from_slice(&bad.to_le_bytes())
        }));
        assert!(
            matches!(&err, WeightsError::NonFinite { key: k, index: 3, .. } if k == key),
            "{err}"
        );
        assert!(err.to_string().contains(key));
    }
}

/// Each size is read from the tensors that agree on it, so a tensor of the wrong shape is the
/// one named, even the one a size used to be read from.
#[test]
fn a_reshaped_tensor_is_the_one_blamed() {
    for key in [
        "input_embedding.weight",
        "policy_fc.0.weight",
        "transformer.layers.0.linear1.weight",
    ] {
        let bytes = edit(key, |t| {
            let elements = t.2.iter().product::<usize>();
            t.2 = vec![t.2[0] / 2, elements / (t.2[0] / 2)];
        });
        let err = load_error(&bytes);
        assert!(
            matches!(&err, WeightsError::Shape { key: k, .. } if k == key),
            "reshaping {key}: {err}"
        );
    }
}

#[test]
fn files_that_are_not_weights_are_refused_before_reading() {
    let err = Weights::load(Path::new("/dev/zero")).unwrap_err();
    assert!(
        matches!(err, WeightsError::NotAFile { .. }) && err.to_string().contains("/dev/zero"),
        "{err}"
    );
    // Sparse: no disk space used.
    let (_dir, path) = temp_path("huge.safetensors");
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(engine::net::weights::MAX_WEIGHTS_BYTES + 1)
        .unwrap();
    let err = Weights::load(&path).unwrap_err();
    assert!(
        matches!(err, WeightsError::TooLarge { .. })
            && err.to_string().contains("huge.safetensors"),
        "{err}"
    );
    std::fs::remove_file(&path).unwrap();
}

/// The canary's finiteness check on every kernel this CPU runs: all must agree; returns the
/// first kernel's verdict.
fn finite_forward(bytes: &[u8]) -> Result<(), engine::net::canary::CanaryError> {
    let weights = Weights::from_bytes(bytes, "crafted.safetensors").unwrap();
    let prepared = Arc::new(PreparedWeights::new(&weights));
    let verdicts: Vec<_> = kernels()
        .into_iter()
        .map(|kernel| {
            let rows = engine::net::canary::CANARY_ROWS;
            let mut cpu = CpuBackend::with_kernel(prepared.clone(), rows, kernel).unwrap();
            engine::net::canary::check_finite(&mut cpu, "crafted.safetensors")
        })
        .collect();
    assert!(
        verdicts.iter().all(|v| v.is_ok() == verdicts[0].is_ok()),
        "kernels disagree: {verdicts:?}"
    );
    verdicts.into_iter().next().unwrap()
}

fn set_first(t: &mut (String, Dtype, Vec<usize>, Vec<u8>), value: f32) {
    t.3[..4].copy_from_slice(&value.to_le_bytes());
}

/// Finite weights whose forward overflows are refused, naming the file.
#[test]
fn a_net_whose_output_overflows_is_refused() {
    assert!(finite_forward(&serialize(&tiny_tensors())).is_ok());
    let bytes = edit("policy_fc.3.weight", |t| {
        let huge = f32_bytes(&vec![3e38; t.3.len() / 4]);
        t.3 = huge;
    });
    let err = finite_forward(&bytes).unwrap_err().to_string();
    assert!(
        err.contains("crafted.safetensors") && err.contains("not finite"),
        "{err}"
    );
}

/// PyTorch gives NaN for this net: the overflow happens in a hidden layer, so only a forward
/// that carries NaN through its activations (ReLU included) shows it.
#[test]
fn a_net_whose_hidden_activations_overflow_is_refused() {
    let bytes = edit("input_norm.weight", |t| set_first(t, 3e38));
    let err = finite_forward(&bytes).unwrap_err().to_string();
    assert!(err.contains("crafted.safetensors"), "{err}");
}

#[test]
fn io_error_names_the_path() {
    let err = Weights::load(Path::new("/nonexistent/blobnet.safetensors")).unwrap_err();
    assert!(
        matches!(err, WeightsError::Io { .. })
            && err.to_string().contains("/nonexistent/blobnet.safetensors")
    );
}

/// The reference net with every tensor converted to `dtype` (or alternating, for `None`).
fn reference_as(dtype: Option<Dtype>) -> Vec<u8> {
    let tensors: Vec<_> = reference_weights()
        .tensors()
        .enumerate()
        .map(|(i, (k, t))| {
            let dtype = dtype.unwrap_or(if i % 2 == 0 { Dtype::F16 } else { Dtype::F32 });
            let bytes = match dtype {
                Dtype::F16 => t
                    .data
                    .iter()
                    .flat_map(|&x| f16::from_f32(x).to_le_bytes())
                    .collect(),
                Dtype::BF16 => t
                    .data
                    .iter()
                    .flat_map(|&x| bf16::from_f32(x).to_le_bytes())
                    .collect(),
                _ => f32_bytes(&t.data),
            };
            (k.to_string(), dtype, t.shape.clone(), bytes)
        })
        .collect();
    serialize(&tensors)
}

#[test]
fn f16_and_bf16_files_load_and_stay_close_to_f32() {
    let cases = cases();
    for (dtype, expected, tolerance) in [
        (Some(Dtype::F16), FileDtype::F16, 5e-3),
        (Some(Dtype::BF16), FileDtype::Bf16, 5e-2),
        (None, FileDtype::Mixed, 5e-3),
    ] {
        let weights = Weights::from_bytes(&reference_as(dtype), "converted").unwrap();
        assert_eq!(weights.dtype(), expected);
        let out = forward(
            &mut CpuBackend::new(Arc::new(PreparedWeights::new(&weights)), 96),
            &cases.inputs,
            &cases.masks,
        );
        let (dp, dv) = (
            max_abs_diff(&out.policy, &cases.policy),
            max_abs_diff(&out.value, &cases.value),
        );
        eprintln!(
            "{}: max |policy diff| {dp:.2e}, |value diff| {dv:.2e}",
            expected.as_str()
        );
        assert!(
            dp <= tolerance && dv <= tolerance,
            "{}: {dp} {dv}",
            expected.as_str()
        );
    }
}

/// `engine bench --in-flight N`: batches go through the ring N at a time and every one of
/// them is counted once; direct calls report themselves as 0 in flight.
#[test]
fn bench_through_the_ring_keeps_batches_in_flight() {
    use engine::bench::{run, run_in_flight};
    use engine::net::UniformBackend;
    let mut uniform = UniformBackend { max_batch: 64 };
    let ring = run_in_flight(&mut uniform, 64, 3, 0.05, 0).expect("ring bench");
    assert_eq!(
        (ring.in_flight, ring.batch, ring.backend),
        (3, 64, "uniform")
    );
    assert!(ring.batches > 0 && ring.evals_per_s > 0.0);
    assert!(
        (ring.us_per_batch * ring.batches as f64 - ring.seconds * 1e6).abs() < 1.0,
        "wall time per batch"
    );
    let direct = run(&mut uniform, 64, 0.05, 0).expect("direct bench");
    assert_eq!(direct.in_flight, 0);
    let mut cpu = backend(&reference_weights(), CpuKernel::Portable, 8);
    let err = run_in_flight(&mut cpu, 64, 1, 0.05, 0).unwrap_err();
    assert!(
        err.to_string().contains("64"),
        "a batch above max_batch is refused: {err}"
    );
}
