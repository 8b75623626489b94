// bigaccel._C_hopper: the Hopper-only kernels (sm_90a: wgmma, TMA), reached through
// bigaccel._C_cuda's ops (see hopper_kernels.h); this module only publishes their table.
#include <torch/extension.h>

#include "hopper_kernels.h"
#include "int8_gemm/hopper_w8a8.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "bigaccel Hopper-only (sm_90a) kernels, called through bigaccel._C_cuda";
  m.attr("table_version") = bigaccel::HopperKernels::kVersion;
  m.def("kernel_table", [] {
    static const bigaccel::HopperKernels table{bigaccel::HopperKernels::kVersion, &bigaccel::hopper_w8a8::supports,
                                               &bigaccel::hopper_w8a8::workspace_bytes, &bigaccel::hopper_w8a8::run};
    return reinterpret_cast<uintptr_t>(&table);
  });
}
