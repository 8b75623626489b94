// The Hopper W8A8 GEMM's CUTLASS 3.x kernels (see hopper_w8a8.cu for the numerics),
// instantiated once per output dtype in hopper_w8a8_{f32,bf16,f16}.cu: each output
// dtype is two large CUTLASS kernels, and one file per dtype lets the build compile
// them in parallel (one file for all six took ~4.5 minutes on a 2-core machine).
// Included by those three files alone.
#pragma once

#include <cute/tensor.hpp>
#include <cutlass/cutlass.h>
#include <cutlass/epilogue/collective/collective_builder.hpp>
#include <cutlass/epilogue/fusion/sm90_visitor_tma_warpspecialized.hpp>
#include <cutlass/gemm/collective/collective_builder.hpp>
#include <cutlass/gemm/device/gemm_universal_adapter.h>
#include <cutlass/gemm/kernel/gemm_universal.hpp>

#include "int8_gemm/hopper_w8a8_kernels.h"

namespace bigaccel::hopper_w8a8 {
namespace detail {

using namespace cute;
namespace fusion = cutlass::epilogue::fusion;
constexpr auto kRound = cutlass::FloatRoundStyle::round_to_nearest;

template <typename Out, typename TileShape, typename ClusterShape, typename KernelSchedule, typename EpilogueSchedule>
struct ScaledInt8Gemm {
  // The leaves of the tree. The scales and the bias are read straight from global
  // memory by the epilogue warps (no TMA, no smem pipeline: Stages = 0), masked at
  // the M and N edges, so M and N need no tile multiple.
  using Acc = fusion::Sm90AccFetch;  // the int32 accumulator, converted to fp32 (round to nearest) by its parent
  using AScale = fusion::Sm90ColBroadcast<0, TileShape, float, float, Stride<_1, _0, _0>>;  // one per row m
  using WScale = fusion::Sm90RowBroadcast<0, TileShape, float, float, Stride<_0, _1, _0>>;  // one per column n
  using Bias = fusion::Sm90RowBroadcast<0, TileShape, float, float, Stride<_0, _1, _0>>;    // null -> null_default

  // s = a_scale[m] * w_scale[n] in fp32, then out = convert<Out>(fma(float(acc), s, bias[n])).
  using Scale = fusion::Sm90EVT<fusion::Sm90Compute<cutlass::multiplies, float, float, kRound>, AScale, WScale>;
  using Epilogue =
      fusion::Sm90EVT<fusion::Sm90Compute<cutlass::homogeneous_multiply_add, Out, float, kRound>, Acc, Scale, Bias>;

  // 16-byte vectors of the output for the TMA store (4 fp32 or 8 bf16/fp16).
  static constexpr int kAlignOut = 128 / cutlass::sizeof_bits<Out>::value;
  using CollectiveEpilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, TileShape, ClusterShape,
      cutlass::epilogue::collective::EpilogueTileAuto, int32_t, float,  // accumulator, compute
      void, cutlass::layout::RowMajor, kAlignOut,                       // no C
      Out, cutlass::layout::RowMajor, kAlignOut,                        // D = out [M, N]
      EpilogueSchedule, Epilogue>::CollectiveOp;

  // As many smem stages of A and B as fit beside the epilogue's own smem.
  using CollectiveMainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp,
      int8_t, cutlass::layout::RowMajor, 16,     // A = activations [M, K]
      int8_t, cutlass::layout::ColumnMajor, 16,  // B = weight [N, K] as K x N
      int32_t, TileShape, ClusterShape,
      cutlass::gemm::collective::StageCountAutoCarveout<static_cast<int>(
          sizeof(typename CollectiveEpilogue::SharedStorage))>,
      KernelSchedule>::CollectiveOp;

  // Pingpong and Cooperative are persistent kernels: one CTA per SM walking the tiles.
  using Kernel = cutlass::gemm::kernel::GemmUniversal<Shape<int, int, int, int>, CollectiveMainloop,
                                                      CollectiveEpilogue, cutlass::gemm::PersistentScheduler>;
  using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;

  static typename Gemm::Arguments arguments(const int8_t* a, const float* a_scale, const int8_t* w,
                                            const float* w_scale, const float* bias, Out* out, int64_t M, int64_t N,
                                            int64_t K) {
    // Packed strides (M-mode, N-or-K-mode, batch); the batch count is 1.
    typename Kernel::StrideA stride_a{K, _1{}, M * K};
    typename Kernel::StrideB stride_b{K, _1{}, N * K};
    typename Kernel::StrideD stride_d{N, _1{}, M * N};
    // Each Sm90EVT<Op, Child0, Child1, ...> takes {Child0 args, Child1 args, ..., Op args}:
    // the children in the order they are listed, the node's own op last.
    typename Epilogue::Arguments evt{
        // Epilogue = Sm90EVT<fma -> Out, Acc, Scale, Bias>
        {},  // Acc    (Sm90AccFetch: no arguments)
        {
            // Scale = Sm90EVT<multiplies, AScale, WScale>
            {a_scale, 0.0f, {}},  // AScale (Sm90ColBroadcast: ptr, null default, stride)
            {w_scale, 0.0f, {}},  // WScale (Sm90RowBroadcast: ptr, null default, stride)
            {},                   // multiplies
        },
        // Bias (Sm90RowBroadcast). A null pointer reads null_default everywhere: -0 is the
        // identity of the add (x + -0 == x, signed zeros included), so with no bias the
        // result is acc * s rounded once, bit for bit what the reference computes.
        {bias, -0.0f, {}},
        {},  // homogeneous_multiply_add
    };
    typename Gemm::Arguments args{cutlass::gemm::GemmUniversalMode::kGemm,
                                  {static_cast<int>(M), static_cast<int>(N), static_cast<int>(K), 1},
                                  {a, stride_a, w, stride_b},
                                  {evt, nullptr, stride_d, out, stride_d}};  // no C: null pointer, D's stride
    return args;
  }

