"""int8 linear layers: W8A8 dynamic (Int8Linear) and W8A16 weight-only (Int8WeightOnlyLinear).

Both hold the weight in the canonical format of bigaccel.reference (int8 [N, K],
symmetric, one fp32 scale per output channel), which every backend reads as is,
so the state_dict is the saved format and memory holds one copy.
"""
from __future__ import annotations

import torch
from torch import nn

from .. import reference
from .._linear_ops import _epilogue_name, _int8_linear
from .._registry import _check_layer_input


def epilogue_activation_name(owner: str, activation: str | None) -> str | None:
    """Checks a layer's ``activation`` option (None, or one the GEMM applies in its epilogue)."""
    _epilogue_name(f"nn.{owner}", activation)
    return activation


class _Fp32Scales(nn.Module):
    """A quantized layer whose scale buffers stay float32 through model.half(),
    .to(torch.bfloat16) and the like: the kernels take fp32 scales, and rounding a scale
    to 8 or 11 bits would change every weight of its row or group. Device moves apply."""

    _fp32_buffers: tuple[str, ...] = ()

    def _apply(self, fn, recurse=True):
        kept = {name: self._buffers[name] for name in self._fp32_buffers if self._buffers.get(name) is not None}
        super()._apply(fn, recurse)
        for name, old in kept.items():
            new = self._buffers[name]
            if new is not None and new.dtype != old.dtype:
                self._buffers[name] = old.to(new.device)
        return self


class _DerivedState(_Fp32Scales):
    """A layer with buffers derived from its saved ones (not saved themselves): they are
    recomputed by _weight_changed after construction and after load_state_dict."""

    def _weight_changed(self) -> None:
        """Recompute state derived from the weight (after construction or load_state_dict)."""

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._weight_changed()


class _Int8WeightLinear(_DerivedState):
    """Buffers and constructors shared by the int8-weight layers."""

    _fp32_buffers = ("weight_scale",)

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None,
                 bias_dtype: torch.dtype = torch.float32, activation: str | None = None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.activation = epilogue_activation_name(type(self).__name__, activation)
        self.register_buffer("weight", torch.zeros(out_features, in_features, dtype=torch.int8, device=device))
        self.register_buffer("weight_scale", torch.ones(out_features, dtype=torch.float32, device=device))
        self.register_buffer("bias", torch.zeros(out_features, dtype=bias_dtype, device=device) if bias else None)

    @classmethod
    def from_linear(cls, linear: nn.Linear, activation: str | None = None):
        """Quantize an nn.Linear's weight per output channel (round to nearest, symmetric).
        ``activation`` ("silu", "gelu", "gelu_tanh") makes the layer compute act(linear(x))
        with the activation applied in the GEMM's epilogue."""
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"{cls.__name__}.from_linear expects an nn.Linear, got {type(linear).__name__}")
        weight = linear.weight.detach()
        q, scale = reference.quantize_per_channel_int8(weight)
        bias = linear.bias.detach() if linear.bias is not None else None
        return cls._from_int8(q, scale, bias, activation)

    @classmethod
    def from_dynamic_quantized(cls, module: nn.Module, activation: str | None = None):
        """Reuse the int8 weights of a torch.ao.nn.quantized.dynamic.Linear (what
        torch.ao.quantization.quantize_dynamic produces) without quantizing again."""
        from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

        if not isinstance(module, DynamicLinear):
            raise TypeError(f"{cls.__name__}.from_dynamic_quantized expects a torch.ao.nn.quantized.dynamic.Linear, "
                            f"got {type(module).__name__}")
        w = module.weight()
        if w.dtype != torch.qint8:
            raise ValueError(f"only qint8 weights can be reused, got {w.dtype}")
        if w.qscheme() in (torch.per_tensor_affine, torch.per_tensor_symmetric):
            scale, zero = torch.full((w.shape[0],), w.q_scale()), torch.full((w.shape[0],), w.q_zero_point())
        else:
            scale, zero = w.q_per_channel_scales(), w.q_per_channel_zero_points()
            if w.q_per_channel_axis() != 0:
                raise ValueError("per-channel weights must be quantized along the output dimension (axis 0)")
        if bool((zero != 0).any()):
            raise ValueError("the weight has non-zero zero points (asymmetric); bigaccel's int8 weights are symmetric: "
                             "use from_linear on the float layer instead")
        bias = module.bias()
        return cls._from_int8(w.int_repr(), scale.float(), bias.detach() if bias is not None else None, activation)

    @classmethod
    def _from_int8(cls, q: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None, activation: str | None):
        n, k = q.shape
        layer = cls(k, n, bias=bias is not None, device=q.device,
                    bias_dtype=bias.dtype if bias is not None else torch.float32, activation=activation)
        layer.weight.copy_(q)
        layer.weight_scale.copy_(scale.reshape(n))
        if bias is not None:
            layer.bias.copy_(bias)
        layer._weight_changed()
        return layer

    def dequantized_weight(self) -> torch.Tensor:
        return reference.dequantize_int8_rowwise(self.weight, self.weight_scale)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
                + (f", activation={self.activation!r}" if self.activation else ""))


class Int8Linear(_Int8WeightLinear):
    """Drop-in for nn.Linear with int8 weights and int8 activations (W8A8, dynamic).

    Each forward quantizes the input per token, multiplies in int8 with int32
    accumulation, and applies both scales and the bias in the kernel's epilogue,
    returning the input's dtype (fp32, bf16 or fp16). Any leading batch dims. With
    ``activation`` ("silu", "gelu", "gelu_tanh") it computes act(linear(x)), the
    activation applied in the same epilogue.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None,
                 bias_dtype: torch.dtype = torch.float32, activation: str | None = None):
        super().__init__(in_features, out_features, bias, device, bias_dtype, activation)
        # sum_k w[n, k]: the CPU kernel's u8 x s8 correction. Derived, so not saved.
        self.register_buffer("weight_sum", torch.zeros(out_features, dtype=torch.int32, device=device), persistent=False)

    def _weight_changed(self) -> None:
        self.weight_sum.copy_(self.weight.sum(1, dtype=torch.int32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_layer_input(x, "Int8Linear", self.in_features, self.weight)
        return _int8_linear(x, self.weight, self.weight_scale, self.weight_sum, self.bias, False,
                            _epilogue_name("int8_linear", self.activation))


class Int8WeightOnlyLinear(_Int8WeightLinear):
    """Drop-in for nn.Linear with int8 weights and float activations (W8A16):
    the weight is dequantized inside the kernel; output in the input's dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_layer_input(x, "Int8WeightOnlyLinear", self.in_features, self.weight)
        return _int8_linear(x, self.weight, self.weight_scale, None, self.bias, True,
                            _epilogue_name("int8_weight_only_linear", self.activation))
