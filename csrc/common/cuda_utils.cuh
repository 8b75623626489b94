// Small device helpers shared by the CUDA kernels.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdlib>
#include <cstring>

#include "common/dtypes.h"

namespace bigaccel::cuda {

// Kernels written without a GPU to run them on (now the CUTLASS W8A16 GEMM, the
// 16-byte int4 GEMV and the int8 GEMVs' wide form; the 2:4 GEMMs' switch is in _sparse24_ops.py) stay off until the GPU
// tests have passed: BIGACCEL_UNVERIFIED_KERNELS=1
// turns them on (bench/gpu_session.sh does, to test and time them).
inline bool unverified_kernels_enabled() {
  static const bool enabled = [] {
    const char* v = std::getenv("BIGACCEL_UNVERIFIED_KERNELS");
    return v != nullptr && std::strcmp(v, "1") == 0;
  }();
  return enabled;
}

// Compute capability (major * 10 + minor) of CUDA device `index`, queried once.
inline int compute_capability(int index) {
  static int cached[64] = {};
  if (index < 0 || index >= 64) return 0;
  if (cached[index] == 0) {
    int major = 0, minor = 0;
    cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, index);
    cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, index);
    cached[index] = major * 10 + minor;
  }
  return cached[index];
}

// fn(T{}) with T the CUDA element type of `dtype` (float, __nv_bfloat16 or __half): the
// one switch from a run-time dtype to a kernel's template argument.
template <typename Fn>
inline void for_float_dtype(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::F32:
      return fn(float{});
    case DType::BF16:
      return fn(__nv_bfloat16{});
    case DType::F16:
      return fn(__half{});
  }
}

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }

// One round-to-nearest-even conversion from fp32, as torch's .to(dtype).
template <typename T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <>
__device__ __forceinline__ __half from_float<__half>(float v) { return __float2half_rn(v); }

// Max over a block; every thread gets the result. `scratch` holds one float per warp.
template <int kThreads>
__device__ __forceinline__ float block_reduce_max(float v, float* scratch) {
  static_assert(kThreads % 32 == 0 && kThreads <= 1024, "block must be whole warps");
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  constexpr int kWarps = kThreads / 32;
  if (kWarps == 1) return v;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < kWarps ? scratch[lane] : 0.0f;
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

}  // namespace bigaccel::cuda
