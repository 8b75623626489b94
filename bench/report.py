"""Markdown benchmark tables from bench/results/*.json; the README's are made here.

    python bench/report.py                       # print the tables of each machine's newest results
    python bench/report.py results/a.json ...    # of these files
    python bench/report.py --readme              # rewrite README.md's summary (between its bench-table
                                                 # markers) and bench/RESULTS.md, the full tables

Each op family is shown from the newest run of its machine that measured it (a run of one
family, `bigaccel bench --op F`, updates that family alone). Each table says which machine
and run it comes from; ratios hold within one run, and every family's rows are one run's.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
README = os.path.join(os.path.dirname(HERE), "README.md")
RESULTS = os.path.join(HERE, "RESULTS.md")
# The README's summary keeps, of the weight GEMMs, Llama-7B's 11008 x 4096 (gate/up) weight
# and int4's default group of 128; bench/RESULTS.md has every shape and group size.
SUMMARY_SHAPE = "11008x4096"


WEIGHT_GEMM_FAMILIES = ("int8_linear", "int4_linear", "sparse24_linear")


def in_summary(row: dict) -> bool:
    if row["family"] not in WEIGHT_GEMM_FAMILIES:  # activations, quantize, mlp: every row
        return True
    return row["shape"] == SUMMARY_SHAPE and (row["family"] != "int4_linear" or "g128" in row["op"])
BEGIN, END = "<!-- bench-table -->", "<!-- /bench-table -->"
_LIMIT_SHORT = {"read GB/s": "of read BW", "fp32 peak": "of fp32 peak", "bf16 peak": "of bf16 peak",
                "int8 peak": "of int8 peak"}


def families(results: dict) -> set[str]:
    """The op families a results file measured ("e2e" for its end-to-end rows)."""
    return {r["family"] for r in results["rows"]} | ({"e2e"} if results.get("e2e") else set())


def newest_results(folder: str = os.path.join(HERE, "results"),
                   newest_machine_only: bool = False) -> list[tuple[str, set[str]]]:
    """(file, the families to show from it): per machine (CPU, and GPU if any), each family
    from the newest file that measured it; machines oldest first. newest_machine_only keeps,
    of the machines with a GPU and of those without, the one that ran last."""
    newest: dict[tuple, tuple[str, str]] = {}  # (machine, family) -> (date, path)
    for path in glob.glob(os.path.join(folder, "*.json")):
        with open(path) as f:
            results = json.load(f)
        m = results["machine"]
        key = (m["cpu"], m.get("isa_in_use"), (m.get("gpu") or {}).get("name"))  # see machine.slug
        for family in families(results):
            newest[(key, family)] = max(newest.get((key, family), ("", "")), (m["date"], path))
    if newest_machine_only:
        last: dict[bool, tuple[str, tuple]] = {}  # has a GPU -> (date, machine)
        for (key, _), (date, _) in newest.items():
            last[key[2] is not None] = max(last.get(key[2] is not None, ("", ())), (date, key))
        newest = {k: v for k, v in newest.items() if last[k[0][2] is not None][1] == k[0]}
    chosen: dict[str, tuple[str, set[str]]] = {}
    for (_, family), (date, path) in newest.items():
        chosen.setdefault(path, (date, set()))[1].add(family)
    return [(path, fams) for path, (_, fams) in sorted(chosen.items(), key=lambda item: item[1][0])]


def _ms(rows) -> list[int]:
    return sorted({r["m"] for r in rows})


def _grid(title: str, rows_by_key: dict, ms: list[int], key_names: list[str]) -> list[str]:
    out = [f"**{title}**", "", "| " + " | ".join(key_names + [f"M={m}" for m in ms]) + " |",
           "|" + " --- |" * (len(key_names) + len(ms))]
    for key, cells in rows_by_key.items():
        out.append("| " + " | ".join(list(key) + [cells.get(m, "–") for m in ms]) + " |")
    return out + [""]


def machine_line(results: dict, source: str) -> str:
    m, o = results["machine"], results["options"]
    gpu = f", GPU {m['gpu']['name']}" if m.get("gpu") else ""
    load = f", load average {m['load_average'][0]:.1f}" if m.get("load_average") else ""
    isa = f"{m['isa_in_use']} kernels" if m.get("isa_in_use") else "CPU extension not built"
    timing = {r.get("timing") for r in results["rows"] if "time_us" in r} - {None, "wall clock"}
    how = f", GPU rows timed by {' and '.join(sorted(timing))}" if timing else ""
    if m.get("gpu") and not timing:  # runs before CUDA-graph timing: each call timed from Python
        how = ", GPU rows timed eagerly (per call from Python: launch-bound at small M)"
    return (f"Measured on {m['cpu']} ({isa}, {o['threads']} of {m['cpus_available']} CPUs"
            f"{gpu}{load}) on {m['date']}, torch {m['versions']['torch']}, bigaccel {m['versions']['bigaccel']}"
            f"{', --quick' if o.get('quick') else ''}{how}; from `bench/results/{os.path.basename(source)}`.")


def tables(results: dict, source: str, only: set[str] | None = None, summary: bool = False) -> str:
    """The Markdown tables of one results file; `only` keeps these families (all by default);
    `summary` keeps the rows of in_summary."""
    if summary:
        results = {**results, "rows": [r for r in results["rows"] if in_summary(r)]}
    if only is not None:
        results = {**results, "rows": [r for r in results["rows"] if r["family"] in only],
                   "e2e": results.get("e2e", []) if "e2e" in only else [],
                   "notes": {k: v for k, v in results.get("notes", {}).items() if k in only}}
    lim = results["limits"]
    p = lim["peak_tflops"]
    shown = sorted(families(results))
    out = [machine_line(results, source) + (f" Families: {', '.join(shown)}." if only is not None else ""), "",
           f"Limits measured in the same run: read {lim['read_gbs']:.1f} GB/s, copy {lim['copy_gbs']:.1f} GB/s, "
           f"fp32 {p['fp32'] * 1e3:.0f} GFLOP/s, bf16 {p['bf16'] * 1e3:.0f} GFLOP/s, int8 {p['int8'] * 1e3:.0f} GOP/s "
           f"({lim['sources'].get('int8', '')})"
           + (f"; GEMM peaks raised to the best compute-bound baseline of the run ({', '.join(lim['raised_by'])})"
              if lim.get("raised_by") else "") + ".", ""]
    m = results["machine"]
    if m.get("load_average") and m["load_average"][0] > 0.5 * m["cpus_available"] and not m.get("gpu"):
        out += [f"*The machine was shared with other work during this run (load average {m['load_average'][0]:.1f} "
                f"on {m['cpus_available']} CPUs): rows are the fastest of several calls, but treat them as "
                "indicative, the end-to-end rows especially, and rerun on a quiet machine for firm numbers. "
                "Bandwidth-bound rows above 100% of read bandwidth were partly served from cache.*", ""]
    rows = [r for r in results["rows"] if "skipped" not in r]
    ms = _ms(rows)
    speed, pct = {}, {}
    for r in rows:
        if r["impl"] != "bigaccel":
            continue
        what = (r["family"], r["op"], r["dtype"], r["shape"].replace("x", "×"))
        for base in r["headline"]:
            if base in r["speedup"]:
                speed.setdefault((*what, base), {})[r["m"]] = f"{r['speedup'][base]:.2f}×"
        pct.setdefault(what, {})[r["m"]] = f"{r['pct_limit']:.0f}% {_LIMIT_SHORT.get(r['limit'], r['limit'])}"
    out += _grid("Speedup of bigaccel over the baseline (time of baseline / time of bigaccel)", speed, ms,
                 ["family", "op", "dtype", "shape", "baseline"])
    out += _grid("bigaccel's percent of the machine's limit (bandwidth- or compute-bound by arithmetic intensity)",
                 pct, ms, ["family", "op", "dtype", "shape"])
    e2e = [r for r in results.get("e2e", []) if "tokens_per_s" in r]
    if e2e:
        model = e2e[0]["model"]
        out += [f"**End to end: greedy decode tokens/s, random-initialised Llama-style model `{model}`** "
                "(speedup over the float model of the same dtype)", "",
                "| dtype | recipe | " + " | ".join(f"batch {b}" for b in sorted({r['batch'] for r in e2e})) + " |",
                "|" + " --- |" * (2 + len({r['batch'] for r in e2e}))]
        by = {}
        for r in e2e:
            by.setdefault((r["dtype"], r["recipe"]), {})[r["batch"]] = \
                f"{r['tokens_per_s']:.1f} ({r['speedup'].get('float ' + r['dtype'], float('nan')):.2f}×)"
        for (d, recipe), cells in by.items():
            out.append(f"| {d} | {recipe} | " + " | ".join(cells[b] for b in sorted(cells)) + " |")
        out.append("")
    notes = [n for family in results.get("notes", {}).values() for n in family]
    skipped = sorted({f"{r['name']}: {r['skipped']}" for r in results["rows"] if "skipped" in r})
    out += [f"- {n}" for n in notes + skipped]
    return "\n".join(out).rstrip() + "\n"


def render(files: list[tuple[str, set[str] | None]], summary: bool = False) -> str:
    """The tables of these files (summary: the rows of in_summary), then how to regenerate them."""
    parts = []
    for path, only in files:
        with open(path) as f:
            parts.append(tables(json.load(f), path, only, summary))
    regenerate = ("Regenerate: `bigaccel bench --save --threads N` (writes `bench/results/<machine>-<date>.json`), "
                  "then `python bench/report.py --readme` (each family from the newest run of its machine "
                  "that measured it).")
    return "\n".join(parts) + "\n" + regenerate + "\n"


RESULTS_HEAD = """# Benchmark results: every table

