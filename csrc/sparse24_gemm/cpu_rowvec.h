// 2:4 with bf16 values and bf16 activations on CPUs with AVX512_BF16, for a few blocks of 16
// rows (cpu.cpp: kSparse24PairsMinRows), in the outer-product form of common/rowvec_gemm.h,
// without expanding the weight.
//
// A group of 4 k keeps two positions i0 < i1, one of 6 pairs. For each 16 rows of x and each
// group, all 6 pair vectors (a[i0], a[i1]) of the 16 rows are built once per block of rows (3x
// the bytes of x); a column's two kept values, one dword of the compressed values as stored,
// are broadcast, and one vdpbf16ps against the pair vector its metadata names does the group's
// products for 16 rows: half the vdpbf16ps of the dense product, and the gather of x by the
// metadata is paid once per (16 rows, group), not per column. But each vdpbf16ps reads its own
// 64-byte pair vector (from L1: a tile's chunk is 4 blocks x 16 groups x 6 x 64 B = 24 KiB),
// and one Zen 5 core sustained about one such load per cycle: at M = 64 one core ran at
// 0.43 TFLOP/s dense-equivalent, 0.95x the dense GEMM on int8 weights staged as bf16 (whose x
// stays in registers), so this kernel wins only where rows are few (M = 32-64: 1.07-1.18x
// the dense GEMM on chunks expanded to bf16, 2 threads).
#pragma once

#include "common/rowvec_gemm.h"

