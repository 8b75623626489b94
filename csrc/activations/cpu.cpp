#include <ATen/Parallel.h>

#include "activations/activations.h"
#include "common/cpu_isa.h"

BIGACCEL_DECLARE_ISA_KERNEL(void, activation_range, const bigaccel::ActArgs& args, bool backward, int64_t begin,
                            int64_t end)

namespace bigaccel::activations {

void run_cpu(const ActArgs& args, bool backward, int64_t total) {
  const auto kernel = BIGACCEL_SELECT_ISA_KERNEL(activation_range);
  // Chunks of 16K elements: large enough to amortise waking a thread, and a
  // multiple of every vector width so that only row ends have tails.
  constexpr int64_t kGrain = 16384;
  at::parallel_for(0, total, kGrain, [&](int64_t begin, int64_t end) { kernel(args, backward, begin, end); });
}

}  // namespace bigaccel::activations

namespace bigaccel::activations {

void run_cpu_columns(const ActArgs& args, int64_t rows, int64_t n0, int64_t n1) {
  const auto kernel = BIGACCEL_SELECT_ISA_KERNEL(activation_range);
  for (int64_t r = 0; r < rows; ++r) kernel(args, false, r * args.d + n0, r * args.d + n1);
}

}  // namespace bigaccel::activations
