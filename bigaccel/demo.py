"""`bigaccel demo`: convert a small Llama-style model with every available recipe and
show what each did: the per-layer report, output error against the float model,
weight memory, and eager latency on this machine.

The model is built here with random weights (bigaccel.models.TinyLlama, seeded),
so the demo needs no downloads; its accuracy numbers measure rounding error on
random weights, not task accuracy.
"""
from __future__ import annotations

import copy
import os
import time

import torch

import bigaccel
from bigaccel.models import TinyLlamaConfig, TinyLlama
from bigaccel.recipes import available_recipes


def _latency_ms(model, tokens, repeat: int) -> float:
    with torch.inference_mode():
        model(tokens)  # warm-up: chooses backends, allocates
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            model(tokens)
            times.append(time.perf_counter() - start)
    return min(times) * 1e3  # the best of a few: least disturbed by whatever else runs here


def _recipes_to_show() -> list[str]:
    names = available_recipes()
    if "fuse-activations" in names:  # the combination a user would pick
        names += [f"{n}+fuse-activations" for n in ("int8", "int8-weight-only") if n in names]
    return names


def run_demo(args) -> int:
    """The transformers demo (bigaccel/demo_hf.py) when its packages are installed, else
    (or with --tiny) the TinyLlama one below, which needs nothing beyond bigaccel."""
    if not getattr(args, "tiny", False):
        from .demo_hf import INSTALL_HINT, missing_reason, run_hf_demo

        reason = missing_reason()
        if reason is None:
            return run_hf_demo(args)
        print(f"The demo on real models (all-MiniLM-L6-v2, a transformers Llama) needs: {INSTALL_HINT};\n"
              f"{reason}, so this runs the fallback on bigaccel's own random-weight TinyLlama.\n")
    return run_tiny_demo(args)


def run_tiny_demo(args) -> int:
    load_before = _load_average()  # others' work, before ours adds to it
    torch.manual_seed(0)
    config = TinyLlamaConfig(hidden=args.hidden, intermediate=args.hidden * 11 // 4 // 64 * 64 or 64,
                             layers=args.layers, heads=max(1, args.hidden // 64), kv_heads=max(1, args.hidden // 128))
    model = TinyLlama(config, seed=0).eval()
    prefill = torch.randint(0, config.vocab, (args.batch, args.seq), generator=torch.Generator().manual_seed(1))
    one_token = prefill[:1, :1]
    calibration = prefill[:1]
    with torch.inference_mode():
        reference = model(prefill)
    threads = torch.get_num_threads()
    print(f"bigaccel {bigaccel.__version__} demo: a Llama-style model built here with random weights (seed 0):")
    print(f"  {config.layers} decoder layers, hidden {config.hidden}, MLP {config.intermediate}, "
          f"{config.heads} heads ({config.kv_heads} KV), vocab {config.vocab}; "
          f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters")
    print(f"  input: {args.batch} x {args.seq} tokens (calibration: the first sequence); cpu, {threads} threads\n")

    rows = [("fp32 (as built)", "-", bigaccel.report.module_bytes(model), None, None, None,
             _latency_ms(model, prefill, args.repeat), _latency_ms(model, one_token, args.repeat * 4))]
    for i, recipe in enumerate(_recipes_to_show()):
        converted = copy.deepcopy(model)
        start = time.perf_counter()
        report = bigaccel.convert(converted, recipe, calibration=calibration)
        seconds = time.perf_counter() - start
        if i == 0:
            print(f"bigaccel.convert(model, {recipe!r}, calibration=...) took {seconds:.2f} s; its report "
                  f"(SQNR: each layer alone on the inputs it saw, higher is better):")
            print(report)
            print()
        with torch.inference_mode():
            out = converted(prefill)
        rel = ((out - reference).norm() / reference.norm()).item()
        top1 = (out.argmax(-1) == reference.argmax(-1)).float().mean().item()
        rows.append((recipe, str(len(report.converted)), report.model_bytes_after, report.output_sqnr_db, rel, top1,
                     _latency_ms(converted, prefill, args.repeat),
                     _latency_ms(converted, one_token, args.repeat * 4)))
    _print_summary(rows, args, load_before)
    return 0


def _print_summary(rows, args, load: float | None) -> None:
    base_bytes, base_prefill, base_token = rows[0][2], rows[0][6], rows[0][7]
    header = ("recipe", "layers", "weights", "output SQNR", "rel. error", "top-1 same",
              f"{args.batch}x{args.seq} tokens", "1 token")
    table = [header]
    for name, layers, size, sqnr, rel, top1, prefill_ms, token_ms in rows:
        table.append((
            name, layers, f"{size / 2**20:.1f} MiB ({size / base_bytes:.2f}x)",
            "-" if sqnr is None else f"{sqnr:.1f} dB", "-" if rel is None else f"{rel:.2%}",
            "-" if top1 is None else f"{top1:.1%}",
            f"{prefill_ms:.1f} ms ({base_prefill / prefill_ms:.2f}x)", f"{token_ms:.2f} ms ({base_token / token_ms:.2f}x)",
        ))
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for j, r in enumerate(table):
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
        if j == 0:
            print("  ".join("-" * w for w in widths))
    print("\nError is against the float model's logits on the same tokens; top-1 same is how often the most likely")
    print("next token agrees. Latency: eager forward, best of a few runs, on this machine only, informal")
    print("(ratios > 1x are faster than fp32). Speed claims come from the benchmarks; `bigaccel info` shows which")
    print("backend runs each op.")
    cpus = os.cpu_count() or 1
    if load is not None and load > cpus / 2:
        print(f"Note: this machine is busy (load average {load:.1f} on {cpus} CPUs), so these latencies are "
              f"unreliable; multi-threaded float GEMMs suffer most when their threads are descheduled.")


def _load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # not on every platform
        return None
