// int8 GEMMs on CUDA.
//
// W8A8: on sm_90 GPUs, the Hopper (wgmma) GEMM of bigaccel._C_hopper when attached (see
//   hopper_kernels.h; its tests passed on an H200, 2026-11-27); otherwise
//   CUTLASS int8 tensor cores with the epilogue fused (cutlass_w8a8.cu) for
//   the shapes it takes (K % 16 == 0, N % 4 == 0) and M above the decode
//   range (when built with nvidia-cutlass installed); a dp4a GEMV otherwise: at M <= 8 the weight is read once and the
//   tensor cores would idle, and the GEMV takes any K and N.
// W8A16: the same GEMV with the int8 weight dequantized in registers (bandwidth
//   is the limit at small M); for larger M and bf16/fp16 with BIGACCEL_UNVERIFIED_KERNELS=1,
//   CUTLASS's mixed-input tensor-core GEMM (cutlass_w8a16.cu: int8 converted in registers,
//   not yet run on a GPU); otherwise the weight is dequantized exactly to the activation
//   dtype and multiplied by cuBLAS with fp32 output, then one fused pass applies the scale
//   and bias (the reference's single rounding).
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/mm.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <string>
#include <type_traits>

#include "activations/act_device.cuh"
#include "activations/epilogue.h"
#include "common/checks.h"
#include "common/cuda_utils.cuh"
#include "hopper_kernels.h"
#include "int8_gemm/checks.h"
#include "int8_gemm/cutlass_w8a16.h"
#include "int8_gemm/cutlass_w8a8.h"

namespace bigaccel {
namespace {

constexpr int kWarps = 4;        // one output column per warp
constexpr int kGemvMaxRows = 8;  // the GEMV keeps one accumulator per row

__device__ __forceinline__ int dot4(int a, int b, int acc) { return __dp4a(a, b, acc); }

// The GEMVs' kWide form (see warp_dots), until it has passed the GPU tests.
inline bool wide_gemv() { return cuda::unverified_kernels_enabled(); }

// Sixteen consecutive activations as floats.
template <typename T>
__device__ __forceinline__ void load16(const T* p, float (&v)[16]) {
  constexpr int kPerVec = 16 / sizeof(T);
  const int4* q = reinterpret_cast<const int4*>(p);
#pragma unroll
  for (int i = 0; i < 16 / kPerVec; ++i) {
    const int4 raw = q[i];
    const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
    for (int j = 0; j < kPerVec; ++j) v[i * kPerVec + j] = cuda::to_float(e[j]);
  }
}

// Sixteen int8 weights as exact floats without int-to-float conversions (issued at 1/8 of
// the FMA rate on Hopper): each byte, offset by 128, is permuted into the low mantissa byte
// of 2^23, giving 2^23 + 128 + b, and one subtraction leaves b.
__device__ __forceinline__ void int8x16_to_float(const int4& wv, float (&wf)[16]) {
  const uint32_t words[4] = {uint32_t(wv.x) ^ 0x80808080u, uint32_t(wv.y) ^ 0x80808080u,
                             uint32_t(wv.z) ^ 0x80808080u, uint32_t(wv.w) ^ 0x80808080u};
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)  // result bytes: byte j of the word, 0x00, 0x00, 0x4B
      wf[4 * i + j] = __uint_as_float(__byte_perm(words[i], 0x4B000000u, 0x7440u | j)) - 8388736.0f;
}

// Rows [0, M) of `a` against weight row `n`: W8A8 accumulates int32 with dp4a,
// W8A16 fp32 with the weight converted in registers. `vec` says every row start
// is 16-byte aligned and K % 16 == 0, so 16 k per lane per step. kWide (with
// BIGACCEL_UNVERIFIED_KERNELS=1 until it has run on a GPU): 4 of those 16-byte weight
// loads in flight per lane instead of 1 (the H200 run of 2026-11-27 read at 38-55% of
// its bandwidth at M = 1 with one), and W8A16's weights converted by int8x16_to_float.
template <bool kWide, typename TA, typename Acc>
__device__ __forceinline__ void warp_dots(const TA* a, int M, int64_t K, const int8_t* w_row, bool vec,
                                          Acc (&acc)[kGemvMaxRows]) {
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int m = 0; m < kGemvMaxRows; ++m) acc[m] = Acc(0);
  int64_t k_done = 0;
  if (vec) {
    constexpr int kChunks = kWide ? 4 : 1;
    constexpr int64_t kStride = 32 * 16;  // a warp's 16-byte chunks side by side
    for (int64_t k0 = int64_t(lane) * 16; k0 < K; k0 += kStride * kChunks) {
      int4 wvs[kChunks];
#pragma unroll
      for (int u = 0; u < kChunks; ++u)
        if (k0 + u * kStride < K) wvs[u] = *reinterpret_cast<const int4*>(w_row + k0 + u * kStride);
#pragma unroll
      for (int u = 0; u < kChunks; ++u) {
        const int64_t k = k0 + u * kStride;
        if (k >= K) break;
        const int4 wv = wvs[u];
        if constexpr (std::is_same_v<TA, int8_t>) {
#pragma unroll
          for (int m = 0; m < kGemvMaxRows; ++m) {
            if (m >= M) break;
            const int4 av = *reinterpret_cast<const int4*>(a + m * K + k);
            acc[m] = dot4(av.x, wv.x, dot4(av.y, wv.y, dot4(av.z, wv.z, dot4(av.w, wv.w, acc[m]))));
          }
        } else {
          float wf[16];
          if constexpr (kWide) {
            int8x16_to_float(wv, wf);
          } else {
            const int8_t* wb = reinterpret_cast<const int8_t*>(&wv);
#pragma unroll
            for (int j = 0; j < 16; ++j) wf[j] = float(wb[j]);
          }
#pragma unroll
          for (int m = 0; m < kGemvMaxRows; ++m) {
            if (m >= M) break;
            float xv[16];
            load16(a + m * K + k, xv);
#pragma unroll
            for (int j = 0; j < 16; ++j) acc[m] = fmaf(xv[j], wf[j], acc[m]);
          }
        }
      }
    }
    k_done = K;
  }
  for (int64_t k = k_done + lane; k < K; k += 32) {  // any shape: one k per lane
    const int wk = w_row[k];
#pragma unroll
    for (int m = 0; m < kGemvMaxRows; ++m) {
      if (m >= M) break;
      if constexpr (std::is_same_v<TA, int8_t>)
        acc[m] += int(a[m * K + k]) * wk;
      else
        acc[m] = fmaf(cuda::to_float(a[m * K + k]), float(wk), acc[m]);
    }
  }
#pragma unroll
  for (int m = 0; m < kGemvMaxRows; ++m)
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) acc[m] += __shfl_xor_sync(0xffffffffu, acc[m], offset);
}

