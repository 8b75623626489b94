// The hand-off between bigaccel._C_hopper (kernels compiled for sm_90a alone) and
// bigaccel._C_cuda (the ops). They are separate shared objects, and Python loads
// extensions with RTLD_LOCAL, so neither sees the other's symbols: _C_hopper publishes
// the address of one table of its kernels' entry points, bigaccel/_extension.py hands
// it to _C_cuda, and the ops call through it on sm_90 GPUs. kVersion refuses a table
// from a different build of this header.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "common/dtypes.h"

namespace bigaccel {

struct HopperKernels {
  static constexpr uint32_t kVersion = 1;
  uint32_t version;
  // W8A8 (csrc/int8_gemm/hopper_w8a8.h): the int8_mm contract of cutlass_w8a8.h.
  bool (*w8a8_supports)(int64_t M, int64_t N, int64_t K, DType out_dtype);
  size_t (*w8a8_workspace_bytes)(int64_t M, int64_t N, int64_t K, DType out_dtype);
  cudaError_t (*w8a8_run)(const int8_t* a, const float* a_scale, const int8_t* w, const float* w_scale,
                          const float* bias, void* out, DType out_dtype, int64_t M, int64_t N, int64_t K,
                          void* workspace, size_t workspace_bytes, cudaStream_t stream);
};

// In _C_cuda: the attached table, or null (no _C_hopper, or not attached yet).
const HopperKernels* hopper_kernels();
void attach_hopper_kernels(const HopperKernels* table);

}  // namespace bigaccel
