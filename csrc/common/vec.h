// VecF: a vector of fp32 lanes for the ISA this translation unit is compiled
// for (see isa.h). Kernels are written once against this interface:
//
//   VecF::kWidth, zero(), broadcast(f)
//   load(p) / load(p, n)      from float, bf16_t or fp16_t; n < kWidth lanes, rest zero
//   store(p) / store(p, n)    to float, bf16_t or fp16_t (round to nearest even)
//   + - * , fma(a, b, c) = a*b+c, max, min, abs, round_even
//   reduce_max(), reduce_add()
//   store_int8(p) / store_int8(p, n)   lanes must already be integers in [-128, 127]
//   load(const int8_t*), load(const int8_t*, n)   int8 widened exactly to fp32
//
// DotU8S8: dot products of u8 and s8 bytes into int32 lanes (VNNI vpdpbusd on
// AVX-512, vpmaddubsw with the sign moved onto the activations on AVX2, plain loops
// elsewhere), for the int8 GEMMs:
//   kBytes, Acc, zero(), load_a(const uint8_t*[, n]), load_b(const int8_t*[, n]),
//   dot(acc, a, b), reduce(acc) -> int32, and kOffsetA: the dot products include
//   kOffsetA * sum_k w, which the caller subtracts
// DotBF16S8 (AVX-512 only, needs AVX512_BF16): bf16 activations x int8 weights
// converted to bf16 (exact), vdpbf16ps into fp32 lanes; DotBF16BF16 the same with bf16
// weights.
#pragma once

#include "common/dtypes.h"

namespace bigaccel::BIGACCEL_ISA_NS {

// Operators are free functions, not in-class friends: GCC does not apply
// `#pragma GCC target` to friend functions defined inside a class.

#if BIGACCEL_VEC_LEVEL >= BIGACCEL_ISA_AVX2
// Sum of the eight int32 lanes (AVX2 instructions, so the AVX-512 tier may use it too).
static inline int32_t reduce_add_epi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}
#endif

#if BIGACCEL_VEC_LEVEL == BIGACCEL_ISA_AVX512

struct VecF {
  static constexpr int kWidth = 16;
  __m512 v;

  static VecF zero() { return {_mm512_setzero_ps()}; }
  static VecF broadcast(float f) { return {_mm512_set1_ps(f)}; }
  static __mmask16 mask(int n) { return __mmask16((1u << n) - 1u); }

  static VecF load(const float* p) { return {_mm512_loadu_ps(p)}; }
  static VecF load(const float* p, int n) { return {_mm512_maskz_loadu_ps(mask(n), p)}; }
  static VecF widen_bf16(__m256i h) { return {_mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16))}; }
  static VecF load(const bf16_t* p) { return widen_bf16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
  static VecF load(const bf16_t* p, int n) { return widen_bf16(_mm256_maskz_loadu_epi16(mask(n), p)); }
  static VecF load(const fp16_t* p) { return {_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)))}; }
  static VecF load(const fp16_t* p, int n) { return {_mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask(n), p))}; }
  static VecF load(const int8_t* p) { return {_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))))}; }
  static VecF load(const int8_t* p, int n) { return {_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(mask(n), p)))}; }

  __m256i narrow_bf16() const {
    const __m512i u = _mm512_castps_si512(v);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF)));
    const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(u, _mm512_set1_epi32(0x400000)));
    return _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16));
  }
  __m256i narrow_fp16() const { return _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }

  void store(float* p) const { _mm512_storeu_ps(p, v); }
  void store(float* p, int n) const { _mm512_mask_storeu_ps(p, mask(n), v); }
  void store(bf16_t* p) const { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), narrow_bf16()); }
  void store(bf16_t* p, int n) const { _mm256_mask_storeu_epi16(p, mask(n), narrow_bf16()); }
  void store(fp16_t* p) const { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), narrow_fp16()); }
  void store(fp16_t* p, int n) const { _mm256_mask_storeu_epi16(p, mask(n), narrow_fp16()); }
  void store_int8(int8_t* p) const { _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm512_cvtsepi32_epi8(_mm512_cvttps_epi32(v))); }
  void store_int8(int8_t* p, int n) const { _mm512_mask_cvtsepi32_storeu_epi8(p, mask(n), _mm512_cvttps_epi32(v)); }

  float reduce_max() const { return _mm512_reduce_max_ps(v); }
  float reduce_add() const { return _mm512_reduce_add_ps(v); }
};

