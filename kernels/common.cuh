// Shared pieces of the BlobNet kernels: the tile geometry every kernel and the Rust side
// (src/net/cuda/kernels.rs) agree on, warp reductions, the weight-stream pipeline and the
// row-wise epilogues (bias, residual, LayerNorm, ReLU) that run on a CTA's row tile.
//
// Conventions
// - FP16 weights and activations feed the tensor cores (wmma 16x16x16, FP32 accumulate);
//   everything a row-wise epilogue computes (bias, residual, LayerNorm statistics, softmax,
//   tanh) is FP32.
// - One CTA owns kRows consecutive batch rows and runs the whole network on them; its
//   activations never leave shared memory. Warp w of the CTA owns rows [4w, 4w + 4) in every
//   row-wise epilogue; in a GEMM it owns output columns [32w, 32w + 32) of all kRows rows.
// - Weights arrive as one "weight stream": every matrix product of the forward pass, in the
//   order the kernel consumes them, cut into tiles of kKT x kD FP16 values ([k][n] row-major,
//   16 KB each, contiguous). A cp.async pipeline (WeightPipe) keeps kStages - 1 tiles in
//   flight across GEMM boundaries, so the stream never stalls between layers.
#pragma once

#include <cuda_fp16.h>
#include <cuda_pipeline.h>
#include <mma.h>

namespace blob {

// ---- Geometry (mirrored in src/net/cuda/kernels.rs; the ABI block below is checked at load) --
constexpr int kRows = 32;        // batch rows per CTA
constexpr int kThreads = 256;    // threads per CTA (8 warps)
constexpr int kWarps = kThreads / 32;
constexpr int kRowsPerWarp = kRows / kWarps;  // 4: rows a warp owns in row-wise epilogues
constexpr int kD = 256;          // model width = input width = every GEMM's N and K tile width
constexpr int kKT = 32;          // K rows per weight tile
constexpr int kTileElems = kKT * kD;        // 8192 halves = 16 KB per tile in the stream
constexpr int kTilesPerGemm = kD / kKT;     // 8: every GEMM here has K = 256
// Weight tiles resident in shared memory (kStages - 1 in flight). A build knob for tuning
// (ENGINE_NVCC_FLAGS=-DBLOB_STAGES=N); the host reads it, with the shared memory size, from
// the fatbin's ABI block.
#ifndef BLOB_STAGES
#define BLOB_STAGES 8
#endif
constexpr int kStages = BLOB_STAGES;
constexpr int kChunksPerThread = kTileElems / 8 / kThreads;  // 16-byte cp.async per thread per tile
constexpr int kLdh = kD + 8;     // row stride (halves) of FP16 activation tiles and weight stages
constexpr int kLds = kD + 4;     // row stride (floats) of the FP32 GEMM result tile
constexpr int kActions = 52;     // policy width
constexpr int kValueHidden = 128;
constexpr float kLnEps = 1e-5f;

// Shared memory carve-up, in bytes (all offsets multiples of 128; wmma needs 32-byte alignment).
constexpr int kStageBytes = kKT * kLdh * 2;             // 16,896
constexpr int kStagesBytes = kStages * kStageBytes;     // 135,168 with 8 stages
constexpr int kHalfTileBytes = kRows * kLdh * 2;        // 16,896
constexpr int kResultBytes = kRows * kLds * 4;          // 33,280
constexpr int kOffStages = 0;
constexpr int kOffH16 = kOffStages + kStagesBytes;
constexpr int kOffF16 = kOffH16 + kHalfTileBytes;
constexpr int kOffResult = kOffF16 + kHalfTileBytes;
constexpr int kSmemBytes = kOffResult + kResultBytes;   // 202,240 with 8 stages (opt-in)
static_assert(kStages >= 2, "the pipeline needs a stage to fill while one is read");
static_assert(kSmemBytes <= 227 * 1024, "exceeds the sm_90 shared memory per block");
static_assert(kStageBytes % 128 == 0 && kHalfTileBytes % 128 == 0, "128-byte carve-up");
static_assert(kResultBytes % 128 == 0, "128-byte carve-up");
static_assert(kRows % 16 == 0 && kRows / 16 == 2, "GEMM warp tiling assumes 32 rows");
static_assert(kD == kWarps * 32, "GEMM warp tiling: one 32-column slab per warp");
static_assert(kRowsPerWarp * kWarps == kRows, "row-wise epilogues cover the tile");
static_assert(kChunksPerThread * kThreads * 8 == kTileElems, "tile copy covers the tile");

// Parameter block (FP32 biases, LayerNorm affine, value output weights): offsets in floats.
// Layout (mirrored by src/net/cuda/pack.rs):
//   [0, 256) embed bias | [256, 512) input_norm gamma | [512, 768) input_norm beta (+pos. enc.)
//   layer l at kParamLayer0 + l * (6 * 256 + ffn):
//     +0 attention bias c | +256 norm1 gamma | +512 norm1 beta | +768 ffn_in bias [ffn]
//     +768+ffn ffn_out bias | +1024+ffn norm2 gamma | +1280+ffn norm2 beta
//   heads after the last layer:
//     +0 policy_hidden bias [256] | +256 policy_out bias [64, 52 used]
//     +320 value_hidden bias [128] | +448 value_out weight [128] | +576 value_out bias [64, 1 used]
constexpr int kParamLayer0 = 3 * kD;
constexpr int kHeadPolicyHiddenBias = 0;
constexpr int kHeadPolicyOutBias = 256;
constexpr int kHeadValueHiddenBias = 320;
constexpr int kHeadValueOutWeight = 448;
constexpr int kHeadValueOutBias = 576;
constexpr int kHeadParams = 640;

__host__ __device__ constexpr int layer_params(int ffn) { return 6 * kD + ffn; }
__host__ __device__ constexpr int total_params(int layers, int ffn) {
    return kParamLayer0 + layers * layer_params(ffn) + kHeadParams;
}
// Tiles in the weight stream: embed, per layer (attention, then per 256-wide FFN chunk the
// chunk of ffn_in's columns and the chunk of ffn_out's rows), policy hidden, policy out
// (52 columns zero-padded to 256), value hidden (128 columns zero-padded to 256).
__host__ __device__ constexpr int total_tiles(int layers, int ffn) {
    return kTilesPerGemm * (1 + layers * (1 + 2 * (ffn / kD)) + 3);
}

// ---- Small helpers ---------------------------------------------------------------------------

__device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

__device__ __forceinline__ float warp_max(float x) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
    return x;
}

