// Tensor-core W4A16 GEMM on the canonical int4 layout (bigaccel/reference.py), for bf16/fp16 x:
// mma.sync m16n8k16 with fp32 accumulation, sm_80 and later. No prepacking: the weight is read as is.
//
// Exactness: (code - zero) is an integer in [-15, 15], exact in bf16 and fp16, so every MMA product is
// exact and the tensor core sums in fp32. The group scale is never folded into the weight (that would
// round every weight to 8 or 11 bits): each group's MMAs go into a zeroed fp32 partial tile that is then
// folded in as acc += scale[n, g] * partial, and the output is rounded once at the end.
//
// Fragment layouts, PTX ISA "Matrix Fragments for mma.m16n8k16 with floating point type" (groupID =
// lane >> 2, threadID_in_group = lane % 4; a .b32 register holds two elements, the lower-numbered one in
// the low half):
//   A 16x16 (.row), a0..a7 in {a0,a1} {a2,a3} {a4,a5} {a6,a7}: row = groupID for a0,a1,a4,a5 and
//     groupID + 8 for a2,a3,a6,a7; col = threadID_in_group * 2 + (i & 1), plus 8 for i >= 4.
//   B 16x8 (.col), b0..b3 in {b0,b1} {b2,b3}: row = threadID_in_group * 2 + (i & 1), plus 8 for i >= 2;
//     col = groupID.
//   C/D 16x8 f32, c0..c3: row = groupID for c0,c1 and groupID + 8 for c2,c3;
//     col = threadID_in_group * 2 + (i & 1).
//
// The k order. An MMA sums over its 16 k, so its k index may map to any 16 real k as long as A and B
// agree and all 16 lie in one group. The map is chosen so that the operands cost almost nothing:
//  - Lane t of a quad owns k [t*G/4, (t+1)*G/4) of each group: its G/32 packed words are contiguous
//    (one 4/8/16-byte load per group and column), pair p < G/32 of k-steps uses word p (8 codes).
//  - B registers come straight from that word: (w >> 4j) & 0x000F000F | magic puts codes j and j+4 in
//    the two halves as magic + code (fp16 0x6400|c = 1024 + c, bf16 0x4300|c = 128 + c), and one fma
//    with -(magic + zero) leaves code - zero exactly. Step s of the pair uses j = 2s (as b0,b1) and 2s+1
//    (as b2,b3), so MMA k = 2t, 2t+1, 2t+8, 2t+9 hold real k offsets 2s, 2s+4, 2s+1, 2s+5 of the word.
//  - x is staged in shared memory with each 8-element chunk interleaved to (e0,e4)(e1,e5)(e2,e6)(e3,e7),
//    the same pairs, so one 16-byte shared load per row gives the A registers of both steps of a pair.
// The host emulation test runs the index helpers below against an MMA written from the tables above.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "common/cuda_utils.cuh"

