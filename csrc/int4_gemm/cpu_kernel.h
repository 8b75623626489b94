// int4 group-wise weight-only GEMM (W4A16) on CPU, written once for every ISA.
//
// Weight in the canonical layout (bigaccel/reference.py): packed uint8 [N, K/2], byte j
// holding k = 2j (low nibble) and k = 2j+1 (high nibble); fp32 scales and uint8 zero
// points [N, K/G] (zero 8 when symmetric). w[n][k] = (code - zero) * scale, exact in fp32.
//
// Small M (<= kInt4FusedMaxRows): GEMV (on AVX-512, the table form below). Each column's
//   packed bytes are streamed once, 16 at a time, and unpacked in registers: the low nibbles (and 0xF) and the high ones
//   (shift, and 0xF), minus the zero point in int8, sign-extended to fp32. That yields
//   the 32 codes in "nibble order" (the 16 even k, then the 16 odd k), so the caller
//   passes x permuted the same way once, instead of every weight being shuffled back
//   into k order (which made the AVX2 loop shuffle-bound at ~3 GB/s). Per group
//   acc_g += x * (code - zero) over independent accumulator chains, then
//   acc += acc_g * scale, one horizontal sum per output.
// Larger M (below the host's kSgemmMinRows): a block of kBlockN columns is dequantized
//   (the same unpacking) into an fp32 scratch tile (kBlockN * K * 4 bytes, cache resident),
//   k in nibble order like x, and reused across all M rows with a 4 x 2 register tile.
// bf16/fp16 x on AVX2 is held as int16 (common/act_i16.h): the int16 GEMV at M <= 4 and, with
//   groups of 128, the blocked GEMM of common/i16_gemm.h above it (both at the end).
#pragma once

#include "common/act_i16.h"
#include "common/i16_gemm.h"
#include "common/vec.h"

namespace bigaccel::BIGACCEL_ISA_NS {

constexpr int kInt4FusedMaxRows = 4;
constexpr int kInt4BlockN = 8;

constexpr int kInt4NibbleChunk = 32;  // k per 16 packed bytes; the nibble-order permutation's period
constexpr int kInt4CodeVecs = kInt4NibbleChunk / VecF::kWidth;

// The 32 codes of 16 packed bytes minus `zero`, exact in fp32, in nibble order: the low
// nibbles of bytes 0..15 (k = 0, 2, .., 30), then their high nibbles (k = 1, 3, .., 31).
static inline void load_codes32(const uint8_t* p, int zero, VecF* out) {
#if BIGACCEL_VEC_LEVEL == BIGACCEL_ISA_AVX512 || BIGACCEL_VEC_LEVEL == BIGACCEL_ISA_AVX2
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m128i mask = _mm_set1_epi8(0x0F), z = _mm_set1_epi8(static_cast<char>(zero));
  const __m128i lo = _mm_sub_epi8(_mm_and_si128(v, mask), z);  // code - zero in [-15, 15]
  const __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(v, 4), mask), z);
#if BIGACCEL_VEC_LEVEL == BIGACCEL_ISA_AVX512
  out[0] = {_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(lo))};
  out[1] = {_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(hi))};
#else
  out[0] = {_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo))};
  out[1] = {_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)))};
  out[2] = {_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi))};
  out[3] = {_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)))};
#endif
#else
  constexpr int W = VecF::kWidth;
  for (int i = 0; i < 16; ++i) {
    out[i / W].v[i % W] = float(int(p[i] & 0xF) - zero);
    out[(16 + i) / W].v[(16 + i) % W] = float(int(p[i] >> 4) - zero);
  }
#endif
}

struct Int4Weight {
  Int4Weight(const uint8_t* packed, const float* scales, const uint8_t* zeros, int64_t K, int64_t G)
      : packed(packed), scales(scales), zeros(zeros), K(K), G(G), groups(K / G) {}
  const uint8_t* packed;  // [N, K/2]
  const float* scales;    // [N, K/G]
  const uint8_t* zeros;   // [N, K/G] or nullptr (kSymmetricZero)
  int64_t K, G, groups;   // groups = K / G, kept: a division per group was a visible cost
  static constexpr int kSymmetricZero = 8;
  int zero_code(int64_t n, int64_t g) const { return zeros ? int(zeros[n * groups + g]) : kSymmetricZero; }
};

