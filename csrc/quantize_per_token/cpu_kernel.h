// Per-token (per-row) symmetric int8 quantization, written once for every ISA:
//   amax  = max(max_k |x[k]|, kInt8MinAmax)
//   q[k]  = clamp(round_even(x[k] * (127 / amax)), -127, 127)
//   scale = amax / 127
// Both divisions are single correctly rounded fp32 divisions and the product a
// single fp32 multiply, so every backend produces bit-identical q and scale.
#pragma once

#include "common/quant.h"
#include "common/vec.h"

namespace bigaccel::BIGACCEL_ISA_NS {

template <typename T>
static void quantize_rows_typed(const T* x, int8_t* q, float* scales, int64_t rows, int64_t K) {
  constexpr int W = VecF::kWidth;
  const int64_t K_full = K - K % W;
  const int tail = int(K - K_full);
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * K;
    int8_t* qr = q + r * K;
    VecF m0 = VecF::zero(), m1 = VecF::zero();  // two chains hide the max latency
    int64_t k = 0;
    for (; k + 2 * W <= K_full; k += 2 * W) {
      m0 = max(m0, abs(VecF::load(xr + k)));
      m1 = max(m1, abs(VecF::load(xr + k + W)));
    }
    for (; k < K_full; k += W) m0 = max(m0, abs(VecF::load(xr + k)));
    if (tail) m1 = max(m1, abs(VecF::load(xr + K_full, tail)));
    float amax = max(m0, m1).reduce_max();
    if (!(amax >= kInt8MinAmax)) amax = kInt8MinAmax;

    const VecF inv = VecF::broadcast(kInt8Max / amax);
    const VecF hi = VecF::broadcast(kInt8Max), lo = VecF::broadcast(-kInt8Max);
    for (k = 0; k < K_full; k += W) round_even(min(max(VecF::load(xr + k) * inv, lo), hi)).store_int8(qr + k);
    if (tail) round_even(min(max(VecF::load(xr + K_full, tail) * inv, lo), hi)).store_int8(qr + K_full, tail);
    scales[r] = amax / kInt8Max;
  }
}

void quantize_per_token_rows(const void* x, DType dtype, int8_t* q, float* scales, int64_t rows, int64_t K) {
  with_element_type(dtype, [&](auto tag) {
    quantize_rows_typed(static_cast<const decltype(tag)*>(x), q, scales, rows, K);
  });
}

}  // namespace bigaccel::BIGACCEL_ISA_NS
