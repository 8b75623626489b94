"""Fused activations (bigaccel.ops.silu_and_mul, gelu_and_mul, gelu) against the
eager PyTorch a user would write (F.silu(gate) * up, ...) and torch.compile of that
formula, at Llama-7B's intermediate size (11008, every M) and at (4096, 2 x 4096)
(width 4096, M = 4096). Elementwise, so judged by percent of read bandwidth; inputs
rotate past the cache. Skipped with a note when this build has no such ops; the
compiled baseline is skipped with --quick and in the harness's own tests (a compile per
shape would be most of their time).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

import bigaccel

from ..case import Case, Skip
from ..timing import Rotation, copies_to_exceed_cache

FAMILY = "activations"
WIDTH, QUICK_WIDTH = 11008, 2816
SQUARE_WIDTH, SQUARE_M = 4096, 4096  # the (4096, 2 x 4096)
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


def _out_setup(fn, m, k, k_out, dtype, device):
    """fn(x, out=buffer) with preallocated outputs, rotated with the inputs: what a model
    that reuses its buffers sees. Without out=, every call of a large shape first-touches
    a fresh output (an mmap'd allocation's page faults cost more than the kernel at
    (4096, 2 x 4096)), in eager PyTorch as in bigaccel."""
    def setup():
        nbytes = m * (k + k_out) * torch.tensor([], dtype=dtype).element_size()
        x = torch.randn(m, k, device=device).to(dtype)
        sets = [(x.clone(), torch.empty(m, k_out, device=device, dtype=dtype))
                for _ in range(copies_to_exceed_cache(nbytes, device))]
        return Rotation(lambda x, out: fn(x, out=out), sets)
    return setup


def _compiled_setup(name, m, k, dtype, device, quick):
    def setup():
        if quick:
            raise Skip("not with --quick: a compile per shape")
        # Dynamo caches per code object, and every case's lambda is the same code: past its
        # recompile limit (8) it silently runs eager, which the H200 run of 2026-11-27 timed as
        # "compiled". A reset per case gives each its own compile.
        torch._dynamo.reset()
        fn = torch.compile(_eager(name), dynamic=False)
        try:
            fn(torch.randn(m, k, device=device).to(dtype))  # compile outside the timing
        except Exception as e:  # noqa: BLE001 - no working compiler here: say so in the table
            raise Skip(f"torch.compile failed: {type(e).__name__}: {str(e).splitlines()[0][:120]}") from None
        return _setup(fn, m, k, dtype, device)()
    return setup


def _widths(cfg) -> list[tuple[int, list[int]]]:
    if cfg.toy:
        return [(32, cfg.ms)]
    if cfg.quick:
        return [(QUICK_WIDTH, cfg.ms)]
    return [(WIDTH, cfg.ms), (SQUARE_WIDTH, [SQUARE_M])]


def cases(cfg) -> list[Case]:
    out = []
    for d_width, ms in _widths(cfg):
        for name in _available():
            fin, fout = OPS[name]
            k = fin * d_width
            for m in ms:
                for d, dt in cfg.dtypes.items():
                    common = dict(family=FAMILY, op=name, dtype=d, shape=f"{k}", m=m, flops=0.0,
                                  nbytes=m * d_width * (fin + fout) * _BYTES[d], compute="none", device=cfg.device)
                    out.append(Case(impl=f"eager {name}", setup=_setup(_eager(name), m, k, dt, cfg.device), **common))
                    out.append(Case(impl=f"compiled {name}", setup=_compiled_setup(name, m, k, dt, cfg.device, cfg.quick or cfg.toy),
                                    **common))
                    baselines = (f"eager {name} {d}", f"compiled {name} {d}")
                    op = getattr(bigaccel.ops, name)
                    out.append(Case(impl="bigaccel", setup=_setup(op, m, k, dt, cfg.device), baselines=baselines,
                                    headline=(f"eager {name} {d}",), **common))
                    out.append(Case(impl="bigaccel", setup=_out_setup(op, m, k, fout * d_width, dt, cfg.device),
                                    baselines=baselines, headline=(f"eager {name} {d}",),
                                    **{**common, "op": f"{name} out="}))
    return out
