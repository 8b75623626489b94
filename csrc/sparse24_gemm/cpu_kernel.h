// 2:4 sparse GEMM on CPU, written once for every ISA: out = x @ W.T + bias with W
// held compressed (bigaccel.reference.compress_2_4): values [N, K/2], meta uint8
// [N, ceil(K/8)], one nibble per group of 4 along K (i0 = bits 0-1, i1 = bits 2-3,
// group 2j in the low nibble of byte j).
//
// Only the kept values and the metadata are read. Because the nibbles of
// consecutive groups are consecutive, the 2-bit index of value j of a row is
// bits [2j, 2j+2) of the row's metadata, so 8 groups (16 values) take one 32-bit
// load; their dense positions 4*(j/2) + index select from x by permutes of 8-float
// windows (two groups each; AVX2's gather measured ~3x slower here), or, with bf16
// activations, by byte shuffles that widen to fp32 as they select. Accumulation is
// fp32, one rounding to the output dtype at the end.
//
// The 2:4 + int8 (W8A8) kernel below works differently: see expand_row_2_4.
#pragma once

#include <type_traits>

#include "common/cpu_isa.h"
#include "common/dot_tile.h"
#if BIGACCEL_VEC_LEVEL == BIGACCEL_ISA_AVX512
#include "common/rowvec_gemm.h"
#include "sparse24_gemm/cpu_gemv_avx512.h"
#endif

namespace bigaccel::BIGACCEL_ISA_NS {

#if BIGACCEL_VEC_LEVEL >= BIGACCEL_ISA_AVX2
static inline __m256 load8_values(const float* v) { return _mm256_loadu_ps(v); }
static inline __m256 load8_values(const bf16_t* v) {
  const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(v));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(raw), 16));
}
static inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
#endif

// Rows of x processed together: each loaded value and index serves MR rows.
constexpr int kSparse24RowTile = 4;

#if BIGACCEL_VEC_LEVEL >= BIGACCEL_ISA_AVX2
// bf16 activations: one 16-byte lane of x is two groups (8 bf16), and one metadata byte
// says which four of them the groups' kept values meet. A byte shuffle by ctrl[meta byte]
// moves each into the high half of a 32-bit lane, zeros below: the four as fp32, in the
// order of the kept values. Half the vector operations of the fp32 permutes, and x stays
// half the size (K = 11008 in bf16 fits L1, in fp32 it did not).
struct GatherBf16Table {
  alignas(16) uint8_t ctrl[256][16];
  constexpr GatherBf16Table() : ctrl() {
    for (unsigned b = 0; b < 256; ++b)
      for (unsigned group = 0; group < 2; ++group) {
        const unsigned nibble = (b >> (4 * group)) & 0xF;
        for (unsigned j = 0; j < 2; ++j) {
          const unsigned pos = 4 * group + (j ? nibble >> 2 : nibble & 3), lane = 4 * (2 * group + j);
          ctrl[b][lane] = ctrl[b][lane + 1] = 0x80;  // a shuffle reads 0x80 as zero
          ctrl[b][lane + 2] = uint8_t(2 * pos);
          ctrl[b][lane + 3] = uint8_t(2 * pos + 1);
        }
      }
  }
};
alignas(64) static constexpr GatherBf16Table kGatherBf16{};

// Controls for 16 bytes of x from metadata byte `lo` and the next 16 from `hi`.
static inline __m256i gather_bf16_control(uint8_t lo, uint8_t hi) {
  return _mm256_inserti128_si256(
      _mm256_castsi128_si256(_mm_load_si128(reinterpret_cast<const __m128i*>(kGatherBf16.ctrl[lo]))),
      _mm_load_si128(reinterpret_cast<const __m128i*>(kGatherBf16.ctrl[hi])), 1);
}
static inline __m256 gather_bf16(const bf16_t* x, __m256i control) {
  return _mm256_castsi256_ps(_mm256_shuffle_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x)), control));
}
#endif