namespace bigaccel::int4_mma {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
// Two 8-column MMA tiles per warp, so BLOCK_N = 64: the M this path serves starts just above the GEMV's
// 8 rows, where the weight stream is the cost and twice the blocks of BLOCK_N = 128 keep more SMs
// loading; accumulator + partial stay at 64 registers at BLOCK_M = 64.
constexpr int kNTiles = 2;
constexpr int kBlockN = kWarps * kNTiles * 8;
constexpr int kStageK = 128;          // k per shared-memory stage: whole groups for G = 32, 64, 128
constexpr int kChunks = kStageK / 8;  // 16-byte chunks (8 elements) per staged row

// ---- Index maps, shared by the kernel and the host emulation test ----

// Slot (16-byte unit) of a staged row that holds the chunk lane t reads for pair p of stage group gi.
// Within a row the four lanes of a quad read four adjacent slots; odd rows are XOR-swizzled by 4 slots,
// so the 8 lanes of each quarter-warp phase of an LDS.128 (rows 2q, 2q+1, t = 0..3) hit 8 different
// 16-byte bank groups with an unpadded 256-byte row.
template <int G>
__host__ __device__ __forceinline__ int x_slot(int row, int gi, int p, int t) {
  return (gi * (G / 8) + 4 * p + t) ^ ((row & 1) << 2);
}
// Inverse of x_slot: which chunk of the stage (k [8c, 8c+8)) is stored in `slot` of `row`.
template <int G>
__host__ __device__ __forceinline__ int x_chunk_of_slot(int row, int slot) {
  const int s = slot ^ ((row & 1) << 2), gi = s / (G / 8), r = s % (G / 8);  // r = 4p + t
  return gi * (G / 8) + (r % 4) * (G / 32) + r / 4;
}
// Byte offset, within a weight row's slice of the stage, of lane t's first packed word of group gi.
template <int G>
__host__ __device__ __forceinline__ int b_byte(int gi, int t) { return gi * (G / 2) + t * (G / 8); }

// Accumulator element i of `lane`: row and column inside the 16x8 tile.
__host__ __device__ __forceinline__ int c_row(int lane, int i) { return (lane >> 2) + (i >= 2 ? 8 : 0); }
__host__ __device__ __forceinline__ int c_col(int lane, int i) { return (lane & 3) * 2 + (i & 1); }

__host__ __device__ __forceinline__ uint32_t byte_perm(uint32_t a, uint32_t b, uint32_t s) {
#ifdef __CUDA_ARCH__
  return __byte_perm(a, b, s);
#else
  const uint64_t v = (uint64_t(b) << 32) | a;
  uint32_t r = 0;
  for (int i = 0; i < 4; ++i) r |= uint32_t((v >> (8 * ((s >> (4 * i)) & 7))) & 0xFF) << (8 * i);
  return r;
#endif
}
// (e0,e1)(e2,e3)(e4,e5)(e6,e7) -> (e0,e4)(e1,e5)(e2,e6)(e3,e7): word j pairs k offsets j and j + 4.
__host__ __device__ __forceinline__ uint4 interleave_chunk(uint4 v) {
  return make_uint4(byte_perm(v.x, v.z, 0x5410), byte_perm(v.x, v.z, 0x7632), byte_perm(v.y, v.w, 0x5410),
                    byte_perm(v.y, v.w, 0x7632));
}
// A registers of step s of a pair from the interleaved chunks of rows groupID (lo) and groupID + 8 (hi).
__host__ __device__ __forceinline__ void frag_a(const uint4& lo, const uint4& hi, int s, uint32_t (&a)[4]) {
  a[0] = s ? lo.z : lo.x;  // a0,a1: k offsets (2s, 2s+4)
  a[1] = s ? hi.z : hi.x;  // a2,a3
  a[2] = s ? lo.w : lo.y;  // a4,a5: k offsets (2s+1, 2s+5)
  a[3] = s ? hi.w : hi.y;  // a6,a7
}

// kMagic: a value whose lowest 4 mantissa bits count units (1024 in fp16, 128 in bf16); kOne: 1.0.
template <typename T>
struct Int4Bits;
template <>
struct Int4Bits<__half> { static constexpr uint32_t kMagic = 0x6400, kOne = 0x3C00; };
template <>
struct Int4Bits<__nv_bfloat16> { static constexpr uint32_t kMagic = 0x4300, kOne = 0x3F80; };
// Codes j and j + 4 of packed word w (the word's k offsets j, j + 4) as magic + code in the low/high half.
template <typename T>
__host__ __device__ __forceinline__ uint32_t biased_pair(uint32_t w, int j) {
#ifdef __CUDA_ARCH__
  // One LOP3 (a & b) | c; written as C it takes two, the mask and the magic both being immediates.
  uint32_t r;
  const uint32_t magic = Int4Bits<T>::kMagic * 0x00010001u;
  asm("lop3.b32 %0, %1, %2, %3, 0xEA;" : "=r"(r) : "r"(w >> (4 * j)), "n"(0x000F000F), "r"(magic));
  return r;
#else
  return ((w >> (4 * j)) & 0x000F000Fu) | (Int4Bits<T>::kMagic * 0x00010001u);
#endif
}
// -(magic + zero) in both halves: the fma addend that turns a biased pair into code - zero, exactly.
template <typename T>
__host__ __device__ __forceinline__ uint32_t neg_bias_pair(uint32_t zero) {
  return (0x8000u | Int4Bits<T>::kMagic | zero) * 0x00010001u;
}

// ---- Device pieces ----

template <typename T>
__device__ __forceinline__ uint32_t fma2(uint32_t a, uint32_t b, uint32_t c) {
  uint32_t d;
  if constexpr (std::is_same_v<T, __nv_bfloat16>)
    asm("fma.rn.bf16x2 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
  else
    asm("fma.rn.f16x2 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
  return d;
}

// d = A * B + c (c = 0 when `zero_c`, so a group's partial needs no zeroing moves).
template <typename T>
__device__ __forceinline__ void mma_16816(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2], bool zero_c) {
  const float c0 = zero_c ? 0.f : d[0], c1 = zero_c ? 0.f : d[1], c2 = zero_c ? 0.f : d[2], c3 = zero_c ? 0.f : d[3];
  if constexpr (std::is_same_v<T, __nv_bfloat16>)
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%10,%11,%12,%13};"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c0), "f"(c1), "f"(c2), "f"(c3));
  else
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%10,%11,%12,%13};"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c0), "f"(c1), "f"(c2), "f"(c3));
}

