// The activations' fp32 math on CUDA, shared by the activation kernels (cuda.cu) and the
// quantized GEMMs' own kernels, which apply the epilogue activation before their store.
// fp32 inside; Phi through normcdff (accurate in the tail), the tanh GELU as x * sigmoid(2z).
#pragma once

#include <cuda_runtime.h>

#include "activations/kernel_args.h"

namespace bigaccel::activations {

// From e = exp(-|x|) <= 1, as the CPU kernels: 1 / (1 + e) for x >= 0, e / (1 + e) below.
// 1 / (1 + expf(-x)) overflowed to 0 below x = -88.7, where x * sigmoid(x) is still a normal
// bf16 number (tests/ops/test_activations.py runs every bf16 value).
__device__ __forceinline__ float sigmoid(float x) {
  const float e = expf(-fabsf(x));
  return (x >= 0.0f ? 1.0f : e) / (1.0f + e);
}

// act(x); *grad = act'(x) when wanted.
__device__ __forceinline__ float activation(Act act, float x, float* grad) {
  if (act == Act::Silu) {
    const float s = sigmoid(x);
    if (grad) *grad = s * (1.0f + x * (1.0f - s));
    return x * s;
  }
  if (act == Act::GeluErf) {
    const float phi = normcdff(x);
    if (grad) *grad = phi + x * expf(-0.5f * x * x) * 0.3989422804014327f;
    return x * phi;
  }
  const float x2 = fminf(x * x, 1e4f);  // as on CPU: beyond |x| = 100 s is 0 or 1; no 0 * inf
  const float s = sigmoid(1.5957691216057308f * x * (1.0f + 0.044715f * x2));
  if (grad) *grad = s + x * s * (1.0f - s) * 1.5957691216057308f * (1.0f + 3.0f * 0.044715f * x2);
  return x * s;
}

// A GEMM epilogue's activation code: kNoAct, or an Act's value (a uniform branch per kernel).
__device__ __forceinline__ float epilogue(int act, float v) {
  return act == bigaccel::kNoAct ? v : activation(static_cast<Act>(act), v, nullptr);
}

}  // namespace bigaccel::activations
