// CUDA kernels of the bigaccel ops and the _C_cuda Python module with build
// information. Compiled only when the CUDA extension is built.
#include <cuda_runtime_api.h>
#include <torch/extension.h>
#include <torch/library.h>

#include "hopper_kernels.h"
#include "int4_gemm/int4_gemm.h"
#include "int8_gemm/int8_gemm.h"
#include "activations/activations.h"
#include "quantize_per_token/quantize_per_token.h"
#include "sparse24_gemm/sparse24_gemm.h"

#ifndef BIGACCEL_HAVE_CUTLASS
#define BIGACCEL_HAVE_CUTLASS 0
#endif
#ifndef BIGACCEL_CUDA_ARCHS
#define BIGACCEL_CUDA_ARCHS ""
#endif

TORCH_LIBRARY_IMPL(bigaccel, CUDA, m) {
  m.impl("quantize_per_token", &bigaccel::quantize_per_token_cuda);
  m.impl("int8_mm", &bigaccel::int8_mm_cuda);
  m.impl("int8_weight_only_mm", &bigaccel::int8_weight_only_mm_cuda);
  m.impl("int4_mm", &bigaccel::int4_mm_cuda);
}

TORCH_LIBRARY_IMPL(bigaccel, CUDA, m) { BIGACCEL_REGISTER_ACTIVATIONS(m, CUDA); }

#if BIGACCEL_HAVE_CUTLASS
// Internal ops: bigaccel/_sparse24_ops.py routes the shapes they take to them.
TORCH_LIBRARY_IMPL(bigaccel, CUDA, m) {
  m.impl("sparse24_mm_cutlass", &bigaccel::sparse24_mm_cutlass);
  m.impl("sparse24_int8_mm_cutlass", &bigaccel::sparse24_int8_mm_cutlass);
}
#endif

namespace bigaccel {
namespace {
const HopperKernels* g_hopper = nullptr;
}  // namespace
const HopperKernels* hopper_kernels() { return g_hopper; }
void attach_hopper_kernels(const HopperKernels* table) { g_hopper = table; }
}  // namespace bigaccel

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "bigaccel CUDA kernels";
  m.attr("compiled_archs") = std::string(BIGACCEL_CUDA_ARCHS);
  m.attr("cuda_runtime_compiled") = CUDART_VERSION;
  m.attr("cutlass") = bool(BIGACCEL_HAVE_CUTLASS);
  m.def("attach_hopper_kernels", [](uintptr_t address, uint32_t version) {
    TORCH_CHECK(version == bigaccel::HopperKernels::kVersion, "bigaccel._C_hopper was built from another version of ",
                "bigaccel (kernel table v", version, ", expected v", bigaccel::HopperKernels::kVersion, "); rebuild both");
    bigaccel::attach_hopper_kernels(reinterpret_cast<const bigaccel::HopperKernels*>(address));
  });
  m.def("hopper_kernels_attached", [] { return bigaccel::hopper_kernels() != nullptr; });
#if BIGACCEL_HAVE_CUTLASS
  m.def("sparse24_cutlass_meta_offsets", &bigaccel::sparse24_cutlass_meta_offsets,
        "Where CUTLASS's 2:4 metadata reordering puts each word of a [rows, cols] matrix (row-major list)");
#endif
}
