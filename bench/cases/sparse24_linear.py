"""2:4 semi-structured sparse linear layers (bigaccel.ops.sparse24_linear) against
the dense F.linear (fp32 and bf16) on the same pruned weight, and on GPU
torch.sparse.to_sparse_semi_structured (CUTLASS/cuSPARSELt); 2:4 + int8 W8A8
(bigaccel.ops.sparse24_int8_linear) against bigaccel's dense W8A8 on the same
int8 weight.

Weights rotate through copies whose total exceeds the cache; activations do not
(in a model they were just written, so they are in cache).
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

import bigaccel
from bigaccel import reference, sparsity

from ..case import DTYPE_BYTES, Case, Skip, linear_case_maker
from ..timing import float_linear_setup, random_activations, rotated

FAMILY = "sparse24_linear"


@functools.lru_cache(maxsize=1)
def _pruned_weight(n: int, k: int, device: str) -> torch.Tensor:
    """A random weight with the 2 smallest of every 4 along K zeroed (sparsity.prune_2_4)."""
    return sparsity.prune_2_4(torch.randn(n, k, device=device) / k**0.5)


@functools.lru_cache(maxsize=2)
def _compressed(n: int, k: int, dtype: torch.dtype, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    return reference.compress_2_4(_pruned_weight(n, k, device).to(dtype))


def _sparse_bytes_per_weight(dtype: str) -> float:
    """Half the values are kept, plus 4 bits of metadata per group of 4 (1/8 byte a weight)."""
    return DTYPE_BYTES[dtype] / 2 + 1 / 8


def _dense_linear(m, n, k, dtype, device):
    return float_linear_setup(m, k, lambda: _pruned_weight(n, k, device), dtype, device)


def _torch_semi_structured(m, n, k, dtype, device):
    def setup():
        if device != "cuda":
            raise Skip("torch.sparse.to_sparse_semi_structured runs on GPU only")
        w = _pruned_weight(n, k, device).to(dtype)
        x = random_activations(m, k, dtype, device)
        try:
            sparse = torch.sparse.to_sparse_semi_structured(w)
            F.linear(x, sparse)
        except (RuntimeError, ValueError, NotImplementedError) as exc:
            raise Skip(f"to_sparse_semi_structured: {str(exc).splitlines()[0]}") from None
        # One copy: re-converting per rotation copy would dominate setup, and the GPU's
        # cache flush (bench.timing) already keeps the weight out of L2.
        return rotated(lambda x, s: F.linear(x, s), lambda: (x, sparse), w.numel() * w.element_size(), device,
                        cap=1)
    return setup


def _bigaccel(m, n, k, d, dtype, device):
    def setup():
        values, meta = _compressed(n, k, dtype, device)
        x = random_activations(m, k, dtype, device)
        fn = lambda x, v, mt: bigaccel.ops.sparse24_linear(x, v, mt, k)  # noqa: E731
        return rotated(fn, lambda: (x, values.clone(), meta.clone()), n * k * _sparse_bytes_per_weight(d), device)
    return setup


@functools.lru_cache(maxsize=1)
def _int8_weight(n: int, k: int, device: str):
    """The pruned weight in int8 per channel: dense (q, scale, row sums) and compressed (values, meta)."""
    q, scale = reference.quantize_per_channel_int8(_pruned_weight(n, k, device))
    values, meta = reference.compress_2_4(q)
    return q, scale, q.sum(1, dtype=torch.int32), values, meta


def _bigaccel_int8(sparse: bool, m, n, k, dtype, device):
    def setup():
        q, scale, wsum, values, meta = _int8_weight(n, k, device)
        x = random_activations(m, k, dtype, device)
        if sparse:
            fn = lambda x, v, mt: bigaccel.ops.sparse24_int8_linear(x, v, mt, k, scale, wsum)  # noqa: E731
            return rotated(fn, lambda: (x, values.clone(), meta.clone()), n * k * _sparse_bytes_per_weight("int8"),
                           device)
        fn = lambda x, q: bigaccel.ops.int8_linear(x, q, scale, wsum)  # noqa: E731
        return rotated(fn, lambda: (x, q.clone()), n * k, device)
    return setup


def notes(cfg) -> list[str]:
    out = ["2:4 weights: magnitude-pruned random weights (sparsity.prune_2_4); the dense baselines run the "
           "same pruned weight; weight bytes count the kept values and the 2-bit-per-index metadata"]
    if cfg.device != "cuda":
        out.append("torch.sparse.to_sparse_semi_structured is compared on GPU only")
    return out


def cases(cfg) -> list[Case]:
    dev, out = cfg.device, []
    for n, k in cfg.linear_shapes:
        for m in cfg.ms:
            case = linear_case_maker(FAMILY, n, k, m, dev)

            # Baselines first, so pytest-benchmark can compute speedups as it goes.
            for d, dt in cfg.dtypes.items():
                out.append(case("linear", "F.linear", d, _dense_linear(m, n, k, dt, dev), DTYPE_BYTES[d]))
            for d, dt in cfg.dtypes.items():
                out.append(case("2:4", "torch semi-structured", d, _torch_semi_structured(m, n, k, dt, dev),
                                _sparse_bytes_per_weight(d)))
            for d, dt in cfg.dtypes.items():
                other = "bf16" if d == "fp32" else "fp32"
                out.append(case("2:4", "bigaccel", d, _bigaccel(m, n, k, d, dt, dev), _sparse_bytes_per_weight(d),
                                baselines=[f"F.linear {d}", f"F.linear {other}", f"torch semi-structured {d}"],
                                headline=[f"F.linear {d}", f"torch semi-structured {d}"]))
            for d, dt in cfg.dtypes.items():
                out.append(case("W8A8", "bigaccel", d, _bigaccel_int8(False, m, n, k, dt, dev), 1, compute="int8"))
                out.append(case("2:4+W8A8", "bigaccel", d, _bigaccel_int8(True, m, n, k, dt, dev),
                                _sparse_bytes_per_weight("int8"), compute="int8",
                                baselines=[f"bigaccel W8A8 {d}", f"F.linear {d}"],
                                headline=[f"bigaccel W8A8 {d}", f"F.linear {d}"]))
    return out
