"""Run the suite: limits, every case, the end-to-end decode; print, save, plot."""
from __future__ import annotations

import json
import os
import sys
import time
import warnings
from dataclasses import dataclass, field

import torch

from . import cases as cases_pkg
from . import e2e, machine
from .case import Row, Skip, add_speedups
from .cases import BenchConfig
from .limits import Limits, measure_limits, raise_to_observed
from . import timing
from .timing import cpu_threads_available, measure

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


@dataclass
class Options:
    ops: list[str] = field(default_factory=list)  # families (or "e2e"); empty: all
    quick: bool = False
    threads: int | None = None
    device: str | None = None
    e2e_model: str | None = None  # default: small on CPU (tiny with quick), llama2-7b on GPU
    budget_s: float | None = None
    models: tuple[str, ...] = ("7b",)  # the linear families' weight shapes (cases.MODEL_SHAPES)


def budget(opts: Options) -> float:
    return opts.budget_s if opts.budget_s is not None else (0.1 if opts.quick else 0.5)


def setup_threads(threads: int | None) -> int:
    torch.set_num_threads(threads or cpu_threads_available())
    return torch.get_num_threads()


def run_case(case, limits: Limits, budget_s: float) -> Row:
    try:
        call = case.setup()
        t = measure(call, case.device, budget_s)
    except Skip as exc:
        return Row(case, skipped=str(exc))
    except Exception as exc:  # noqa: BLE001  one broken case must not lose the rest of the run
        first_line = (str(exc).strip().splitlines() or [""])[0][:300]
        return Row(case, skipped=f"error: {type(exc).__name__}: {first_line}", error=True)
    del call  # free this case's operand copies (by reference count) before the next is built
    return Row(case, t.seconds, t.reps, limits.judge(case.flops, case.nbytes, t.seconds, case.compute), median_s=t.median_s,
               method=t.method)


def selected(family: str, opts: Options) -> bool:
    return not opts.ops or family in opts.ops


def run(opts: Options, log=print, checkpoint=None) -> dict:
    """Measure; `checkpoint(results)`, if given, gets the results so far after each family
    (so a run cut short, e.g. by a time limit on a lent GPU, keeps what it measured)."""
    device = opts.device or ("cuda" if torch.cuda.is_available() else "cpu")
    threads = setup_threads(opts.threads)
    cfg = BenchConfig(device=device, quick=opts.quick, models=tuple(opts.models))
    timing.ROTATION_FACTOR = 2.0 if opts.quick else 8.0
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # torch.ao's deprecation notice, per call
    families = cases_pkg.families()
    unknown = [o for o in opts.ops if o not in families and o != "e2e"]
    if unknown:
        raise SystemExit(f"bigaccel bench: unknown --op {', '.join(unknown)}; known: {', '.join([*families, 'e2e'])}")
    start = time.perf_counter()
    log(f"measuring this machine's limits on {device} with {threads} threads ...")
    limits = measure_limits(device, opts.quick)
    log(format_limits(limits))
    rows, notes, seconds = [], {}, {"limits": time.perf_counter() - start}
    # In the order asked for (a lent GPU's time may run out: the first named runs first).
    for name in sorted(families, key=lambda n: opts.ops.index(n) if n in opts.ops else len(opts.ops)):
        module = families[name]
        if not selected(name, opts):
            continue
        family_start = time.perf_counter()
        notes[name] = cases_pkg.notes(module, cfg)
        family_cases = module.cases(cfg)
        log(f"{name}: {len(family_cases)} cases")
        for case in family_cases:
            rows.append(run_case(case, limits, budget(opts)))
        seconds[name] = time.perf_counter() - family_start
        if checkpoint is not None:
            add_speedups(rows)
            checkpoint(_results(device, opts, threads, limits, notes, rows, [], start, seconds))
    add_speedups(rows)
    e2e_rows = []
    if selected("e2e", opts):
        model = opts.e2e_model or ("llama2-7b" if device == "cuda" else ("tiny" if opts.quick else "small"))
        dtypes = {"bf16": torch.bfloat16} if model == "llama2-7b" else cfg.dtypes
        log(f"end to end: decode with the {model} model ({e2e.MODELS[model]})")
        e2e_start = time.perf_counter()
        e2e_rows = e2e.run(model, device, dtypes, opts.quick, log)
        seconds["e2e"] = time.perf_counter() - e2e_start
    return _results(device, opts, threads, limits, notes, rows, e2e_rows, start, seconds)


def _results(device, opts, threads, limits, notes, rows, e2e_rows, start, seconds) -> dict:
    results = {
        "machine": machine.describe(device),
        "options": {"quick": opts.quick, "threads": threads, "ops": opts.ops, "budget_s": budget(opts),
                    "models": list(opts.models),
                    "rotation_x_cache": timing.ROTATION_FACTOR},
        "limits": limits.as_dict(),
        "notes": notes,
        "rows": [r.as_dict() for r in rows],
        "e2e": e2e_rows,
        "seconds": time.perf_counter() - start,
        "seconds_by_part": dict(seconds),
    }
    raise_to_observed(results)
    return results


# -- output --------------------------------------------------------------------


def format_raised(results: dict) -> list[str]:
    lim = results["limits"]
    return [f"limit raised to what a baseline achieved: {k} by {case}" for k, case in lim.get("raised_by", {}).items()]


