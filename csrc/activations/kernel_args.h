// What the activation kernels receive: raw pointers and sizes, no torch types,
// so that the per-ISA translation units can include it (see common/isa.h).
#pragma once

#include <cstdint>

#include "common/dtypes.h"

namespace bigaccel {

enum class Act : int { Silu = 0, GeluErf = 1, GeluTanh = 2 };
// The GEMM kernels' activation code for "none" (the others are an Act's value).
constexpr int kNoAct = -1;

// The output (forward) or incoming gradient (backward) is a contiguous [rows, d].
// gated:  x is [rows, 2d] = [gate | up], f(x) = act(gate) * up; grad_x is [rows, 2d].
// else:   x is [rows, d], f(x) = act(x + bias) (bias [d] or null); grad_x is [rows, d].
// All pointers share one dtype; arithmetic is fp32 with one rounding per output.
struct ActArgs {
  const void* x = nullptr;
  const void* bias = nullptr;
  const void* grad = nullptr;  // backward only
  void* out = nullptr;         // forward: f(x); backward: grad_x
  DType dtype = DType::F32;
  Act act = Act::Silu;
  bool gated = false;
  int64_t d = 0;
  // Set by cpu.cpp where cpu::has_avx512_bf16(): bf16 forward results are rounded by
  // vcvtne2ps2bf16 (vec_math.h, store_pair_as).
  bool bf16_instructions = false;
  // Set by cpu.cpp for a large output that is not the input: forward stores stream past the
  // caches (vec_math.h, write_line).
  bool stream_out = false;
};

}  // namespace bigaccel
