// The CPU's peak arithmetic rates, measured with the instructions the kernels use, for the
// benchmark's limits (bench/limits.py). torch's own GEMMs understate them: on the 2-core Zen 5
// VM torch's fp32 GEMM reached ~42% of what vfmadd231ps does, so rows of faster kernels read
// as over 100% of "peak".
#include <ATen/Parallel.h>

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "common/cpu_isa.h"

namespace bigaccel::cpu {

namespace {

// Independent accumulators: enough to cover the latency (4-6 cycles) of two pipes.
constexpr int kChains = 12;

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
enum class Kind { F32, BF16, Int8 };

// One instruction per accumulator per iteration, in asm so that the compiler neither folds
// the loop nor moves the accumulators out of registers around it.
template <typename V, typename F>
__attribute__((always_inline)) inline void run_chains(int64_t iters, V init, F step) {
  V acc[kChains];
#pragma GCC unroll 16
  for (int c = 0; c < kChains; ++c) acc[c] = init;
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 16
    for (int c = 0; c < kChains; ++c) step(acc[c]);
  }
#pragma GCC unroll 16
  for (int c = 0; c < kChains; ++c) asm volatile("" : : "v"(acc[c]));
}

__attribute__((target("avx512f,avx512bf16,avx512vnni"))) double avx512_loop(Kind kind, int64_t iters) {
  const __m512 a = _mm512_set1_ps(1e-7f), b = _mm512_set1_ps(1e-7f);
  const __m512i qa = _mm512_set1_epi8(1), qb = _mm512_set1_epi8(1);
  switch (kind) {
    case Kind::F32:
      run_chains(iters, a, [&](__m512& acc) { asm volatile("vfmadd231ps %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b)); });
      return 32.0 * kChains * double(iters);  // 16 lanes x 2
    case Kind::BF16:
      run_chains(iters, a, [&](__m512& acc) { asm volatile("vdpbf16ps %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b)); });
      return 64.0 * kChains * double(iters);  // 16 lanes x 2 pairs x 2
    default:
      run_chains(iters, qa, [&](__m512i& acc) { asm volatile("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(qa), "v"(qb)); });
      return 128.0 * kChains * double(iters);  // 16 lanes x 4 pairs x 2
  }
}

// AVX2 has no int8 or bf16 dot products: fp32 FMAs, and the kernels' int8 sequence
// (vpmaddubsw, vpmaddwd by ones, vpaddd: 32 multiply-adds).
__attribute__((target("avx2,fma"))) double avx2_loop(Kind kind, int64_t iters) {
  const __m256 a = _mm256_set1_ps(1e-7f), b = _mm256_set1_ps(1e-7f);
  const __m256i qa = _mm256_set1_epi8(1), qb = _mm256_set1_epi8(1), ones = _mm256_set1_epi16(1);
  if (kind == Kind::Int8) {
    run_chains(iters, qa, [&](__m256i& acc) {
      __m256i t;
      asm volatile("vpmaddubsw %2, %1, %0" : "=v"(t) : "v"(qa), "v"(qb));
      asm volatile("vpmaddwd %1, %0, %0" : "+v"(t) : "v"(ones));
      asm volatile("vpaddd %1, %0, %0" : "+v"(acc) : "v"(t));
    });
    return 64.0 * kChains * double(iters);
  }
  run_chains(iters, a, [&](__m256& acc) { asm volatile("vfmadd231ps %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b)); });
  return 16.0 * kChains * double(iters);
}
#endif

}  // namespace

double peak_tops(const std::string& kind, double seconds) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  Kind k;
  if (kind == "fp32")
    k = Kind::F32;
  else if (kind == "bf16")
    k = Kind::BF16;
  else if (kind == "int8")
    k = Kind::Int8;
  else
    throw std::invalid_argument("peak_tops: kind must be fp32, bf16 or int8, got '" + kind + "'");
  const Isa isa = active_isa();
  if (isa == Isa::Portable || (k == Kind::BF16 && !has_avx512_bf16())) return 0.0;  // not measured
  const auto loop = [&](int64_t iters) { return isa == Isa::Avx512 ? avx512_loop(k, iters) : avx2_loop(k, iters); };
  // Calibrate on one thread, then every thread runs the count that lasts `seconds`, at once.
  int64_t iters = 1 << 12;
  for (;;) {
    const auto t0 = std::chrono::steady_clock::now();
    loop(iters);
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (dt > seconds / 16 || iters > (int64_t(1) << 40)) {
      iters = int64_t(double(iters) * seconds / dt) + 1;
      break;
    }
    iters *= 2;
  }
  const int threads = at::get_num_threads();
  double ops = 0;
  const auto t0 = std::chrono::steady_clock::now();
  at::parallel_for(0, threads, 1, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const double done = loop(iters);
      if (t == 0) ops = done;  // every thread does the same count
    }
  });
  const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return ops * threads / dt / 1e12;
#else
  (void)kind;
  (void)seconds;
  return 0.0;
#endif
}

}  // namespace bigaccel::cpu