// Rows [m0, m0 + MR) x columns [n_begin, n_end); X (the activations) float or bf16_t.
template <int MR, typename X, typename V, typename O>
static void sparse24_rows(const X* x, int64_t m0, int64_t K, const V* values, const uint8_t* meta, int64_t N,
                          int64_t n_begin, int64_t n_end, const float* bias, O* out) {
  const int64_t groups = K / 4, row_values = K / 2, row_meta = (K + 7) / 8;
  const X* xm = x + m0 * K;
  for (int64_t n = n_begin; n < n_end; ++n) {
    const V* v = values + n * row_values;
    const uint8_t* mt = meta + n * row_meta;
    float acc[MR] = {};
    int64_t g = 0;
#if BIGACCEL_VEC_LEVEL == BIGACCEL_ISA_AVX512
    if constexpr (std::is_same_v<X, bf16_t> && std::is_same_v<V, bf16_t>)
      g = sparse24_bf16_steps<MR>(xm, K, v, mt, groups, row_values, row_meta, acc);
#endif
#if BIGACCEL_VEC_LEVEL >= BIGACCEL_ISA_AVX2
    // With one or two rows, two accumulators a row (the step's low and high values): with
    // one, each step waited on two dependent FMAs (8 cycles a step; a bf16 row then read
    // ~12 GB/s a core, now ~15). With more rows the rows are the independent chains, and
    // twice the accumulators would not fit the registers.
    constexpr bool kSplit = MR <= 2;
    __m256 vacc[MR], vacc_hi[MR];  // vacc_hi only with kSplit
    for (int r = 0; r < MR; ++r) vacc[r] = vacc_hi[r] = _mm256_setzero_ps();
    const __m256i shift_lo = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
    const __m256i shift_hi = _mm256_setr_epi32(16, 18, 20, 22, 24, 26, 28, 30);
    // Lanes 0-3 of a step's 8 values come from one 8-float window of x (two groups), lanes
    // 4-7 from the next: a permute of each window by the same indices, then a blend.
    const __m256i window_base = _mm256_setr_epi32(0, 0, 4, 4, 0, 0, 4, 4);
    const __m256i three = _mm256_set1_epi32(3);
    for (; g + 8 <= groups; g += 8) {  // meta bytes g/2 .. g/2+3 exist since g+8 <= groups
      const uint8_t* step_meta = mt + g / 2;
      __m256i idx_lo, idx_hi;  // fp32 x: permute indices; bf16 x: shuffle controls
      if constexpr (std::is_same_v<X, bf16_t>) {
        idx_lo = gather_bf16_control(step_meta[0], step_meta[1]);
        idx_hi = gather_bf16_control(step_meta[2], step_meta[3]);
      } else {
        uint32_t bits;
        std::memcpy(&bits, step_meta, 4);
        const __m256i b = _mm256_set1_epi32(int(bits));
        idx_lo = _mm256_add_epi32(_mm256_and_si256(_mm256_srlv_epi32(b, shift_lo), three), window_base);
        idx_hi = _mm256_add_epi32(_mm256_and_si256(_mm256_srlv_epi32(b, shift_hi), three), window_base);
      }
      const __m256 v_lo = load8_values(v + 2 * g), v_hi = load8_values(v + 2 * g + 8);
      // The next column's values and metadata, at this step's offset, into L2: each column is
      // two streams that cross 4 KiB pages, where the hardware prefetchers stop. One thread,
      // bf16, 4096 x 11008 from DRAM: 14.3 -> 22.3 GB/s (2 columns ahead measured the same).
      __builtin_prefetch(v + row_values + 2 * g, 0, 2);
      if ((g & 31) == 0) __builtin_prefetch(mt + row_meta + g / 2, 0, 2);
      for (int r = 0; r < MR; ++r) {
        const X* xr = xm + r * K + 4 * g;
        __m256 x_lo, x_hi;
        if constexpr (std::is_same_v<X, bf16_t>) {
          x_lo = gather_bf16(xr, idx_lo);
          x_hi = gather_bf16(xr + 16, idx_hi);
        } else {
          x_lo = _mm256_blend_ps(_mm256_permutevar8x32_ps(_mm256_loadu_ps(xr), idx_lo),
                                 _mm256_permutevar8x32_ps(_mm256_loadu_ps(xr + 8), idx_lo), 0xF0);
          x_hi = _mm256_blend_ps(_mm256_permutevar8x32_ps(_mm256_loadu_ps(xr + 16), idx_hi),
                                 _mm256_permutevar8x32_ps(_mm256_loadu_ps(xr + 24), idx_hi), 0xF0);
        }
        vacc[r] = _mm256_fmadd_ps(v_lo, x_lo, vacc[r]);
        if constexpr (kSplit)
          vacc_hi[r] = _mm256_fmadd_ps(v_hi, x_hi, vacc_hi[r]);
        else
          vacc[r] = _mm256_fmadd_ps(v_hi, x_hi, vacc[r]);
      }
    }
    for (int r = 0; r < MR; ++r) acc[r] += hsum8(kSplit ? _mm256_add_ps(vacc[r], vacc_hi[r]) : vacc[r]);
#endif
    for (; g < groups; ++g) {
      const int nib = (mt[g >> 1] >> ((g & 1) * 4)) & 0xF;
      const float v0 = to_float(v[2 * g]), v1 = to_float(v[2 * g + 1]);
      for (int r = 0; r < MR; ++r) {
        const X* xr = xm + r * K + 4 * g;
        acc[r] += v0 * to_float(xr[nib & 3]) + v1 * to_float(xr[nib >> 2]);
      }
    }
    const float b = bias ? bias[n] : 0.f;
    for (int r = 0; r < MR; ++r) from_float(acc[r] + b, out + (m0 + r) * N + n);
  }
}

