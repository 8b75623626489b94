#include "common/cpu_isa.h"

#include <atomic>
#include <stdexcept>

namespace bigaccel::cpu {
namespace {

Isa detect() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  // libgcc's checks include the OS having enabled the AVX/AVX-512 register state.
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vnni"))
    return Isa::Avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c") &&
      __builtin_cpu_supports("bmi2"))
    return Isa::Avx2;
#endif
  return Isa::Portable;
}

std::atomic<int>& active() {
  static std::atomic<int> value{static_cast<int>(detected_isa())};
  return value;
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Avx512:
      return "avx512";
    case Isa::Avx2:
      return "avx2";
    default:
      return "portable";
  }
}

Isa isa_from_name(const std::string& name) {
  for (Isa isa : {Isa::Portable, Isa::Avx2, Isa::Avx512})
    if (name == isa_name(isa)) return isa;
  throw std::invalid_argument("unknown CPU ISA '" + name + "'; expected one of: avx512, avx2, portable");
}

Isa detected_isa() {
  static const Isa isa = detect();
  return isa;
}

bool has_avx512_vbmi() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  static const bool vbmi = __builtin_cpu_supports("avx512vbmi");
  return vbmi && active_isa() == Isa::Avx512;
#else
  return false;
#endif
}

bool has_avx512_bf16() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  static const bool bf16 = __builtin_cpu_supports("avx512bf16");
  return bf16 && active_isa() == Isa::Avx512;
#else
  return false;
#endif
}

Isa active_isa() { return static_cast<Isa>(active().load(std::memory_order_relaxed)); }

void set_active_isa(Isa isa) {
  if (static_cast<int>(isa) > static_cast<int>(detected_isa()))
    throw std::invalid_argument(std::string("this CPU does not support ") + isa_name(isa) +
                                " (best available: " + isa_name(detected_isa()) + ")");
  active().store(static_cast<int>(isa), std::memory_order_relaxed);
}

}  // namespace bigaccel::cpu