inline VecF operator+(VecF a, VecF b) { return {_mm512_add_ps(a.v, b.v)}; }
inline VecF operator-(VecF a, VecF b) { return {_mm512_sub_ps(a.v, b.v)}; }
inline VecF operator*(VecF a, VecF b) { return {_mm512_mul_ps(a.v, b.v)}; }
inline VecF fma(VecF a, VecF b, VecF c) { return {_mm512_fmadd_ps(a.v, b.v, c.v)}; }
inline VecF max(VecF a, VecF b) { return {_mm512_max_ps(a.v, b.v)}; }
inline VecF min(VecF a, VecF b) { return {_mm512_min_ps(a.v, b.v)}; }
inline VecF abs(VecF a) { return {_mm512_abs_ps(a.v)}; }
inline VecF round_even(VecF a) { return {_mm512_roundscale_ps(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)}; }

struct DotU8S8 {
  static constexpr bool kPrefetchB = true;  // B streams from DRAM (see dot_tile)
  static constexpr int kBytes = 64;
  static constexpr int kTileM = 4, kTileN = 4;  // 16 accumulators + 5 operands of 32 zmm
  static constexpr int kOffsetA = 128;         // dot() sums (a + 128) * w
  using Acc = __m512i;
  using A = __m512i;
  using B = __m512i;
  static __mmask64 mask(int n) { return n >= 64 ? ~__mmask64(0) : (__mmask64(1) << n) - 1; }
  static Acc zero() { return _mm512_setzero_si512(); }
  static A load_a(const uint8_t* p) { return _mm512_loadu_si512(p); }
  static A load_a(const uint8_t* p, int n) { return _mm512_maskz_loadu_epi8(mask(n), p); }
  static B load_b(const int8_t* p) { return _mm512_loadu_si512(p); }
  static B load_b(const int8_t* p, int n) { return _mm512_maskz_loadu_epi8(mask(n), p); }
  // GCC 12 compiles _mm512_dpbusd_epi32 in a loop with a copy of every accumulator into a
  // scratch register and back per instruction (32 moves per 16 vpdpbusd in the 4x4 tile,
  // which halved its rate: 497 GOP/s of ~990 on one Zen 5 core); the asm keeps it in place.
  static Acc dot(Acc acc, A a, B b) {
    asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
    return acc;
  }
  static Acc add(Acc a, Acc b) { return _mm512_add_epi32(a, b); }
  static int32_t reduce(Acc acc) { return _mm512_reduce_add_epi32(acc); }
};

struct DotBF16S8 {
  static constexpr bool kPrefetchB = true;
  static constexpr int kBytes = 32;
  static constexpr int kTileM = 4, kTileN = 4;
  using Acc = __m512;
  using A = __m512bh;
  using B = __m512bh;
  static __mmask32 mask(int n) { return n >= 32 ? ~__mmask32(0) : (__mmask32(1) << n) - 1; }
  static Acc zero() { return _mm512_setzero_ps(); }
  static A load_a(const bf16_t* p) { return (__m512bh)_mm512_loadu_si512(p); }
  static A load_a(const bf16_t* p, int n) { return (__m512bh)_mm512_maskz_loadu_epi16(mask(n), p); }
  static B widen(__m256i bytes) {
    const __m512i i16 = _mm512_cvtepi8_epi16(bytes);
    const __m512 lo = _mm512_cvtepi32_ps(_mm512_cvtepi16_epi32(_mm512_castsi512_si256(i16)));
    const __m512 hi = _mm512_cvtepi32_ps(_mm512_cvtepi16_epi32(_mm512_extracti64x4_epi64(i16, 1)));
    return _mm512_cvtne2ps_pbh(hi, lo);  // exact: |w| <= 128 needs 8 bits
  }
  // Each 16 bytes sign-extended straight from memory: 5 operations per 32 weights, where
  // widen's extra int16 step and lane extraction take 7.
  static B load_b(const int8_t* p) {
    const __m512 lo = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
    const __m512 hi = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16))));
    return _mm512_cvtne2ps_pbh(hi, lo);
  }
  static B load_b(const int8_t* p, int n) { return widen(_mm256_maskz_loadu_epi8(mask(n), p)); }
  static Acc dot(Acc acc, A a, B b) {  // in place, as DotU8S8::dot
    asm("vdpbf16ps %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
    return acc;
  }
  static Acc add(Acc a, Acc b) { return _mm512_add_ps(a, b); }
  static float reduce(Acc acc) { return _mm512_reduce_add_ps(acc); }
};

// bf16 activations x bf16 weights (a tile that a kernel has already expanded to bf16).
struct DotBF16BF16 : DotBF16S8 {
  static constexpr bool kPrefetchB = false;  // B is a scratch tile in cache
  static B load_b(const bf16_t* p) { return (__m512bh)_mm512_loadu_si512(p); }
  static B load_b(const bf16_t* p, int n) { return (__m512bh)_mm512_maskz_loadu_epi16(mask(n), p); }
};

