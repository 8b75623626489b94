// What bigaccel's CUTLASS 2.x (sm80-kernel) GEMMs share: their launch, and their epilogue,
// fused through an epilogue visitor tree over the GEMM's rows r and columns c:
//
//   out[r, c] = convert<Out>( float(acc) * (row_scale[r] * col_scale[c]) + bias[r or c] )
//
// with one rounding to Out. A null scale reads as 1 and a null bias as 0, so the
// float 2:4 GEMM (no scales), W8A16 (per-channel scale) and the W8A8 GEMMs (per-token
// and per-channel scales) share it; kBiasPerRow says which operand the bias follows (the
// weight's rows are the GEMM's rows in the 2:4 kernels, its columns in the dense ones).
// Include it after the CUTLASS GEMM headers: the visitor headers expect them first.
#pragma once

#include <cutlass/epilogue/threadblock/fusion/visitors.hpp>

#include <cuda_runtime_api.h>

#include <cstdint>
#include <type_traits>

namespace bigaccel::cutlass_gemm {

// Checks, initializes and runs a CUTLASS device GEMM: cudaSuccess, cudaErrorInvalidValue when
// CUTLASS refuses the arguments, cudaErrorNotSupported when they would need a workspace (none
// of bigaccel's single-slice GEMMs does), else the launch's error.
template <typename Gemm>
cudaError_t run_gemm(const typename Gemm::Arguments& args, cudaStream_t stream) {
  Gemm gemm;
  if (gemm.can_implement(args) != cutlass::Status::kSuccess) return cudaErrorInvalidValue;
  if (Gemm::get_workspace_size(args) != 0) return cudaErrorNotSupported;
  if (gemm.initialize(args, nullptr, stream) != cutlass::Status::kSuccess) return cudaErrorInvalidValue;
  if (gemm.run(stream) != cutlass::Status::kSuccess) return cudaGetLastError();
  return cudaGetLastError();
}

template <typename TileShape, typename WarpShape, typename Out, bool kBiasPerRow>
struct ScaledBias {
  // The thread map is laid out for fp32 (the compute type) in 16-byte vectors
  // whatever the output type, the layout CUTLASS's own scaled-GEMM users run; a
  // bf16/fp16 output is then stored 4 elements (8 bytes) at a time.
  using ThreadMap = cutlass::epilogue::threadblock::OutputTileThreadLayout<TileShape, WarpShape, float, 4, 1>;

  template <typename... Ts>
  using EVT = cutlass::epilogue::threadblock::Sm80EVT<Ts...>;
  using PerRowStride = cute::Stride<cute::_1, cute::_0, int64_t>;
  using PerColStride = cute::Stride<cute::_0, cute::_1, int64_t>;
  using PerRow = cutlass::epilogue::threadblock::VisitorColBroadcast<ThreadMap, float, PerRowStride>;
  using PerCol = cutlass::epilogue::threadblock::VisitorRowBroadcast<ThreadMap, float, PerColStride>;
  using Bias = std::conditional_t<kBiasPerRow, PerRow, PerCol>;
  template <template <class> class Fn, typename T>
  using Compute = cutlass::epilogue::threadblock::VisitorCompute<Fn, T, float, cutlass::FloatRoundStyle::round_to_nearest>;

  using Scale = EVT<Compute<cutlass::multiplies, float>, PerRow, PerCol>;
  using Scaled = EVT<Compute<cutlass::multiplies, float>, cutlass::epilogue::threadblock::VisitorAccFetch, Scale>;
  using Biased = EVT<Compute<cutlass::plus, Out>, Scaled, Bias>;
  using Store = cutlass::epilogue::threadblock::VisitorAuxStore<ThreadMap, Out, cutlass::FloatRoundStyle::round_to_nearest,
                                                                cute::Stride<int64_t, cute::_1, int64_t>>;
  using Tree = EVT<Store, Biased>;

  // `out` is [rows, cols] row-major.
  static typename Tree::Arguments arguments(const float* row_scale, const float* col_scale, const float* bias, Out* out,
                                            int64_t rows, int64_t cols) {
    using cute::_0;
    using cute::_1;
    typename Bias::Arguments bias_args;
    if constexpr (kBiasPerRow) {
      bias_args = {bias, 0.0f, {_1{}, _0{}, rows}};
    } else {
      bias_args = {bias, 0.0f, {_0{}, _1{}, cols}};
    }
    return {
        {
            {
                {},                                                                                // accumulator
                {{row_scale, 1.0f, {_1{}, _0{}, rows}}, {col_scale, 1.0f, {_0{}, _1{}, cols}}, {}},  // scale
                {},                                                                                // multiplies
            },
            bias_args,
            {},  // plus
        },
        {out, {cols, _1{}, rows * cols}},  // store
    };
  }
};

}  // namespace bigaccel::cutlass_gemm
