// GEMM of activations A [M, K] and a weight W [N, K] on AVX-512, in outer-product form: a zmm
// holds one 4-byte unit of k (4 u8 or 2 bf16 elements) of 16 rows of A, packed once per call,
// and one unit of a weight row (one output column) is broadcast against it, so each vpdpbusd
// or vdpbf16ps adds to 16 finished dot products. The dot-product tiles of common/dot_tile.h
// instead re-read all of A per 4 columns and reduce every accumulator horizontally: for W8A8
// they ran at 0.64-0.74 of one Zen 5 core's vpdpbusd rate at M = 16-64 (weights in L3), this
// form at 0.90-0.95 from M = 32.
//
// Blocking (Goto's, with the operands' roles swapped): per block of kRowVecNB columns and
// kRowVecUnits units of k, each tile of up to 64 rows reads its 16-64 KiB of packed A from L1
// and L2 while the block's weight rows (kRowVecNB x 1 KiB, L2) are broadcast past it; the block's
// sums live in a column-major buffer [columns][rows] between k chunks, and the epilogue reads
// them back 16 columns at a time.
//
// A policy P gives the arithmetic: TA (A's element type), Sum and Acc (int32 or fp32 lanes),
// dot(acc, a, w). A weight source gives the weight's units: RowVecInPlace reads int8 rows as
// stored (4 k per unit); a staged source (kStaged) writes each block's chunk of columns as
// units into an L1/L2 buffer first (stage(n, k0, nk, dst): nk elements of column n from k0,
// zero-padded to a whole unit), e.g. as bf16: the exact values the reference multiplies.
#pragma once

#include <algorithm>
#include <array>
#include <cstring>
#include <new>
#include <vector>

#include "common/dot_tile.h"

namespace bigaccel::BIGACCEL_ISA_NS {

// Scratch buffers of the GEMMs below, cache-line aligned (std::vector's 16 bytes made most
// 64-byte loads straddle two lines: 2:4's pair vectors ran at half the rate) and kept per thread
// between calls (fresh ones were fresh pages: at M = 256 their faults took ~3% of a W8A8 call).
// A thread holds its largest request so far: at most 256 rows of A, a few MiB at K = 11008.
class RowVecScratch {
 public:
  ~RowVecScratch() { release(); }
  // Buffers of the given byte sizes, valid until this thread's next call.
  template <size_t N>
  std::array<uint8_t*, N> take(const std::array<size_t, N>& bytes) {
    size_t offset[N], total = 0;
    for (size_t i = 0; i < N; ++i) {
      offset[i] = total;
      total += (bytes[i] + 63) / 64 * 64;
    }
    if (total > capacity_) {
      release();
      base_ = static_cast<uint8_t*>(::operator new[](total, std::align_val_t(64)));
      capacity_ = total;
    }
    std::array<uint8_t*, N> out;
    for (size_t i = 0; i < N; ++i) out[i] = base_ + offset[i];
    return out;
  }
  static RowVecScratch& of_this_thread() {
    static thread_local RowVecScratch scratch;
    return scratch;
  }

 private:
  void release() {
    if (base_) ::operator delete[](base_, std::align_val_t(64));
    base_ = nullptr;
    capacity_ = 0;
  }
  uint8_t* base_ = nullptr;
  size_t capacity_ = 0;
};

constexpr int64_t kRowVecUnitBytes = 4;
constexpr int64_t kRowVecNB = 96;      // columns per block: a multiple of every tile's NR and of 16
constexpr int64_t kRowVecUnits = 256;  // units of k per chunk: 16 KiB per 16 rows of A (128 and 64: no faster)
constexpr int64_t kRowVecMB = 256;     // rows per block: the block's sums stay in L2 (96 KiB)
constexpr int kRowVecMaxNR = 12;

// W8A8: u8 activations (+128) against int8 weights.
struct RowVecU8S8 {
  using TA = uint8_t;
  using Sum = int32_t;
  using Acc = __m512i;
  static Acc zero() { return _mm512_setzero_si512(); }
  static Acc load(const Sum* p) { return _mm512_loadu_si512(p); }
  static void store(Sum* p, Acc v) { _mm512_storeu_si512(p, v); }
  static Acc gather(__m512i offsets, __mmask16 mask, const Sum* base) {
    return _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), mask, offsets, base, 4);
  }
  static Acc dot(Acc acc, __m512i a, __m512i w) { return DotU8S8::dot(acc, a, w); }
};

