"""2:4 semi-structured sparse linear layers: Sparse24Linear (float values) and
Sparse24Int8Linear (int8 values, per-token int8 activations: W8A8).

Both hold the weight compressed in the canonical format of bigaccel.reference
(values [N, K/2], meta uint8 [N, ceil(K/8)]); the state_dict is that format,
and every backend reads it as is.
"""
from __future__ import annotations

import warnings

import torch
from torch import nn

from .. import reference, sparsity
from .._registry import _check_layer_input
from .._sparse24_ops import _sparse24_int8_linear, _sparse24_linear
from .int8 import _DerivedState


def _weight_2_4(owner: str, linear: nn.Linear, reprune: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The 2:4 weight and the bias of `linear` (see Sparse24Linear.from_linear for the rules)."""
    if not isinstance(linear, nn.Linear):
        raise TypeError(f"{owner}.from_linear expects an nn.Linear, got {type(linear).__name__}")
    mask = sparsity.pruning_mask(linear)
    plain = sparsity.effective_linear(linear)
    weight = plain.weight.detach()
    if weight.shape[1] % 4:
        raise ValueError(f"2:4 sparsity needs in_features to be a multiple of 4, got {weight.shape[1]}")
    if mask is not None:
        fraction = sparsity.violating_fraction(mask)
        if fraction and not reprune:
            raise ValueError(f"the layer's pruning mask is not 2:4: {fraction:.1%} of its groups of 4 keep more "
                             f"than 2 weights; pass reprune=True to prune it to 2:4 by magnitude, or keep it dense")
    if not reference.is_2_4_sparse(weight):
        if mask is None:
            warnings.warn(f"{owner}.from_linear: the weight is not 2:4 sparse "
                          f"({sparsity.violating_fraction(weight):.1%} of groups violate); pruning it by "
                          f"magnitude, which changes the layer's output", stacklevel=3)
        weight = sparsity.prune_2_4(weight)
    return weight, plain.bias.detach() if plain.bias is not None else None


class Sparse24Linear(nn.Module):
    """Drop-in for nn.Linear whose weight is 2:4 sparse along in_features: each
    forward reads only the kept weights and their 2-bit positions, accumulates in
    fp32 and returns the input's dtype. Any leading batch dims; differentiable in
    the input and bias (the compressed weight is frozen)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None,
                 dtype: torch.dtype = torch.float32, bias_dtype: torch.dtype | None = None):
        super().__init__()
        if in_features % 4:
            raise ValueError(f"Sparse24Linear needs in_features to be a multiple of 4, got {in_features}")
        self.in_features, self.out_features = in_features, out_features
        self.register_buffer("values", torch.zeros(out_features, in_features // 2, dtype=dtype, device=device))
        # All-zero nibbles would mean i0 = i1 = 0; 0b0100 (positions 0 and 1) is a valid empty pattern.
        self.register_buffer("meta", torch.full((out_features, (in_features + 7) // 8), 0x44, dtype=torch.uint8,
                                                device=device))
        self.register_buffer("bias", torch.zeros(out_features, dtype=bias_dtype or dtype, device=device)
                             if bias else None)

    @classmethod
    def from_linear(cls, linear: nn.Linear, int8: bool = False, reprune: bool = False) -> "Sparse24Linear":
        """Compress an nn.Linear. A weight that is 2:4 already is kept exactly; a
        layer pruned with torch.nn.utils.prune keeps its mask exactly when the mask
        is 2:4, and otherwise raises with the fraction of violating groups unless
        ``reprune=True`` (then 2:4 by magnitude of the masked weight). A dense weight
        that is not 2:4 is pruned by magnitude, with a warning. ``int8=True`` returns
        a Sparse24Int8Linear instead (the same pruning, then int8 per channel)."""
        if int8:
            return Sparse24Int8Linear.from_linear(linear, reprune=reprune)
        weight, bias = _weight_2_4(cls.__name__, linear, reprune)
        values, meta = reference.compress_2_4(weight)
        layer = cls(weight.shape[1], weight.shape[0], bias=bias is not None, device=weight.device,
                    dtype=weight.dtype, bias_dtype=bias.dtype if bias is not None else None)
        layer.values.copy_(values)
        layer.meta.copy_(meta)
        if bias is not None:
            layer.bias.copy_(bias)
        return layer

    def dense_weight(self) -> torch.Tensor:
        """The weight as a dense [N, K] tensor (zeros where pruned)."""
        return reference.decompress_2_4(self.values, self.meta, self.in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_layer_input(x, "Sparse24Linear", self.in_features, self.values)
        return _sparse24_linear(x, self.values, self.meta, self.in_features, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
                f"sparsity=2:4, dtype={self.values.dtype}")


class Sparse24Int8Linear(_DerivedState):
    """Drop-in for nn.Linear with a 2:4 sparse int8 weight and int8 activations (W8A8,
    dynamic): the weight is quantized per output channel (symmetric, as Int8Linear)
    after pruning, so pruned weights stay exactly zero, and held compressed (int8 values
    [N, K/2] and the 2-bit positions). Each forward quantizes the input per token and
    returns its dtype (fp32, bf16 or fp16). Any leading batch dims; differentiable in
    the input and bias."""

    _fp32_buffers = ("weight_scale",)

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None,
                 bias_dtype: torch.dtype = torch.float32):
        super().__init__()
        if in_features % 4:
            raise ValueError(f"Sparse24Int8Linear needs in_features to be a multiple of 4, got {in_features}")
        self.in_features, self.out_features = in_features, out_features
        self.register_buffer("values", torch.zeros(out_features, in_features // 2, dtype=torch.int8, device=device))
        self.register_buffer("meta", torch.full((out_features, (in_features + 7) // 8), 0x44, dtype=torch.uint8,
                                                device=device))
        self.register_buffer("weight_scale", torch.ones(out_features, dtype=torch.float32, device=device))
        self.register_buffer("bias", torch.zeros(out_features, dtype=bias_dtype, device=device) if bias else None)
        # Row sums of the values: the CPU kernel's u8 x s8 correction. Derived, so not saved.
        self.register_buffer("weight_sum", torch.zeros(out_features, dtype=torch.int32, device=device),
                             persistent=False)

    @classmethod
    def from_linear(cls, linear: nn.Linear, reprune: bool = False) -> "Sparse24Int8Linear":
        """Prune (or keep) to 2:4 as Sparse24Linear.from_linear does, then quantize the
        kept weights to int8 per output channel (round to nearest, symmetric)."""
        weight, bias = _weight_2_4(cls.__name__, linear, reprune)
        q, scale = reference.quantize_per_channel_int8(weight)
        values, meta = reference.compress_2_4(q)
        layer = cls(weight.shape[1], weight.shape[0], bias=bias is not None, device=weight.device,
                    bias_dtype=bias.dtype if bias is not None else torch.float32)
        layer.values.copy_(values)
        layer.meta.copy_(meta)
        layer.weight_scale.copy_(scale)
        if bias is not None:
            layer.bias.copy_(bias)
        layer._weight_changed()
        return layer

    def _weight_changed(self) -> None:
        self.weight_sum.copy_(self.values.sum(1, dtype=torch.int32))

    def dense_weight(self) -> torch.Tensor:
        """The dequantized weight as a dense fp32 [N, K] tensor (zeros where pruned)."""
        return reference.decompress_2_4(self.values, self.meta, self.in_features).float() * self.weight_scale[:, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_layer_input(x, "Sparse24Int8Linear", self.in_features, self.values)
        return _sparse24_int8_linear(x, self.values, self.meta, self.in_features, self.weight_scale, self.weight_sum,
                                     self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
                f"sparsity=2:4, weight=int8 per channel, activations=int8 per token")
