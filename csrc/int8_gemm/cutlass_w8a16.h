// The CUTLASS W8A16 GEMM behind a plain C interface (as cutlass_w8a8.h).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "common/dtypes.h"

namespace bigaccel::cutlass_w8a16 {

// bf16/fp16 activations with K a multiple of 16 and N of 4 (CUTLASS's vector accesses).
bool supports(int64_t M, int64_t N, int64_t K, DType dtype);

// out[m, n] = convert<T>( (sum_k x[m, k] * w[n, k]) * w_scale[n] + bias[n] ), fp32 accumulation, the
// int8 weight converted to T in registers (exact), as reference.int8_weight_only_mm. x [M, K]
// and w int8 [N, K] row-major; bias fp32 or null; T = dtype (BF16 or F16).
cudaError_t run(const void* x, const int8_t* w, const float* w_scale, const float* bias, void* out, DType dtype,
                int64_t M, int64_t N, int64_t K, cudaStream_t stream);

}  // namespace bigaccel::cutlass_w8a16
