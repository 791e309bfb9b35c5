//! [`PackedNet`]: [`PreparedWeights`] in the layout the kernels read (`kernels/common.cuh`),
//! built on the host once per network, before anything touches the GPU.
//!
//! - The **weight stream**: every matrix product of the forward pass in the order the kernel
//!   runs them, cut into tiles of `TILE_K x 256` FP16 values (`[k][n]` row-major, contiguous):
//!   embed; per layer the folded attention `A`, then for each 256-wide chunk `j` of the FFN
//!   the columns `j` of `ffn_in` followed by the rows `j` of `ffn_out`; policy hidden; policy
//!   out (52 columns, zero-padded to 256); value hidden (128 columns, zero-padded to 256).
//!   Every product is `[rows x 256] . [256 x 256]`, 8 tiles.
//! - The **parameter block** (FP32): biases, LayerNorm affine parameters and the value
//!   head's output weights, at the offsets `kernels/common.cuh` lists.
//!
//! The attention fold (`A = W_out . W_v`) happened in f64 in [`PreparedWeights`]; the cast to
//! FP16 happens here, once.

use half::f16;

use super::kernels::{HEAD_PARAMS, TILES_PER_GEMM, TILE_ELEMS, TILE_K, WIDTH};
use super::CudaError;
use crate::net::weights::{Linear, PreparedWeights};
use crate::net::{INPUT_DIM, POLICY_DIM};

/// Hidden width of the value head the kernels are written for.
pub const VALUE_HIDDEN: usize = 128;

/// A network in the kernels' layout.
#[derive(Clone, Debug)]
pub struct PackedNet {
    pub layers: usize,
    pub ffn: usize,
    /// The weight stream, [`tile_count`] tiles of [`TILE_ELEMS`] values.
    pub weights: Vec<f16>,
    /// The parameter block, [`param_count`] floats.
    pub params: Vec<f32>,
}

/// Tiles in the weight stream of a network (`total_tiles` in `kernels/common.cuh`).
pub fn tile_count(layers: usize, ffn: usize) -> usize {
    TILES_PER_GEMM * (1 + layers * (1 + 2 * (ffn / WIDTH)) + 3)
}

/// Floats in the parameter block (`total_params` in `kernels/common.cuh`).
pub fn param_count(layers: usize, ffn: usize) -> usize {
    3 * WIDTH + layers * layer_params(ffn) + HEAD_PARAMS
}

/// Floats of one layer in the parameter block.
pub fn layer_params(ffn: usize) -> usize {
    6 * WIDTH + ffn
}

impl PackedNet {
    /// Packs `w`; fails on a network shape the kernels do not implement or a weight that
    /// overflows FP16.
    pub fn new(w: &PreparedWeights) -> Result<PackedNet, CudaError> {
        let d = &w.dims;
        let unsupported = |what: String| Err(CudaError::UnsupportedNetwork(what));
        if d.input != INPUT_DIM || d.embedding != WIDTH {
            return unsupported(format!(
                "input {} / embedding {}, the kernels need {INPUT_DIM} / {WIDTH}",
                d.input, d.embedding
            ));
        }
        if d.layers == 0 || d.ffn == 0 || !d.ffn.is_multiple_of(WIDTH) {
            return unsupported(format!(
                "{} layers with FFN width {}; the kernels need >= 1 layer and a multiple of {WIDTH}",
                d.layers, d.ffn
            ));
        }
        if d.policy_hidden != WIDTH || d.value_hidden != VALUE_HIDDEN || d.actions != POLICY_DIM {
            return unsupported(format!(
                "heads {} / {} / {} actions, the kernels need {WIDTH} / {VALUE_HIDDEN} / {POLICY_DIM}",
                d.policy_hidden, d.value_hidden, d.actions
            ));
        }
        let (layers, ffn) = (d.layers, d.ffn);

        let mut weights = Vec::with_capacity(tile_count(layers, ffn) * TILE_ELEMS);
        push_gemm(&mut weights, &w.embed, "input_embedding", 0, 0)?;
        for (l, layer) in w.layers.iter().enumerate() {
            push_gemm(
                &mut weights,
                &layer.attention,
                &format!("layers.{l}.attention"),
                0,
                0,
            )?;
            for j in 0..ffn / WIDTH {
                let name = format!("layers.{l}.linear1");
                push_gemm(&mut weights, &layer.ffn_in, &name, 0, j * WIDTH)?;
                let name = format!("layers.{l}.linear2");
                push_gemm(&mut weights, &layer.ffn_out, &name, j * WIDTH, 0)?;
            }
        }
        push_gemm(&mut weights, &w.policy_hidden, "policy_fc.0", 0, 0)?;
        push_gemm(&mut weights, &w.policy_out, "policy_fc.3", 0, 0)?;
        push_gemm(&mut weights, &w.value_hidden, "value_fc.0", 0, 0)?;
        debug_assert_eq!(weights.len(), tile_count(layers, ffn) * TILE_ELEMS);

        let mut params = Vec::with_capacity(param_count(layers, ffn));
        params.extend(&w.embed.bias);
        params.extend(&w.input_norm.gamma);
        params.extend(&w.input_norm.beta);
        for layer in &w.layers {
            params.extend(&layer.attention.bias);
            params.extend(&layer.norm1.gamma);
            params.extend(&layer.norm1.beta);
            params.extend(&layer.ffn_in.bias);
            params.extend(&layer.ffn_out.bias);
            params.extend(&layer.norm2.gamma);
            params.extend(&layer.norm2.beta);
        }
        let padded = |params: &mut Vec<f32>, xs: &[f32], len: usize| {
            params.extend(xs);
            params.resize(params.len() + len - xs.len(), 0.0);
        };
        params.extend(&w.policy_hidden.bias); // +0
        padded(&mut params, &w.policy_out.bias, 64); // +256
        params.extend(&w.value_hidden.bias); // +320
        params.extend(&w.value_out.weight); // +448: [128 inputs, 1 output]
        padded(&mut params, &w.value_out.bias, 64); // +576
        if params.len() != param_count(layers, ffn) {
            return unsupported(format!(
                "parameter block of {} floats, expected {}",
                params.len(),
                param_count(layers, ffn)
            ));
        }
        Ok(PackedNet {
            layers,
            ffn,
            weights,
            params,
        })
    }
}

/// Appends the 8 tiles of `x . W[k0..k0+256, n0..n0+256]` (columns past `outputs` are zeros).
fn push_gemm(
    out: &mut Vec<f16>,
    lin: &Linear,
    name: &str,
    k0: usize,
    n0: usize,
) -> Result<(), CudaError> {
    assert!(
        k0 + WIDTH <= lin.inputs && n0 < lin.outputs,
        "{name}: block ({k0}, {n0}) outside [{}, {}]",
        lin.inputs,
        lin.outputs
    );
    for kt in 0..TILES_PER_GEMM {
        for kk in 0..TILE_K {
            let k = k0 + kt * TILE_K + kk;
            let row = &lin.weight[k * lin.outputs..(k + 1) * lin.outputs];
            for n in n0..n0 + WIDTH {
                let value = row.get(n).copied().unwrap_or(0.0);
                let half = f16::from_f32(value);
                if !half.is_finite() {
                    return Err(CudaError::WeightOutOfRange {
                        name: format!("{name}[in {k}, out {n}]"),
                        value,
                    });
                }
                out.push(half);
            }
        }
    }
    Ok(())
}
