// Fused activations on CUDA: one grid-stride elementwise kernel per (dtype,
// gated/elementwise/bias, forward/backward); the activation is a uniform
// runtime branch (free in a memory-bound kernel, and it keeps this one
// translation unit small). Each thread moves 16 bytes per load when the row
// length and pointers allow it, else one element. Math as in cpu_kernel.h:
// fp32 inside, one rounding; Phi through normcdff (accurate in the tail), the
// tanh GELU as x * sigmoid(2z).
#include <ATen/core/Tensor.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "activations/act_device.cuh"
#include "activations/activations.h"
#include "common/cuda_utils.cuh"

namespace bigaccel::activations {
namespace {

constexpr int kThreads = 256;
enum Mode : int { kGated = 0, kPlain = 1, kBias = 2 };

__device__ __forceinline__ void store(float v, float* p) { *p = v; }
__device__ __forceinline__ void store(float v, __nv_bfloat16* p) { *p = __float2bfloat16_rn(v); }
__device__ __forceinline__ void store(float v, __half* p) { *p = __float2half_rn(v); }

template <typename T, int kVec>
struct alignas(sizeof(T) * kVec) Pack {
  T v[kVec];
};

template <typename T, int kVec, int kMode, bool kBackward>
__global__ void __launch_bounds__(kThreads)
    activation_kernel(const T* __restrict__ x, const T* __restrict__ bias, const T* __restrict__ grad,
                      T* __restrict__ out, Act act, int64_t d, int64_t packs) {
  using P = Pack<T, kVec>;
  const int64_t in_d = kMode == kGated ? 2 * d : d;
  for (int64_t p = blockIdx.x * int64_t(kThreads) + threadIdx.x; p < packs; p += int64_t(gridDim.x) * kThreads) {
    const int64_t i = p * kVec, row = i / d, col = i - row * d;
    const P xv = *reinterpret_cast<const P*>(x + row * in_d + col);
    P upv, bv, gv, o0, o1;
    if (kMode == kGated) upv = *reinterpret_cast<const P*>(x + row * in_d + d + col);
    if (kMode == kBias) bv = *reinterpret_cast<const P*>(bias + col);
    if (kBackward) gv = *reinterpret_cast<const P*>(grad + i);
#pragma unroll
    for (int k = 0; k < kVec; ++k) {
      float v = cuda::to_float(xv.v[k]);
      if (kMode == kBias) v += cuda::to_float(bv.v[k]);
      float dact = 0.0f;
      const float a = activation(act, v, kBackward ? &dact : nullptr);
      if (!kBackward) {
        store(kMode == kGated ? a * cuda::to_float(upv.v[k]) : a, &o0.v[k]);
      } else {
        const float g = cuda::to_float(gv.v[k]);
        if (kMode == kGated) {
          store(g * cuda::to_float(upv.v[k]) * dact, &o0.v[k]);
          store(g * a, &o1.v[k]);
        } else {
          store(g * dact, &o0.v[k]);
        }
      }
    }
    if (!kBackward) {
      *reinterpret_cast<P*>(out + i) = o0;
    } else {
      *reinterpret_cast<P*>(out + row * in_d + col) = o0;
      if (kMode == kGated) *reinterpret_cast<P*>(out + row * in_d + d + col) = o1;
    }
  }
}

bool aligned(const void* p, int bytes) { return p == nullptr || reinterpret_cast<uintptr_t>(p) % bytes == 0; }

template <typename T, int kVec, int kMode, bool kBackward>
void launch_vec(const ActArgs& a, int64_t total, cudaStream_t stream) {
  const int64_t packs = total / kVec;
  const int64_t blocks = std::min<int64_t>((packs + kThreads - 1) / kThreads, int64_t(1) << 20);
  activation_kernel<T, kVec, kMode, kBackward><<<unsigned(blocks), kThreads, 0, stream>>>(
      static_cast<const T*>(a.x), static_cast<const T*>(a.bias), static_cast<const T*>(a.grad), static_cast<T*>(a.out),
      a.act, a.d, packs);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <typename T, int kMode, bool kBackward>
void launch(const ActArgs& a, int64_t total, cudaStream_t stream) {
  constexpr int kVec = 16 / sizeof(T);
  const bool vec = a.d % kVec == 0 && aligned(a.x, 16) && aligned(a.bias, 16) && aligned(a.grad, 16) &&
                   aligned(a.out, 16);
  if (vec) return launch_vec<T, kVec, kMode, kBackward>(a, total, stream);
  launch_vec<T, 1, kMode, kBackward>(a, total, stream);
}

template <typename T>
void launch_dtype(const ActArgs& a, bool backward, int64_t total, cudaStream_t stream) {
  const int mode = a.gated ? kGated : (a.bias ? kBias : kPlain);
  switch (mode * 2 + int(backward)) {
    case 0: return launch<T, kGated, false>(a, total, stream);
    case 1: return launch<T, kGated, true>(a, total, stream);
    case 2: return launch<T, kPlain, false>(a, total, stream);
    case 3: return launch<T, kPlain, true>(a, total, stream);
    case 4: return launch<T, kBias, false>(a, total, stream);
    default: return launch<T, kBias, true>(a, total, stream);
  }
}

}  // namespace

void run_cuda(const ActArgs& args, bool backward, int64_t total, int device_index) {
  const c10::cuda::CUDAGuard guard(static_cast<c10::DeviceIndex>(device_index));
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  cuda::for_float_dtype(args.dtype, [&](auto tag) { launch_dtype<decltype(tag)>(args, backward, total, stream); });
}

}  // namespace bigaccel::activations
