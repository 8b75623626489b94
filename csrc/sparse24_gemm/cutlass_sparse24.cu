// 2:4 sparse tensor-core GEMMs on CUTLASS 2.x (sm80 mma.sp kernels, which also run on
// sm86/89/90): bf16/fp16 with fp32 accumulation, and int8 with int32 accumulation and
// the W8A8 scales; both with the epilogue of common/cutlass_gemm.h.
// Written without a GPU: the callers use it only with BIGACCEL_UNVERIFIED_KERNELS=1
// until tests/test_gpu.py has passed on one.
#include <cutlass/cutlass.h>
#include <cutlass/gemm/device/gemm_sparse_with_visitor.h>
#include <cutlass/epilogue/threadblock/fusion/visitors.hpp>

#include "common/cutlass_gemm.h"
#include "sparse24_gemm/cutlass_sparse24.h"

namespace bigaccel::cutlass_sparse24 {
namespace {

using cutlass::gemm::GemmShape;

// The weight's rows are the GEMM's rows: w_scale and bias per row, a_scale per column.
template <typename In, typename Acc, typename Out, typename Tile, typename Warp, typename Instr, typename MathOp>
struct SparseGemm {
  using Epilogue = cutlass_gemm::ScaledBias<Tile, Warp, Out, /*kBiasPerRow=*/true>;
  static constexpr int kAlign = 128 / cutlass::sizeof_bits<In>::value;
  using Gemm = cutlass::gemm::device::SparseGemmWithVisitor<
      In, cutlass::layout::RowMajor,     // A = compressed weight values [N, K/2]
      In, cutlass::layout::ColumnMajor,  // B = activations [M, K] as K x M
      float, cutlass::layout::RowMajor, Acc, cutlass::arch::OpClassTensorOp, cutlass::arch::Sm80, Tile, Warp, Instr,
      typename Epilogue::Tree, cutlass::gemm::threadblock::GemmIdentityThreadblockSwizzle<8>, 3, kAlign, kAlign,
      MathOp, 1>;
  using ElementE = typename Gemm::ElementE;
  using LayoutE = typename Gemm::LayoutE;

  static cudaError_t run(const In* x, const In* values, const void* meta, const float* row_scale,
                         const float* col_scale, const float* bias, Out* d, int64_t M, int64_t N, int64_t K,
                         cudaStream_t stream) {
    const int64_t meta_cols = K / 2 / Gemm::kElementsPerElementE;
    typename Gemm::Arguments args(
        {static_cast<int>(N), static_cast<int>(M), static_cast<int>(K)},
        {values, cutlass::layout::RowMajor(K / 2)}, {x, cutlass::layout::ColumnMajor(K)},
        {static_cast<ElementE*>(const_cast<void*>(meta)), LayoutE::packed({static_cast<int>(N), static_cast<int>(meta_cols)})},
        Epilogue::arguments(row_scale, col_scale, bias, d, N, M));
    return cutlass_gemm::run_gemm<Gemm>(args, stream);
  }
};

template <typename T>
using FloatGemm = SparseGemm<T, float, T, GemmShape<128, 128, 64>, GemmShape<64, 64, 64>, GemmShape<16, 8, 32>,
                             cutlass::arch::OpMultiplyAdd>;
template <typename Out>
using Int8Gemm = SparseGemm<int8_t, int32_t, Out, GemmShape<128, 128, 128>, GemmShape<64, 64, 128>,
                            GemmShape<16, 8, 64>, cutlass::arch::OpMultiplyAddSaturate>;

constexpr int64_t kFloatBlockK = 64, kInt8BlockK = 128;

// CUTLASS's reorder_meta (tools/util/host_reorder.h): rows are interleaved in blocks
// of 32 (16-bit words) or 16 (32-bit words), 2x2 blocks of words swizzled from Z to
// N order, then stored ColumnMajorInterleaved<2>.
__host__ __device__ inline int64_t meta_offset(int64_t row, int64_t col, int64_t rows, bool int8) {
  const int64_t group = int8 ? 16 : 32, interweave = int8 ? 2 : 4;
  int64_t r = row / group * group + (row % 8) * interweave + (row % group) / 8;
  int64_t c = col;
  if (r % 2 == 0 && c % 2 == 1) {
    ++r;
    --c;
  } else if (r % 2 == 1 && c % 2 == 0) {
    --r;
    ++c;
  }
  return (c / 2) * (rows * 2) + r * 2 + (c % 2);
}

template <typename Word>
__global__ void reorder_meta_kernel(const Word* __restrict__ src, Word* __restrict__ dst, int64_t rows, int64_t cols,
                                    bool int8) {
  const int64_t total = rows * cols;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    dst[meta_offset(i / cols, i % cols, rows, int8)] = src[i];
  }
}

template <typename T>
cudaError_t run_float_typed(const void* x, const void* values, const void* meta, const float* bias, void* d,
                            int64_t M, int64_t N, int64_t K, cudaStream_t stream) {
  return FloatGemm<T>::run(static_cast<const T*>(x), static_cast<const T*>(values), meta, nullptr, nullptr, bias,
                           static_cast<T*>(d), M, N, K, stream);
}

template <typename Out>
cudaError_t run_int8_typed(const int8_t* a, const float* a_scale, const int8_t* values, const void* meta,
                           const float* w_scale, const float* bias, void* d, int64_t M, int64_t N, int64_t K,
                           cudaStream_t stream) {
  return Int8Gemm<Out>::run(a, values, meta, w_scale, a_scale, bias, static_cast<Out*>(d), M, N, K, stream);
}

}  // namespace

