// Host-only emulation of int4_mma_kernel: the same index helpers from mma_gemm.cuh, an MMA written
// independently from the PTX ISA m16n8k16 fragment tables, compared with a plain triple loop.
#include "int4_gemm/mma_gemm.cuh"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

using namespace bigaccel::int4_mma;

static int g_fail = 0;
#define CHECK(c, ...) do { if (!(c)) { if (g_fail++ < 20) { printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } } } while (0)

// ---- element codecs (independent of the header) ----
template <typename T> double decode(uint16_t h);
template <> double decode<__nv_bfloat16>(uint16_t h) { uint32_t u = uint32_t(h) << 16; float f; memcpy(&f, &u, 4); return f; }
template <> double decode<__half>(uint16_t h) {
  const int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
  double v = e == 0 ? std::ldexp(double(m), -24) : std::ldexp(double(1024 + m), e - 25);
  return s ? -v : v;
}
template <typename T> uint16_t encode_exact(float v);  // v exactly representable (test data)
template <> uint16_t encode_exact<__nv_bfloat16>(float v) { uint32_t u; memcpy(&u, &v, 4); if (u & 0xFFFF) abort(); return u >> 16; }
template <> uint16_t encode_exact<__half>(float v) { __half_raw r = __half(__float2half_rn(v)); uint16_t b = r.x; if (decode<__half>(b) != v) abort(); return b; }

// ---- mma.m16n8k16 from the PTX ISA tables (floating point, .row.col) ----
// a[lane][i] = element ai, b[lane][i] = bi, c/d[lane][i] = ci.
static void mma_emu(double d[32][4], const double a[32][8], const double b[32][4], const double c[32][4]) {
  double A[16][16], B[16][8];
  int seenA[16][16] = {}, seenB[16][8] = {};
  for (int lane = 0; lane < 32; ++lane) {
    const int groupID = lane >> 2, tig = lane % 4;
    for (int i = 0; i < 8; ++i) {
      const int row = ((0 <= i && i < 2) || (4 <= i && i < 6)) ? groupID : groupID + 8;
      const int col = i < 4 ? (tig * 2) + (i & 0x1) : (tig * 2) + (i & 0x1) + 8;
      A[row][col] = a[lane][i];
      seenA[row][col]++;
    }
    for (int i = 0; i < 4; ++i) {
      const int row = i < 2 ? (tig * 2) + (i & 0x1) : (tig * 2) + (i & 0x1) + 8;
      const int col = groupID;
      B[row][col] = b[lane][i];
      seenB[row][col]++;
    }
  }
  for (int r = 0; r < 16; ++r) for (int k = 0; k < 16; ++k) CHECK(seenA[r][k] == 1, "A coverage");
  for (int k = 0; k < 16; ++k) for (int n = 0; n < 8; ++n) CHECK(seenB[k][n] == 1, "B coverage");
  for (int lane = 0; lane < 32; ++lane) {
    const int groupID = lane >> 2, tig = lane % 4;
    for (int i = 0; i < 4; ++i) {
      const int row = i < 2 ? groupID : groupID + 8, col = (tig * 2) + (i & 0x1);
      double s = 0;
      for (int k = 0; k < 16; ++k) s += A[row][k] * B[k][col];
      d[lane][i] = c[lane][i] + s;  // exact for the test's values
    }
  }
}

static uint32_t half_bits(uint32_t reg, int h) { return h ? reg >> 16 : reg & 0xFFFF; }

