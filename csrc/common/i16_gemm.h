// The blocked int16 GEMM of the weight-only GEMMs (W8A16, W4A16 with groups of 128) on x86
// with bf16/fp16 activations above the GEMVs' rows: x as int16 (common/act_i16.h, natural
// order), the weights widened to int16 (int8 values, or int4 codes minus their zero point),
// vpmaddwd into int32. AVX2 (the AVX-512 tier calls it too, as it does the GEMVs).
//
// Per kI16GemmCols weight rows and kI16GemmDepth k the weights are widened once into w16
// (16 KiB, in L1), and 2 x 4 tiles run over it for every row of x. The GEMVs' tiles widened
// the weights again for each tile of rows, and the float tiles spend an 8-wide FMA per
// multiply-add where vpmaddwd does 16 (measured on AVX2, 4096/11008-wide weights, 2 threads,
// against the float tiles: W8A16 1.23-1.36x at M = 16-127 but for one row of twelve at 1.05x,
// W4A16 g128 1.12-1.44x at M = 8-64).
// The int32 sums are flushed into fp32 every kI16Block k (x's scale block), times x's 2^e and,
// for int4, the group's scale; those fp32 accumulators live in memory (touched once per
// flush), so all 16 registers serve the tile: 8 sums, 4 weight vectors, 1 of x.
#pragma once

#include <algorithm>
#include <vector>

#include "common/act_i16.h"
#include "common/vec.h"

namespace bigaccel::BIGACCEL_ISA_NS {

#if BIGACCEL_VEC_LEVEL == BIGACCEL_ISA_AVX2
constexpr int64_t kI16GemmCols = 16, kI16GemmDepth = 512;

// acc[r * kI16GemmCols + j0 + j] += the products of rows m + r and the chunk's columns j0 + j
// (n0 + j0 + j of the weight) over [k_begin, k_end).
template <int R, int C, class Factor>
static void i16_tile(const I16Rows& x, int64_t m, int64_t n0, int64_t j0, int64_t k_begin, int64_t k_end,
                     const int16_t* w16, __m256* acc, const Factor& factor) {
  const int16_t* q = x.q + m * x.padded_k;
  for (int64_t k0 = k_begin; k0 < k_end; k0 += kI16Block) {
    __m256i isum[R][C];
    for (int r = 0; r < R; ++r)
      for (int j = 0; j < C; ++j) isum[r][j] = _mm256_setzero_si256();
    for (int64_t k = k0; k < k0 + kI16Block; k += 16) {
      __m256i wv[C];
      for (int j = 0; j < C; ++j)
        wv[j] = _mm256_load_si256(reinterpret_cast<const __m256i*>(w16 + (j0 + j) * kI16GemmDepth + (k - k_begin)));
      for (int r = 0; r < R; ++r) {
        const __m256i qv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + r * x.padded_k + k));
        for (int j = 0; j < C; ++j) isum[r][j] = _mm256_add_epi32(isum[r][j], _mm256_madd_epi16(wv[j], qv));
      }
    }
    __m256 column[C];
    if constexpr (Factor::kColumnScale)
      for (int j = 0; j < C; ++j) column[j] = factor.column(n0 + j0 + j, k0);
    for (int r = 0; r < R; ++r) {
      const __m256 row = factor.row(m + r, k0);
      for (int j = 0; j < C; ++j) {
        __m256* a = acc + r * kI16GemmCols + j0 + j;
        __m256 sum = _mm256_cvtepi32_ps(isum[r][j]);
        if constexpr (Factor::kColumnScale) sum = _mm256_mul_ps(sum, column[j]);
        *a = _mm256_fmadd_ps(sum, row, *a);
      }
    }
  }
}

