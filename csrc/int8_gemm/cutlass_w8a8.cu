// W8A8 int8 tensor-core GEMM on CUTLASS 2.x (sm80 kernels, which also run on
// sm86/89/90) with the whole epilogue fused through an epilogue visitor tree:
//
//   out = convert<Out>( float(acc) * (a_scale[m] * w_scale[n]) + bias[n] )
//
// in the reference's order (bigaccel.reference.int8_mm), so the result differs
// from it only by fma contraction (at most an ulp or two of fp32) before the one
// rounding to the output dtype. Only CUTLASS and CUDA headers here: see cutlass_w8a8.h.
// Order matters: the visitor headers expect the GEMM headers before them.
#include <cutlass/cutlass.h>
#include <cutlass/gemm/device/gemm_universal_adapter.h>
#include <cutlass/gemm/kernel/default_gemm_universal_with_visitor.h>
#include <cutlass/epilogue/threadblock/fusion/visitors.hpp>

#include "common/cutlass_gemm.h"
#include "int8_gemm/cutlass_w8a8.h"

namespace bigaccel::cutlass_w8a8 {
namespace {

template <typename Out, typename TileShape, typename WarpShape, int kStages>
struct ScaledInt8Gemm {
  // Rows are tokens (a_scale), columns output channels (w_scale, bias).
  using Epilogue = cutlass_gemm::ScaledBias<TileShape, WarpShape, Out, /*kBiasPerRow=*/false>;

  using Kernel = typename cutlass::gemm::kernel::DefaultGemmWithVisitor<
      int8_t, cutlass::layout::RowMajor, cutlass::ComplexTransform::kNone, 16,     // A = activations [M, K]
      int8_t, cutlass::layout::ColumnMajor, cutlass::ComplexTransform::kNone, 16,  // B = weight [N, K] as K x N
      float, cutlass::layout::RowMajor, 4, int32_t, float, cutlass::arch::OpClassTensorOp,
      cutlass::arch::Sm80, TileShape, WarpShape, cutlass::gemm::GemmShape<16, 8, 32>, typename Epilogue::Tree,
      cutlass::gemm::threadblock::GemmIdentityThreadblockSwizzle<8>, kStages,
      cutlass::arch::OpMultiplyAddSaturate, 1>::GemmKernel;
  using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;

  static cudaError_t run(const int8_t* a, const float* a_scale, const int8_t* w, const float* w_scale,
                         const float* bias, Out* out, int64_t M, int64_t N, int64_t K, cudaStream_t stream) {
    auto epilogue = Epilogue::arguments(a_scale, w_scale, bias, out, M, N);
    typename Gemm::Arguments args(cutlass::gemm::GemmUniversalMode::kGemm,
                                  {static_cast<int>(M), static_cast<int>(N), static_cast<int>(K)}, 1, epilogue, a, w,
                                  nullptr, nullptr, M * K, N * K, 0, 0, K, K, 0, 0);
    return cutlass_gemm::run_gemm<Gemm>(args, stream);
  }
};

using cutlass::gemm::GemmShape;
// Few rows (decode batches): a short tile in M, long in K, so each block streams
// a 128-column slab of the weight once.
template <typename Out>
using SmallM = ScaledInt8Gemm<Out, GemmShape<32, 128, 128>, GemmShape<32, 32, 128>, 4>;
// Many rows: the classic square tile with a deep pipeline.
template <typename Out>
using LargeM = ScaledInt8Gemm<Out, GemmShape<128, 128, 64>, GemmShape<64, 64, 64>, 4>;

template <typename Out>
cudaError_t dispatch_m(const int8_t* a, const float* a_scale, const int8_t* w, const float* w_scale, const float* bias,
                       void* out, int64_t M, int64_t N, int64_t K, cudaStream_t stream) {
  auto* o = static_cast<Out*>(out);
  if (M <= 64) return SmallM<Out>::run(a, a_scale, w, w_scale, bias, o, M, N, K, stream);
  return LargeM<Out>::run(a, a_scale, w, w_scale, bias, o, M, N, K, stream);
}

}  // namespace

bool supports(int64_t M, int64_t N, int64_t K, DType /*out_dtype*/) {
  const int64_t limit = int64_t(1) << 31;
  return K % 16 == 0 && N % 4 == 0 && M < limit && N < limit && K < limit;
}

cudaError_t run(const int8_t* a, const float* a_scale, const int8_t* w, const float* w_scale, const float* bias,
                void* out, DType out_dtype, int64_t M, int64_t N, int64_t K, cudaStream_t stream) {
  if (!supports(M, N, K, out_dtype)) return cudaErrorNotSupported;
  switch (out_dtype) {
    case DType::F32:
      return dispatch_m<float>(a, a_scale, w, w_scale, bias, out, M, N, K, stream);
    case DType::BF16:
      return dispatch_m<cutlass::bfloat16_t>(a, a_scale, w, w_scale, bias, out, M, N, K, stream);
    case DType::F16:
      return dispatch_m<cutlass::half_t>(a, a_scale, w, w_scale, bias, out, M, N, K, stream);
  }
  return cudaErrorNotSupported;
}

}  // namespace bigaccel::cutlass_w8a8
