// Per-token int8 quantization on CUDA: one block per row, two passes over the
// row (the second is served from L1/L2). Same formula as cpu_kernel.h.
#include <ATen/core/Tensor.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "common/checks.h"
#include "common/cuda_utils.cuh"
#include "common/quant.h"
#include "quantize_per_token/quantize_per_token.h"

namespace bigaccel {
namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void __launch_bounds__(kThreads) quantize_per_token_kernel(const T* __restrict__ x, int8_t* __restrict__ q,
                                                                        float* __restrict__ scales, int64_t K) {
  __shared__ float scratch[kThreads / 32];
  const T* xr = x + blockIdx.x * K;
  int8_t* qr = q + blockIdx.x * K;

  float m = 0.0f;
  for (int64_t k = threadIdx.x; k < K; k += kThreads) m = fmaxf(m, fabsf(cuda::to_float(xr[k])));
  float amax = cuda::block_reduce_max<kThreads>(m, scratch);
  if (!(amax >= kInt8MinAmax)) amax = kInt8MinAmax;

  const float inv = __fdiv_rn(kInt8Max, amax);
  for (int64_t k = threadIdx.x; k < K; k += kThreads) {
    const float y = fminf(fmaxf(__fmul_rn(cuda::to_float(xr[k]), inv), -kInt8Max), kInt8Max);
    qr[k] = static_cast<int8_t>(__float2int_rn(y));
  }
  if (threadIdx.x == 0) scales[blockIdx.x] = __fdiv_rn(amax, kInt8Max);
}

template <typename T>
void launch(const at::Tensor& x, at::Tensor& q, at::Tensor& scales, int64_t rows, int64_t K, cudaStream_t stream) {
  quantize_per_token_kernel<T><<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(
      reinterpret_cast<const T*>(x.data_ptr()), q.data_ptr<int8_t>(), scales.data_ptr<float>(), K);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> quantize_per_token_cuda(const at::Tensor& x_in) {
  constexpr const char* op = "quantize_per_token";
  check_device(x_in, c10::DeviceType::CUDA, op, "x");
  const DType dtype = float_dtype(x_in, op, "x");
  check_min_dim(x_in, 1, op, "x");
  TORCH_CHECK(x_in.size(-1) > 0, "bigaccel.", op, ": the last dimension of x must be non-empty, got shape ",
              x_in.sizes());
  const c10::cuda::CUDAGuard guard(x_in.device());
  const at::Tensor x = x_in.contiguous();
  auto [q, scales] = quantize_per_token_outputs(x);
  const int64_t K = x.size(-1);
  const int64_t rows = x.numel() / K;
  TORCH_CHECK(rows <= 0x7FFFFFFF, "bigaccel.", op, ": too many rows (", rows, ") for one launch");
  if (rows == 0) return {q, scales};
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  cuda::for_float_dtype(dtype, [&](auto tag) { launch<decltype(tag)>(x, q, scales, rows, K, stream); });
  return {q, scales};
}

}  // namespace bigaccel
