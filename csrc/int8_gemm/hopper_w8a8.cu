// W8A8 int8 tensor-core GEMM for Hopper on CUTLASS 3.x: a TMA-fed, warp-specialized
// wgmma mainloop from the sm90 collective builder, with the whole epilogue fused
// through CUTLASS 3's Sm90 epilogue visitor tree:
//
//   out = convert<Out>( fma(float(acc), a_scale[m] * w_scale[n], bias[n]) )
//
// the same numerics as cutlass_w8a8.cu: the scale product in fp32 first, then one
// fma (the reference's multiply and add, contracted), then the one rounding to the
// output dtype (bigaccel.reference.int8_mm). No C operand: the output is only
// written, by TMA. This file is compiled for sm_90a alone (wgmma and setmaxnreg do
// not exist elsewhere), so it carries no architecture guards. This file checks and
// dispatches; the kernels are in hopper_w8a8_gemm.cuh, one file per output dtype.
#include <cstdint>

#include "int8_gemm/hopper_w8a8.h"
#include "int8_gemm/hopper_w8a8_kernels.h"

namespace bigaccel::hopper_w8a8 {

bool supports(int64_t M, int64_t N, int64_t K, DType out_dtype) {
  const int64_t limit = int64_t(1) << 31;
  const bool dtype_ok = out_dtype == DType::F32 || out_dtype == DType::BF16 || out_dtype == DType::F16;
  return dtype_ok && M >= 1 && N >= 1 && K >= 1 && K % 16 == 0 && N % 16 == 0 && M < limit && N < limit &&
         K < limit;
}

size_t workspace_bytes(int64_t M, int64_t N, int64_t K, DType out_dtype) {
  if (!supports(M, N, K, out_dtype)) return 0;
  switch (out_dtype) {
    case DType::F32:
      return workspace_as<DType::F32>(M, N, K);
    case DType::BF16:
      return workspace_as<DType::BF16>(M, N, K);
    case DType::F16:
      return workspace_as<DType::F16>(M, N, K);
  }
  return 0;
}

cudaError_t run(const int8_t* a, const float* a_scale, const int8_t* w, const float* w_scale, const float* bias,
                void* out, DType out_dtype, int64_t M, int64_t N, int64_t K, void* workspace, size_t workspace_bytes,
                cudaStream_t stream) {
  if (!supports(M, N, K, out_dtype)) return cudaErrorNotSupported;
  // The TMA descriptors need 16-byte aligned base addresses, which CUTLASS's
  // can_implement does not check (it checks the strides only): refuse them here
  // rather than launch with a descriptor the driver rejected.
  const auto addr = [](const void* p) { return reinterpret_cast<uintptr_t>(p); };
  if ((addr(a) | addr(w) | addr(out)) % 16 != 0) return cudaErrorInvalidValue;
  switch (out_dtype) {
    case DType::F32:
      return run_as<DType::F32>(a, a_scale, w, w_scale, bias, out, M, N, K, workspace, workspace_bytes, stream);
    case DType::BF16:
      return run_as<DType::BF16>(a, a_scale, w, w_scale, bias, out, M, N, K, workspace, workspace_bytes, stream);
    case DType::F16:
      return run_as<DType::F16>(a, a_scale, w, w_scale, bias, out, M, N, K, workspace, workspace_bytes, stream);
  }
  return cudaErrorNotSupported;
}

}  // namespace bigaccel::hopper_w8a8
