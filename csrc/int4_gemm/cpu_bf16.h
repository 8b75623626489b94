// int4 W4A16 with bf16 activations on CPUs with AVX512_BF16, for small M (included by
// cpu_kernel.h in the AVX-512 tier only; runs only after cpu::has_avx512_bf16()).
//
// The weights become vdpbf16ps operands in registers, with no reordering of x:
// - vdpbf16ps multiplies bf16 pairs (k = 2i, 2i + 1) per 32-bit lane, and packed byte i holds
//   exactly those two k (low nibble, high nibble). So 16 bytes widened to 16 dwords, with the
//   high nibble moved up to bit 16, give every 16-bit lane its own code.
// - vpermw then looks each code up in a 16-entry table per (column, group): bf16((c - zero) *
//   scale) for c = 0..15. The scale is folded in, so the fp32 sums need no flush per group.
// The weight is therefore rounded to bf16 once, as a bf16 nn.Linear rounds its weight and as
// the bf16 GEMM of the larger-M path does (cpu.cpp); products and sums are fp32.
//
// A tile of R rows x C columns keeps R * C accumulators over the whole K, and each 32-k chunk
// decodes its C columns (four instructions each, two of them shuffles) for R * C vdpbf16ps.
// - Up to 4 rows, one tile row (R = 4, C = 4) reads x as it is.
// - Above, tiles of 5-8 rows (C = 4, 4, 3, 3), x first copied into panels of that many rows
//   (int4_bf16_pack_rows), so that each tile reads one sequential stream of x instead of R
//   rows K apart (one core, 4096 x 4096: 1.15-1.3x at M = 16-32).
// The tiles of 5-8 rows replaced 4 x 4 tiles that read C columns decoded once into a scratch
// tile: two threads, Llama-7B's three shapes, g128, two A/B runs (2026-11-28): 0.53-0.62
// TFLOP/s against 0.35-0.40 at M = 5, 0.59-0.73 against 0.54-0.63 at 16, 0.62-0.70 against
// 0.61-0.65 at 31.
#pragma once

#include "common/rowvec_gemm.h"

