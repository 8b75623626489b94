// int8 GEMMs on CPU, written once for every ISA (see common/dot_tile.h).
//
// W8A8: activations arrive as u8 = int8 + 128 (VNNI multiplies u8 by s8), so
//   sum_k a_u8 * w = acc + 128 * sum_k w, and the epilogue subtracts 128 * w_sum[n]
//   (the AVX2 policy undoes the shift in registers instead: see DotU8S8::kOffsetA).
//   out[m][n] = float(acc) * (a_scale[m] * w_scale[n]) + bias[n], as in the reference.
// W8A16: fp32 activations against widened int8 weights, fp32 accumulation;
//   out[m][n] = acc * w_scale[n] + bias[n].
#pragma once

#include "common/dot_tile.h"

namespace bigaccel::BIGACCEL_ISA_NS {

template <typename T>
static void int8_mm_typed(const uint8_t* a, int64_t M, int64_t K, const int8_t* w, int64_t N, int64_t n_begin,
                          int64_t n_end, const float* a_scale, const float* w_scale, const int32_t* w_sum,
                          const float* bias, T* out) {
  constexpr int MR = DotU8S8::kTileM, NR = DotU8S8::kTileN;
  W8A8Epilogue<T> epi{a_scale, w_scale, w_sum, bias, out, N};
  dot_gemm<DotU8S8, MR, NR>(a, K, M, w, K, n_begin, n_end, K, rows_per_block(K, 1, MR), epi);
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
  dot_gemm<DotF32S8, MR, NR>(x, K, M, w, K, n_begin, n_end, K, rows_per_block(K, 4, MR), epi);
}

void int8_weight_only_cols(const float* x, int64_t M, int64_t K, const int8_t* w, int64_t N, int64_t n_begin,
                           int64_t n_end, const float* w_scale, const float* bias, void* out, DType out_dtype) {
  with_element_type(out_dtype, [&](auto tag) {
    int8_weight_only_typed(x, M, K, w, N, n_begin, n_end, w_scale, bias, static_cast<decltype(tag)*>(out));
  });
}

#if BIGACCEL_VEC_LEVEL == BIGACCEL_ISA_AVX512
// W8A16 with bf16 activations on CPUs with AVX512_BF16: products of bf16 and int8
// are exact in fp32 either way, and vdpbf16ps does twice the work of an fp32 FMA.
template <typename T>
static void int8_weight_only_bf16_typed(const bf16_t* x, int64_t M, int64_t K, const int8_t* w, int64_t N,
                                        int64_t n_begin, int64_t n_end, const float* w_scale, const float* bias,
                                        T* out) {
  constexpr int MR = DotBF16S8::kTileM, NR = DotBF16S8::kTileN;
  auto epi = [&](int64_t m, int64_t n, float acc) {
    const float v = acc * w_scale[n];
    from_float(bias ? v + bias[n] : v, out + m * N + n);
  };
  dot_gemm<DotBF16S8, MR, NR>(x, K, M, w, K, n_begin, n_end, K, rows_per_block(K, 2, MR), epi);
}

void int8_weight_only_bf16_cols(const bf16_t* x, int64_t M, int64_t K, const int8_t* w, int64_t N, int64_t n_begin,
                                int64_t n_end, const float* w_scale, const float* bias, bf16_t* out) {
  int8_weight_only_bf16_typed(x, M, K, w, N, n_begin, n_end, w_scale, bias, out);
}
#endif

}  // namespace bigaccel::BIGACCEL_ISA_NS
