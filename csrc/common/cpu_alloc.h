// Fresh outputs of the bandwidth-bound CPU ops. A large fresh tensor's pages are first
// touched by the kernel, and on the benchmark VM those 4 KB page faults ran at ~10 GB/s,
// a fifth of the kernel's rate. Asking for transparent huge pages over the tensor (what
// PyTorch's THP_MEM_ALLOC_ENABLE=1 does for every allocation) makes that one fault per 2 MB:
// a fresh 4096 x 8192 silu_and_mul output went from 10 to 30 GB/s (the rest is the kernel
// zeroing the pages; an out= buffer runs at 49).
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

#include <cstdint>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace bigaccel {

inline at::Tensor empty_output(at::IntArrayRef sizes, const at::TensorOptions& options) {
  at::Tensor t = at::empty(sizes, options);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHugePage = uintptr_t(1) << 21;
  if (t.is_cpu() && t.nbytes() >= 2 * kHugePage) {
    const uintptr_t begin = reinterpret_cast<uintptr_t>(t.data_ptr());
    const uintptr_t first = (begin + kHugePage - 1) & ~(kHugePage - 1);
    const uintptr_t last = (begin + t.nbytes()) & ~(kHugePage - 1);
    // A hint over the whole huge pages inside the tensor: where THP is off it fails, which changes nothing.
    if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
  }
#endif
  return t;
}

}  // namespace bigaccel