// x_nib: the R rows of x, each in nibble order (kInt4NibbleChunk).
template <int R, typename T>
static void int4_gemv_rows(const float* x_nib, const Int4Weight& w, int64_t N, int64_t n_begin, int64_t n_end,
                           const float* bias, T* out) {
  constexpr int W = VecF::kWidth, V = kInt4CodeVecs;
  // Independent FMA chains per row: one chain would wait out the FMA latency on every
  // vector (that, not bandwidth, bounds a single-row GEMV); more rows are chains already.
  constexpr int A = R == 1 ? V : (R == 2 && V >= 2 ? 2 : 1);
  const int64_t K = w.K, G = w.G, groups = K / G;
  for (int64_t n = n_begin; n < n_end; ++n) {
    const uint8_t* row = w.packed + n * (K / 2);
    VecF acc[R];
    for (int r = 0; r < R; ++r) acc[r] = VecF::zero();
    for (int64_t g = 0; g < groups; ++g) {
      const int zero = w.zero_code(n, g);
      VecF acc_g[R][A];
      for (int r = 0; r < R; ++r)
        for (int a = 0; a < A; ++a) acc_g[r][a] = VecF::zero();
      for (int64_t k = g * G; k < (g + 1) * G; k += kInt4NibbleChunk) {
        VecF codes[V];
        load_codes32(row + k / 2, zero, codes);
        for (int j = 0; j < V; ++j)
          for (int r = 0; r < R; ++r)
            acc_g[r][j % A] = fma(VecF::load(x_nib + r * K + k + j * W), codes[j], acc_g[r][j % A]);
      }
      const VecF scale = VecF::broadcast(w.scales[n * groups + g]);
      for (int r = 0; r < R; ++r) {
        VecF sum = acc_g[r][0];
        for (int a = 1; a < A; ++a) sum = sum + acc_g[r][a];
        acc[r] = fma(sum, scale, acc[r]);
      }
    }
    for (int r = 0; r < R; ++r) {
      const float v = acc[r].reduce_add();
      from_float(bias ? v + bias[n] : v, out + r * N + n);
    }
  }
}

#if BIGACCEL_VEC_LEVEL == BIGACCEL_ISA_AVX512
// The same GEMV on AVX-512 with each group's 16 weights (code - zero) * scale in a table of one
// zmm, the reference's fp32 values: 16 packed bytes widened to dwords index it directly
// (vpermps reads the low 4 bits: the low nibble as it is, the high one after a shift), so 32
// weights cost a widening load, a shift and two vpermps for their 2R FMAs, where the widening of
// code - zero to fp32 took ten operations and each group a flush of its sums. g128 weights
// beyond L3, two threads, Zen 5 (2026-11-28), GB/s of packed weight against that form: M = 1
// 36-44 against 15-31, M = 2 28-34 against 13-17, M = 4 22-26 against 7-9.
constexpr int64_t kInt4F32PrefetchBytes = 8192;  // as the int16 GEMV's (cpu_gemv_avx512.h)

// The 16 weights (code - zero) * scale of one group, codes 0..15: (c - zero) is exact and the
// product is the reference's fp32 dequantization.
static inline __m512 int4_f32_table(float scale, int zero) {
  const __m512 codes = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  return _mm512_mul_ps(_mm512_sub_ps(codes, _mm512_set1_ps(float(zero))), _mm512_set1_ps(scale));
}