// bf16 activations against bf16 weights (staged), fp32 sums.
struct RowVecBF16 {
  using TA = bf16_t;
  using Sum = float;
  using Acc = __m512;
  static Acc zero() { return _mm512_setzero_ps(); }
  static Acc load(const Sum* p) { return _mm512_loadu_ps(p); }
  static void store(Sum* p, Acc v) { _mm512_storeu_ps(p, v); }
  static Acc gather(__m512i offsets, __mmask16 mask, const Sum* base) {
    return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), mask, offsets, base, 4);
  }
  static Acc dot(Acc acc, __m512i a, __m512i w) { return DotBF16S8::dot(acc, (__m512bh)a, (__m512bh)w); }
};

// An int8 weight [N, K] read in place.
struct RowVecInPlace {
  static constexpr bool kStaged = false;
  const int8_t* w;
  int64_t K;
};

// An int8 weight [N, K] staged as bf16 (exact).
struct RowVecStagedS8 {
  static constexpr bool kStaged = true;
  const int8_t* w;
  int64_t K;
  void stage(int64_t n, int64_t k0, int64_t nk, uint8_t* dst) const {
    const int8_t* row = w + n * K + k0;
    auto* out = reinterpret_cast<bf16_t*>(dst);
    // This row's next chunk, into L2 while this chunk's tiles run.
    if (k0 + nk < K) prefetch_l2(row + nk, std::min(K - k0 - nk, nk));
    int64_t k = 0;
    for (; k + 32 <= nk; k += 32) _mm512_storeu_si512(out + k, (__m512i)DotBF16S8::load_b(row + k));
    if (k < nk) {  // zero up to the whole unit
      const int rest = int(nk - k);
      _mm512_mask_storeu_epi16(out + k, DotBF16S8::mask(int(round_up(rest, 2))), (__m512i)DotBF16S8::load_b(row + k, rest));
    }
  }
};

template <class P>
static constexpr int64_t rowvec_per_unit() { return kRowVecUnitBytes / int64_t(sizeof(typename P::TA)); }

