// Input checks shared by the op entry points (CPU and CUDA). The Python layer
// checks first and explains the fix; these keep direct torch.ops callers safe.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <optional>

#include "common/dtypes.h"

namespace bigaccel {

inline DType float_dtype(at::ScalarType type, const char* op, const char* arg) {
  switch (type) {
    case at::kFloat:
      return DType::F32;
    case at::kBFloat16:
      return DType::BF16;
    case at::kHalf:
      return DType::F16;
    default:
      TORCH_CHECK(false, "bigaccel.", op, ": ", arg, " must be float32, bfloat16 or float16, got ", type);
  }
}

inline DType float_dtype(const at::Tensor& t, const char* op, const char* arg) {
  return float_dtype(t.scalar_type(), op, arg);
}

inline void check_device(const at::Tensor& t, c10::DeviceType device, const char* op, const char* arg) {
  TORCH_CHECK(t.device().type() == device, "bigaccel.", op, ": ", arg, " must be on ", c10::DeviceTypeName(device, true),
              ", got ", t.device());
}

inline void check_min_dim(const at::Tensor& t, int64_t dim, const char* op, const char* arg) {
  TORCH_CHECK(t.dim() >= dim, "bigaccel.", op, ": ", arg, " must have at least ", dim, " dimension(s), got shape ",
              t.sizes());
}

// The bias as a contiguous fp32 vector, which every epilogue adds (CPU and CUDA).
inline std::optional<at::Tensor> bias_f32(const std::optional<at::Tensor>& bias) {
  if (!bias) return std::nullopt;
  return bias->to(at::kFloat).contiguous().view({-1});
}

inline const float* ptr_or_null(const std::optional<at::Tensor>& t) { return t ? t->data_ptr<float>() : nullptr; }

}  // namespace bigaccel
