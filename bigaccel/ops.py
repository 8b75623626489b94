"""bigaccel's ops: each declared once (schema, fake, reference fallback), with
its Python entry point that checks inputs and runs the backend chosen for the
tensor's device (backends.py).

Kernels attach themselves to these declarations: the C++ extensions register
CPU and CUDA kernels on the dispatch keys; Triton kernels are ops of their own
(``torch.ops.bigaccel.<op>_triton``, in the kernels package). The reference is
registered as the composite kernel, so ``torch.ops.bigaccel.<op>`` runs on any
device even where no extension was built.

The op families are declared in _linear_ops.py, _sparse24_ops.py and _activation_ops.py (with the
helpers of _registry.py); this module is their public face.
"""
from . import _extension
from ._activation_ops import bias_act, bias_gelu, bias_silu, gelu, gelu_and_mul, silu_and_mul
from ._linear_ops import (
    int4_linear,
    int8_linear,
    int8_weight_only_linear,
    quantize_per_token,
)
from ._sparse24_ops import sparse24_int8_linear, sparse24_linear

__all__ = [
    "quantize_per_token",
    "int8_linear",
    "int8_weight_only_linear",
    "int4_linear",
    "sparse24_linear",
    "sparse24_int8_linear",
    "silu_and_mul",
    "gelu_and_mul",
    "gelu",
    "bias_act",
    "bias_gelu",
    "bias_silu",
]

# Kernels register against the declarations above, so load them last.
_extension.load()
