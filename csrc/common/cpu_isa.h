// Which CPU instruction set the kernels run with: the best the processor and OS
// support, optionally lowered (for testing or to work around a machine) through
// set_active_isa, which bigaccel calls from BIGACCEL_CPU_ISA.
#pragma once

#include <string>

namespace bigaccel::cpu {

enum class Isa : int { Portable = 0, Avx2 = 1, Avx512 = 2 };

const char* isa_name(Isa isa);
Isa isa_from_name(const std::string& name);  // throws on an unknown name
Isa detected_isa();
Isa active_isa();
void set_active_isa(Isa isa);  // throws if the processor does not support it
bool has_avx512_bf16();         // the AVX-512 tier is active and the CPU has AVX512_BF16
bool has_avx512_vbmi();         // the AVX-512 tier is active and the CPU has AVX512_VBMI (byte permutes)
// TOP/s of the active tier's vector units for "fp32" (FMA), "bf16" (vdpbf16ps) or "int8" (the
// kernels' dot-product instructions), all threads, over about `seconds`; 0 where not measured
// (the portable tier, bf16 without AVX512_BF16). cpu_peak.cpp.
double peak_tops(const std::string& kind, double seconds);

// Picks one of three per-ISA implementations of a kernel for the active ISA.
template <typename Fn>
Fn select_isa(Fn portable, Fn avx2, Fn avx512) {
  switch (active_isa()) {
    case Isa::Avx512:
      return avx512;
    case Isa::Avx2:
      return avx2;
    default:
      return portable;
  }
}

}  // namespace bigaccel::cpu

// Declares a kernel entry point that has one definition per ISA namespace.
#define BIGACCEL_DECLARE_ISA_KERNEL(ret, name, ...) \
  namespace bigaccel::portable {                    \
  ret name(__VA_ARGS__);                            \
  }                                                 \
  namespace bigaccel::avx2 {                        \
  ret name(__VA_ARGS__);                            \
  }                                                 \
  namespace bigaccel::avx512 {                      \
  ret name(__VA_ARGS__);                            \
  }

#define BIGACCEL_SELECT_ISA_KERNEL(name) \
  ::bigaccel::cpu::select_isa(&::bigaccel::portable::name, &::bigaccel::avx2::name, &::bigaccel::avx512::name)