__device__ __forceinline__ float4 ld4(const float* p) { return *reinterpret_cast<const float4*>(p); }
__device__ __forceinline__ float4 ldg4(const float* p) {
    return __ldg(reinterpret_cast<const float4*>(p));
}
__device__ __forceinline__ void st4(float* p, float4 v) { *reinterpret_cast<float4*>(p) = v; }

// Four floats to four halves at p (p 8-byte aligned).
__device__ __forceinline__ void st4h(__half* p, float4 v) {
    __half2* q = reinterpret_cast<__half2*>(p);
    q[0] = __floats2half2_rn(v.x, v.y);
    q[1] = __floats2half2_rn(v.z, v.w);
}

// The two 4-column groups lane `lane` owns in a row-wise epilogue: [4 lane, 4 lane + 4) and
// [128 + 4 lane, 128 + 4 lane + 4). Consecutive lanes touch consecutive 16-byte words.
__device__ __forceinline__ int col_a(int lane) { return 4 * lane; }
__device__ __forceinline__ int col_b(int lane) { return 128 + 4 * lane; }

// ---- Weight stream pipeline --------------------------------------------------------------------
// A ring of kStages shared-memory stages, each one tile [kKT][kLdh] FP16 (the last 8 columns of
// a row are padding, never read). Tile t of the stream lands in stage t % kStages. Every call
// to issue() commits exactly one cp.async group (empty past the end of the stream), so after
// acquire()'s wait_prior(kStages - 2) the tile being acquired has arrived.
struct WeightPipe {
    __half* stages;          // shared, kStages * kKT * kLdh halves
    const __half* stream;    // global, total * kTileElems halves
    int total;               // tiles in the stream
    int issued;              // next tile to request
    int used;                // next tile to consume

