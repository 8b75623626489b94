"""int4 group-wise weight-only linear (W4A16): bigaccel.nn.Int4Linear.

The weight is held in the canonical format of bigaccel.reference.quantize_int4
(packed uint8 [N, K/2], fp32 scales [N, K/G], optional uint8 zero points
[N, K/G]), which every backend reads as is: the state_dict is the saved format
and memory holds one copy. GPTQ and AWQ checkpoints are converted into it
(gptq_awq.py).
"""
from __future__ import annotations

import torch
from torch import nn

from .. import reference
from .._linear_ops import _epilogue_name, _int4_linear
from .._registry import _check_layer_input
from .int8 import _Fp32Scales, epilogue_activation_name


class Int4Linear(_Fp32Scales):
    """Drop-in for nn.Linear with 4-bit group-wise weights and float activations (W4A16).

    ``group_size`` consecutive k of a row share one scale (and, with ``zero_point``,
    one zero point). The forward dequantizes inside the kernel with fp32 accumulation
    and returns the input's dtype (fp32, bf16 or fp16), any leading batch dims. With
    ``activation`` ("silu", "gelu", "gelu_tanh") it computes act(linear(x)), the activation
    applied in the GEMM's epilogue.
    """

    _fp32_buffers = ("weight_scales",)

    def __init__(self, in_features: int, out_features: int, bias: bool = True, group_size: int = 128,
                 zero_point: bool = True, device=None, bias_dtype: torch.dtype = torch.float32,
                 act_order: bool = False, activation: str | None = None):
        super().__init__()
        self.activation = epilogue_activation_name("Int4Linear", activation)
        if group_size not in reference.INT4_GROUP_SIZES:
            raise ValueError(f"Int4Linear: group_size must be one of {reference.INT4_GROUP_SIZES}, got {group_size}")
        if in_features % group_size:
            raise ValueError(f"Int4Linear: in_features={in_features} is not a multiple of group_size={group_size}; "
                             "pick a group size that divides it or leave this layer unquantized")
        self.in_features, self.out_features = in_features, out_features
        self.group_size, self.zero_point = group_size, zero_point
        groups = in_features // group_size
        self.register_buffer("weight_packed",
                             torch.zeros(out_features, in_features // 2, dtype=torch.uint8, device=device))
        self.register_buffer("weight_scales", torch.ones(out_features, groups, dtype=torch.float32, device=device))
        self.register_buffer("weight_zeros", torch.full((out_features, groups), 8, dtype=torch.uint8, device=device)
                             if zero_point else None)
        self.register_buffer("bias", torch.zeros(out_features, dtype=bias_dtype, device=device) if bias else None)
        # GPTQ act-order imports: the input's k are permuted so that groups are consecutive.
        self.register_buffer("input_perm", torch.arange(in_features, device=device) if act_order else None)

    @classmethod
    def from_linear(cls, linear: nn.Linear, group_size: int = 128, zero_point: bool = True,
                    activation: str | None = None) -> "Int4Linear":
        """Quantize an nn.Linear's weight group-wise, round to nearest (reference.quantize_int4);
        ``activation`` as in the constructor."""
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"Int4Linear.from_linear expects an nn.Linear, got {type(linear).__name__}")
        weight = linear.weight.detach()
        if group_size not in reference.INT4_GROUP_SIZES:
            raise ValueError(f"Int4Linear: group_size must be one of {reference.INT4_GROUP_SIZES}, got {group_size}")
        if weight.shape[1] % group_size:
            raise ValueError(f"Int4Linear.from_linear: in_features={weight.shape[1]} is not a multiple of "
                             f"group_size={group_size}; pick a group size that divides it or leave this layer unquantized")
        packed, scales, zeros = reference.quantize_int4(weight, group_size, zero_point)
        bias = linear.bias.detach() if linear.bias is not None else None
        return cls.from_quantized(packed, scales, zeros, group_size, bias, activation=activation)

    @classmethod
    def from_quantized(cls, packed: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor | None,
                       group_size: int, bias: torch.Tensor | None = None,
                       input_perm: torch.Tensor | None = None, activation: str | None = None) -> "Int4Linear":
        """A layer holding tensors already in the canonical format (copied); ``input_perm``
        (int64 [K]) makes the layer compute ``int4 GEMM(x[..., input_perm])``."""
        n, k = packed.shape[0], packed.shape[1] * 2
        layer = cls(k, n, bias=bias is not None, group_size=group_size, zero_point=zeros is not None,
                    device=packed.device, bias_dtype=bias.dtype if bias is not None else torch.float32,
                    act_order=input_perm is not None, activation=activation)
        if input_perm is not None:
            layer.input_perm.copy_(input_perm)
        layer.weight_packed.copy_(packed)
        layer.weight_scales.copy_(scales.reshape(layer.weight_scales.shape))
        if zeros is not None:
            layer.weight_zeros.copy_(zeros.reshape(layer.weight_zeros.shape))
        if bias is not None:
            layer.bias.copy_(bias.reshape(n))
        return layer

    @classmethod
    def from_gptq(cls, qweight, qzeros, scales, g_idx=None, bias=None, group_size: int = 128,
                  zero_offset: int = 1) -> "Int4Linear":
        """From a GPTQ checkpoint's tensors (4-bit; zero_offset=1 for the "gptq" v1 format that
        stores zero points minus one, 0 for "gptq_v2"); act-order g_idx is supported by permuting
        K (see bigaccel.nn.gptq_awq)."""
        from .gptq_awq import gptq_to_canonical

        packed, s, z, perm = gptq_to_canonical(qweight, qzeros, scales, g_idx, group_size, zero_offset)
        return cls.from_quantized(packed, s, z, group_size, bias, input_perm=perm)

    @classmethod
    def from_awq(cls, qweight, qzeros, scales, bias=None, group_size: int = 128) -> "Int4Linear":
        """From an AWQ (GEMM) checkpoint's tensors: see bigaccel.nn.gptq_awq.awq_to_canonical."""
        from .gptq_awq import awq_to_canonical

        packed, s, z = awq_to_canonical(qweight, qzeros, scales, group_size)
        return cls.from_quantized(packed, s, z, group_size, bias)

    def dequantized_weight(self) -> torch.Tensor:
        """The fp32 weight [N, K] the layer multiplies the (unpermuted) input by."""
        w = reference.dequantize_int4(self.weight_packed, self.weight_scales, self.weight_zeros, self.group_size)
        if self.input_perm is not None:
            w = torch.empty_like(w).index_copy_(1, self.input_perm, w)
        return w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_perm is not None:
            x = x.index_select(-1, self.input_perm)
        _check_layer_input(x, "Int4Linear", self.in_features, self.weight_packed)
        return _int4_linear(x, self.weight_packed, self.weight_scales, self.weight_zeros, self.group_size, self.bias,
                            _epilogue_name("int4_linear", self.activation))

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
                f"group_size={self.group_size}, zero_point={self.zero_point}"
                + (", act_order=True" if self.input_perm is not None else "")
                + (f", activation={self.activation!r}" if self.activation else ""))
