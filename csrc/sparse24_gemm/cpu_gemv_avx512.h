// The 2:4 GEMV's main loop for bf16 activations and bf16 values on AVX-512 (included by
// cpu_kernel.h in that tier only; AVX512F/BW). The AVX2 form (cpu_kernel.h) builds a byte-shuffle
// control from two 16-byte table rows per 8 kept values; this one takes a step of 16 groups
// (64 k, 32 kept values, 8 metadata bytes) in about half the vector operations:
// - the step's 32 values are one load; lane l of `even` (a shift) is slot 0 of group l, of
//   `odd` (a mask) slot 1, each the high half of an fp32;
// - for lane l, x's word 4l + pos is picked from the step's 64 x words by one vpermt2w, zeroed
//   in the low half of the lane (the fp32 of that bf16);
// - the word indices come from the 64 metadata bits: dword lanes 0-7 take the low 32 bits and
//   8-15 the high 32 (one vpermd), each lane's 2-bit field is rotated to bits 16-17 (vprolvd)
//   and merged with 4l << 16 (vpternlogd).
#pragma once

namespace bigaccel::BIGACCEL_ISA_NS {

struct Sparse24Bf16Step {
  __m512i half_select, rotate_even, rotate_odd, base;
  Sparse24Bf16Step() {
    alignas(64) int32_t sel[16], re[16], ro[16], b[16];
    for (int l = 0; l < 16; ++l) {
      const int gg = l & 7;  // the group's nibble is bits 4gg .. 4gg + 3 of its 32-bit half
      sel[l] = l < 8 ? 0 : 1;
      re[l] = (16 - 4 * gg) & 31;  // slot 0: bits 4gg, 4gg + 1 -> 16, 17
      ro[l] = (14 - 4 * gg) & 31;  // slot 1: bits 4gg + 2, 4gg + 3 -> 16, 17
      b[l] = (4 * l) << 16;
    }
    half_select = _mm512_load_si512(sel);
    rotate_even = _mm512_load_si512(re);
    rotate_odd = _mm512_load_si512(ro);
    base = _mm512_load_si512(b);
  }
};

// Groups [0, 16 * steps) of one column against MR rows of x (row stride K), added to acc.
// Returns the groups done. Prefetches the next column's values and metadata into L2 (the
// AVX2 loop's reason).
template <int MR>
static inline int64_t sparse24_bf16_steps(const bf16_t* xm, int64_t K, const bf16_t* v, const uint8_t* mt,
                                          int64_t groups, int64_t row_values, int64_t row_meta, float (&acc)[MR]) {
  static const Sparse24Bf16Step c;
  constexpr int kTernAndOr = 0xEA;  // (a & b) | c
  const __m512i field = _mm512_set1_epi32(0x30000), high_half = _mm512_set1_epi32(int(0xFFFF0000u));
  __m512 acc_even[MR], acc_odd[MR];
  for (int r = 0; r < MR; ++r) acc_even[r] = acc_odd[r] = _mm512_setzero_ps();
  int64_t g = 0;
  for (; g + 16 <= groups; g += 16) {
    __builtin_prefetch(v + row_values + 2 * g, 0, 2);
    if ((g & 63) == 0) __builtin_prefetch(mt + row_meta + g / 2, 0, 2);
    const __m512i bits = _mm512_permutexvar_epi32(
        c.half_select, _mm512_castsi128_si512(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(mt + g / 2))));
    const __m512i idx_even = _mm512_ternarylogic_epi32(_mm512_rolv_epi32(bits, c.rotate_even), field, c.base, kTernAndOr);
    const __m512i idx_odd = _mm512_ternarylogic_epi32(_mm512_rolv_epi32(bits, c.rotate_odd), field, c.base, kTernAndOr);
    const __m512i vals = _mm512_loadu_si512(v + 2 * g);
    const __m512 v_even = _mm512_castsi512_ps(_mm512_slli_epi32(vals, 16));
    const __m512 v_odd = _mm512_castsi512_ps(_mm512_and_si512(vals, high_half));
    for (int r = 0; r < MR; ++r) {
      const bf16_t* xr = xm + r * K + 4 * g;
      const __m512i x0 = _mm512_loadu_si512(xr), x1 = _mm512_loadu_si512(xr + 32);
      const __m512 x_even = _mm512_castsi512_ps(_mm512_maskz_permutex2var_epi16(0xAAAAAAAAu, x0, idx_even, x1));
      const __m512 x_odd = _mm512_castsi512_ps(_mm512_maskz_permutex2var_epi16(0xAAAAAAAAu, x0, idx_odd, x1));
      acc_even[r] = _mm512_fmadd_ps(v_even, x_even, acc_even[r]);
      acc_odd[r] = _mm512_fmadd_ps(v_odd, x_odd, acc_odd[r]);
    }
  }
  for (int r = 0; r < MR; ++r) acc[r] += _mm512_reduce_add_ps(_mm512_add_ps(acc_even[r], acc_odd[r]));
  return g;
}

