// The per-output-dtype entry points of the Hopper W8A8 GEMM, defined in
// hopper_w8a8_gemm.cuh and instantiated in hopper_w8a8_{f32,bf16,f16}.cu; the
// dispatcher (hopper_w8a8.cu) sees only these declarations, not CUTLASS. Arguments
// and results as run() and workspace_bytes() in hopper_w8a8.h, with the shape
// already checked by supports().
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "common/dtypes.h"

namespace bigaccel::hopper_w8a8 {

template <DType kOut>
cudaError_t run_as(const int8_t* a, const float* a_scale, const int8_t* w, const float* w_scale, const float* bias,
                   void* out, int64_t M, int64_t N, int64_t K, void* workspace, size_t workspace_bytes,
                   cudaStream_t stream);

template <DType kOut>
size_t workspace_as(int64_t M, int64_t N, int64_t K);

}  // namespace bigaccel::hopper_w8a8