// ---- the kernel, block by block, warp by warp, with the kernel's own index helpers ----
template <typename T, int G, int MT>
static void emulate(const std::vector<uint16_t>& x, const std::vector<uint8_t>& packed, const std::vector<float>& scales,
                    const uint8_t* zeros, const float* bias, std::vector<float>& out, std::vector<int>& writes, int M,
                    int N, int K) {
  constexpr int kGroups = kStageK / G, kWords = G / 32, kCopies = 16 * MT * kChunks / kThreads;
  const int64_t groups = K / G;
  const int stages = (K + kStageK - 1) / kStageK;
  const int gx = (M + 16 * MT - 1) / (16 * MT), gy = (N + kBlockN - 1) / kBlockN;
  std::vector<uint4> xs(16 * MT * kChunks);
  for (int bx = 0; bx < gx; ++bx)
    for (int by = 0; by < gy; ++by) {
      const int m0 = bx * 16 * MT;
      static double acc[kWarps][32][4][kNTiles][4];
      memset(acc, 0, sizeof(acc));
      for (int s = 0; s < stages; ++s) {
        const int k0 = s * kStageK, klen = std::min(kStageK, K - k0);
        // copy stage: thread -> slot
        for (int tid = 0; tid < kThreads; ++tid)
          for (int j = 0; j < kCopies; ++j) {
            const int idx = tid + j * kThreads, row = idx / kChunks, c = x_chunk_of_slot<G>(row, idx % kChunks);
            uint4 v = make_uint4(0, 0, 0, 0);
            if (m0 + row < M && c * 8 < klen) memcpy(&v, &x[int64_t(m0 + row) * K + k0 + c * 8], 16);
            xs[idx] = interleave_chunk(v);
          }
        // bank check of the stores: each quarter-warp phase of an STS.128 must touch 8 distinct 16-byte bank groups
        for (int w = 0; w < kWarps; ++w)
          for (int j = 0; j < kCopies; ++j)
            for (int q = 0; q < 4; ++q) {
              int used = 0;
              for (int l = 8 * q; l < 8 * q + 8; ++l) used |= 1 << ((w * 32 + l + j * kThreads) % 8);
              CHECK(used == 0xFF, "store bank conflict");
            }
        for (int w = 0; w < kWarps; ++w) {
          const int n_warp = by * kBlockN + w * kNTiles * 8;
          uint32_t wv[32][kNTiles][4] = {};
          float sc[32][kNTiles][kGroups] = {};
          uint32_t zr[32][kNTiles][kGroups] = {};
          for (int lane = 0; lane < 32; ++lane) {
            const int gid = lane >> 2, tig = lane & 3;
            for (int j = 0; j < kNTiles; ++j) {
              const int ncol = std::min(n_warp + j * 8 + gid, N - 1);
              for (int gi = 0; gi < kGroups; ++gi)
                if (gi * G < klen) {
                  const int64_t off = int64_t(ncol) * (K / 2) + k0 / 2 + b_byte<G>(gi, tig);
                  CHECK(off % (4 * kWords) == 0, "B vector load misaligned");
                  CHECK(off + 4 * kWords <= int64_t(packed.size()), "B load out of bounds");
                  memcpy(&wv[lane][j][gi * kWords], &packed[off], 4 * kWords);
                  const int64_t gidx = int64_t(ncol) * groups + k0 / G + gi;
                  sc[lane][j][gi] = scales[gidx];
                  zr[lane][j][gi] = zeros ? zeros[gidx] : 8u;
                }
            }
          }
          for (int gi = 0; gi < kGroups; ++gi) {
            if (gi * G >= klen) break;
            static double part[32][4][kNTiles][4];
            for (int p = 0; p < kWords; ++p) {
              double bval[kNTiles][2][32][4];  // [tile][step][lane][b_i]
              for (int lane = 0; lane < 32; ++lane)
                for (int j = 0; j < kNTiles; ++j) {
                  const uint32_t nb = neg_bias_pair<T>(zr[lane][j][gi]);
                  for (int st = 0; st < 2; ++st)
                    for (int r = 0; r < 2; ++r) {
                      const uint32_t bp = biased_pair<T>(wv[lane][j][gi * kWords + p], 2 * st + r);
                      for (int h = 0; h < 2; ++h) {  // fma2(bp, 1, nb), exact
                        const double v = decode<T>(half_bits(bp, h)) * decode<T>(Int4Bits<T>::kOne) + decode<T>(half_bits(nb, h));
                        CHECK(v == std::floor(v) && std::fabs(v) <= 15, "dequant not an exact small integer");
                        bval[j][st][lane][2 * r + h] = v;  // register r holds b_{2r}, b_{2r+1}
                      }
                    }
                }
              for (int i = 0; i < MT; ++i) {
                uint4 lo[32], hi[32];
                int slots[32];
                for (int lane = 0; lane < 32; ++lane) {
                  const int gid = lane >> 2, tig = lane & 3, row = 16 * i + gid, slot = x_slot<G>(row, gi, p, tig);
                  lo[lane] = xs[row * kChunks + slot];
                  hi[lane] = xs[(row + 8) * kChunks + slot];
                  slots[lane] = (row * kChunks + slot) % 8;  // 16-byte bank group (row stride 256 B)
                }
                for (int q = 0; q < 4; ++q) {
                  int used = 0;
                  for (int l = 8 * q; l < 8 * q + 8; ++l) used |= 1 << slots[l];
                  CHECK(used == 0xFF, "LDS.128 bank conflict G=%d gi=%d p=%d", G, gi, p);
                }
                for (int st = 0; st < 2; ++st) {
                  double aval[32][8];
                  for (int lane = 0; lane < 32; ++lane) {
                    uint32_t a[4];
                    frag_a(lo[lane], hi[lane], st, a);
                    for (int e = 0; e < 8; ++e) aval[lane][e] = decode<T>(half_bits(a[e / 2], e % 2));
                  }
                  for (int j = 0; j < kNTiles; ++j) {
                    double c[32][4], d[32][4];
                    const bool first = p == 0 && st == 0;
                    for (int lane = 0; lane < 32; ++lane)
                      for (int e = 0; e < 4; ++e) c[lane][e] = first ? 0.0 : part[lane][i][j][e];
                    mma_emu(d, aval, bval[j][st], c);
                    for (int lane = 0; lane < 32; ++lane)
                      for (int e = 0; e < 4; ++e) part[lane][i][j][e] = d[lane][e];
                  }
                }
              }
            }
            for (int lane = 0; lane < 32; ++lane)
              for (int j = 0; j < kNTiles; ++j) {
                const float s_lo = sc[4 * c_col(lane, 0)][j][gi], s_hi = sc[4 * c_col(lane, 1)][j][gi];  // __shfl_sync
                for (int i = 0; i < MT; ++i)
                  for (int e = 0; e < 4; ++e)
                    acc[w][lane][i][j][e] = std::fma(float(part[lane][i][j][e]), (e & 1) ? s_hi : s_lo, float(acc[w][lane][i][j][e]));
              }
          }
        }
      }
      for (int w = 0; w < kWarps; ++w) {
        const int n_warp = by * kBlockN + w * kNTiles * 8;
        for (int lane = 0; lane < 32; ++lane)
          for (int j = 0; j < kNTiles; ++j)
            for (int e = 0; e < 4; ++e) {
              const int n = n_warp + j * 8 + c_col(lane, e);
              if (n >= N) continue;
              for (int i = 0; i < MT; ++i) {
                const int m = m0 + 16 * i + c_row(lane, e);
                if (m < M) {
                  const float v = float(acc[w][lane][i][j][e]);
                  out[int64_t(m) * N + n] = bias ? v + bias[n] : v;
                  writes[int64_t(m) * N + n]++;
                }
              }
            }
      }
    }
}