// R rows x C columns (n ..): one column alone streams its row with four chains; more rows take
// 4 columns at a time, so that each x vector, from L2 once R rows pass L1, serves 4 columns
// (M = 4, x in L2: 9 GB/s one column at a time).
template <int R, int C, typename T>
static void int4_gemv_table_tile(const float* x_nib, const Int4Weight& w, int64_t N, int64_t n, const float* bias,
                                 T* out) {
  constexpr int A = R * C == 1 ? 4 : 1;  // chains per accumulator: one row and column needs its own
  const int64_t K = w.K, G = w.G, groups = w.groups;
  const uint8_t* rows[C];
  for (int c = 0; c < C; ++c) rows[c] = w.packed + (n + c) * (K / 2);
  __m512 acc[R][C][A];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c)
      for (int a = 0; a < A; ++a) acc[r][c][a] = _mm512_setzero_ps();
  __m512 table[C];
  // 32 k of every row and column into accumulators a and a + 1 (A = 4) or a.
  auto chunk = [&](int64_t k, int a) {
    __m512 even[C], odd[C];
    for (int c = 0; c < C; ++c) {
      const __m512i d = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[c] + k / 2)));
      even[c] = _mm512_permutexvar_ps(d, table[c]);
      odd[c] = _mm512_permutexvar_ps(_mm512_srli_epi32(d, 4), table[c]);
    }
    for (int r = 0; r < R; ++r) {
      const __m512 xe = _mm512_loadu_ps(x_nib + r * K + k), xo = _mm512_loadu_ps(x_nib + r * K + k + 16);
      for (int c = 0; c < C; ++c) {
        acc[r][c][a] = _mm512_fmadd_ps(xe, even[c], acc[r][c][a]);
        acc[r][c][a + (A > 1)] = _mm512_fmadd_ps(xo, odd[c], acc[r][c][a + (A > 1)]);
      }
    }
  };
  for (int64_t g = 0; g < groups; ++g) {
    for (int c = 0; c < C; ++c) table[c] = int4_f32_table(w.scales[(n + c) * groups + g], w.zero_code(n + c, g));
    const int64_t end = (g + 1) * G;
    int64_t k = g * G;
    for (; k + 2 * kInt4NibbleChunk <= end; k += 2 * kInt4NibbleChunk) {
      if ((k & 127) == 0)
        for (int c = 0; c < C; ++c) __builtin_prefetch(rows[c] + k / 2 + kInt4F32PrefetchBytes, 0, 2);
      chunk(k, 0);
      chunk(k + kInt4NibbleChunk, A == 4 ? 2 : 0);
    }
    if (k < end) chunk(k, 0);  // groups of 32
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) {
      __m512 sum = acc[r][c][0];
      for (int a = 1; a < A; ++a) sum = _mm512_add_ps(sum, acc[r][c][a]);
      const float v = _mm512_reduce_add_ps(sum);
      from_float(bias ? v + bias[n + c] : v, out + r * N + n + c);
    }
}

template <int R, typename T>
static void int4_gemv_rows_table(const float* x_nib, const Int4Weight& w, int64_t N, int64_t n_begin, int64_t n_end,
                                 const float* bias, T* out) {
  constexpr int C = R == 1 ? 1 : 4;
  int64_t n = n_begin;
  for (; n + C <= n_end; n += C) int4_gemv_table_tile<R, C>(x_nib, w, N, n, bias, out);
  for (; n < n_end; ++n) int4_gemv_table_tile<R, 1>(x_nib, w, N, n, bias, out);
}
#endif

// The GEMV of this ISA: the table form on AVX-512, the widening form below it.
template <int R, typename T>
static void int4_gemv(const float* x_nib, const Int4Weight& w, int64_t N, int64_t n_begin, int64_t n_end,
                      const float* bias, T* out) {
#if BIGACCEL_VEC_LEVEL == BIGACCEL_ISA_AVX512
  int4_gemv_rows_table<R>(x_nib, w, N, n_begin, n_end, bias, out);
#else
  int4_gemv_rows<R>(x_nib, w, N, n_begin, n_end, bias, out);
#endif
}

// Dequantizes columns [n0, n1) into tile[(n - n0) * K + k'], k' in nibble order (x is too).
static void int4_dequantize_columns(const Int4Weight& w, int64_t n0, int64_t n1, float* tile) {
  constexpr int W = VecF::kWidth, V = kInt4CodeVecs;
  const int64_t K = w.K, G = w.G, groups = K / G;
  for (int64_t n = n0; n < n1; ++n) {
    const uint8_t* row = w.packed + n * (K / 2);
    float* dst = tile + (n - n0) * K;
    for (int64_t g = 0; g < groups; ++g) {
      const int zero = w.zero_code(n, g);
      const VecF scale = VecF::broadcast(w.scales[n * groups + g]);
      for (int64_t k = g * G; k < (g + 1) * G; k += kInt4NibbleChunk) {
        VecF codes[V];
        load_codes32(row + k / 2, zero, codes);
        for (int j = 0; j < V; ++j) (codes[j] * scale).store(dst + k + j * W);
      }
    }
  }
}