#elif BIGACCEL_VEC_LEVEL == BIGACCEL_ISA_AVX2

struct VecF {
  static constexpr int kWidth = 8;
  __m256 v;

  static VecF zero() { return {_mm256_setzero_ps()}; }
  static VecF broadcast(float f) { return {_mm256_set1_ps(f)}; }

  static VecF load(const float* p) { return {_mm256_loadu_ps(p)}; }
  static VecF load(const bf16_t* p) {
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return {_mm256_castsi256_ps(_mm256_slli_epi32(w, 16))};
  }
  static VecF load(const fp16_t* p) { return {_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)))}; }
  static VecF load(const int8_t* p) { return {_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))))}; }
  // Tails go through a zeroed stack buffer: AVX2 has no masked 16-bit loads.
  template <typename T>
  static VecF load(const T* p, int n) {
    T tmp[kWidth];
    std::memset(tmp, 0, sizeof(tmp));
    std::memcpy(tmp, p, sizeof(T) * n);
    return load(static_cast<const T*>(tmp));
  }

  void store(float* p) const { _mm256_storeu_ps(p, v); }
  void store(bf16_t* p) const {
    alignas(32) float f[kWidth];
    _mm256_store_ps(f, v);
    for (int i = 0; i < kWidth; ++i) p[i] = to_bf16(f[i]);
  }
  void store(fp16_t* p) const {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
  template <typename T>
  void store(T* p, int n) const {
    T tmp[kWidth];
    store(static_cast<T*>(tmp));
    std::memcpy(p, tmp, sizeof(T) * n);
  }
  void store_int8(int8_t* p) const {
    const __m256i i32 = _mm256_cvttps_epi32(v);
    const __m128i i16 = _mm_packs_epi32(_mm256_castsi256_si128(i32), _mm256_extracti128_si256(i32, 1));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(p), _mm_packs_epi16(i16, i16));
  }
  void store_int8(int8_t* p, int n) const {
    int8_t tmp[16];
    store_int8(static_cast<int8_t*>(tmp));
    std::memcpy(p, tmp, n);
  }

  float reduce_max() const {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
  }
  float reduce_add() const {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
  }
};

inline VecF operator+(VecF a, VecF b) { return {_mm256_add_ps(a.v, b.v)}; }
inline VecF operator-(VecF a, VecF b) { return {_mm256_sub_ps(a.v, b.v)}; }
inline VecF operator*(VecF a, VecF b) { return {_mm256_mul_ps(a.v, b.v)}; }
inline VecF fma(VecF a, VecF b, VecF c) { return {_mm256_fmadd_ps(a.v, b.v, c.v)}; }
inline VecF max(VecF a, VecF b) { return {_mm256_max_ps(a.v, b.v)}; }
inline VecF min(VecF a, VecF b) { return {_mm256_min_ps(a.v, b.v)}; }
inline VecF abs(VecF a) { return {_mm256_andnot_ps(_mm256_set1_ps(-0.0f), a.v)}; }
inline VecF round_even(VecF a) { return {_mm256_round_ps(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)}; }

// No VNNI here: vpmaddubsw multiplies u8 by s8 into saturating 16-bit pair sums,
// which is exact only when |pair| <= 32767. Operands arrive as a_u8 = a + 128,
// which could saturate, so the signed a is recovered (xor 0x80) and the sign
// moved onto it: |w| * sign(a, w) = a * w with |w| <= 128 and |a| <= 127, so a
// pair is at most 2 * 128 * 127 = 32512. Then vpmaddwd by ones widens to int32.
struct DotU8S8 {
  static constexpr bool kPrefetchB = true;  // B streams from DRAM (see dot_tile)
  static constexpr int kBytes = 32;
  static constexpr int kTileM = 4, kTileN = 2;  // 8 accumulators + 2x2 B + A + ones of 16 ymm
  static constexpr int kOffsetA = 0;           // dot() sums a * w
  using Acc = __m256i;
  using A = __m256i;  // signed a
  struct B {
    __m256i w, abs_w;
  };
  static Acc zero() { return _mm256_setzero_si256(); }
  static A load_a(const uint8_t* p) {
    return _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)), _mm256_set1_epi8(char(0x80)));
  }
  static B load_b(const int8_t* p) {
    const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    return {w, _mm256_abs_epi8(w)};
  }
  // Tails are zero-filled: a zero weight contributes nothing, whatever a is.
  template <typename T, typename R>
  static R load_tail(const T* p, int n, R (*full)(const T*), T fill) {
    T tmp[kBytes];
    std::memset(tmp, fill, sizeof(tmp));
    std::memcpy(tmp, p, n);
    return full(tmp);
  }
  static A load_a(const uint8_t* p, int n) { return load_tail<uint8_t, A>(p, n, &load_a, uint8_t(0x80)); }
  static B load_b(const int8_t* p, int n) { return load_tail<int8_t, B>(p, n, &load_b, int8_t(0)); }
  static Acc dot(Acc acc, A a, B b) {
    const __m256i pairs = _mm256_maddubs_epi16(b.abs_w, _mm256_sign_epi8(a, b.w));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
  }
  static Acc add(Acc a, Acc b) { return _mm256_add_epi32(a, b); }
  static int32_t reduce(Acc acc) { return reduce_add_epi32(acc); }
};

