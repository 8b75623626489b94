#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <vector>

#include "common/checks.h"
#include "common/cpu_isa.h"
#include "common/cpu_parallel.h"
#include "int4_gemm/int4_gemm.h"

BIGACCEL_DECLARE_ISA_KERNEL(void, int4_mm_cols, const float* x, int64_t M, int64_t K, const uint8_t* packed,
                            const float* scales, const uint8_t* zeros, int64_t group_size, int64_t N, int64_t n_begin,
                            int64_t n_end, const float* bias, float* scratch, void* out, bigaccel::DType out_dtype)

BIGACCEL_DECLARE_ISA_KERNEL(void, int4_dequantize_cols, const uint8_t* packed, const float* scales,
                            const uint8_t* zeros, int64_t K, int64_t group_size, int64_t n0, int64_t n1, float* tile)

#if defined(__x86_64__)
namespace bigaccel::avx2 {
void int4_gemv_i16_cols(const I16Rows& x, int64_t M, int64_t K, const uint8_t* packed, const float* scales,
                        const uint8_t* zeros, int64_t group_size, int64_t N, int64_t n_begin, int64_t n_end,
                        const float* bias, void* out, DType out_dtype);
void int4_gemm_i16_cols(const I16Rows& x, int64_t M, int64_t K, const uint8_t* packed, const float* scales,
                        const uint8_t* zeros, int64_t N, int64_t n_begin, int64_t n_end, const float* bias,
                        void* out, DType out_dtype);
}
namespace bigaccel::avx512 {
void int4_gemv_i16_cols(const I16Rows& x, int64_t M, int64_t K, const uint8_t* packed, const float* scales,
                        const uint8_t* zeros, int64_t group_size, int64_t N, int64_t n_begin, int64_t n_end,
                        const float* bias, void* out, DType out_dtype);
int64_t int4_bf16_panel_elems(int64_t M, int64_t K);
void int4_bf16_pack_rows(const bf16_t* x, int64_t M, int64_t K, bf16_t* panels);
void int4_mm_bf16_cols(const bf16_t* x, const bf16_t* x_panels, int64_t M, int64_t K, const uint8_t* packed,
                       const float* scales, const uint8_t* zeros, int64_t group_size, int64_t N, int64_t n_begin,
                       int64_t n_end, const float* bias, bf16_t* out);
}
#endif