// out[m][n] for R rows x C columns of a dequantized tile: R*C vector accumulators.
template <int R, int C, typename T>
static void int4_tile_dot(const float* x, int64_t K, const float* tile, int64_t N, int64_t n, const float* bias,
                          T* out) {
  constexpr int W = VecF::kWidth;
  VecF acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = VecF::zero();
  for (int64_t k = 0; k < K; k += W) {
    VecF wv[C];
    for (int c = 0; c < C; ++c) wv[c] = VecF::load(tile + c * K + k);
    for (int r = 0; r < R; ++r) {
      const VecF xv = VecF::load(x + r * K + k);
      for (int c = 0; c < C; ++c) acc[r][c] = fma(xv, wv[c], acc[r][c]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) {
      const float v = acc[r][c].reduce_add();
      from_float(bias ? v + bias[n + c] : v, out + r * N + n + c);
    }
}

template <int R, typename T>
static void int4_tile_rows(const float* x, int64_t K, const float* tile, int64_t N, int64_t n0, int64_t n1,
                           const float* bias, T* out) {
  int64_t n = n0;
  for (; n + 2 <= n1; n += 2) int4_tile_dot<R, 2>(x, K, tile + (n - n0) * K, N, n, bias, out);
  if (n < n1) int4_tile_dot<R, 1>(x, K, tile + (n - n0) * K, N, n, bias, out);
}

template <typename T>
static void int4_mm_typed(const float* x, int64_t M, const Int4Weight& w, int64_t N, int64_t n_begin, int64_t n_end,
                          const float* bias, float* scratch, T* out) {
  const int64_t K = w.K;
  if (M <= kInt4FusedMaxRows) {
    switch (M) {
      case 1: return int4_gemv<1>(x, w, N, n_begin, n_end, bias, out);
      case 2: return int4_gemv<2>(x, w, N, n_begin, n_end, bias, out);
      case 3: return int4_gemv<3>(x, w, N, n_begin, n_end, bias, out);
      default: return int4_gemv<4>(x, w, N, n_begin, n_end, bias, out);
    }
  }
  for (int64_t n0 = n_begin; n0 < n_end; n0 += kInt4BlockN) {
    const int64_t n1 = n0 + kInt4BlockN < n_end ? n0 + kInt4BlockN : n_end;
    int4_dequantize_columns(w, n0, n1, scratch);
    int64_t m = 0;
    for (; m + 4 <= M; m += 4) int4_tile_rows<4>(x + m * K, K, scratch, N, n0, n1, bias, out + m * N);
    for (; m < M; ++m) int4_tile_rows<1>(x + m * K, K, scratch, N, n0, n1, bias, out + m * N);
  }
}

void int4_mm_cols(const float* x, int64_t M, int64_t K, const uint8_t* packed, const float* scales,
                  const uint8_t* zeros, int64_t group_size, int64_t N, int64_t n_begin, int64_t n_end,
                  const float* bias, float* scratch, void* out, DType out_dtype) {
  const Int4Weight w{packed, scales, zeros, K, group_size};
  with_element_type(out_dtype, [&](auto tag) {
    int4_mm_typed(x, M, w, N, n_begin, n_end, bias, scratch, static_cast<decltype(tag)*>(out));
  });
}

#if BIGACCEL_VEC_LEVEL == BIGACCEL_ISA_AVX2 || BIGACCEL_VEC_LEVEL == BIGACCEL_ISA_AVX512
// bf16/fp16 activations at M <= kI16MaxRows: x as int16 (common/act_i16.h, quad order, one
// scale and q sum per group) and integer dot products. 32 packed bytes hold 64 codes; read
// as 16-bit lanes, lane i holds k = 4i .. 4i+3 in its four nibbles, which four shift/and
// steps turn into int16 codes that meet x's quad order. vpmaddwd sums code * q pairs into
// int32, exact within a group (at most 128 * 15 * 32767 < 2^24, so also exact in fp32);
// each group then adds (sum code*q) * (scale * 2^e) to the fp32 accumulator, and its zero
// point comes off once per output as the sum of zero * scale * (2^e * sum q).
// The per-group factors (scale * 2^e per row, the zero terms) are computed for kGroupBlock
// groups at a time in vector registers, so that ending a group costs a broadcast, a
// conversion and an FMA: done per group with scalars, ending the groups had cost as much as
// the dot products (one core, weights in L2, cycles per 32 packed bytes, measured back to
// back: G = 32 8.5 -> 5.8, G = 64 5.9 -> 4.7, G = 128 4.8 -> 4.3).
constexpr int64_t kInt4PrefetchBytes = 2048;
constexpr int64_t kGroupBlock = 64;  // a multiple of 4: a chunk of 128 k (AVX-512) holds four groups of 32
// cs[r][gb .. gb + kGroupPad - 1] are 0: the groups missing from a partial last chunk.
constexpr int kGroupPad = 4;

// For groups [g0, g0 + gb) of column n: cs[r][j] = scale * 2^e of group g0 + j for row r,
// cs[r][gb] = 0 (the missing second group of an odd tail), and zt[r] += the zero terms.
template <int R>
static inline void int4_group_factors(const I16Rows& x, const Int4Weight& w, int64_t n, int64_t g0, int64_t gb,
                                      float (*cs)[kGroupBlock + kGroupPad], __m256* zt) {
  const float* scales = w.scales + n * w.groups + g0;
  const uint8_t* zeros = w.zeros ? w.zeros + n * w.groups + g0 : nullptr;
  int64_t j = 0;
  for (; j + 8 <= gb; j += 8) {
    const __m256 s = _mm256_loadu_ps(scales + j);
    const __m256 z = zeros ? _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(
                                 reinterpret_cast<const __m128i*>(zeros + j))))
                           : _mm256_set1_ps(float(Int4Weight::kSymmetricZero));
    const __m256 zs = _mm256_mul_ps(z, s);
    for (int r = 0; r < R; ++r) {
      _mm256_storeu_ps(cs[r] + j, _mm256_mul_ps(s, _mm256_loadu_ps(x.scale + r * x.subs + g0 + j)));
      zt[r] = _mm256_fmadd_ps(zs, _mm256_loadu_ps(x.qsum + r * x.subs + g0 + j), zt[r]);
    }
  }
  for (; j < gb; ++j) {  // zero terms in lane 0: their order is any fp32 order's
    const float s = scales[j], zs = float(w.zero_code(n, g0 + j)) * s;
    for (int r = 0; r < R; ++r) {
      cs[r][j] = s * x.scale[r * x.subs + g0 + j];
      zt[r] = _mm256_add_ps(zt[r], _mm256_setr_ps(zs * x.qsum[r * x.subs + g0 + j], 0, 0, 0, 0, 0, 0, 0));
    }
  }
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < kGroupPad; ++j) cs[r][gb + j] = 0.0f;
}
#endif

