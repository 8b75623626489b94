"""End-to-end decode tokens/s under pytest-benchmark: the float model and each recipe."""
from __future__ import annotations

import pytest
import torch

from bench import e2e


def _model(cfg) -> str:
    return "llama2-7b" if cfg.device == "cuda" else ("tiny" if cfg.quick else "small")


@pytest.mark.parametrize("batch", e2e.BATCHES)
@pytest.mark.parametrize("recipe", ["float"] + e2e.recipes(combos=True))
@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_decode(benchmark, bench_cfg, dtype, recipe, batch):
    model_name = _model(bench_cfg)
    if model_name == "llama2-7b" and dtype == "fp32":
        pytest.skip("the Llama-2-7B shape is compared in bf16 only")
    torch_dtype = bench_cfg.dtypes[dtype]
    model = e2e.build(model_name, torch_dtype, bench_cfg.device)
    if recipe != "float":
        e2e.apply_recipe(model, recipe)
    warmup, steps = (2, 4) if bench_cfg.quick else (8, 32)
    decoder = e2e.Decoder(model, batch, warmup + steps + 1, torch_dtype, bench_cfg.device)
    tokens = torch.zeros(batch, 1, dtype=torch.long, device=bench_cfg.device)
    for pos in range(warmup):
        tokens = decoder.step(tokens, pos)
    positions = iter(range(warmup, warmup + steps))
    sync = torch.cuda.synchronize if bench_cfg.device == "cuda" else (lambda: None)
    benchmark.pedantic(lambda: (decoder.step(tokens, next(positions)), sync()), rounds=steps, iterations=1)
    stats = getattr(benchmark, "stats", None)
    if stats:
        benchmark.extra_info.update({"model": model_name, "tokens_per_s": batch / stats.stats.median})
