// Checks of the compressed 2:4 weight shared by the CPU and CUDA entry points.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

namespace bigaccel {

inline void check_compressed(const char* op, int64_t k, const at::Tensor& values, const at::Tensor& meta) {
  TORCH_CHECK(k > 0 && k % 4 == 0, "bigaccel.", op, ": K=", k, " must be a positive multiple of 4 (2:4 groups)");
  TORCH_CHECK(values.dim() == 2 && values.size(1) == k / 2, "bigaccel.", op, ": values must be [N, K/2=", k / 2,
              "], got ", values.sizes());
  const int64_t N = values.size(0);
  TORCH_CHECK(meta.scalar_type() == at::kByte && meta.dim() == 2 && meta.size(0) == N && meta.size(1) == (k + 7) / 8,
              "bigaccel.", op, ": meta must be uint8 [N=", N, ", ceil(K/8)=", (k + 7) / 8, "], got ",
              meta.scalar_type(), " ", meta.sizes());
}

}  // namespace bigaccel