def format_limits(limits: Limits) -> str:
    p = limits.peak_tflops
    return (f"limits ({limits.device}, {limits.threads} threads): read {limits.read_gbs:.1f} GB/s, "
            f"copy {limits.copy_gbs:.1f} GB/s, fp32 {p['fp32'] * 1e3:.1f} GFLOP/s, bf16 {p['bf16'] * 1e3:.1f} GFLOP/s, "
            f"int8 {p['int8'] * 1e3:.1f} GOP/s ({limits.sources.get('int8', '')}: "
            + ", ".join(f"{k} {v * 1e3:.1f}" for k, v in limits.int8_candidates_tflops.items()) + ")")


def _time(us: float) -> str:
    return f"{us:.0f}us" if us < 1e4 else f"{us / 1e3:.1f}ms"


def format_table(results: dict) -> str:
    lines = []
    header = f"{'op':<19} {'impl':<27} {'dtype':<5} {'shape':<11} {'M':>5} {'time':>9} {'GB/s':>7} " \
             f"{'GFLOP/s':>8} {'bound':<9} {'%limit':>6}  speedup vs baselines"
    group = None
    for r in results["rows"]:
        if r["family"] != group:
            group = r["family"]
            lines += ["", f"== {group}", header]
        lead = f"{r['op']:<19} {r['impl']:<27} {r['dtype']:<5} {r['shape']:<11} {r['m']:>5}"
        if "skipped" in r:
            lines.append(f"{lead} skipped: {r['skipped']}")
            continue
        speed = ", ".join(f"{v:.2f}x {k}" for k, v in r["speedup"].items())
        lines.append(f"{lead} {_time(r['time_us']):>9} {r['gbs']:>7.1f} {r['tflops'] * 1e3:>8.1f} {r['bound']:<9} "
                     f"{r['pct_limit']:>5.0f}%  {speed}")
    lines += format_raised(results)
    for family, family_notes in results["notes"].items():
        for note in family_notes:
            lines.append(f"note ({family}): {note}")
    if results["e2e"]:
        lines += ["", "== end to end: greedy decode with a KV cache",
                  f"{'model':<10} {'dtype':<5} {'recipe':<18} {'batch':>5} {'tokens/s':>9}  speedup"]
        for r in results["e2e"]:
            lead = f"{r['model']:<10} {r['dtype']:<5} {r['recipe']:<18} {r.get('batch', ''):>5}"
            if "skipped" in r:
                lines.append(f"{lead} skipped: {r['skipped']}")
            else:
                speed = ", ".join(f"{v:.2f}x {k}" for k, v in r["speedup"].items())
                lines.append(f"{lead} {r['tokens_per_s']:>9.1f}  {speed}")
    m = results["machine"]
    lines += ["", f"machine: {m['cpu']} ({m['isa_in_use']} kernels), {results['options']['threads']} threads"
              + (f", GPU {m['gpu']['name']}" if m.get("gpu") else "")
              + f"; torch {m['versions']['torch']}, bigaccel {m['versions']['bigaccel']}; "
              f"{results['seconds']:.0f} s ("
              + ", ".join(f"{k} {v:.0f} s" for k, v in results.get("seconds_by_part", {}).items())
              + "). Ratios hold within this run only."]
    return "\n".join(lines)


def save_json(results: dict, path: str) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(results, f, indent=1)
    return path


def plot(results: dict, path: str) -> str | None:
    """Speedup vs M, one panel per op family and shape, one line per (subject, baseline)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install matplotlib): no plot written"
    panels: dict[tuple, dict] = {}
    for r in results["rows"]:
        for base, s in r.get("speedup", {}).items():
            panels.setdefault((r["family"], r["shape"]), {}).setdefault(f"{r['name']} vs {base}", []).append((r["m"], s))
    if not panels:
        return "no speedups to plot"
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 3.6 * len(panels)), squeeze=False)
    for ax, ((family, shape), lines) in zip(axes[:, 0], sorted(panels.items())):
        for label, points in sorted(lines.items()):
            ms, ss = zip(*sorted(points))
            ax.plot(ms, ss, marker="o", label=label)
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.set_xscale("log", base=2)
        ax.set(title=f"{family} {shape}", xlabel="M (tokens)", ylabel="speedup")
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return None


def main_from_cli(args) -> int:
    models = tuple(m.strip() for m in (getattr(args, "models", None) or "7b").split(",") if m.strip())
    unknown = [m for m in models if m not in cases_pkg.MODEL_SHAPES]
    if unknown or not models:
        print(f"bigaccel bench: --models takes a comma list of {', '.join(cases_pkg.MODEL_SHAPES)}; got "
              f"{getattr(args, 'models', None)!r}", file=sys.stderr)
        return 2
    opts = Options(ops=args.op or [], quick=args.quick, threads=args.threads, e2e_model=args.e2e_model,
                   budget_s=args.budget, models=models)

    def save_all(results):
        paths = [args.json] if args.json else []
        if args.save:
            paths.append(machine.results_path(results["machine"], RESULTS_DIR))
        return [save_json(results, path) for path in paths]

    results = run(opts, log=lambda s: print(s, file=sys.stderr, flush=True),
                  checkpoint=save_all if (args.json or args.save) else None)
    print(format_table(results))
    for path in save_all(results):
        print(f"results written to {path}")
    errors = [r["id"] for r in results["rows"] if r.get("error")]
    if errors:
        print(f"bigaccel bench: {len(errors)} case(s) failed (see 'error:' above): {', '.join(errors[:5])}",
              file=sys.stderr)
    if args.plot:
        problem = plot(results, args.plot)
        print(f"plot: {problem}" if problem else f"plot written to {args.plot}")
    return 1 if errors else 0
