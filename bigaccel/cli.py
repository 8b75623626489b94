"""The `bigaccel` command: `bigaccel info [--json]`, `bigaccel demo`."""
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
    print(f"  cpu: {cpu['machine']}, ISA detected {cpu['isa_detected']}, in use {cpu['isa_in_use']}{override}, "
          f"{cpu['threads']} threads")
    cuda = data["cuda"]
    archs = ";".join(cuda["archs_compiled"]) or "-"
    gpu = f"{cuda['gpu']['name']} ({cuda['gpu']['arch']})" if cuda["gpu"] else "no GPU visible"
    print(f"  cuda: built={cuda['built']} archs={archs} (CUDA {cuda['cuda_built_with']}); {gpu}")
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
    import torch

    import bigaccel
    from bigaccel import backends, reference

    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"bigaccel {bigaccel.__version__} demo on {device}\n")
    print(f"per-token int8 quantization of a random activation batch [{args.tokens}, {args.hidden}]:")
    print(f"  {'dtype':<9} {'backend':<10} {'matches reference':<18} {'rel. error':<11} {'time':>9} {'reference':>10}")
    for dtype in (torch.float32, torch.bfloat16):
        x = torch.randn(args.tokens, args.hidden, device=device, dtype=dtype)
        backend = backends.choose("quantize_per_token", device).backend
        q, scale = bigaccel.ops.quantize_per_token(x)
        q_ref, scale_ref = reference.quantize_per_token(x)
        exact = torch.equal(q, q_ref) and torch.equal(scale, scale_ref)
        err = ((q.float() * scale - x.float()).norm() / x.float().norm()).item()
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        t = _time(lambda: (bigaccel.ops.quantize_per_token(x), sync()))
        t_ref = _time(lambda: (reference.quantize_per_token(x), sync()))
        print(f"  {str(dtype).replace('torch.', ''):<9} {backend:<10} {str(exact):<18} {err:<11.2e} "
              f"{t * 1e6:>7.0f}us {t_ref * 1e6:>8.0f}us")
    print("\n(`bigaccel info` shows which backend runs each op and why.)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bigaccel", description="bigaccel: fast kernels for pruned and quantized models")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("info", help="show what is built and which backend each op uses")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.set_defaults(func=cmd_info)
    p = sub.add_parser("demo", help="run the ops on a random batch and compare them with the reference")
    p.add_argument("--tokens", type=int, default=256)
    p.add_argument("--hidden", type=int, default=4096)
    p.set_defaults(func=cmd_demo)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
