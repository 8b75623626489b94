#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <vector>

#include "common/checks.h"
#include "common/cpu_isa.h"
#include "common/cpu_parallel.h"
#include "int8_gemm/cpu_w8a8.h"
#include "sparse24_gemm/checks.h"
#include "sparse24_gemm/sparse24_gemm.h"

BIGACCEL_DECLARE_ISA_KERNEL(void, sparse24_mm_cols, const void* x, bool x_bf16, int64_t M, int64_t K,
                            const void* values,
                            bool values_bf16, const uint8_t* meta, int64_t N, int64_t n_begin, int64_t n_end,
                            const float* bias, void* out, bigaccel::DType out_dtype)
BIGACCEL_DECLARE_ISA_KERNEL(void, sparse24_expand_rows_f32, const void* values, bool values_bf16, const uint8_t* meta,
                            int64_t K, int64_t n_begin, int64_t n_end, float* dense)
BIGACCEL_DECLARE_ISA_KERNEL(void, sparse24_int8_mm_cols, const uint8_t* a, int64_t M, int64_t K,
                            const int8_t* values, const uint8_t* meta, int64_t N, int64_t n_begin, int64_t n_end,
                            const float* a_scale, const float* w_scale, const int32_t* w_sum, const float* bias,
                            int8_t* scratch, void* out, bigaccel::DType out_dtype)

#if defined(__x86_64__)
namespace bigaccel::avx512 {
void sparse24_bf16_tiles_cols(const bf16_t* x, int64_t M, int64_t K, const bf16_t* values, const uint8_t* meta,
                              int64_t n_begin, int64_t n_end, int64_t N, const float* bias, bf16_t* out);
void sparse24_bf16_rowvec_cols(const bf16_t* x, int64_t M, int64_t K, const bf16_t* values, const uint8_t* meta,
                               int64_t n_begin, int64_t n_end, int64_t N, const float* bias, bf16_t* out);
void sparse24_bf16_dense_rowvec_cols(const bf16_t* x, int64_t M, int64_t K, const bf16_t* values, const uint8_t* meta,
                                     int64_t n_begin, int64_t n_end, int64_t N, const float* bias, bf16_t* out);
}
#endif

