// Activations held as int16, for the integer GEMVs of the weight-only GEMMs (W8A16 and
// W4A16) on x86 (AVX2 kernels, taken by the AVX-512 tier too), with bf16 or fp16
// activations and M <= kI16MaxRows, and for their blocked GEMMs above (common/i16_gemm.h).
//
// Why: vpmaddwd multiplies 16 int16 pairs into int32 in one instruction. The float GEMVs
// spend a widening, a conversion and an FMA per 8 weights, and that work, not DRAM, bounded
// them on AVX2 (int4 at M = 1 reached ~35% of the read bandwidth). As int16 both weights
// and activations take a fraction of the instructions.
//
// Format. Per row of x, each block of kI16Block consecutive k shares a power-of-two scale
// 2^e, with e = max(ilogb(max |x| over the block) - 14, -126), and q = round_even(x / 2^e)
// (so |q| < 2^15). The representation is exact, x = q * 2^e, for every element whose ulp is
// at least 2^e: for bf16 that is every element within 2^7 of the block's largest binade,
// for fp16 within 2^4. The others are off by at most 2^(e-1) <= 2^-15 max |x|. That is a
// 2^-8 of the rounding that bf16 gives the largest element of the block already, and it
// adds at most sum_k |w_k| 2^(e_k - 1) to an output. fp32 activations keep the float path.
//
// Weight sums inside a block are exact int32; blocks are combined in fp32, as the float
// path combines its vector accumulators.
#pragma once

#include <cstdint>

#include "common/dtypes.h"

namespace bigaccel {

constexpr int64_t kI16Block = 128;
constexpr int64_t kI16MaxRows = 4;

// x as int16 for M rows: q [M, padded_k] (K rounded up to kI16Block, zero padded); per
// `sub` consecutive k (sub divides kI16Block): scale[m][j] = 2^e of the block holding
// them and, if qsum is given, qsum[m][j] = 2^e * sum of their q (exact).
struct I16Rows {
  const int16_t* q;
  const float* scale;
  const float* qsum;
  int64_t padded_k;  // row stride of q
  int64_t subs;      // row stride of scale and qsum
};

static inline int64_t i16_padded_k(int64_t K) { return (K + kI16Block - 1) / kI16Block * kI16Block; }

namespace avx2 {
// Fills q, scale and qsum (may be null) for I16Rows of `x` ([M, K], bf16 or fp16, contiguous).
// With quad_chunk (64 or 128; 0: natural order), each quad_chunk consecutive k are stored
// k % 4 major (for 64: k = 0, 4, .., 60, then 1, 5, .., 61, ...): the order in which the int4
// GEMVs unpack their codes, 64 k per ymm (AVX2) or 128 per zmm (AVX-512). Returns false if x
// holds an inf or a nan; the caller then takes the float path, which propagates them.
bool quantize_rows_i16(const void* x, DType dtype, int64_t M, int64_t K, int64_t sub, int quad_chunk, int16_t* q,
                       float* scale, float* qsum);
}  // namespace avx2

}  // namespace bigaccel