Generated by `python bench/report.py --readme` from the newest run of each machine and op
family in `bench/results/`; README.md's Benchmarks section shows a summary and explains how
to read them. Ratios hold within one run (one table); compare absolute times across runs
only on the same, quiet machine.

"""


def update_readme(text: str, readme: str = README) -> None:
    with open(readme) as f:
        content = f.read()
    if BEGIN not in content or END not in content:
        raise SystemExit(f"{readme} has no {BEGIN} ... {END} markers in its Benchmarks section")
    head, rest = content.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    with open(readme, "w") as f:
        f.write(f"{head}{BEGIN}\n<!-- generated by bench/report.py; do not edit by hand -->\n{text}{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*", help="results JSON files (default: the newest in bench/results/)")
    parser.add_argument("--readme", action="store_true", help="write the tables into README.md")
    args = parser.parse_args(argv)
    files = [(path, None) for path in args.files] or newest_results()
    if not files:
        print("no results: run `bigaccel bench --save` first", file=sys.stderr)
        return 1
    if args.readme:
        update_readme(render(files if args.files else newest_results(newest_machine_only=True), summary=True))
        with open(RESULTS, "w") as f:
            f.write(RESULTS_HEAD + render(files))
        print(f"README.md and bench/RESULTS.md updated from {', '.join(path for path, _ in files)}")
    else:
        print(render(files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
