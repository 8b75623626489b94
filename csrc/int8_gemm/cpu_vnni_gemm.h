// W8A8 GEMM on AVX512-VNNI for M >= kVnniGemmMinRows, in outer-product form: a zmm holds
// 4 k-bytes of 16 rows of the activations (u8, packed once per call), and one dword of a
// weight row (4 k-bytes of one output column) is broadcast against it, so each vpdpbusd
// adds to 16 finished dot products. The weight is read as stored, with no packing; only the
// activations, M * K bytes, are rearranged. The dot-product tiles of common/dot_tile.h instead
// re-read all of x per 4 columns and reduce every accumulator horizontally: they ran at
// 0.64-0.74 of one Zen 5 core's vpdpbusd rate at M = 16-64 (weights in L3).
//
// Blocking (Goto's, with the roles of the operands swapped): per block of kNB columns and
// kKQ quads of k, each tile of up to 64 rows keeps its 16 KiB of packed activations in L1
// while the block's weight rows (kNB x 1 KiB, L2) are broadcast past them; the int32 sums
// of the block live in a column-major buffer [kNB][rows] between k chunks, and the epilogue
// reads them back row by row.
#pragma once

#include <algorithm>
#include <cstring>
#include <vector>

#include "common/dot_tile.h"

namespace bigaccel::BIGACCEL_ISA_NS {

constexpr int64_t kVnniQuadBytes = 4;  // k-bytes per int32 lane of vpdpbusd
constexpr int64_t kVnniNB = 96;        // columns per block: a multiple of every tile's NR and of 16
constexpr int64_t kVnniKQ = 256;       // quads of k per chunk: 16 KiB of a 64-row tile's activations
constexpr int64_t kVnniMB = 256;       // rows per block: the int32 sums stay in L2 (96 KiB)
constexpr int kVnniMaxNR = 12;

static inline int64_t vnni_quads(int64_t K) { return (K + kVnniQuadBytes - 1) / kVnniQuadBytes; }

// a u8 [M, K] into blocks of 16 rows: per quad q of k, the 4 bytes a[16b + r][4q, 4q + 4) of
// each row r in turn. Rows past M and bytes past K are zero (u8 zero: no product).
static void vnni_pack_rows(const uint8_t* a, int64_t M, int64_t K, uint8_t* packed) {
  const int64_t quads = vnni_quads(K), full = K / kVnniQuadBytes, tail = K % kVnniQuadBytes;
  std::memset(packed, 0, size_t(round_up(M, 16) * quads * kVnniQuadBytes));
  for (int64_t m = 0; m < M; ++m) {
    uint32_t* dst = reinterpret_cast<uint32_t*>(packed + (m / 16) * quads * 64) + m % 16;
    const uint8_t* src = a + m * K;
    for (int64_t q = 0; q < full; ++q) std::memcpy(dst + q * 16, src + q * kVnniQuadBytes, kVnniQuadBytes);
    if (tail) std::memcpy(dst + full * 16, src + full * kVnniQuadBytes, size_t(tail));
  }
}

static inline __m512i vnni_broadcast_quad(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof v);
  return _mm512_set1_epi32(v);
}

