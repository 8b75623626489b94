#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "common/checks.h"
#include "common/cpu_isa.h"
#include "sparse24_gemm/sparse24_gemm.h"

BIGACCEL_DECLARE_ISA_KERNEL(void, sparse24_mm_cols, const float* x, int64_t M, int64_t K, const void* values,
                            bool values_bf16, const uint8_t* meta, int64_t N, int64_t n_begin, int64_t n_end,
                            const float* bias, void* out, bigaccel::DType out_dtype)

namespace bigaccel {

at::Tensor sparse24_mm_cpu(const at::Tensor& x, const at::Tensor& values, const at::Tensor& meta, int64_t k,
                           const std::optional<at::Tensor>& bias) {
  constexpr const char* op = "sparse24_mm";
  check_device(x, c10::DeviceType::CPU, op, "x");
  const DType out_kind = float_dtype(x, op, "x");
  TORCH_CHECK(k > 0 && k % 4 == 0, "bigaccel.sparse24_mm: K=", k, " must be a positive multiple of 4 (2:4 groups)");
  TORCH_CHECK(x.dim() == 2 && x.size(1) == k, "bigaccel.sparse24_mm: x must be [M, K=", k, "], got ", x.sizes());
  TORCH_CHECK(values.dim() == 2 && values.size(1) == k / 2, "bigaccel.sparse24_mm: values must be [N, K/2=", k / 2,
              "], got ", values.sizes());
  TORCH_CHECK(values.scalar_type() == at::kFloat || values.scalar_type() == at::kBFloat16 ||
                  values.scalar_type() == at::kHalf,
              "bigaccel.sparse24_mm: values must be float32, bfloat16 or float16, got ", values.scalar_type());
  const int64_t M = x.size(0), N = values.size(0);
  TORCH_CHECK(meta.scalar_type() == at::kByte && meta.dim() == 2 && meta.size(0) == N && meta.size(1) == (k + 7) / 8,
              "bigaccel.sparse24_mm: meta must be uint8 [N=", N, ", ceil(K/8)=", (k + 7) / 8, "], got ",
              meta.scalar_type(), " ", meta.sizes());
  if (bias) TORCH_CHECK(bias->numel() == N, "bigaccel.sparse24_mm: bias must have N=", N, " elements");
  for (const at::Tensor* t : {&values, &meta})
    TORCH_CHECK(t->device() == x.device(), "bigaccel.sparse24_mm: all tensors must be on ", x.device());
  at::Tensor out = at::empty({M, N}, x.options());
  if (M == 0 || N == 0) return out;
  // Activations in fp32 once (M*K, small next to the weight); fp16 values are widened to fp32.
  const at::Tensor x32 = x.to(at::kFloat).contiguous();
  const bool values_bf16 = values.scalar_type() == at::kBFloat16;
  const at::Tensor vals = values_bf16 ? values.contiguous() : values.to(at::kFloat).contiguous();
  const at::Tensor meta_c = meta.contiguous();
  const std::optional<at::Tensor> b32 = bias ? std::optional<at::Tensor>(bias->to(at::kFloat).contiguous().view({-1}))
                                             : std::nullopt;
  const auto kernel = BIGACCEL_SELECT_ISA_KERNEL(sparse24_mm_cols);
  // Columns (output features) split over threads in chunks of 16; small problems on one thread.
  constexpr int64_t kChunk = 16;
  const int64_t chunks = (N + kChunk - 1) / kChunk;
  const int64_t grain = M * N * k < (1 << 20) ? chunks : 1;
  at::parallel_for(0, chunks, grain, [&](int64_t begin, int64_t end) {
    kernel(x32.data_ptr<float>(), M, k, vals.data_ptr(), values_bf16, meta_c.data_ptr<uint8_t>(), N, begin * kChunk,
           std::min(N, end * kChunk), b32 ? b32->data_ptr<float>() : nullptr, out.data_ptr(), out_kind);
  });
  return out;
}

}  // namespace bigaccel
