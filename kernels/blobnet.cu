// BlobNet forward pass (spec §3, attention folded to one 256x256 matrix per layer, §3.4) as
// one persistent kernel: each CTA takes kRows = 32 batch rows through the embedding, every
// encoder layer and both heads with its activations on chip (shared memory, and the FP32
// residual stream in registers), while the weights stream past from L2 (the same 7.6 MB for
// every CTA; see common.cuh for the stream format).
//
// Per CTA, in consumption order of the weight stream (every GEMM is [32 x 256] . [256 x 256]):
//   x16 = FP16(inputs)                                      (rows >= fill are zeros)
//   h   = LN_in(x16 . W_emb + b_emb)                        (beta includes the pos. encoding)
//   per layer:  h = LN1(h + h16 . A + c)
//               for each 256-wide chunk j of the FFN:  f = FP16(ReLU(h16 . W1[:, j] + b1[j]))
//                                                      acc2 += f . W2[j, :]   (registers)
//               h = LN2(h + acc2 + b2)
//   g = FP16(ReLU(h16 . Wp1 + bp1)); logits = g . Wp2 + bp2 -> masked softmax -> policy
//   u = ReLU(h16 . Wv1 + bv1) (FP32, 128 used); value = tanh(u . wv2 + bv2)
#include "common.cuh"

// Layout version of the weight stream, parameter block and kernel arguments. The Rust side
// reads this block at load time and refuses a fatbin whose layout fields disagree with it
// (CudaError::AbiMismatch), so a stale build can never run with a different packing; it
// takes the shared memory size and stage count (tuning knobs) from here.
//   [0] ABI version  [1] kRows  [2] kThreads  [3] kSmemBytes  [4] kKT  [5] kD  [6] kStages
//   [7] kHeadParams
__constant__ unsigned int blobnet_abi[8] = {
    static_cast<unsigned int>(blob::kAbiVersion),
    static_cast<unsigned int>(blob::kRows),
    static_cast<unsigned int>(blob::kThreads),
    static_cast<unsigned int>(blob::kSmemBytes),
    static_cast<unsigned int>(blob::kKT),
    static_cast<unsigned int>(blob::kD),
    static_cast<unsigned int>(blob::kStages),
    static_cast<unsigned int>(blob::kHeadParams),
};