#if BIGACCEL_VEC_LEVEL == BIGACCEL_ISA_AVX2

template <int R, int G, typename T>
static void int4_gemv_i16_rows(const I16Rows& x, const Int4Weight& w, int64_t N, int64_t n_begin, int64_t n_end,
                               const float* bias, T* out) {
  const int64_t K = w.K, groups = w.groups;
  const __m256i low4 = _mm256_set1_epi16(0x000F);
  float cs[R][kGroupBlock + kGroupPad];
  for (int64_t n = n_begin; n < n_end; ++n) {
    const uint8_t* row = w.packed + n * (K / 2);
    __m256 acc[R], zt[R];
    __m256i isum[R];
    for (int r = 0; r < R; ++r) {
      acc[r] = zt[r] = _mm256_setzero_ps();
      isum[r] = _mm256_setzero_si256();
    }
    auto dot_chunk = [&](__m256i v, int64_t c) {
      const __m256i c0 = _mm256_and_si256(v, low4);
      const __m256i c1 = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
      const __m256i c2 = _mm256_and_si256(_mm256_srli_epi16(v, 8), low4);
      const __m256i c3 = _mm256_srli_epi16(v, 12);
      for (int r = 0; r < R; ++r) {
        const __m256i* q = reinterpret_cast<const __m256i*>(x.q + r * x.padded_k + c * 64);
        const __m256i s01 = _mm256_add_epi32(_mm256_madd_epi16(c0, _mm256_loadu_si256(q)),
                                             _mm256_madd_epi16(c1, _mm256_loadu_si256(q + 1)));
        const __m256i s23 = _mm256_add_epi32(_mm256_madd_epi16(c2, _mm256_loadu_si256(q + 2)),
                                             _mm256_madd_epi16(c3, _mm256_loadu_si256(q + 3)));
        isum[r] = _mm256_add_epi32(isum[r], _mm256_add_epi32(s01, s23));
      }
    };
    // Ends the group at cs index j (for G = 32: groups j and j + 1, in the low and high
    // 128-bit halves of the sums).
    auto end_group = [&](int64_t j) {
      for (int r = 0; r < R; ++r) {
        const __m256 scale = G == 32 ? _mm256_setr_m128(_mm_set1_ps(cs[r][j]), _mm_set1_ps(cs[r][j + 1]))
                                     : _mm256_set1_ps(cs[r][j]);
        acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[r]), scale, acc[r]);
        isum[r] = _mm256_setzero_si256();
      }
    };
    auto chunk_at = [&](int64_t c) {
      // A few KiB ahead in the stream (the rows are contiguous): hardware prefetchers stop
      // at page boundaries, and one stream per core then leaves DRAM idle.
      __builtin_prefetch(row + c * 32 + kInt4PrefetchBytes, 0, 2);
      dot_chunk(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + c * 32)), c);
    };
    for (int64_t g0 = 0; g0 < groups; g0 += kGroupBlock) {
      const int64_t gb = groups - g0 < kGroupBlock ? groups - g0 : kGroupBlock;
      int4_group_factors<R>(x, w, n, g0, gb, cs, zt);
      if constexpr (G >= 64) {
        for (int64_t j = 0; j < gb; ++j) {
          for (int64_t i = 0; i < G / 64; ++i) chunk_at((g0 + j) * (G / 64) + i);
          end_group(j);
        }
      } else {
        int64_t j = 0;
        for (; j + 2 <= gb; j += 2) {
          chunk_at((g0 + j) / 2);
          end_group(j);
        }
        if (j < gb) {  // an odd number of groups of 32: the last one alone, in a low half
          dot_chunk(_mm256_zextsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + (g0 + j) * 16))),
                    (g0 + j) / 2);
          end_group(j);  // cs[r][gb] = 0 for the empty high half
        }
      }
    }
    for (int r = 0; r < R; ++r) {
      const float v = VecF{acc[r]}.reduce_add() - VecF{zt[r]}.reduce_add();
      from_float(bias ? v + bias[n] : v, out + r * N + n);
    }
  }
}

