// Host-side helpers shared by the CPU GEMM entry points (cpu.cpp files, not the ISA kernels).
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <optional>

namespace bigaccel {

// fn(n_begin, n_end) over the N output columns, split over threads in chunks of `chunk`
// (a whole number of the kernel's column tiles). Problems under ~1M multiply-adds run on
// one thread: waking the pool costs more than they do.
template <typename Fn>
void parallel_over_columns(int64_t M, int64_t N, int64_t K, int64_t chunk, const Fn& fn) {
  const int64_t chunks = (N + chunk - 1) / chunk;
  const int64_t grain = M * N * K < (1 << 20) ? chunks : 1;
  at::parallel_for(0, chunks, grain, [&](int64_t begin, int64_t end) { fn(begin * chunk, std::min(N, end * chunk)); });
}

// The bias as a contiguous fp32 vector, which every CPU epilogue adds.
inline std::optional<at::Tensor> bias_f32(const std::optional<at::Tensor>& bias) {
  if (!bias) return std::nullopt;
  return bias->to(at::kFloat).contiguous().view({-1});
}

}  // namespace bigaccel