bool supports(int64_t N, int64_t K, bool int8) {
  const int64_t limit = int64_t(1) << 30;
  return N % (int8 ? 16 : 32) == 0 && K % (int8 ? kInt8BlockK : kFloatBlockK) == 0 && N > 0 && N < limit && K < limit;
}

int64_t token_multiple(bool int8) { return int8 ? 16 : 8; }

int64_t reordered_meta_offset(int64_t row, int64_t col, int64_t rows, bool int8) {
  return meta_offset(row, col, rows, int8);
}

cudaError_t reorder_meta(const uint8_t* meta, void* reordered, int64_t N, int64_t K, bool int8, cudaStream_t stream) {
  if (!supports(N, K, int8)) return cudaErrorNotSupported;
  const int64_t cols = K / 8 / (int8 ? 4 : 2), total = N * cols;
  const int threads = 256;
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>((total + threads - 1) / threads, 65535));
  if (int8) {
    reorder_meta_kernel<uint32_t><<<blocks, threads, 0, stream>>>(reinterpret_cast<const uint32_t*>(meta),
                                                                  static_cast<uint32_t*>(reordered), N, cols, true);
  } else {
    reorder_meta_kernel<uint16_t><<<blocks, threads, 0, stream>>>(reinterpret_cast<const uint16_t*>(meta),
                                                                  static_cast<uint16_t*>(reordered), N, cols, false);
  }
  return cudaGetLastError();
}

cudaError_t run_float(const void* x, const void* values, const void* meta_reordered, const float* bias, void* d,
                      DType dtype, int64_t M, int64_t N, int64_t K, cudaStream_t stream) {
  if (!supports(N, K, false) || M % token_multiple(false)) return cudaErrorNotSupported;
  switch (dtype) {
    case DType::BF16:
      return run_float_typed<cutlass::bfloat16_t>(x, values, meta_reordered, bias, d, M, N, K, stream);
    case DType::F16:
      return run_float_typed<cutlass::half_t>(x, values, meta_reordered, bias, d, M, N, K, stream);
    case DType::F32:  // the fp32 sparse tensor cores are tf32 with a 1:2 pattern, not 2:4
      break;
  }
  return cudaErrorNotSupported;
}

cudaError_t run_int8(const int8_t* a, const float* a_scale, const int8_t* values, const void* meta_reordered,
                     const float* w_scale, const float* bias, void* d, DType out_dtype, int64_t M, int64_t N,
                     int64_t K, cudaStream_t stream) {
  if (!supports(N, K, true) || M % token_multiple(true)) return cudaErrorNotSupported;
  switch (out_dtype) {
    case DType::F32:
      return run_int8_typed<float>(a, a_scale, values, meta_reordered, w_scale, bias, d, M, N, K, stream);
    case DType::BF16:
      return run_int8_typed<cutlass::bfloat16_t>(a, a_scale, values, meta_reordered, w_scale, bias, d, M, N, K, stream);
    case DType::F16:
      return run_int8_typed<cutlass::half_t>(a, a_scale, values, meta_reordered, w_scale, bias, d, M, N, K, stream);
  }
  return cudaErrorNotSupported;
}

}  // namespace bigaccel::cutlass_sparse24
