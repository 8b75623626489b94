// The int4 GEMV with int16 activations on AVX-512 (included by cpu_kernel.h in that tier, which
// requires VNNI; its int4_gemv_i16_cols dispatches here): the AVX2 GEMV's scheme (cpu_kernel.h: x as int16 in quad order, codes unpacked
// by shifts and masks, exact int32 sums per group, one fp32 FMA per group, zero points taken off
// once per output) at twice the width, with vpdpwssd doing vpmaddwd's products and the add. A
// chunk is 64 packed bytes, 128 k: 32 16-bit lanes, lane i holding k = 4i .. 4i + 3, against x
// in quad order over 128 k (quantize_rows_i16's quad_chunk = 128). Dword lane d of the sums
// covers k = 8d .. 8d + 7, so a chunk's groups of 32 / 64 / 128 are its 128-, 256- and 512-bit
// lanes, and one FMA per chunk applies their scales, spread across the lanes. Each chunk's sums
// start from zero, so the dependency chains never cross chunks.
#pragma once

// (Included inside cpu_kernel.h's namespace, after int4_group_factors.)

static inline float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// How far ahead in the weight stream to prefetch (the AVX2 GEMV's reason: hardware prefetchers
// stop at pages). Twice as fast per byte as the AVX2 loop, this one needs a longer lead for the
// same time: one thread, 4096 x 11008, from DRAM, waited on its loads (half the samples on the
// load after them) at 2 KiB and read 18.6 GB/s, 21.7 at 4 KiB, 27.6 at 8 KiB, 24 at 16 KiB.
constexpr int64_t kInt4ZmmPrefetchBytes = 8192;

template <int G>
struct Int4ChunkScales {  // lane -> the chunk's group, for G = 32 and 64
  alignas(64) int32_t lane_group[16];
  constexpr Int4ChunkScales() : lane_group() {
    for (int d = 0; d < 16; ++d) lane_group[d] = (8 * d) / G;
  }
};

template <int R, int G, typename T>
static void int4_gemv_i16_rows(const I16Rows& x, const Int4Weight& w, int64_t N, int64_t n_begin, int64_t n_end,
                               const float* bias, T* out) {
  constexpr int kGroupsPerChunk = 128 / G;
  static_assert(kGroupBlock % kGroupsPerChunk == 0 && kGroupsPerChunk <= kGroupPad, "chunks stay within a block");
  static constexpr Int4ChunkScales<G> kScales{};
  const int64_t K = w.K, groups = w.groups;
  const __m512i low4 = _mm512_set1_epi16(0x000F);
  const __m512i lane_group = _mm512_load_si512(kScales.lane_group);
  float cs[R][kGroupBlock + kGroupPad];
  for (int64_t n = n_begin; n < n_end; ++n) {
    const uint8_t* row = w.packed + n * (K / 2);
    __m512 acc[R];
    __m256 zt[R];
    for (int r = 0; r < R; ++r) {
      acc[r] = _mm512_setzero_ps();
      zt[r] = _mm256_setzero_ps();
    }
    for (int64_t g0 = 0; g0 < groups; g0 += kGroupBlock) {
      const int64_t gb = groups - g0 < kGroupBlock ? groups - g0 : kGroupBlock;
      int4_group_factors<R>(x, w, n, g0, gb, cs, zt);
      for (int64_t j = 0; j < gb; j += kGroupsPerChunk) {
        const int64_t c = (g0 + j) / kGroupsPerChunk;
        const uint8_t* p = row + c * 64;
        __builtin_prefetch(p + kInt4ZmmPrefetchBytes, 0, 2);
        // A last chunk with fewer groups: its missing codes load as 0, and cs is 0 there.
        const __m512i v = gb - j >= kGroupsPerChunk
                              ? _mm512_loadu_si512(p)
                              : _mm512_maskz_loadu_epi8(_cvtu64_mask64((uint64_t(1) << ((gb - j) * G / 2)) - 1), p);
        const __m512i c0 = _mm512_and_si512(v, low4);
        const __m512i c1 = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
        const __m512i c2 = _mm512_and_si512(_mm512_srli_epi16(v, 8), low4);
        const __m512i c3 = _mm512_srli_epi16(v, 12);
        for (int r = 0; r < R; ++r) {
          const int16_t* q = x.q + r * x.padded_k + c * 128;
          __m512i s = _mm512_dpwssd_epi32(_mm512_setzero_si512(), c0, _mm512_loadu_si512(q));
          s = _mm512_dpwssd_epi32(s, c1, _mm512_loadu_si512(q + 32));
          s = _mm512_dpwssd_epi32(s, c2, _mm512_loadu_si512(q + 64));
          s = _mm512_dpwssd_epi32(s, c3, _mm512_loadu_si512(q + 96));
          const __m512 scale = G == 128 ? _mm512_set1_ps(cs[r][j])
                                        : _mm512_permutexvar_ps(lane_group, _mm512_castps128_ps512(_mm_loadu_ps(cs[r] + j)));
          acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), scale, acc[r]);
        }
      }
    }
    for (int r = 0; r < R; ++r) {
      const float v = _mm512_reduce_add_ps(acc[r]) - hsum256(zt[r]);
      from_float(bias ? v + bias[n] : v, out + r * N + n);
    }
  }
}
