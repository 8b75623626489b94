// The quantized GEMMs' epilogue activation (the activation= option of bigaccel.nn's int8 and
// int4 layers): out = act(out) in place on the GEMM's [M, N] output, by the activation
// kernels. On CPU each GEMM thread applies it to the columns it has just written, while they
// are in its cache (parallel_over_columns in common/cpu_parallel.h). On CUDA the GEMVs and the
// scale/bias passes of bigaccel's own kernels apply it before their store (act_device.cuh);
// after a CUTLASS, cuBLAS or Hopper GEMM it is one more pass over the output. The Triton
// kernels apply it before their store.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <string>

#include "activations/activations.h"

namespace bigaccel::activations {

// The caller's thread, no pool: act over columns [n0, n1) of every row of args.out [rows, args.d].
void run_cpu_columns(const ActArgs& args, int64_t rows, int64_t n0, int64_t n1);

struct Epilogue {
  std::optional<Act> act;  // none: the GEMM's output as it is
  ActArgs args;
  int64_t rows = 0;

  explicit operator bool() const { return act.has_value(); }
  void cpu_columns(int64_t n0, int64_t n1) const {
    if (act) run_cpu_columns(args, rows, n0, n1);
  }
  void cpu_all() const {  // every element, on the thread pool
    if (act && rows > 0 && args.d > 0) run_cpu(args, false, rows * args.d);
  }
  void cuda_all(const at::Tensor& out) const {
    if (act && rows > 0 && args.d > 0) run_cuda(args, false, rows * args.d, out.get_device());
  }
};

// Checks `activation` ("none", "silu", "gelu" or "gelu_tanh") before any work is done.
inline std::optional<Act> epilogue_act(const std::string& activation, const char* op) {
  if (activation == "none") return std::nullopt;
  TORCH_CHECK(activation == "silu" || activation == "gelu" || activation == "gelu_tanh", "bigaccel.", op,
              ": activation must be 'none', 'silu', 'gelu' (erf) or 'gelu_tanh', got '", activation, "'");
  return from_name(activation, op);
}

// The activation code the CUDA GEMM kernels take (act_device.cuh).
inline int cuda_code(std::optional<Act> act) { return act ? static_cast<int>(*act) : kNoAct; }

// For out [rows, d], contiguous, of a float dtype.
inline Epilogue make_epilogue(std::optional<Act> act, const at::Tensor& out, const char* op) {
  Epilogue e;
  e.act = act;
  if (!act) return e;
  e.args.act = *act;
  e.args.dtype = float_dtype(out, op, "out");
  e.args.x = out.data_ptr();
  e.args.out = out.data_ptr();
  e.args.d = out.size(1);
  e.rows = out.size(0);
  return e;
}

}  // namespace bigaccel::activations
