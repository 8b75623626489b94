#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "common/checks.h"
#include "common/cpu_isa.h"
#include "quantize_per_token/quantize_per_token.h"

BIGACCEL_DECLARE_ISA_KERNEL(void, quantize_per_token_rows, const void* x, bigaccel::DType dtype, int8_t* q,
                            float* scales, int64_t rows, int64_t K)

namespace bigaccel {

std::tuple<at::Tensor, at::Tensor> quantize_per_token_cpu(const at::Tensor& x_in) {
  constexpr const char* op = "quantize_per_token";
  check_device(x_in, c10::DeviceType::CPU, op, "x");
  const DType dtype = float_dtype(x_in, op, "x");
  check_min_dim(x_in, 1, op, "x");
  TORCH_CHECK(x_in.size(-1) > 0, "bigaccel.", op, ": the last dimension of x must be non-empty, got shape ",
              x_in.sizes());
  const at::Tensor x = x_in.contiguous();
  auto [q, scales] = quantize_per_token_outputs(x);
  const int64_t K = x.size(-1);
  const int64_t rows = x.numel() / K;
  if (rows == 0) return {q, scales};

  const auto kernel = BIGACCEL_SELECT_ISA_KERNEL(quantize_per_token_rows);
  const size_t elem = x.element_size();
  const char* xp = static_cast<const char*>(x.data_ptr());
  int8_t* qp = q.data_ptr<int8_t>();
  float* sp = scales.data_ptr<float>();
  // Enough rows per task that thread start-up is amortised over ~32K elements.
  const int64_t grain = std::max<int64_t>(1, 32768 / K);
  at::parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
    kernel(xp + begin * K * elem, dtype, qp + begin * K, sp + begin, end - begin, K);
  });
  return {q, scales};
}

}  // namespace bigaccel
