#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Optional.h>

#include <vector>

namespace bigaccel {

// x float [M, K] against the 2:4 weight compressed as in bigaccel.reference.compress_2_4
// (values float [N, K/2], meta uint8 [N, ceil(K/8)]), bias [N] -> [M, N] in x's dtype.
at::Tensor sparse24_mm_cpu(const at::Tensor& x, const at::Tensor& values, const at::Tensor& meta, int64_t k,
                           const std::optional<at::Tensor>& bias);

// W8A8 with the 2:4 weight in int8: a int8 [M, K] (per-token a_scale [M]) against values
// int8 [N, K/2] + meta (per-channel w_scale [N]); the epilogue of bigaccel.reference.int8_mm.
at::Tensor sparse24_int8_mm_cpu(const at::Tensor& a, const at::Tensor& a_scale, const at::Tensor& values,
                                const at::Tensor& meta, int64_t k, const at::Tensor& w_scale,
                                const std::optional<at::Tensor>& w_sum, const std::optional<at::Tensor>& bias,
                                at::ScalarType out_dtype);

// CUDA, CUTLASS sparse tensor cores (sparse24_cuda.cpp; built with nvidia-cutlass):
// the same contracts for the shapes cutlass_sparse24::supports takes.
at::Tensor sparse24_mm_cutlass(const at::Tensor& x, const at::Tensor& values, const at::Tensor& meta, int64_t k,
                               const std::optional<at::Tensor>& bias);
at::Tensor sparse24_int8_mm_cutlass(const at::Tensor& a, const at::Tensor& a_scale, const at::Tensor& values,
                                    const at::Tensor& meta, int64_t k, const at::Tensor& w_scale,
                                    const std::optional<at::Tensor>& w_sum, const std::optional<at::Tensor>& bias,
                                    at::ScalarType out_dtype);
// Where the reordering puts word (r, c) of a [rows, cols] metadata matrix, r-major (for tests).
std::vector<int64_t> sparse24_cutlass_meta_offsets(int64_t rows, int64_t cols, bool int8);

}  // namespace bigaccel
