"""2:4 semi-structured sparse linear layer (Sparse24Linear).

Holds the weight compressed in the canonical format of bigaccel.reference
(values [N, K/2] in the weight's dtype, meta uint8 [N, ceil(K/8)]); the
state_dict is that format, and every backend reads it as is.
"""
from __future__ import annotations

import warnings

import torch
from torch import nn

from .. import ops, reference, sparsity


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
        that is not 2:4 is pruned by magnitude, with a warning."""
        if int8:
            raise NotImplementedError("the 2:4 + int8 layer (Sparse24Int8Linear) is not in this version of bigaccel")
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"{cls.__name__}.from_linear expects an nn.Linear, got {type(linear).__name__}")
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
                warnings.warn(f"{cls.__name__}.from_linear: the weight is not 2:4 sparse "
                              f"({sparsity.violating_fraction(weight):.1%} of groups violate); pruning it by "
                              f"magnitude, which changes the layer's output", stacklevel=2)
            weight = sparsity.prune_2_4(weight)
        values, meta = reference.compress_2_4(weight)
        bias = plain.bias.detach() if plain.bias is not None else None
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
        return ops.sparse24_linear(x, self.values, self.meta, self.in_features, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
                f"sparsity=2:4, dtype={self.values.dtype}")