namespace bigaccel::BIGACCEL_ISA_NS {

constexpr int64_t kS24PairBytes = 64;                 // one pair vector: 16 rows x 2 bf16
constexpr int64_t kS24GroupBytes = 6 * kS24PairBytes;  // the 6 pair vectors of one group
constexpr int64_t kS24Rows = 64;                      // rows per block of x: one tile of 4 x 16
constexpr int64_t kS24Groups = 16;                    // groups per chunk of k (even: whole metadata bytes)
constexpr int64_t kS24NB = 96;                        // columns per block
constexpr int kS24MaxNR = 8;
static_assert(kS24NB <= kRowVecNB, "rowvec_finish takes at most kRowVecNB columns");

// Per metadata byte (two groups): the byte offsets of both groups' pair vectors from the first
// group's 6: the low group's in the low 32 bits, the high group's (6 vectors further) in the
// high 32. Pairs in the order (0,1) (0,2) (0,3) (1,2) (1,3) (2,3); a nibble is i0 | i1 << 2
// (bigaccel.reference.compress_2_4). Others (never written) read pair 0.
struct S24PairOffsets {
  uint64_t off[256];
  static constexpr uint64_t slot(unsigned nibble) {
    switch (nibble) {
      case 0x4: return 0;
      case 0x8: return 1;
      case 0xC: return 2;
      case 0x9: return 3;
      case 0xD: return 4;
      case 0xE: return 5;
      default: return 0;
    }
  }
  constexpr S24PairOffsets() : off() {
    for (unsigned b = 0; b < 256; ++b)
      off[b] = slot(b & 0xF) * kS24PairBytes | (kS24GroupBytes + slot(b >> 4) * kS24PairBytes) << 32;
  }
};
alignas(64) static constexpr S24PairOffsets kS24PairOffsets{};

// x [rows <= 64, K] (bf16) into pair vectors: block b of 16 rows, group g, pair p at
// pairs + b * block_bytes + g * kS24GroupBytes + p * 64, row r's dword at + 4 r. Rows past
// `rows` are zero.
static void s24_build_pairs(const bf16_t* x, int64_t rows, int64_t K, int64_t block_bytes, uint8_t* pairs) {
  const int64_t groups = K / 4;
  // Block by block, group by group: each group's 6 lines stay in L1 while its 16 rows fill them.
  for (int64_t b = 0; b < (rows + 15) / 16; ++b)
    for (int64_t g = 0; g < groups; ++g) {
      uint8_t* dst = pairs + b * block_bytes + g * kS24GroupBytes;
      for (int64_t r = 0; r < 16; ++r) {
        const int64_t m = 16 * b + r;
        uint16_t a[4] = {0, 0, 0, 0};
        if (m < rows) std::memcpy(a, x + m * K + 4 * g, sizeof a);
        const uint32_t pair[6] = {a[0] | uint32_t(a[1]) << 16, a[0] | uint32_t(a[2]) << 16, a[0] | uint32_t(a[3]) << 16,
                                  a[1] | uint32_t(a[2]) << 16, a[1] | uint32_t(a[3]) << 16, a[2] | uint32_t(a[3]) << 16};
        for (int p = 0; p < 6; ++p) std::memcpy(dst + p * kS24PairBytes + 4 * r, &pair[p], 4);
      }
    }
}

static inline __m512 s24_dot(__m512 acc, __m512i w, const uint8_t* pair) {
  asm("vdpbf16ps %2, %1, %0" : "+v"(acc) : "v"(w), "m"(*reinterpret_cast<const __m512i*>(pair)));
  return acc;
}
// c[j][16 i + r] (+)= the products of `groups` groups (from the chunk's first) of column j and
// rows r of block i: MZ blocks x NR columns. vals/meta point at column 0's chunk (rows ldv and
// ldm bytes apart); an odd `groups` ends with the low nibble of its byte.
template <int MZ, int NR>
static void s24_tile(const uint8_t* pairs, int64_t block_bytes, const uint8_t* vals, int64_t ldv, const uint8_t* meta,
                     int64_t ldm, int64_t groups, float* c, int64_t ldc, bool accumulate) {
  __m512 acc[NR][MZ];
  for (int j = 0; j < NR; ++j)
    for (int i = 0; i < MZ; ++i) acc[j][i] = accumulate ? _mm512_loadu_ps(c + j * ldc + 16 * i) : _mm512_setzero_ps();
  // The next chunks' values of these columns, into L2 (each column's row is its own stream).
  for (int j = 0; j < NR; ++j) __builtin_prefetch(vals + j * ldv + 4 * kS24Groups * 4, 0, 2);
  // Unrolled over j and i, so that every accumulator stays in its register; each pair vector is
  // read at base[i] + offset, one addressing mode.
  const uint8_t* base[MZ];
  for (int i = 0; i < MZ; ++i) base[i] = pairs + i * block_bytes;
  auto group = [&](__m512 (&col)[MZ], const uint8_t* v, uint64_t offset) {
    const __m512i w = rowvec_broadcast(v);
#pragma GCC unroll 4
    for (int i = 0; i < MZ; ++i) col[i] = s24_dot(col[i], w, base[i] + offset);
  };
  int64_t g = 0;
  for (; g + 2 <= groups; g += 2) {
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) {
      const uint64_t offs = kS24PairOffsets.off[meta[j * ldm + g / 2]];
      const uint8_t* v = vals + j * ldv + 4 * g;
      group(acc[j], v, offs & 0xFFFFFFFFu);
      group(acc[j], v + 4, offs >> 32);
    }
    for (int i = 0; i < MZ; ++i) base[i] += 2 * kS24GroupBytes;
  }
  if (g < groups)
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j)
      group(acc[j], vals + j * ldv + 4 * g, kS24PairOffsets.off[meta[j * ldm + g / 2]] & 0xFFFFFFFFu);
  for (int j = 0; j < NR; ++j)
    for (int i = 0; i < MZ; ++i) _mm512_storeu_ps(c + j * ldc + 16 * i, acc[j][i]);
}

