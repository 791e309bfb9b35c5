//! The CUDA backend: parity with the CPU backend and with `net_io.json` (vectors dir from
//! `$ENGINE_VECTORS`, default `tests/vectors`) at FP16 tolerances, on every batch size 1..=300
//! and 1024 / 4096, with and without graphs, for f32, f16 and bf16 weight files; compact input
//! rows expanded on the GPU bit-exact to every recorded encoding; the batch
//! ring on the backend's page-locked slots with many batches in flight; the batch limit;
//! start-up errors.
//!
//! GPU tests need CUDA device 0 (sm_80+) and a build with the kernels compiled in; elsewhere
//! they report `ignored, no usable GPU: <why>` (this file runs under tests/harness). A GPU
//! that exists but fails is a test failure, never a skip. The CPU-only tests (config errors)
//! always run; the packing's host-side checks are unit tests (src/net/cuda/emulation.rs). Inputs are random and fresh each run (`ENGINE_GPU_SEED` replays one);
//! `ENGINE_GPU_QUICK=1` sweeps a short list of batch sizes (for compute-sanitizer runs);
//! `ENGINE_REQUIRE_GPU=1` turns every skip into a failure (for runs on a GPU machine).

mod harness;

use harness::{Outcome, Skip};
use std::process::ExitCode;
use std::sync::Arc;

use engine::encode::compact::{compact, CompactRow};
use engine::encode::{encode, EncoderVersion};
use engine::net::cpu::CpuBackend;
use engine::net::cuda::{
    describe_devices, CudaBackend, CudaConfig, CudaError, CudaKernel, InjectedFault, KernelBuild,
};
use engine::net::weights::{PreparedWeights, Weights};
use engine::net::{Backend, BatchIn, BatchOut, HeapSlot, NetError, INPUT_DIM, POLICY_DIM};
use engine::ring::Ring;
use engine::telemetry::nvml_snapshot;
use engine::vectors::{mask_bits, GamesFile, NetIoFile};
use half::{bf16, f16};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use safetensors::tensor::{Dtype, TensorView};

/// FP16 tolerances: relative L2 error of a batch's policy, and absolute value error.
const POLICY_REL_L2: f64 = 2e-3;
const VALUE_ABS: f32 = 5e-3;
/// Loose per-row bound on any single probability (catches one broken row in a large batch).
const POLICY_ROW_ABS: f32 = 2e-2;
const ALL_ACTIONS: u64 = (1 << POLICY_DIM) - 1;

fn reference_weights() -> Weights {
    Weights::load(&engine::vectors::dir().join("net.safetensors")).expect("net.safetensors loads")
}

/// The CUDA backend on device 0, or why this machine cannot run it (a [`Skip`]).
fn cuda(weights: &Weights, config: CudaConfig) -> Result<CudaBackend, Skip> {
    match CudaBackend::new(0, &PreparedWeights::new(weights), config) {
        Ok(backend) => {
            eprintln!("running on {}", backend.describe());
            Ok(backend)
        }
        Err(e) if e.is_unavailable() && !require_gpu() => Err(Skip(format!("no usable GPU: {e}"))),
        Err(e) => panic!("the CUDA backend failed to start: {e}"),
    }
}

/// `ENGINE_REQUIRE_GPU=1` (set by scripts/gpu_checks.sh): a missing GPU fails the GPU tests
/// instead of skipping them, so a GPU run can never pass by skipping.
fn require_gpu() -> bool {
    std::env::var("ENGINE_REQUIRE_GPU").is_ok_and(|v| v == "1")
}

fn cpu(weights: &Weights, max_batch: usize) -> CpuBackend {
    CpuBackend::new(Arc::new(PreparedWeights::new(weights)), max_batch)
}

fn poisoned_config() -> CudaConfig {
    CudaConfig {
        poison_outputs: true,
        ..CudaConfig::default()
    }
}

fn quick() -> bool {
    std::env::var("ENGINE_GPU_QUICK").is_ok_and(|v| v == "1")
}

/// Batch sizes to sweep: every size 1..=300 plus 1024 and 4096 (a short list when quick).
fn batch_sizes() -> Vec<usize> {
    if quick() {
        vec![1, 2, 31, 32, 33, 63, 64, 65, 127, 129, 300, 1024, 4096]
    } else {
        (1..=300).chain([1024, 4096]).collect()
    }
}

