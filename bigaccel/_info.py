"""bigaccel.info(): what is built, what runs, and why."""
from __future__ import annotations

import importlib.util
import os
import platform

import torch

from . import _extension, backends


def version() -> str:
    info = _extension.build_info
    return getattr(info, "version", "0.0.0+unbuilt")


def _devices() -> list[str]:
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _triton() -> dict:
    spec = importlib.util.find_spec("triton")
    if spec is None:
        return {"installed": False}
    import triton

    return {"installed": True, "version": triton.__version__, "interpreter": os.environ.get("TRITON_INTERPRET") == "1"}


def info() -> dict:
    """A dict describing this installation: versions, CPU ISA, CUDA archs, and for
    each op and device the backend in use and why the others are not."""
    exts = _extension.load()
    build = _extension.build_info
    cpu, cuda = exts["cpu"], exts["cuda"]
    gpu = None
    if torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability()
        gpu = {"name": torch.cuda.get_device_name(), "arch": f"sm_{major}{minor}"}
    ops = {}
    for op in backends.ops():
        ops[op] = {}
        for device in _devices():
            try:
                choice = backends.choose(op, device)
                ops[op][device] = {"backend": choice.backend, "why": choice.why, "not_used": choice.skipped}
            except (RuntimeError, ValueError) as exc:
                ops[op][device] = {"backend": None, "why": str(exc), "not_used": {}}
    return {
        "version": version(),
        "python": platform.python_version(),
        "torch": {"running": torch.__version__, "built_against": getattr(build, "torch_version", None)},
        "extensions": {
            key: {"module": f"bigaccel.{ext.name}", "loaded": ext.loaded, "reason": ext.reason or "loaded"}
            for key, ext in exts.items()
        },
        "cpu": {
            "machine": platform.machine(),
            "isa_detected": cpu.module.detected_isa() if cpu.loaded else None,
            "isa_in_use": cpu.module.active_isa() if cpu.loaded else None,
            "isa_override": os.environ.get("BIGACCEL_CPU_ISA") or None,
            # vdpbf16ps: the bf16 tiles and outer-product GEMMs of W8A16, W4A16 and 2:4 with bf16 activations
            "avx512_bf16": bool(cpu.module.has_avx512_bf16()) if cpu.loaded and hasattr(cpu.module, "has_avx512_bf16")
            else False,
            "threads": torch.get_num_threads(),
        },
        "cuda": {
            "built": bool(getattr(build, "cuda_built", False)),
            "archs_compiled": list(getattr(build, "cuda_archs", [])),
            "cuda_built_with": getattr(build, "torch_cuda_version", None),
            "cutlass": bool(getattr(build, "cutlass_include", False)) and bool(getattr(build, "cuda_built", False)),
            "hopper_module": exts["hopper"].loaded,
            # Kernels not yet verified on a GPU (the CUTLASS 2:4 and W8A16 GEMMs, the 16-byte int4 GEMV, the int8 GEMVs' wide form): off unless
            # asked for (csrc/common/cuda_utils.cuh, _sparse24_ops.py).
            "unverified_kernels": os.environ.get("BIGACCEL_UNVERIFIED_KERNELS") == "1",
            "gpu": gpu,
        },
        "triton": _triton(),
        "backend_override": os.environ.get("BIGACCEL_BACKEND") or None,
        "ops": ops,
    }
