// Compact input rows expanded to the encoder's 256 floats, bit-exact with the Rust side
// (src/encode/compact.rs `expand`). The layout comes from compact_layout.cuh, which build.rs
// generates from src/encode/compact_layout.rs. Opt-in: the forward pass does not use it yet.
#include <cstdint>

#include "common.cuh"
#include "compact_layout.cuh"

namespace blob {

// Column i of a section, from the section's first byte `p` (the packings of compact_layout.rs).
__device__ __forceinline__ float compact_bits(const uint8_t* p, int i) {
  return static_cast<float>((p[i >> 3] >> (i & 7)) & 1);
}
__device__ __forceinline__ float compact_nibbles(const uint8_t* p, int i) {
  return static_cast<float>((p[i >> 1] >> (4 * (i & 1))) & 15);
}
// One IEEE round-to-nearest f32 division, as Rust's `f32 / f32` (never the fast approximation).
__device__ __forceinline__ float compact_ratios(const uint8_t* p, int i) {
  return __fdiv_rn(static_cast<float>(static_cast<int8_t>(p[2 * i])),
                   static_cast<float>(p[2 * i + 1]));
}
__device__ __forceinline__ float compact_zero(const uint8_t*, int) { return 0.0f; }

// Column `dim` (0..256) of the compact row at `row`.
__device__ __forceinline__ float compact_column(const uint8_t* row, int dim) {
#define BLOB_COMPACT_SECTION(packing, first, dims, offset) \
  if (dim >= (first) && dim < (first) + (dims)) return compact_##packing(row + (offset), dim - (first));
  COMPACT_SECTIONS(BLOB_COMPACT_SECTION)
#undef BLOB_COMPACT_SECTION
  return 0.0f;
}

}  // namespace blob

// out[r][c] = column c of compact row r, for r < n_rows: one thread per output float, so a
// warp writes 128 contiguous bytes. rows: COMPACT_ROW_BYTES bytes each; out: 256 floats each.
extern "C" __global__ void expand_compact_rows(float* __restrict__ out,
                                               const uint8_t* __restrict__ rows, int n_rows) {
  const long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<long long>(n_rows) * blob::kD) return;
  const long long r = i / blob::kD;
  const int c = static_cast<int>(i % blob::kD);
  out[i] = blob::compact_column(rows + r * COMPACT_ROW_BYTES, c);
}
