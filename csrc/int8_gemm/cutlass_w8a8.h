// The CUTLASS W8A8 GEMM behind a plain C interface, so that the translation unit
// that instantiates CUTLASS includes no ATen header (each of those costs a minute
// of nvcc time) and the ATen-side code includes no CUTLASS.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "common/dtypes.h"

namespace bigaccel::cutlass_w8a8 {

// The operand shapes CUTLASS's vector loads and stores need: K a multiple of 16
// (16-byte int8 rows of A and B), N a multiple of 4 (the epilogue's vectors).
bool supports(int64_t M, int64_t N, int64_t K, DType out_dtype);

// out[m, n] = float(sum_k a[m, k] * w[n, k]) * (a_scale[m] * w_scale[n]) + bias[n],
// rounded once to out_dtype. a int8 [M, K] and w int8 [N, K] row-major; bias fp32
// or null. Returns cudaSuccess, or the error (cudaErrorNotSupported when the
// shape is not supported, cudaErrorInvalidValue when CUTLASS refuses it).
cudaError_t run(const int8_t* a, const float* a_scale, const int8_t* w, const float* w_scale, const float* bias,
                void* out, DType out_dtype, int64_t M, int64_t N, int64_t K, cudaStream_t stream);

}  // namespace bigaccel::cutlass_w8a8