namespace blob {

// Rows [0, valid) of the tile: FP32 input rows converted to FP16; rows [valid, kRows): zeros.
// This is the only place that reads `inputs`; a compact input encoding replaces this function.
__device__ __forceinline__ void load_input_rows(__half* x16, const float* __restrict__ inputs,
                                                int valid, int warp, int lane) {
    const int ca = col_a(lane), cb = col_b(lane);
#pragma unroll
    for (int rr = 0; rr < kRowsPerWarp; ++rr) {
        const int r = warp * kRowsPerWarp + rr;
        float4 a = make_float4(0.f, 0.f, 0.f, 0.f), b = a;
        if (r < valid) {
            a = ldg4(inputs + static_cast<size_t>(r) * kD + ca);
            b = ldg4(inputs + static_cast<size_t>(r) * kD + cb);
        }
        st4h(x16 + r * kLdh + ca, a);
        st4h(x16 + r * kLdh + cb, b);
    }
}

// Policy: logits = result[:, 0..52) + bias; softmax over the actions legal in the row's mask
// (all 52 when the mask has none, like the CPU backend); illegal actions get exactly 0.
// Writes policy rows [0, valid) of the tile. Lane l owns actions l and l + 32 (if < 52).
__device__ __forceinline__ void policy_rows(float* __restrict__ policy, const float* result,
                                            const float* __restrict__ bias,
                                            const unsigned long long* __restrict__ masks,
                                            int valid, int warp, int lane) {
    constexpr unsigned long long kAll = (1ull << kActions) - 1ull;
    const int a0 = lane, a1 = lane + 32;
    const bool has1 = a1 < kActions;
    const float b0 = __ldg(bias + a0), b1 = has1 ? __ldg(bias + a1) : 0.f;
#pragma unroll
    for (int rr = 0; rr < kRowsPerWarp; ++rr) {
        const int r = warp * kRowsPerWarp + rr;
        if (r >= valid) break;  // warp-uniform
        unsigned long long legal = __ldg(masks + r) & kAll;
        if (legal == 0ull) legal = kAll;
        const bool l0 = (legal >> a0) & 1ull;
        const bool l1 = has1 && ((legal >> a1) & 1ull);
        const float z0 = result[r * kLds + a0] + b0;
        const float z1 = has1 ? result[r * kLds + a1] + b1 : 0.f;
        const float m = warp_max(fmaxf(l0 ? z0 : -INFINITY, l1 ? z1 : -INFINITY));
        const float e0 = l0 ? expf(z0 - m) : 0.f;
        const float e1 = l1 ? expf(z1 - m) : 0.f;
        const float sum = warp_sum(e0 + e1);
        float* out = policy + static_cast<size_t>(r) * kActions;
        out[a0] = e0 / sum;
        if (has1) out[a1] = e1 / sum;
    }
}

// Value: u = ReLU(result[:, 0..128) + bias) in FP32, value = tanh(u . w + b). Lane l owns
// hidden units [4l, 4l + 4). Writes value rows [0, valid) of the tile.
__device__ __forceinline__ void value_rows(float* __restrict__ value, const float* result,
                                           const float* __restrict__ bias,
                                           const float* __restrict__ weight,
                                           const float* __restrict__ out_bias, int valid, int warp,
                                           int lane) {
    static_assert(kValueHidden == 4 * 32, "one float4 of hidden units per lane");
    const int c = 4 * lane;
    const float4 b = ldg4(bias + c), w = ldg4(weight + c);
    const float b_out = __ldg(out_bias);
#pragma unroll
    for (int rr = 0; rr < kRowsPerWarp; ++rr) {
        const int r = warp * kRowsPerWarp + rr;
        if (r >= valid) break;  // warp-uniform
        const float4 x = ld4(result + r * kLds + c);
        const float dot = relu(x.x + b.x) * w.x + relu(x.y + b.y) * w.y + relu(x.z + b.z) * w.z +
                          relu(x.w + b.w) * w.w;
        const float total = warp_sum(dot);
        if (lane == 0) value[r] = tanhf(total + b_out);
    }
}

}  // namespace blob

