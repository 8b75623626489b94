// The Hopper W8A8 GEMM's kernels with f32 output (see hopper_w8a8_gemm.cuh for why one file per dtype).
#include "int8_gemm/hopper_w8a8_gemm.cuh"

namespace bigaccel::hopper_w8a8 {
template cudaError_t run_as<DType::F32>(const int8_t*, const float*, const int8_t*, const float*, const float*, void*,
                                        int64_t, int64_t, int64_t, void*, size_t, cudaStream_t);
template size_t workspace_as<DType::F32>(int64_t, int64_t, int64_t);
}  // namespace bigaccel::hopper_w8a8
