// The Hopper (sm_90a) CUTLASS 3.x W8A8 GEMM behind a plain C interface, for the
// same reason as cutlass_w8a8.h: the translation unit that instantiates CUTLASS
// includes no ATen header, and the ATen-side code includes no CUTLASS. The kernel
// is built for sm_90a only; call it only on a device of compute capability 9.0.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "common/dtypes.h"

namespace bigaccel::hopper_w8a8 {

// The shapes the TMA descriptors take: K a multiple of 16 (16-byte int8 rows of
// A and B), N a multiple of 16 (16-byte rows of the output whatever its dtype;
// CUTLASS itself would take N % 8 for bf16/fp16 and N % 4 for fp32), and M, N, K
// below 2^31 (CUTLASS's problem shape is int). M is any value >= 1.
bool supports(int64_t M, int64_t N, int64_t K, DType out_dtype);

// out[m, n] = float(sum_k a[m, k] * w[n, k]) * (a_scale[m] * w_scale[n]) + bias[n],
// rounded once to out_dtype. a int8 [M, K] and w int8 [N, K] row-major, out [M, N]
// row-major, each 16-byte aligned (they are read and written by TMA); a_scale
// fp32 [M], w_scale fp32 [N], bias fp32 [N] or null. workspace holds
// workspace_bytes(M, N, K, out_dtype) bytes (may be null when that is 0).
// Returns cudaSuccess, or the error (cudaErrorNotSupported when the shape is not
// supported, cudaErrorInvalidValue when CUTLASS refuses it, a, w or out is not
// 16-byte aligned, or the workspace is short).
cudaError_t run(const int8_t* a, const float* a_scale, const int8_t* w, const float* w_scale, const float* bias,
                void* out, DType out_dtype, int64_t M, int64_t N, int64_t K, void* workspace, size_t workspace_bytes,
                cudaStream_t stream);

// Bytes of device workspace run() needs for this problem (0 if none); the caller
// allocates it. Host-only: touches no device.
size_t workspace_bytes(int64_t M, int64_t N, int64_t K, DType out_dtype);

}  // namespace bigaccel::hopper_w8a8
