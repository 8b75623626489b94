// int8 GEMMs on CPU, written once for every ISA (see common/dot_tile.h).
//
// W8A8: activations arrive as u8 = int8 + 128 (VNNI multiplies u8 by s8), so
//   sum_k a_u8 * w = acc + 128 * sum_k w, and the epilogue subtracts 128 * w_sum[n]
//   (the AVX2 policy undoes the shift in registers instead: see DotU8S8::kOffsetA).
//   out[m][n] = float(acc) * (a_scale[m] * w_scale[n]) + bias[n], as in the reference.
// W8A16: fp32 activations against widened int8 weights, fp32 accumulation;
//   out[m][n] = acc * w_scale[n] + bias[n]. bf16/fp16 activations on AVX2 are held as
//   int16 instead (common/act_i16.h): the GEMV below up to 4 rows, then the blocked GEMM
//   of common/i16_gemm.h.
#pragma once

#include "common/act_i16.h"
#include "common/i16_gemm.h"
#include "common/dot_tile.h"
#if BIGACCEL_VEC_LEVEL == BIGACCEL_ISA_AVX512
#include "common/rowvec_gemm.h"
#endif

namespace bigaccel::BIGACCEL_ISA_NS {

#if BIGACCEL_VEC_LEVEL == BIGACCEL_ISA_AVX512
// From this M, W8A8 on AVX-512 runs common/rowvec_gemm.h's outer-product GEMM, for every larger M.
// One Zen 5 core, 4096/11008 weights in L3 or DRAM (2026-11-28): at M = 12 it ran at 0.56-0.59
// TOP/s against the dot-product tiles' 0.40-0.63, at M = 16 0.71-0.75 against 0.48-0.64, from
// M = 32 0.94-0.99 (90-95% of the core's vpdpbusd rate) against 0.44-0.72. Below 12 rows most of
// a 16-row block would be padding.
constexpr int64_t kVnniGemmMinRows = 12;
#endif

template <typename T>
static void int8_mm_typed(const uint8_t* a, int64_t M, int64_t K, const int8_t* w, int64_t N, int64_t n_begin,
                          int64_t n_end, const float* a_scale, const float* w_scale, const int32_t* w_sum,
                          const float* bias, T* out) {
  constexpr int MR = DotU8S8::kTileM, NR = DotU8S8::kTileN;
#if BIGACCEL_VEC_LEVEL == BIGACCEL_ISA_AVX512
  if (M >= kVnniGemmMinRows)
    return rowvec_gemm<RowVecU8S8>(a, M, K, RowVecInPlace{w, K}, n_begin, n_end,
                                   RowVecW8A8Epilogue<T>{{a_scale, w_scale, w_sum, bias, out, N}});
#endif
  W8A8Epilogue<T> epi{a_scale, w_scale, w_sum, bias, out, N};
  dot_gemm_panels<DotU8S8, MR, NR>(a, M, w, n_begin, n_end, K, rows_per_block(K, 1, MR), epi);
}

void int8_mm_cols(const uint8_t* a, int64_t M, int64_t K, const int8_t* w, int64_t N, int64_t n_begin, int64_t n_end,
                  const float* a_scale, const float* w_scale, const int32_t* w_sum, const float* bias, void* out,
                  DType out_dtype) {
  with_element_type(out_dtype, [&](auto tag) {
    int8_mm_typed(a, M, K, w, N, n_begin, n_end, a_scale, w_scale, w_sum, bias, static_cast<decltype(tag)*>(out));
  });
}

template <typename T>
static void int8_weight_only_typed(const float* x, int64_t M, int64_t K, const int8_t* w, int64_t N, int64_t n_begin,
                                   int64_t n_end, const float* w_scale, const float* bias, T* out) {
  constexpr int MR = DotF32S8::kTileM, NR = DotF32S8::kTileN;
  auto epi = [&](int64_t m, int64_t n, float acc) {
    const float v = acc * w_scale[n];
    from_float(bias ? v + bias[n] : v, out + m * N + n);
  };
  dot_gemm_panels<DotF32S8, MR, NR>(x, M, w, n_begin, n_end, K, rows_per_block(K, 4, MR), epi);
}

void int8_weight_only_cols(const float* x, int64_t M, int64_t K, const int8_t* w, int64_t N, int64_t n_begin,
                           int64_t n_end, const float* w_scale, const float* bias, void* out, DType out_dtype) {
  with_element_type(out_dtype, [&](auto tag) {
    int8_weight_only_typed(x, M, K, w, N, n_begin, n_end, w_scale, bias, static_cast<decltype(tag)*>(out));
  });
}

#if BIGACCEL_VEC_LEVEL == BIGACCEL_ISA_AVX2
// W8A16 with bf16/fp16 activations at M <= kI16MaxRows: x as int16 (common/act_i16.h,
// natural order, one scale per block of 128 k), weights sign-extended to int16, vpmaddwd
// into int32. A block's sums stay below 128 * 128 * 32767 < 2^31; each block then adds
// float(sum) * 2^e to an fp32 accumulator. R rows x C columns per tile.
static inline __m256i widen_int8_to_int16(const int8_t* p) {
  return _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

template <int R, int C, typename T>
static void w8_gemv_i16_tile(const I16Rows& x, int64_t K, const int8_t* w, int64_t n, int64_t N,
                             const float* w_scale, const float* bias, T* out) {
  __m256 acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < C; ++j) acc[r][j] = _mm256_setzero_ps();
  __m256i isum[R][C];
  // 32 k of column j from wp, against x's k .. k + 31.
  auto step = [&](int j, const int8_t* wp, int64_t k) {
    const __m256i w0 = widen_int8_to_int16(wp), w1 = widen_int8_to_int16(wp + 16);
    for (int r = 0; r < R; ++r) {
      const __m256i* q = reinterpret_cast<const __m256i*>(x.q + r * x.padded_k + k);
      isum[r][j] = _mm256_add_epi32(isum[r][j], _mm256_add_epi32(_mm256_madd_epi16(w0, _mm256_loadu_si256(q)),
                                                                 _mm256_madd_epi16(w1, _mm256_loadu_si256(q + 1))));
    }
  };
  for (int64_t k0 = 0; k0 < K; k0 += kI16Block) {
    const int64_t k1 = K - k0 < kI16Block ? K : k0 + kI16Block;
    for (int r = 0; r < R; ++r)
      for (int j = 0; j < C; ++j) isum[r][j] = _mm256_setzero_si256();
    int64_t k = k0;
    for (; k + 32 <= k1; k += 32)
      for (int j = 0; j < C; ++j) {
        const int8_t* wp = w + (n + j) * K + k;
        __builtin_prefetch(wp + 8 * K, 0, 2);  // rows ahead: hardware prefetchers stop at pages
        step(j, wp, k);
      }
    if (k < k1) {  // the row's last k; x is zero padded to the block
      alignas(32) int8_t tail[32];
      std::memset(tail, 0, sizeof(tail));  // each column overwrites the same first k1 - k bytes
      for (int j = 0; j < C; ++j) {
        std::memcpy(tail, w + (n + j) * K + k, size_t(k1 - k));
        step(j, tail, k);
      }
    }
    for (int r = 0; r < R; ++r) {
      const __m256 scale = _mm256_set1_ps(x.scale[r * x.subs + k0 / kI16Block]);
      for (int j = 0; j < C; ++j) acc[r][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[r][j]), scale, acc[r][j]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < C; ++j) {
      const float v = VecF{acc[r][j]}.reduce_add() * w_scale[n + j];
      from_float(bias ? v + bias[n + j] : v, out + r * N + n + j);
    }
}

// Column tiles of C = 4 / R (the int32 and fp32 accumulators of a tile fill the registers).
template <int R, typename T>
static void w8_gemv_i16_rows(const I16Rows& x, int64_t K, const int8_t* w, int64_t N, int64_t n_begin, int64_t n_end,
                             const float* w_scale, const float* bias, T* out) {
  constexpr int C = R == 1 ? 4 : (R == 2 ? 2 : 1);
  int64_t n = n_begin;
  for (; n + C <= n_end; n += C) w8_gemv_i16_tile<R, C>(x, K, w, n, N, w_scale, bias, out);
  for (; n < n_end; ++n) w8_gemv_i16_tile<R, 1>(x, K, w, n, N, w_scale, bias, out);
}

// Above kI16MaxRows rows, the same products as the blocked GEMM of common/i16_gemm.h.
template <typename T>
static void w8_gemm_i16(const I16Rows& x, int64_t M, int64_t K, const int8_t* w, int64_t N, int64_t n_begin,
                        int64_t n_end, const float* w_scale, const float* bias, T* out) {
  auto widen = [&](int64_t n, int64_t k0, int64_t k1, int16_t* dst) {
    const int8_t* src = w + n * K;
    prefetch_next_block(reinterpret_cast<const uint8_t*>(src), K, k0, k1 - k0);
    int64_t k = k0;
    for (; k + 16 <= std::min(K, k1); k += 16)
      _mm256_store_si256(reinterpret_cast<__m256i*>(dst + (k - k0)), widen_int8_to_int16(src + k));
    for (; k < k1; ++k) dst[k - k0] = k < K ? src[k] : 0;
  };
  const I16RowScale factor{x};  // w_scale comes in at the end
  auto finish = [&](int64_t m, int64_t n, float v) {
    v *= w_scale[n];
    from_float(bias ? v + bias[n] : v, out + m * N + n);
  };
  i16_gemm(x, M, n_begin, n_end, widen, factor, finish);
}

// x from avx2::quantize_rows_i16 with sub = kI16Block, natural order.
void int8_weight_only_i16_cols(const I16Rows& x, int64_t M, int64_t K, const int8_t* w, int64_t N, int64_t n_begin,
                               int64_t n_end, const float* w_scale, const float* bias, void* out, DType out_dtype) {
  with_element_type(out_dtype, [&](auto tag) {
    auto* o = static_cast<decltype(tag)*>(out);
    switch (M) {
      case 0: return;
      case 1: return w8_gemv_i16_rows<1>(x, K, w, N, n_begin, n_end, w_scale, bias, o);
      case 2: return w8_gemv_i16_rows<2>(x, K, w, N, n_begin, n_end, w_scale, bias, o);
      case 3: return w8_gemv_i16_rows<3>(x, K, w, N, n_begin, n_end, w_scale, bias, o);
      case 4: return w8_gemv_i16_rows<4>(x, K, w, N, n_begin, n_end, w_scale, bias, o);
      default: return w8_gemm_i16(x, M, K, w, N, n_begin, n_end, w_scale, bias, o);
    }
  });
}
#endif

#if BIGACCEL_VEC_LEVEL == BIGACCEL_ISA_AVX512
// W8A16 with bf16 activations on CPUs with AVX512_BF16: products of bf16 and int8
// are exact in fp32 either way, and vdpbf16ps does twice the work of an fp32 FMA. From
// kW8A16RowVecMinRows rows, common/rowvec_gemm.h's GEMM on weight chunks staged as bf16, for
// every larger M. Two threads, 4096/11008 weights in L3 or DRAM (2026-11-28), TFLOP/s against
// the dot-product tiles below and, from M = 64, torch's bf16 GEMM over weight blocks widened to
// bf16: 0.44-0.50 against 0.45-0.47 at M = 16-20 (one 16-row block is bound by its
// broadcasts), 0.53-0.60 against 0.46 at 24, 0.79-0.85 against 0.45-0.47 at 48, 0.81-0.87
// against 0.61-0.65 at 64, 0.91-0.94 against 0.87-0.90 at 256.
constexpr int64_t kW8A16RowVecMinRows = 24;

// Below that, dot-product tiles of MR rows x NR columns, MR = 5-8 rows for M = 5-23
// (with_tile_rows_5_to_8), each converting its NR weight vectors (5 operations per 32 weights)
// for MR rows where the 4 x 4 tile converted them for 4; all M rows in one block (their panels
// stay in L2), so each weight row is read once. Two threads, 4096/11008 weights in L3
// (2026-11-28), TFLOP/s against the 4 x 4 tile: 0.65-0.76 against 0.56-0.59 at M = 16, 0.54
// against 0.39 at 5, 0.58-0.61 against 0.51-0.58 at 8.
template <int MR, typename Epi>
static void w8a16_bf16_tiles(const bf16_t* x, int64_t M, int64_t K, const int8_t* w, int64_t n_begin, int64_t n_end,
                             Epi& epi) {
  constexpr int NR = tile_cols_for_rows(MR);
  const int64_t block = std::max<int64_t>(MR, (512 * 1024) / (2 * K) / MR * MR);
  dot_gemm_panels<DotBF16S8, MR, NR>(x, M, w, n_begin, n_end, K, block, epi);
}

template <typename T>
static void int8_weight_only_bf16_typed(const bf16_t* x, int64_t M, int64_t K, const int8_t* w, int64_t N,
                                        int64_t n_begin, int64_t n_end, const float* w_scale, const float* bias,
                                        T* out) {
  if (M >= kW8A16RowVecMinRows)
    return rowvec_gemm<RowVecBF16>(x, M, K, RowVecStagedS8{w, K}, n_begin, n_end,
                                   RowVecFloatEpilogue<T>{w_scale, bias, out, N});
  auto epi = [&](int64_t m, int64_t n, float acc) {
    const float v = acc * w_scale[n];
    from_float(bias ? v + bias[n] : v, out + m * N + n);
  };
  if (M <= DotBF16S8::kTileM)  // one 4 x 4 tile row (M = 1: the streaming GEMV)
    return dot_gemm_panels<DotBF16S8, DotBF16S8::kTileM, DotBF16S8::kTileN>(x, M, w, n_begin, n_end, K, M, epi);
  with_tile_rows_5_to_8(M, [&](auto rows) { w8a16_bf16_tiles<decltype(rows)::value>(x, M, K, w, n_begin, n_end, epi); });
}

void int8_weight_only_bf16_cols(const bf16_t* x, int64_t M, int64_t K, const int8_t* w, int64_t N, int64_t n_begin,
                                int64_t n_end, const float* w_scale, const float* bias, bf16_t* out) {
  int8_weight_only_bf16_typed(x, M, K, w, N, n_begin, n_end, w_scale, bias, out);
}
#endif

}  // namespace bigaccel::BIGACCEL_ISA_NS
