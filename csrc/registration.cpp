// CPU kernels of the bigaccel ops (declared with schemas and fakes in
// bigaccel/ops.py) and the _C Python module with build and ISA information.
#include <torch/extension.h>
#include <torch/library.h>
#include <torch/version.h>

#include "activations/activations.h"
#include "common/cpu_isa.h"
#include "int4_gemm/int4_gemm.h"
#include "int8_gemm/int8_gemm.h"
#include "quantize_per_token/quantize_per_token.h"
#include "sparse24_gemm/sparse24_gemm.h"

TORCH_LIBRARY_IMPL(bigaccel, CPU, m) {
  m.impl("quantize_per_token", &bigaccel::quantize_per_token_cpu);
  m.impl("int8_mm", &bigaccel::int8_mm_cpu);
  m.impl("int8_weight_only_mm", &bigaccel::int8_weight_only_mm_cpu);
  m.impl("int4_mm", &bigaccel::int4_mm_cpu);
}

TORCH_LIBRARY_IMPL(bigaccel, CPU, m) { BIGACCEL_REGISTER_ACTIVATIONS(m, CPU); }

TORCH_LIBRARY_IMPL(bigaccel, CPU, m) {
  m.impl("sparse24_mm", &bigaccel::sparse24_mm_cpu);
  m.impl("sparse24_int8_mm", &bigaccel::sparse24_int8_mm_cpu);
}

namespace cpu = bigaccel::cpu;

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "bigaccel CPU kernels";
  m.attr("torch_version_compiled") =
      std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
      std::to_string(TORCH_VERSION_PATCH);
  m.def("detected_isa", [] { return std::string(cpu::isa_name(cpu::detected_isa())); },
        "Best instruction set the processor and OS support, among those compiled.");
  m.def("active_isa", [] { return std::string(cpu::isa_name(cpu::active_isa())); },
        "Instruction set the CPU kernels run with now.");
  m.def("set_active_isa", [](const std::string& name) { cpu::set_active_isa(cpu::isa_from_name(name)); },
        "Run the CPU kernels with this instruction set (avx512, avx2, portable); it must be supported.");
  m.def("compiled_isas", [] { return std::vector<std::string>{"portable", "avx2", "avx512"}; });
  m.def("has_avx512_bf16", [] { return cpu::has_avx512_bf16(); },
        "The AVX-512 kernels are active and the CPU has AVX512_BF16 (vdpbf16ps): the W8A16 bf16 tiles, "
        "and torch's bf16 GEMM for the large-M paths of the weight-only and 2:4 GEMMs with bf16 x.");
  m.def("peak_tops", &cpu::peak_tops, pybind11::arg("kind"), pybind11::arg("seconds") = 0.5,
        "Peak TOP/s of the active instruction set's vector units on all threads: 'fp32' (FMA), 'bf16' "
        "(vdpbf16ps) or 'int8' (vpdpbusd; AVX2: vpmaddubsw + vpmaddwd + vpaddd); 0 where not measured.");
}
