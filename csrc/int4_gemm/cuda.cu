// int4 group-wise weight-only GEMM (W4A16) on CUDA, canonical layout (bigaccel/reference.py).
//
// M <= 8: a GEMV, one warp per output column. Each lane reads 4 packed bytes (8 codes of one
//   group) at a time, unpacks them in registers, and accumulates (code - zero) * x in fp32
//   per row; the group's scale multiplies the 8-term partial sum. The weight is read once.
//   With BIGACCEL_UNVERIFIED_KERNELS=1, gemv.cuh's 16-byte-a-lane GEMV instead (written for
//   bandwidth after the H200 run, not yet run on a GPU).
// Larger M, bf16/fp16: the tensor-core GEMM of mma_gemm.cuh (group scales applied in fp32,
//   so no weight is rounded); its tests passed on an H200 (2026-11-27).
// Otherwise (and for fp32): the weight is dequantized exactly to fp32 and multiplied by cuBLAS
//   in fp32 (the activations converted to fp32), then one fused pass adds the bias and rounds
//   once to the output dtype, as the reference does. Dequantizing to bf16/fp16 instead would
//   round every weight.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/mm.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "activations/act_device.cuh"
#include "activations/epilogue.h"
#include "common/checks.h"
#include "common/cuda_utils.cuh"
#include "int4_gemm/gemv.cuh"
#include "int4_gemm/int4_gemm.h"
#include "int4_gemm/mma_gemm.cuh"

#include <type_traits>

namespace bigaccel {
namespace {

constexpr int kWarps = 4;
constexpr int kGemvMaxRows = 8;

template <typename T>
__global__ void __launch_bounds__(kWarps * 32)
    int4_gemv_kernel(const T* __restrict__ x, const uint8_t* __restrict__ packed, const float* __restrict__ scales,
                     const uint8_t* __restrict__ zeros, const float* __restrict__ bias, T* __restrict__ out, int M,
                     int N, int64_t K, int group_size, int act) {
  const int n = blockIdx.x * kWarps + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (n >= N) return;
  const int64_t groups = K / group_size;
  const uint32_t* row = reinterpret_cast<const uint32_t*>(packed + int64_t(n) * (K / 2));  // K/2 % 16 == 0
  float acc[kGemvMaxRows];
#pragma unroll
  for (int m = 0; m < kGemvMaxRows; ++m) acc[m] = 0.0f;
  for (int64_t k = int64_t(lane) * 8; k < K; k += 32 * 8) {
    const uint32_t word = __ldg(row + k / 8);
    const int64_t g = k / group_size;
    const float zero = zeros ? float(zeros[int64_t(n) * groups + g]) : 8.0f;
    const float scale = scales[int64_t(n) * groups + g];
    float w[8];
#pragma unroll
    for (int j = 0; j < 8; ++j) w[j] = float((word >> (4 * j)) & 0xF) - zero;  // k + j: nibble j
#pragma unroll
    for (int m = 0; m < kGemvMaxRows; ++m) {
      if (m < M) {
        float part = 0.0f;
#pragma unroll
        for (int j = 0; j < 8; ++j) part = fmaf(cuda::to_float(x[int64_t(m) * K + k + j]), w[j], part);
        acc[m] = fmaf(part, scale, acc[m]);
      }
    }
  }
  int4_gemv::reduce_and_store<T, kGemvMaxRows>(acc, M, N, n, lane, bias, act, out);
}

__global__ void int4_dequantize_kernel(const uint8_t* __restrict__ packed, const float* __restrict__ scales,
                                       const uint8_t* __restrict__ zeros, float* __restrict__ w, int64_t N, int64_t K,
                                       int group_size) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;  // one packed byte = two weights
  if (i >= N * (K / 2)) return;
  const int64_t n = i / (K / 2), k = (i % (K / 2)) * 2, groups = K / group_size, g = n * groups + k / group_size;
  const float zero = zeros ? float(zeros[g]) : 8.0f, scale = scales[g];
  const uint8_t b = packed[i];
  w[n * K + k] = (float(b & 0xF) - zero) * scale;
  w[n * K + k + 1] = (float(b >> 4) - zero) * scale;
}

template <typename T>
__global__ void bias_cast_kernel(const float* __restrict__ acc, const float* __restrict__ bias, T* __restrict__ out,
                                 int64_t total, int64_t N, int act) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= total) return;
  out[i] = cuda::from_float<T>(activations::epilogue(act, bias ? acc[i] + bias[i % N] : acc[i]));
}