template <typename X, typename V, typename O>
static void sparse24_typed(const X* x, int64_t M, int64_t K, const V* values, const uint8_t* meta, int64_t N,
                           int64_t n_begin, int64_t n_end, const float* bias, O* out) {
  constexpr int MR = kSparse24RowTile;
  int64_t m0 = 0;
  for (; m0 + MR <= M; m0 += MR) sparse24_rows<MR>(x, m0, K, values, meta, N, n_begin, n_end, bias, out);
  switch (M - m0) {
    case 3: return sparse24_rows<3>(x, m0, K, values, meta, N, n_begin, n_end, bias, out);
    case 2: return sparse24_rows<2>(x, m0, K, values, meta, N, n_begin, n_end, bias, out);
    case 1: return sparse24_rows<1>(x, m0, K, values, meta, N, n_begin, n_end, bias, out);
    default: return;
  }
}

template <typename X, typename V>
static void sparse24_out(const X* x, int64_t M, int64_t K, const V* values, const uint8_t* meta, int64_t N,
                         int64_t n_begin, int64_t n_end, const float* bias, void* out, DType out_dtype) {
  with_element_type(out_dtype, [&](auto tag) {
    sparse24_typed(x, M, K, values, meta, N, n_begin, n_end, bias, static_cast<decltype(tag)*>(out));
  });
}

template <typename X>
static void sparse24_values(const X* x, int64_t M, int64_t K, const void* values, bool values_bf16,
                            const uint8_t* meta, int64_t N, int64_t n_begin, int64_t n_end, const float* bias,
                            void* out, DType out_dtype) {
  if (values_bf16)
    sparse24_out(x, M, K, static_cast<const bf16_t*>(values), meta, N, n_begin, n_end, bias, out, out_dtype);
  else
    sparse24_out(x, M, K, static_cast<const float*>(values), meta, N, n_begin, n_end, bias, out, out_dtype);
}

void sparse24_mm_cols(const void* x, bool x_bf16, int64_t M, int64_t K, const void* values, bool values_bf16,
                      const uint8_t* meta, int64_t N, int64_t n_begin, int64_t n_end, const float* bias, void* out,
                      DType out_dtype) {
  if (x_bf16)
    sparse24_values(static_cast<const bf16_t*>(x), M, K, values, values_bf16, meta, N, n_begin, n_end, bias, out,
                    out_dtype);
  else
    sparse24_values(static_cast<const float*>(x), M, K, values, values_bf16, meta, N, n_begin, n_end, bias, out,
                    out_dtype);
}

// Rows [n_begin, n_end) of the compressed weight as dense fp32 rows (zeros where pruned),
// consecutive in `dense`: the large-M path multiplies blocks of them with torch's fp32 GEMM.
// One metadata byte (two groups, four values) becomes 8 dense floats by one permute of the
// four values, whose table sends pruned positions to a zero lane.
struct ExpandF32Table {
  int32_t idx[256][8];
  constexpr ExpandF32Table() : idx() {
    for (unsigned b = 0; b < 256; ++b) {
      for (int d = 0; d < 8; ++d) idx[b][d] = 4;  // lanes 4..7 of the permuted vector are zero
      for (unsigned group = 0; group < 2; ++group) {
        const unsigned nibble = (b >> (4 * group)) & 0xF;
        idx[b][4 * group + (nibble & 3)] = int32_t(2 * group);
        idx[b][4 * group + (nibble >> 2)] = int32_t(2 * group + 1);
      }
    }
  }
};
alignas(32) static constexpr ExpandF32Table kExpandF32Table{};

