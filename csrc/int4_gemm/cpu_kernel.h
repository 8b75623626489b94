// int4 group-wise weight-only GEMM (W4A16) on CPU, written once for every ISA.
//
// Weight in the canonical layout (bigaccel/reference.py): packed uint8 [N, K/2], byte j
// holding k = 2j (low nibble) and k = 2j+1 (high nibble); fp32 scales and uint8 zero
// points [N, K/G] (zero 8 when symmetric). w[n][k] = (code - zero) * scale, exact in fp32.
//
// Small M (<= kFusedMaxRows): GEMV. Each column's packed bytes are streamed once and
//   unpacked into fp32 lanes in registers; per group acc_g += x * (code - zero), then
//   acc += acc_g * scale (vector), one horizontal sum per output. Memory bound: the
//   weight is read at 0.5 byte/weight.
// Larger M: a block of kBlockN columns is dequantized into an fp32 scratch tile
//   (kBlockN * K * 4 bytes, cache resident) and reused across all M rows with a
//   4 x 2 register tile of dot products.
#pragma once

#include "common/vec.h"

namespace bigaccel::BIGACCEL_ISA_NS {

constexpr int kInt4FusedMaxRows = 4;
constexpr int kInt4BlockN = 8;

// VecF::kWidth codes from kWidth/2 packed bytes, in k order, as exact fp32.
static inline VecF load_nibbles(const uint8_t* p) {
#if BIGACCEL_VEC_LEVEL == BIGACCEL_ISA_AVX512
  const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));  // 8 bytes
  const __m512i dup = _mm512_cvtepu8_epi32(_mm_unpacklo_epi8(b, b));       // b0 b0 b1 b1 ...
  const __m512i shift = _mm512_set_epi32(4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0);
  const __m512i codes = _mm512_and_si512(_mm512_srlv_epi32(dup, shift), _mm512_set1_epi32(0xF));
  return {_mm512_cvtepi32_ps(codes)};
#elif BIGACCEL_VEC_LEVEL == BIGACCEL_ISA_AVX2
  const __m128i b = _mm_cvtsi32_si128(*reinterpret_cast<const int32_t*>(p));  // 4 bytes (unaligned-safe on x86)
  const __m256i dup = _mm256_cvtepu8_epi32(_mm_unpacklo_epi8(b, b));
  const __m256i shift = _mm256_set_epi32(4, 0, 4, 0, 4, 0, 4, 0);
  const __m256i codes = _mm256_and_si256(_mm256_srlv_epi32(dup, shift), _mm256_set1_epi32(0xF));
  return {_mm256_cvtepi32_ps(codes)};
#else
  VecF r;
  for (int i = 0; i < VecF::kWidth; ++i) r.v[i] = float((p[i / 2] >> (4 * (i & 1))) & 0xF);
  return r;
#endif
}

struct Int4Weight {
  const uint8_t* packed;  // [N, K/2]
  const float* scales;    // [N, K/G]
  const uint8_t* zeros;   // [N, K/G] or nullptr (8)
  int64_t K, G;
  float zero(int64_t n, int64_t g) const { return zeros ? float(zeros[n * (K / G) + g]) : 8.0f; }
};

template <int R, typename T>
static void int4_gemv_rows(const float* x, const Int4Weight& w, int64_t N, int64_t n_begin, int64_t n_end,
                           const float* bias, T* out) {
  constexpr int W = VecF::kWidth;
  const int64_t K = w.K, G = w.G, groups = K / G;
  for (int64_t n = n_begin; n < n_end; ++n) {
    const uint8_t* row = w.packed + n * (K / 2);
    VecF acc[R];
    for (int r = 0; r < R; ++r) acc[r] = VecF::zero();
    for (int64_t g = 0; g < groups; ++g) {
      const VecF zero = VecF::broadcast(w.zero(n, g));
      VecF acc_g[R];
      for (int r = 0; r < R; ++r) acc_g[r] = VecF::zero();
      for (int64_t k = g * G; k < (g + 1) * G; k += W) {
        const VecF wv = load_nibbles(row + k / 2) - zero;
        for (int r = 0; r < R; ++r) acc_g[r] = fma(VecF::load(x + r * K + k), wv, acc_g[r]);
      }
      const VecF scale = VecF::broadcast(w.scales[n * groups + g]);
      for (int r = 0; r < R; ++r) acc[r] = fma(acc_g[r], scale, acc[r]);
    }
    for (int r = 0; r < R; ++r) {
      const float v = acc[r].reduce_add();
      from_float(bias ? v + bias[n] : v, out + r * N + n);
    }
  }
}

// Dequantizes columns [n0, n1) into tile[(n - n0) * K + k].
static void int4_dequantize_columns(const Int4Weight& w, int64_t n0, int64_t n1, float* tile) {
  constexpr int W = VecF::kWidth;
  const int64_t K = w.K, G = w.G, groups = K / G;
  for (int64_t n = n0; n < n1; ++n) {
    const uint8_t* row = w.packed + n * (K / 2);
    float* dst = tile + (n - n0) * K;
    for (int64_t g = 0; g < groups; ++g) {
      const VecF zero = VecF::broadcast(w.zero(n, g)), scale = VecF::broadcast(w.scales[n * groups + g]);
      for (int64_t k = g * G; k < (g + 1) * G; k += W) ((load_nibbles(row + k / 2) - zero) * scale).store(dst + k);
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
      case 1: return int4_gemv_rows<1>(x, w, N, n_begin, n_end, bias, out);
      case 2: return int4_gemv_rows<2>(x, w, N, n_begin, n_end, bias, out);
      case 3: return int4_gemv_rows<3>(x, w, N, n_begin, n_end, bias, out);
      default: return int4_gemv_rows<4>(x, w, N, n_begin, n_end, bias, out);
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
  switch (out_dtype) {
    case DType::F32:
      return int4_mm_typed(x, M, w, N, n_begin, n_end, bias, scratch, static_cast<float*>(out));
    case DType::BF16:
      return int4_mm_typed(x, M, w, N, n_begin, n_end, bias, scratch, static_cast<bf16_t*>(out));
    case DType::F16:
      return int4_mm_typed(x, M, w, N, n_begin, n_end, bias, scratch, static_cast<fp16_t*>(out));
  }
}

}  // namespace bigaccel::BIGACCEL_ISA_NS