// c[j][16 i + r] (+)= sum over quads [0, quads) of row r of activation block i times weight
// row j: MZ blocks of 16 rows x NR columns, MZ * NR accumulators. a points at block 0's quad 0
// (blocks a_block bytes apart), w at row 0's first byte of the chunk (rows ldw apart); the
// chunk's last quad has tail_bytes bytes (0: all 4), the rest being past the row's end.
template <int MZ, int NR>
static void vnni_tile(const uint8_t* a, int64_t a_block, const int8_t* w, int64_t ldw, int64_t quads, int tail_bytes,
                      int32_t* c, int64_t ldc, bool accumulate) {
  __m512i acc[NR][MZ];
  for (int j = 0; j < NR; ++j)
    for (int i = 0; i < MZ; ++i)
      acc[j][i] = accumulate ? _mm512_loadu_si512(c + j * ldc + 16 * i) : _mm512_setzero_si512();
  auto step = [&](int64_t q, auto&& weight_quad) {
    __m512i va[MZ];
    for (int i = 0; i < MZ; ++i) va[i] = _mm512_loadu_si512(a + i * a_block + q * 64);
    for (int j = 0; j < NR; ++j) {
      const __m512i vb = weight_quad(w + j * ldw + q * kVnniQuadBytes);
      for (int i = 0; i < MZ; ++i) acc[j][i] = DotU8S8::dot(acc[j][i], va[i], vb);
    }
  };
  const int64_t full = tail_bytes ? quads - 1 : quads;
  int64_t q = 0;
  for (; q + 16 <= full; q += 16) {
    // One line of each of the next NR weight rows (the next tile's, at small M the next
    // step's): the hardware prefetchers stop at every 4 KiB page and see NR streams here.
    for (int j = 0; j < NR; ++j) __builtin_prefetch(w + (NR + j) * ldw + q * kVnniQuadBytes, 0, 2);
#pragma GCC unroll 4
    for (int u = 0; u < 16; ++u) step(q + u, vnni_broadcast_quad);
  }
  for (; q < full; ++q) step(q, vnni_broadcast_quad);
  if (tail_bytes)
    step(full, [&](const int8_t* p) {
      int32_t v = 0;
      std::memcpy(&v, p, size_t(tail_bytes));
      return _mm512_set1_epi32(v);
    });
  for (int j = 0; j < NR; ++j)
    for (int i = 0; i < MZ; ++i) _mm512_storeu_si512(c + j * ldc + 16 * i, acc[j][i]);
}

// Row blocks [0, mz_total) of 16 rows, columns [0, ncols) of the block's weight (rows ldw
// apart), quads [q0, q0 + quads) of k, into c [ncols][ldc]. Tiles of MZ blocks step NR columns;
// a last step of fewer than NR columns runs on a zero-padded copy of its rows.
template <int MZ, int NR>
static void vnni_tile_columns(const uint8_t* a_tile, int64_t a_block, const int8_t* w, int64_t ldw, int64_t ncols,
                              int64_t q0, int64_t quads, int tail_bytes, int32_t* c, int64_t ldc, bool accumulate,
                              int8_t* scratch) {
  int64_t j = 0;
  for (; j + NR <= ncols; j += NR)
    vnni_tile<MZ, NR>(a_tile, a_block, w + j * ldw + q0 * kVnniQuadBytes, ldw, quads, tail_bytes, c + j * ldc, ldc,
                      accumulate);
  if (j == ncols) return;
  const int64_t bytes = quads * kVnniQuadBytes - (tail_bytes ? kVnniQuadBytes - tail_bytes : 0);
  std::memset(scratch, 0, size_t(NR * kVnniKQ * kVnniQuadBytes));
  for (int64_t r = 0; r < ncols - j; ++r)
    std::memcpy(scratch + r * kVnniKQ * kVnniQuadBytes, w + (j + r) * ldw + q0 * kVnniQuadBytes, size_t(bytes));
  // The scratch rows are zero past `bytes`, so the tail quad reads whole.
  std::vector<int32_t> sums(size_t(NR * ldc));
  vnni_tile<MZ, NR>(a_tile, a_block, scratch, kVnniKQ * kVnniQuadBytes, quads, 0, sums.data(), ldc, false);
  for (int64_t r = 0; r < ncols - j; ++r)
    for (int64_t i = 0; i < MZ * 16; ++i)
      c[(j + r) * ldc + i] = (accumulate ? c[(j + r) * ldc + i] : 0) + sums[size_t(r * ldc + i)];
}

// Dispatches a tile of mz (1-4) row blocks to its register shape: MZ * NR <= 24 accumulators,
// and at most 12 weight rows: rows K = 4096 apart share an L1 set (12 ways), and one block
// against 24 of them ran at 0.2 TOP/s on one core (8 rows: 0.75).
static void vnni_tile_rows(int mz, const uint8_t* a_tile, int64_t a_block, const int8_t* w, int64_t ldw,
                           int64_t ncols, int64_t q0, int64_t quads, int tail_bytes, int32_t* c, int64_t ldc,
                           bool accumulate, int8_t* scratch) {
  switch (mz) {
    case 1: return vnni_tile_columns<1, 8>(a_tile, a_block, w, ldw, ncols, q0, quads, tail_bytes, c, ldc, accumulate, scratch);
    case 2: return vnni_tile_columns<2, 12>(a_tile, a_block, w, ldw, ncols, q0, quads, tail_bytes, c, ldc, accumulate, scratch);
    case 3: return vnni_tile_columns<3, 8>(a_tile, a_block, w, ldw, ncols, q0, quads, tail_bytes, c, ldc, accumulate, scratch);
    default: return vnni_tile_columns<4, 6>(a_tile, a_block, w, ldw, ncols, q0, quads, tail_bytes, c, ldc, accumulate, scratch);
  }
}