template <typename V>
static void expand_rows_f32_typed(const V* values, const uint8_t* meta, int64_t K, int64_t n_begin, int64_t n_end,
                                  float* dense) {
  const int64_t groups = K / 4, row_values = K / 2, row_meta = (K + 7) / 8;
  for (int64_t n = n_begin; n < n_end; ++n, dense += K) {
    const V* v = values + n * row_values;
    const uint8_t* mt = meta + n * row_meta;
    int64_t g = 0;
#if BIGACCEL_VEC_LEVEL >= BIGACCEL_ISA_AVX2
    for (; g + 2 <= groups; g += 2) {
      __m128 four;
      if constexpr (std::is_same_v<V, float>) {
        four = _mm_loadu_ps(v + 2 * g);
      } else {
        const __m128i raw = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(v + 2 * g));
        four = _mm_castsi128_ps(_mm_slli_epi32(_mm_cvtepu16_epi32(raw), 16));
      }
      const __m256i idx = _mm256_load_si256(reinterpret_cast<const __m256i*>(kExpandF32Table.idx[mt[g / 2]]));
      const __m256 eight = _mm256_insertf128_ps(_mm256_setzero_ps(), four, 0);
      _mm256_storeu_ps(dense + 4 * g, _mm256_permutevar8x32_ps(eight, idx));
    }
#endif
    for (; g < groups; ++g) {
      const int nib = (mt[g >> 1] >> ((g & 1) * 4)) & 0xF;
      for (int j = 0; j < 4; ++j) dense[4 * g + j] = 0.0f;
      dense[4 * g + (nib & 3)] = to_float(v[2 * g]);
      dense[4 * g + (nib >> 2)] = to_float(v[2 * g + 1]);
    }
  }
}

void sparse24_expand_rows_f32(const void* values, bool values_bf16, const uint8_t* meta, int64_t K, int64_t n_begin,
                              int64_t n_end, float* dense) {
  if (values_bf16)
    expand_rows_f32_typed(static_cast<const bf16_t*>(values), meta, K, n_begin, n_end, dense);
  else
    expand_rows_f32_typed(static_cast<const float*>(values), meta, K, n_begin, n_end, dense);
}

// ---------------------------------------------------------------------------
// 2:4 + int8 (W8A8): int8 values [N, K/2] with the same metadata, u8-shifted
// activations as in int8_gemm/cpu_kernel.h, the reference's int8_mm epilogue.
//
// Gathering single bytes of activations would cost more than the products they
// feed, so the kernel expands a few weight rows at a time into a dense int8 copy
// (in L1) and runs the dense int8 tile of common/dot_tile.h over it for every row
// of activations: DRAM sees the compressed bytes (K/2 + K/8 a row instead of K),
// the expansion is one byte shuffle per 16 weights, amortised over the rows of A.
// ---------------------------------------------------------------------------

// Shuffle control for one metadata byte (two groups, four values): byte d of the
// 8 dense bytes takes value byte ctrl[d] (0..3), or 0x80, which a shuffle reads as zero.
static constexpr uint64_t expand_control(unsigned meta_byte) {
  uint64_t ctrl = 0x8080808080808080ull;
  for (unsigned group = 0; group < 2; ++group) {
    const unsigned nibble = (meta_byte >> (4 * group)) & 0xF;
    const unsigned slots[2] = {4 * group + (nibble & 3), 4 * group + (nibble >> 2)};
    for (unsigned j = 0; j < 2; ++j) {
      ctrl &= ~(uint64_t(0xFF) << (8 * slots[j]));
      ctrl |= uint64_t(2 * group + j) << (8 * slots[j]);
    }
  }
  return ctrl;
}

struct ExpandTable {
  uint64_t ctrl[256];
  constexpr ExpandTable() : ctrl() {
    for (unsigned b = 0; b < 256; ++b) ctrl[b] = expand_control(b);
  }
};
static constexpr ExpandTable kExpandTable{};