at::Tensor int4_mm_gemm(const at::Tensor& x_in, const at::Tensor& packed_in, const at::Tensor& scales_in,
                        const std::optional<at::Tensor>& zeros_in, int64_t group_size,
                        const std::optional<at::Tensor>& bias_in, int act, bool* act_applied) {
  constexpr const char* op = "int4_mm";
  check_device(x_in, c10::DeviceType::CUDA, op, "x");
  const DType dtype = float_dtype(x_in, op, "x");
  TORCH_CHECK(group_size == 32 || group_size == 64 || group_size == 128, "bigaccel.int4_mm: group_size must be 32, ",
              "64 or 128, got ", group_size);
  TORCH_CHECK(x_in.dim() == 2 && packed_in.dim() == 2 && packed_in.scalar_type() == at::kByte,
              "bigaccel.int4_mm: x must be [M, K] and packed uint8 [N, K/2]");
  const int64_t M = x_in.size(0), N = packed_in.size(0), K = packed_in.size(1) * 2;
  TORCH_CHECK(x_in.size(1) == K, "bigaccel.int4_mm: K mismatch: x is ", x_in.sizes(), " but packed holds K=", K);
  TORCH_CHECK(K % group_size == 0, "bigaccel.int4_mm: K=", K, " is not a multiple of group_size=", group_size);
  const int64_t groups = K / group_size;
  TORCH_CHECK(scales_in.scalar_type() == at::kFloat && scales_in.numel() == N * groups,
              "bigaccel.int4_mm: scales must be float32 [N, K/G]");
  TORCH_CHECK(!zeros_in || (zeros_in->scalar_type() == at::kByte && zeros_in->numel() == N * groups),
              "bigaccel.int4_mm: zeros must be uint8 [N, K/G]");
  TORCH_CHECK(!bias_in || bias_in->numel() == N, "bigaccel.int4_mm: bias must have N elements");
  for (const at::Tensor* t : {&packed_in, &scales_in}) check_device(*t, c10::DeviceType::CUDA, op, "the weight");
  const c10::cuda::CUDAGuard guard(x_in.device());
  at::Tensor out = at::empty({M, N}, x_in.options());
  if (M == 0 || N == 0) return out;
  const at::Tensor x = x_in.contiguous(), packed = packed_in.contiguous(), scales = scales_in.contiguous();
  const std::optional<at::Tensor> zeros =
      zeros_in ? std::optional<at::Tensor>(zeros_in->contiguous()) : std::nullopt;
  const std::optional<at::Tensor> bias = bias_f32(bias_in);
  const uint8_t* zp = zeros ? zeros->data_ptr<uint8_t>() : nullptr;
  const float* bp = ptr_or_null(bias);
  auto stream = c10::cuda::getCurrentCUDAStream();
  if (M <= kGemvMaxRows) {
    const bool wide = cuda::unverified_kernels_enabled() &&
                      int4_gemv::supports(x.data_ptr(), packed.data_ptr(), M, K, group_size);
    cuda::for_float_dtype(dtype, [&](auto tag) {
      using T = decltype(tag);
      const auto* xp = static_cast<const T*>(x.data_ptr());
      auto* outp = static_cast<T*>(out.data_ptr());
      if (wide)
        int4_gemv::launch<T>(xp, packed.data_ptr<uint8_t>(), scales.data_ptr<float>(), zp, bp, outp, int(M), int(N), K,
                             int(group_size), act, stream);
      else
        int4_gemv_kernel<T><<<(N + kWarps - 1) / kWarps, kWarps * 32, 0, stream>>>(
            xp, packed.data_ptr<uint8_t>(), scales.data_ptr<float>(), zp, bp, outp, int(M), int(N), K, int(group_size),
            act);
    });
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    *act_applied = true;
    return out;
  }
  if (dtype != DType::F32 && int4_mma::supports(x.data_ptr(), packed.data_ptr(), M, N, K, int(group_size))) {
    cudaError_t err = cudaSuccess;
    cuda::for_float_dtype(dtype, [&](auto tag) {
      using T = decltype(tag);
      if constexpr (!std::is_same_v<T, float>)
        err = int4_mma::run<T>(static_cast<const T*>(x.data_ptr()), packed.data_ptr<uint8_t>(),
                               scales.data_ptr<float>(), zp, bp, static_cast<T*>(out.data_ptr()), M, N, K,
                               int(group_size), stream);
    });
    TORCH_CHECK(err == cudaSuccess, "bigaccel.int4_mm: the tensor-core GEMM failed for M=", M, " N=", N, " K=", K,
                ": ", cudaGetErrorString(err));
    return out;
  }
  at::Tensor w = at::empty({N, K}, x.options().dtype(at::kFloat));
  const int64_t bytes = N * (K / 2);
  int4_dequantize_kernel<<<(bytes + 255) / 256, 256, 0, stream>>>(packed.data_ptr<uint8_t>(), scales.data_ptr<float>(),
                                                                  zp, w.data_ptr<float>(), N, K, int(group_size));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  const at::Tensor acc = at::mm(x.to(at::kFloat), w.t());
  cuda::for_float_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    bias_cast_kernel<T><<<(M * N + 255) / 256, 256, 0, stream>>>(acc.data_ptr<float>(), bp,
                                                                 static_cast<T*>(out.data_ptr()), M * N, N, act);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  *act_applied = true;
  return out;
}

}  // namespace

// The epilogue activation (activations/epilogue.h): fused into the GEMV and the bias pass after
// cuBLAS, a pass of its own after the tensor-core GEMM.
at::Tensor int4_mm_cuda(const at::Tensor& x, const at::Tensor& packed, const at::Tensor& scales,
                        const std::optional<at::Tensor>& zeros, int64_t group_size,
                        const std::optional<at::Tensor>& bias, const std::string& activation) {
  const auto act = activations::epilogue_act(activation, "int4_mm");
  bool applied = false;
  at::Tensor out = int4_mm_gemm(x, packed, scales, zeros, group_size, bias, activations::cuda_code(act), &applied);
  if (!applied) activations::make_epilogue(act, out, "int4_mm").cuda_all(out);
  return out;
}

}  // namespace bigaccel
