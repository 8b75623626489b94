"""Fused activations (bigaccel.ops.silu_and_mul, gelu_and_mul, gelu) against the
eager PyTorch a user would write (F.silu(gate) * up, ...), at Llama-7B's
intermediate size. Elementwise, so judged by percent of read bandwidth; inputs
rotate past the cache. Skipped with a note when this build has no such ops.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

import bigaccel

from ..case import Case
from ..timing import Rotation, copies_to_exceed_cache

FAMILY = "activations"
WIDTH, QUICK_WIDTH = 11008, 2816
_BYTES = {"fp32": 4, "bf16": 2}


def _eager(name):
    if name == "silu_and_mul":
        return lambda x: F.silu(x[..., : x.shape[-1] // 2]) * x[..., x.shape[-1] // 2:]
    if name == "gelu_and_mul":
        return lambda x: F.gelu(x[..., : x.shape[-1] // 2]) * x[..., x.shape[-1] // 2:]
    return F.gelu


OPS = {  # op -> (input width factor, output width factor)
    "silu_and_mul": (2, 1),
    "gelu_and_mul": (2, 1),
    "gelu": (1, 1),
}


def _available() -> list[str]:
    return [name for name in OPS if hasattr(bigaccel.ops, name)]


def notes(cfg) -> list[str]:
    missing = [name for name in OPS if name not in _available()]
    return [f"bigaccel.ops has no {', '.join(missing)} in this build: not benchmarked"] if missing else []


def _setup(fn, m, k, dtype, device):
    def setup():
        nbytes = m * k * torch.tensor([], dtype=dtype).element_size()
        x = torch.randn(m, k, device=device).to(dtype)  # copies are clones: randn per copy is slow
        return Rotation(fn, [(x.clone(),) for _ in range(copies_to_exceed_cache(nbytes, device))])
    return setup


def cases(cfg) -> list[Case]:
    out = []
    d_width = 32 if cfg.toy else QUICK_WIDTH if cfg.quick else WIDTH
    for name in _available():
        fin, fout = OPS[name]
        k = fin * d_width
        for m in cfg.ms:
            for d, dt in cfg.dtypes.items():
                common = dict(family=FAMILY, op=name, dtype=d, shape=f"{k}", m=m, flops=0.0,
                              nbytes=m * d_width * (fin + fout) * _BYTES[d], compute="none", device=cfg.device)
                out.append(Case(impl=f"eager {name}", setup=_setup(_eager(name), m, k, dt, cfg.device), **common))
                out.append(Case(impl="bigaccel", setup=_setup(getattr(bigaccel.ops, name), m, k, dt, cfg.device),
                                baselines=(f"eager {name} {d}",), headline=(f"eager {name} {d}",), **common))
    return out
