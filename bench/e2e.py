"""End to end: greedy decode tokens/s of a random-initialised Llama-style model
(bigaccel.models.TinyLlama, transformers' module names) with a KV cache, at
batch 1 and 16, for the float model and each available recipe.

Models: "llama2-7b" has Llama-2-7B's shapes (32 layers, hidden 4096,
intermediate 11008, vocab 32000), for a GPU; "small" (hidden 1024,
intermediate 2816, 8 layers, vocab 32000) is what a 2-core CPU can run;
"tiny" (2 layers) is for --quick; "toy" tests the harness. Random weights are fine for speed.

Recipes go through bigaccel.convert when this build has it, else the layers
are swapped with the nn modules' from_linear.
"""
from __future__ import annotations

import copy
import dataclasses
import time

import torch
import torch.nn.functional as F

import bigaccel
from bigaccel.models import TinyLlama, TinyLlamaConfig

MODELS = {
    "toy": dict(vocab=256, hidden=64, intermediate=128, layers=1, heads=4, kv_heads=2),  # tests only
    "tiny": dict(vocab=32000, hidden=1024, intermediate=2816, layers=2, heads=16, kv_heads=16),
    "small": dict(vocab=32000, hidden=1024, intermediate=2816, layers=8, heads=16, kv_heads=16),
    "llama2-7b": dict(vocab=32000, hidden=4096, intermediate=11008, layers=32, heads=32, kv_heads=32),
}
BATCHES = (1, 16)


def recipes(combos: bool = True) -> list[str]:
    """Every recipe this build can run, plus (with combos) each weight recipe combined with fused activations."""
    if not (hasattr(bigaccel, "convert") and hasattr(bigaccel, "recipes")):
        return ["int8", "int8-weight-only"]
    names = bigaccel.recipes.available_recipes()
    fused = "fuse-activations"
    with_fused = [f"{n}+{fused}" for n in names
                  if n != fused and bigaccel.recipes.RECIPES[n].make_config().kind == "weights"]
    return names + (with_fused if combos and fused in names else [])


