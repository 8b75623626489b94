// The CUTLASS 2:4 sparse tensor-core GEMMs behind a plain C interface (as
// int8_gemm/cutlass_w8a8.h: no ATen header where CUTLASS is instantiated).
//
// The weight is the sparse operand A, so each GEMM computes the transposed product
//   d[n, m] = sum_k w[n, k] * x[m, k]   (d row-major [N, M]),
// and the caller transposes d into the [M, N] output.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "common/dtypes.h"

namespace bigaccel::cutlass_sparse24 {

// Operand rules of the kernels (CUTLASS's can_implement): N a multiple of 32 (16 for
// int8; the metadata's row interleave), K a multiple of the block's K (64; 128 for
// int8; out-of-range metadata would read as an invalid 0), and M (tokens) a multiple
// of 8 (16 for int8) -- callers pad the activations to token_multiple().
bool supports(int64_t N, int64_t K, bool int8);
int64_t token_multiple(bool int8);

// Scatter the canonical metadata (reference.compress_2_4: uint8 [N, K/8], a nibble
// per group of 4) into the interleaved order the kernels read with ldmatrix:
// `reordered` holds N * K/8 bytes. Read as little-endian 16-bit words (32-bit for
// int8) the canonical bytes are CUTLASS's metadata words before that reordering.
cudaError_t reorder_meta(const uint8_t* meta, void* reordered, int64_t N, int64_t K, bool int8, cudaStream_t stream);

// The destination word of source word (row, col) of an [rows, cols] metadata matrix:
// the reordering above, exposed so that the CPU tests can check it against torch's.
int64_t reordered_meta_offset(int64_t row, int64_t col, int64_t rows, bool int8);

// bf16/fp16: d = convert<T>(acc + bias[n]); x [M, K], values [N, K/2] of T; bias fp32 or null.
cudaError_t run_float(const void* x, const void* values, const void* meta_reordered, const float* bias, void* d,
                      DType dtype, int64_t M, int64_t N, int64_t K, cudaStream_t stream);

// int8: d = convert<Out>(float(acc) * (w_scale[n] * a_scale[m]) + bias[n]) as reference.int8_mm.
cudaError_t run_int8(const int8_t* a, const float* a_scale, const int8_t* values, const void* meta_reordered,
                     const float* w_scale, const float* bias, void* d, DType out_dtype, int64_t M, int64_t N,
                     int64_t K, cudaStream_t stream);

}  // namespace bigaccel::cutlass_sparse24
