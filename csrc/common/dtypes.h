// Element types shared by the CPU kernels, with bit-exact scalar conversions.
// Kept free of torch headers so that ISA-specific translation units can use it.
#pragma once

#include <cstdint>
#include <cstring>

namespace bigaccel {

enum class DType : int { F32 = 0, BF16 = 1, F16 = 2 };

struct bf16_t {
  uint16_t bits;
};
struct fp16_t {
  uint16_t bits;
};

static inline uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
static inline float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

static inline float to_float(float v) { return v; }
static inline float to_float(int8_t v) { return float(v); }
static inline float to_float(bf16_t v) { return bits_float(uint32_t(v.bits) << 16); }

static inline float to_float(fp16_t v) {
  const uint32_t sign = uint32_t(v.bits & 0x8000u) << 16;
  uint32_t exp = (v.bits >> 10) & 0x1Fu;
  uint32_t man = v.bits & 0x3FFu;
  if (exp == 0x1F) return bits_float(sign | 0x7F800000u | (man << 13));  // inf / nan
  if (exp == 0) {
    if (man == 0) return bits_float(sign);
    // Subnormal: renormalise.
    exp = 1;
    while (!(man & 0x400u)) {
      man <<= 1;
      --exp;
    }
    man &= 0x3FFu;
    return bits_float(sign | ((exp + 112) << 23) | (man << 13));
  }
  return bits_float(sign | ((exp + 112) << 23) | (man << 13));
}

// Round to nearest even, as torch does.
static inline bf16_t to_bf16(float f) {
  uint32_t u = float_bits(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return bf16_t{uint16_t((u >> 16) | 0x40u)};  // quiet nan
  u += 0x7FFFu + ((u >> 16) & 1u);
  return bf16_t{uint16_t(u >> 16)};
}

static inline fp16_t to_fp16(float f) {
  const uint32_t u = float_bits(f);
  const uint16_t sign = uint16_t((u >> 16) & 0x8000u);
  const uint32_t a = u & 0x7FFFFFFFu;
  if (a > 0x7F800000u) return fp16_t{uint16_t(sign | 0x7E00u)};  // nan
  if (a >= 0x477FF000u) return fp16_t{uint16_t(sign | 0x7C00u)};  // rounds to inf
  if (a < 0x38800000u) {
    // Result is subnormal (or zero): add 0.5 so that the FPU's own
    // round-to-nearest-even does the rounding at the fp16 subnormal step.
    const float r = bits_float(a) + 0.5f;
    return fp16_t{uint16_t(sign | uint16_t(float_bits(r) - 0x3F000000u))};
  }
  uint32_t m = a + 0xC8000FFFu + ((a >> 13) & 1u);  // rebias exponent and round
  return fp16_t{uint16_t(sign | uint16_t(m >> 13))};
}

static inline void from_float(float v, float* out) { *out = v; }
static inline void from_float(float v, bf16_t* out) { *out = to_bf16(v); }
static inline void from_float(float v, fp16_t* out) { *out = to_fp16(v); }

// fn(T{}) with T the element type of `dtype` (float, bf16_t or fp16_t): the one switch from
// a run-time dtype to the compile-time element type the CPU kernels are written for.
template <typename Fn>
inline void with_element_type(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::F32:
      return fn(float{});
    case DType::BF16:
      return fn(bf16_t{});
    case DType::F16:
      return fn(fp16_t{});
  }
}

}  // namespace bigaccel
