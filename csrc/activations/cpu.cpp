#include <ATen/Parallel.h>

#include "activations/activations.h"
#include "common/cpu_isa.h"

BIGACCEL_DECLARE_ISA_KERNEL(void, activation_range, const bigaccel::ActArgs& args, bool backward, int64_t begin,
                            int64_t end)

namespace bigaccel::activations {

namespace {
ActArgs with_cpu_features(ActArgs args) {
  args.bf16_instructions = cpu::has_avx512_bf16();
  return args;
}

// Outputs from this size are written past the caches: a few MB is more than the cores' L2s
// hold, and at this size the read for ownership of ordinary stores measured more than the
// consumer's later read from L3 saves. Below it (decode-sized rows), ordinary stores keep
// the output in cache for the next layer.
constexpr int64_t kStreamOutputBytes = int64_t(4) << 20;

int64_t element_bytes(DType t) { return t == DType::F32 ? 4 : 2; }
}  // namespace

void run_cpu(const ActArgs& in_args, bool backward, int64_t total) {
  const auto kernel = BIGACCEL_SELECT_ISA_KERNEL(activation_range);
  ActArgs args = with_cpu_features(in_args);
  args.stream_out = !backward && args.out != args.x && total * element_bytes(args.dtype) >= kStreamOutputBytes;
  // Chunks of 16K elements: large enough to amortise waking a thread, and a
  // multiple of every vector width so that only row ends have tails.
  constexpr int64_t kGrain = 16384;
  at::parallel_for(0, total, kGrain, [&](int64_t begin, int64_t end) { kernel(args, backward, begin, end); });
}

}  // namespace bigaccel::activations

namespace bigaccel::activations {

void run_cpu_columns(const ActArgs& in_args, int64_t rows, int64_t n0, int64_t n1) {
  const auto kernel = BIGACCEL_SELECT_ISA_KERNEL(activation_range);
  const ActArgs args = with_cpu_features(in_args);
  for (int64_t r = 0; r < rows; ++r) kernel(args, false, r * args.d + n0, r * args.d + n1);
}

}  // namespace bigaccel::activations
