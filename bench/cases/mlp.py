"""Whole Llama-style MLP blocks (gate/up/down projections and SiLU) converted
with each recipe bigaccel.convert offers, against the float block in the same
dtype: what a converted model's MLP costs, fusion and quantization together.

Shapes: Llama-7B's block (4096 -> 11008) on GPU; on CPU the small model's
(1024 -> 2816), which 2 cores can run up to M=1024. Weights rotate through
copies of the block that together exceed the cache.
"""
from __future__ import annotations

import copy

import torch

import bigaccel
from bigaccel.models import GatedMLP

from ..case import Case, Skip
from ..e2e import apply_recipe, recipes
from ..timing import Rotation, copies_to_exceed_cache

FAMILY = "mlp"
_BYTES = {"fp32": 4, "bf16": 2}


def _shape(cfg) -> tuple[int, int]:
    if cfg.toy:
        return (64, 96)
    return (4096, 11008) if cfg.device == "cuda" else (1024, 2816)


def notes(cfg) -> list[str]:
    return [] if hasattr(bigaccel, "convert") else ["bigaccel.convert is not in this build: converted MLP blocks not benchmarked"]


def weight_bytes_per_element(recipe: str | None, dtype: str) -> float:
    """Bytes a converted block reads per weight element: what its bandwidth percent counts.
    The recipes' formats (README -> Formats): int8 values with a scale per row; int4 codes
    with an fp32 scale and a uint8 zero point per group; 2:4 keeps half the values plus
    2 bits of position each (meta, 1 byte per 8 k). Fusing activations changes no weight."""
    weights = (recipe or "").split("+")[0]
    if weights.startswith("int4"):
        group = int(weights.split("-g")[1]) if "-g" in weights else 128
        return 0.5 + (4 + 1) / group
    if weights == "sparse24":
        return _BYTES[dtype] / 2 + 1 / 8
    if weights == "sparse24-int8":
        return 1 / 2 + 1 / 8
    if weights.startswith("int8"):
        return 1.0
    return float(_BYTES[dtype])


def _setup(recipe, m, hidden, inter, dtype, device):
    def setup():
        torch.manual_seed(0)
        with torch.device(device):  # initialized where it runs: a CPU init of Llama-7B's MLP takes seconds
            block = torch.nn.Sequential(GatedMLP(hidden, inter)).to(dtype=dtype).eval()
        if recipe is not None:
            try:
                apply_recipe(block, recipe)
            except Exception as exc:
                raise Skip(f"convert {recipe!r}: {type(exc).__name__}: {exc}") from None
        weight_bytes = sum(b.numel() * b.element_size() for b in block.state_dict().values())
        x = torch.randn(m, hidden, device=device).to(dtype)
        copies = copies_to_exceed_cache(weight_bytes, device, cap=64)  # module copies: 64 is plenty at real sizes
        return Rotation(lambda x, blk: blk(x), [(x, block)] + [(x, copy.deepcopy(block)) for _ in range(copies - 1)])
    return setup


def cases(cfg) -> list[Case]:
    if not hasattr(bigaccel, "convert"):
        return []
    hidden, inter = _shape(cfg)
    out = []
    for m in cfg.ms:
        for d, dt in cfg.dtypes.items():
            flops = 2.0 * m * 3 * hidden * inter
            act = m * (2 * hidden + 3 * inter) * _BYTES[d]  # x, gate, up, act*up, out (unfused eager traffic)

            def case(impl, recipe, w_bytes, compute, baselines=()):
                op = "MLP" if recipe is None else f"MLP {recipe}"
                return Case(FAMILY, op, impl, d, f"{hidden}x{inter}", m, flops,
                            3 * hidden * inter * w_bytes + act, compute, _setup(recipe, m, hidden, inter, dt, cfg.device),
                            tuple(baselines), tuple(baselines), cfg.device)

            out.append(case("float", None, _BYTES[d], d))
            for recipe in recipes(combos=not cfg.quick):
                w8a8 = recipe.split("+")[0] in ("int8", "sparse24-int8")
                out.append(case("bigaccel", recipe, weight_bytes_per_element(recipe, d), "int8" if w8a8 else d,
                                [f"float {d}"]))
    return out
