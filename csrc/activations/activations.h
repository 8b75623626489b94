// The fused activation ops (schemas in bigaccel/ops.py), written once for both
// devices: checks, output allocation and shape logic here; the device part is
// run_cpu (cpu.cpp, per-ISA kernels) or run_cuda (cuda.cu). Registration
// instantiates these templates with the device (registration*.cpp).
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

#include <optional>
#include <string>

#include "activations/kernel_args.h"
#include "common/checks.h"
#include "common/cpu_alloc.h"

namespace bigaccel::activations {

// Runs the kernel over `total` = rows * d output (or gradient) elements.
void run_cpu(const ActArgs& args, bool backward, int64_t total);
void run_cuda(const ActArgs& args, bool backward, int64_t total, int device_index);

inline Act from_approximate(const std::string& approximate, const char* op) {
  if (approximate == "none") return Act::GeluErf;
  if (approximate == "tanh") return Act::GeluTanh;
  TORCH_CHECK(false, "bigaccel.", op, ": approximate must be 'none' or 'tanh', got '", approximate, "'");
}

inline Act from_name(const std::string& activation, const char* op) {
  if (activation == "silu") return Act::Silu;
  if (activation == "gelu") return Act::GeluErf;
  if (activation == "gelu_tanh") return Act::GeluTanh;
  TORCH_CHECK(false, "bigaccel.", op, ": activation must be 'silu', 'gelu' or 'gelu_tanh', got '", activation, "'");
}

template <c10::DeviceType kDevice>
void run(const ActArgs& args, bool backward, int64_t total, const at::Tensor& on) {
  if (total == 0) return;
  if constexpr (kDevice == c10::DeviceType::CPU) {
    run_cpu(args, backward, total);
  } else {
    run_cuda(args, backward, total, on.get_device());
  }
}

// Checks x (and bias) and returns x contiguous; d_out is the output's last dimension.
template <c10::DeviceType kDevice>
at::Tensor checked_input(const char* op, const at::Tensor& x, bool gated, int64_t* d_out, ActArgs* args) {
  check_device(x, kDevice, op, "x");
  args->dtype = float_dtype(x, op, "x");
  check_min_dim(x, 1, op, "x");
  const int64_t k = x.size(-1);
  TORCH_CHECK(k > 0, "bigaccel.", op, ": the last dimension of x must be non-empty, got shape ", x.sizes());
  TORCH_CHECK(!gated || k % 2 == 0, "bigaccel.", op, ": x must be [..., 2*d] = [gate | up], but its last dimension ",
              k, " is odd");
  *d_out = gated ? k / 2 : k;
  args->gated = gated;
  args->d = *d_out;
  return x.contiguous();
}

inline void check_bias(const char* op, const at::Tensor& x, const at::Tensor& bias) {
  TORCH_CHECK(bias.device() == x.device(), "bigaccel.", op, ": bias is on ", bias.device(), " but x is on ", x.device());
  TORCH_CHECK(bias.scalar_type() == x.scalar_type(), "bigaccel.", op, ": bias must have x's dtype ", x.scalar_type(),
              ", got ", bias.scalar_type());
  TORCH_CHECK(bias.dim() == 1 && bias.size(0) == x.size(-1), "bigaccel.", op, ": bias must be [", x.size(-1),
              "] (x's last dimension), got shape ", bias.sizes());
}

inline std::vector<int64_t> out_shape(const at::Tensor& x, int64_t d) {
  auto shape = x.sizes().vec();
  shape.back() = d;
  return shape;
}

inline void check_out(const char* op, const at::Tensor& x, const at::Tensor& out, int64_t d) {
  TORCH_CHECK(out.device() == x.device() && out.scalar_type() == x.scalar_type(), "bigaccel.", op,
              ": out must be a ", x.scalar_type(), " tensor on ", x.device(), ", got ", out.scalar_type(), " on ",
              out.device());
  TORCH_CHECK(out.sizes() == at::IntArrayRef(out_shape(x, d)), "bigaccel.", op, ": out must have shape ",
              at::IntArrayRef(out_shape(x, d)), ", got ", out.sizes());
  TORCH_CHECK(out.is_contiguous(), "bigaccel.", op, ": out must be contiguous");
}

// forward into `out` (allocated when undefined); bias only for the elementwise ops.
template <c10::DeviceType kDevice>
at::Tensor forward(const char* op, const at::Tensor& x_in, Act act, bool gated, const at::Tensor* bias,
                   const at::Tensor* out_in) {
  ActArgs args;
  int64_t d = 0;
  const at::Tensor x = checked_input<kDevice>(op, x_in, gated, &d, &args);
  at::Tensor b;
  if (bias) {
    check_bias(op, x, *bias);
    b = bias->contiguous();
    args.bias = b.data_ptr();
  }
  at::Tensor out;
  if (out_in) {
    check_out(op, x, *out_in, d);
    out = *out_in;
  } else {
    out = empty_output(out_shape(x, d), x.options());
  }
  args.act = act;
  args.x = x.data_ptr();
  args.out = out.data_ptr();
  run<kDevice>(args, false, x.numel() / x.size(-1) * d, x);
  return out;
}

template <c10::DeviceType kDevice>
at::Tensor backward(const char* op, const at::Tensor& grad_in, const at::Tensor& x_in, Act act, bool gated,
                    const at::Tensor* bias) {
  ActArgs args;
  int64_t d = 0;
  const at::Tensor x = checked_input<kDevice>(op, x_in, gated, &d, &args);
  check_device(grad_in, kDevice, op, "grad");
  TORCH_CHECK(grad_in.scalar_type() == x.scalar_type() && grad_in.sizes() == at::IntArrayRef(out_shape(x, d)),
              "bigaccel.", op, ": grad must be ", x.scalar_type(), " of shape ", at::IntArrayRef(out_shape(x, d)),
              ", got ", grad_in.scalar_type(), " ", grad_in.sizes());
  const at::Tensor grad = grad_in.contiguous();
  at::Tensor b;
  if (bias) {
    check_bias(op, x, *bias);
    b = bias->contiguous();
    args.bias = b.data_ptr();
  }
  at::Tensor grad_x = empty_output(x.sizes(), x.options());
  args.act = act;
  args.x = x.data_ptr();
  args.grad = grad.data_ptr();
  args.out = grad_x.data_ptr();
  run<kDevice>(args, true, x.numel() / x.size(-1) * d, x);
  return grad_x;
}

// ---- the registered op signatures ----

template <c10::DeviceType D>
at::Tensor silu_and_mul(const at::Tensor& x) { return forward<D>("silu_and_mul", x, Act::Silu, true, nullptr, nullptr); }
template <c10::DeviceType D>
void silu_and_mul_out(const at::Tensor& x, const at::Tensor& out) {
  forward<D>("silu_and_mul", x, Act::Silu, true, nullptr, &out);
}
template <c10::DeviceType D>
at::Tensor silu_and_mul_backward(const at::Tensor& grad, const at::Tensor& x) {
  return backward<D>("silu_and_mul_backward", grad, x, Act::Silu, true, nullptr);
}

template <c10::DeviceType D>
at::Tensor gelu_and_mul(const at::Tensor& x, const std::string& approximate) {
  return forward<D>("gelu_and_mul", x, from_approximate(approximate, "gelu_and_mul"), true, nullptr, nullptr);
}
template <c10::DeviceType D>
void gelu_and_mul_out(const at::Tensor& x, const std::string& approximate, const at::Tensor& out) {
  forward<D>("gelu_and_mul", x, from_approximate(approximate, "gelu_and_mul"), true, nullptr, &out);
}
template <c10::DeviceType D>
at::Tensor gelu_and_mul_backward(const at::Tensor& grad, const at::Tensor& x, const std::string& approximate) {
  return backward<D>("gelu_and_mul_backward", grad, x, from_approximate(approximate, "gelu_and_mul_backward"), true,
                     nullptr);
}

template <c10::DeviceType D>
at::Tensor gelu(const at::Tensor& x, const std::string& approximate) {
  return forward<D>("gelu", x, from_approximate(approximate, "gelu"), false, nullptr, nullptr);
}
template <c10::DeviceType D>
void gelu_out(const at::Tensor& x, const std::string& approximate, const at::Tensor& out) {
  forward<D>("gelu", x, from_approximate(approximate, "gelu"), false, nullptr, &out);
}
template <c10::DeviceType D>
at::Tensor gelu_backward(const at::Tensor& grad, const at::Tensor& x, const std::string& approximate) {
  return backward<D>("gelu_backward", grad, x, from_approximate(approximate, "gelu_backward"), false, nullptr);
}

template <c10::DeviceType D>
at::Tensor bias_act(const at::Tensor& x, const at::Tensor& bias, const std::string& activation) {
  return forward<D>("bias_act", x, from_name(activation, "bias_act"), false, &bias, nullptr);
}
template <c10::DeviceType D>
void bias_act_out(const at::Tensor& x, const at::Tensor& bias, const std::string& activation, const at::Tensor& out) {
  forward<D>("bias_act", x, from_name(activation, "bias_act"), false, &bias, &out);
}
template <c10::DeviceType D>
at::Tensor bias_act_backward(const at::Tensor& grad, const at::Tensor& x, const at::Tensor& bias,
                             const std::string& activation) {
  return backward<D>("bias_act_backward", grad, x, from_name(activation, "bias_act_backward"), false, &bias);
}

}  // namespace bigaccel::activations

