//! Host-side checks of the packing, without a GPU: the networks the kernels cannot run are
//! named, and an f32 model of `blobnet_forward_f32` (kernels/blobnet.cu) that reads the packed
//! weight stream and parameter block at the offsets of [`super::layout`] reproduces the CPU
//! backend within the GPU tolerances. The kernel itself is checked by tests/gpu.rs.

use half::f16;
use std::sync::Arc;

use super::layout::*;
use super::pack::PackedNet;
use super::CudaError;
use crate::net::cpu::CpuBackend;
use crate::net::weights::{Dims, PreparedWeights, Weights, LAYER_NORM_EPS};
use crate::net::{evaluate, POLICY_DIM};
use crate::vectors::{self, mask_bits, NetIoFile};

const ALL_ACTIONS: u64 = (1 << POLICY_DIM) - 1;

#[test]
fn networks_the_kernels_cannot_run_are_named() {
    let tiny = Dims {
        embedding: 8,
        layers: 2,
        ffn: 16,
        policy_hidden: 8,
        value_hidden: 4,
        ..Dims::default()
    };
    let other_ffn = Dims {
        ffn: 1000,
        ..Dims::default()
    };
    for dims in [tiny, other_ffn] {
        let prepared = PreparedWeights::new(&Weights::init_with_dims(dims, 1));
        assert!(
            matches!(
                PackedNet::new(&prepared),
                Err(CudaError::UnsupportedNetwork(_))
            ),
            "{dims:?} accepted"
        );
    }
    let mut prepared = PreparedWeights::new(&Weights::init(5));
    prepared.layers[2].ffn_out.weight[17] = 1e6;
    match PackedNet::new(&prepared) {
        Err(CudaError::WeightOutOfRange { name, value }) => {
            assert!(name.contains("layers.2.linear2"), "{name}");
            assert_eq!(value, 1e6);
        }
        other => panic!("expected WeightOutOfRange, got {other:?}"),
    }
}

#[test]
fn packed_network_emulation_matches_the_cpu() {
    let weights = Weights::load(&vectors::dir().join("net.safetensors")).expect("net loads");
    let prepared = Arc::new(PreparedWeights::new(&weights));
    let packed = PackedNet::new(&prepared).expect("packs");
    assert_eq!(packed.weights.len(), tile_count(6, 1024) * TILE_ELEMS);
    assert_eq!(tile_count(6, 1024), 464);
    assert_eq!(packed.params.len(), param_count(6, 1024));

    let io = NetIoFile::load(&vectors::dir().join("net_io.json")).expect("net_io.json loads");
    let inputs: Vec<f32> = io.cases.iter().flat_map(|c| c.input.clone()).collect();
    let masks: Vec<u64> = io.cases.iter().map(|c| mask_bits(&c.mask)).collect();
    let mut cpu = CpuBackend::new(prepared, masks.len());
    let (policy, value) = evaluate(&mut cpu, &inputs, &masks).expect("cpu forward");
    let (got_policy, got_value) = emulate(&packed, &inputs, &masks);
    let num: f64 = got_policy
        .iter()
        .zip(&policy)
        .map(|(a, b)| f64::from(a - b).powi(2))
        .sum();
    let den: f64 = policy.iter().map(|&b| f64::from(b).powi(2)).sum();
    let rel = (num / den).sqrt();
    let dv = got_value
        .iter()
        .zip(&value)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    // The GPU tests' FP16 tolerances (tests/gpu.rs).
    assert!(
        rel <= 2e-3 && dv <= 5e-3,
        "policy rel L2 {rel:.2e}, |Δvalue| {dv:.2e}"
    );
}