// blobnet_forward_f32: the whole network on FP32 input rows.
//
// Arguments (outputs first, sizes last):
//   policy  f32 [rows_alloc, 52]  out: softmax rows [0, fill); other rows untouched
//   value   f32 [rows_alloc]      out: tanh values [0, fill); other rows untouched
//   tags    u32 [rows_alloc / 32] out: CTA b writes fill[1] (the batch's tag) once its rows
//                                 are written, so the host can tell fresh outputs from stale
//   inputs  f32 [rows_alloc, 256] encoded states, row-major; only rows [0, fill) are read
//   masks   u64 [rows_alloc]      legal-action bits (bit a = action a); rows [0, fill) read
//   fill    u32 [2]               device-resident row count (so one captured graph per bucket
//                                 serves every fill <= bucket) and the batch's tag
//   weights f16 [total_tiles(layers, ffn) * 8192]  the weight stream (common.cuh)
//   params  f32 [total_params(layers, ffn)]        biases, LayerNorm affine, value_out
//   layers  encoder layers (>= 1);  ffn  FFN width (a multiple of 256)
// Launch: grid (bucket / 32), block (256), dynamic shared memory kSmemBytes (202,240 bytes
// with 8 stages; the host reads it from blobnet_abi; needs
// CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES), at most one CTA per SM. CTA b handles rows
// [32 b, 32 b + 32) and returns at once if 32 b >= fill. Pointers 16-byte aligned.
// Shared memory: kStages weight stages (16,896 B each), h16 and f16 tiles (2 x 16,896 B),
// FP32 GEMM result (33,280 B); the FP32 residual stream lives in registers (Residual).
extern "C" __global__ void __launch_bounds__(blob::kThreads, 1)
    blobnet_forward_f32(float* __restrict__ policy, float* __restrict__ value,
                        unsigned int* __restrict__ tags, const float* __restrict__ inputs,
                        const unsigned long long* __restrict__ masks,
                        const unsigned int* __restrict__ fill, const __half* __restrict__ weights,
                        const float* __restrict__ params, int layers, int ffn) {
    using namespace blob;
    const int row0 = blockIdx.x * kRows;
    const int rows = static_cast<int>(*fill);
    if (row0 >= rows) return;  // whole CTA past the batch: nothing to compute or write
    const int valid = min(kRows, rows - row0);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;

    extern __shared__ __align__(128) unsigned char smem[];
    __half* stages = reinterpret_cast<__half*>(smem + kOffStages);
    __half* h16 = reinterpret_cast<__half*>(smem + kOffH16);
    __half* f16 = reinterpret_cast<__half*>(smem + kOffF16);
    float* result = reinterpret_cast<float*>(smem + kOffResult);

    WeightPipe pipe{stages, weights, total_tiles(layers, ffn), 0, 0};
    pipe.start();

    // Embedding: the input tile goes through h16 as the first GEMM operand.
    load_input_rows(h16, inputs + static_cast<size_t>(row0) * kD, valid, warp, lane);
    __syncthreads();
    Acc acc;
    acc.zero();
    gemm_tile(acc, h16, pipe, warp);
    acc.store(result, warp);
    __syncthreads();
    Residual h;  // the residual stream of this thread's rows and columns
    layer_norm_rows(result, params + kParamEmbedBias, false, h, h16,
                    params + kParamInputNormGamma, params + kParamInputNormBeta, warp, lane);
    __syncthreads();

    const int chunks = ffn / kD;
#pragma unroll 1
    for (int l = 0; l < layers; ++l) {
        const float* p = params + kParamLayer0 + l * layer_params(ffn);
        // h = norm1(h + A h + c)
        acc.zero();
        gemm_tile(acc, h16, pipe, warp);
        acc.store(result, warp);
        __syncthreads();
        layer_norm_rows(result, p + kLayerAttentionBias, true, h, h16, p + kLayerNorm1Gamma,
                        p + kLayerNorm1Beta, warp, lane);
        __syncthreads();
        // h = norm2(h + W2 relu(W1 h + b1) + b2), one 256-wide chunk of the FFN at a time.
        Acc acc2;
        acc2.zero();
#pragma unroll 1
        for (int j = 0; j < chunks; ++j) {
            acc.zero();
            gemm_tile(acc, h16, pipe, warp);
            acc.store(result, warp);
            __syncthreads();
            bias_relu_rows(result, p + kLayerFfnInBias + j * kD, f16, warp, lane);
            __syncthreads();
            gemm_tile(acc2, f16, pipe, warp);
        }
        acc2.store(result, warp);
        __syncthreads();
        layer_norm_rows(result, p + kLayerFfnOutBiasAfterFfn + ffn, true, h, h16,
                        p + kLayerNorm2GammaAfterFfn + ffn, p + kLayerNorm2BetaAfterFfn + ffn,
                        warp, lane);
        __syncthreads();
    }

    const float* heads = params + kParamLayer0 + layers * layer_params(ffn);
    // Policy head.
    acc.zero();
    gemm_tile(acc, h16, pipe, warp);
    acc.store(result, warp);
    __syncthreads();
    bias_relu_rows(result, heads + kHeadPolicyHiddenBias, f16, warp, lane);
    __syncthreads();
    acc.zero();
    gemm_tile(acc, f16, pipe, warp);
    acc.store(result, warp);
    __syncthreads();
    policy_rows(policy + static_cast<size_t>(row0) * kActions, result, heads + kHeadPolicyOutBias,
                masks + row0, valid, warp, lane);
    // Value head (the GEMM's first barrier orders the policy epilogue's reads of `result`
    // before the store below).
    acc.zero();
    gemm_tile(acc, h16, pipe, warp);
    acc.store(result, warp);
    __syncthreads();
    value_rows(value + row0, result, heads + kHeadValueHiddenBias, heads + kHeadValueOutWeight,
               heads + kHeadValueOutBias, valid, warp, lane);
    // Every warp's rows are written: the CTA's tag says so.
    __syncthreads();
    if (threadIdx.x == 0) tags[blockIdx.x] = fill[1];
}
