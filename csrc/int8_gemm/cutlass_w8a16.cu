// W8A16 on tensor cores with CUTLASS 2.x's mixed-input GEMM (sm80 kernels, which also run on
// sm86/89/90): the int8 weight is read once, as int8, and converted to bf16/fp16 in registers
// after ldmatrix (OpMultiplyAddMixedInputUpcast), so the weight's bytes stay a quarter of
// what dequantizing to a bf16 copy and calling cuBLAS moves. The epilogue of
// common/cutlass_gemm.h applies the per-channel scale and bias with one rounding.
// Written without a GPU: the caller uses it only with BIGACCEL_UNVERIFIED_KERNELS=1.
#include <cutlass/cutlass.h>
#include <cutlass/gemm/device/gemm_universal_adapter.h>
#include <cutlass/gemm/kernel/default_gemm_universal_with_visitor.h>
#include <cutlass/epilogue/threadblock/fusion/visitors.hpp>

#include "common/cutlass_gemm.h"
#include "int8_gemm/cutlass_w8a16.h"

namespace bigaccel::cutlass_w8a16 {
namespace {

using cutlass::gemm::GemmShape;

template <typename T, typename Tile, typename Warp>
struct MixedInputGemm {
  // Rows are tokens (no scale), columns output channels (w_scale, bias).
  using Epilogue = cutlass_gemm::ScaledBias<Tile, Warp, T, /*kBiasPerRow=*/false>;
  using Kernel = typename cutlass::gemm::kernel::DefaultGemmWithVisitor<
      T, cutlass::layout::RowMajor, cutlass::ComplexTransform::kNone, 8,             // A = activations [M, K]
      int8_t, cutlass::layout::ColumnMajor, cutlass::ComplexTransform::kNone, 16,  // B = weight [N, K] as K x N
      float, cutlass::layout::RowMajor, 4, float, float, cutlass::arch::OpClassTensorOp, cutlass::arch::Sm80, Tile,
      Warp, GemmShape<16, 8, 16>, typename Epilogue::Tree, cutlass::gemm::threadblock::GemmIdentityThreadblockSwizzle<8>,
      4, cutlass::arch::OpMultiplyAddMixedInputUpcast, 1>::GemmKernel;
  using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;

  static cudaError_t run(const T* x, const int8_t* w, const float* w_scale, const float* bias, T* out, int64_t M,
                         int64_t N, int64_t K, cudaStream_t stream) {
    typename Gemm::Arguments args(cutlass::gemm::GemmUniversalMode::kGemm,
                                  {static_cast<int>(M), static_cast<int>(N), static_cast<int>(K)}, 1,
                                  Epilogue::arguments(nullptr, w_scale, bias, out, M, N), x, w, nullptr, nullptr,
                                  M * K, N * K, 0, 0, K, K, 0, 0);
    return cutlass_gemm::run_gemm<Gemm>(args, stream);
  }
};

// Few rows: a short tile in M so that more blocks stream the weight; many rows: the square tile.
template <typename T>
cudaError_t dispatch_m(const void* x, const int8_t* w, const float* w_scale, const float* bias, void* out, int64_t M,
                       int64_t N, int64_t K, cudaStream_t stream) {
  const T* xt = static_cast<const T*>(x);
  T* o = static_cast<T*>(out);
  if (M <= 64)
    return MixedInputGemm<T, GemmShape<32, 128, 64>, GemmShape<32, 32, 64>>::run(xt, w, w_scale, bias, o, M, N, K,
                                                                                  stream);
  return MixedInputGemm<T, GemmShape<128, 128, 64>, GemmShape<64, 64, 64>>::run(xt, w, w_scale, bias, o, M, N, K,
                                                                                stream);
}

}  // namespace

bool supports(int64_t M, int64_t N, int64_t K, DType dtype) {
  const int64_t limit = int64_t(1) << 31;
  return dtype != DType::F32 && K % 16 == 0 && N % 4 == 0 && M < limit && N < limit && K < limit;
}

cudaError_t run(const void* x, const int8_t* w, const float* w_scale, const float* bias, void* out, DType dtype,
                int64_t M, int64_t N, int64_t K, cudaStream_t stream) {
  if (!supports(M, N, K, dtype)) return cudaErrorNotSupported;
  if (dtype == DType::BF16) return dispatch_m<cutlass::bfloat16_t>(x, w, w_scale, bias, out, M, N, K, stream);
  return dispatch_m<cutlass::half_t>(x, w, w_scale, bias, out, M, N, K, stream);
}

}  // namespace bigaccel::cutlass_w8a16
