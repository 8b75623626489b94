// The 2:4 sparse GEMMs on CUDA tensor cores (cutlass_sparse24.cu), exposed as the
// internal ops sparse24_mm_cutlass and sparse24_int8_mm_cutlass. bigaccel/_sparse24_ops.py
// calls them for the shapes they take (cutlass_sparse24::supports); the Triton kernel
// serves the rest. Per call: the metadata is reordered into CUTLASS's interleaved
// order (N*K/8 bytes, an eighth of the bf16 values' bytes), the activations are padded
// to a whole number of tensor-core columns when M is not, and the kernel's transposed
// [N, M] result is transposed into the [M, N] output.
#if BIGACCEL_HAVE_CUTLASS
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "common/checks.h"
#include "sparse24_gemm/checks.h"
#include "sparse24_gemm/cutlass_sparse24.h"
#include "sparse24_gemm/sparse24_gemm.h"

namespace bigaccel {
namespace {

// M rounded up to the kernel's multiple of tokens.
int64_t padded_tokens(int64_t M, bool int8) {
  const int64_t multiple = cutlass_sparse24::token_multiple(int8);
  return (M + multiple - 1) / multiple * multiple;
}

// Rows [0, M) of `t` [M, ...] in a zero tensor of `rows` rows (t itself when M == rows).
at::Tensor pad_rows(const at::Tensor& t, int64_t rows, bool ones) {
  if (t.size(0) == rows) return t;
  auto sizes = t.sizes().vec();
  sizes[0] = rows;
  at::Tensor padded = ones ? at::ones(sizes, t.options()) : at::zeros(sizes, t.options());
  padded.narrow(0, 0, t.size(0)).copy_(t);
  return padded;
}

at::Tensor reordered_meta(const char* op, const at::Tensor& meta, int64_t N, int64_t K, bool int8,
                          cudaStream_t stream) {
  at::Tensor out = at::empty({N, K / 8}, meta.options());
  const cudaError_t err =
      cutlass_sparse24::reorder_meta(meta.data_ptr<uint8_t>(), out.data_ptr(), N, K, int8, stream);
  TORCH_CHECK(err == cudaSuccess, "bigaccel.", op, ": reordering the 2:4 metadata failed: ", cudaGetErrorString(err));
  return out;
}

void check_operands(const char* op, const at::Tensor& x, const at::Tensor& values, const at::Tensor& meta, int64_t k,
                    const std::optional<at::Tensor>& bias, bool int8) {
  check_device(x, c10::DeviceType::CUDA, op, "x");
  check_compressed(op, k, values, meta);
  TORCH_CHECK(x.dim() == 2 && x.size(1) == k, "bigaccel.", op, ": x must be [M, K=", k, "], got ", x.sizes());
  const int64_t N = values.size(0);
  TORCH_CHECK(cutlass_sparse24::supports(N, k, int8), "bigaccel.", op, ": the CUTLASS 2:4 kernel needs N a multiple of ",
              int8 ? 16 : 32, " and K a multiple of ", int8 ? 128 : 64, ", got N=", N, " K=", k,
              "; bigaccel.ops.sparse24", int8 ? "_int8" : "", "_linear takes any shape");
  if (bias) TORCH_CHECK(bias->numel() == N, "bigaccel.", op, ": bias must have N=", N, " elements");
  for (const at::Tensor* t : {&values, &meta})
    TORCH_CHECK(t->device() == x.device(), "bigaccel.", op, ": all tensors must be on ", x.device());
  if (bias) TORCH_CHECK(bias->device() == x.device(), "bigaccel.", op, ": all tensors must be on ", x.device());
}

// The kernel's d [N, Mp] as the [M, N] output.
at::Tensor transposed(const at::Tensor& d, int64_t M) { return d.t().narrow(0, 0, M).contiguous(); }

}  // namespace

at::Tensor sparse24_mm_cutlass(const at::Tensor& x, const at::Tensor& values, const at::Tensor& meta, int64_t k,
                               const std::optional<at::Tensor>& bias) {
  constexpr const char* op = "sparse24_mm_cutlass";
  check_operands(op, x, values, meta, k, bias, false);
  const DType dtype = float_dtype(x, op, "x");
  TORCH_CHECK(dtype != DType::F32 && values.scalar_type() == x.scalar_type(), "bigaccel.", op,
              ": the 2:4 tensor cores take bfloat16 or float16 x and values of the same dtype, got x ",
              x.scalar_type(), " and values ", values.scalar_type());
  const int64_t M = x.size(0), N = values.size(0);
  if (M == 0) return at::empty({0, N}, x.options());
  const c10::cuda::CUDAGuard guard(x.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const int64_t Mp = padded_tokens(M, false);
  const at::Tensor xp = pad_rows(x.contiguous(), Mp, false), vals = values.contiguous();
  const at::Tensor e = reordered_meta(op, meta.contiguous(), N, k, false, stream);
  const auto b32 = bias_f32(bias);
  at::Tensor d = at::empty({N, Mp}, x.options());
  const cudaError_t err = cutlass_sparse24::run_float(xp.data_ptr(), vals.data_ptr(), e.data_ptr(), ptr_or_null(b32),
                                                      d.data_ptr(), dtype, Mp, N, k, stream);
  TORCH_CHECK(err == cudaSuccess, "bigaccel.", op, ": the CUTLASS 2:4 GEMM failed for M=", M, " N=", N, " K=", k, ": ",
              cudaGetErrorString(err));
  return transposed(d, M);
}

at::Tensor sparse24_int8_mm_cutlass(const at::Tensor& a, const at::Tensor& a_scale, const at::Tensor& values,
                                    const at::Tensor& meta, int64_t k, const at::Tensor& w_scale,
                                    const std::optional<at::Tensor>& /*w_sum: CPU only*/,
                                    const std::optional<at::Tensor>& bias, at::ScalarType out_dtype) {
  constexpr const char* op = "sparse24_int8_mm_cutlass";
  check_operands(op, a, values, meta, k, bias, true);
  const DType out_kind = float_dtype(out_dtype, op, "out_dtype");
  TORCH_CHECK(a.scalar_type() == at::kChar && values.scalar_type() == at::kChar, "bigaccel.", op,
              ": a and values must be int8, got ", a.scalar_type(), " and ", values.scalar_type());
  const int64_t M = a.size(0), N = values.size(0);
  TORCH_CHECK(a_scale.scalar_type() == at::kFloat && a_scale.numel() == M && a_scale.device() == a.device(),
              "bigaccel.", op, ": a_scale must be float32 with M=", M, " elements on ", a.device());
  TORCH_CHECK(w_scale.scalar_type() == at::kFloat && w_scale.numel() == N && w_scale.device() == a.device(),
              "bigaccel.", op, ": w_scale must be float32 with N=", N, " elements on ", a.device());
  if (M == 0) return at::empty({0, N}, a.options().dtype(out_dtype));
  const c10::cuda::CUDAGuard guard(a.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const int64_t Mp = padded_tokens(M, true);
  const at::Tensor ap = pad_rows(a.contiguous(), Mp, false);
  const at::Tensor sp = pad_rows(a_scale.contiguous().view({-1}), Mp, true);
  const at::Tensor vals = values.contiguous(), ws = w_scale.contiguous().view({-1});
  const at::Tensor e = reordered_meta(op, meta.contiguous(), N, k, true, stream);
  const auto b32 = bias_f32(bias);
  at::Tensor d = at::empty({N, Mp}, a.options().dtype(out_dtype));
  const cudaError_t err = cutlass_sparse24::run_int8(ap.data_ptr<int8_t>(), sp.data_ptr<float>(),
                                                     vals.data_ptr<int8_t>(), e.data_ptr(), ws.data_ptr<float>(),
                                                     ptr_or_null(b32), d.data_ptr(), out_kind, Mp, N, k, stream);
  TORCH_CHECK(err == cudaSuccess, "bigaccel.", op, ": the CUTLASS 2:4 int8 GEMM failed for M=", M, " N=", N, " K=", k,
              ": ", cudaGetErrorString(err));
  return transposed(d, M);
}

std::vector<int64_t> sparse24_cutlass_meta_offsets(int64_t rows, int64_t cols, bool int8) {
  std::vector<int64_t> offsets(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) offsets[r * cols + c] = cutlass_sparse24::reordered_meta_offset(r, c, rows, int8);
  return offsets;
}

}  // namespace bigaccel

#endif  // BIGACCEL_HAVE_CUTLASS
