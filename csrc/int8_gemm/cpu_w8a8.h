// Host-side steps shared by the CPU W8A8 entry points (int8_mm on a dense weight,
// sparse24_int8_mm on a 2:4 compressed one): the activation checks and the operands
// their kernels (DotU8S8, common/vec.h) take.
#pragma once

#include <ATen/ATen.h>

#include <optional>

namespace bigaccel {

inline void check_w8a8_activations(const char* op, const at::Tensor& a_scale, int64_t M, int64_t K) {
  TORCH_CHECK(a_scale.scalar_type() == at::kFloat && a_scale.numel() == M, "bigaccel.", op,
              ": a_scale must be float32 with M=", M, " elements, got ", a_scale.scalar_type(), " ", a_scale.sizes());
  // u8 * s8 products summed over K must fit int32.
  TORCH_CHECK(K <= 65536, "bigaccel.", op, ": K=", K, " is larger than the supported 65536");
}

struct W8A8Operands {
  at::Tensor a_u8;   // the activations + 128: VNNI multiplies unsigned by signed bytes
  at::Tensor w_sum;  // int32 row sums of the weight, which the epilogue subtracts 128 times
};

// `weight` holds the weight's int8 values (dense, or only the kept ones: the sums are the same);
// it is summed only when the caller passes no w_sum.
inline W8A8Operands w8a8_operands(const char* op, const at::Tensor& a, const at::Tensor& weight,
                                  const std::optional<at::Tensor>& w_sum) {
  const int64_t N = weight.size(0);
  at::Tensor sums = w_sum ? w_sum->to(at::kInt).contiguous() : weight.sum(1, false, at::kInt);
  TORCH_CHECK(sums.numel() == N, "bigaccel.", op, ": w_sum must have N=", N, " elements, got ", sums.sizes());
  return {a.contiguous().view(at::kByte).bitwise_xor(128), sums};
}

}  // namespace bigaccel
