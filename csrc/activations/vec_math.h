// Vectorized transcendental helpers for the activation kernels, written once
// against VecF (common/vec.h) plus a few small per-ISA primitives below.
//
// Accuracy (measured in tests/ops/test_activations.py against float64):
//   exp_nonpositive  Cody-Waite reduction to |r| <= ln2/2 and a degree-6 polynomial
//                (fitted on Chebyshev nodes): < 1 fp32 ulp before scaling.
//   normal_cdf   erfc(y) = t * exp(-y^2) * P(t), t = 1 / (1 + y/2), y >= 0, P of
//                degree 10 fitted to erfc(y) exp(y^2) / t over t in (0, 1]: a few ulps
//                relative everywhere, so Phi(x) = erfc(-x/sqrt2)/2 keeps its
//                relative accuracy deep in the negative tail, where
//                0.5 * (1 + erf(x)) loses everything to cancellation.
//   tanh         never formed: 0.5 * (1 + tanh(z)) = sigmoid(2z) exactly, which is
//                what the tanh GELU and its derivative need.
#pragma once

#include "common/vec.h"

namespace bigaccel::BIGACCEL_ISA_NS {

#if BIGACCEL_VEC_LEVEL == BIGACCEL_ISA_AVX512

inline VecF div(VecF a, VecF b) { return {_mm512_div_ps(a.v, b.v)}; }
// Lanes where x has its sign bit set take `neg`, the others `pos`.
inline VecF select_sign(VecF x, VecF neg, VecF pos) {
  return {_mm512_mask_blend_ps(_mm512_movepi32_mask(_mm512_castps_si512(x.v)), pos.v, neg.v)};
}
// -|x| in one operation.
inline VecF neg_abs(VecF x) { return {_mm512_or_ps(x.v, _mm512_set1_ps(-0.0f))}; }
// p * 2^n for integral n, rounded through the denormals to 0 (vscalefps), with no exponent-field
// arithmetic and so no range check.
inline VecF scale_pow2(VecF p, VecF n) { return {_mm512_scalef_ps(p.v, n.v)}; }
// min(|x|, bound) (vrangeps: the smaller magnitude, sign cleared).
inline VecF abs_min(VecF x, float bound) { return {_mm512_range_ps(x.v, _mm512_set1_ps(bound), 0x0A)}; }
// 1 - h where x's sign bit is clear, h where it is set (select_sign(x, h, 1 - h) in 2 operations).
inline VecF one_minus_where_nonnegative(VecF x, VecF h) {
  const __mmask16 nonneg = _mm512_testn_epi32_mask(_mm512_castps_si512(x.v), _mm512_set1_epi32(int(0x80000000u)));
  return {_mm512_mask_sub_ps(h.v, nonneg, _mm512_set1_ps(1.0f), h.v)};
}
inline VecF reciprocal_fast(VecF b) { return {_mm512_rcp14_ps(b.v)}; }
// a / b for the Fast (16-bit output) polynomials: vrcp14ps is within 2^-14 relative, a
// quarter of an fp16 half-ulp, and costs a fraction of vdivps.
inline VecF div_fast(VecF a, VecF b) { return {_mm512_mul_ps(a.v, _mm512_rcp14_ps(b.v))}; }
template <typename T>
inline void store_out(VecF v, T* p) { v.store(p); }
template <typename T>
inline void store_out(VecF v, T* p, int n) { v.store(p, n); }

// 32 bf16 as two vectors, the even elements and the odd ones: a bf16 is the high half of
// its fp32, so each vector is one shift or one mask of the same load, with no lane
// crossing (vec.h's load() widens and shifts, 2 operations a vector), and store_pair
// interleaves them back with one masked word move. Elementwise code may use it whenever
// every operand and the output go through it. The rounding needs no nan fix-up here: a
// nan in these kernels comes from bf16 data (a nan operand's payload, quieted) or is
// x86's default nan, both with a zero low half, which the rounding add cannot carry out of.
inline void load_pair(const bf16_t* p, VecF& even, VecF& odd) {
  const __m512i h = _mm512_loadu_si512(p);
  even.v = _mm512_castsi512_ps(_mm512_slli_epi32(h, 16));
  odd.v = _mm512_castsi512_ps(_mm512_and_si512(h, _mm512_set1_epi32(int(0xFFFF0000u))));
}
// Rounds to nearest even; the bf16 bits are each lane's high half.
inline __m512i round_to_bf16_high(VecF f) {
  const __m512i u = _mm512_castps_si512(f.v);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  return _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF)));
}

