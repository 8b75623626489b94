"""One module per op family. Each defines:

    FAMILY = "name"                      # what --op selects
    def cases(cfg: BenchConfig) -> list[Case]
    def notes(cfg: BenchConfig) -> list[str]      # optional: what was skipped and why

shrinking its shapes when cfg.toy is set (the harness's own tests), and may
return no cases when its ops are not in this build (saying so in
notes). A new op joins the suite by adding a module here; nothing else changes.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from types import ModuleType

import torch


# Linear weight shapes [N, K] per model: attention (and o_proj), MLP up/gate, MLP down.
MODEL_SHAPES = {
    "7b": [(4096, 4096), (11008, 4096), (4096, 11008)],    # Llama-2-7B
    "13b": [(5120, 5120), (13824, 5120), (5120, 13824)],   # Llama-2-13B
    "small": [(2048, 2048), (5632, 2048), (2048, 5632)],   # TinyLlama-1.1B
    "8k": [(8192, 8192)],  # the square GEMM of the GPU targets (8192^3): a GPU run, M up to 8192
}
# M values a model's shapes add to the usual ones.
MODEL_EXTRA_MS = {"8k": [8192]}
QUICK_SHAPES = [(2048, 2048)]
TOY_SHAPES = [(48, 64)]


@dataclass
class BenchConfig:
    device: str = "cpu"
    quick: bool = False
    toy: bool = False  # tiny shapes, for tests of the harness itself (numbers meaningless)
    models: tuple[str, ...] = ("7b",)  # which MODEL_SHAPES the linear families run (not with quick/toy)

    @property
    def linear_shapes(self) -> list[tuple[int, int]]:
        """The [N, K] weight shapes of the linear families (int8, int4, 2:4)."""
        if self.toy:
            return TOY_SHAPES
        if self.quick:
            return QUICK_SHAPES
        return [shape for model in self.models for shape in MODEL_SHAPES[model]]

    @property
    def ms(self) -> list[int]:
        if self.toy:
            return [1, 3]
        if self.quick:
            return [1, 16, 256]
        extra = sorted({m for model in self.models for m in MODEL_EXTRA_MS.get(model, [])})
        return [1, 4, 16, 64, 256, 1024] + extra

    @property
    def dtypes(self) -> dict[str, torch.dtype]:
        return {"fp32": torch.float32, "bf16": torch.bfloat16}


def families() -> dict[str, ModuleType]:
    """Every cases module, by FAMILY, in file-name order."""
    found = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        found[module.FAMILY] = module
    return found


def notes(module: ModuleType, cfg: BenchConfig) -> list[str]:
    return module.notes(cfg) if hasattr(module, "notes") else []
