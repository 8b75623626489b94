// Register-blocked GEMM in dot-product form, written once for every ISA:
// out[m][n] = sum_k A[m][k] * B[n][k], with A [M, K] and B [N, K] both
// K-contiguous (B is a linear layer's weight as stored: no prepacking, so one
// copy of the weight serves every backend). Each MR x NR tile keeps MR*NR
// vector accumulators over the whole K and reduces them once at the end; the
// epilogue receives every finished element.
//
// A policy P supplies the vector types: kBytes (elements per step), Acc, zero(),
// load_a(p[, n]), load_b(p[, n]), dot(acc, a, b), add(acc, acc), reduce(acc), and the register tile
// kTileM x kTileN that fits the ISA's register file. See vec.h.
#pragma once

#include <type_traits>

#include "common/vec.h"

namespace bigaccel::BIGACCEL_ISA_NS {

// fp32 activations against int8 weights (W8A16): fma over widened int8.
struct DotF32S8 {
  static constexpr bool kPrefetchB = true;
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
  static Acc add(Acc a, Acc b) { return a + b; }
  static float reduce(Acc acc) { return acc.reduce_add(); }
};

// Where a tile finds row i of A at k (a multiple of the policy's kBytes, or the tail):
// - rows as stored: a + i * lda + k;
// - panels (pack_panels below): each MR-row panel holds, per kBytes chunk of k, that chunk
//   of each of its rows in turn, so that a tile reads A as one sequential stream. With rows
//   K apart, a tile's MR row streams came from L2 once A outgrew L1 (int4's bf16 tiles, one
//   Zen 5 core, 4096 x 4096: 1.15-1.3x from panels at M = 16-32).
template <typename TA, int kChunk>
struct ARows {
  const TA* a;
  int64_t row_step, chunk_step;
  const TA* at(int i, int64_t k) const {  // k >= 0: unsigned, so / and % are a shift and a mask
    return a + i * row_step + int64_t(uint64_t(k) / kChunk) * chunk_step + int64_t(uint64_t(k) % kChunk);
  }
};

static inline int64_t round_up(int64_t v, int64_t multiple) { return (v + multiple - 1) / multiple * multiple; }

// Elements of the panels of an [M, K] A: whole panels of MR rows, K rounded up to kChunk.
static inline int64_t panel_elems(int64_t M, int64_t K, int MR, int chunk) { return round_up(M, MR) * round_up(K, chunk); }

// `bytes` from p on their way into L2, one prefetch per cache line: the weight rows of the next
// block, asked for while this one computes (hardware prefetchers stop at every 4 KiB page).
static inline void prefetch_l2(const void* p, int64_t bytes) {
  for (int64_t i = 0; i < bytes; i += 64) __builtin_prefetch(static_cast<const char*>(p) + i, 0, 2);
}

// A [M, K] (row stride lda) into panels of MR rows; the tail of K and of the last panel
// are zero (the policies' masked B loads zero the tail's products either way).
template <int MR, int kChunk, typename TA>
static void pack_panels(const TA* a, int64_t lda, int64_t M, int64_t K, TA* panels) {
  const int64_t kp = round_up(K, kChunk);
  for (int64_t m = 0; m < round_up(M, MR); ++m) {
    TA* dst = panels + (m / MR) * MR * kp + (m % MR) * kChunk;
    for (int64_t k = 0; k < kp; k += kChunk) {
      const int64_t n = m < M ? (K - k < kChunk ? K - k : kChunk) : 0;
      if (n > 0) std::memcpy(dst + (k / kChunk) * MR * kChunk, a + m * lda + k, size_t(n) * sizeof(TA));
      if (n < kChunk) std::memset(dst + (k / kChunk) * MR * kChunk + n, 0, size_t(kChunk - n) * sizeof(TA));
    }
  }
}

template <class P, int MR, int NR, typename TA, typename TB, typename Sum>
static inline void dot_tile(ARows<TA, P::kBytes> a, const TB* b, int64_t ldb, int64_t K, Sum (&out)[MR][NR]) {
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
    if constexpr (P::kPrefetchB)
      for (int j = 0; j < NR; ++j) __builtin_prefetch(b + (NR + j) * ldb + k, 0, 2);
    for (int i = 0; i < MR; ++i) {
      const typename P::A va = P::load_a(a.at(i, k));
      for (int j = 0; j < NR; ++j) acc[i][j] = P::dot(acc[i][j], va, vb[j]);
    }
  }
  if (k < K) {
    const int n = int(K - k);
    typename P::B vb[NR];
    for (int j = 0; j < NR; ++j) vb[j] = P::load_b(b + j * ldb + k, n);
    for (int i = 0; i < MR; ++i) {
      const typename P::A va = P::load_a(a.at(i, k), n);
      for (int j = 0; j < NR; ++j) acc[i][j] = P::dot(acc[i][j], va, vb[j]);
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) out[i][j] = P::reduce(acc[i][j]);
}

// Runs the tile for the runtime edge sizes mr <= MR, nr <= NR (each size its own
// fully unrolled instantiation), then hands the results to epi(m, n, value).
template <class P, int MR, int NR, typename TA, typename TB, typename Epi>
static void dot_tile_edge(int mr, int nr, ARows<TA, P::kBytes> a, const TB* b, int64_t ldb, int64_t K, int64_t m,
                          int64_t n, Epi& epi) {
  if constexpr (MR > 1)
    if (mr < MR) return dot_tile_edge<P, MR - 1, NR>(mr, nr, a, b, ldb, K, m, n, epi);
  if constexpr (NR > 1)
    if (nr < NR) return dot_tile_edge<P, MR, NR - 1>(mr, nr, a, b, ldb, K, m, n, epi);
  decltype(P::reduce(P::zero())) out[MR][NR];
  dot_tile<P, MR, NR>(a, b, ldb, K, out);
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) epi(m + i, n + j, out[i][j]);
}

