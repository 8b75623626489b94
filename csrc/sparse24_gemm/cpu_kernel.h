// 2:4 sparse GEMM on CPU, written once for every ISA: out = x @ W.T + bias with W
// held compressed (bigaccel.reference.compress_2_4): values [N, K/2], meta uint8
// [N, ceil(K/8)], one nibble per group of 4 along K (i0 = bits 0-1, i1 = bits 2-3,
// group 2j in the low nibble of byte j).
//
// Only the kept values and the metadata are read. Because the nibbles of
// consecutive groups are consecutive, the 2-bit index of value j of a row is
// bits [2j, 2j+2) of the row's metadata, so 8 groups (16 values) take one 32-bit
// load; their dense positions 4*(j/2) + index are gathered from x. Accumulation
// is fp32, one rounding to the output dtype at the end.
#pragma once

#include "common/dtypes.h"

namespace bigaccel::BIGACCEL_ISA_NS {

static inline float load_value(const float* v) { return *v; }
static inline float load_value(const bf16_t* v) { return to_float(*v); }

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

template <typename V, typename O>
static void sparse24_typed(const float* x, int64_t M, int64_t K, const V* values, const uint8_t* meta, int64_t N,
                           int64_t n_begin, int64_t n_end, const float* bias, O* out) {
  constexpr int MR = kSparse24RowTile;
  const int64_t groups = K / 4, row_values = K / 2, row_meta = (K + 7) / 8;
  for (int64_t m0 = 0; m0 < M; m0 += MR) {
    const int mr = M - m0 < MR ? int(M - m0) : MR;
    const float* xm = x + m0 * K;
    for (int64_t n = n_begin; n < n_end; ++n) {
      const V* v = values + n * row_values;
      const uint8_t* mt = meta + n * row_meta;
      float acc[MR] = {0.f, 0.f, 0.f, 0.f};
      int64_t g = 0;
#if BIGACCEL_VEC_LEVEL >= BIGACCEL_ISA_AVX2
      __m256 vacc[MR];
      for (int r = 0; r < MR; ++r) vacc[r] = _mm256_setzero_ps();
      const __m256i shift_lo = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
      const __m256i shift_hi = _mm256_setr_epi32(16, 18, 20, 22, 24, 26, 28, 30);
      const __m256i base_lo = _mm256_setr_epi32(0, 0, 4, 4, 8, 8, 12, 12);
      const __m256i base_hi = _mm256_setr_epi32(16, 16, 20, 20, 24, 24, 28, 28);
      const __m256i three = _mm256_set1_epi32(3);
      for (; g + 8 <= groups; g += 8) {  // meta bytes g/2 .. g/2+3 exist since g+8 <= groups
        uint32_t bits;
        std::memcpy(&bits, mt + g / 2, 4);
        const __m256i b = _mm256_set1_epi32(int(bits));
        const __m256i idx_lo = _mm256_add_epi32(_mm256_and_si256(_mm256_srlv_epi32(b, shift_lo), three), base_lo);
        const __m256i idx_hi = _mm256_add_epi32(_mm256_and_si256(_mm256_srlv_epi32(b, shift_hi), three), base_hi);
        const __m256 v_lo = load8_values(v + 2 * g), v_hi = load8_values(v + 2 * g + 8);
        for (int r = 0; r < mr; ++r) {
          const float* xr = xm + r * K + 4 * g;
          vacc[r] = _mm256_fmadd_ps(v_lo, _mm256_i32gather_ps(xr, idx_lo, 4), vacc[r]);
          vacc[r] = _mm256_fmadd_ps(v_hi, _mm256_i32gather_ps(xr, idx_hi, 4), vacc[r]);
        }
      }
      for (int r = 0; r < mr; ++r) acc[r] = hsum8(vacc[r]);
#endif
      for (; g < groups; ++g) {
        const int nib = (mt[g >> 1] >> ((g & 1) * 4)) & 0xF;
        const float v0 = load_value(v + 2 * g), v1 = load_value(v + 2 * g + 1);
        for (int r = 0; r < mr; ++r) {
          const float* xr = xm + r * K + 4 * g;
          acc[r] += v0 * xr[nib & 3] + v1 * xr[nib >> 2];
        }
      }
      const float b = bias ? bias[n] : 0.f;
      for (int r = 0; r < mr; ++r) from_float(acc[r] + b, out + (m0 + r) * N + n);
    }
  }
}

template <typename V>
static void sparse24_out(const float* x, int64_t M, int64_t K, const V* values, const uint8_t* meta, int64_t N,
                         int64_t n_begin, int64_t n_end, const float* bias, void* out, DType out_dtype) {
  with_element_type(out_dtype, [&](auto tag) {
    sparse24_typed(x, M, K, values, meta, N, n_begin, n_end, bias, static_cast<decltype(tag)*>(out));
  });
}

void sparse24_mm_cols(const float* x, int64_t M, int64_t K, const void* values, bool values_bf16,
                      const uint8_t* meta, int64_t N, int64_t n_begin, int64_t n_end, const float* bias, void* out,
                      DType out_dtype) {
  if (values_bf16)
    sparse24_out(x, M, K, static_cast<const bf16_t*>(values), meta, N, n_begin, n_end, bias, out, out_dtype);
  else
    sparse24_out(x, M, K, static_cast<const float*>(values), meta, N, n_begin, n_end, bias, out, out_dtype);
}

}  // namespace bigaccel::BIGACCEL_ISA_NS