#elif BIGACCEL_VEC_LEVEL == BIGACCEL_ISA_AVX512
#include "int4_gemm/cpu_gemv_avx512.h"  // int4_gemv_i16_rows at zmm width
#endif

#if BIGACCEL_VEC_LEVEL == BIGACCEL_ISA_AVX2 || BIGACCEL_VEC_LEVEL == BIGACCEL_ISA_AVX512
template <int G, typename T>
static void int4_gemv_i16_typed(const I16Rows& x, int64_t M, const Int4Weight& w, int64_t N, int64_t n_begin,
                                int64_t n_end, const float* bias, T* out) {
  switch (M) {
    case 1: return int4_gemv_i16_rows<1, G>(x, w, N, n_begin, n_end, bias, out);
    case 2: return int4_gemv_i16_rows<2, G>(x, w, N, n_begin, n_end, bias, out);
    case 3: return int4_gemv_i16_rows<3, G>(x, w, N, n_begin, n_end, bias, out);
    default: return int4_gemv_i16_rows<4, G>(x, w, N, n_begin, n_end, bias, out);
  }
}

// x from avx2::quantize_rows_i16 with sub = group_size and quad_chunk 64 (AVX2) or 128 (AVX-512);
// M <= kI16MaxRows.
void int4_gemv_i16_cols(const I16Rows& x, int64_t M, int64_t K, const uint8_t* packed, const float* scales,
                        const uint8_t* zeros, int64_t group_size, int64_t N, int64_t n_begin, int64_t n_end,
                        const float* bias, void* out, DType out_dtype) {
  const Int4Weight w{packed, scales, zeros, K, group_size};
  with_element_type(out_dtype, [&](auto tag) {
    auto* o = static_cast<decltype(tag)*>(out);
    if (group_size == 32) return int4_gemv_i16_typed<32>(x, M, w, N, n_begin, n_end, bias, o);
    if (group_size == 64) return int4_gemv_i16_typed<64>(x, M, w, N, n_begin, n_end, bias, o);
    return int4_gemv_i16_typed<128>(x, M, w, N, n_begin, n_end, bias, o);
  });
}