template <int R, int C, class Factor>
static void i16_tile_edge(int r, int c, const I16Rows& x, int64_t m, int64_t n0, int64_t j0, int64_t k_begin,
                          int64_t k_end, const int16_t* w16, __m256* acc, const Factor& factor) {
  if constexpr (R > 1)
    if (r < R) return i16_tile_edge<R - 1, C>(r, c, x, m, n0, j0, k_begin, k_end, w16, acc, factor);
  if constexpr (C > 1)
    if (c < C) return i16_tile_edge<R, C - 1>(r, c, x, m, n0, j0, k_begin, k_end, w16, acc, factor);
  i16_tile<R, C>(x, m, n0, j0, k_begin, k_end, w16, acc, factor);
}

// Prefetches the weight bytes a widen of [byte0, byte0 + n) of a row will want next: the same
// row's next block, or after the row's last block the first of the row kI16GemmCols below
// (16 rows of 512 bytes are too short for hardware prefetchers).
static inline void prefetch_next_block(const uint8_t* row, int64_t row_bytes, int64_t byte0, int64_t n) {
  const uint8_t* next = byte0 + n < row_bytes ? row + byte0 + n : row + kI16GemmCols * row_bytes;
  for (int64_t i = 0; i < n; i += 64) __builtin_prefetch(next + i, 0, 2);
}

// The factor of sums of x's rows alone (x's 2^e per block of 128 k); with kColumnScale false
// no column() is asked for.
struct I16RowScale {
  static constexpr bool kColumnScale = false;
  const I16Rows& x;
  __m256 row(int64_t m, int64_t k0) const { return _mm256_set1_ps(x.scale[m * x.subs + k0 / kI16Block]); }
};

// Columns [n_begin, n_end) of out = x @ W.T for all M rows of x:
//   widen(n, k0, k1, dst): dst[0, k1 - k0) = column n's weights at k0 .. k1 - 1 as int16
//     (zero from K on, where x is zero padded too),
//   factor.row(m, k0), factor.column(n, k0) -> __m256: what the int32 sums of row m, column n,
//     k0 .. k0 + kI16Block - 1 are multiplied by (x's 2^e, times the weight group's scale if
//     Factor::kColumnScale), each broadcast once per flush of a tile,
//   finish(m, n, v): the output of row m, column n from its fp32 sum v.
template <class Widen, class Factor, class Finish>
static void i16_gemm(const I16Rows& x, int64_t M, int64_t n_begin, int64_t n_end, const Widen& widen,
                     const Factor& factor, const Finish& finish) {
  static_assert(kI16GemmDepth % kI16Block == 0, "a block of k holds whole flushes");
  constexpr int R = 2, C = 4;
  std::vector<__m256> acc(size_t(M * kI16GemmCols));
  alignas(32) int16_t w16[kI16GemmCols * kI16GemmDepth];
  for (int64_t n0 = n_begin; n0 < n_end; n0 += kI16GemmCols) {
    const int64_t nb = std::min(kI16GemmCols, n_end - n0);
    std::fill(acc.begin(), acc.end(), _mm256_setzero_ps());
    for (int64_t k0 = 0; k0 < x.padded_k; k0 += kI16GemmDepth) {
      const int64_t k1 = std::min(x.padded_k, k0 + kI16GemmDepth);
      for (int64_t j = 0; j < nb; ++j) widen(n0 + j, k0, k1, w16 + j * kI16GemmDepth);
      for (int64_t j = 0; j < nb; j += C)
        for (int64_t m = 0; m < M; m += R)
          i16_tile_edge<R, C>(int(std::min<int64_t>(R, M - m)), int(std::min<int64_t>(C, nb - j)), x, m, n0, j,
                              k0, k1, w16, acc.data() + m * kI16GemmCols, factor);
    }
    for (int64_t m = 0; m < M; ++m)
      for (int64_t j = 0; j < nb; ++j) finish(m, n0 + j, VecF{acc[m * kI16GemmCols + j]}.reduce_add());
  }
}
#endif

}  // namespace bigaccel::BIGACCEL_ISA_NS