// One compressed int8 row -> K dense bytes (zeros where pruned).
static inline void expand_row_2_4(const int8_t* v, const uint8_t* meta, int64_t K, int8_t* dense) {
  const int64_t groups = K / 4;
  int64_t g = 0;
#if BIGACCEL_VEC_LEVEL >= BIGACCEL_ISA_AVX2
  // Four groups a step: 8 values and 2 metadata bytes -> 16 dense bytes. The second
  // byte's control indexes values 4..7 (+4 per byte; 0x80 + 4 still reads as zero).
  for (; g + 4 <= groups; g += 4) {
    const uint64_t lo = kExpandTable.ctrl[meta[g / 2]];
    const uint64_t hi = kExpandTable.ctrl[meta[g / 2 + 1]] + 0x0404040404040404ull;
    const __m128i ctrl = _mm_set_epi64x(int64_t(hi), int64_t(lo));
    const __m128i vals = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(v + 2 * g));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dense + 4 * g), _mm_shuffle_epi8(vals, ctrl));
  }
#endif
  for (; g < groups; ++g) {
    const unsigned nibble = (meta[g / 2] >> ((g & 1) * 4)) & 0xF;
    int8_t* d = dense + 4 * g;
    d[0] = d[1] = d[2] = d[3] = 0;
    d[nibble & 3] = v[2 * g];
    d[nibble >> 2] = v[2 * g + 1];
  }
}

#if BIGACCEL_VEC_LEVEL == BIGACCEL_ISA_AVX512
// From this M (as dense W8A8: int8_gemm/cpu_kernel.h), common/rowvec_gemm.h's outer-product GEMM
// on chunks of the weight expanded to dense int8.
constexpr int64_t kSparse24Int8RowVecMinRows = 12;

static inline void expand_row_bf16(const bf16_t* v, const uint8_t* meta, int64_t K, int64_t kp, bf16_t* dense);

// A 2:4 weight staged for rowvec_gemm: each chunk of a row expanded to dense int8 or bf16 (exact).
template <typename V>
struct RowVecStaged24 {
  static constexpr bool kStaged = true;
  const V* values;      // [N, K/2]
  const uint8_t* meta;  // [N, ceil(K/8)]
  int64_t K;
  // k0 is a multiple of the chunk (512 or 1024 k), so of 8: whole metadata bytes; nk of 4.
  void stage(int64_t n, int64_t k0, int64_t nk, uint8_t* dst) const {
    const V* v = values + n * (K / 2) + k0 / 2;
    if (k0 + nk < K) prefetch_l2(v + nk / 2, std::min(K - k0 - nk, nk) / 2 * int64_t(sizeof(V)));
    const uint8_t* mt = meta + n * ((K + 7) / 8) + k0 / 8;
    if constexpr (std::is_same_v<V, int8_t>)
      expand_row_2_4(v, mt, nk, reinterpret_cast<int8_t*>(dst));
    else
      expand_row_bf16(v, mt, nk, nk, reinterpret_cast<bf16_t*>(dst));
  }
};
#endif

#if BIGACCEL_VEC_LEVEL >= BIGACCEL_ISA_AVX2
// Small M: expanding costs more than the products it feeds (it is not amortised), so
// the GEMV instead gathers, with byte shuffles, the activations that the kept values
// meet. 16 groups (32 values, 64 k) a step; the values are taken in the order
// [v0..7, v16..23 | v8..15, v24..31] (one permute), so that each 16-byte lane of the
// shuffles reads one 16-byte lane of activations.
constexpr int kSparse24GemvMaxRows = 4;

