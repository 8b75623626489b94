#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

#include <tuple>

namespace bigaccel {

// x: [..., K] float32/bfloat16/float16 -> (q int8 [..., K], scale float32 [..., 1])
std::tuple<at::Tensor, at::Tensor> quantize_per_token_cpu(const at::Tensor& x);
std::tuple<at::Tensor, at::Tensor> quantize_per_token_cuda(const at::Tensor& x);

// Shape checks and output allocation shared by both devices.
inline std::tuple<at::Tensor, at::Tensor> quantize_per_token_outputs(const at::Tensor& x) {
  auto scale_shape = x.sizes().vec();
  scale_shape.back() = 1;
  return {at::empty(x.sizes(), x.options().dtype(at::kChar)), at::empty(scale_shape, x.options().dtype(at::kFloat))};
}

}  // namespace bigaccel