// 64 bytes to p; where `stream` and p is 64-byte aligned (vmovntdq faults otherwise), past the
// caches: an output that will not stay in them anyway then costs no read for ownership,
// which is a third of a bf16 gated op's traffic (stream_fence() before others read it).
inline void write_line(void* p, __m512i v, bool stream) {
  if (stream && (reinterpret_cast<uintptr_t>(p) & 63) == 0)
    _mm512_stream_si512(static_cast<__m512i*>(p), v);
  else
    _mm512_storeu_si512(p, v);
}
inline void stream_fence() { _mm_sfence(); }

inline void store_pair(VecF a, VecF b, float* p, bool stream = false) {
  write_line(p, _mm512_castps_si512(a.v), stream);
  write_line(p + VecF::kWidth, _mm512_castps_si512(b.v), stream);
}
inline void store_pair(VecF a, VecF b, fp16_t* p, bool stream = false) {
  write_line(p, _mm512_inserti64x4(_mm512_castsi256_si512(a.narrow_fp16()), b.narrow_fp16(), 1), stream);
}
inline void store_pair(VecF even, VecF odd, bf16_t* p, bool stream = false) {
  const __m512i lo = _mm512_srli_epi32(round_to_bf16_high(even), 16);
  write_line(p, _mm512_mask_mov_epi16(lo, __mmask32(0xAAAAAAAAu), round_to_bf16_high(odd)), stream);
}

// store_pair with AVX512_BF16 (the caller has checked the CPU): one vcvtne2ps2bf16 rounds
// both vectors to nearest even and one vpermw interleaves them, where the integer rounding
// takes 11 operations. The instruction flushes fp32 denormals to 0, so the rare pair that
// holds one takes the integer rounding (denormal results are rounded, not flushed).
inline void store_pair_bf16_instructions(VecF even, VecF odd, bf16_t* p, bool stream) {
  constexpr int kDenormal = 0x20;  // vfpclassps category
  if (_mm512_fpclass_ps_mask(even.v, kDenormal) | _mm512_fpclass_ps_mask(odd.v, kDenormal))
    return store_pair(even, odd, p, stream);
  alignas(64) static constexpr uint16_t kInterleave[32] = {0, 16, 1, 17, 2,  18, 3,  19, 4,  20, 5,
                                                           21, 6, 22, 7, 23, 8,  24, 9,  25, 10, 26,
                                                           11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
  const __m512i both = (__m512i)_mm512_cvtne2ps_pbh(odd.v, even.v);  // even in the low half
  write_line(p, _mm512_permutexvar_epi16(_mm512_load_si512(kInterleave), both), stream);
}

#elif BIGACCEL_VEC_LEVEL == BIGACCEL_ISA_AVX2

inline VecF div(VecF a, VecF b) { return {_mm256_div_ps(a.v, b.v)}; }
// vrcpps is only 1.5 * 2^-12 relative, too coarse for fp16.
inline VecF div_fast(VecF a, VecF b) { return div(a, b); }
template <int Offset>
inline VecF pow2_of_magic(VecF nf) {
  return {_mm256_castsi256_ps(_mm256_add_epi32(_mm256_slli_epi32(_mm256_castps_si256(nf.v), 23),
                                               _mm256_set1_epi32((127 + Offset) << 23)))};
}
inline VecF select_sign(VecF x, VecF neg, VecF pos) { return {_mm256_blendv_ps(pos.v, neg.v, x.v)}; }
inline VecF zero_below(VecF v, VecF x, float bound) {
  return {_mm256_and_ps(v.v, _mm256_cmp_ps(x.v, _mm256_set1_ps(bound), _CMP_GE_OQ))};
}

// Rounds to nearest even and leaves the bf16 bits in each lane's low half. Without
// vec.h's nan fix-up: in these kernels a bf16 result that is nan comes from bf16 data
// (a nan operand's payload, quieted) or is x86's default nan, and both have a zero low
// half, which the rounding add cannot carry out of.
inline __m256i round_to_bf16_bits(VecF f) {
  const __m256i u = _mm256_castps_si256(f.v);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  return _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7FFF))), 16);
}
// vec.h's AVX2 bf16 store goes through a scalar loop; this one stays in vector registers
// (the bandwidth-bound kernels here would feel it).
inline __m128i narrow_bf16(VecF f) {
  const __m256i r = round_to_bf16_bits(f);
  return _mm256_castsi256_si128(_mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0x08));
}
template <typename T>
inline void store_out(VecF v, T* p) { v.store(p); }
inline void store_out(VecF v, bf16_t* p) { _mm_storeu_si128(reinterpret_cast<__m128i*>(p), narrow_bf16(v)); }

