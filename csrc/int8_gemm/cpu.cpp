#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "common/act_i16.h"
#include "common/checks.h"
#include "common/cpu_isa.h"
#include "common/cpu_parallel.h"
#include "int8_gemm/checks.h"
#include "int8_gemm/cpu_w8a8.h"

BIGACCEL_DECLARE_ISA_KERNEL(void, int8_mm_cols, const uint8_t* a, int64_t M, int64_t K, const int8_t* w, int64_t N,
                            int64_t n_begin, int64_t n_end, const float* a_scale, const float* w_scale,
                            const int32_t* w_sum, const float* bias, void* out, bigaccel::DType out_dtype)
BIGACCEL_DECLARE_ISA_KERNEL(void, int8_weight_only_cols, const float* x, int64_t M, int64_t K, const int8_t* w,
                            int64_t N, int64_t n_begin, int64_t n_end, const float* w_scale, const float* bias,
                            void* out, bigaccel::DType out_dtype)

#if defined(__x86_64__)
namespace bigaccel::avx2 {
void int8_weight_only_i16_cols(const I16Rows& x, int64_t M, int64_t K, const int8_t* w, int64_t N, int64_t n_begin,
                               int64_t n_end, const float* w_scale, const float* bias, void* out, DType out_dtype);
}
namespace bigaccel::avx512 {
void int8_weight_only_bf16_cols(const bf16_t* x, int64_t M, int64_t K, const int8_t* w, int64_t N, int64_t n_begin,
                                int64_t n_end, const float* w_scale, const float* bias, bf16_t* out);
}
#endif