// Shuffle controls for the two 32-byte blocks of activations of one step: c0 fills bytes
// 0..7 of each lane (values 0..15, from the first block), c1 bytes 8..15 (values 16..31).
static inline void gather_controls(const uint8_t* meta, __m256i& c0, __m256i& c1) {
  // Value j's 2-bit index is bits [2j, 2j+2) of the metadata: pdep spreads 16 bits (eight
  // values) into the low bits of eight bytes, on the integer units, leaving the vector
  // units to the products.
  uint64_t m;
  std::memcpy(&m, meta, 8);
  constexpr uint64_t kTwoBitsPerByte = 0x0303030303030303ull;
  const __m256i idx = _mm256_set_epi64x(int64_t(_pdep_u64(m >> 48, kTwoBitsPerByte)),   // values 24..31
                                        int64_t(_pdep_u64(m >> 16, kTwoBitsPerByte)),   // values 8..15
                                        int64_t(_pdep_u64(m >> 32, kTwoBitsPerByte)),   // values 16..23
                                        int64_t(_pdep_u64(m, kTwoBitsPerByte)));        // values 0..7
  const __m256i c = _mm256_add_epi8(idx, _mm256_setr_epi8(0, 0, 4, 4, 8, 8, 12, 12, 0, 0, 4, 4, 8, 8, 12, 12,  //
                                                          0, 0, 4, 4, 8, 8, 12, 12, 0, 0, 4, 4, 8, 8, 12, 12));
  const __m256i high_half = _mm256_setr_epi64x(0, -1, 0, -1);  // 0x80 in a control byte reads zero
  c0 = _mm256_or_si256(c, _mm256_and_si256(high_half, _mm256_set1_epi8(char(0x80))));
  c1 = _mm256_or_si256(c, _mm256_andnot_si256(high_half, _mm256_set1_epi8(char(0x80))));
}

template <int MR, typename T>
static void sparse24_int8_gemv(const uint8_t* a, int64_t K, const int8_t* values, const uint8_t* meta, int64_t n_begin,
                               int64_t n_end, const int32_t* w_sum, const W8A8Epilogue<T>& epi) {
  const int64_t groups = K / 4, row_values = K / 2, row_meta = (K + 7) / 8;
  const __m256i sign_flip = _mm256_set1_epi8(char(0x80)), ones = _mm256_set1_epi16(1);
  for (int64_t n = n_begin; n < n_end; ++n) {
    const int8_t* v = values + n * row_values;
    const uint8_t* mt = meta + n * row_meta;
    __m256i acc[MR];
    for (int r = 0; r < MR; ++r) acc[r] = _mm256_setzero_si256();
    int64_t g = 0;
    for (; g + 16 <= groups; g += 16) {
      __m256i c0, c1;
      gather_controls(mt + g / 2, c0, c1);
      const __m256i w = _mm256_permute4x64_epi64(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(v + 2 * g)),
                                                 _MM_SHUFFLE(3, 1, 2, 0));
      const __m256i abs_w = _mm256_abs_epi8(w);
      for (int r = 0; r < MR; ++r) {
        const uint8_t* ar = a + r * K + 4 * g;
        const __m256i x = _mm256_xor_si256(  // back to signed int8 (the caller's +128 shift)
            _mm256_or_si256(_mm256_shuffle_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(ar)), c0),
                            _mm256_shuffle_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(ar + 32)), c1)),
            sign_flip);
        // |w| * (x with w's sign): pairs stay within int16 (|x|, |w| <= 127).
        acc[r] = _mm256_add_epi32(acc[r], _mm256_madd_epi16(_mm256_maddubs_epi16(abs_w, _mm256_sign_epi8(x, w)), ones));
      }
    }
    int32_t sum[MR];
    for (int r = 0; r < MR; ++r) sum[r] = reduce_add_epi32(acc[r]);
    for (; g < groups; ++g) {
      const unsigned nibble = (mt[g / 2] >> ((g & 1) * 4)) & 0xF;
      for (int r = 0; r < MR; ++r) {
        const uint8_t* ar = a + r * K + 4 * g;
        sum[r] += (int(ar[nibble & 3]) - 128) * v[2 * g] + (int(ar[nibble >> 2]) - 128) * v[2 * g + 1];
      }
    }
    // The epilogue expects the dot products of the shifted activations (kOffsetA).
    for (int r = 0; r < MR; ++r) epi(r, n, sum[r] + DotU8S8::kOffsetA * w_sum[n]);
  }
}

template <int MR, typename T>
static void sparse24_int8_gemv_rows(int mr, const uint8_t* a, int64_t K, const int8_t* values, const uint8_t* meta,
                                    int64_t n_begin, int64_t n_end, const int32_t* w_sum,
                                    const W8A8Epilogue<T>& epi) {
  if constexpr (MR > 1)
    if (mr < MR) return sparse24_int8_gemv_rows<MR - 1>(mr, a, K, values, meta, n_begin, n_end, w_sum, epi);
  sparse24_int8_gemv<MR>(a, K, values, meta, n_begin, n_end, w_sum, epi);
}
#endif

// `scratch` holds kSparse24ExpandedRows * K bytes (one per thread).
constexpr int kSparse24ExpandedRows = 8;