// Rows [0, M) x columns [n_begin, n_end), A as stored (lda) or, if `panels`, in MR-row
// panels (pack_panels). Rows are taken `mc` (a multiple of MR) at a time so that block of A
// stays in L2 while the B rows stream past it.
template <class P, int MR, int NR, typename TA, typename Epi>
static void dot_gemm(const TA* a, int64_t lda, bool panels, int64_t M, const int8_t* b, int64_t ldb, int64_t n_begin,
                     int64_t n_end, int64_t K, int64_t mc, Epi& epi) {
  constexpr int kC = P::kBytes;
  const int64_t kp = round_up(K, kC);
  for (int64_t m0 = 0; m0 < M; m0 += mc) {
    const int64_t m1 = m0 + mc < M ? m0 + mc : M;
    for (int64_t n = n_begin; n < n_end; n += NR) {
      const int nr = int(n_end - n < NR ? n_end - n : NR);
      for (int64_t m = m0; m < m1; m += MR) {
        const int mr = int(m1 - m < MR ? m1 - m : MR);
        const ARows<TA, kC> rows = panels ? ARows<TA, kC>{a + m * kp, kC, MR * kC} : ARows<TA, kC>{a + m * lda, lda, kC};
        dot_tile_edge<P, MR, NR>(mr, nr, rows, b + n * ldb, ldb, K, m, n, epi);
      }
    }
  }
}

// R (1-4) rows of A against columns [n_begin, n_end) of B, one column at a time: B is then read
// as one sequential stream (its rows are contiguous), prefetched 8 KiB ahead, where an R x NR
// tile reads NR rows K apart and prefetches the next NR. kU accumulators a row keep the dot
// products' chains independent. Int8 weights from DRAM, M = 1, Zen 5 (4096/11008 shapes):
// one thread W8A8 26-31 -> 32-36 GB/s and W8A16 bf16 24-28 -> 28-33; two threads ahead in 8
// of 9 back-to-back pairs (by 5-20%, the bandwidth moving between 38 and 66 GB/s meanwhile).
template <class P, int R, typename TA, typename Epi>
static void dot_gemv_stream(const TA* a, int64_t lda, const int8_t* b, int64_t n_begin, int64_t n_end, int64_t K,
                            Epi& epi) {
  constexpr int kC = P::kBytes, kU = R == 1 ? 4 : 2;
  constexpr int64_t dist = 8192;
  for (int64_t n = n_begin; n < n_end; ++n) {
    const int8_t* row = b + n * K;
    typename P::Acc acc[R][kU];
    for (int r = 0; r < R; ++r)
      for (int u = 0; u < kU; ++u) acc[r][u] = P::zero();
    int64_t k = 0;
    for (; k + kU * kC <= K; k += kU * kC) {
      prefetch_l2(row + k + dist, kU * kC);
      for (int u = 0; u < kU; ++u) {
        const typename P::B vb = P::load_b(row + k + u * kC);
        for (int r = 0; r < R; ++r) acc[r][u] = P::dot(acc[r][u], P::load_a(a + r * lda + k + u * kC), vb);
      }
    }
    for (; k + kC <= K; k += kC) {
      const typename P::B vb = P::load_b(row + k);
      for (int r = 0; r < R; ++r) acc[r][0] = P::dot(acc[r][0], P::load_a(a + r * lda + k), vb);
    }
    if (k < K) {
      const typename P::B vb = P::load_b(row + k, int(K - k));
      for (int r = 0; r < R; ++r) acc[r][1] = P::dot(acc[r][1], P::load_a(a + r * lda + k, int(K - k)), vb);
    }
    for (int r = 0; r < R; ++r) {
      typename P::Acc sum = P::add(acc[r][0], acc[r][1]);
      if constexpr (kU == 4) sum = P::add(sum, P::add(acc[r][2], acc[r][3]));
      epi(r, n, P::reduce(sum));
    }
  }
}

