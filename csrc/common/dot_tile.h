// Register-blocked GEMM in dot-product form, written once for every ISA:
// out[m][n] = sum_k A[m][k] * B[n][k], with A [M, K] and B [N, K] both
// K-contiguous (B is a linear layer's weight as stored: no prepacking, so one
// copy of the weight serves every backend). Each MR x NR tile keeps MR*NR
// vector accumulators over the whole K and reduces them once at the end; the
// epilogue receives every finished element.
//
// A policy P supplies the vector types: kBytes (elements per step), Acc, zero(),
// load_a(p[, n]), load_b(p[, n]), dot(acc, a, b), reduce(acc), and the register tile
// kTileM x kTileN that fits the ISA's register file. See vec.h.
#pragma once

#include "common/vec.h"

namespace bigaccel::BIGACCEL_ISA_NS {

// fp32 activations against int8 weights (W8A16): fma over widened int8.
struct DotF32S8 {
  static constexpr int kBytes = VecF::kWidth;
#if BIGACCEL_VEC_LEVEL == BIGACCEL_ISA_AVX2
  static constexpr int kTileM = 2, kTileN = 4;  // 8 accumulators + 5 operands of 16 ymm
#else
  static constexpr int kTileM = 4, kTileN = 4;
#endif
  using Acc = VecF;
  using A = VecF;
  using B = VecF;
  static Acc zero() { return VecF::zero(); }
  static A load_a(const float* p) { return VecF::load(p); }
  static A load_a(const float* p, int n) { return VecF::load(p, n); }
  static B load_b(const int8_t* p) { return VecF::load(p); }
  static B load_b(const int8_t* p, int n) { return VecF::load(p, n); }
  static Acc dot(Acc acc, A a, B b) { return fma(a, b, acc); }
  static float reduce(Acc acc) { return acc.reduce_add(); }
};

template <class P, int MR, int NR, typename TA, typename Sum>
static inline void dot_tile(const TA* a, int64_t lda, const int8_t* b, int64_t ldb, int64_t K, Sum (&out)[MR][NR]) {
  typename P::Acc acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = P::zero();
  int64_t k = 0;
  for (; k + P::kBytes <= K; k += P::kBytes) {
    typename P::B vb[NR];
    for (int j = 0; j < NR; ++j) vb[j] = P::load_b(b + j * ldb + k);
    // Warm the next tile's weight rows (into L2) while this one computes: at small M
    // each row is read once, and hardware prefetchers stop at every 4 KiB page, so
    // without this a GEMV waits on DRAM latency with only NR streams in flight.
    // (Past the last row it is harmless: prefetches never fault.)
    for (int j = 0; j < NR; ++j) __builtin_prefetch(b + (NR + j) * ldb + k, 0, 2);
    for (int i = 0; i < MR; ++i) {
      const typename P::A va = P::load_a(a + i * lda + k);
      for (int j = 0; j < NR; ++j) acc[i][j] = P::dot(acc[i][j], va, vb[j]);
    }
  }
  if (k < K) {
    const int n = int(K - k);
    typename P::B vb[NR];
    for (int j = 0; j < NR; ++j) vb[j] = P::load_b(b + j * ldb + k, n);
    for (int i = 0; i < MR; ++i) {
      const typename P::A va = P::load_a(a + i * lda + k, n);
      for (int j = 0; j < NR; ++j) acc[i][j] = P::dot(acc[i][j], va, vb[j]);
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) out[i][j] = P::reduce(acc[i][j]);
}

// Runs the tile for the runtime edge sizes mr <= MR, nr <= NR (each size its own
// fully unrolled instantiation), then hands the results to epi(m, n, value).
template <class P, int MR, int NR, typename TA, typename Epi>
static void dot_tile_edge(int mr, int nr, const TA* a, int64_t lda, const int8_t* b, int64_t ldb, int64_t K, int64_t m,
                          int64_t n, Epi& epi) {
  if constexpr (MR > 1)
    if (mr < MR) return dot_tile_edge<P, MR - 1, NR>(mr, nr, a, lda, b, ldb, K, m, n, epi);
  if constexpr (NR > 1)
    if (nr < NR) return dot_tile_edge<P, MR, NR - 1>(mr, nr, a, lda, b, ldb, K, m, n, epi);
  decltype(P::reduce(P::zero())) out[MR][NR];
  dot_tile<P, MR, NR>(a, lda, b, ldb, K, out);
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) epi(m + i, n + j, out[i][j]);
}

// Rows [0, M) x columns [n_begin, n_end). Rows are taken `mc` at a time so that
// block of A stays in L2 while the B rows stream past it.
template <class P, int MR, int NR, typename TA, typename Epi>
static void dot_gemm(const TA* a, int64_t lda, int64_t M, const int8_t* b, int64_t ldb, int64_t n_begin, int64_t n_end,
                     int64_t K, int64_t mc, Epi& epi) {
  for (int64_t m0 = 0; m0 < M; m0 += mc) {
    const int64_t m1 = m0 + mc < M ? m0 + mc : M;
    for (int64_t n = n_begin; n < n_end; n += NR) {
      const int nr = int(n_end - n < NR ? n_end - n : NR);
      for (int64_t m = m0; m < m1; m += MR) {
        const int mr = int(m1 - m < MR ? m1 - m : MR);
        dot_tile_edge<P, MR, NR>(mr, nr, a + m * lda, lda, b + n * ldb, ldb, K, m, n, epi);
      }
    }
  }
}

// Enough rows of A to fill ~256 KiB of L2, a whole number of tiles.
static inline int64_t rows_per_block(int64_t K, int64_t elem_bytes, int mr) {
  int64_t rows = (256 * 1024) / (K * elem_bytes + 1);
  rows -= rows % mr;
  return rows < mr ? mr : rows;
}

// The W8A8 epilogue of bigaccel.reference.int8_mm for DotU8S8 sums, which include
// kOffsetA * sum_k w: out[m][n] = float(acc) * (a_scale[m] * w_scale[n]) + bias[n].
template <typename T>
struct W8A8Epilogue {
  const float* a_scale;
  const float* w_scale;
  const int32_t* w_sum;
  const float* bias;
  T* out;
  int64_t N;
  void operator()(int64_t m, int64_t n, int32_t acc) const {
    const float v = float(acc - DotU8S8::kOffsetA * w_sum[n]) * (a_scale[m] * w_scale[n]);
    from_float(bias ? v + bias[n] : v, out + m * N + n);
  }
};

}  // namespace bigaccel::BIGACCEL_ISA_NS
