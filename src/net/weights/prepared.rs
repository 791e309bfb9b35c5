//! The once-per-network preparation every backend starts from: attention folded to one
//! linear map, matrices transposed to `[in, out]`, the positional encoding folded into the
//! input norm.

use super::{Dims, Weights};

/// One PyTorch `Linear` as backends want it: `y = x · weight + bias` with `weight` row-major
/// `[inputs, outputs]` (the transpose of PyTorch's `[out, in]`).
#[derive(Clone, Debug)]
pub struct Linear {
    pub inputs: usize,
    pub outputs: usize,
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

impl Linear {
    fn from_pytorch(weights: &Weights, prefix: &str) -> Linear {
        let w = weights.get(&format!("{prefix}.weight"));
        let (outputs, inputs) = (w.shape[0], w.shape[1]);
        let mut weight = vec![0.0; inputs * outputs];
        for (o, row) in w.data.chunks_exact(inputs).enumerate() {
            for (i, &x) in row.iter().enumerate() {
                weight[i * outputs + o] = x;
            }
        }
        Linear {
            inputs,
            outputs,
            weight,
            bias: weights.get(&format!("{prefix}.bias")).data.clone(),
        }
    }
}

/// LayerNorm affine parameters (eps is always 1e-5).
#[derive(Clone, Debug)]
pub struct LayerNorm {
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
}

impl LayerNorm {
    fn from_pytorch(weights: &Weights, prefix: &str) -> LayerNorm {
        LayerNorm {
            gamma: weights.get(&format!("{prefix}.weight")).data.clone(),
            beta: weights.get(&format!("{prefix}.bias")).data.clone(),
        }
    }
}

/// LayerNorm epsilon used everywhere in BlobNet.
pub const LAYER_NORM_EPS: f32 = 1e-5;

/// One encoder layer with its attention folded to a single linear map (spec §3.4):
/// `h = norm1(h + attention(h))`, `h = norm2(h + ffn_out(relu(ffn_in(h))))`.
#[derive(Clone, Debug)]
pub struct PreparedLayer {
    /// `A = W_out · W_v` and `c = W_out · b_v + b_out`, folded in f64.
    pub attention: Linear,
    pub norm1: LayerNorm,
    pub ffn_in: Linear,
    pub ffn_out: Linear,
    pub norm2: LayerNorm,
}

/// Weights in the form every backend starts from, prepared once per network:
/// `h = input_norm(embed(x))` (the positional encoding is folded into `input_norm.beta`), the
/// layers, then `policy_out(relu(policy_hidden(h)))` and `tanh(value_out(relu(value_hidden(h))))`.
#[derive(Clone, Debug)]
pub struct PreparedWeights {
    pub dims: Dims,
    pub embed: Linear,
    /// `beta` includes the positional encoding, added right after this norm.
    pub input_norm: LayerNorm,
    pub layers: Vec<PreparedLayer>,
    pub policy_hidden: Linear,
    pub policy_out: Linear,
    pub value_hidden: Linear,
    pub value_out: Linear,
}

impl PreparedWeights {
    pub fn new(weights: &Weights) -> PreparedWeights {
        let mut input_norm = LayerNorm::from_pytorch(weights, "input_norm");
        for (beta, pos) in input_norm
            .beta
            .iter_mut()
            .zip(&weights.get("positional_encoding").data)
        {
            *beta += pos;
        }
        let layers = (0..weights.dims.layers)
            .map(|i| {
                let p = format!("transformer.layers.{i}.");
                PreparedLayer {
                    attention: fold_attention(weights, &format!("{p}self_attn.")),
                    norm1: LayerNorm::from_pytorch(weights, &format!("{p}norm1")),
                    ffn_in: Linear::from_pytorch(weights, &format!("{p}linear1")),
                    ffn_out: Linear::from_pytorch(weights, &format!("{p}linear2")),
                    norm2: LayerNorm::from_pytorch(weights, &format!("{p}norm2")),
                }
            })
            .collect();
        PreparedWeights {
            dims: weights.dims,
            embed: Linear::from_pytorch(weights, "input_embedding"),
            input_norm,
            layers,
            policy_hidden: Linear::from_pytorch(weights, "policy_fc.0"),
            policy_out: Linear::from_pytorch(weights, "policy_fc.3"),
            value_hidden: Linear::from_pytorch(weights, "value_fc.0"),
            value_out: Linear::from_pytorch(weights, "value_fc.3"),
        }
    }
}

/// With a sequence of one token, attention is `W_out (W_v h + b_v) + b_out` (spec §3.4):
/// one linear map `A = W_out · W_v`, `c = W_out · b_v + b_out`, computed in f64.
fn fold_attention(weights: &Weights, prefix: &str) -> Linear {
    let d = weights.dims.embedding;
    let to_f64 = |key: &str| -> Vec<f64> {
        weights
            .get(&format!("{prefix}{key}"))
            .data
            .iter()
            .map(|&x| x as f64)
            .collect()
    };
    let in_proj = to_f64("in_proj_weight");
    let in_bias = to_f64("in_proj_bias");
    let (w_v, b_v) = (&in_proj[2 * d * d..], &in_bias[2 * d..]);
    let (w_out, b_out) = (to_f64("out_proj.weight"), to_f64("out_proj.bias"));

    // Aᵀ = W_vᵀ · W_outᵀ, row-major [in, out]: the layout `Linear` wants.
    // Aᵀ[i][o] = Σ_k W_v[k][i] · W_out[o][k], with W_outᵀ rows as the contiguous inner loop.
    let mut w_out_t = vec![0.0f64; d * d];
    for (o, row) in w_out.chunks_exact(d).enumerate() {
        for (k, &w) in row.iter().enumerate() {
            w_out_t[k * d + o] = w;
        }
    }
    let mut a_t = vec![0.0f64; d * d];
    for (i, a_row) in a_t.chunks_exact_mut(d).enumerate() {
        for (k, w_out_row) in w_out_t.chunks_exact(d).enumerate() {
            let v = w_v[k * d + i];
            for (a, &w) in a_row.iter_mut().zip(w_out_row) {
                *a += v * w;
            }
        }
    }
    let bias = (0..d)
        .map(|o| {
            (w_out[o * d..(o + 1) * d]
                .iter()
                .zip(b_v)
                .map(|(w, b)| w * b)
                .sum::<f64>()
                + b_out[o]) as f32
        })
        .collect();
    Linear {
        inputs: d,
        outputs: d,
        weight: a_t.into_iter().map(|x| x as f32).collect(),
        bias,
    }
}
