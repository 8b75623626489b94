// Shape, dtype and device checks of the int8 GEMMs, shared by the CPU and CUDA
// extensions (inline: the two are separate shared objects).
#pragma once

#include "common/checks.h"
#include "int8_gemm/int8_gemm.h"

namespace bigaccel {

// Returns {M, N, K}.
inline GemmShape check_int8_weight(const char* op, const at::Tensor& x, const at::Tensor& w,
                                   const at::Tensor& w_scale, const std::optional<at::Tensor>& bias) {
  TORCH_CHECK(x.dim() == 2, "bigaccel.", op, ": activations must be 2-D [M, K], got shape ", x.sizes());
  TORCH_CHECK(w.dim() == 2 && w.scalar_type() == at::kChar, "bigaccel.", op, ": weight must be int8 [N, K], got ",
              w.scalar_type(), " of shape ", w.sizes());
  const int64_t M = x.size(0), K = x.size(1), N = w.size(0);
  TORCH_CHECK(w.size(1) == K, "bigaccel.", op, ": K mismatch: activations have K=", K, " but the weight is ",
              w.sizes(), " (expected [N, ", K, "])");
  TORCH_CHECK(K > 0, "bigaccel.", op, ": K must be positive");
  TORCH_CHECK(w_scale.scalar_type() == at::kFloat && w_scale.numel() == N, "bigaccel.", op,
              ": weight scale must be float32 with N=", N, " elements, got ", w_scale.scalar_type(), " ",
              w_scale.sizes());
  if (bias) {
    TORCH_CHECK(bias->numel() == N, "bigaccel.", op, ": bias must have N=", N, " elements, got ", bias->sizes());
    float_dtype(*bias, op, "bias");
  }
  for (const at::Tensor* t : {&w, &w_scale})
    TORCH_CHECK(t->device() == x.device(), "bigaccel.", op, ": all tensors must be on ", x.device(), ", got ",
                t->device());
  return {M, N, K};
}

}  // namespace bigaccel