// Two vectors of bf16 in the lane order of unpacklo/unpackhi_epi16 (elements 0-3 and
// 8-11, then 4-7 and 12-15): one load and one unpack per vector, where load() takes a
// widening and a shift, and packus_epi32 restores the order on the way out, where
// store_out() takes a pack and a lane-crossing permute. Elementwise code may use it
// whenever every operand and the output go through it.
inline void load_pair(const bf16_t* p, VecF& a, VecF& b) {
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  a.v = _mm256_castsi256_ps(_mm256_unpacklo_epi16(_mm256_setzero_si256(), h));
  b.v = _mm256_castsi256_ps(_mm256_unpackhi_epi16(_mm256_setzero_si256(), h));
}
inline void store_pair(VecF a, VecF b, bf16_t* p) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm256_packus_epi32(round_to_bf16_bits(a), round_to_bf16_bits(b)));
}
template <typename T>
inline void store_out(VecF v, T* p, int n) { v.store(p, n); }

#else  // portable

inline VecF div(VecF a, VecF b) { return VecF::map2(a, b, [](float x, float y) { return x / y; }); }
inline VecF div_fast(VecF a, VecF b) { return div(a, b); }
template <int Offset>
inline VecF pow2_of_magic(VecF nf) {
  VecF r;
  for (int i = 0; i < VecF::kWidth; ++i) r.v[i] = bits_float((float_bits(nf.v[i]) << 23) + (uint32_t(127 + Offset) << 23));
  return r;
}
inline VecF select_sign(VecF x, VecF neg, VecF pos) {
  VecF r;
  for (int i = 0; i < VecF::kWidth; ++i) r.v[i] = std::signbit(x.v[i]) ? neg.v[i] : pos.v[i];
  return r;
}
inline VecF zero_below(VecF v, VecF x, float bound) {
  VecF r;
  for (int i = 0; i < VecF::kWidth; ++i) r.v[i] = x.v[i] >= bound ? v.v[i] : 0.0f;
  return r;
}
template <typename T>
inline void store_out(VecF v, T* p) { v.store(p); }
template <typename T>
inline void store_out(VecF v, T* p, int n) { v.store(p, n); }

#endif

#if BIGACCEL_VEC_LEVEL != BIGACCEL_ISA_AVX512
inline void stream_fence() {}
inline VecF neg_abs(VecF x) { return VecF::zero() - abs(x); }
inline VecF abs_min(VecF x, float bound) { return min(abs(x), VecF::broadcast(bound)); }
inline VecF one_minus_where_nonnegative(VecF x, VecF h) { return select_sign(x, h, VecF::broadcast(1.0f) - h); }
inline VecF reciprocal_fast(VecF b) { return div_fast(VecF::broadcast(1.0f), b); }
#endif

// ---- written once for every ISA ----

// Two vectors from 2 * kWidth contiguous elements, in natural order (AVX2 overloads
// the bf16 pair above with its own order).
template <typename T>
inline void load_pair(const T* p, VecF& a, VecF& b) {
  a = VecF::load(p);
  b = VecF::load(p + VecF::kWidth);
}
template <typename T>
inline void store_pair(VecF a, VecF b, T* p) {
  store_out(a, p);
  store_out(b, p + VecF::kWidth);
}
// store_pair, through the bf16 instructions where Bf16Instructions, and streaming where
// `stream` (AVX-512 only: the other tiers store as usual).
template <bool Bf16Instructions, typename T>
inline void store_pair_as(VecF a, VecF b, T* p, bool stream) {
#if BIGACCEL_VEC_LEVEL == BIGACCEL_ISA_AVX512
  if constexpr (Bf16Instructions && std::is_same_v<T, bf16_t>) return store_pair_bf16_instructions(a, b, p, stream);
  return store_pair(a, b, p, stream);
#else
  (void)stream;
  store_pair(a, b, p);
#endif
}