template <bool kWide, typename Out>
__global__ void __launch_bounds__(kWarps * 32)
    w8a8_gemv_kernel(const int8_t* __restrict__ a, const float* __restrict__ a_scale, const int8_t* __restrict__ w,
                     const float* __restrict__ w_scale, const float* __restrict__ bias, Out* __restrict__ out, int M,
                     int64_t N, int64_t K, bool vec, int act) {
  const int64_t n = int64_t(blockIdx.x) * kWarps + threadIdx.x / 32;
  if (n >= N) return;
  int acc[kGemvMaxRows];
  warp_dots<kWide, int8_t, int>(a, M, K, w + n * K, vec, acc);
  if (threadIdx.x % 32 != 0) return;
  for (int m = 0; m < M; ++m) {
    float v = float(acc[m]) * (a_scale[m] * w_scale[n]);  // the reference's order
    if (bias) v += bias[n];
    out[m * N + n] = cuda::from_float<Out>(activations::epilogue(act, v));
  }
}

template <bool kWide, typename T>
__global__ void __launch_bounds__(kWarps * 32)
    w8a16_gemv_kernel(const T* __restrict__ x, const int8_t* __restrict__ w, const float* __restrict__ w_scale,
                      const float* __restrict__ bias, T* __restrict__ out, int M, int64_t N, int64_t K, bool vec,
                      int act) {
  const int64_t n = int64_t(blockIdx.x) * kWarps + threadIdx.x / 32;
  if (n >= N) return;
  float acc[kGemvMaxRows];
  warp_dots<kWide, T, float>(x, M, K, w + n * K, vec, acc);
  if (threadIdx.x % 32 != 0) return;
  for (int m = 0; m < M; ++m) {
    float v = acc[m] * w_scale[n];
    if (bias) v += bias[n];
    out[m * N + n] = cuda::from_float<T>(activations::epilogue(act, v));
  }
}

// out = act(acc * w_scale[n] + bias[n]), one rounding to T.
template <typename T>
__global__ void scale_bias_kernel(const float* __restrict__ acc, const float* __restrict__ w_scale,
                                  const float* __restrict__ bias, T* __restrict__ out, int64_t total, int64_t N,
                                  int act) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t n = i % N;
    float v = acc[i] * w_scale[n];
    if (bias) v += bias[n];
    out[i] = cuda::from_float<T>(activations::epilogue(act, v));
  }
}