// What a thread loads from global memory for one stage, one stage ahead of its use.
template <int G>
struct WeightRegs {
  static constexpr int kGroups = kStageK / G;
  uint32_t w[kNTiles][4];  // per column: G/32 words of each of the stage's groups
  float scale[kNTiles][kGroups];
  uint32_t zero[kNTiles][kGroups];
};

// The explicit min-blocks keeps ptxas from capping some configs at 128 registers, which spilled.
template <typename T, int G, int MT>
__global__ void __launch_bounds__(kThreads, 1)
    int4_mma_kernel(const T* __restrict__ x, const uint8_t* __restrict__ packed, const float* __restrict__ scales,
                    const uint8_t* __restrict__ zeros, const float* __restrict__ bias, T* __restrict__ out, int M,
                    int N, int K) {
  constexpr int kGroups = kStageK / G, kWords = G / 32, kCopies = 16 * MT * kChunks / kThreads;
  __shared__ uint4 xs[2][16 * MT * kChunks];  // double-buffered x stage, interleaved and swizzled

  const int lane = threadIdx.x % 32, gid = lane >> 2, tig = lane & 3;
  const int m0 = blockIdx.x * 16 * MT, n_warp = blockIdx.y * kBlockN + (threadIdx.x / 32) * kNTiles * 8;
  const int64_t groups = K / G;
  const int stages = (K + kStageK - 1) / kStageK;

  // Column groupID of each tile feeds B. Columns past N are clamped to N - 1: valid memory, and they only
  // reach output columns that are never stored (an MMA column depends on its B column alone).
  int ncol[kNTiles];  // ints, not row pointers: the 64-bit offsets are cheap to redo per stage
#pragma unroll
  for (int j = 0; j < kNTiles; ++j) ncol[j] = min(n_warp + j * 8 + gid, N - 1);

  uint4 xr[kCopies];
  WeightRegs<G> next{}, cur;  // zeroed once: groups past K in the last stage keep defined (unused) values
  auto load_stage = [&](int s) {
    const int k0 = s * kStageK, klen = min(kStageK, K - k0);  // klen: a multiple of G
#pragma unroll
    for (int j = 0; j < kCopies; ++j) {  // thread -> slot, so stores are conflict-free and rows coalesced
      const int idx = threadIdx.x + j * kThreads, row = idx / kChunks, c = x_chunk_of_slot<G>(row, idx % kChunks);
      xr[j] = make_uint4(0, 0, 0, 0);  // rows past M become zeros: finite, and only reach unstored rows
      if (m0 + row < M && c * 8 < klen)
        xr[j] = __ldg(reinterpret_cast<const uint4*>(x + int64_t(m0 + row) * K + k0 + c * 8));
    }
#pragma unroll
    for (int j = 0; j < kNTiles; ++j) {
#pragma unroll
      for (int gi = 0; gi < kGroups; ++gi) {
        uint32_t* w = &next.w[j][gi * kWords];
        if (gi * G < klen) {
          const uint8_t* p = packed + int64_t(ncol[j]) * (K / 2) + k0 / 2 + b_byte<G>(gi, tig);
          if constexpr (kWords == 4) {
            const uint4 v = __ldg(reinterpret_cast<const uint4*>(p));
            w[0] = v.x, w[1] = v.y, w[2] = v.z, w[3] = v.w;
          } else if constexpr (kWords == 2) {
            const uint2 v = __ldg(reinterpret_cast<const uint2*>(p));
            w[0] = v.x, w[1] = v.y;
          } else {
            w[0] = __ldg(reinterpret_cast<const uint32_t*>(p));
          }
          const int64_t gidx = int64_t(ncol[j]) * groups + k0 / G + gi;
          next.scale[j][gi] = __ldg(scales + gidx);
          next.zero[j][gi] = zeros ? __ldg(zeros + gidx) : 8u;
        }
      }
    }
  };
  auto store_stage = [&](uint4* tile) {
#pragma unroll
    for (int j = 0; j < kCopies; ++j) tile[threadIdx.x + j * kThreads] = interleave_chunk(xr[j]);
  };

  float acc[MT][kNTiles][4] = {};

  load_stage(0);
  store_stage(xs[0]);
  __syncthreads();
  for (int s = 0; s < stages; ++s) {
    cur = next;
    // Issued before this stage's MMAs, consumed after them: one stage of latency hiding. The store
    // below goes to the buffer read in stage s - 1, which every warp left at the barrier ending it.
    if (s + 1 < stages) load_stage(s + 1);
    const uint4* tile = xs[s & 1];
    const int klen = min(kStageK, K - s * kStageK);
#pragma unroll
    for (int gi = 0; gi < kGroups; ++gi) {
      if (gi * G >= klen) break;  // the last stage may hold fewer groups (block-uniform)
      uint32_t nb[kNTiles];
#pragma unroll
      for (int j = 0; j < kNTiles; ++j) nb[j] = neg_bias_pair<T>(cur.zero[j][gi]);
      float part[MT][kNTiles][4];
#pragma unroll
      for (int p = 0; p < kWords; ++p) {
        uint32_t b[kNTiles][2][2];  // [tile][step][register]
#pragma unroll
        for (int j = 0; j < kNTiles; ++j)
#pragma unroll
          for (int st = 0; st < 2; ++st)
#pragma unroll
            for (int r = 0; r < 2; ++r)
              b[j][st][r] = fma2<T>(biased_pair<T>(cur.w[j][gi * kWords + p], 2 * st + r),
                                    Int4Bits<T>::kOne * 0x00010001u, nb[j]);
#pragma unroll
        for (int i = 0; i < MT; ++i) {
          const int row = 16 * i + gid, slot = x_slot<G>(row, gi, p, tig);
          const uint4 lo = tile[row * kChunks + slot], hi = tile[(row + 8) * kChunks + slot];
#pragma unroll
          for (int st = 0; st < 2; ++st) {
            uint32_t a[4];
            frag_a(lo, hi, st, a);
#pragma unroll
            for (int j = 0; j < kNTiles; ++j) mma_16816<T>(part[i][j], a, b[j][st], p == 0 && st == 0);
          }
        }
      }
      // Fold the group in with the scales of this lane's accumulator columns (2t, 2t+1 of each tile):
      // lane 4c holds column c's scale, loaded for B's column groupID = c.
#pragma unroll
      for (int j = 0; j < kNTiles; ++j) {
        const float s_lo = __shfl_sync(0xffffffffu, cur.scale[j][gi], 4 * c_col(lane, 0));
        const float s_hi = __shfl_sync(0xffffffffu, cur.scale[j][gi], 4 * c_col(lane, 1));
#pragma unroll
        for (int i = 0; i < MT; ++i)
#pragma unroll
          for (int e = 0; e < 4; ++e) acc[i][j][e] = fmaf(part[i][j][e], (e & 1) ? s_hi : s_lo, acc[i][j][e]);
      }
    }
    if (s + 1 < stages) store_stage(xs[(s + 1) & 1]);
    __syncthreads();  // stage s + 1 visible; nobody still reads xs[s & 1] when stage s + 2 overwrites it
  }

#pragma unroll
  for (int j = 0; j < kNTiles; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int n = n_warp + j * 8 + c_col(lane, e);
      if (n >= N) continue;
      const float b = bias ? bias[n] : 0.f;
#pragma unroll
      for (int i = 0; i < MT; ++i) {
        const int m = m0 + 16 * i + c_row(lane, e);
        if (m < M) out[int64_t(m) * N + n] = cuda::from_float<T>(bias ? acc[i][j][e] + b : acc[i][j][e]);
      }
    }
}

