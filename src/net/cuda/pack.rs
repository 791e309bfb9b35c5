//! [`PackedNet`]: [`PreparedWeights`] in the layout the kernels read ([`super::layout`]),
//! built on the host once per network, before anything touches the GPU.
//!
//! - The **weight stream**: every matrix product of the forward pass in the order the kernel
//!   runs them, cut into tiles of `TILE_K x 256` FP16 values (`[k][n]` row-major, contiguous):
//!   embed; per layer the folded attention `A`, then for each 256-wide chunk `j` of the FFN
//!   the columns `j` of `ffn_in` followed by the rows `j` of `ffn_out`; policy hidden; policy
//!   out (52 columns, zero-padded to 256); value hidden (128 columns, zero-padded to 256).
//!   Every product is `[rows x 256] . [256 x 256]`, 8 tiles.
//! - The **parameter block** (FP32): biases, LayerNorm affine parameters and the value
//!   head's output weights, each written at its offset in [`super::layout`].
//!
//! The attention fold (`A = W_out . W_v`) happened in f64 in [`PreparedWeights`]; the cast to
//! FP16 happens here, once.

use half::f16;

use super::layout::*;
use super::CudaError;
use crate::net::weights::{Linear, PreparedWeights};
use crate::net::{INPUT_DIM, POLICY_DIM};

// The layout is compiled on its own by build.rs, so it spells the action count out.
const _: () = assert!(ACTIONS == POLICY_DIM);

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
        if d.policy_hidden != WIDTH || d.value_hidden != VALUE_HIDDEN || d.actions != ACTIONS {
            return unsupported(format!(
                "heads {} / {} / {} actions, the kernels need {WIDTH} / {VALUE_HIDDEN} / {ACTIONS}",
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

        let mut block = ParamBlock::default();
        block.put(PARAM_EMBED_BIAS, &w.embed.bias, WIDTH);
        block.put(PARAM_INPUT_NORM_GAMMA, &w.input_norm.gamma, WIDTH);
        block.put(PARAM_INPUT_NORM_BETA, &w.input_norm.beta, WIDTH);
        for (l, layer) in w.layers.iter().enumerate() {
            let at = PARAM_LAYER0 + l * layer_params(ffn);
            block.put(at + LAYER_ATTENTION_BIAS, &layer.attention.bias, WIDTH);
            block.put(at + LAYER_NORM1_GAMMA, &layer.norm1.gamma, WIDTH);
            block.put(at + LAYER_NORM1_BETA, &layer.norm1.beta, WIDTH);
            block.put(at + LAYER_FFN_IN_BIAS, &layer.ffn_in.bias, ffn);
            let after = at + ffn;
            block.put(
                after + LAYER_FFN_OUT_BIAS_AFTER_FFN,
                &layer.ffn_out.bias,
                WIDTH,
            );
            block.put(
                after + LAYER_NORM2_GAMMA_AFTER_FFN,
                &layer.norm2.gamma,
                WIDTH,
            );
            block.put(after + LAYER_NORM2_BETA_AFTER_FFN, &layer.norm2.beta, WIDTH);
        }
        let heads = PARAM_LAYER0 + layers * layer_params(ffn);
        let head = |offset: usize, next: usize| (heads + offset, next - offset);
        let (at, room) = head(HEAD_POLICY_HIDDEN_BIAS, HEAD_POLICY_OUT_BIAS);
        block.put(at, &w.policy_hidden.bias, room);
        let (at, room) = head(HEAD_POLICY_OUT_BIAS, HEAD_VALUE_HIDDEN_BIAS);
        block.put(at, &w.policy_out.bias, room);
        let (at, room) = head(HEAD_VALUE_HIDDEN_BIAS, HEAD_VALUE_OUT_WEIGHT);
        block.put(at, &w.value_hidden.bias, room);
        // [128 inputs, 1 output]
        let (at, room) = head(HEAD_VALUE_OUT_WEIGHT, HEAD_VALUE_OUT_BIAS);
        block.put(at, &w.value_out.weight, room);
        let (at, room) = head(HEAD_VALUE_OUT_BIAS, HEAD_PARAMS);
        block.put(at, &w.value_out.bias, room);
        let params = block.0;
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

/// The parameter block, written in offset order.
#[derive(Default)]
struct ParamBlock(Vec<f32>);

impl ParamBlock {
    /// Writes `xs` at `offset` (where the block must end) and pads it with zeros to `room`.
    fn put(&mut self, offset: usize, xs: &[f32], room: usize) {
        assert_eq!(
            self.0.len(),
            offset,
            "parameters written out of layout order"
        );
        assert!(xs.len() <= room, "{} floats in a room of {room}", xs.len());
        self.0.extend(xs);
        self.0.resize(offset + room, 0.0);
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
