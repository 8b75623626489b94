// Per-instruction-set compilation without per-file compiler flags.
//
// A kernel is written once, generically over the vector types of vec.h, in
// <op>/cpu_kernel.h. Each <op>/cpu_<isa>.cpp defines BIGACCEL_ISA_LEVEL and
// BIGACCEL_ISA_NS, includes this header, then the kernel. The pragma below
// compiles everything that follows for that ISA, and BIGACCEL_ISA_NS gives
// every function its own mangled name per ISA, so the linker can never merge
// an AVX-512 copy of an inline function into the portable path.
//
// The AVX-512 tier may also use AVX512_BF16 instructions, but only in code that
// runs after cpu::has_avx512_bf16() said yes (Ice Lake has VNNI but not BF16);
// compilers emit those instructions only for intrinsics and __bf16, which
// nothing else here uses.
//
// Rules for code after this header: include no torch, ATen or standard
// library headers (they would be compiled for the ISA and could be merged),
// and call no std:: templates.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#define BIGACCEL_ISA_PORTABLE 0
#define BIGACCEL_ISA_AVX2 1
#define BIGACCEL_ISA_AVX512 2

#if !defined(BIGACCEL_ISA_LEVEL) || !defined(BIGACCEL_ISA_NS)
#error "define BIGACCEL_ISA_LEVEL and BIGACCEL_ISA_NS before including common/isa.h"
#endif

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define BIGACCEL_X86 1
#else
#define BIGACCEL_X86 0
#endif

// The vector width actually used: AVX tiers fall back to portable code on
// other architectures, where the dispatcher never selects them.
#if BIGACCEL_X86
#define BIGACCEL_VEC_LEVEL BIGACCEL_ISA_LEVEL
#else
#define BIGACCEL_VEC_LEVEL BIGACCEL_ISA_PORTABLE
#endif

#if BIGACCEL_VEC_LEVEL == BIGACCEL_ISA_AVX512
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx512bf16,avx2,fma,f16c,bmi2"))), apply_to = function)
#define BIGACCEL_ISA_POP _Pragma("clang attribute pop")
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx512bf16,avx2,fma,f16c,bmi2")
// GCC 12's own _mm512_reduce_* trip these warnings (_mm256_undefined_pd); false positives.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#define BIGACCEL_ISA_POP _Pragma("GCC pop_options")
#endif
#elif BIGACCEL_VEC_LEVEL == BIGACCEL_ISA_AVX2
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c,bmi2"))), apply_to = function)
#define BIGACCEL_ISA_POP _Pragma("clang attribute pop")
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,bmi2")
#define BIGACCEL_ISA_POP _Pragma("GCC pop_options")
#endif
#else
#define BIGACCEL_ISA_POP
#endif