namespace bigaccel {

namespace {
// Must match kInt4BlockN in cpu_kernel.h: the scratch tile holds that many dequantized columns.
constexpr int64_t kBlockN = 8;
// Must match kInt4NibbleChunk: the kernels read x (and lay out dequantized tiles) in nibble order.
constexpr int64_t kNibbleChunk = 32;
// Must match kInt4FusedMaxRows: up to this M the kernel runs its GEMV, above it the scratch tiles.
constexpr int64_t kFusedMaxRows = 4;
// Up to this M, bf16/fp16 x with groups of 128 takes int16 products: the GEMV to kI16MaxRows,
// then the blocked GEMM of common/i16_gemm.h (other groups: the GEMV only). Measured against
// the fp32 tiles (2 threads, AVX2, 2026-11-27, 11008 x 4096 and 4096 x 11008, same run): g128
// 1.12-1.44x at M = 8-64, 1.03-1.16x at 128, 0.81-0.91x at 256 (against the fp32 GEMM
// path); g64 0.63-0.87x and g32 0.57-0.81x: its int32 sums are flushed into fp32 once per
// group (a conversion, a multiply, an FMA, a load and a store per accumulator), which at 32
// or 64 k costs more than the int16 products save.
constexpr int64_t kW4A16Int16MaxRows = kSgemmMinRows - 1;
constexpr int64_t kW4A16Int16GemmGroup = kI16Block;
// From this M, bf16 x on a CPU with AVX512_BF16 runs cpu_bf16.h: the vdpbf16ps tiles, then (from
// its kInt4RowVecMinRows) the outer-product GEMM; both round the weight to bf16, as a bf16
// nn.Linear rounds its weight. Measured against the paths they replace
// (2 threads, Zen 5, 2026-11-28, Llama-7B's three shapes, g128, weights from DRAM, same run):
// M = 2 0.8-1.3x (so not there), 3 1.5x, 4 2.0-2.6x, 8 1.8-2.2x, 16 1.9-2.0x, 32 1.14-1.21x
// (against torch's bf16 GEMM over dequantized blocks, since replaced), 40 1.07-1.12x.
constexpr int64_t kW4A16Bf16TileMinRows = 3;
// From kSgemmMinRows (cpu_parallel.h), blocks of columns are dequantized to fp32 and multiplied
// by torch's fp32 GEMM. The register tile of cpu_kernel.h re-reads all of x for every 8
// columns, which stops fitting in cache as M grows (0.6x F.linear fp32 at M = 1024,
// 4096 x 11008, against 1.1x at M = 256).

// x_nib: x in nibble order, fp32.
void int4_mm_dense_gemm(const at::Tensor& x_nib, const at::Tensor& p, const at::Tensor& s,
                        const std::optional<at::Tensor>& z, int64_t group_size, const std::optional<at::Tensor>& b32,
                        std::optional<Act> act, at::Tensor& out) {
  const int64_t K = x_nib.size(1);
  const auto dequantize = BIGACCEL_SELECT_ISA_KERNEL(int4_dequantize_cols);
  weight_blocks_gemm(
      x_nib, out,
      [&](int64_t n0, int64_t nb, at::Tensor& tile) {  // in nibble order, as x_nib
        parallel_over_columns(1, nb, K, kBlockN, [&](int64_t c0, int64_t c1) {
          dequantize(p.data_ptr<uint8_t>(), s.data_ptr<float>(), z ? z->data_ptr<uint8_t>() : nullptr, K, group_size,
                     n0 + c0, n0 + c1, tile.data_ptr<float>() + c0 * K);
        });
      },
      std::nullopt, b32, act, "int4_mm");
}

}  // namespace

at::Tensor int4_mm_cpu(const at::Tensor& x, const at::Tensor& packed, const at::Tensor& scales,
                       const std::optional<at::Tensor>& zeros, int64_t group_size,
                       const std::optional<at::Tensor>& bias, const std::string& activation) {
  constexpr const char* op = "int4_mm";
  const auto act = activations::epilogue_act(activation, op);
  check_device(x, c10::DeviceType::CPU, op, "x");
  const DType out_kind = float_dtype(x, op, "x");
  TORCH_CHECK(group_size == 32 || group_size == 64 || group_size == 128, "bigaccel.int4_mm: group_size must be 32, ",
              "64 or 128, got ", group_size);
  TORCH_CHECK(x.dim() == 2 && packed.dim() == 2 && packed.scalar_type() == at::kByte,
              "bigaccel.int4_mm: x must be [M, K] and packed uint8 [N, K/2], got ", x.sizes(), " and ",
              packed.scalar_type(), " ", packed.sizes());
  const int64_t M = x.size(0), N = packed.size(0), K = packed.size(1) * 2;
  TORCH_CHECK(x.size(1) == K, "bigaccel.int4_mm: K mismatch: x is ", x.sizes(), " but packed ", packed.sizes(),
              " holds K=", K);
  TORCH_CHECK(K % group_size == 0, "bigaccel.int4_mm: K=", K, " is not a multiple of group_size=", group_size);
  const int64_t groups = K / group_size;
  TORCH_CHECK(scales.scalar_type() == at::kFloat && scales.dim() == 2 && scales.size(0) == N &&
                  scales.size(1) == groups,
              "bigaccel.int4_mm: scales must be float32 [", N, ", ", groups, "], got ", scales.scalar_type(), " ",
              scales.sizes());
  if (zeros) {
    TORCH_CHECK(zeros->scalar_type() == at::kByte && zeros->dim() == 2 && zeros->size(0) == N &&
                    zeros->size(1) == groups,
                "bigaccel.int4_mm: zeros must be uint8 [", N, ", ", groups, "], got ", zeros->scalar_type(), " ",
                zeros->sizes());
  }
  TORCH_CHECK(!bias || bias->numel() == N, "bigaccel.int4_mm: bias must have N=", N, " elements");
  for (const at::Tensor* t : {&packed, &scales}) check_device(*t, c10::DeviceType::CPU, op, "the weight");
  if (zeros) check_device(*zeros, c10::DeviceType::CPU, op, "zeros");
  if (bias) check_device(*bias, c10::DeviceType::CPU, op, "bias");

  at::Tensor out = at::empty({M, N}, x.options());
  if (M == 0 || N == 0) return out;
  const at::Tensor p = packed.contiguous(), s = scales.contiguous();
  const std::optional<at::Tensor> z = zeros ? std::optional<at::Tensor>(zeros->contiguous()) : std::nullopt;
  const auto b32 = bias_f32(bias);
  // x in nibble order: the 16 even k then the 16 odd k of every 32 (K is a multiple of the group).
  const auto nibble_order = [&](const at::Tensor& t) {
    return t.contiguous().view({M, K / kNibbleChunk, kNibbleChunk / 2, 2}).transpose(2, 3).contiguous().view({M, K});
  };
#if defined(__x86_64__)
  if (use_bf16_kernels(x, kW4A16Bf16TileMinRows)) {
    const at::Tensor x_c = x.contiguous();
    const auto* xp = static_cast<const bf16_t*>(x_c.data_ptr());
    const int64_t panel_elems = avx512::int4_bf16_panel_elems(M, K);
    const bf16_t* xpanels = nullptr;
    at::Tensor panels;
    if (panel_elems > 0) {  // x in panels of tile rows, once for all threads
      panels = at::empty({panel_elems}, x.options());
      avx512::int4_bf16_pack_rows(xp, M, K, static_cast<bf16_t*>(panels.data_ptr()));
      xpanels = static_cast<const bf16_t*>(panels.data_ptr());
    }
    auto* o = static_cast<bf16_t*>(out.data_ptr());
    parallel_over_columns(M, N, K, kBlockN, activations::make_epilogue(act, out, op), [&](int64_t n0, int64_t n1) {
      avx512::int4_mm_bf16_cols(xp, xpanels, M, K, p.data_ptr<uint8_t>(), s.data_ptr<float>(),
                                z ? z->data_ptr<uint8_t>() : nullptr, group_size, N, n0, n1, ptr_or_null(b32), o);
    });
    return out;
  }
  if (use_i16_activations(out_kind, M, kW4A16Int16MaxRows) && M > kI16MaxRows && group_size == kW4A16Int16GemmGroup) {
    const at::Tensor x_c = x.contiguous();
    I16Buffers x16(M, K, kI16Block, /*with_sums=*/false);
    if (x16.quantize(x_c.data_ptr(), out_kind, /*quad_chunk=*/0)) {
      parallel_over_columns(M, N, K, kBlockN, activations::make_epilogue(act, out, op), [&](int64_t n0, int64_t n1) {
        avx2::int4_gemm_i16_cols(x16.rows(), M, K, p.data_ptr<uint8_t>(), s.data_ptr<float>(),
                                 z ? z->data_ptr<uint8_t>() : nullptr, N, n0, n1, ptr_or_null(b32),
                                 out.data_ptr(), out_kind);
      });
      return out;
    }
  }
  if (use_i16_activations(out_kind, M)) {
    const at::Tensor x_c = x.contiguous();
    I16Buffers x16(M, K, group_size, /*with_sums=*/true);
    // The AVX-512 GEMV unpacks 128 k per zmm (VNNI vpdpwssd), the AVX2 one 64 per ymm.
    const bool zmm = cpu::active_isa() == cpu::Isa::Avx512;
    if (x16.quantize(x_c.data_ptr(), out_kind, /*quad_chunk=*/zmm ? 128 : 64)) {
      parallel_over_columns(M, N, K, kBlockN, activations::make_epilogue(act, out, op), [&](int64_t n0, int64_t n1) {
        (zmm ? avx512::int4_gemv_i16_cols : avx2::int4_gemv_i16_cols)(x16.rows(), M, K, p.data_ptr<uint8_t>(), s.data_ptr<float>(),
                                 z ? z->data_ptr<uint8_t>() : nullptr, group_size, N, n0, n1,
                                 ptr_or_null(b32), out.data_ptr(), out_kind);
      });
      return out;
    }
  }
#endif
  const at::Tensor x32 = nibble_order(x.to(at::kFloat));
  if (M >= kSgemmMinRows) {
    int4_mm_dense_gemm(x32, p, s, z, group_size, b32, act, out);
    return out;
  }
  const auto kernel = BIGACCEL_SELECT_ISA_KERNEL(int4_mm_cols);
  // Threads split N in whole scratch blocks.
  parallel_over_columns(M, N, K, kBlockN, activations::make_epilogue(act, out, op), [&](int64_t n0, int64_t n1) {
    std::vector<float> scratch(M > kFusedMaxRows ? kBlockN * K : 0);
    kernel(x32.data_ptr<float>(), M, K, p.data_ptr<uint8_t>(), s.data_ptr<float>(),
           z ? z->data_ptr<uint8_t>() : nullptr, group_size, N, n0, n1,
           ptr_or_null(b32), scratch.data(), out.data_ptr(), out_kind);
  });
  return out;
}

}  // namespace bigaccel