// v[c] lane r -> v[r] lane c, for 16 vectors of 16 dwords: two rounds of unpacks within
// 128-bit lanes, two of lane shuffles (64 shuffles for 256 dwords).
static inline void rowvec_transpose16(__m512i (&v)[16]) {
  __m512i t[16], u[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_epi32(v[2 * i], v[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(v[2 * i], v[2 * i + 1]);
  }
  // u[4 i + e], 128-bit lane L: element 4 L + e of vectors 4 i .. 4 i + 3.
  for (int i = 0; i < 4; ++i) {
    u[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  for (int e = 0; e < 4; ++e) {
    const __m512i even_lo = _mm512_shuffle_i32x4(u[e], u[4 + e], 0x88), odd_lo = _mm512_shuffle_i32x4(u[e], u[4 + e], 0xDD);
    const __m512i even_hi = _mm512_shuffle_i32x4(u[8 + e], u[12 + e], 0x88),
                  odd_hi = _mm512_shuffle_i32x4(u[8 + e], u[12 + e], 0xDD);
    v[e] = _mm512_shuffle_i32x4(even_lo, even_hi, 0x88);
    v[8 + e] = _mm512_shuffle_i32x4(even_lo, even_hi, 0xDD);
    v[4 + e] = _mm512_shuffle_i32x4(odd_lo, odd_hi, 0x88);
    v[12 + e] = _mm512_shuffle_i32x4(odd_lo, odd_hi, 0xDD);
  }
}

// A [M, K] into blocks of 16 rows: per unit u, the unit of each row r in turn (64 bytes: one
// zmm). Rows past M and elements past K are zero (no product). 16 rows x 16 units at a time,
// transposed in registers (a 4-byte copy per unit took ~2.4% of a W8A8 call at M = 256).
template <typename TA>
static void rowvec_pack(const TA* a, int64_t M, int64_t K, int64_t a_block, uint8_t* packed) {
  const int64_t row_bytes = K * int64_t(sizeof(TA)), units = (row_bytes + kRowVecUnitBytes - 1) / kRowVecUnitBytes;
  for (int64_t b = 0; b < (M + 15) / 16; ++b) {
    uint8_t* dst = packed + b * a_block;
    for (int64_t u0 = 0; u0 < units; u0 += 16) {
      const int64_t bytes = std::min<int64_t>(64, row_bytes - u0 * kRowVecUnitBytes);
      const __mmask64 mask = bytes >= 64 ? ~__mmask64(0) : (__mmask64(1) << bytes) - 1;
      __m512i v[16];
      for (int r = 0; r < 16; ++r) {
        const int64_t m = 16 * b + r;
        v[r] = m < M ? _mm512_maskz_loadu_epi8(mask, reinterpret_cast<const uint8_t*>(a + m * K) + u0 * kRowVecUnitBytes)
                     : _mm512_setzero_si512();
      }
      rowvec_transpose16(v);
      if (units - u0 >= 16) {
#pragma GCC unroll 16
        for (int i = 0; i < 16; ++i) _mm512_storeu_si512(dst + (u0 + i) * 64, v[i]);
      } else {
        for (int64_t i = 0; i < units - u0; ++i) _mm512_storeu_si512(dst + (u0 + i) * 64, v[i]);
      }
    }
  }
}

static inline __m512i rowvec_broadcast(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof v);
  return _mm512_set1_epi32(v);
}

// c[j][16 i + r] (+)= the dot product over `units` units of row r of A block i and weight row
// j: MZ blocks x NR columns. a points at block 0's first unit (blocks a_block bytes apart), w
// at row 0's (rows ldw bytes apart); the last unit has tail_bytes bytes (0: all 4).
template <class P, bool kStaged, int MZ, int NR>
static void rowvec_tile(const uint8_t* a, int64_t a_block, const uint8_t* w, int64_t ldw, int64_t units,
                        int tail_bytes, typename P::Sum* c, int64_t ldc, bool accumulate) {
  typename P::Acc acc[NR][MZ];
  for (int j = 0; j < NR; ++j)
    for (int i = 0; i < MZ; ++i) acc[j][i] = accumulate ? P::load(c + j * ldc + 16 * i) : P::zero();
  auto step = [&](int64_t u, auto&& weight_unit) {
    __m512i va[MZ];
    for (int i = 0; i < MZ; ++i) va[i] = _mm512_loadu_si512(a + i * a_block + u * 64);
    for (int j = 0; j < NR; ++j) {
      const __m512i vw = weight_unit(w + j * ldw + u * kRowVecUnitBytes);
      for (int i = 0; i < MZ; ++i) acc[j][i] = P::dot(acc[j][i], va[i], vw);
    }
  };
  const int64_t full = tail_bytes ? units - 1 : units;
  int64_t u = 0;
  for (; u + 16 <= full; u += 16) {
    // In place (not staged), one line of each of the next NR weight rows (the next tile's; at
    // small M the next step's): hardware prefetchers stop at every 4 KiB page.
    if constexpr (!kStaged)
      for (int j = 0; j < NR; ++j) __builtin_prefetch(w + (NR + j) * ldw + u * kRowVecUnitBytes, 0, 2);
#pragma GCC unroll 4
    for (int v = 0; v < 16; ++v) step(u + v, rowvec_broadcast);
  }
  for (; u < full; ++u) step(u, rowvec_broadcast);
  if (tail_bytes)
    step(full, [&](const uint8_t* p) {
      int32_t v = 0;
      std::memcpy(&v, p, size_t(tail_bytes));
      return _mm512_set1_epi32(v);
    });
  for (int j = 0; j < NR; ++j)
    for (int i = 0; i < MZ; ++i) P::store(c + j * ldc + 16 * i, acc[j][i]);
}

// Tiles of MZ blocks over columns [0, ncols) of w, NR at a time; a last step of fewer than NR
// columns runs on a zero-padded copy of its rows and writes its spare columns past ncols
// (c has kRowVecMaxNR spare columns).
template <class P, bool kStaged, int MZ, int NR>
static void rowvec_tile_columns(const uint8_t* a, int64_t a_block, const uint8_t* w, int64_t ldw, int64_t ncols,
                                int64_t units, int tail_bytes, typename P::Sum* c, int64_t ldc, bool accumulate,
                                uint8_t* edge) {
  int64_t j = 0;
  for (; j + NR <= ncols; j += NR)
    rowvec_tile<P, kStaged, MZ, NR>(a, a_block, w + j * ldw, ldw, units, tail_bytes, c + j * ldc, ldc, accumulate);
  if (j == ncols) return;
  const int64_t row_bytes = kRowVecUnits * kRowVecUnitBytes;
  const int64_t bytes = units * kRowVecUnitBytes - (tail_bytes ? kRowVecUnitBytes - tail_bytes : 0);
  std::memset(edge, 0, size_t(NR * row_bytes));
  for (int64_t r = 0; r < ncols - j; ++r) std::memcpy(edge + r * row_bytes, w + (j + r) * ldw, size_t(bytes));
  rowvec_tile<P, kStaged, MZ, NR>(a, a_block, edge, row_bytes, units, 0, c + j * ldc, ldc, accumulate);
}

// A tile of mz (1-4) blocks in its register shape: MZ * NR <= 24 accumulators, and at most 12
// weight rows: rows K = 4096 apart share an L1 set (12 ways), and one block against 24 of them
// ran at 0.2 TOP/s on one core (8 rows: 0.75). One block is bound by the broadcasts (one per
// vpdpbusd; 24 staged rows, 1 KiB apart, ran no faster than 8).
template <class P, bool kStaged>
static void rowvec_tile_rows(int mz, const uint8_t* a, int64_t a_block, const uint8_t* w, int64_t ldw,
                             int64_t ncols, int64_t units, int tail_bytes, typename P::Sum* c, int64_t ldc,
                             bool accumulate, uint8_t* edge) {
  switch (mz) {
    case 1: return rowvec_tile_columns<P, kStaged, 1, 8>(a, a_block, w, ldw, ncols, units, tail_bytes, c, ldc, accumulate, edge);
    case 2: return rowvec_tile_columns<P, kStaged, 2, 12>(a, a_block, w, ldw, ncols, units, tail_bytes, c, ldc, accumulate, edge);
    case 3: return rowvec_tile_columns<P, kStaged, 3, 8>(a, a_block, w, ldw, ncols, units, tail_bytes, c, ldc, accumulate, edge);
    default: return rowvec_tile_columns<P, kStaged, 4, 6>(a, a_block, w, ldw, ncols, units, tail_bytes, c, ldc, accumulate, edge);
  }
}

// Rows [m0, m0 + rows) x columns [n0, n0 + ncols <= kRowVecNB) of the output from their sums,
// column-major (column j of the block at sums + j * ldc, row r at + r): epi.columns(col, mask)
// prepares 16 columns and epi.row(cols, m, col, n, acc) finishes row m of them (n real columns).
// Row by row, so that the output is written along its rows (one 16-column group after another
// down the rows wrote a new line 4-16 KiB away each time: ~2% of a W8A8 call at M = 256).
template <class P, typename Epi>
static void rowvec_finish(const typename P::Sum* sums, int64_t ldc, int64_t m0, int64_t rows, int64_t n0,
                          int64_t ncols, const Epi& epi) {
  constexpr int kMaxGroups = int(kRowVecNB / 16);
  const int groups = int((ncols + 15) / 16), last = int(ncols - 16 * (groups - 1));
  const __m512i column_offsets = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                                    _mm512_set1_epi32(int32_t(ldc)));
  auto width = [&](int g) { return g + 1 < groups ? 16 : last; };
  decltype(epi.columns(0, 0)) cols[kMaxGroups];
  for (int g = 0; g < groups; ++g) cols[g] = epi.columns(n0 + 16 * g, __mmask16((1u << width(g)) - 1u));
  for (int64_t r = 0; r < rows; ++r)
    for (int g = 0; g < groups; ++g)
      epi.row(cols[g], m0 + r, n0 + 16 * g, width(g),
              P::gather(column_offsets, __mmask16((1u << width(g)) - 1u), sums + 16 * g * ldc + r));
}

// Rows [0, M) x columns [n_begin, n_end) of A W^T, W from the source `src`; epi as in
// rowvec_finish.
template <class P, class Src, typename Epi>
static void rowvec_gemm(const typename P::TA* a, int64_t M, int64_t K, const Src& src, int64_t n_begin,
                        int64_t n_end, const Epi& epi) {
  using Sum = typename P::Sum;
  constexpr int64_t per = rowvec_per_unit<P>();
  const int64_t units = (K + per - 1) / per, a_block = units * 64;
  const int tail = Src::kStaged ? 0 : int(K % per);  // staged rows are zero-padded to a whole unit
  const int64_t mb_rows = std::min(round_up(M, 16), kRowVecMB);
  const int64_t row_bytes = kRowVecUnits * kRowVecUnitBytes;
  const auto [packed, sums_bytes, edge, staged] = RowVecScratch::of_this_thread().take(std::array<size_t, 4>{
      size_t(mb_rows / 16 * a_block), size_t((kRowVecNB + kRowVecMaxNR) * mb_rows) * sizeof(Sum),
      size_t(kRowVecMaxNR * row_bytes), Src::kStaged ? size_t(kRowVecNB * row_bytes) : 0});
  Sum* const sums = reinterpret_cast<Sum*>(sums_bytes);
  for (int64_t m0 = 0; m0 < M; m0 += kRowVecMB) {
    const int64_t rows = std::min(M - m0, kRowVecMB), blocks = (rows + 15) / 16;
    rowvec_pack(a + m0 * K, rows, K, a_block, packed);
    for (int64_t n0 = n_begin; n0 < n_end; n0 += kRowVecNB) {
      const int64_t ncols = std::min(n_end - n0, kRowVecNB);
      for (int64_t u0 = 0; u0 < units; u0 += kRowVecUnits) {
        const int64_t nu = std::min(units - u0, kRowVecUnits);
        const uint8_t* wb;
        int64_t ldw;
        if constexpr (Src::kStaged) {
          const int64_t k0 = u0 * per, nk = std::min(K - k0, nu * per);
          for (int64_t j = 0; j < ncols; ++j) src.stage(n0 + j, k0, nk, staged + j * row_bytes);
          wb = staged;
          ldw = row_bytes;
        } else {
          wb = reinterpret_cast<const uint8_t*>(src.w + n0 * K) + u0 * kRowVecUnitBytes;
          ldw = K;
        }
        const int tail_bytes = (u0 + nu == units) ? tail : 0;
        for (int64_t b = 0; b < blocks; b += 4)
          rowvec_tile_rows<P, Src::kStaged>(int(std::min<int64_t>(blocks - b, 4)), packed + b * a_block + u0 * 64, a_block,
                              wb, ldw, ncols, nu, tail_bytes, sums + b * 16, mb_rows, u0 > 0, edge);
      }
      rowvec_finish<P>(sums, mb_rows, m0, rows, n0, ncols, epi);
    }
  }
}

// The reference's epilogues, vectorised over 16 columns, each operation rounded on its own (no
// fma contraction), in the reference's order: the reference's bits from the same sums.
constexpr int kRowVecRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

// W8A8 (bigaccel.reference.int8_mm): float(acc - 128 * w_sum) * (a_scale * w_scale) + bias.
template <typename T>
struct RowVecW8A8Epilogue : W8A8Epilogue<T> {  // its operands, 16 columns at a time
  using W8A8Epilogue<T>::a_scale, W8A8Epilogue<T>::w_scale, W8A8Epilogue<T>::w_sum, W8A8Epilogue<T>::bias,
      W8A8Epilogue<T>::out, W8A8Epilogue<T>::N;
  struct Columns {
    __m512i offset;
    __m512 w_scale, bias;
  };
  Columns columns(int64_t col, __mmask16 mask) const {
    return {_mm512_mullo_epi32(_mm512_maskz_loadu_epi32(mask, w_sum + col), _mm512_set1_epi32(DotU8S8::kOffsetA)),
            _mm512_maskz_loadu_ps(mask, w_scale + col),
            bias ? _mm512_maskz_loadu_ps(mask, bias + col) : _mm512_setzero_ps()};
  }
  void row(const Columns& c, int64_t m, int64_t col, int n, __m512i acc) const {
    const __m512 scale = _mm512_mul_round_ps(_mm512_set1_ps(a_scale[m]), c.w_scale, kRowVecRound);
    __m512 v = _mm512_mul_round_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc, c.offset)), scale, kRowVecRound);
    if (bias) v = _mm512_add_round_ps(v, c.bias, kRowVecRound);
    VecF{v}.store(out + m * N + col, n);
  }
};

// W8A16 (bigaccel.reference.int8_weight_only_mm): acc * w_scale + bias; without w_scale (W4A16,
// whose staged weight has its scales in it: bigaccel.reference.int4_mm) acc + bias.
template <typename T>
struct RowVecFloatEpilogue {
  const float* w_scale;
  const float* bias;
  T* out;
  int64_t N;
  struct Columns {
    __m512 w_scale, bias;
  };
  Columns columns(int64_t col, __mmask16 mask) const {
    return {w_scale ? _mm512_maskz_loadu_ps(mask, w_scale + col) : _mm512_setzero_ps(),
            bias ? _mm512_maskz_loadu_ps(mask, bias + col) : _mm512_setzero_ps()};
  }
  void row(const Columns& c, int64_t m, int64_t col, int n, __m512 acc) const {
    __m512 v = w_scale ? _mm512_mul_round_ps(acc, c.w_scale, kRowVecRound) : acc;
    if (bias) v = _mm512_add_round_ps(v, c.bias, kRowVecRound);
    VecF{v}.store(out + m * N + col, n);
  }
};

}  // namespace bigaccel::BIGACCEL_ISA_NS