// Columns [0, ncols) of the block, NR at a time; a last step of fewer runs on zero-padded
// copies of its chunk's values and metadata (zero values: no products), writing spare columns
// past ncols (c has kS24MaxNR of them).
template <int MZ, int NR>
static void s24_tile_columns(const uint8_t* pairs, int64_t block_bytes, const uint8_t* vals, int64_t ldv,
                             const uint8_t* meta, int64_t ldm, int64_t ncols, int64_t groups, float* c, int64_t ldc,
                             bool accumulate) {
  int64_t j = 0;
  for (; j + NR <= ncols; j += NR)
    s24_tile<MZ, NR>(pairs, block_bytes, vals + j * ldv, ldv, meta + j * ldm, ldm, groups, c + j * ldc, ldc, accumulate);
  if (j == ncols) return;
  constexpr int64_t kVals = kS24Groups * 4, kMeta = kS24Groups / 2;
  alignas(64) uint8_t edge_vals[NR][kVals] = {};
  uint8_t edge_meta[NR][kMeta] = {};
  for (int64_t r = 0; r < ncols - j; ++r) {
    std::memcpy(edge_vals[r], vals + (j + r) * ldv, size_t(groups * 4));
    std::memcpy(edge_meta[r], meta + (j + r) * ldm, size_t((groups + 1) / 2));
  }
  s24_tile<MZ, NR>(pairs, block_bytes, &edge_vals[0][0], kVals, &edge_meta[0][0], kMeta, groups, c + j * ldc, ldc,
                   accumulate);
}

static void s24_tile_rows(int mz, const uint8_t* pairs, int64_t block_bytes, const uint8_t* vals, int64_t ldv,
                          const uint8_t* meta, int64_t ldm, int64_t ncols, int64_t groups, float* c, int64_t ldc,
                          bool accumulate) {
  switch (mz) {
    case 1: return s24_tile_columns<1, 8>(pairs, block_bytes, vals, ldv, meta, ldm, ncols, groups, c, ldc, accumulate);
    case 2: return s24_tile_columns<2, 8>(pairs, block_bytes, vals, ldv, meta, ldm, ncols, groups, c, ldc, accumulate);
    case 3: return s24_tile_columns<3, 8>(pairs, block_bytes, vals, ldv, meta, ldm, ncols, groups, c, ldc, accumulate);
    default: return s24_tile_columns<4, 6>(pairs, block_bytes, vals, ldv, meta, ldm, ncols, groups, c, ldc, accumulate);
  }
}

// out [M, N] columns [n_begin, n_end) = x @ W.T + bias (bigaccel.reference's 2:4 product in
// fp32, one rounding to bf16); values bf16 [N, K/2], meta [N, ceil(K/8)].
void sparse24_bf16_rowvec_cols(const bf16_t* x, int64_t M, int64_t K, const bf16_t* values, const uint8_t* meta,
                               int64_t n_begin, int64_t n_end, int64_t N, const float* bias, bf16_t* out) {
  const int64_t groups = K / 4, block_bytes = groups * kS24GroupBytes;
  const int64_t ldv = K / 2 * int64_t(sizeof(bf16_t)), ldm = (K + 7) / 8;
  const int64_t mb_rows = std::min(round_up(M, 16), kS24Rows);
  const auto [pairs, sums_bytes] = RowVecScratch::of_this_thread().take(
      std::array<size_t, 2>{size_t(mb_rows / 16 * block_bytes), size_t((kS24NB + kS24MaxNR) * mb_rows) * sizeof(float)});
  float* const sums = reinterpret_cast<float*>(sums_bytes);
  const RowVecFloatEpilogue<bf16_t> epi{nullptr, bias, out, N};
  const auto* vbytes = reinterpret_cast<const uint8_t*>(values);
  for (int64_t m0 = 0; m0 < M; m0 += kS24Rows) {
    const int64_t rows = std::min(M - m0, kS24Rows);
    s24_build_pairs(x + m0 * K, rows, K, block_bytes, pairs);
    for (int64_t n0 = n_begin; n0 < n_end; n0 += kS24NB) {
      const int64_t ncols = std::min(n_end - n0, kS24NB);
      for (int64_t g0 = 0; g0 < groups; g0 += kS24Groups)
        s24_tile_rows(int((rows + 15) / 16), pairs + g0 * kS24GroupBytes, block_bytes,
                      vbytes + n0 * ldv + g0 * 4, ldv, meta + n0 * ldm + g0 / 2, ldm, ncols,
                      std::min(groups - g0, kS24Groups), sums, mb_rows, g0 > 0);
      rowvec_finish<RowVecBF16>(sums, mb_rows, m0, rows, n0, ncols, epi);
    }
  }
}

}  // namespace bigaccel::BIGACCEL_ISA_NS