#else  // portable: plain loops the compiler may vectorise for the baseline ISA

struct VecF {
  static constexpr int kWidth = 8;
  float v[kWidth];

  static VecF zero() { return broadcast(0.0f); }
  static VecF broadcast(float f) {
    VecF r;
    for (int i = 0; i < kWidth; ++i) r.v[i] = f;
    return r;
  }
  template <typename T>
  static VecF load(const T* p, int n = kWidth) {
    VecF r;
    for (int i = 0; i < kWidth; ++i) r.v[i] = i < n ? to_float(p[i]) : 0.0f;
    return r;
  }
  template <typename T>
  void store(T* p, int n = kWidth) const {
    for (int i = 0; i < n; ++i) from_float(v[i], p + i);
  }
  void store_int8(int8_t* p, int n = kWidth) const {
    for (int i = 0; i < n; ++i) p[i] = int8_t(v[i]);
  }

  template <typename F>
  static VecF map2(VecF a, VecF b, F f) {
    VecF r;
    for (int i = 0; i < kWidth; ++i) r.v[i] = f(a.v[i], b.v[i]);
    return r;
  }
  float reduce_max() const {
    float m = v[0];
    for (int i = 1; i < kWidth; ++i) m = v[i] > m ? v[i] : m;
    return m;
  }
  float reduce_add() const {
    float s = 0.0f;
    for (int i = 0; i < kWidth; ++i) s += v[i];
    return s;
  }
};

inline VecF operator+(VecF a, VecF b) { return VecF::map2(a, b, [](float x, float y) { return x + y; }); }
inline VecF operator-(VecF a, VecF b) { return VecF::map2(a, b, [](float x, float y) { return x - y; }); }
inline VecF operator*(VecF a, VecF b) { return VecF::map2(a, b, [](float x, float y) { return x * y; }); }
inline VecF fma(VecF a, VecF b, VecF c) { return a * b + c; }
inline VecF max(VecF a, VecF b) { return VecF::map2(a, b, [](float x, float y) { return x > y ? x : y; }); }
inline VecF min(VecF a, VecF b) { return VecF::map2(a, b, [](float x, float y) { return x < y ? x : y; }); }
inline VecF abs(VecF a) { return VecF::map2(a, a, [](float x, float) { return std::fabs(x); }); }
inline VecF round_even(VecF a) { return VecF::map2(a, a, [](float x, float) { return std::nearbyint(x); }); }

struct DotU8S8 {
  static constexpr bool kPrefetchB = true;  // B streams from DRAM (see dot_tile)
  static constexpr int kBytes = 16;
  static constexpr int kTileM = 4, kTileN = 4;
  static constexpr int kOffsetA = 128;  // dot() sums (a + 128) * w
  using Acc = int32_t;
  template <typename T>
  struct Bytes {
    T v[kBytes];
  };
  using A = Bytes<uint8_t>;
  using B = Bytes<int8_t>;
  static Acc zero() { return 0; }
  template <typename T>
  static Bytes<T> load(const T* p, int n) {
    Bytes<T> r;
    for (int i = 0; i < kBytes; ++i) r.v[i] = i < n ? p[i] : T(0);
    return r;
  }
  static A load_a(const uint8_t* p, int n = kBytes) { return load(p, n); }
  static B load_b(const int8_t* p, int n = kBytes) { return load(p, n); }
  static Acc dot(Acc acc, const A& a, const B& b) {
    for (int i = 0; i < kBytes; ++i) acc += int32_t(a.v[i]) * int32_t(b.v[i]);
    return acc;
  }
  static Acc add(Acc a, Acc b) { return a + b; }
  static int32_t reduce(Acc acc) { return acc; }
};

#endif

}  // namespace bigaccel::BIGACCEL_ISA_NS
