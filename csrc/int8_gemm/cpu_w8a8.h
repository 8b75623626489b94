// Host-side steps shared by the CPU W8A8 entry points (int8_mm on a dense weight,
// sparse24_int8_mm on a 2:4 compressed one): the activation checks and the operands
// their kernels (DotU8S8, common/vec.h) take.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <optional>

#include "common/cpu_parallel.h"

namespace bigaccel {

inline void check_w8a8_activations(const char* op, const at::Tensor& a_scale, int64_t M, int64_t K) {
  TORCH_CHECK(a_scale.scalar_type() == at::kFloat && a_scale.numel() == M, "bigaccel.", op,
              ": a_scale must be float32 with M=", M, " elements, got ", a_scale.scalar_type(), " ", a_scale.sizes());
  // u8 * s8 products summed over K must fit int32.
  TORCH_CHECK(K <= 65536, "bigaccel.", op, ": K=", K, " is larger than the supported 65536");
}

struct W8A8Operands {
  at::Tensor a_u8;   // the activations + 128: VNNI multiplies unsigned by signed bytes
  at::Tensor w_sum;  // int32 row sums of the weight, which the epilogue subtracts 128 times
};

// `weight` holds the weight's int8 values (dense, or only the kept ones: the sums are the same);
// it is summed only when the caller passes no w_sum.
inline W8A8Operands w8a8_operands(const char* op, const at::Tensor& a, const at::Tensor& weight,
                                  const std::optional<at::Tensor>& w_sum) {
  const int64_t N = weight.size(0);
  at::Tensor sums = w_sum ? w_sum->to(at::kInt).contiguous() : weight.sum(1, false, at::kInt);
  TORCH_CHECK(sums.numel() == N, "bigaccel.", op, ": w_sum must have N=", N, " elements, got ", sums.sizes());
  // A plain loop, not a tensor op: at::bitwise_xor's dispatch took 2.9 us, half of a small
  // layer's int8_mm call at M = 1 (the loop is M * K bytes, below the tiles' M < 64).
  const at::Tensor a_c = a.contiguous();
  at::Tensor a_u8 = at::empty(a_c.sizes(), a_c.options().dtype(at::kByte));
  const int8_t* src = a_c.data_ptr<int8_t>();
  uint8_t* dst = a_u8.data_ptr<uint8_t>();
  for (int64_t i = 0, n = a_c.numel(); i < n; ++i) dst[i] = uint8_t(src[i]) ^ 0x80u;
  return {a_u8, sums};
}

// On the AVX2 and portable tiers, from this M the exact int32 sums come from torch's int8 GEMM
// (at::_int_mm: oneDNN, which packs the weight and blocks over M, N and K) instead of the
// register tiles of common/dot_tile.h, which re-read all of x for every 4 columns and reduce
// each accumulator horizontally. Same sums, same epilogue, so the same bits. (The AVX-512 tier
// has its own GEMM, int8_gemm/cpu_vnni_gemm.h, at 1.0-1.5x _int_mm's rate from M = 64; the
// figures below are its tiles', from before it had one.) Measured (2 threads, AVX-512 VNNI,
// Zen 5, 2026-11-27, 11008 x 4096 and 4096 x 11008, bf16 x, weights from DRAM): the tiles
// took 0.46-0.68x _int_mm's time at M = 256, 0.6-1.0x at M = 64; at M = 32 _int_mm was
// 1.0-2.8x slower than the tiles (its choice of kernel there is erratic), at M = 16 1.7-3.9x.
constexpr int64_t kW8A8IntMmMinRows = 64;
// ... except while those rows of A fit the tiles' L2 block (dot_tile.h, rows_per_block: 256 KiB
// of A), so that the weight streams past once; from kW8A8TileMaxRows rows, always _int_mm.
// Measured after the tiles read A in panels (2 threads, Zen 5, 2026-11-28, weights from DRAM):
// at M = 64 the tiles took 0.79-0.84x _int_mm's time with K = 4096 and 1.43x with K = 11008
// (20 rows a block: the weight streamed four times); at M = 96, K = 4096, 0.9x; at M = 128,
// 0.92-1.09x.
constexpr int64_t kW8A8TileMaxRows = 128;
constexpr int64_t kW8A8TileABytes = 256 * 1024;
inline bool w8a8_takes_int_mm(int64_t M, int64_t K) {
  return M >= kW8A8TileMaxRows || (M >= kW8A8IntMmMinRows && M * K > kW8A8TileABytes);
}
// Columns per _int_mm call: the block's int32 and fp32 sums stay small, where [M, N]
// temporaries would be fresh pages at large M (first touch ran at ~4 GB/s here). 2048
// columns per call were as fast as one call (512 were up to 1.5x slower).
constexpr int64_t kW8A8IntMmBlockN = 2048;

// The W8A8 GEMM where w8a8_takes_int_mm: per block of columns, the int32 sums of
// at::_int_mm, then bigaccel.reference.int8_mm's epilogue in fp32 in its order
// (float(acc) * (a_scale * w_scale), then finish_column_block: bias, activation, rounding).
// a int8 [M, K] (not shifted to u8: _int_mm multiplies signed bytes), w int8 [N, K].
inline void int8_mm_blocks_int_mm(const at::Tensor& a, const at::Tensor& a_scale, const at::Tensor& w,
                                  const at::Tensor& w_scale, const std::optional<at::Tensor>& bias_f32,
                                  std::optional<Act> act, at::Tensor& out, const char* op) {
  const int64_t M = a.size(0), N = w.size(0);
  const at::Tensor a_c = a.contiguous(), a_s = a_scale.reshape({M, 1});
  for (int64_t n0 = 0; n0 < N; n0 += kW8A8IntMmBlockN) {
    const int64_t nb = std::min(N - n0, kW8A8IntMmBlockN);
    at::Tensor acc = at::_int_mm(a_c, w.narrow(0, n0, nb).t()).to(at::kFloat);
    finish_column_block(acc, a_s * w_scale.narrow(0, n0, nb).reshape({1, nb}), bias_f32, act, out, n0, op);
  }
}

}  // namespace bigaccel
