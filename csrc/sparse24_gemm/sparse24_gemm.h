#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Optional.h>

namespace bigaccel {

// x float [M, K] against the 2:4 weight compressed as in bigaccel.reference.compress_2_4
// (values float [N, K/2], meta uint8 [N, ceil(K/8)]), bias [N] -> [M, N] in x's dtype.
at::Tensor sparse24_mm_cpu(const at::Tensor& x, const at::Tensor& values, const at::Tensor& meta, int64_t k,
                           const std::optional<at::Tensor>& bias);

}  // namespace bigaccel