def apply_recipe(model: torch.nn.Module, recipe: str) -> None:
    if hasattr(bigaccel, "convert"):
        # A random model is not 2:4, and convert keeps such layers dense (a rule about the
        # weight's values): the 2:4 recipes prune by magnitude here, as a user prunes first.
        configs = [dataclasses.replace(c, prune_dense=True) if hasattr(c, "prune_dense") else c
                   for c in bigaccel.recipes.resolve(recipe)]
        report = bigaccel.convert(model, configs)
        if not report.converted:
            raise RuntimeError(f"recipe {recipe!r} converted no layer: {report}")
        return
    layer_type = {"int8": bigaccel.nn.Int8Linear, "int8-weight-only": bigaccel.nn.Int8WeightOnlyLinear}[recipe]
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if type(child) is torch.nn.Linear and not f"{name}.{child_name}".endswith("lm_head"):
                setattr(module, child_name, layer_type.from_linear(child))


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary positions, as TinyLlama applies them (rotate-half convention)."""
    half = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin


class Decoder:
    """A KV-cached decode step over TinyLlama's modules; whatever convert put in
    their place (Int8Linear, FusedGatedMLP, ...) is what runs."""

    def __init__(self, model: TinyLlama, batch: int, max_len: int, dtype: torch.dtype, device: str):
        cfg = model.config
        self.model, self.inner = model, model.model
        self.heads, self.kv_heads, self.head_dim = cfg.heads, cfg.kv_heads, cfg.hidden // cfg.heads
        shape = (batch, cfg.kv_heads, max_len, self.head_dim)
        self.k = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(cfg.layers)]
        self.v = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(cfg.layers)]

    def step(self, tokens: torch.Tensor, pos: int) -> torch.Tensor:
        """tokens [batch, 1] at position pos -> next tokens [batch, 1] (greedy)."""
        return self.logits(tokens, pos).argmax(-1)

    @torch.no_grad()
    def logits(self, tokens: torch.Tensor, pos: int) -> torch.Tensor:
        """tokens [batch, 1] at position pos -> logits [batch, 1, vocab], caching k and v."""
        x = self.inner.embed_tokens(tokens)
        b = x.shape[0]
        angles = pos * self.inner.inv_freq
        angles = torch.cat((angles, angles))[None]
        cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
        repeat = self.heads // self.kv_heads
        for i, layer in enumerate(self.inner.layers):
            attn = layer.self_attn
            h = layer.input_layernorm(x)
            q = attn.q_proj(h).view(b, 1, self.heads, self.head_dim).transpose(1, 2)
            k = attn.k_proj(h).view(b, 1, self.kv_heads, self.head_dim).transpose(1, 2)
            v = attn.v_proj(h).view(b, 1, self.kv_heads, self.head_dim).transpose(1, 2)
            self.k[i][:, :, pos] = _rotate(k, cos, sin)[:, :, 0]
            self.v[i][:, :, pos] = v[:, :, 0]
            keys, values = self.k[i][:, :, : pos + 1], self.v[i][:, :, : pos + 1]
            if repeat > 1:
                keys, values = keys.repeat_interleave(repeat, 1), values.repeat_interleave(repeat, 1)
            out = F.scaled_dot_product_attention(_rotate(q, cos, sin), keys, values)  # one query: no mask
            x = x + attn.o_proj(out.transpose(1, 2).reshape(b, 1, -1))
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        return self.model.lm_head(self.inner.norm(x))


def decode_tokens_per_s(model: TinyLlama, batch: int, dtype: torch.dtype, device: str,
                        warmup: int, steps: int) -> tuple[float, float]:
    """(tokens/s reported, tokens/s over all steps). Reported: over all steps on GPU;
    from the fastest step on CPU, which shared machines perturb least (see bench.timing)."""
    decoder = Decoder(model, batch, warmup + steps, dtype, device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    tokens = torch.zeros(batch, 1, dtype=torch.long, device=device)
    for pos in range(warmup):  # fills the cache with a prompt's worth of context
        tokens = decoder.step(tokens, pos)
    sync()
    step_times = []
    for pos in range(warmup, warmup + steps):
        start = time.perf_counter()
        tokens = decoder.step(tokens, pos)
        sync()
        step_times.append(time.perf_counter() - start)
    sustained = batch * steps / sum(step_times)
    return (sustained if device == "cuda" else batch / min(step_times)), sustained


def build(model_name: str, dtype: torch.dtype, device: str) -> TinyLlama:
    return TinyLlama(TinyLlamaConfig(**MODELS[model_name]), seed=0, device=device).eval().to(dtype=dtype)


def run(model_name: str, device: str, dtypes: dict[str, torch.dtype], quick: bool, log=print) -> list[dict]:
    warmup, steps = (1, 3) if quick else (8, 32)
    rows = []
    for dname, dtype in dtypes.items():
        base = build(model_name, dtype, device)  # built once: a 7B random init takes a while
        for recipe in ["float"] + recipes(combos=not quick):
            model = base if recipe == "float" else copy.deepcopy(base)
            try:
                if recipe != "float":
                    apply_recipe(model, recipe)
                for batch in BATCHES:
                    tps, sustained = decode_tokens_per_s(model, batch, dtype, device, warmup, steps)
                    rows.append({"model": model_name, "dtype": dname, "recipe": recipe, "batch": batch,
                                 "tokens_per_s": tps, "tokens_per_s_all_steps": sustained,
                                 "ms_per_step": 1e3 * batch / tps})
                    log(f"  e2e {model_name} {dname:<5} {recipe:<18} batch {batch:>2}: {tps:8.1f} tokens/s")
            except Exception as exc:  # one recipe failing must not hide the others' numbers
                rows.append({"model": model_name, "dtype": dname, "recipe": recipe, "skipped": f"{type(exc).__name__}: {exc}"})
                log(f"  e2e {model_name} {dname} {recipe}: skipped ({type(exc).__name__}: {exc})")
            del model
        del base
    base = {(r["dtype"], r["batch"]): r["tokens_per_s"] for r in rows if r["recipe"] == "float" and "tokens_per_s" in r}
    for r in rows:
        if "tokens_per_s" in r:
            r["speedup"] = {f"float {d}": r["tokens_per_s"] / t for (d, b), t in base.items() if b == r["batch"]}
    return rows