  static size_t workspace_bytes(int64_t M, int64_t N, int64_t K) {
    return Gemm::get_workspace_size(arguments(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, M, N, K));
  }

  static cudaError_t run(const int8_t* a, const float* a_scale, const int8_t* w, const float* w_scale,
                         const float* bias, Out* out, int64_t M, int64_t N, int64_t K, void* workspace,
                         size_t workspace_bytes, cudaStream_t stream) {
    typename Gemm::Arguments args = arguments(a, a_scale, w, w_scale, bias, out, M, N, K);
    // The persistent grid is sized to the SM count of this device (CUTLASS queries it).
    int device = 0;
    if (cudaError_t e = cudaGetDevice(&device); e != cudaSuccess) return e;
    args.hw_info.device_id = device;
    Gemm gemm;
    if (gemm.can_implement(args) != cutlass::Status::kSuccess) return cudaErrorInvalidValue;
    if (Gemm::get_workspace_size(args) > workspace_bytes) return cudaErrorInvalidValue;
    if (gemm.initialize(args, workspace, stream) != cutlass::Status::kSuccess) return cudaErrorInvalidValue;
    if (gemm.run(stream) != cutlass::Status::kSuccess) {
      const cudaError_t e = cudaGetLastError();
      return e != cudaSuccess ? e : cudaErrorLaunchFailure;
    }
    return cudaGetLastError();
  }
};

// Tiles and clusters are the defaults CUTLASS's profiler generates for sm90 s8
// (cutlass_library: the int8 wgmma 64x128x32 times the level-0 multipliers (1,1,4)
// and (2,1,4), with clusters 1x2x1 and 2x1x1), and each schedule is the one the
// collective builder's KernelScheduleAuto picks for that tile: Pingpong for a
// 64-row tile, Cooperative for a 128-row one (Cooperative needs M tile >= 128).
//
// Few rows (decode batches, M <= 64): one 64-row tile covers all of M, each CTA
// streams a 128-column slab of the weight, 128 deep in K. Pingpong gives the two
// consumer warpgroups a tile each, so one's epilogue hides under the other's
// mainloop. The 1x2 cluster multicasts the shared A tile to the two CTAs of
// neighbouring N tiles; a 2x1 cluster would pair the one M tile with an idle CTA.
template <typename Out>
using SmallM = ScaledInt8Gemm<Out, Shape<_64, _128, _128>, Shape<_1, _2, _1>,
                              cutlass::gemm::KernelTmaWarpSpecializedPingpong, cutlass::epilogue::TmaWarpSpecialized>;
// Many rows: a 128x128 tile split between the two consumer warpgroups (64 int32
// accumulators a thread), the 2x1 cluster multicasting each weight tile to the two
// CTAs of neighbouring M tiles, which halves the weight's L2 traffic.
template <typename Out>
using LargeM = ScaledInt8Gemm<Out, Shape<_128, _128, _128>, Shape<_2, _1, _1>,
                              cutlass::gemm::KernelTmaWarpSpecializedCooperative,
                              cutlass::epilogue::TmaWarpSpecializedCooperative>;

constexpr int64_t kSmallM = 64;

template <DType kOut> struct OutElement;
template <> struct OutElement<DType::F32> { using type = float; };
template <> struct OutElement<DType::BF16> { using type = cutlass::bfloat16_t; };
template <> struct OutElement<DType::F16> { using type = cutlass::half_t; };

}  // namespace detail

template <DType kOut>
cudaError_t run_as(const int8_t* a, const float* a_scale, const int8_t* w, const float* w_scale, const float* bias,
                   void* out, int64_t M, int64_t N, int64_t K, void* workspace, size_t workspace_bytes,
                   cudaStream_t stream) {
  using Out = typename detail::OutElement<kOut>::type;
  using namespace detail;
  auto* o = static_cast<Out*>(out);
  if (M <= kSmallM)
    return SmallM<Out>::run(a, a_scale, w, w_scale, bias, o, M, N, K, workspace, workspace_bytes, stream);
  return LargeM<Out>::run(a, a_scale, w, w_scale, bias, o, M, N, K, workspace, workspace_bytes, stream);
}

template <DType kOut>
size_t workspace_as(int64_t M, int64_t N, int64_t K) {
  using Out = typename detail::OutElement<kOut>::type;
  using namespace detail;
  return M <= kSmallM ? SmallM<Out>::workspace_bytes(M, N, K) : LargeM<Out>::workspace_bytes(M, N, K);
}


}  // namespace bigaccel::hopper_w8a8