// Fast (the template argument below): for results that are rounded to bf16 or fp16 (8 or
// 11 significant bits), polynomials of lower degree, fitted the same way for relative
// error: 7.5e-5 for exp (degree 3), 5.8e-5 for erfc's P (degree 5); on AVX-512 also the
// reciprocals from vrcp14ps (2^-14 = 6.1e-5) and a one-step exp reduction (4e-6). Together
// under 3e-4 relative, about half an fp16 ulp at worst and 0.08 of a bf16 ulp, before the
// one rounding (tests/ops/test_activations.py runs every 16-bit input). These kernels are
// bound by their count of vector operations: on AVX2 3 fewer FMAs took a silu loop from 11.0
// to 8.4 cycles per vector; on AVX-512 (Zen 5, in L2, bf16 silu_and_mul per 16 outputs at
// 3.7 GHz-equivalent) the cuts here took 10.5 cycles to 7.5, and the erf GELU 14.7 to 10.1.

// c[0] t^(N-1) + ... + c[N-1] by Horner's rule, each coefficient times `scale` (a power of
// two: exact).
template <int N>
inline VecF horner(VecF t, const float (&c)[N], float scale = 1.0f) {
  VecF p = VecF::broadcast(scale * c[0]);
  for (int i = 1; i < N; ++i) p = fma(p, t, VecF::broadcast(scale * c[i]));
  return p;
}

// exp(r) on |r| <= ln2/2 (Chebyshev-node fits), and erfc(y) exp(y^2) / t on t in (0, 1]
// (see normal_cdf); the Fast ones are of the degrees above.
constexpr float kExpPoly[] = {0.001394858118146658f, 0.008375128731131554f, 0.041666217148303986f,
                              0.16666415333747864f, 0.5f, 1.0f, 1.0f};
constexpr float kExpPolyFast[] = {0.1656682938337326f, 0.5049632787704468f, 1.0001641511917114f,
                                  0.9999280571937561f};
constexpr float kErfcPoly[] = {0.04317306727170944f, -0.23460549116134644f, 0.4933857321739197f,
                               -0.454563707113266f,  0.13185003399848938f,  -0.05905091017484665f,
                               0.09341474622488022f, 0.17532408237457275f,  0.24688388407230377f,
                               0.28209376335144043f, 0.282094806432724f};
constexpr float kErfcPolyFast[] = {-0.08970871567726135f, 0.08108232170343399f, 0.2075808346271515f,
                                   0.23569846153259277f,  0.28321048617362976f, 0.282078355550766f};

// exp(x) / 2^n for integral n = round(x / ln2): Cody-Waite reduction to |r| <= ln2/2
// (ln2 split so that n * hi is exact), then the degree-6 (Fast: 3) polynomial of exp(r).
template <bool Fast = false>
inline VecF exp_reduced(VecF x, VecF n, float scale = 1.0f) {
  VecF r = fma(n, VecF::broadcast(-0.693145751953125f), x);
  r = fma(n, VecF::broadcast(-1.4286068203094172e-06f), r);
  if constexpr (Fast) return horner(r, kExpPolyFast, scale);
  return horner(r, kExpPoly, scale);
}

// a * b + c with one rounding on every tier (vec.h's portable fma rounds twice,
// which would lose the low half of x^2 below).
inline VecF fused_mul_add(VecF a, VecF b, VecF c) {
#if BIGACCEL_VEC_LEVEL == BIGACCEL_ISA_PORTABLE
  VecF r;
  for (int i = 0; i < VecF::kWidth; ++i) r.v[i] = std::fmaf(a.v[i], b.v[i], c.v[i]);
  return r;
#else
  return fma(a, b, c);
#endif
}