// x and packed must be 16-byte aligned: x rows are staged with 16-byte loads, and a lane's words of a
// 128-group are one 16-byte load (K % 32 == 0 keeps every row start 16-byte aligned after the base).
inline bool supports(const void* x, const void* packed, int64_t M, int64_t N, int64_t K, int group_size) {
  constexpr int64_t kMax = (int64_t(1) << 31) - 256;  // int indices in the kernel, grid.x = ceil(M / 16)
  return (group_size == 32 || group_size == 64 || group_size == 128) && M > 0 && N > 0 && K > 0 &&
         K % 32 == 0 && K % group_size == 0 && M < kMax && K < kMax && (N + kBlockN - 1) / kBlockN <= 65535 &&
         reinterpret_cast<uintptr_t>(x) % 16 == 0 && reinterpret_cast<uintptr_t>(packed) % 16 == 0;
}

template <typename T, int G>
inline void launch(int mt, const T* x, const uint8_t* packed, const float* scales, const uint8_t* zeros,
                   const float* bias, T* out, int64_t M, int64_t N, int64_t K, cudaStream_t stream) {
  const auto kernel =
      mt == 1 ? int4_mma_kernel<T, G, 1> : mt == 2 ? int4_mma_kernel<T, G, 2> : int4_mma_kernel<T, G, 4>;
  // M-blocks fastest: the blocks sharing a column block's weights run together, so DRAM reads it once.
  const dim3 grid(unsigned((M + 16 * mt - 1) / (16 * mt)), unsigned((N + kBlockN - 1) / kBlockN));
  kernel<<<grid, kThreads, 0, stream>>>(x, packed, scales, zeros, bias, out, int(M), int(N), int(K));
}