/// The kernel's computation in f32: consumes the weight stream tile by tile in kernel order
/// and rounds to FP16 exactly where the kernel stores FP16. Returns policies and values.
fn emulate(net: &PackedNet, inputs: &[f32], masks: &[u64]) -> (Vec<f32>, Vec<f32>) {
    let rows = masks.len();
    let mut stream = TileStream {
        tiles: net.weights.iter().map(|w| w.to_f32()).collect(),
        next: 0,
    };
    let mut gemm = |a: &[f32]| stream.gemm(a, rows);
    let round16 =
        |xs: &[f32]| -> Vec<f32> { xs.iter().map(|&x| f16::from_f32(x).to_f32()).collect() };
    let p = &net.params;
    let w = WIDTH;
    // t + bias (+ residual) -> LayerNorm(gamma, beta), per row; returns the FP32 h.
    let norm = |t: &[f32], bias: usize, residual: Option<&[f32]>, gamma: usize, beta: usize| {
        let mut h = vec![0.0f32; rows * w];
        for r in 0..rows {
            let x: Vec<f32> = (0..w)
                .map(|c| t[r * w + c] + p[bias + c] + residual.map_or(0.0, |res| res[r * w + c]))
                .collect();
            let mean = x.iter().sum::<f32>() / w as f32;
            let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / w as f32;
            let rstd = 1.0 / (var + LAYER_NORM_EPS).sqrt();
            for c in 0..w {
                h[r * w + c] = (x[c] - mean) * rstd * p[gamma + c] + p[beta + c];
            }
        }
        h
    };
    let relu_bias = |t: &[f32], bias: usize| -> Vec<f32> {
        (0..rows * w)
            .map(|i| (t[i] + p[bias + i % w]).max(0.0))
            .collect()
    };

    let embedded = gemm(&round16(inputs));
    let mut h = norm(
        &embedded,
        PARAM_EMBED_BIAS,
        None,
        PARAM_INPUT_NORM_GAMMA,
        PARAM_INPUT_NORM_BETA,
    );
    let ffn = net.ffn;
    for l in 0..net.layers {
        let at = PARAM_LAYER0 + l * layer_params(ffn);
        let attended = gemm(&round16(&h));
        h = norm(
            &attended,
            at + LAYER_ATTENTION_BIAS,
            Some(&h),
            at + LAYER_NORM1_GAMMA,
            at + LAYER_NORM1_BETA,
        );
        let h16 = round16(&h);
        let mut acc = vec![0.0f32; rows * w];
        for j in 0..ffn / w {
            let f = round16(&relu_bias(&gemm(&h16), at + LAYER_FFN_IN_BIAS + j * w));
            for (a, x) in acc.iter_mut().zip(gemm(&f)) {
                *a += x;
            }
        }
        let after = at + ffn;
        h = norm(
            &acc,
            after + LAYER_FFN_OUT_BIAS_AFTER_FFN,
            Some(&h),
            after + LAYER_NORM2_GAMMA_AFTER_FFN,
            after + LAYER_NORM2_BETA_AFTER_FFN,
        );
    }
    let heads = PARAM_LAYER0 + net.layers * layer_params(ffn);
    let h16 = round16(&h);
    let g = round16(&relu_bias(&gemm(&h16), heads + HEAD_POLICY_HIDDEN_BIAS));
    let logits = gemm(&g);
    let u = gemm(&h16);
    assert_eq!(
        stream.next,
        tile_count(net.layers, ffn),
        "stream fully consumed"
    );

    let mut policy = vec![0.0; rows * POLICY_DIM];
    let mut value = vec![0.0; rows];
    for r in 0..rows {
        let legal = match masks[r] & ALL_ACTIONS {
            0 => ALL_ACTIONS,
            m => m,
        };
        let z: Vec<f32> = (0..POLICY_DIM)
            .map(|a| logits[r * w + a] + p[heads + HEAD_POLICY_OUT_BIAS + a])
            .collect();
        let max = (0..POLICY_DIM)
            .filter(|&a| legal >> a & 1 == 1)
            .map(|a| z[a])
            .fold(f32::NEG_INFINITY, f32::max);
        let e: Vec<f32> = (0..POLICY_DIM)
            .map(|a| {
                if legal >> a & 1 == 1 {
                    (z[a] - max).exp()
                } else {
                    0.0
                }
            })
            .collect();
        let sum: f32 = e.iter().sum();
        for (p, x) in policy[r * POLICY_DIM..][..POLICY_DIM].iter_mut().zip(&e) {
            *p = x / sum;
        }
        let dot: f32 = (0..VALUE_HIDDEN)
            .map(|k| {
                let hidden = (u[r * w + k] + p[heads + HEAD_VALUE_HIDDEN_BIAS + k]).max(0.0);
                hidden * p[heads + HEAD_VALUE_OUT_WEIGHT + k]
            })
            .sum();
        value[r] = (dot + p[heads + HEAD_VALUE_OUT_BIAS]).tanh();
    }
    (policy, value)
}

/// The weight stream as the kernel's pipeline hands it out: tile after tile.
struct TileStream {
    tiles: Vec<f32>,
    next: usize,
}

impl TileStream {
    /// `a [rows x 256] . W [256 x 256]` where W is the next 8 tiles of `[32][256]`.
    fn gemm(&mut self, a: &[f32], rows: usize) -> Vec<f32> {
        let mut out = vec![0.0f32; rows * WIDTH];
        for kt in 0..TILES_PER_GEMM {
            let tile = &self.tiles[self.next * TILE_ELEMS..][..TILE_ELEMS];
            self.next += 1;
            for r in 0..rows {
                let o = &mut out[r * WIDTH..][..WIDTH];
                for kk in 0..TILE_K {
                    let x = a[r * WIDTH + kt * TILE_K + kk];
                    for (y, w) in o.iter_mut().zip(&tile[kk * WIDTH..][..WIDTH]) {
                        *y += x * w;
                    }
                }
            }
        }
        out
    }
}
