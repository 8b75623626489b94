// The activation side of common/act_i16.h, for the AVX2 tier.
#include "common/act_i16.h"

#define BIGACCEL_ISA_LEVEL BIGACCEL_ISA_AVX2
#define BIGACCEL_ISA_NS avx2
#include "common/isa.h"
#include "common/vec.h"

namespace bigaccel::avx2 {

#if BIGACCEL_VEC_LEVEL == BIGACCEL_ISA_AVX2
namespace {

// One block of n <= kI16Block elements into tmp (zero padded to kI16Block); returns false on
// inf or nan.
template <typename T>
bool quantize_block(const T* x, int n, int16_t* tmp, float* block_scale) {
  constexpr int W = VecF::kWidth;
  VecF amax = VecF::zero(), finite = VecF::zero();  // finite stays 0 unless some x*0 is nan
  for (int i = 0; i < n; i += W) {
    const VecF v = n - i >= W ? VecF::load(x + i) : VecF::load(x + i, n - i);
    amax = max(amax, abs(v));
    finite = fma(v, VecF::zero(), finite);
  }
  if (__builtin_isnan(finite.reduce_add())) return false;
  const float m = amax.reduce_max();
  int e = m > 0.0f ? ilogbf(m) - 14 : 0;
  e = e < -126 ? -126 : e;
  *block_scale = ldexpf(1.0f, e);
  const VecF inv = VecF::broadcast(ldexpf(1.0f, -e));
  for (int i = 0; i < kI16Block; i += 2 * W) {
    VecF a = VecF::zero(), b = VecF::zero();
    if (i < n) a = n - i >= W ? VecF::load(x + i) : VecF::load(x + i, n - i);
    if (i + W < n) b = n - i - W >= W ? VecF::load(x + i + W) : VecF::load(x + i + W, n - i - W);
    // round to nearest even (the MXCSR default); packs saturates, which never triggers for
    // bf16 or fp16 inputs (|x / 2^e| <= 32752).
    const __m256i qa = _mm256_cvtps_epi32((a * inv).v), qb = _mm256_cvtps_epi32((b * inv).v);
    const __m256i packed = _mm256_permute4x64_epi64(_mm256_packs_epi32(qa, qb), 0xD8);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(tmp + i), packed);
  }
  return true;
}

template <typename T>
bool quantize_rows(const T* x, int64_t M, int64_t K, int64_t sub, int quad_chunk, int16_t* q, float* scale,
                   float* qsum) {
  const int64_t padded = i16_padded_k(K), subs = padded / sub;
  alignas(32) int16_t tmp[kI16Block];
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t k0 = 0; k0 < padded; k0 += kI16Block) {
      const int n = int(K - k0 < kI16Block ? K - k0 : kI16Block);
      float s = 1.0f;
      if (n <= 0) {
        std::memset(tmp, 0, sizeof(tmp));
      } else if (!quantize_block(x + m * K + k0, n, tmp, &s)) {
        return false;
      }
      int16_t* dst = q + m * padded + k0;
      if (quad_chunk) {  // 64 or 128, both dividing kI16Block
        const int c = quad_chunk;
        for (int i = 0; i < kI16Block; ++i) dst[(i & ~(c - 1)) + (i & 3) * (c / 4) + ((i & (c - 1)) >> 2)] = tmp[i];
      } else {
        std::memcpy(dst, tmp, sizeof(tmp));
      }
      for (int64_t j = 0; j < kI16Block / sub; ++j) {
        const int64_t idx = m * subs + k0 / sub + j;
        scale[idx] = s;
        if (qsum) {
          int32_t total = 0;
          for (int64_t i = j * sub; i < (j + 1) * sub; ++i) total += tmp[i];
          qsum[idx] = float(total) * s;  // exact: |total| < 2^22
        }
      }
    }
  }
  return true;
}

}  // namespace

bool quantize_rows_i16(const void* x, DType dtype, int64_t M, int64_t K, int64_t sub, int quad_chunk, int16_t* q,
                       float* scale, float* qsum) {
  if (dtype == DType::BF16)
    return quantize_rows(static_cast<const bf16_t*>(x), M, K, sub, quad_chunk, q, scale, qsum);
  if (dtype == DType::F16)
    return quantize_rows(static_cast<const fp16_t*>(x), M, K, sub, quad_chunk, q, scale, qsum);
  return false;
}
#else
bool quantize_rows_i16(const void*, DType, int64_t, int64_t, int64_t, bool, int16_t*, float*, float*) { return false; }
#endif

}  // namespace bigaccel::avx2

BIGACCEL_ISA_POP