    // Requests tile `issued` (all threads take part: 1024 16-byte chunks, 4 per thread).
    __device__ __forceinline__ void issue() {
        if (issued < total) {
            const __half* src = stream + static_cast<size_t>(issued) * kTileElems;
            __half* dst = stages + (issued % kStages) * (kKT * kLdh);
#pragma unroll
            for (int k = 0; k < kChunksPerThread; ++k) {
                const int i = threadIdx.x + k * kThreads;  // 16-byte chunk of the tile
                const int r = i / (kD / 8);                 // 32 chunks of 8 halves per row
                const int c = (i % (kD / 8)) * 8;
                __pipeline_memcpy_async(dst + r * kLdh + c, src + r * kD + c, 16);
            }
        }
        __pipeline_commit();
        ++issued;
    }

    // Prefetches the first kStages - 1 tiles. Call once, by all threads, before any acquire().
    __device__ __forceinline__ void start() {
#pragma unroll
        for (int s = 0; s < kStages - 1; ++s) issue();
    }

    // Waits for the next tile, makes it visible to the whole CTA and returns its stage. The
    // barrier also guarantees every warp has finished with the stage consumed before it, which
    // is the one the tile requested here overwrites. All threads must call it (it syncs).
    __device__ __forceinline__ const __half* acquire() {
        __pipeline_wait_prior(kStages - 2);
        __syncthreads();
        const __half* stage = stages + (used % kStages) * (kKT * kLdh);
        ++used;
        issue();
        return stage;
    }
};

// ---- Tensor-core GEMM on the row tile ------------------------------------------------------------
using namespace nvcuda;
using FragA = wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major>;
using FragB = wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::row_major>;
using FragC = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;

// One warp's share of a [kRows x kD] FP32 result: rows 0..31 x columns [32w, 32w + 32).
struct Acc {
    FragC f[2][2];  // [row block of 16][column block of 16]

    __device__ __forceinline__ void zero() {
#pragma unroll
        for (int i = 0; i < 2; ++i)
#pragma unroll
            for (int j = 0; j < 2; ++j) wmma::fill_fragment(f[i][j], 0.0f);
    }

    // Writes the warp's share into the result tile `out` ([kRows][kLds] FP32, shared).
    __device__ __forceinline__ void store(float* out, int warp) const {
#pragma unroll
        for (int i = 0; i < 2; ++i)
#pragma unroll
            for (int j = 0; j < 2; ++j)
                wmma::store_matrix_sync(out + (i * 16) * kLds + warp * 32 + j * 16, f[i][j], kLds,
                                        wmma::mem_row_major);
    }
};

// acc += a[kRows x 256] . W where W is the next kTilesPerGemm tiles of the weight stream
// ([256 x 256] FP16, [k][n]). `a` is FP16 in shared memory, row stride kLdh. All threads call it.
__device__ __forceinline__ void gemm_tile(Acc& acc, const __half* a, WeightPipe& pipe, int warp) {
#pragma unroll 1
    for (int kt = 0; kt < kTilesPerGemm; ++kt) {
        const __half* w = pipe.acquire();
#pragma unroll
        for (int kk = 0; kk < kKT; kk += 16) {
            FragA fa[2];
            FragB fb[2];
#pragma unroll
            for (int i = 0; i < 2; ++i)
                wmma::load_matrix_sync(fa[i], a + (i * 16) * kLdh + kt * kKT + kk, kLdh);
#pragma unroll
            for (int j = 0; j < 2; ++j)
                wmma::load_matrix_sync(fb[j], w + kk * kLdh + warp * 32 + j * 16, kLdh);
#pragma unroll
            for (int i = 0; i < 2; ++i)
#pragma unroll
                for (int j = 0; j < 2; ++j) wmma::mma_sync(acc.f[i][j], fa[i], fb[j], acc.f[i][j]);
        }
    }
}

// ---- Row-wise epilogues (warp w: rows [4w, 4w + 4); lane: columns col_a, col_b) ---------------

// The FP32 residual stream h of the rows a thread owns in row-wise epilogues (rows
// [4w, 4w + 4), columns col_a and col_b): kept in registers across the whole forward pass,
// since no other thread ever reads it.
struct Residual {
    float4 a[kRowsPerWarp], b[kRowsPerWarp];
};