// out[m][n] for rows [0, M), columns [n_begin, n_end): a u8 (activations + 128) [M, K], w s8
// [N, K]; the epilogue is W8A8Epilogue's, vectorised over 16 columns with the same fp32
// operations in the same order, so the bits are the dot-product tiles'.
template <typename T>
static void vnni_gemm(const uint8_t* a, int64_t M, int64_t K, const int8_t* w, int64_t N, int64_t n_begin,
                      int64_t n_end, const float* a_scale, const float* w_scale, const int32_t* w_sum,
                      const float* bias, T* out) {
  const int64_t quads = vnni_quads(K), tail = K % kVnniQuadBytes, a_block = quads * 64;
  const int64_t mb_rows = std::min(round_up(M, 16), kVnniMB);
  std::vector<uint8_t> packed(size_t(mb_rows * a_block / 16));
  std::vector<int32_t> sums(size_t(kVnniNB * mb_rows));
  std::vector<int8_t> scratch(size_t(kVnniMaxNR * kVnniKQ * kVnniQuadBytes));
  const __m512i column_offsets = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                                    _mm512_set1_epi32(int32_t(mb_rows)));
  const __m512i offset_a = _mm512_set1_epi32(DotU8S8::kOffsetA);
  for (int64_t m0 = 0; m0 < M; m0 += kVnniMB) {
    const int64_t rows = std::min(M - m0, kVnniMB), blocks = (rows + 15) / 16;
    vnni_pack_rows(a + m0 * K, rows, K, packed.data());
    for (int64_t n0 = n_begin; n0 < n_end; n0 += kVnniNB) {
      const int64_t ncols = std::min(n_end - n0, kVnniNB);
      for (int64_t q0 = 0; q0 < quads; q0 += kVnniKQ) {
        const int64_t nq = std::min(quads - q0, kVnniKQ);
        const int tail_bytes = (q0 + nq == quads) ? int(tail) : 0;
        for (int64_t b = 0; b < blocks; b += 4)
          vnni_tile_rows(int(std::min<int64_t>(blocks - b, 4)), packed.data() + b * a_block + q0 * 64, a_block,
                         w + n0 * K, K, ncols, q0, nq, tail_bytes, sums.data() + b * 16, mb_rows, q0 > 0,
                         scratch.data());
      }
      // Round each operation on its own (no contraction into an fma), as the reference does.
      constexpr int kRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
      for (int64_t j = 0; j < ncols; j += 16) {
        const int n = int(std::min<int64_t>(ncols - j, 16));
        const __mmask16 mask = __mmask16((1u << n) - 1u);
        const int64_t col = n0 + j;
        const __m512i offset = _mm512_mullo_epi32(_mm512_maskz_loadu_epi32(mask, w_sum + col), offset_a);
        const __m512 ws = _mm512_maskz_loadu_ps(mask, w_scale + col);
        const __m512 bs = bias ? _mm512_maskz_loadu_ps(mask, bias + col) : _mm512_setzero_ps();
        for (int64_t r = 0; r < rows; ++r) {
          const __m512i acc = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), mask, column_offsets,
                                                          sums.data() + j * mb_rows + r, 4);
          const __m512 scale = _mm512_mul_round_ps(_mm512_set1_ps(a_scale[m0 + r]), ws, kRound);
          __m512 v = _mm512_mul_round_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc, offset)), scale, kRound);
          if (bias) v = _mm512_add_round_ps(v, bs, kRound);
          VecF{v}.store(out + (m0 + r) * N + col, n);
        }
      }
    }
  }
}

}  // namespace bigaccel::BIGACCEL_ISA_NS