bool vectorizable(const void* a, const void* w, int64_t K, int64_t a_elem) {
  const auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  return K % 16 == 0 && aligned(a) && aligned(w) && (K * a_elem) % 16 == 0;
}

unsigned gemv_blocks(int64_t N) { return static_cast<unsigned>((N + kWarps - 1) / kWarps); }

// `act` (epilogue.h's cuda_code) is applied by the GEMV; *act_applied says whether it was.
at::Tensor int8_mm_gemm(const at::Tensor& a_in, const at::Tensor& a_scale_in, const at::Tensor& w_in,
                        const at::Tensor& w_scale_in, const std::optional<at::Tensor>& bias, at::ScalarType out_dtype,
                        int act, bool* act_applied) {
  constexpr const char* op = "int8_mm";
  check_device(a_in, c10::DeviceType::CUDA, op, "a");
  TORCH_CHECK(a_in.scalar_type() == at::kChar, "bigaccel.", op, ": a must be int8, got ", a_in.scalar_type());
  const auto [M, N, K] = check_int8_weight(op, a_in, w_in, w_scale_in, bias);
  TORCH_CHECK(a_scale_in.scalar_type() == at::kFloat && a_scale_in.numel() == M, "bigaccel.", op,
              ": a_scale must be float32 with M=", M, " elements, got ", a_scale_in.sizes());
  const DType out_kind = float_dtype(out_dtype, op, "out_dtype");
  const c10::cuda::CUDAGuard guard(a_in.device());
  at::Tensor out = at::empty({M, N}, a_in.options().dtype(out_dtype));
  if (M == 0 || N == 0) return out;
  const at::Tensor a = a_in.contiguous(), a_scale = a_scale_in.contiguous(), w = w_in.contiguous(),
                   w_scale = w_scale_in.contiguous();
  const auto b32 = bias_f32(bias);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const int8_t* ap = a.data_ptr<int8_t>();
  const int8_t* wp = w.data_ptr<int8_t>();

  const HopperKernels* hopper = hopper_kernels();
  const auto aligned16 = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  if (M > kGemvMaxRows && hopper != nullptr &&
      cuda::compute_capability(a_in.get_device()) == 90 && hopper->w8a8_supports(M, N, K, out_kind) &&
      aligned16(ap) && aligned16(wp) && aligned16(out.data_ptr())) {  // TMA needs 16-byte aligned bases
    const size_t bytes = hopper->w8a8_workspace_bytes(M, N, K, out_kind);
    at::Tensor workspace;  // none for the persistent schedules used now: no allocation per call then
    if (bytes) workspace = at::empty({static_cast<int64_t>(bytes)}, a_in.options().dtype(at::kByte));
    const cudaError_t err = hopper->w8a8_run(ap, a_scale.data_ptr<float>(), wp, w_scale.data_ptr<float>(),
                                             ptr_or_null(b32), out.data_ptr(), out_kind, M, N, K,
                                             bytes ? workspace.data_ptr() : nullptr, bytes, stream);
    TORCH_CHECK(err == cudaSuccess, "bigaccel.", op, ": the Hopper int8 GEMM failed for M=", M, " N=", N, " K=", K,
                ": ", cudaGetErrorString(err));
    return out;
  }
#if BIGACCEL_HAVE_CUTLASS
  if (M > kGemvMaxRows && cutlass_w8a8::supports(M, N, K, out_kind)) {
    const cudaError_t err = cutlass_w8a8::run(ap, a_scale.data_ptr<float>(), wp, w_scale.data_ptr<float>(),
                                              ptr_or_null(b32), out.data_ptr(), out_kind, M, N, K, stream);
    TORCH_CHECK(err == cudaSuccess, "bigaccel.", op, ": CUTLASS int8 GEMM failed for M=", M, " N=", N, " K=", K, ": ",
                cudaGetErrorString(err));
    return out;
  }
#endif
  const bool vec = vectorizable(ap, wp, K, 1);
  *act_applied = true;
  cuda::for_float_dtype(out_kind, [&](auto tag) {
    using Out = decltype(tag);
    for (int64_t m0 = 0; m0 < M; m0 += kGemvMaxRows) {  // unsupported shapes with larger M: 8 rows per pass
      const int rows = static_cast<int>(std::min<int64_t>(kGemvMaxRows, M - m0));
      const auto kernel = wide_gemv() ? w8a8_gemv_kernel<true, Out> : w8a8_gemv_kernel<false, Out>;
      kernel<<<gemv_blocks(N), kWarps * 32, 0, stream>>>(
          ap + m0 * K, a_scale.data_ptr<float>() + m0, wp, w_scale.data_ptr<float>(), ptr_or_null(b32),
          static_cast<Out*>(out.data_ptr()) + m0 * N, rows, N, K, vec, act);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  });
  return out;
}

// As int8_mm_gemm: the GEMV and the scale/bias pass apply `act`, the CUTLASS GEMM does not.
at::Tensor int8_weight_only_mm_gemm(const at::Tensor& x_in, const at::Tensor& w_in, const at::Tensor& w_scale_in,
                                    const std::optional<at::Tensor>& bias, int act, bool* act_applied) {
  constexpr const char* op = "int8_weight_only_mm";
  check_device(x_in, c10::DeviceType::CUDA, op, "x");
  const DType dtype = float_dtype(x_in, op, "x");
  const auto [M, N, K] = check_int8_weight(op, x_in, w_in, w_scale_in, bias);
  const c10::cuda::CUDAGuard guard(x_in.device());
  at::Tensor out = at::empty({M, N}, x_in.options());
  if (M == 0 || N == 0) return out;
  const at::Tensor x = x_in.contiguous(), w = w_in.contiguous(), w_scale = w_scale_in.contiguous();
  const auto b32 = bias_f32(bias);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();

  if (M <= kGemvMaxRows) {
    *act_applied = true;
    const bool vec = vectorizable(x.data_ptr(), w.data_ptr(), K, x.element_size());
    cuda::for_float_dtype(dtype, [&](auto tag) {
      using T = decltype(tag);
      const auto kernel = wide_gemv() ? w8a16_gemv_kernel<true, T> : w8a16_gemv_kernel<false, T>;
      kernel<<<gemv_blocks(N), kWarps * 32, 0, stream>>>(
          static_cast<const T*>(x.data_ptr()), w.data_ptr<int8_t>(), w_scale.data_ptr<float>(), ptr_or_null(b32),
          static_cast<T*>(out.data_ptr()), static_cast<int>(M), N, K, vec, act);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
    return out;
  }
#if BIGACCEL_HAVE_CUTLASS
  if (cuda::unverified_kernels_enabled() && cutlass_w8a16::supports(M, N, K, dtype)) {
    const cudaError_t err = cutlass_w8a16::run(x.data_ptr(), w.data_ptr<int8_t>(), w_scale.data_ptr<float>(),
                                               ptr_or_null(b32), out.data_ptr(), dtype, M, N, K, stream);
    TORCH_CHECK(err == cudaSuccess, "bigaccel.", op, ": CUTLASS W8A16 GEMM failed for M=", M, " N=", N, " K=", K,
                ": ", cudaGetErrorString(err));
    return out;
  }
#endif
  // int8 values are exact in bf16/fp16/fp32, and cuBLAS accumulates in fp32.
  *act_applied = true;
  const at::Tensor acc = dtype == DType::F32 ? at::mm(x, w.to(at::kFloat).t())
                                             : at::mm(x, w.to(x.scalar_type()).t(), at::kFloat);
  const int64_t total = M * N;
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>((total + 255) / 256, 65535));
  cuda::for_float_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    scale_bias_kernel<T><<<blocks, 256, 0, stream>>>(acc.data_ptr<float>(), w_scale.data_ptr<float>(),
                                                     ptr_or_null(b32), static_cast<T*>(out.data_ptr()), total, N, act);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

}  // namespace

// The epilogue activation (activations/epilogue.h): fused into the GEMV, else a pass of its own.
at::Tensor int8_mm_cuda(const at::Tensor& a, const at::Tensor& a_scale, const at::Tensor& w, const at::Tensor& w_scale,
                        const std::optional<at::Tensor>& /*w_sum: CPU only*/, const std::optional<at::Tensor>& bias,
                        at::ScalarType out_dtype, const std::string& activation) {
  const auto act = activations::epilogue_act(activation, "int8_mm");
  bool applied = false;
  at::Tensor out = int8_mm_gemm(a, a_scale, w, w_scale, bias, out_dtype, activations::cuda_code(act), &applied);
  if (!applied) activations::make_epilogue(act, out, "int8_mm").cuda_all(out);
  return out;
}

at::Tensor int8_weight_only_mm_cuda(const at::Tensor& x, const at::Tensor& w, const at::Tensor& w_scale,
                                    const std::optional<at::Tensor>& bias, const std::string& activation) {
  const auto act = activations::epilogue_act(activation, "int8_weight_only_mm");
  bool applied = false;
  at::Tensor out = int8_weight_only_mm_gemm(x, w, w_scale, bias, activations::cuda_code(act), &applied);
  if (!applied) activations::make_epilogue(act, out, "int8_weight_only_mm").cuda_all(out);
  return out;
}

}  // namespace bigaccel