template <typename T, int G, int MT>
static void test(int M, int N, int K, bool with_zeros, bool with_bias, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint16_t> x(int64_t(M) * K);
  std::vector<float> xf(x.size());
  for (size_t i = 0; i < x.size(); ++i) {  // multiples of 1/16 in [-4, 4]: exact in bf16/fp16, exact sums
    xf[i] = float(int(rng() % 129) - 64) / 16.f;
    x[i] = encode_exact<T>(xf[i]);
  }
  const int groups = K / G;
  std::vector<uint8_t> codes(int64_t(N) * K), packed(int64_t(N) * K / 2), zeros(int64_t(N) * groups);
  std::vector<float> scales(int64_t(N) * groups), bias(N);
  for (auto& c : codes) c = rng() % 16;
  for (int64_t i = 0; i < int64_t(N) * K / 2; ++i) packed[i] = codes[2 * i] | (codes[2 * i + 1] << 4);
  for (auto& z : zeros) z = rng() % 16;
  for (auto& s : scales) s = std::ldexp(float(rng() % 1000 + 1) / 1000.f, -int(rng() % 8));
  for (auto& b : bias) b = float(int(rng() % 2001) - 1000) / 7.f;
  const uint8_t* zp = with_zeros ? zeros.data() : nullptr;
  const float* bp = with_bias ? bias.data() : nullptr;

  std::vector<float> out(int64_t(M) * N, NAN);
  std::vector<int> writes(out.size(), 0);
  emulate<T, G, MT>(x, packed, scales, zp, bp, out, writes, M, N, K);

  int bad = 0;
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n) {
      float acc = 0.f;  // triple loop: per group, exact partial, folded with fma in group order
      for (int g = 0; g < groups; ++g) {
        double part = 0;
        const float z = zp ? zp[int64_t(n) * groups + g] : 8.f;
        for (int k = g * G; k < (g + 1) * G; ++k) part += double(xf[int64_t(m) * K + k]) * (double(codes[int64_t(n) * K + k]) - z);
        acc = std::fma(float(part), scales[int64_t(n) * groups + g], acc);
      }
      const float ref = bp ? acc + bp[n] : acc;
      const int64_t i = int64_t(m) * N + n;
      if (writes[i] != 1 || out[i] != ref) {
        if (bad++ < 5) printf("  mismatch m=%d n=%d writes=%d got=%.9g ref=%.9g\n", m, n, writes[i], out[i], ref);
      }
    }
  CHECK(bad == 0, "%s G=%d MT=%d M=%d N=%d K=%d zeros=%d bias=%d: %d bad", sizeof(T) && std::is_same_v<T, __half> ? "f16" : "bf16", G, MT, M, N, K, with_zeros, with_bias, bad);
  printf("%-4s G=%-3d MT=%d M=%-3d N=%-3d K=%-4d zeros=%d bias=%d: %s\n", std::is_same_v<T, __half> ? "f16" : "bf16", G, MT, M, N, K,
         with_zeros, with_bias, bad ? "MISMATCH" : "exact");
}