// exp(x) * 2^Scale for x <= 0, with n rounded by adding 1.5 * 2^23 (its bits are then
// the exponent's), and 0 where that is under FLT_MIN (x < -87 - Scale ln2), as 2^(n + Scale)
// would leave the exponent field: flushed like a denormal, as those lanes' garbage is, -inf's
// included. (A clamp at -87 instead once made silu(-3e38) = -3e38 * exp(-87) = -4.9.)
template <bool Fast = false, int Scale = 0, bool Clamp = true>
inline VecF exp_nonpositive(VecF x) {
#if BIGACCEL_VEC_LEVEL == BIGACCEL_ISA_AVX512
  // n by rounding, 2^Scale folded into the polynomial (exact) and vscalefps, which rounds
  // through the denormals to 0: 2-3 operations fewer than the exponent-field form below. Fast
  // reduces in one step (n ln2's rounding costs n * 2^-25 relative, under 4e-6 here). Past
  // -200, exp(x) 2^24 is 0 in fp32, so clamping there changes nothing and keeps r small (a
  // nan x becomes -200: the callers multiply the result by x or add it to a function of x,
  // which keeps the nan); Clamp = false where the caller's x >= -200 already.
  const VecF xc = Clamp ? max(x, VecF::broadcast(-200.0f)) : x;
  const VecF n = round_even(xc * VecF::broadcast(1.44269502f));
  if constexpr (Fast)
    return scale_pow2(horner(fma(n, VecF::broadcast(-0.6931471805599453f), xc), kExpPolyFast, float(1 << Scale)), n);
  return scale_pow2(exp_reduced(xc, n, float(1 << Scale)), n);
#else
  const VecF magic = VecF::broadcast(12582912.0f);
  const VecF nf = fma(x, VecF::broadcast(1.44269502f), magic);
  const VecF n = nf - magic;
  return zero_below(exp_reduced<Fast>(x, n) * pow2_of_magic<Scale>(nf), x, -87.0f - 0.6931472f * Scale);
#endif
}

// 1 / (1 + exp(-x)), from e = exp(-|x|) <= 1, which cannot overflow: 1 / (1 + e) for
// x >= 0, e / (1 + e) for x < 0 (one exponent field and no clamp of a positive argument,
// which exp(-x) needed: 6 fewer vector operations, in kernels bound by their count). e is
// taken times 2^24 (2^24 / (2^24 + e), e / (2^24 + e): exact rescalings), so that it stays a
// normal number down to x = -103.9, below which sigmoid(x) is under fp32's smallest denormal;
// the division rounds the denormal results (x * sigmoid(x) is still normal at x = -87.5).
template <bool Fast = false>
inline VecF sigmoid(VecF x) {
  const VecF scale = VecF::broadcast(16777216.0f);
  const VecF e = exp_nonpositive<Fast, 24>(neg_abs(x));
  if constexpr (Fast) return div_fast(select_sign(x, e, scale), scale + e);
  return div(select_sign(x, e, scale), scale + e);
}

// Phi(x) = P(N(0,1) <= x) = erfc(|x| / sqrt2) / 2 for x < 0, 1 - that for x >= 0,
// with erfc(y) = t * exp(-y^2) * P(t), t = 1 / (1 + y/2). exp(-x^2/2) is also
// returned (the GELU derivative needs it). x^2 is split into hi + lo exactly, so
// exp(-x^2/2) = exp(-hi/2) * (1 - lo/2) keeps its relative accuracy in the tail
// (rounding y = |x|/sqrt2 first would cost |x|^2 ulps there). |x| is taken at most 20,
// where Phi is 1 or 0 in fp32, so that x^2 cannot overflow (inf * 0 in e made
// gelu(1e20) = -inf).
template <bool Fast = false>
inline VecF normal_cdf(VecF x, VecF* exp_neg_half_x2) {
  const VecF one = VecF::broadcast(1.0f), minus_half = VecF::broadcast(-0.5f);
  const VecF ax = abs_min(x, 20.0f);
  const VecF hi = ax * ax;
  VecF e;
  if constexpr (Fast) {  // x^2's rounding costs at most 87 * 2^-24 = 5e-6 of exp relative
    e = exp_nonpositive<true, 0, false>(hi * minus_half);
  } else {
    const VecF lo = fused_mul_add(ax, ax, VecF::zero() - hi);
    const VecF e_hi = exp_nonpositive<false, 0, false>(hi * minus_half);
    e = fused_mul_add(lo * minus_half, e_hi, e_hi);
  }
  *exp_neg_half_x2 = e;
  const VecF den = fma(ax, VecF::broadcast(0.35355339059327373f), one);  // 1 + y/2
  const VecF t = Fast ? reciprocal_fast(den) : div(one, den);
  // P/2 (coefficients halved, exactly) by Horner: these kernels are bound by the count of
  // vector operations, not their dependency chains (Estrin's order measured no faster).
  VecF half_p;
  if constexpr (Fast)
    half_p = horner(t, kErfcPolyFast, 0.5f);
  else
    half_p = horner(t, kErfcPoly, 0.5f);
  const VecF half_erfc = t * e * half_p;
  return one_minus_where_nonnegative(x, half_erfc);
}

}  // namespace bigaccel::BIGACCEL_ISA_NS
