"""Describe the machine a result came from: CPU, ISA in use, threads, GPU, versions."""
from __future__ import annotations

import datetime
import os
import platform
import re

import torch

from .timing import cpu_llc_bytes, cpu_threads_available


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe(device: str) -> dict:
    import bigaccel

    info = bigaccel.info()
    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    gpu = None
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        gpu = {"name": props.name, "arch": f"sm_{props.major}{props.minor}", "memory_gib": round(props.total_memory / 2**30, 1),
               "l2_mib": getattr(props, "L2_cache_size", 0) >> 20}
    return {
        "device": device,
        "cpu": cpu_model(),
        "isa_detected": info["cpu"]["isa_detected"],
        "isa_in_use": info["cpu"]["isa_in_use"],
        "cpus_available": cpu_threads_available(),
        "cpus_total": os.cpu_count(),
        "threads_used": torch.get_num_threads(),
        "llc_mib": cpu_llc_bytes() >> 20,
        "gpu": gpu,
        "versions": {"bigaccel": info["version"], "torch": torch.__version__, "triton": triton_version,
                     "python": platform.python_version()},
        # Other work on the machine skews CPU timings; the load says how quiet it was.
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%MZ"),
    }


def slug(machine: dict) -> str:
    """A file-name-safe machine name, e.g. 'amd-epyc-avx512-2t' or 'nvidia-h100-80gb-hbm3'. A CPU
    is named with the instruction set its kernels ran: the same model name has come with AVX-512
    hidden (AVX2 kernels) on one VM and exposed on another, and their results must not mix."""
    if machine.get("gpu"):
        name = machine["gpu"]["name"]
    else:
        name = f"{machine['cpu']}-{machine.get('isa_in_use') or 'noext'}-{machine['threads_used']}t"
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def results_path(machine: dict, root: str) -> str:
    return os.path.join(root, f"{slug(machine)}-{machine['date'][:10]}.json")