template <typename T>
static void sparse24_int8_typed(const uint8_t* a, int64_t M, int64_t K, const int8_t* values, const uint8_t* meta,
                                int64_t N, int64_t n_begin, int64_t n_end, const float* a_scale,
                                const float* w_scale, const int32_t* w_sum, const float* bias, int8_t* scratch,
                                T* out) {
#if BIGACCEL_VEC_LEVEL == BIGACCEL_ISA_AVX512
  if (M >= kSparse24Int8RowVecMinRows)
    return rowvec_gemm<RowVecU8S8>(a, M, K, RowVecStaged24<int8_t>{values, meta, K}, n_begin, n_end,
                                   RowVecW8A8Epilogue<T>{{a_scale, w_scale, w_sum, bias, out, N}});
#endif
  constexpr int MR = DotU8S8::kTileM, NR = DotU8S8::kTileN;
  static_assert(NR <= kSparse24ExpandedRows, "the scratch buffer holds kSparse24ExpandedRows expanded rows");
  W8A8Epilogue<T> epi{a_scale, w_scale, w_sum, bias, out, N};
#if BIGACCEL_VEC_LEVEL >= BIGACCEL_ISA_AVX2
  if (M <= kSparse24GemvMaxRows) {
#if BIGACCEL_VEC_LEVEL == BIGACCEL_ISA_AVX512
    static_assert(DotU8S8::kOffsetA == 128, "the VBMI GEMV's sums are of the shifted activations");
    if (cpu::has_avx512_vbmi())
      return sparse24_int8_gemv_vbmi_rows<kSparse24GemvMaxRows>(int(M), a, K, values, meta, n_begin, n_end, epi);
#endif
    return sparse24_int8_gemv_rows<kSparse24GemvMaxRows>(int(M), a, K, values, meta, n_begin, n_end, w_sum, epi);
  }
#endif
  // A in MR-row panels (dot_tile.h), copied by each thread. With the prefetch below: 1.2-1.5x at
  // M = 8-16, 1.15-1.3x at 32-63 (2 threads, Zen 5, Llama-7B's three shapes, same run).
  constexpr int kC = DotU8S8::kBytes;
  const int64_t kp = round_up(K, kC), row_values = K / 2, row_meta = (K + 7) / 8;
  uint8_t* panels = new uint8_t[size_t(panel_elems(M, K, MR, kC))];
  pack_panels<MR, kC>(a, K, M, K, panels);
  // Each block of rows is expanded once for all of A (blocking A by L2 had repeated the
  // expansion per block of rows: 0.47x the dense W8A8 at M = 64, K = 11008).
  for (int64_t n = n_begin; n < n_end; n += NR) {
    const int nr = int(n_end - n < NR ? n_end - n : NR);
    for (int j = 0; j < nr; ++j) {
      prefetch_l2(values + (n + NR + j) * row_values, row_values);  // the next block's row (1.1-1.2x)
      expand_row_2_4(values + (n + j) * row_values, meta + (n + j) * row_meta, K, scratch + j * K);
    }
    for (int64_t m = 0; m < M; m += MR) {
      const ARows<uint8_t, kC> rows{panels + m * kp, kC, MR * kC};
      dot_tile_edge<DotU8S8, MR, NR>(int(M - m < MR ? M - m : MR), nr, rows, scratch, K, K, m, n, epi);
    }
  }
  delete[] panels;
}

void sparse24_int8_mm_cols(const uint8_t* a, int64_t M, int64_t K, const int8_t* values, const uint8_t* meta,
                           int64_t N, int64_t n_begin, int64_t n_end, const float* a_scale, const float* w_scale,
                           const int32_t* w_sum, const float* bias, int8_t* scratch, void* out, DType out_dtype) {
  with_element_type(out_dtype, [&](auto tag) {
    sparse24_int8_typed(a, M, K, values, meta, N, n_begin, n_end, a_scale, w_scale, w_sum, bias, scratch,
                        static_cast<decltype(tag)*>(out));
  });
}

}  // namespace bigaccel::BIGACCEL_ISA_NS

#if BIGACCEL_VEC_LEVEL == BIGACCEL_ISA_AVX512
#include "sparse24_gemm/cpu_bf16.h"
#include "sparse24_gemm/cpu_rowvec.h"
#endif