template <typename T>
cudaError_t run(const T* x, const uint8_t* packed, const float* scales, const uint8_t* zeros, const float* bias,
                T* out, int64_t M, int64_t N, int64_t K, int group_size, cudaStream_t stream) {
  static_assert(std::is_same_v<T, __nv_bfloat16> || std::is_same_v<T, __half>, "int4_mma: bf16 or fp16 only");
  if (!supports(x, packed, M, N, K, group_size)) return cudaErrorInvalidValue;
  // BLOCK_M: the fewest 16-row tiles covering M, up to 64; halved while the grid would leave SMs idle
  // (fewer than two blocks per SM), since small M is bound by the weight stream, which more blocks
  // keep in flight, and the extra blocks re-read the weights mostly from L2.
  int dev = 0, sms = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev))
    sms = 0;  // BLOCK_M from M alone
  const int64_t nblocks = (N + kBlockN - 1) / kBlockN;
  int mt = M <= 16 ? 1 : M <= 32 ? 2 : 4;
  while (mt > 1 && nblocks * ((M + 16 * mt - 1) / (16 * mt)) < 2 * int64_t(sms)) mt /= 2;
  if (group_size == 32) launch<T, 32>(mt, x, packed, scales, zeros, bias, out, M, N, K, stream);
  else if (group_size == 64) launch<T, 64>(mt, x, packed, scales, zeros, bias, out, M, N, K, stream);
  else launch<T, 128>(mt, x, packed, scales, zeros, bias, out, M, N, K, stream);
  return cudaGetLastError();
}

}  // namespace bigaccel::int4_mma
