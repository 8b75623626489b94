// 2:4 with bf16 values and bf16 activations on CPUs with AVX512_BF16, from a few rows up
// (included by cpu_kernel.h in the AVX-512 tier only; runs only after
// cpu::has_avx512_bf16()).
//
// Each block of columns is expanded once into a dense bf16 scratch tile (one byte shuffle per
// 8 dense weights: the kept values are bf16 already, so this is exact), and the vdpbf16ps
// tiles of common/dot_tile.h run every 4-row panel of x over it. That does the dense work, at
// vdpbf16ps's rate (twice an fp32 FMA's), where gathering x by the metadata (the kernels
// above) costs a shuffle per 8 products in fp32 and bound them from a few rows up. On Zen 5
// that made 2:4 at M = 4-32 1.0-1.8x the dense bf16 F.linear, which it had trailed (0.34-0.66x
// at M = 16); the expansion measured no faster with AVX512_VBMI2's vpexpandw.
// vdpbf16ps treats denormal inputs as zero, as W8A16's tiles do.
#pragma once

#include "common/rowvec_gemm.h"

namespace bigaccel::BIGACCEL_ISA_NS {

// Byte shuffle control per metadata byte (two groups, four kept bf16 values in the low 8
// bytes): dense word d of the 8 takes value word s (bytes 2s, 2s + 1), or zero (0x80).
struct ExpandBf16Table {
  uint8_t ctrl[256][16];
  constexpr ExpandBf16Table() : ctrl() {
    for (unsigned b = 0; b < 256; ++b) {
      for (int i = 0; i < 16; ++i) ctrl[b][i] = 0x80;
      for (unsigned group = 0; group < 2; ++group) {
        const unsigned nibble = (b >> (4 * group)) & 0xF;
        const unsigned at[2] = {4 * group + (nibble & 3), 4 * group + (nibble >> 2)};
        for (unsigned j = 0; j < 2; ++j) {
          ctrl[b][2 * at[j]] = uint8_t(2 * (2 * group + j));
          ctrl[b][2 * at[j] + 1] = uint8_t(2 * (2 * group + j) + 1);
        }
      }
    }
  }
};
alignas(64) static constexpr ExpandBf16Table kExpandBf16Table{};

// One compressed row (K/2 values, ceil(K/8) metadata bytes) -> kp dense bf16, zeros where
// pruned and from K to kp.
static inline void expand_row_bf16(const bf16_t* v, const uint8_t* meta, int64_t K, int64_t kp, bf16_t* dense) {
  const int64_t groups = K / 4;
  int64_t g = 0;
  for (; g + 2 <= groups; g += 2) {
    const __m128i four = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(v + 2 * g));
    const __m128i ctrl = _mm_load_si128(reinterpret_cast<const __m128i*>(kExpandBf16Table.ctrl[meta[g / 2]]));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dense + 4 * g), _mm_shuffle_epi8(four, ctrl));
  }
  for (; g < groups; ++g) {  // an odd last group: the low nibble of its byte
    const int nib = meta[g / 2] & 0xF;
    for (int j = 0; j < 4; ++j) dense[4 * g + j] = bf16_t{0};
    dense[4 * g + (nib & 3)] = v[2 * g];
    dense[4 * g + (nib >> 2)] = v[2 * g + 1];
  }
  for (int64_t k = K; k < kp; ++k) dense[k] = bf16_t{0};
}

void sparse24_bf16_dense_rowvec_cols(const bf16_t* x, int64_t M, int64_t K, const bf16_t* values, const uint8_t* meta,
                                     int64_t n_begin, int64_t n_end, int64_t N, const float* bias, bf16_t* out) {
  rowvec_gemm<RowVecBF16>(x, M, K, RowVecStaged24<bf16_t>{values, meta, K}, n_begin, n_end,
                          RowVecFloatEpilogue<bf16_t>{nullptr, bias, out, N});
}

// Columns [n_begin, n_end), NR weight rows at a time expanded into the scratch tile, against
// every MR-row panel of x in turn.
template <int MR, int NR, typename Epi>
static void sparse24_bf16_tiles(const bf16_t* x, int64_t M, int64_t K, const bf16_t* values, const uint8_t* meta,
                                int64_t n_begin, int64_t n_end, Epi& epi) {
  constexpr int kC = DotBF16BF16::kBytes;
  const int64_t kp = round_up(K, kC), row_values = K / 2, row_meta = (K + 7) / 8;
  bf16_t* scratch = new bf16_t[size_t(NR * kp)];
  bf16_t* panels = new bf16_t[size_t(panel_elems(M, K, MR, kC))];
  pack_panels<MR, kC>(x, K, M, K, panels);
  for (int64_t n = n_begin; n < n_end; n += NR) {
    const int nr = int(n_end - n < NR ? n_end - n : NR);
    for (int j = 0; j < nr; ++j) {
      prefetch_l2(values + (n + NR + j) * row_values, row_values * int64_t(sizeof(bf16_t)));  // the next block's row
      expand_row_bf16(values + (n + j) * row_values, meta + (n + j) * row_meta, K, kp, scratch + j * kp);
    }
    for (int64_t m = 0; m < M; m += MR) {
      const ARows<bf16_t, kC> rows{panels + m * kp, kC, MR * kC};
      dot_tile_edge<DotBF16BF16, MR, NR>(int(M - m < MR ? M - m : MR), nr, rows, scratch, kp, kp, m, n, epi);
    }
  }
  delete[] panels;
  delete[] scratch;
}

// out [M, N] columns [n_begin, n_end) = x @ W.T + bias, one rounding to bf16. Each calling
// thread copies x into panels and expands NR rows at a time into its own scratch tile. Above 4
// rows, tiles of 5-8 (with_tile_rows_5_to_8): 1.05-1.2x the 4 x 4 tiles at M = 5, 1.0-1.06x at
// 16-24 (two threads, Llama-7B's three shapes, A/B runs, 2026-11-28).
void sparse24_bf16_tiles_cols(const bf16_t* x, int64_t M, int64_t K, const bf16_t* values, const uint8_t* meta,
                              int64_t n_begin, int64_t n_end, int64_t N, const float* bias, bf16_t* out) {
  auto epi = [&](int64_t m, int64_t n, float acc) { from_float(bias ? acc + bias[n] : acc, out + m * N + n); };
  if (M <= DotBF16BF16::kTileM)
    return sparse24_bf16_tiles<DotBF16BF16::kTileM, DotBF16BF16::kTileN>(x, M, K, values, meta, n_begin, n_end, epi);
  with_tile_rows_5_to_8(M, [&](auto rows) {
    constexpr int kRows = decltype(rows)::value;
    sparse24_bf16_tiles<kRows, tile_cols_for_rows(kRows)>(x, M, K, values, meta, n_begin, n_end, epi);
  });
}

}  // namespace bigaccel::BIGACCEL_ISA_NS
