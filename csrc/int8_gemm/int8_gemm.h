#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Optional.h>

#include <string>

namespace bigaccel {

// W8A8: a int8 [M, K] with a_scale fp32 [M, 1], w int8 [N, K] with w_scale fp32 [N],
// w_sum int32 [N] = sum_k w (optional, derived when absent), bias [N] -> [M, N] out_dtype.
at::Tensor int8_mm_cpu(const at::Tensor& a, const at::Tensor& a_scale, const at::Tensor& w, const at::Tensor& w_scale,
                       const std::optional<at::Tensor>& w_sum, const std::optional<at::Tensor>& bias,
                       at::ScalarType out_dtype, const std::string& activation);
at::Tensor int8_mm_cuda(const at::Tensor& a, const at::Tensor& a_scale, const at::Tensor& w, const at::Tensor& w_scale,
                        const std::optional<at::Tensor>& w_sum, const std::optional<at::Tensor>& bias,
                        at::ScalarType out_dtype, const std::string& activation);

// W8A16: x float [M, K], w int8 [N, K], w_scale fp32 [N], bias [N] -> [M, N] in x's dtype.
at::Tensor int8_weight_only_mm_cpu(const at::Tensor& x, const at::Tensor& w, const at::Tensor& w_scale,
                                   const std::optional<at::Tensor>& bias, const std::string& activation);
at::Tensor int8_weight_only_mm_cuda(const at::Tensor& x, const at::Tensor& w, const at::Tensor& w_scale,
                                    const std::optional<at::Tensor>& bias, const std::string& activation);

// Checked by check_int8_weight (checks.h).
struct GemmShape {
  int64_t M, N, K;
};

}  // namespace bigaccel