namespace bigaccel {

constexpr int64_t kColumnChunk = 16;  // a whole number of every ISA's column tiles
// Up to this M, W8A16 with bf16/fp16 x runs on int16 products (the GEMV, then the blocked
// GEMM of cpu_kernel.h). Measured against the fp32 GEMM path (2 threads, AVX2, 2026-11-27,
// 4096/11008 weights): 1.0-1.35x at M = 128, 1.1-1.15x at 256, 0.67-0.87x at 1024, where
// re-reading all of x per 16 columns costs more than the GEMM's blocking saves.
constexpr int64_t kW8A16Int16MaxRows = 256;
at::Tensor int8_mm_cpu(const at::Tensor& a, const at::Tensor& a_scale, const at::Tensor& w, const at::Tensor& w_scale,
                       const std::optional<at::Tensor>& w_sum, const std::optional<at::Tensor>& bias,
                       at::ScalarType out_dtype, const std::string& activation) {
  constexpr const char* op = "int8_mm";
  const auto act = activations::epilogue_act(activation, op);
  check_device(a, c10::DeviceType::CPU, op, "a");
  TORCH_CHECK(a.scalar_type() == at::kChar, "bigaccel.int8_mm: a must be int8, got ", a.scalar_type());
  const auto [M, N, K] = check_int8_weight(op, a, w, w_scale, bias);
  check_w8a8_activations(op, a_scale, M, K);
  const DType out_kind = float_dtype(out_dtype, op, "out_dtype");
  at::Tensor out = at::empty({M, N}, a.options().dtype(out_dtype));
  if (M == 0 || N == 0) return out;

  const at::Tensor w_c = w.contiguous();
  const at::Tensor a_s = a_scale.contiguous(), w_s = w_scale.contiguous();
  const auto b32 = bias_f32(bias);
  if (cpu::active_isa() != cpu::Isa::Avx512 && w8a8_takes_int_mm(M, K)) {
    int8_mm_blocks_int_mm(a, a_s, w_c, w_s, b32, act, out, op);
    return out;
  }
  const W8A8Operands w8 = w8a8_operands(op, a, w_c, w_sum);
  const auto kernel = BIGACCEL_SELECT_ISA_KERNEL(int8_mm_cols);
  parallel_over_columns(M, N, K, kColumnChunk, activations::make_epilogue(act, out, op), [&](int64_t n0, int64_t n1) {
    kernel(w8.a_u8.data_ptr<uint8_t>(), M, K, w_c.data_ptr<int8_t>(), N, n0, n1, a_s.data_ptr<float>(),
           w_s.data_ptr<float>(), w8.w_sum.data_ptr<int32_t>(), ptr_or_null(b32), out.data_ptr(),
           out_kind);
  });
  return out;
}

at::Tensor int8_weight_only_mm_cpu(const at::Tensor& x, const at::Tensor& w, const at::Tensor& w_scale,
                                   const std::optional<at::Tensor>& bias, const std::string& activation) {
  constexpr const char* op = "int8_weight_only_mm";
  const auto act = activations::epilogue_act(activation, op);
  check_device(x, c10::DeviceType::CPU, op, "x");
  const DType out_kind = float_dtype(x, op, "x");
  const auto [M, N, K] = check_int8_weight(op, x, w, w_scale, bias);
  at::Tensor out = at::empty({M, N}, x.options());
  if (M == 0 || N == 0) return out;
  const at::Tensor w_c = w.contiguous(), w_s = w_scale.contiguous();
  const auto b32 = bias_f32(bias);
  const auto epilogue = activations::make_epilogue(act, out, op);
#if defined(__x86_64__)
  // bf16 x with AVX512_BF16: vdpbf16ps on the weight as bf16 (exact), at every M (cpu_kernel.h).
  if (out_kind == DType::BF16 && cpu::has_avx512_bf16()) {
    const at::Tensor x_c = x.contiguous();
    const auto* xp = static_cast<const bf16_t*>(x_c.data_ptr());
    auto* op = static_cast<bf16_t*>(out.data_ptr());
    parallel_over_columns(M, N, K, kColumnChunk, epilogue, [&](int64_t n0, int64_t n1) {
      avx512::int8_weight_only_bf16_cols(xp, M, K, w_c.data_ptr<int8_t>(), N, n0, n1, w_s.data_ptr<float>(),
                                         ptr_or_null(b32), op);
    });
    return out;
  }
  // bf16/fp16 x as int16 (common/act_i16.h): the GEMV up to kI16MaxRows rows, then a blocked
  // GEMM over the same products up to kW8A16Int16MaxRows.
  if (use_i16_activations(out_kind, M, kW8A16Int16MaxRows)) {
    const at::Tensor x_c = x.contiguous();
    I16Buffers x16(M, K, kI16Block, /*with_sums=*/false);
    if (x16.quantize(x_c.data_ptr(), out_kind, /*quad_chunk=*/0)) {
      parallel_over_columns(M, N, K, kColumnChunk, epilogue, [&](int64_t n0, int64_t n1) {
        avx2::int8_weight_only_i16_cols(x16.rows(), M, K, w_c.data_ptr<int8_t>(), N, n0, n1, w_s.data_ptr<float>(),
                                        ptr_or_null(b32), out.data_ptr(), out_kind);
      });
      return out;
    }
  }
#endif
  const at::Tensor x32 = x.to(at::kFloat).contiguous();
  // Large M: weight blocks converted exactly to fp32 and torch's fp32 GEMM. The register tile
  // re-reads all of x per column chunk (0.71-0.76x F.linear fp32 at M >= 256).
  if (M >= kSgemmMinRows) {
    // int8 weights are exact in fp32.
    const auto fill = [&](int64_t n0, int64_t nb, at::Tensor& tile) { tile.copy_(w_c.narrow(0, n0, nb)); };
    weight_blocks_gemm(x32, out, fill, w_s, b32, act, op);
    return out;
  }
  const auto kernel = BIGACCEL_SELECT_ISA_KERNEL(int8_weight_only_cols);
  parallel_over_columns(M, N, K, kColumnChunk, epilogue, [&](int64_t n0, int64_t n1) {
    kernel(x32.data_ptr<float>(), M, K, w_c.data_ptr<int8_t>(), N, n0, n1, w_s.data_ptr<float>(),
           ptr_or_null(b32), out.data_ptr(), out_kind);
  });
  return out;
}

}  // namespace bigaccel
