"""The `bigaccel` command: `bigaccel info [--json]`, `bigaccel demo` (see bigaccel/demo.py), `bigaccel bench`."""
from __future__ import annotations

import argparse
import json
import sys
import time


def _print_info(data: dict) -> None:
    ext = data["extensions"]
    print(f"bigaccel {data['version']}  (python {data['python']}, torch {data['torch']['running']}, "
          f"built against {data['torch']['built_against']})")
    for key, e in ext.items():
        print(f"  extension {e['module']:<18} {'loaded' if e['loaded'] else 'NOT loaded: ' + e['reason']}")
    cpu = data["cpu"]
    override = f" (BIGACCEL_CPU_ISA={cpu['isa_override']})" if cpu["isa_override"] else ""
    bf16 = (", AVX512_BF16 (bf16 x: vdpbf16ps tiles, then an outer-product GEMM)" if cpu.get("avx512_bf16")
            else "")
    print(f"  cpu: {cpu['machine']}, ISA detected {cpu['isa_detected']}, in use {cpu['isa_in_use']}{override}{bf16}, "
          f"{cpu['threads']} threads")
    cuda = data["cuda"]
    archs = ";".join(cuda["archs_compiled"]) or "-"
    gpu = f"{cuda['gpu']['name']} ({cuda['gpu']['arch']})" if cuda["gpu"] else "no GPU visible"
    cutlass = "with CUTLASS GEMMs" if cuda.get("cutlass") else "without CUTLASS GEMMs (pip install nvidia-cutlass, rebuild)"
    if not cuda["built"]:
        cutlass = "-"
    print(f"  cuda: built={cuda['built']} archs={archs} (CUDA {cuda['cuda_built_with']}, {cutlass}); {gpu}")
    if cuda["built"]:
        state = "on" if cuda.get("unverified_kernels") else "off (BIGACCEL_UNVERIFIED_KERNELS=1 turns them on)"
        print(f"  cuda: sm_90a W8A8 GEMM {'built' if cuda.get('hopper_module') else 'not built'}; kernels not yet "
              f"verified on a GPU (CUTLASS 2:4 GEMMs, W8A16 GEMM for M > 8, 16-byte int4 GEMV and wide int8 GEMVs for M <= 8): {state}")
    tr = data["triton"]
    print(f"  triton: {tr.get('version', 'not installed')}" + (" (interpreter)" if tr.get("interpreter") else ""))
    if data["backend_override"]:
        print(f"  BIGACCEL_BACKEND={data['backend_override']}")
    print("ops:")
    for op, devices in data["ops"].items():
        for device, c in devices.items():
            print(f"  {op:<24} {device:<5} -> {c['backend'] or 'ERROR'} ({c['why']})")
            for backend, reason in c["not_used"].items():
                print(f"  {'':<24} {'':<5}    not {backend}: {reason}")


def cmd_info(args) -> int:
    import bigaccel

    data = bigaccel.info()
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        _print_info(data)
    return 0


def _time(fn, repeat: int = 20) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def cmd_demo(args) -> int:
    from .demo import run_demo

    return run_demo(args)


def _import_bench_runner():
    """bench/ lives in the source tree (it is not in the wheel): find it next to
    this package (editable install) or in the current directory."""
    import importlib
    import os

    for root in (os.path.dirname(os.path.dirname(os.path.abspath(__file__))), os.getcwd()):
        if os.path.isfile(os.path.join(root, "bench", "runner.py")):
            if root not in sys.path:
                sys.path.insert(0, root)
            return importlib.import_module("bench.runner")
    return None


def cmd_bench(args) -> int:
    runner = _import_bench_runner()
    if runner is None:
        print("bigaccel bench: the benchmark suite (bench/) is in bigaccel's source tree, not in the wheel; "
              "run this from a clone of the repository (pip install -e .)", file=sys.stderr)
        return 2
    return runner.main_from_cli(args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bigaccel", description="bigaccel: fast kernels for pruned and quantized models")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("info", help="show what is built and which backend each op uses")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.set_defaults(func=cmd_info)
    p = sub.add_parser("demo", help="convert a small Llama-style model with each recipe and compare it with fp32")
    p.add_argument("--layers", type=int, default=2, help="decoder layers (default 2)")
    p.add_argument("--hidden", type=int, default=512, help="hidden size, a multiple of 64 (default 512)")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--seq", type=int, default=64)
    p.add_argument("--repeat", type=int, default=3, help="timed forward passes per measurement (x4 for 1 token)")
    p.add_argument("--tiny", action="store_true", help="only the TinyLlama demo (the fallback without transformers); "
                   "--layers/--hidden/--batch/--seq apply to it")
    p.add_argument("--llama-7b", action="store_true", help="transformers demo: the Llama at Llama-7B widths "
                   "(hidden 4096, MLP 11008, vocab 32000; slow on a few CPU cores)")
    p.add_argument("--llama-layers", type=int, default=2, help="transformers demo: Llama decoder layers (default 2)")
    p.add_argument("--new-tokens", type=int, default=8, help="transformers demo: tokens decoded per measurement")
    p.add_argument("--all-recipes", action="store_true", help="transformers demo: also the int4 group-size variants")
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser("bench", help="benchmark the ops against torch baselines and this machine's limits")
    p.add_argument("--op", action="append", help="op family to run (repeatable): a bench/cases module or e2e")
    p.add_argument("--quick", action="store_true", help="fewer shapes and M values, short timing (CI)")
    p.add_argument("--budget", type=float, metavar="SECONDS",
                   help="timing budget per case (default 0.5, 0.1 with --quick)")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON (after each family, and at the end)")
    p.add_argument("--save", action="store_true", help="write the results to bench/results/<machine>-<date>.json")
    p.add_argument("--plot", metavar="FILE.png", help="plot speedup vs M (needs matplotlib)")
    p.add_argument("--threads", type=int, help="CPU threads (default: every CPU available)")
    p.add_argument("--models", default="7b", metavar="LIST",
                   help="weight shapes of the linear families: a comma list of 7b (Llama-2-7B, the default), 13b "
                        "(Llama-2-13B), small (TinyLlama-1.1B) and 8k (8192x8192, adding M=8192: the 8192^3 GEMM, for "
                        "GPUs); --quick uses one small shape")
    p.add_argument("--e2e-model", choices=["tiny", "small", "llama2-7b"],
                   help="end-to-end model (default: llama2-7b on GPU, small on CPU, tiny with --quick)")
    p.set_defaults(func=cmd_bench)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