template <int G>
static void index_checks() {
  // x_chunk_of_slot inverts x_slot, and lane t's B word for (gi, p) is the x chunk it reads for (gi, p).
  for (int row = 0; row < 2; ++row)
    for (int gi = 0; gi < kStageK / G; ++gi)
      for (int p = 0; p < G / 32; ++p)
        for (int t = 0; t < 4; ++t) {
          const int slot = x_slot<G>(row, gi, p, t), c = x_chunk_of_slot<G>(row, slot);
          CHECK(slot >= 0 && slot < kChunks, "slot range");
          CHECK(c == gi * (G / 8) + t * (G / 32) + p, "x_chunk_of_slot(x_slot) G=%d", G);
          CHECK(b_byte<G>(gi, t) + 4 * p == 4 * c, "B word / x chunk disagree G=%d", G);
        }
}

int main() {
  index_checks<32>(); index_checks<64>(); index_checks<128>();
  uint32_t seed = 1;
  auto all_for = [&](auto tag) {
    using T = decltype(tag);
    // odd N, M not a multiple of 16, K with a partial last stage (G = 32: 352 = 2*128 + 96; G = 64: 320)
    test<T, 32, 1>(37, 83, 352, true, true, seed++);
    test<T, 32, 2>(37, 83, 352, false, false, seed++);
    test<T, 32, 4>(70, 65, 352, true, false, seed++);
    test<T, 32, 1>(9, 1, 32, true, true, seed++);       // one column, one group, one partial stage
    test<T, 64, 1>(20, 83, 320, false, true, seed++);
    test<T, 64, 2>(37, 130, 320, true, true, seed++);
    test<T, 64, 4>(70, 83, 192, true, false, seed++);
    test<T, 128, 1>(17, 83, 384, true, true, seed++);
    test<T, 128, 2>(33, 127, 256, false, true, seed++);
    test<T, 128, 4>(65, 83, 384, true, false, seed++);
    test<T, 128, 4>(64, 64, 128, false, false, seed++);  // exact tiles
  };
  all_for(__nv_bfloat16{});
  all_for(__half{});
  printf(g_fail ? "FAILED (%d)\n" : "ALL OK\n", g_fail);
  return g_fail != 0;
}
