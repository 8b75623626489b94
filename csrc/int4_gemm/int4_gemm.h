#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Optional.h>

#include <string>

namespace bigaccel {

// W4A16: x float [M, K]; the int4 weight in the canonical layout of bigaccel/reference.py:
// packed uint8 [N, K/2], scales fp32 [N, K/G], zeros uint8 [N, K/G] or none (8);
// bias [N] -> [M, N] in x's dtype.
at::Tensor int4_mm_cpu(const at::Tensor& x, const at::Tensor& packed, const at::Tensor& scales,
                       const std::optional<at::Tensor>& zeros, int64_t group_size,
                       const std::optional<at::Tensor>& bias, const std::string& activation);
at::Tensor int4_mm_cuda(const at::Tensor& x, const at::Tensor& packed, const at::Tensor& scales,
                        const std::optional<at::Tensor>& zeros, int64_t group_size,
                        const std::optional<at::Tensor>& bias, const std::string& activation);

}  // namespace bigaccel