namespace bigaccel::BIGACCEL_ISA_NS {

constexpr int kInt4Bf16TileRows = 4, kInt4Bf16TileCols = 4;
// Prefetch distance along each column's packed row, issued once per 64 bytes: hardware
// prefetchers stop at every 4 KiB page. g128 weights beyond L3, two threads, Zen 5, M = 3-4
// (2026-11-28, two A/B runs): 27-36 GB/s at 8 KiB against 21-31 at 1 KiB (4 KiB between).
constexpr int64_t kInt4Bf16PrefetchBytes = 8192;

// The 16 bf16 weights of codes 0..15 of one group, in the low 256 bits (vpermw reads 5 index
// bits; the codes never reach the upper 16 entries).
static inline __m512i int4_bf16_table(float scale, int zero) {
  // int4_f32_table's reference weights, each rounded once to nearest even (vcvtneps2bf16 treats
  // denormal inputs as zero).
  return _mm512_castsi256_si512((__m256i)_mm512_cvtneps_pbh(int4_f32_table(scale, zero)));
}

// 16 packed bytes (k .. k + 31) as 32 bf16 weights in k order.
static inline __m512bh int4_bf16_decode(const uint8_t* p, __m512i table) {
  const __m512i d = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  // Low word: the low nibble; high word: bits 16..19 of d << 12, the high nibble. (a | b) & c.
  const __m512i idx = _mm512_ternarylogic_epi32(d, _mm512_slli_epi32(d, 12), _mm512_set1_epi32(0x000F000F), 0xA8);
  return (__m512bh)_mm512_permutexvar_epi16(idx, table);
}

// A tile's C columns' weights for one 32-k chunk, decoded from the packed weight (a table per
// column per group).
template <int C>
struct Int4Bf16Decoded {
  const Int4Weight& w;
  int64_t n;
  __m512i table[C];
  void start_group(int64_t g) {
    for (int c = 0; c < C; ++c) table[c] = int4_bf16_table(w.scales[(n + c) * w.groups + g], w.zero_code(n + c, g));
  }
  void load(int64_t k, __m512bh (&wv)[C]) const {
    for (int c = 0; c < C; ++c) {
      const uint8_t* row = w.packed + (n + c) * (w.K / 2);
      if ((k & 127) == 0) __builtin_prefetch(row + k / 2 + kInt4Bf16PrefetchBytes, 0, 2);
      wv[c] = int4_bf16_decode(row + k / 2, table[c]);
    }
  }
};

// Rows of x: as stored, or in the R-row panels of int4_bf16_pack_rows (common/dot_tile.h).
using Bf16Rows = ARows<bf16_t, 32>;

template <int R, int C, class Src, typename T>
static void int4_bf16_tile(Bf16Rows x, int64_t K, int64_t G, Src src, int64_t N, int64_t m, int64_t n,
                           const float* bias, T* out) {
  __m512 acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = _mm512_setzero_ps();
  for (int64_t g = 0; g < K / G; ++g) {
    src.start_group(g);
    for (int64_t k = g * G; k < (g + 1) * G; k += 32) {
      __m512bh wv[C];
      src.load(k, wv);
      for (int r = 0; r < R; ++r) {
        const __m512bh xv = (__m512bh)_mm512_loadu_si512(x.at(r, k));
        for (int c = 0; c < C; ++c) acc[r][c] = DotBF16S8::dot(acc[r][c], xv, wv[c]);
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) {
      const float v = VecF{acc[r][c]}.reduce_add();
      from_float(bias ? v + bias[n + c] : v, out + (m + r) * N + n + c);
    }
}

// The tile for the edge sizes r <= R, c <= C, each its own unrolled instantiation.
template <int R, int C, typename T>
static void int4_bf16_tile_edge(int r, int c, Bf16Rows x, const Int4Weight& w, int64_t N, int64_t m, int64_t n,
                                const float* bias, T* out) {
  if constexpr (R > 1)
    if (r < R) return int4_bf16_tile_edge<R - 1, C>(r, c, x, w, N, m, n, bias, out);
  if constexpr (C > 1)
    if (c < C) return int4_bf16_tile_edge<R, C - 1>(r, c, x, w, N, m, n, bias, out);
  int4_bf16_tile<R, C>(x, w.K, w.G, Int4Bf16Decoded<C>{w, n, {}}, N, m, n, bias, out);
}

// From this M, common/rowvec_gemm.h's GEMM on weight chunks staged as bf16 (RowVecStagedInt4),
// for every larger M. Two threads, Llama-7B's three shapes, g128, weights in L3 or DRAM
// (2026-11-28), TFLOP/s against the tiles above (4 x 4 then; the 5-8-row tiles: 0.61-0.74 at
// M = 24, 0.62-0.70 at 31) and, from M = 48, torch's bf16 GEMM over blocks dequantized to bf16:
// 0.59-0.62 against 0.58-0.64 at M = 24, 0.80-0.83 against 0.59-0.62 at 32, 0.81-0.88 against
// 0.54-0.55 at 64 (1.26-1.35x bf16 F.linear), 0.90-0.95 against 0.78-0.81 at 256 (0.99-1.07x
// bf16 F.linear).
constexpr int64_t kInt4RowVecMinRows = 32;

// An int4 weight staged as bf16 for rowvec_gemm: each group's codes through its table, so the
// weight is rounded to bf16 once, as in the tiles above.
struct RowVecStagedInt4 {
  static constexpr bool kStaged = true;
  Int4Weight w;
  // k0 is a multiple of the chunk (512 k), so of the group; nk a whole number of groups.
  void stage(int64_t n, int64_t k0, int64_t nk, uint8_t* dst) const {
    const uint8_t* row = w.packed + n * (w.K / 2);
    auto* out = reinterpret_cast<bf16_t*>(dst);
    if (k0 + nk < w.K) prefetch_l2(row + (k0 + nk) / 2, std::min(w.K - k0 - nk, nk) / 2);
    for (int64_t g = k0 / w.G; g < (k0 + nk) / w.G; ++g) {
      const __m512i table = int4_bf16_table(w.scales[n * w.groups + g], w.zero_code(n, g));
      for (int64_t k = g * w.G; k < (g + 1) * w.G; k += 32)
        _mm512_storeu_si512(out + (k - k0), (__m512i)int4_bf16_decode(row + k / 2, table));
    }
  }
};

// Elements of the panels int4_bf16_pack_rows writes for x [M, K]; 0 when M fits one tile,
// which reads x as it is, or from kInt4RowVecMinRows (rowvec_gemm packs its own).
int64_t int4_bf16_panel_elems(int64_t M, int64_t K) {
  return M > kInt4Bf16TileRows && M < kInt4RowVecMinRows ? panel_elems(M, K, tile_rows_5_to_8(M), 32) : 0;
}

// x [M, K] into panels of the tiles' rows (pack_panels; K is a multiple of the group, so of 32).
void int4_bf16_pack_rows(const bf16_t* x, int64_t M, int64_t K, bf16_t* panels) {
  with_tile_rows_5_to_8(M, [&](auto rows) { pack_panels<decltype(rows)::value, 32>(x, K, M, K, panels); });
}

// Columns [n_begin, n_end), C at a time, against every R-row panel in turn (the C columns'
// packed bytes, R * C * 16 per chunk, come back from L1 for the next panel).
template <int R, int C, typename T>
static void int4_bf16_tiles(const bf16_t* x_panels, int64_t M, const Int4Weight& w, int64_t N, int64_t n_begin,
                            int64_t n_end, const float* bias, T* out) {
  for (int64_t n = n_begin; n < n_end; n += C) {
    const int c = int(n_end - n < C ? n_end - n : C);
    for (int64_t m = 0; m < M; m += R)
      int4_bf16_tile_edge<R, C>(int(M - m < R ? M - m : R), c, Bf16Rows{x_panels + m * w.K, 32, R * 32}, w, N, m, n,
                                bias, out);
  }
}

// out [M, N] columns [n_begin, n_end): x as it is up to 4 rows; then x_panels from
// int4_bf16_pack_rows; from kInt4RowVecMinRows, rowvec_gemm.
void int4_mm_bf16_cols(const bf16_t* x, const bf16_t* x_panels, int64_t M, int64_t K, const uint8_t* packed,
                       const float* scales, const uint8_t* zeros, int64_t group_size, int64_t N, int64_t n_begin,
                       int64_t n_end, const float* bias, bf16_t* out) {
  constexpr int R = kInt4Bf16TileRows, C = kInt4Bf16TileCols;
  const Int4Weight w{packed, scales, zeros, K, group_size};
  if (M >= kInt4RowVecMinRows)
    return rowvec_gemm<RowVecBF16>(x, M, K, RowVecStagedInt4{w}, n_begin, n_end,
                                   RowVecFloatEpilogue<bf16_t>{nullptr, bias, out, N});
  if (M <= R) {
    for (int64_t n = n_begin; n < n_end; n += C)
      int4_bf16_tile_edge<R, C>(int(M), int(n_end - n < C ? n_end - n : C), Bf16Rows{x, K, 32}, w, N, 0, n, bias,
                                out);
    return;
  }
  with_tile_rows_5_to_8(M, [&](auto rows) {
    constexpr int kRows = decltype(rows)::value;
    int4_bf16_tiles<kRows, tile_cols_for_rows(kRows)>(x_panels, M, w, N, n_begin, n_end, bias, out);
  });
}

}  // namespace bigaccel::BIGACCEL_ISA_NS