#endif

#if BIGACCEL_VEC_LEVEL == BIGACCEL_ISA_AVX2
// x's 2^e per row, the weight group's scale per column: groups of kI16Block k, so one flush
// per block (and K, a multiple of the group, needs no padding of x).
struct Int4GroupScale : I16RowScale {
  static constexpr bool kColumnScale = true;
  const Int4Weight& w;
  __m256 column(int64_t n, int64_t k0) const { return _mm256_set1_ps(w.scales[n * w.groups + k0 / kI16Block]); }
};

// Above kI16MaxRows rows, groups of 128 (kI16Block): the blocked GEMM of common/i16_gemm.h,
// x in natural order, the codes widened to int16 minus their zero point (exact, |c - z| <= 15)
// in k order, the int32 sums flushed once per group, times its scale. Smaller groups keep the
// float tiles: a flush per 32 or 64 k cost more than the int16 products saved (cpu.cpp).
template <typename T>
static void int4_gemm_i16_typed(const I16Rows& x, int64_t M, const Int4Weight& w, int64_t N, int64_t n_begin,
                                int64_t n_end, const float* bias, T* out) {
  const int64_t K = w.K;
  auto widen = [&](int64_t n, int64_t k0, int64_t k1, int16_t* dst) {
    const uint8_t* row = w.packed + n * (K / 2);
    prefetch_next_block(row, K / 2, k0 / 2, (k1 - k0) / 2);
    const __m128i mask = _mm_set1_epi8(0x0F);
    for (int64_t k = k0; k < k1; k += kInt4NibbleChunk) {
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + k / 2));
      const __m128i zero = _mm_set1_epi8(static_cast<char>(w.zero_code(n, k / kI16Block)));
      const __m128i lo = _mm_and_si128(v, mask), hi = _mm_and_si128(_mm_srli_epi16(v, 4), mask);
      const __m128i first = _mm_sub_epi8(_mm_unpacklo_epi8(lo, hi), zero);  // k .. k + 15
      const __m128i second = _mm_sub_epi8(_mm_unpackhi_epi8(lo, hi), zero);
      _mm256_store_si256(reinterpret_cast<__m256i*>(dst + (k - k0)), _mm256_cvtepi8_epi16(first));
      _mm256_store_si256(reinterpret_cast<__m256i*>(dst + (k - k0) + 16), _mm256_cvtepi8_epi16(second));
    }
  };
  const Int4GroupScale factor{{x}, w};
  auto finish = [&](int64_t m, int64_t n, float v) { from_float(bias ? v + bias[n] : v, out + m * N + n); };
  i16_gemm(x, M, n_begin, n_end, widen, factor, finish);
}

// x from avx2::quantize_rows_i16 with sub = kI16Block, natural order; M > kI16MaxRows, group
// size kI16Block.
void int4_gemm_i16_cols(const I16Rows& x, int64_t M, int64_t K, const uint8_t* packed, const float* scales,
                        const uint8_t* zeros, int64_t N, int64_t n_begin, int64_t n_end, const float* bias,
                        void* out, DType out_dtype) {
  const Int4Weight w{packed, scales, zeros, K, kI16Block};
  with_element_type(out_dtype, [&](auto tag) {
    int4_gemm_i16_typed(x, M, w, N, n_begin, n_end, bias, static_cast<decltype(tag)*>(out));
  });
}
#endif

// Columns [n0, n1) dequantized into tile[(n - n0) * K + k'], k' in nibble order: the large-M
// path multiplies such tiles with torch's fp32 GEMM (cpu.cpp).
void int4_dequantize_cols(const uint8_t* packed, const float* scales, const uint8_t* zeros, int64_t K,
                          int64_t group_size, int64_t n0, int64_t n1, float* tile) {
  int4_dequantize_columns(Int4Weight{packed, scales, zeros, K, group_size}, n0, n1, tile);
}

}  // namespace bigaccel::BIGACCEL_ISA_NS

#if BIGACCEL_VEC_LEVEL == BIGACCEL_ISA_AVX512
#include "int4_gemm/cpu_bf16.h"
#endif
