"""Loads the compiled extensions defensively.

Never raises: a missing, stale or broken extension is recorded with the reason
and the fix, and the backends fall back (backends.py warns once when they do).
Load order matters: ops.py declares the op schemas before this module imports
the extensions that register kernels for them.
"""
from __future__ import annotations

import importlib
import os
import warnings
from dataclasses import dataclass, field
from types import ModuleType

import torch

try:
    from . import _build_info as build_info
except ImportError:  # a source tree that was never built
    build_info = None

REBUILD = "rebuild it: pip install --no-build-isolation -e . (or reinstall the wheel built for this torch)"


@dataclass
class Extension:
    name: str
    description: str
    module: ModuleType | None = None
    reason: str = ""
    details: dict = field(default_factory=dict)

    @property
    def loaded(self) -> bool:
        return self.module is not None


def _torch_mismatch() -> str | None:
    built = getattr(build_info, "torch_version", None)
    if built and built != torch.__version__:
        return (
            f"bigaccel was compiled against torch {built} but torch {torch.__version__} is running; "
            f"the C++ ABI differs between torch versions, so {REBUILD}"
        )
    return None


def _load(name: str, description: str, built: bool, not_built_reason: str) -> Extension:
    ext = Extension(name, description)
    if os.environ.get("BIGACCEL_NO_EXTENSIONS", "") not in ("", "0"):
        ext.reason = "hidden by BIGACCEL_NO_EXTENSIONS"
    elif build_info is None:
        ext.reason = f"not built (bigaccel/_build_info.py is missing: this source tree was never built); {REBUILD}"
    elif not built:
        ext.reason = not_built_reason
    elif (mismatch := _torch_mismatch()) is not None:
        ext.reason = mismatch
    else:
        try:
            ext.module = importlib.import_module(f"bigaccel.{name}")
        except (ImportError, OSError) as exc:
            ext.reason = f"failed to load ({exc.__class__.__name__}: {exc}); {REBUILD}"
    return ext


def _load_all() -> dict[str, Extension]:
    cpu = _load("_C", "C++ CPU kernels", True, "")
    cuda_built = bool(getattr(build_info, "cuda_built", False))
    cuda = _load(
        "_C_cuda",
        "CUDA kernels",
        cuda_built,
        "not built: " + str(getattr(build_info, "cuda_build_reason", "")) + " (rebuild with nvcc and a CUDA build of torch)",
    )
    hopper = _load(
        "_C_hopper",
        "Hopper-only (sm_90a) CUDA kernels",
        bool(getattr(build_info, "hopper_built", False)),
        "not built: " + str(getattr(build_info, "hopper_build_reason", "")),
    )
    if cpu.loaded:
        _apply_cpu_isa_override(cpu)
    if cuda.loaded:
        cuda.details["archs"] = [a for a in cuda.module.compiled_archs.split(";") if a]
    if hopper.loaded:
        _attach_hopper(cuda, hopper)
    return {"cpu": cpu, "cuda": cuda, "hopper": hopper}


def _attach_hopper(cuda: Extension, hopper: Extension) -> None:
    """_C_cuda's ops reach the Hopper kernels through a table that _C_hopper publishes
    (csrc/hopper_kernels.h): the two modules cannot see each other's symbols."""
    if not cuda.loaded:
        hopper.reason = "loaded but unused: the CUDA extension it plugs into is not loaded"
        return
    try:
        cuda.module.attach_hopper_kernels(hopper.module.kernel_table(), hopper.module.table_version)
    except (RuntimeError, AttributeError) as exc:
        hopper.module, hopper.reason = None, f"could not be attached ({exc}); {REBUILD}"


def _apply_cpu_isa_override(cpu: Extension) -> None:
    requested = os.environ.get("BIGACCEL_CPU_ISA", "").strip().lower()
    if requested:
        try:
            cpu.module.set_active_isa(requested)
        except ValueError as exc:
            warnings.warn(
                f"bigaccel: ignoring BIGACCEL_CPU_ISA={requested!r}: {exc}; "
                f"using {cpu.module.active_isa()}",
                RuntimeWarning,
                stacklevel=2,
            )
    cpu.details["isa"] = cpu.module.active_isa()


EXTENSIONS: dict[str, Extension] = {}


def load() -> dict[str, Extension]:
    """Load (once) and return the extensions, keyed "cpu", "cuda" and "hopper"."""
    if not EXTENSIONS:
        EXTENSIONS.update(_load_all())
    return EXTENSIONS


def cpu_isa(name: str | None = None) -> str:
    """The CPU kernels' instruction set; with a name, switch to it first (it must be supported)."""
    cpu = load()["cpu"]
    if not cpu.loaded:
        raise RuntimeError(f"the C++ CPU extension is not available: {cpu.reason}")
    if name is not None:
        cpu.module.set_active_isa(name)
        cpu.details["isa"] = cpu.module.active_isa()
    return cpu.module.active_isa()
