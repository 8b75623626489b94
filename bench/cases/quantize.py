"""Per-token int8 quantization of activations (bigaccel.ops.quantize_per_token)
against the formula a user would write in plain PyTorch (amax per row, divide,
round, clamp; the reference's exactly-rounded fp64 divisions would be slower).

Elementwise, so always bandwidth-bound: judged by percent of read bandwidth.
Inputs rotate past the cache so the two are compared at DRAM speed.
"""
from __future__ import annotations

import bigaccel
import torch
from ..case import Case
from ..timing import Rotation, copies_to_exceed_cache

FAMILY = "quantize_per_token"
HIDDEN = [4096, 11008]
QUICK_HIDDEN = [4096]
_BYTES = {"fp32": 4, "bf16": 2}


def plain_pytorch(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    scale = x.float().abs().amax(-1, keepdim=True).clamp_min(1e-12) / 127
    return (x.float() / scale).round_().clamp_(-127, 127).to(torch.int8), scale


def _setup(fn, m, k, dtype, device):
    def setup():
        nbytes = m * k * torch.tensor([], dtype=dtype).element_size()
        copies = copies_to_exceed_cache(nbytes, device)
        x = torch.randn(m, k, device=device).to(dtype)  # copies are clones: randn per copy is slow
        return Rotation(fn, [(x.clone(),) for _ in range(copies)])
    return setup


def cases(cfg) -> list[Case]:
    out = []
    for k in ([64] if cfg.toy else QUICK_HIDDEN if cfg.quick else HIDDEN):
        for m in cfg.ms:
            for d, dt in cfg.dtypes.items():
                nbytes = m * k * (_BYTES[d] + 1) + m * 4  # read x, write int8 codes and fp32 scales
                common = dict(family=FAMILY, op="quantize_per_token", dtype=d, shape=f"{k}", m=m, flops=0.0,
                              nbytes=nbytes, compute="none", device=cfg.device)
                out.append(Case(impl="plain PyTorch", setup=_setup(plain_pytorch, m, k, dt, cfg.device),
                                **common))
                out.append(Case(impl="bigaccel", setup=_setup(bigaccel.ops.quantize_per_token, m, k, dt, cfg.device),
                                baselines=(f"plain PyTorch {d}",), headline=(f"plain PyTorch {d}",), **common))
    return out
