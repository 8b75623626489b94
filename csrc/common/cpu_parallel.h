// Host-side helpers shared by the CPU GEMM entry points (cpu.cpp files, not the ISA kernels).
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <optional>
#include <vector>

#include "activations/epilogue.h"
#include "common/act_i16.h"
#include "common/cpu_isa.h"

namespace bigaccel {

// fn(n_begin, n_end) over the N output columns, split over threads in chunks of `chunk`
// (a whole number of the kernel's column tiles). Problems under ~1M multiply-adds run on
// one thread: waking the pool costs more than they do.
template <typename Fn>
void parallel_over_columns(int64_t M, int64_t N, int64_t K, int64_t chunk, const Fn& fn) {
  const int64_t chunks = (N + chunk - 1) / chunk;
  const int64_t grain = M * N * K < (1 << 20) ? chunks : 1;
  at::parallel_for(0, chunks, grain, [&](int64_t begin, int64_t end) { fn(begin * chunk, std::min(N, end * chunk)); });
}

// As above, then the epilogue activation (if any): each thread activates, in place, the
// columns it has just written, while they are still in its cache (L2 for small M, the
// last-level cache at M = 256 of a 4096 x 11008 layer). Not in smaller slices: the int8
// kernels set up per call (packing and cache blocking), which slicing repeated (seen:
// 0.84x at M = 256).
template <typename Fn>
void parallel_over_columns(int64_t M, int64_t N, int64_t K, int64_t chunk, const activations::Epilogue& epilogue,
                           const Fn& fn) {
  parallel_over_columns(M, N, K, chunk, [&](int64_t n0, int64_t n1) {
    fn(n0, n1);
    epilogue.cpu_columns(n0, n1);
  });
}

// The large-M path of the weight-only GEMMs with fp32 x (bf16 x on AVX512_BF16 CPUs takes
// common/rowvec_gemm.h instead): per block of kSgemmBlockN output columns, fill(n0, nb, tile)
// writes the block's weight rows into the fp32 tile [nb, K] (cache resident), torch's fp32 GEMM
// multiplies x32 [M, K] by it (it blocks over M and K, which a register tile streaming all of x
// per few columns does not), then finish_column_block applies the per-column scale if any.
// From this M the weight-only GEMMs take this path; 512 columns of fp32 weight are 8 MiB at
// K = 4096, resident in the last-level cache.
constexpr int64_t kSgemmMinRows = 128;
constexpr int64_t kSgemmBlockN = 512;

// Whether this call runs the bf16 kernels (vdpbf16ps tiles, then common/rowvec_gemm.h): bf16 x,
// M >= min_rows and a CPU with AVX512_BF16, whose vdpbf16ps does twice the work of an fp32 FMA.
inline bool use_bf16_kernels(const at::Tensor& x, int64_t min_rows) {
  return x.scalar_type() == at::kBFloat16 && x.size(0) >= min_rows && cpu::has_avx512_bf16();
}

// Columns [n0, n0 + nb) of out from their fp32 sums acc [M, nb], in the reference's order:
// times `scale` (broadcast against acc) if given, plus the fp32 bias, the epilogue activation,
// then one rounding into out. Shared by every large-M path that gets its sums from torch.
inline void finish_column_block(at::Tensor& acc, const std::optional<at::Tensor>& scale,
                                const std::optional<at::Tensor>& bias_f32, std::optional<Act> act, at::Tensor& out,
                                int64_t n0, const char* op) {
  const int64_t nb = acc.size(1);
  if (scale) acc.mul_(*scale);
  if (bias_f32) acc.add_(bias_f32->narrow(0, n0, nb));
  activations::make_epilogue(act, acc, op).cpu_all();
  out.narrow(1, n0, nb).copy_(acc);
}

template <typename Fill>
void weight_blocks_gemm(const at::Tensor& x32, at::Tensor& out, const Fill& fill,
                        const std::optional<at::Tensor>& column_scale, const std::optional<at::Tensor>& bias_f32,
                        std::optional<Act> act, const char* op) {
  TORCH_INTERNAL_ASSERT(x32.scalar_type() == at::kFloat, "weight_blocks_gemm takes fp32 x");
  const int64_t N = out.size(1), K = x32.size(1);
  // Allocated once: a fresh multi-MiB buffer per block would be fresh pages every time.
  at::Tensor tile = at::empty({std::min(N, kSgemmBlockN), K}, x32.options());
  for (int64_t n0 = 0; n0 < N; n0 += kSgemmBlockN) {
    const int64_t nb = std::min(N, n0 + kSgemmBlockN) - n0;
    at::Tensor block = tile.narrow(0, 0, nb);
    fill(n0, nb, block);
    at::Tensor acc = at::mm(x32, block.t());
    finish_column_block(acc, column_scale ? std::optional<at::Tensor>(column_scale->narrow(0, n0, nb)) : std::nullopt,
                        bias_f32, act, out, n0, op);
  }
}

// Whether a weight-only GEMV (or, given its max_rows, GEMM) takes the int16 activations of
// common/act_i16.h: bf16/fp16 x, M <= max_rows, an x86 tier. The kernels are AVX2; the
// AVX-512 tier takes them too, as its float GEMVs spend the same conversions per weight
// (16 lanes wide, on fewer ports).
inline bool use_i16_activations(DType x_dtype, int64_t M, int64_t max_rows = kI16MaxRows) {
  return x_dtype != DType::F32 && M <= max_rows && cpu::active_isa() != cpu::Isa::Portable;
}

// The int16 activations of common/act_i16.h for one call: quantized once, before the
// threads split the columns.
class I16Buffers {
 public:
  // x [M, K] contiguous, bf16 or fp16; q sums per `sub` k only if with_sums.
  I16Buffers(int64_t M, int64_t K, int64_t sub, bool with_sums)
      : M_(M), K_(K), sub_(sub), padded_(i16_padded_k(K)), q_(M * padded_), scale_(M * (padded_ / sub)),
        qsum_(with_sums ? M * (padded_ / sub) : 0) {}
  // False (and the buffers unusable) if x holds an inf or a nan.
  bool quantize(const void* x, DType dtype, int quad_chunk) {
    return avx2::quantize_rows_i16(x, dtype, M_, K_, sub_, quad_chunk, q_.data(), scale_.data(),
                                   qsum_.empty() ? nullptr : qsum_.data());
  }
  I16Rows rows() const {
    return {q_.data(), scale_.data(), qsum_.empty() ? nullptr : qsum_.data(), padded_, padded_ / sub_};
  }

 private:
  int64_t M_, K_, sub_, padded_;
  std::vector<int16_t> q_;
  std::vector<float> scale_, qsum_;
};

}  // namespace bigaccel