// Registers every activation op for one device inside a TORCH_LIBRARY_IMPL block.
#define BIGACCEL_REGISTER_ACTIVATIONS(m, DEVICE)                                                         \
  do {                                                                                                   \
    namespace act = ::bigaccel::activations;                                                             \
    constexpr auto kDev = c10::DeviceType::DEVICE;                                                       \
    m.impl("silu_and_mul", &act::silu_and_mul<kDev>);                                                    \
    m.impl("silu_and_mul_out", &act::silu_and_mul_out<kDev>);                                            \
    m.impl("silu_and_mul_backward", &act::silu_and_mul_backward<kDev>);                                  \
    m.impl("gelu_and_mul", &act::gelu_and_mul<kDev>);                                                    \
    m.impl("gelu_and_mul_out", &act::gelu_and_mul_out<kDev>);                                            \
    m.impl("gelu_and_mul_backward", &act::gelu_and_mul_backward<kDev>);                                  \
    m.impl("gelu", &act::gelu<kDev>);                                                                    \
    m.impl("gelu_out", &act::gelu_out<kDev>);                                                            \
    m.impl("gelu_backward", &act::gelu_backward<kDev>);                                                  \
    m.impl("bias_act", &act::bias_act<kDev>);                                                            \
    m.impl("bias_act_out", &act::bias_act_out<kDev>);                                                    \
    m.impl("bias_act_backward", &act::bias_act_backward<kDev>);                                          \
  } while (0)