namespace bigaccel {
namespace {

constexpr int64_t kColumnChunk = 16;
constexpr int64_t kExpandedRows = 8;  // kSparse24ExpandedRows in cpu_kernel.h
// From this many rows of x, blocks of weight rows are expanded to dense fp32 (in cache) and
// multiplied by torch's fp32 GEMM: the sparse kernel does 12 vector operations per 16 kept
// values and row of x, a dense tile 4 FMAs per 32 positions, but the expansion costs about
// as much as the GEMM at these M, and torch's fp32 GEMM ran at 10-40 GFLOP/s below M = 64
// on the 2-core AVX2 machine. Measured there (2026-11-27, weights 1024 to 4096 wide, a
// script): from M = 16, as it was, the expanded GEMM made M = 16 as slow as M = 64 (2:4 at
// 0.4-0.6x dense); the sparse kernel is 1.5-2.2x faster at M = 16, about even at M = 32 on
// fp32 4096 x 4096 and faster elsewhere; at M = 64 the expanded GEMM wins on that weight.
constexpr int64_t kSparse24SgemmMinRows = 64;
// With bf16 x and values on a CPU with AVX512_BF16, from this M the weight is expanded to dense
// bf16 in blocks and multiplied by vdpbf16ps tiles (cpu_bf16.h), exactly. Measured against the
// paths they replace (2 threads, Zen 5, 2026-11-28, Llama-7B's three shapes, weights from DRAM,
// same run): M = 3 0.88-1.13x (so not there), 4 1.0-1.5x, 8 1.1-2.0x, 16 1.6x, 32 1.3x.
constexpr int64_t kSparse24Bf16TileMinRows = 4;
// From this M, the outer-product kernel over pair vectors of x (cpu_rowvec.h), which does half
// the dense vdpbf16ps; from kSparse24DenseRowVecMinRows common/rowvec_gemm.h's dense GEMM on
// chunks expanded to bf16 (cpu_bf16.h), where the pair vectors' loads (one 64-byte load per
// vdpbf16ps) cost more than the dense products. Two threads, Llama-7B's three shapes, weights in
// L3 or DRAM (2026-11-28), dense-equivalent TFLOP/s of tiles / pairs / dense rowvec: M = 16
// 0.41-0.47 / 0.37-0.45 / 0.33-0.36, 32 0.52-0.55 / 0.65-0.71 / 0.55-0.60, 64 0.44-0.71 /
// 0.69-0.83 / 0.68-0.71, 256 (torch's bf16 GEMM over expanded blocks, replaced) 0.71-0.84 /
// 0.74-0.77 / 0.83-0.88.
constexpr int64_t kSparse24PairsMinRows = 32;
constexpr int64_t kSparse24DenseRowVecMinRows = 128;

void sparse24_mm_dense_gemm(const at::Tensor& x32, const at::Tensor& vals, bool values_bf16, const at::Tensor& meta,
                            const std::optional<at::Tensor>& b32, at::Tensor& out) {
  const int64_t K = x32.size(1);
  const auto expand = BIGACCEL_SELECT_ISA_KERNEL(sparse24_expand_rows_f32);
  weight_blocks_gemm(
      x32, out,
      [&](int64_t n0, int64_t nb, at::Tensor& tile) {
        at::parallel_for(0, nb, 16, [&](int64_t r0, int64_t r1) {
          expand(vals.data_ptr(), values_bf16, meta.data_ptr<uint8_t>(), K, n0 + r0, n0 + r1,
                 tile.data_ptr<float>() + r0 * K);
        });
      },
      std::nullopt, b32, std::nullopt, "sparse24_mm");
}

}  // namespace

at::Tensor sparse24_mm_cpu(const at::Tensor& x, const at::Tensor& values, const at::Tensor& meta, int64_t k,
                           const std::optional<at::Tensor>& bias) {
  constexpr const char* op = "sparse24_mm";
  check_device(x, c10::DeviceType::CPU, op, "x");
  const DType out_kind = float_dtype(x, op, "x");
  check_compressed(op, k, values, meta);
  TORCH_CHECK(x.dim() == 2 && x.size(1) == k, "bigaccel.sparse24_mm: x must be [M, K=", k, "], got ", x.sizes());
  TORCH_CHECK(values.scalar_type() == at::kFloat || values.scalar_type() == at::kBFloat16 ||
                  values.scalar_type() == at::kHalf,
              "bigaccel.sparse24_mm: values must be float32, bfloat16 or float16, got ", values.scalar_type());
  const int64_t M = x.size(0), N = values.size(0);
  if (bias) TORCH_CHECK(bias->numel() == N, "bigaccel.sparse24_mm: bias must have N=", N, " elements");
  for (const at::Tensor* t : {&values, &meta})
    TORCH_CHECK(t->device() == x.device(), "bigaccel.sparse24_mm: all tensors must be on ", x.device());
  at::Tensor out = at::empty({M, N}, x.options());
  if (M == 0 || N == 0) return out;
  // fp16 values are widened to fp32 once.
  const bool values_bf16 = values.scalar_type() == at::kBFloat16;
  const at::Tensor vals = values_bf16 ? values.contiguous() : values.to(at::kFloat).contiguous();
  const at::Tensor meta_c = meta.contiguous();
  const auto b32 = bias_f32(bias);
#if defined(__x86_64__)
  // bf16 x and values on a CPU with AVX512_BF16: bf16 products, exact.
  if (values_bf16 && use_bf16_kernels(x, kSparse24Bf16TileMinRows)) {
    const at::Tensor x_c = x.contiguous();
    const auto* xp = static_cast<const bf16_t*>(x_c.data_ptr());
    const auto kernel = M >= kSparse24DenseRowVecMinRows ? avx512::sparse24_bf16_dense_rowvec_cols
                        : M >= kSparse24PairsMinRows     ? avx512::sparse24_bf16_rowvec_cols
                                                         : avx512::sparse24_bf16_tiles_cols;
    parallel_over_columns(M, N, k, kColumnChunk, [&](int64_t n0, int64_t n1) {
      kernel(xp, M, k, static_cast<const bf16_t*>(vals.data_ptr()),
                                       meta_c.data_ptr<uint8_t>(), n0, n1, N, ptr_or_null(b32),
                                       static_cast<bf16_t*>(out.data_ptr()));
    });
    return out;
  }
#endif
  if (M >= kSparse24SgemmMinRows) {
    sparse24_mm_dense_gemm(x.to(at::kFloat).contiguous(), vals, values_bf16, meta_c, b32, out);
    return out;
  }
  // The kernel reads bf16 activations as they are, others in fp32 (M*K, small next to the weight).
  const bool x_bf16 = x.scalar_type() == at::kBFloat16;
  const at::Tensor xk = x_bf16 ? x.contiguous() : x.to(at::kFloat).contiguous();
  const auto kernel = BIGACCEL_SELECT_ISA_KERNEL(sparse24_mm_cols);
  parallel_over_columns(M, N, k, kColumnChunk, [&](int64_t n0, int64_t n1) {
    kernel(xk.data_ptr(), x_bf16, M, k, vals.data_ptr(), values_bf16, meta_c.data_ptr<uint8_t>(), N, n0, n1,
           ptr_or_null(b32), out.data_ptr(), out_kind);
  });
  return out;
}

at::Tensor sparse24_int8_mm_cpu(const at::Tensor& a, const at::Tensor& a_scale, const at::Tensor& values,
                                const at::Tensor& meta, int64_t k, const at::Tensor& w_scale,
                                const std::optional<at::Tensor>& w_sum, const std::optional<at::Tensor>& bias,
                                at::ScalarType out_dtype) {
  constexpr const char* op = "sparse24_int8_mm";
  check_device(a, c10::DeviceType::CPU, op, "a");
  TORCH_CHECK(a.scalar_type() == at::kChar && a.dim() == 2 && a.size(1) == k, "bigaccel.", op,
              ": a must be int8 [M, K=", k, "], got ", a.scalar_type(), " ", a.sizes());
  check_compressed(op, k, values, meta);
  TORCH_CHECK(values.scalar_type() == at::kChar, "bigaccel.", op, ": values must be int8, got ", values.scalar_type());
  const int64_t M = a.size(0), N = values.size(0);
  check_w8a8_activations(op, a_scale, M, k);  // k: the dense K the products are summed over
  TORCH_CHECK(w_scale.scalar_type() == at::kFloat && w_scale.numel() == N, "bigaccel.", op,
              ": w_scale must be float32 with N=", N, " elements, got ", w_scale.scalar_type(), " ", w_scale.sizes());
  if (bias) TORCH_CHECK(bias->numel() == N, "bigaccel.", op, ": bias must have N=", N, " elements");
  for (const at::Tensor* t : {&values, &meta, &w_scale})
    TORCH_CHECK(t->device() == a.device(), "bigaccel.", op, ": all tensors must be on ", a.device());
  const DType out_kind = float_dtype(out_dtype, op, "out_dtype");
  at::Tensor out = at::empty({M, N}, a.options().dtype(out_dtype));
  if (M == 0 || N == 0) return out;
  const at::Tensor vals = values.contiguous(), meta_c = meta.contiguous();
  const W8A8Operands w8 = w8a8_operands(op, a, vals, w_sum);
  const at::Tensor a_s = a_scale.contiguous(), w_s = w_scale.contiguous();
  const auto b32 = bias_f32(bias);
  const auto kernel = BIGACCEL_SELECT_ISA_KERNEL(sparse24_int8_mm_cols);
  parallel_over_columns(M, N, k, kColumnChunk, [&](int64_t n0, int64_t n1) {
    std::vector<int8_t> scratch(static_cast<size_t>(kExpandedRows * k));
    kernel(w8.a_u8.data_ptr<uint8_t>(), M, k, vals.data_ptr<int8_t>(), meta_c.data_ptr<uint8_t>(), N, n0, n1,
           a_s.data_ptr<float>(), w_s.data_ptr<float>(), w8.w_sum.data_ptr<int32_t>(),
           ptr_or_null(b32), scratch.data(), out.data_ptr(), out_kind);
  });
  return out;
}

}  // namespace bigaccel