// The 2:4 + int8 GEMV (W8A8, up to 4 rows) on CPUs with AVX512_VBMI: a step is 32 groups (128 k,
// 64 kept values, 16 metadata bytes). The byte index of each kept value's activation,
// 4 * (j / 2) + its 2-bit position, comes from the metadata by one vpmultishiftqb (qword lane q
// holding the 16 bits of values 8q .. 8q + 7), a mask and an add; one vpermt2b then gathers
// the 64 activations (u8, +128) from the step's 128, and one vpdpbusd multiplies them by the
// 64 values as stored. The AVX2 form takes two byte shuffles and three widening multiplies
// per 32 values, which bound it below the memory bandwidth (2 threads: ~48 GB/s of compressed
// weight where the dense W8A8 GEMV read 88).
constexpr int64_t kSparse24Int8PrefetchBytes = 8192;
#define BIGACCEL_VBMI_TARGET \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx512vbmi,avx2,fma,bmi2")))

template <int MR, typename T>
BIGACCEL_VBMI_TARGET static void sparse24_int8_gemv_vbmi(const uint8_t* a, int64_t K, const int8_t* values,
                                                          const uint8_t* meta, int64_t n_begin, int64_t n_end,
                                                          const W8A8Epilogue<T>& epi) {
  const int64_t groups = K / 4, row_values = K / 2, row_meta = (K + 7) / 8;
  alignas(64) uint8_t shifts[64], base[64];
  for (int j = 0; j < 64; ++j) {
    shifts[j] = uint8_t(2 * (j % 8));
    base[j] = uint8_t(4 * (j / 2));
  }
  const __m512i shift_ctrl = _mm512_load_si512(shifts), base_idx = _mm512_load_si512(base);
  const __m512i two_bits = _mm512_set1_epi8(3);
  for (int64_t n = n_begin; n < n_end; ++n) {
    const int8_t* v = values + n * row_values;
    const uint8_t* mt = meta + n * row_meta;
    __m512i acc[MR];
    for (int r = 0; r < MR; ++r) acc[r] = _mm512_setzero_si512();
    int64_t g = 0;
    for (; g + 32 <= groups; g += 32) {
      const __m512i fields = _mm512_cvtepu16_epi64(_mm_loadu_si128(reinterpret_cast<const __m128i*>(mt + g / 2)));
      const __m512i idx = _mm512_add_epi8(_mm512_and_si512(_mm512_multishift_epi64_epi8(shift_ctrl, fields), two_bits),
                                          base_idx);
      const __m512i w = _mm512_loadu_si512(v + 2 * g);
      // Values and metadata are each one stream across columns (rows of [N, K/2] and [N, K/8]):
      // prefetched a fixed distance ahead, into the next columns (hardware prefetchers stop at
      // every 4 KiB page).
      __builtin_prefetch(v + 2 * g + kSparse24Int8PrefetchBytes, 0, 2);
      if ((g & 127) == 0) __builtin_prefetch(mt + g / 2 + kSparse24Int8PrefetchBytes / 4, 0, 2);
      for (int r = 0; r < MR; ++r) {
        const uint8_t* ar = a + r * K + 4 * g;
        const __m512i x = _mm512_permutex2var_epi8(_mm512_loadu_si512(ar), idx, _mm512_loadu_si512(ar + 64));
        acc[r] = _mm512_dpbusd_epi32(acc[r], x, w);
      }
    }
    int32_t sum[MR];
    for (int r = 0; r < MR; ++r) sum[r] = _mm512_reduce_add_epi32(acc[r]);
    for (; g < groups; ++g) {  // shifted activations, as above
      const unsigned nibble = (mt[g / 2] >> ((g & 1) * 4)) & 0xF;
      for (int r = 0; r < MR; ++r) {
        const uint8_t* ar = a + r * K + 4 * g;
        sum[r] += int(ar[nibble & 3]) * v[2 * g] + int(ar[nibble >> 2]) * v[2 * g + 1];
      }
    }
    // The sums include 128 * the kept values' sum: the epilogue's kOffsetA term.
    for (int r = 0; r < MR; ++r) epi(r, n, sum[r]);
  }
}

template <int MR, typename T>
BIGACCEL_VBMI_TARGET static void sparse24_int8_gemv_vbmi_rows(int mr, const uint8_t* a, int64_t K,
                                                               const int8_t* values, const uint8_t* meta,
                                                               int64_t n_begin, int64_t n_end,
                                                               const W8A8Epilogue<T>& epi) {
  if constexpr (MR > 1)
    if (mr < MR) return sparse24_int8_gemv_vbmi_rows<MR - 1>(mr, a, K, values, meta, n_begin, n_end, epi);
  sparse24_int8_gemv_vbmi<MR>(a, K, values, meta, n_begin, n_end, epi);
}

}  // namespace bigaccel::BIGACCEL_ISA_NS