fn rng(test: &str) -> ChaCha8Rng {
    let seed = std::env::var("ENGINE_GPU_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!("{test}: ENGINE_GPU_SEED={seed}");
    ChaCha8Rng::seed_from_u64(seed)
}

/// A batch of random encoder-like rows (bits, small ratios, a few Gaussian values; never an
/// all-zero row) and random masks (bid-like ranges, card subsets, now and then none set).
struct Batch {
    inputs: Vec<f32>,
    masks: Vec<u64>,
}

fn random_batch(rng: &mut ChaCha8Rng, rows: usize) -> Batch {
    let mut inputs = Vec::with_capacity(rows * INPUT_DIM);
    for _ in 0..rows {
        let style = rng.random_range(0..3);
        for i in 0..INPUT_DIM {
            inputs.push(match style {
                0 => rng.random_range(-2.0f32..2.0),
                1 if i < 156 => f32::from(u8::from(rng.random_bool(0.15))),
                _ => rng.random_range(0.0f32..1.3),
            });
        }
        let row = inputs.len() - INPUT_DIM;
        inputs[row + rng.random_range(0..INPUT_DIM)] = 1.0; // never an all-zero row
    }
    let masks = (0..rows)
        .map(|_| match rng.random_range(0..10) {
            0 => 0, // no legal action: the backends fall back to all 52
            1..=4 => {
                let top = rng.random_range(0..=13);
                let full = (1u64 << (top + 1)) - 1;
                if rng.random_bool(0.5) {
                    full & !(1 << rng.random_range(0..=top))
                } else {
                    full
                }
                .max(1)
            }
            _ => rng.random::<u64>() & ALL_ACTIONS | 1 << rng.random_range(0..POLICY_DIM),
        })
        .collect();
    Batch { inputs, masks }
}

/// Outputs of one forward call.
struct Outputs {
    policy: Vec<f32>,
    value: Vec<f32>,
}

/// Runs `backend` on the batch with NaN-poisoned output buffers.
fn run(backend: &mut dyn Backend, inputs: &[f32], masks: &[u64]) -> Result<Outputs, NetError> {
    let rows = masks.len();
    let mut out = Outputs {
        policy: vec![f32::NAN; rows * POLICY_DIM],
        value: vec![f32::NAN; rows],
    };
    backend.forward(
        BatchIn { inputs, masks },
        BatchOut {
            policy: &mut out.policy,
            value: &mut out.value,
        },
    )?;
    Ok(out)
}

/// Checks `got` against `want` at FP16 tolerances, and that `got` is a proper masked
/// distribution; returns (policy relative L2, max |value diff|).
fn check(label: &str, got: &Outputs, want: &Outputs, masks: &[u64]) -> (f64, f32) {
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (row, ((g, w), &mask)) in got
        .policy
        .chunks(POLICY_DIM)
        .zip(want.policy.chunks(POLICY_DIM))
        .zip(masks)
        .enumerate()
    {
        let legal = match mask & ALL_ACTIONS {
            0 => ALL_ACTIONS,
            m => m,
        };
        let mut sum = 0.0f32;
        for (a, (&p, &q)) in g.iter().zip(w).enumerate() {
            assert!(p.is_finite(), "{label}: row {row} action {a} is {p}");
            if legal >> a & 1 == 0 {
                assert!(p == 0.0, "{label}: row {row} illegal action {a} has {p}");
            }
            assert!(
                (p - q).abs() <= POLICY_ROW_ABS,
                "{label}: row {row} action {a}: {p} vs {q}"
            );
            num += f64::from(p - q).powi(2);
            den += f64::from(q).powi(2);
            sum += p;
        }
        assert!((sum - 1.0).abs() < 1e-3, "{label}: row {row} sums to {sum}");
    }
    let rel = (num / den).sqrt();
    let dv = got
        .value
        .iter()
        .zip(&want.value)
        .map(|(g, w)| {
            assert!(g.is_finite(), "{label}: value {g}");
            (g - w).abs()
        })
        .fold(0.0, f32::max);
    assert!(
        rel <= POLICY_REL_L2 && dv <= VALUE_ABS,
        "{label}: policy relative L2 {rel:.2e} (max {POLICY_REL_L2:.0e}), |value diff| {dv:.2e} \
         (max {VALUE_ABS:.0e})"
    );
    (rel, dv)
}

/// Sweeps `sizes` with fresh random batches, comparing `gpu` with the CPU backend.
fn sweep(label: &str, gpu: &mut CudaBackend, weights: &Weights, sizes: &[usize]) {
    let mut rng = rng(label);
    let mut cpu = cpu(weights, 4096);
    let (mut worst_rel, mut worst_dv) = (0.0f64, 0.0f32);
    for &rows in sizes {
        let batch = random_batch(&mut rng, rows);
        let want = run(&mut cpu, &batch.inputs, &batch.masks).expect("cpu forward");
        let got = run(gpu, &batch.inputs, &batch.masks).expect("cuda forward");
        let (rel, dv) = check(&format!("{label}, {rows} rows"), &got, &want, &batch.masks);
        worst_rel = worst_rel.max(rel);
        worst_dv = worst_dv.max(dv);
    }
    eprintln!("{label}: worst policy relative L2 {worst_rel:.2e}, |value diff| {worst_dv:.2e}");
}

// ---- GPU tests ----------------------------------------------------------------------------

fn net_io_vectors_match_at_fp16_tolerance() -> Outcome {
    let weights = reference_weights();
    let mut gpu = cuda(&weights, poisoned_config())?;
    let io =
        NetIoFile::load(&engine::vectors::dir().join("net_io.json")).expect("net_io.json loads");
    let inputs: Vec<f32> = io.cases.iter().flat_map(|c| c.input.clone()).collect();
    let masks: Vec<u64> = io.cases.iter().map(|c| mask_bits(&c.mask)).collect();
    let want = Outputs {
        policy: io.cases.iter().flat_map(|c| c.policy.clone()).collect(),
        value: io.cases.iter().map(|c| c.value).collect(),
    };
    let got = run(&mut gpu, &inputs, &masks).expect("cuda forward");
    let (rel, dv) = check("net_io.json", &got, &want, &masks);
    eprintln!("net_io.json: policy relative L2 {rel:.2e}, |value diff| {dv:.2e}");
    gpu.shutdown().expect("clean shutdown");
    Ok(())
}

/// The GPU's expansion of compact rows (`expand_compact_rows`) gives every recorded encoding,
/// both encoder versions, bit for bit (the CPU round trip is tests/compact.rs).
fn compact_rows_expand_bit_exact_on_the_gpu() -> Outcome {
    let gpu = cuda(&reference_weights(), CudaConfig::default())?;
    let games =
        GamesFile::load(&engine::vectors::dir().join("games.json")).expect("games.json loads");
    let positions = games.positions().expect("every round replays");
    for version in [EncoderVersion::V1, EncoderVersion::V2] {
        let encodings: Vec<f32> = positions
            .iter()
            .flat_map(|r| encode(r, r.to_act(), version))
            .collect();
        let rows: Vec<CompactRow> = encodings
            .chunks_exact(INPUT_DIM)
            .map(|e| {
                compact(e.try_into().expect("256 floats")).expect("a recorded encoding compacts")
            })
            .collect();
        let expanded = gpu.expand_compact_rows(&rows).expect("cuda expansion");
        assert_eq!(expanded.len(), encodings.len());
        if let Some(i) =
            (0..encodings.len()).find(|&i| expanded[i].to_bits() != encodings[i].to_bits())
        {
            panic!(
                "{version:?} row {} column {}: GPU gives {:e}, the encoder {:e}",
                i / INPUT_DIM,
                i % INPUT_DIM,
                expanded[i],
                encodings[i]
            );
        }
        eprintln!("{version:?}: {} rows expanded bit-exact", rows.len());
    }
    gpu.shutdown().expect("clean shutdown");
    Ok(())
}

fn every_batch_size_matches_the_cpu_with_graphs() -> Outcome {
    let weights = reference_weights();
    let mut gpu = cuda(&weights, poisoned_config())?;
    assert_eq!(gpu.graph_count(), CudaConfig::default().buckets.len());
    sweep("graphs", &mut gpu, &weights, &batch_sizes());
    gpu.shutdown().expect("clean shutdown");
    Ok(())
}

/// The portable build (the 99 KB, 2-stage configuration RTX 30/40 GPUs run, as compute_80 PTX
/// the driver compiles for this GPU) matches the CPU at every batch size, as the native one does.
fn the_portable_kernels_match_the_cpu() -> Outcome {
    let weights = reference_weights();
    let config = CudaConfig {
        kernel: CudaKernel::Portable,
        ..poisoned_config()
    };
    let mut gpu = cuda(&weights, config)?;
    assert_eq!(gpu.kernel_build(), KernelBuild::Portable);
    assert!(
        gpu.describe().contains("portable kernels, 2 weight stages"),
        "{}",
        gpu.describe()
    );
    sweep("portable", &mut gpu, &weights, &batch_sizes());
    gpu.shutdown().expect("clean shutdown");
    Ok(())
}

fn batch_sizes_match_the_cpu_without_graphs() -> Outcome {
    let weights = reference_weights();
    let config = CudaConfig {
        graphs: false,
        ..poisoned_config()
    };
    let mut gpu = cuda(&weights, config)?;
    assert_eq!(gpu.graph_count(), 0);
    let sizes = [1, 7, 32, 33, 100, 255, 256, 257, 1000, 4096];
    sweep("no graphs", &mut gpu, &weights, &sizes);
    gpu.shutdown().expect("clean shutdown");
    Ok(())
}

fn f16_and_bf16_weight_files_match_the_cpu() -> Outcome {
    for dtype in [Dtype::F16, Dtype::BF16] {
        let weights = Weights::from_bytes(&reference_as(dtype), "converted").expect("loads");
        let mut gpu = cuda(&weights, poisoned_config())?;
        let sizes = [1, 45, 256, 777];
        sweep(&format!("{dtype:?} file"), &mut gpu, &weights, &sizes);
        gpu.shutdown().expect("clean shutdown");
    }
    Ok(())
}

/// The batch ring on the CUDA backend's own page-locked slots: four worker threads keep up to
/// eight batches of random sizes (1..=1024 rows) on the device at once (one stream per slot),
/// each waiting for its own batch on its slot's event, with graphs and eagerly, with blocking
/// and spinning waits; every batch matches the CPU backend.
fn ring_slots_in_flight_match_the_cpu() -> Outcome {
    let weights = reference_weights();
    let modes = [
        ("ring, graphs", true, true),
        ("ring, eager", false, true),
        ("ring, graphs, spin-wait", true, false),
    ];
    for (label, graphs, blocking_wait) in modes {
        let config = CudaConfig {
            graphs,
            blocking_wait,
            ..poisoned_config()
        };
        let mut gpu = cuda(&weights, config)?;
        let mut seeds = rng(label);
        let ring = Ring::new(&mut gpu, 8, 1024).expect("ring slots on the GPU");
        let rounds = if quick() { 2 } else { 12 };
        std::thread::scope(|scope| {
            let server = scope.spawn(|| ring.serve(&mut gpu));
            let workers: Vec<_> = (0..4)
                .map(|w| {
                    let (ring, weights) = (&ring, &weights);
                    let mut rng = ChaCha8Rng::seed_from_u64(seeds.random());
                    scope.spawn(move || {
                        let mut cpu = cpu(weights, 1024);
                        for round in 0..rounds {
                            // Two batches in flight per worker, waited for in reverse order.
                            let batches: Vec<_> = (0..2)
                                .map(|i| {
                                    let rows = match (round + i) % 5 {
                                        0 => 1,
                                        1 => 1024,
                                        _ => rng.random_range(1..=1024),
                                    };
                                    random_batch(&mut rng, rows)
                                })
                                .collect();
                            let tickets: Vec<_> = batches
                                .iter()
                                .map(|b| {
                                    let mut slot = ring.acquire().expect("a free slot");
                                    slot.push_rows(&b.inputs, &b.masks);
                                    ring.submit(slot).expect("submit")
                                })
                                .collect();
                            for (b, t) in batches.iter().zip(tickets).rev() {
                                let slot = ring.wait(t).expect("ring batch on the GPU");
                                let (policy, value) = slot.outputs(0..slot.rows());
                                let got = Outputs {
                                    policy: policy.to_vec(),
                                    value: value.to_vec(),
                                };
                                ring.release(slot);
                                let want = run(&mut cpu, &b.inputs, &b.masks).expect("cpu");
                                let rows = b.masks.len();
                                check(
                                    &format!("{label}, worker {w}, {rows} rows"),
                                    &got,
                                    &want,
                                    &b.masks,
                                );
                            }
                        }
                    })
                })
                .collect();
            for w in workers {
                w.join().expect("worker");
            }
            ring.close();
            server.join().expect("server").expect("serve");
        });
        let batches = ring
            .stats
            .batches
            .load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(batches, 4 * 2 * rounds as u64);
        eprintln!("{label}: {batches} batches through 8 slots, all match the CPU");
        gpu.shutdown().expect("no error recorded by the driver");
    }
    Ok(())
}

/// A ring slot's graphs copy fixed addresses, so a launch with memory the backend did not
/// allocate (or whose slot was dropped) is refused, never run; the device side of a dropped
/// slot serves the next allocation (a second ring on the same backend).
fn a_launch_with_another_slots_memory_is_refused() -> Outcome {
    let weights = reference_weights();
    let mut gpu = cuda(&weights, CudaConfig::default())?;
    let _first = gpu.alloc_slot(64).expect("slot 0");
    let mut second = gpu.alloc_slot(64).expect("slot 1");
    let mut foreign = HeapSlot::new(64);
    // SAFETY (every launch below): the memory outlives the batch, which is waited for.
    let err = unsafe { gpu.launch(&mut foreign, 1) }
        .err()
        .expect("refused");
    assert!(matches!(err, NetError::ForeignSlot { .. }), "{err}");
    let err = gpu.alloc_slot(1 << 20).err().expect("too large");
    assert!(matches!(err, NetError::BatchTooLarge { .. }), "{err}");
    unsafe { gpu.launch(second.as_mut(), 1) }
        .expect("its own memory")
        .wait(second.as_ref(), 1)
        .expect("batch");
    drop(second);
    let mut again = gpu
        .alloc_slot(64)
        .expect("a slot made anew over the dropped one");
    unsafe { gpu.launch(again.as_mut(), 1) }
        .expect("the new memory")
        .wait(again.as_ref(), 1)
        .expect("batch");
    Ok(())
}

/// Graph replay and eager launches run the same kernel on the same rows, so their outputs
/// agree bit for bit; along the way, prints the forward throughput of both at 256 / 1024 /
/// 4096 rows (host staging copies and synchronisation included).
fn graph_replay_and_eager_launch_agree_exactly() -> Outcome {
    let weights = reference_weights();
    let mut graphs = cuda(&weights, CudaConfig::default())?;
    let eager_config = CudaConfig {
        graphs: false,
        ..CudaConfig::default()
    };
    let mut eager = cuda(&weights, eager_config)
        .unwrap_or_else(|Skip(why)| panic!("a second backend on the same GPU: {why}"));
    let mut rng = rng("graphs vs eager");
    let iterations = if quick() { 2 } else { 50 };
    for rows in [256, 1024, 4096] {
        let batch = random_batch(&mut rng, rows);
        let a = run(&mut graphs, &batch.inputs, &batch.masks).expect("graph forward");
        let b = run(&mut eager, &batch.inputs, &batch.masks).expect("eager forward");
        assert!(
            a.policy
                .iter()
                .zip(&b.policy)
                .all(|(x, y)| x.to_bits() == y.to_bits())
                && a.value
                    .iter()
                    .zip(&b.value)
                    .all(|(x, y)| x.to_bits() == y.to_bits()),
            "{rows} rows: graph and eager outputs differ"
        );
        for (label, backend) in [("graphs", &mut graphs), ("eager", &mut eager)] {
            let start = std::time::Instant::now();
            for _ in 0..iterations {
                run(backend, &batch.inputs, &batch.masks).expect("forward");
            }
            let seconds = start.elapsed().as_secs_f64() / iterations as f64;
            eprintln!(
                "timing {}: {label} {rows} rows: {:.1} us per forward, {:.2} M evals/s",
                backend.describe(),
                seconds * 1e6,
                rows as f64 / seconds / 1e6
            );
        }
    }
    graphs.shutdown().expect("clean shutdown");
    eager.shutdown().expect("clean shutdown");
    Ok(())
}

/// 4097 rows exceed the largest bucket (4096): rejected with the named error, never split
/// silently (callers size their batches by `max_batch`, like for every backend).
fn batches_above_the_largest_bucket_are_rejected() -> Outcome {
    let weights = reference_weights();
    let mut gpu = cuda(&weights, CudaConfig::default())?;
    assert_eq!(gpu.max_batch(), 4096);
    let batch = random_batch(&mut rng("4097 rows"), 4097);
    match run(&mut gpu, &batch.inputs, &batch.masks) {
        Err(NetError::BatchTooLarge { rows, max }) => assert_eq!((rows, max), (4097, 4096)),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("4097 rows accepted by a backend with max_batch 4096"),
    }
    // The backend is still usable afterwards.
    let batch = random_batch(&mut rng("after 4097"), 17);
    run(&mut gpu, &batch.inputs, &batch.masks).expect("forward after a rejected batch");
    gpu.shutdown().expect("clean shutdown");
    Ok(())
}

fn custom_buckets_and_an_empty_batch() -> Outcome {
    let weights = reference_weights();
    let config = CudaConfig {
        buckets: vec![32, 96, 320],
        ..poisoned_config()
    };
    let mut gpu = cuda(&weights, config)?;
    assert_eq!(gpu.max_batch(), 320);
    let empty = run(&mut gpu, &[], &[]).expect("empty batch");
    assert!(empty.policy.is_empty() && empty.value.is_empty());
    sweep(
        "buckets 32/96/320",
        &mut gpu,
        &weights,
        &[1, 32, 33, 96, 97, 320],
    );
    gpu.shutdown().expect("clean shutdown");
    Ok(())
}

fn devices_and_telemetry_are_described_or_explained() -> Outcome {
    match describe_devices() {
        Ok(devices) => {
            eprintln!("devices: {devices:?}");
            let lines: Vec<String> = devices.iter().map(|d| d.to_string()).collect();
            assert!(lines.iter().all(|d| d.starts_with("cuda:")), "{lines:?}");
            assert!(devices.iter().all(|d| d.arch.starts_with("sm_")));
        }
        Err(e) => {
            assert!(e.is_unavailable() && !require_gpu(), "{e}");
            eprintln!("no CUDA devices: {e}");
        }
    }
    match nvml_snapshot(0) {
        Some(stats) => {
            eprintln!("nvml: {stats:?}");
            assert!(!stats.name.is_empty() && stats.mem_total_bytes > 0);
            assert!(stats.mem_used_bytes <= stats.mem_total_bytes);
        }
        None => eprintln!("no NVML telemetry on this machine"),
    }
    Ok(())
}

// ---- CPU-only tests -------------------------------------------------------------------------

/// Every CTA of a batch writes the batch's tag once its rows are written, and the host checks
/// the tags: a kernel that leaves rows unwritten (here, one CTA short) is an error naming the
/// GPU, the bucket and the first stale row, never the previous batch's outputs passed on.
fn stale_outputs_are_an_error_never_data() -> Outcome {
    let weights = reference_weights();
    let config = CudaConfig {
        fault: Some(InjectedFault::ShortGrid { from_launch: 3 }),
        ..CudaConfig::for_max_batch(64)
    };
    let mut gpu = cuda(&weights, config)?;
    let mut rng = rng("stale");
    let batch = random_batch(&mut rng, 64);
    // Launch 2: whole. Launch 3: one CTA short, its rows 32.. hold launch 2's outputs.
    run(&mut gpu, &batch.inputs, &batch.masks).expect("launch 2 runs whole");
    let err = run(&mut gpu, &batch.inputs, &batch.masks)
        .err()
        .expect("stale rows refused");
    let text = format!("{err}");
    assert!(
        text.contains("stale outputs on cuda:0, batch of 64 rows in bucket 64")
            && text.contains("rows 32.."),
        "{text}"
    );
    Ok(())
}

/// Environment variable that makes [`a_device_fault_is_reported_once_against_its_batch`]
/// provoke the fault itself (in a child process of this binary).
const FAULT_CHILD: &str = "ENGINE_GPU_FAULT_CHILD";

/// A real device fault (an illegal address, injected from launch 4 on) fails the batch that
/// hit it, reported against that batch with the GPU, the bucket and the driver's message; the
/// ring then refuses every later batch with that same error. A device fault is sticky for the
/// process's context, so the fault runs in a child process of this test binary.
fn a_device_fault_is_reported_once_against_its_batch() -> Outcome {
    let weights = reference_weights();
    if std::env::var_os(FAULT_CHILD).is_none() {
        drop(cuda(&weights, CudaConfig::for_max_batch(64))?);
        let out = std::process::Command::new(std::env::current_exe().expect("this test binary"))
            .args([
                "--exact",
                "a_device_fault_is_reported_once_against_its_batch",
                "--test-threads",
                "1",
            ])
            .env(FAULT_CHILD, "1")
            .output()
            .expect("the child runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && text.contains("1 passed"), "{text}");
        return Ok(());
    }
    let config = CudaConfig {
        fault: Some(InjectedFault::IllegalAddress { from_launch: 4 }),
        ..CudaConfig::for_max_batch(64)
    };
    let mut gpu = cuda(&weights, config)?;
    let ring = Ring::new(&mut gpu, 2, 64).expect("ring");
    let batch = random_batch(&mut rng("fault"), 40);
    std::thread::scope(|scope| {
        let server = scope.spawn(|| ring.serve(&mut gpu));
        let _close = ring.close_on_drop();
        let one = || -> Result<(), engine::ring::RingError> {
            let mut slot = ring.acquire()?;
            slot.push_rows(&batch.inputs, &batch.masks);
            let slot = ring.wait(ring.submit(slot)?)?;
            ring.release(slot);
            Ok(())
        };
        // Launch 1 was the start-up warm-up; ring batches 0 and 1 are launches 2 and 3.
        one().expect("ring batch 0");
        one().expect("ring batch 1");
        let err = one().expect_err("ring batch 2 hits the fault");
        let text = format!("{err}");
        eprintln!("the fault as reported: {text}");
        assert!(
            text.contains("failed on batch 2")
                && text.contains("cuda:0, batch of 40 rows in bucket 64")
                && text.contains("ILLEGAL_ADDRESS"),
            "{text}"
        );
        assert_eq!(one().expect_err("sticky").to_string(), text);
        ring.close();
        assert!(server.join().expect("no panic").is_err());
    });
    Ok(())
}

/// Without a usable GPU, start-up fails with one of the "unavailable" errors and a message
/// that says why; bad configs fail before anything touches the GPU.
fn start_up_errors_are_named() -> Outcome {
    let prepared = PreparedWeights::new(&Weights::init(3));
    if let Err(e) = CudaBackend::new(0, &prepared, CudaConfig::default()) {
        assert!(e.is_unavailable(), "unexpected start-up failure: {e}");
        assert!(!e.to_string().is_empty());
        eprintln!("CUDA unavailable here: {e}");
    }
    for buckets in [vec![], vec![64, 100], vec![128, 64], vec![0]] {
        let config = CudaConfig {
            buckets: buckets.clone(),
            ..CudaConfig::default()
        };
        assert!(
            matches!(
                CudaBackend::new(0, &prepared, config),
                Err(CudaError::Config(_))
            ),
            "buckets {buckets:?} accepted"
        );
    }
    let config = CudaConfig::for_max_batch(1000);
    assert_eq!(config.buckets, [64, 128, 256, 512, 1024]);
    assert_eq!(CudaConfig::for_max_batch(1).buckets, [64]);
    Ok(())
}

/// The reference net with every tensor converted to `dtype` and serialised.
fn reference_as(dtype: Dtype) -> Vec<u8> {
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = reference_weights()
        .tensors()
        .map(|(k, t)| {
            let bytes = match dtype {
                Dtype::F16 => t
                    .data
                    .iter()
                    .flat_map(|&x| f16::from_f32(x).to_le_bytes())
                    .collect(),
                _ => t
                    .data
                    .iter()
                    .flat_map(|&x| bf16::from_f32(x).to_le_bytes())
                    .collect(),
            };
            (k.to_string(), t.shape.clone(), bytes)
        })
        .collect();
    let views = tensors.iter().map(|(k, shape, data)| {
        (
            k.as_str(),
            TensorView::new(dtype, shape.clone(), data).expect("view"),
        )
    });
    safetensors::serialize(views, None).expect("serialise")
}

fn main() -> ExitCode {
    harness::run(tests![
        net_io_vectors_match_at_fp16_tolerance,
        compact_rows_expand_bit_exact_on_the_gpu,
        every_batch_size_matches_the_cpu_with_graphs,
        the_portable_kernels_match_the_cpu,
        batch_sizes_match_the_cpu_without_graphs,
        f16_and_bf16_weight_files_match_the_cpu,
        ring_slots_in_flight_match_the_cpu,
        a_launch_with_another_slots_memory_is_refused,
        graph_replay_and_eager_launch_agree_exactly,
        batches_above_the_largest_bucket_are_rejected,
        custom_buckets_and_an_empty_batch,
        devices_and_telemetry_are_described_or_explained,
        start_up_errors_are_named,
        stale_outputs_are_an_error_never_data,
        a_device_fault_is_reported_once_against_its_batch
    ])
}
