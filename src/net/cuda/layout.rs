//! The layout the CUDA kernels and the host agree on: CTA geometry, weight-stream tiles and the
//! offsets of the parameter block. The single source of truth: `build.rs` includes this file
//! and writes it out as `blobnet_layout.cuh` for `kernels/common.cuh`, and
//! [`super::pack`] writes the parameter block at these offsets, so the kernels and the
//! packing cannot disagree. Plain constants only (`build.rs` compiles this file on its own).
//!
//! Parameter block (FP32, offsets in floats):
//!
//! | offset | floats | content |
//! |--------|--------|---------|
//! | 0 | 256 | embed bias |
//! | 256 | 256 | input LayerNorm gamma |
//! | 512 | 256 | input LayerNorm beta (positional encoding folded in) |
//! | [`PARAM_LAYER0`] + l · [`layer_params`]`(ffn)` | | layer `l`, offsets [`LAYER_ATTENTION_BIAS`] … |
//! | [`PARAM_LAYER0`] + layers · [`layer_params`]`(ffn)` | [`HEAD_PARAMS`] | heads, offsets [`HEAD_POLICY_HIDDEN_BIAS`] … |

/// Layout version of the weight stream, parameter block and kernel arguments (bumped on any
/// change, and reported by the fatbin's ABI block).
pub const ABI_VERSION: u32 = 2;
/// Batch rows one CTA owns; buckets are multiples of it.
pub const ROWS_PER_CTA: usize = 32;
/// Threads per CTA.
pub const THREADS: usize = 256;
/// K rows of one weight-stream tile.
pub const TILE_K: usize = 32;
/// Model width: the N of every tile and the K of every GEMM.
pub const WIDTH: usize = 256;
/// FP16 values per weight-stream tile (`TILE_K x WIDTH`).
pub const TILE_ELEMS: usize = TILE_K * WIDTH;
/// Tiles per 256 x 256 matrix product.
pub const TILES_PER_GEMM: usize = WIDTH / TILE_K;
/// Policy width (the network's actions).
pub const ACTIONS: usize = 52;
/// Hidden width of the value head.
pub const VALUE_HIDDEN: usize = 128;

/// The embedding's bias and the input LayerNorm, at the start of the parameter block.
pub const PARAM_EMBED_BIAS: usize = 0;
pub const PARAM_INPUT_NORM_GAMMA: usize = WIDTH;
pub const PARAM_INPUT_NORM_BETA: usize = 2 * WIDTH;
/// Where layer 0 starts in the parameter block.
pub const PARAM_LAYER0: usize = 3 * WIDTH;
/// Offsets within a layer. Those named `_AFTER_FFN` are further shifted by the layer's FFN
/// width (they follow the FFN input bias, `ffn` floats long).
pub const LAYER_ATTENTION_BIAS: usize = 0;
pub const LAYER_NORM1_GAMMA: usize = WIDTH;
pub const LAYER_NORM1_BETA: usize = 2 * WIDTH;
pub const LAYER_FFN_IN_BIAS: usize = 3 * WIDTH;
pub const LAYER_FFN_OUT_BIAS_AFTER_FFN: usize = 3 * WIDTH;
pub const LAYER_NORM2_GAMMA_AFTER_FFN: usize = 4 * WIDTH;
pub const LAYER_NORM2_BETA_AFTER_FFN: usize = 5 * WIDTH;

/// Offsets within the heads (policy out bias padded to 64 floats, value out bias to 64).
pub const HEAD_POLICY_HIDDEN_BIAS: usize = 0;
pub const HEAD_POLICY_OUT_BIAS: usize = WIDTH;
pub const HEAD_VALUE_HIDDEN_BIAS: usize = WIDTH + 64;
pub const HEAD_VALUE_OUT_WEIGHT: usize = HEAD_VALUE_HIDDEN_BIAS + VALUE_HIDDEN;
pub const HEAD_VALUE_OUT_BIAS: usize = HEAD_VALUE_OUT_WEIGHT + VALUE_HIDDEN;
/// Floats in the heads' part of the parameter block.
pub const HEAD_PARAMS: usize = HEAD_VALUE_OUT_BIAS + 64;

/// Floats of one layer in the parameter block besides the FFN input bias.
pub const LAYER_FIXED_PARAMS: usize = 6 * WIDTH;

/// Floats of one layer in the parameter block.
pub const fn layer_params(ffn: usize) -> usize {
    LAYER_FIXED_PARAMS + ffn
}

/// Floats in the parameter block.
pub const fn param_count(layers: usize, ffn: usize) -> usize {
    PARAM_LAYER0 + layers * layer_params(ffn) + HEAD_PARAMS
}

/// Tiles in the weight stream: embed, per layer (attention, then per 256-wide FFN chunk the
/// chunk of ffn_in's columns and the chunk of ffn_out's rows), policy hidden, policy out (52
/// columns zero-padded to 256), value hidden (128 columns zero-padded to 256).
pub const fn tile_count(layers: usize, ffn: usize) -> usize {
    TILES_PER_GEMM * (1 + layers * (1 + 2 * (ffn / WIDTH)) + 3)
}

/// Every constant above by its kernel name, for `build.rs` to write out.
#[cfg_attr(not(test), allow(dead_code))] // read by build.rs, and by the test below
pub const KERNEL_CONSTANTS: &[(&str, usize)] = &[
    ("kAbiVersion", ABI_VERSION as usize),
    ("kRows", ROWS_PER_CTA),
    ("kThreads", THREADS),
    ("kKT", TILE_K),
    ("kD", WIDTH),
    ("kActions", ACTIONS),
    ("kValueHidden", VALUE_HIDDEN),
    ("kParamEmbedBias", PARAM_EMBED_BIAS),
    ("kParamInputNormGamma", PARAM_INPUT_NORM_GAMMA),
    ("kParamInputNormBeta", PARAM_INPUT_NORM_BETA),
    ("kParamLayer0", PARAM_LAYER0),
    ("kLayerAttentionBias", LAYER_ATTENTION_BIAS),
    ("kLayerNorm1Gamma", LAYER_NORM1_GAMMA),
    ("kLayerNorm1Beta", LAYER_NORM1_BETA),
    ("kLayerFfnInBias", LAYER_FFN_IN_BIAS),
    ("kLayerFfnOutBiasAfterFfn", LAYER_FFN_OUT_BIAS_AFTER_FFN),
    ("kLayerNorm2GammaAfterFfn", LAYER_NORM2_GAMMA_AFTER_FFN),
    ("kLayerNorm2BetaAfterFfn", LAYER_NORM2_BETA_AFTER_FFN),
    ("kLayerFixedParams", LAYER_FIXED_PARAMS),
    ("kHeadPolicyHiddenBias", HEAD_POLICY_HIDDEN_BIAS),
    ("kHeadPolicyOutBias", HEAD_POLICY_OUT_BIAS),
    ("kHeadValueHiddenBias", HEAD_VALUE_HIDDEN_BIAS),
    ("kHeadValueOutWeight", HEAD_VALUE_OUT_WEIGHT),
    ("kHeadValueOutBias", HEAD_VALUE_OUT_BIAS),
    ("kHeadParams", HEAD_PARAMS),
];

#[cfg(all(test, engine_kernels))]
#[test]
fn the_kernels_were_compiled_against_this_layout() {
    let header = include_str!(concat!(env!("OUT_DIR"), "/blobnet_layout.cuh"));
    for (name, value) in KERNEL_CONSTANTS {
        let line = format!("constexpr int {name} = {value};");
        assert!(
            header.contains(&line),
            "{line} missing from blobnet_layout.cuh"
        );
    }
}
