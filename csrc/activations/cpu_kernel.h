// Fused activations, written once for every ISA (compiled by cpu_<isa>.cpp):
//   forward   out = act(gate) * up          (gated: x = [gate | up])
//             out = act(x + bias)           (elementwise; bias optional)
//   backward  d gate = g * up * act'(gate), d up = g * act(gate)
//             d x = g * act'(x + bias)
// Each call covers a flat range [begin, end) of the [rows, d] output index
// space, so threads split work evenly whatever rows and d are (M = 1 decode
// rows parallelise too). Everything is computed in fp32 and rounded once.
#pragma once

#include "activations/kernel_args.h"
#include "activations/vec_math.h"

namespace bigaccel::BIGACCEL_ISA_NS {

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kGeluTanhCubic = 0.044715f;
constexpr float kInvSqrt2Pi = 0.3989422804014327f;

// act(x), and act'(x) when `grad` is given. Fast: the result will be rounded to a
// 16-bit type (vec_math.h).
template <Act A, bool Fast = false>
inline VecF activation(VecF x, VecF* grad) {
  const VecF one = VecF::broadcast(1.0f);
  if constexpr (A == Act::Silu) {
    const VecF s = sigmoid<Fast>(x);
    if (grad) *grad = s * fma(x, one - s, one);  // s * (1 + x (1 - s))
    return x * s;
  } else if constexpr (A == Act::GeluErf) {
    VecF e;
    const VecF phi = normal_cdf<Fast>(x, &e);
    if (grad) *grad = fma(x, e * VecF::broadcast(kInvSqrt2Pi), phi);  // Phi(x) + x * pdf(x)
    return x * phi;
  } else {
    // 0.5 x (1 + tanh(z)) = x * sigmoid(2z), z = sqrt(2/pi) (x + 0.044715 x^3)
    // x^2 at most 1e4: beyond |x| = 100 the sigmoid is 0 or 1 exactly either way, and the
    // derivative's x * s * (1 - s) * dz2 was 0 * inf = nan once x^2 overflowed (|x| > 1.8e19).
    const VecF x2 = min(x * x, VecF::broadcast(1e4f));
    const VecF two_k = VecF::broadcast(2.0f * kSqrt2OverPi);
    const VecF s = sigmoid<Fast>(two_k * x * fma(x2, VecF::broadcast(kGeluTanhCubic), one));
    if (grad) {
      // d/dx = s + x * 2 s (1 - s) * sqrt(2/pi) (1 + 3 * 0.044715 x^2)
      const VecF dz2 = two_k * fma(x2, VecF::broadcast(3.0f * kGeluTanhCubic), one);
      *grad = fma(x * s * (one - s), dz2, s);
    }
    return x * s;
  }
}

// Forward results rounded to bf16 or fp16 take the Fast polynomials. Backward keeps
// the full ones: its products of several terms have less room.
template <typename T>
constexpr bool kFastForward = sizeof(T) == 2;

// One contiguous run of n <= kWidth (tail) or exactly kWidth (body) columns.
template <Act A, typename T, bool Gated, bool Bias>
inline void forward_run(const T* x, const T* up, const T* bias, T* out, int n) {
  constexpr int W = VecF::kWidth;
  VecF v = n == W ? VecF::load(x) : VecF::load(x, n);
  if constexpr (Bias) v = v + (n == W ? VecF::load(bias) : VecF::load(bias, n));
  VecF y = activation<A, kFastForward<T>>(v, nullptr);
  if constexpr (Gated) y = y * (n == W ? VecF::load(up) : VecF::load(up, n));
  if (n == W) store_out(y, out); else store_out(y, out, n);
}

// activations_unroll<T> full vectors at once: one vector's activation is a chain of ~25 dependent
// operations, and the out-of-order window holds only a few of them, so a loop of one
// vector per iteration waited on latency (measured on AVX2: silu fp32 13.4 -> 10.9
// cycles per vector, bf16 21.5 -> 17.4, before the bf16 pairs). The 16-bit types' shorter
// polynomials leave AVX-512's 32 registers room for 8 (Zen 5, in L2: 6-10% over 4); fp32's full
// ones spilled at 8. Every operand and the output go through load_pair/store_pair, which
// may permute lanes (vec_math.h).
template <typename T>
constexpr int activations_unroll = BIGACCEL_VEC_LEVEL == BIGACCEL_ISA_AVX512 && sizeof(T) == 2 ? 8 : 4;

// Each block prefetches its inputs this far ahead. A block's ~200 operations fill the
// out-of-order window before its loads of `up` issue, so the hardware's stream prefetch fell
// behind: one thread of bf16 silu_and_mul from DRAM read 16 GB/s, 31-33 with this (1 KB and
// 2 KB measured alike, 4 KB less).
constexpr int kPrefetchBytes = 2048;

template <Act A, typename T, bool Gated, bool Bias, bool Bf16Instructions>
inline void forward_block(const T* x, const T* up, const T* bias, T* out, bool stream) {
  constexpr int W = VecF::kWidth, kUnroll = activations_unroll<T>;
  for (int line = 0; line < int(kUnroll * W * sizeof(T)); line += 64) {
    _mm_prefetch(reinterpret_cast<const char*>(x) + kPrefetchBytes + line, _MM_HINT_T0);
    if constexpr (Gated) _mm_prefetch(reinterpret_cast<const char*>(up) + kPrefetchBytes + line, _MM_HINT_T0);
  }
  VecF v[kUnroll];
  for (int u = 0; u < kUnroll; u += 2) load_pair(x + u * W, v[u], v[u + 1]);
  if constexpr (Bias) {
    for (int u = 0; u < kUnroll; u += 2) {
      VecF b0, b1;
      load_pair(bias + u * W, b0, b1);
      v[u] = v[u] + b0;
      v[u + 1] = v[u + 1] + b1;
    }
  }
  for (int u = 0; u < kUnroll; ++u) v[u] = activation<A, kFastForward<T>>(v[u], nullptr);
  if constexpr (Gated) {
    for (int u = 0; u < kUnroll; u += 2) {
      VecF g0, g1;
      load_pair(up + u * W, g0, g1);
      v[u] = v[u] * g0;
      v[u + 1] = v[u + 1] * g1;
    }
  }
  for (int u = 0; u < kUnroll; u += 2) store_pair_as<Bf16Instructions>(v[u], v[u + 1], out + u * W, stream);
}

template <Act A, typename T, bool Gated, bool Bias>
inline void backward_run(const T* g, const T* x, const T* up, const T* bias, T* gx, T* gup, int n) {
  constexpr int W = VecF::kWidth;
  const bool full = n == W;
  VecF v = full ? VecF::load(x) : VecF::load(x, n);
  if constexpr (Bias) v = v + (full ? VecF::load(bias) : VecF::load(bias, n));
  const VecF grad = full ? VecF::load(g) : VecF::load(g, n);
  VecF dact;
  const VecF a = activation<A>(v, &dact);
  if constexpr (Gated) {
    const VecF u = full ? VecF::load(up) : VecF::load(up, n);
    const VecF dg = grad * u * dact, du = grad * a;
    if (full) { store_out(dg, gx); store_out(du, gup); } else { store_out(dg, gx, n); store_out(du, gup, n); }
  } else {
    const VecF dx = grad * dact;
    if (full) store_out(dx, gx); else store_out(dx, gx, n);
  }
}

template <Act A, typename T, bool Gated, bool Bias, bool Bf16Instructions>
void run_typed(const ActArgs& a, bool backward, int64_t begin, int64_t end) {
  constexpr int W = VecF::kWidth;
  const int64_t d = a.d, in_d = Gated ? 2 * d : d;
  const T* x = static_cast<const T*>(a.x);
  const T* bias = static_cast<const T*>(a.bias);
  const T* g = static_cast<const T*>(a.grad);
  T* out = static_cast<T*>(a.out);
  for (int64_t i = begin; i < end;) {
    const int64_t row = i / d, c0 = i % d;
    const int64_t c1 = (end - row * d) < d ? end - row * d : d;
    const T* xr = x + row * in_d;
    const T* ur = Gated ? xr + d : nullptr;
    int64_t c = c0;
    if (!backward)
      for (; c + activations_unroll<T> * W <= c1; c += activations_unroll<T> * W)
        forward_block<A, T, Gated, Bias, Bf16Instructions>(xr + c, Gated ? ur + c : nullptr, Bias ? bias + c : nullptr,
                                                           out + row * d + c, a.stream_out);
    for (; c < c1; c += W) {
      const int n = c1 - c < W ? int(c1 - c) : W;
      if (!backward) {
        forward_run<A, T, Gated, Bias>(xr + c, Gated ? ur + c : nullptr, Bias ? bias + c : nullptr, out + row * d + c, n);
      } else {
        T* gxr = out + row * in_d;
        backward_run<A, T, Gated, Bias>(g + row * d + c, xr + c, Gated ? ur + c : nullptr, Bias ? bias + c : nullptr,
                                        gxr + c, Gated ? gxr + d + c : nullptr, n);
      }
    }
    i = row * d + c1;
  }
  if (a.stream_out && !backward) stream_fence();
}

template <typename T, bool Gated, bool Bias, bool Bf16Instructions>
void run_act(const ActArgs& a, bool backward, int64_t begin, int64_t end) {
  switch (a.act) {
    case Act::Silu:
      return run_typed<Act::Silu, T, Gated, Bias, Bf16Instructions>(a, backward, begin, end);
    case Act::GeluErf:
      return run_typed<Act::GeluErf, T, Gated, Bias, Bf16Instructions>(a, backward, begin, end);
    case Act::GeluTanh:
      return run_typed<Act::GeluTanh, T, Gated, Bias, Bf16Instructions>(a, backward, begin, end);
  }
}

template <typename T, bool Bf16Instructions>
void run_gating(const ActArgs& a, bool backward, int64_t begin, int64_t end) {
  if (a.gated) return run_act<T, true, false, Bf16Instructions>(a, backward, begin, end);
  if (a.bias) return run_act<T, false, true, Bf16Instructions>(a, backward, begin, end);
  return run_act<T, false, false, Bf16Instructions>(a, backward, begin, end);
}

template <typename T>
void run_dtype(const ActArgs& a, bool backward, int64_t begin, int64_t end) {
#if BIGACCEL_VEC_LEVEL == BIGACCEL_ISA_AVX512
  if constexpr (std::is_same_v<T, bf16_t>)
    if (a.bf16_instructions && !backward) return run_gating<T, true>(a, false, begin, end);
#endif
  return run_gating<T, false>(a, backward, begin, end);
}

void activation_range(const ActArgs& a, bool backward, int64_t begin, int64_t end) {
  with_element_type(a.dtype, [&](auto tag) { run_dtype<decltype(tag)>(a, backward, begin, end); });
}

}  // namespace bigaccel::BIGACCEL_ISA_NS
