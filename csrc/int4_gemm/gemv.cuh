// The int4 GEMV (M <= 8) on CUDA, laid out for bandwidth: one warp per output column, each
// lane streaming 16-byte chunks of the packed row (32 codes, always inside one group since
// group_size >= 32 and K % 32 == 0), several chunks in flight per lane.
//
// Why this shape (the first GEMV read 4 bytes a lane and ran at 14-20% of an H200's
// bandwidth at M = 1, 2026-11-27): a warp then had one 128-byte load outstanding, too
// little to cover DRAM latency, and each code went through an int-to-float conversion,
// which Hopper issues at 1/8 of the FMA rate. Here a warp has 2-4 512-byte loads in
// flight, and a code becomes a float with one OR into the mantissa of 2^23 (2^23 + code
// exactly) and one subtraction of 2^23 + zero: (code - zero) exactly, no conversion.
// Not yet run on a GPU: used with BIGACCEL_UNVERIFIED_KERNELS=1 (int4_gemm/cuda.cu).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "activations/act_device.cuh"
#include "common/cuda_utils.cuh"

namespace bigaccel::int4_gemv {

constexpr int kWarps = 4;
// Chunks in flight per lane (x 512 bytes per warp); fewer for more rows, whose x
// registers would otherwise spill.
template <int kRows>
constexpr int kUnroll = kRows >= 4 ? 2 : 4;

// 32 consecutive elements of x as fp32, read as 16-byte vectors (16-byte aligned).
__device__ __forceinline__ void load_x32(const float* p, float* xs) {
  const float4* v = reinterpret_cast<const float4*>(p);
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const float4 f = __ldg(v + i);
    xs[4 * i] = f.x, xs[4 * i + 1] = f.y, xs[4 * i + 2] = f.z, xs[4 * i + 3] = f.w;
  }
}

// Two packed 16-bit elements as floats: a bf16 is the high half of its fp32.
__device__ __forceinline__ float2 pair_to_float2(uint32_t w, __nv_bfloat16) {
  return make_float2(__uint_as_float(w << 16), __uint_as_float(w & 0xFFFF0000u));
}
__device__ __forceinline__ float2 pair_to_float2(uint32_t w, __half) {
  return __half22float2(*reinterpret_cast<const __half2*>(&w));
}

template <typename T>  // bf16 or fp16
__device__ __forceinline__ void load_x32(const T* p, float* xs) {
  const uint4* v = reinterpret_cast<const uint4*>(p);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const uint4 u = __ldg(v + i);
    const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const float2 f = pair_to_float2(w[j], T{});
      xs[8 * i + 2 * j] = f.x;
      xs[8 * i + 2 * j + 1] = f.y;
    }
  }
}

// The warp's sums, lane 0 storing row m's output of column n: act(sum + bias[n]) rounded to T.
template <typename T, int kRows>
__device__ __forceinline__ void reduce_and_store(float (&acc)[kRows], int M, int N, int n, int lane,
                                                 const float* bias, int act, T* out) {
#pragma unroll
  for (int m = 0; m < kRows; ++m) {
    if (m >= M) break;
    float v = acc[m];
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
    if (lane == 0) out[int64_t(m) * N + n] = cuda::from_float<T>(activations::epilogue(act, bias ? v + bias[n] : v));
  }
}

// out[m, n] = act(sum_k x[m, k] * (code[n, k] - zero[n, g]) * scale[n, g] + bias[n]) for
// m < M <= kRows. group_shift = log2(group_size / 32): chunk c's group is c >> group_shift.
template <typename T, int kRows>
__global__ void __launch_bounds__(kWarps * 32)
    kernel(const T* __restrict__ x, const uint8_t* __restrict__ packed, const float* __restrict__ scales,
           const uint8_t* __restrict__ zeros, const float* __restrict__ bias, T* __restrict__ out, int M, int N,
           int64_t K, int group_shift, int act) {
  const int n = blockIdx.x * kWarps + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (n >= N) return;
  const int64_t chunks = K / 32, groups = chunks >> group_shift;
  const uint4* row = reinterpret_cast<const uint4*>(packed + int64_t(n) * (K / 2));
  const float* row_scales = scales + int64_t(n) * groups;
  const uint8_t* row_zeros = zeros ? zeros + int64_t(n) * groups : nullptr;
  float acc[kRows];
#pragma unroll
  for (int m = 0; m < kRows; ++m) acc[m] = 0.0f;

  for (int64_t c0 = lane; c0 < chunks; c0 += 32 * kUnroll<kRows>) {
    uint4 words[kUnroll<kRows>];
#pragma unroll
    for (int u = 0; u < kUnroll<kRows>; ++u)
      if (c0 + 32 * u < chunks) words[u] = __ldg(row + c0 + 32 * u);
#pragma unroll
    for (int u = 0; u < kUnroll<kRows>; ++u) {
      const int64_t c = c0 + 32 * u;
      if (c >= chunks) break;
      const int64_t g = c >> group_shift;
      const float scale = __ldg(row_scales + g);
      const float offset = 8388608.0f + (row_zeros ? float(__ldg(row_zeros + g)) : 8.0f);
      const uint32_t q[4] = {words[u].x, words[u].y, words[u].z, words[u].w};
      float w[32];  // w[8 i + j]: code k = 32 c + 8 i + j is nibble j of word i (low nibble first)
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 8; ++j) w[8 * i + j] = __uint_as_float(0x4B000000u | ((q[i] >> (4 * j)) & 0xFu)) - offset;
#pragma unroll
      for (int m = 0; m < kRows; ++m) {
        if (m < M) {
          float xs[32];
          load_x32(x + int64_t(m) * K + c * 32, xs);
          float part[4] = {0.0f, 0.0f, 0.0f, 0.0f};  // four chains, not one of 32 FMAs
#pragma unroll
          for (int j = 0; j < 32; ++j) part[j % 4] = fmaf(xs[j], w[j], part[j % 4]);
          acc[m] = fmaf((part[0] + part[1]) + (part[2] + part[3]), scale, acc[m]);
        }
      }
    }
  }
  reduce_and_store<T, kRows>(acc, M, N, n, lane, bias, act, out);
}

// Whether kernel() takes these operands: 16-byte aligned x and packed rows (the chunks and
// x's 32-element runs are read as 16-byte vectors; K % 32 == 0 keeps every row aligned).
inline bool supports(const void* x, const void* packed, int64_t M, int64_t K, int64_t group_size) {
  const auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  return M >= 1 && M <= 8 && K % 32 == 0 && (group_size == 32 || group_size == 64 || group_size == 128) &&
         aligned(x) && aligned(packed);
}

template <typename T>
void launch(const T* x, const uint8_t* packed, const float* scales, const uint8_t* zeros, const float* bias, T* out,
            int M, int N, int64_t K, int group_size, int act, cudaStream_t stream) {
  const int shift = group_size == 32 ? 0 : group_size == 64 ? 1 : 2;
  const unsigned blocks = unsigned((N + kWarps - 1) / kWarps);
  const auto run = [&](auto rows) {
    kernel<T, decltype(rows)::value><<<blocks, kWarps * 32, 0, stream>>>(x, packed, scales, zeros, bias, out, M, N, K,
                                                                         shift, act);
  };
  if (M == 1) return run(std::integral_constant<int, 1>{});
  if (M == 2) return run(std::integral_constant<int, 2>{});
  if (M <= 4) return run(std::integral_constant<int, 4>{});
  run(std::integral_constant<int, 8>{});
}

}  // namespace bigaccel::int4_gemv