// h = LayerNorm(result + bias [+ h]) with affine (gamma, beta); updates the thread's share of
// the residual stream `h` and writes the FP16 GEMM operand h16 ([kRows][kLdh]). `result`
// [kRows][kLds]. Two-pass statistics in FP32, like the CPU.
__device__ __forceinline__ void layer_norm_rows(const float* result, const float* __restrict__ bias,
                                                bool add_residual, Residual& h, __half* h16,
                                                const float* __restrict__ gamma,
                                                const float* __restrict__ beta, int warp, int lane) {
    const int ca = col_a(lane), cb = col_b(lane);
    const float4 ba = ldg4(bias + ca), bb = ldg4(bias + cb);
    const float4 ga = ldg4(gamma + ca), gb = ldg4(gamma + cb);
    const float4 ea = ldg4(beta + ca), eb = ldg4(beta + cb);
#pragma unroll
    for (int rr = 0; rr < kRowsPerWarp; ++rr) {
        const int r = warp * kRowsPerWarp + rr;
        float4 xa = ld4(result + r * kLds + ca), xb = ld4(result + r * kLds + cb);
        xa.x += ba.x; xa.y += ba.y; xa.z += ba.z; xa.w += ba.w;
        xb.x += bb.x; xb.y += bb.y; xb.z += bb.z; xb.w += bb.w;
        if (add_residual) {
            const float4 ra = h.a[rr], rb = h.b[rr];
            xa.x += ra.x; xa.y += ra.y; xa.z += ra.z; xa.w += ra.w;
            xb.x += rb.x; xb.y += rb.y; xb.z += rb.z; xb.w += rb.w;
        }
        const float mean =
            warp_sum((xa.x + xa.y) + (xa.z + xa.w) + (xb.x + xb.y) + (xb.z + xb.w)) * (1.0f / kD);
        xa.x -= mean; xa.y -= mean; xa.z -= mean; xa.w -= mean;
        xb.x -= mean; xb.y -= mean; xb.z -= mean; xb.w -= mean;
        const float sq = (xa.x * xa.x + xa.y * xa.y) + (xa.z * xa.z + xa.w * xa.w) +
                         (xb.x * xb.x + xb.y * xb.y) + (xb.z * xb.z + xb.w * xb.w);
        const float rstd = rsqrtf(warp_sum(sq) * (1.0f / kD) + kLnEps);
        const float4 ya = make_float4(xa.x * rstd * ga.x + ea.x, xa.y * rstd * ga.y + ea.y,
                                      xa.z * rstd * ga.z + ea.z, xa.w * rstd * ga.w + ea.w);
        const float4 yb = make_float4(xb.x * rstd * gb.x + eb.x, xb.y * rstd * gb.y + eb.y,
                                      xb.z * rstd * gb.z + eb.z, xb.w * rstd * gb.w + eb.w);
        h.a[rr] = ya;
        h.b[rr] = yb;
        st4h(h16 + r * kLdh + ca, ya);
        st4h(h16 + r * kLdh + cb, yb);
    }
}

// ReLU that keeps NaN (fmaxf(NaN, 0) is 0): a net whose activations overflow then gives NaN
// outputs, which the start-up canary refuses, instead of quietly uniform priors.
__device__ __forceinline__ float relu(float x) { return x < 0.f ? 0.f : x; }

// out16 = FP16(ReLU(result + bias)) for all kRows rows. `bias` has kD floats.
__device__ __forceinline__ void bias_relu_rows(const float* result, const float* __restrict__ bias,
                                               __half* out16, int warp, int lane) {
    const int ca = col_a(lane), cb = col_b(lane);
    const float4 ba = ldg4(bias + ca), bb = ldg4(bias + cb);
#pragma unroll
    for (int rr = 0; rr < kRowsPerWarp; ++rr) {
        const int r = warp * kRowsPerWarp + rr;
        const float4 xa = ld4(result + r * kLds + ca), xb = ld4(result + r * kLds + cb);
        st4h(out16 + r * kLdh + ca,
             make_float4(relu(xa.x + ba.x), relu(xa.y + ba.y), relu(xa.z + ba.z),
                         relu(xa.w + ba.w)));
        st4h(out16 + r * kLdh + cb,
             make_float4(relu(xb.x + bb.x), relu(xb.y + bb.y), relu(xb.z + bb.z),
                         relu(xb.w + bb.w)));
    }
}

}  // namespace blob