// dot_gemm over A [M, K] (row stride K) copied into panels first, by each calling thread
// (the copy is M * K elements against M * K * (columns) multiply-adds); up to 4 rows,
// dot_gemv_stream or (x past 32 KiB) tiles that read the rows as stored.
template <class P, int MR, int NR, typename TA, typename Epi>
static void dot_gemm_panels(const TA* a, int64_t M, const int8_t* b, int64_t n_begin, int64_t n_end, int64_t K,
                            int64_t mc, Epi& epi) {
  // Up to 4 rows whose x stays in L1 (32 KiB of its 48) beside the weight stream, the streaming
  // GEMV: int8 weights beyond L3, two threads, Zen 5 (2026-11-28): W8A8 M = 2-4 at K = 4096
  // 52-63 GB/s against 43-50 for the tile row; W8A16 fp32 M = 2 59-60 against 44-52, bf16 M = 2
  // 62-64 against 50-56. With more x (K = 11008 from 3 rows of int8, 2 of bf16; fp32 from 3
  // rows at K = 4096) the tile row, which reads each x vector once per 4 columns, kept 49-59
  // against 13-45.
  if (M > 1 && M <= 4 && M * K * int64_t(sizeof(TA)) > 32 * 1024)
    return dot_gemm<P, MR, NR>(a, K, false, M, b, K, n_begin, n_end, K, mc, epi);
  switch (M) {
    case 1: return dot_gemv_stream<P, 1>(a, K, b, n_begin, n_end, K, epi);
    case 2: return dot_gemv_stream<P, 2>(a, K, b, n_begin, n_end, K, epi);
    case 3: return dot_gemv_stream<P, 3>(a, K, b, n_begin, n_end, K, epi);
    case 4: return dot_gemv_stream<P, 4>(a, K, b, n_begin, n_end, K, epi);
  }
  TA* panels = new TA[size_t(panel_elems(M, K, MR, P::kBytes))];
  pack_panels<MR, P::kBytes>(a, K, M, K, panels);
  dot_gemm<P, MR, NR>(panels, K, true, M, b, K, n_begin, n_end, K, mc, epi);
  delete[] panels;
}

// Rows per tile for M > 4 rows in tiles of at most 8: the fewest tiles, the most even (5-8).
// Tiles of 8 rows convert or decode each weight vector for twice the rows of a 4-row tile.
static inline int tile_rows_5_to_8(int64_t M) {
  const int64_t tiles = (M + 7) / 8;
  return int((M + tiles - 1) / tiles);
}

// Columns per tile of that many bf16 rows: rows * columns accumulators, the columns' weight
// vectors, a vector of x and the weights' temporaries within 32 zmm.
constexpr int tile_cols_for_rows(int rows) { return rows <= 6 ? 4 : 3; }

// Calls f(std::integral_constant<int, R>) with R = tile_rows_5_to_8(M).
template <typename F>
static void with_tile_rows_5_to_8(int64_t M, F&& f) {
  switch (tile_rows_5_to_8(M)) {
    case 5: return f(std::integral_constant<int, 5>{});
    case 6: return f(std::integral_constant<int, 6>{});
    case 7: return f(std::integral_constant<int, 7>{});
    default: return f(std::integral_constant<int, 8>{});
  }
}

// Enough rows of A to fill ~256 KiB of L2, a whole number of tiles.
static inline int64_t rows_per_block(int64_t K, int64_t elem_bytes, int mr) {
  int64_t rows = (256 * 1024) / (K * elem_bytes + 1);
  rows -= rows % mr;
  return rows < mr ? mr : rows;
}

// The W8A8 epilogue of bigaccel.reference.int8_mm, in its order, for DotU8S8 sums, which include
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
    float v = float(acc - DotU8S8::kOffsetA * w_sum[n]) * (a_scale[m] * w_scale[n]);
#if defined(__x86_64__)
    // Opaque to the compiler, so that the bias is added to the rounded product, as in the
    // reference, not fused with it into an fma: every M then gives the reference's bits.
    asm("" : "+x"(v));
#endif
    from_float(bias ? v + bias[n] : v, out + m * N + n);
  }
};

}  // namespace bigaccel::BIGACCEL_ISA_NS
