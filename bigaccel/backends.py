"""Which backend serves which op on which device: the one place that decides.

Order of preference per device type:
    cuda tensors: cuda (C++/CUDA extension) -> triton -> reference
    cpu tensors:  cpu (C++ extension, best ISA)          -> reference
Triton runs CPU tensors only under TRITON_INTERPRET=1 (for testing) and is
never chosen for them automatically.

BIGACCEL_BACKEND overrides the choice: one backend for every op
(``BIGACCEL_BACKEND=reference``) or per op (``quantize_per_token=triton,int8_gemm=cuda``).
A forced backend that cannot run raises an error saying why; an automatic
fallback past a preferred backend warns once per cause.

The choice is made once per (op, device type) and cached; ``reset()`` forgets
it (after changing the environment).
"""
from __future__ import annotations

import importlib
import os
import warnings
from dataclasses import dataclass, field
from typing import Callable

import torch

from . import _extension

BACKENDS = ("cuda", "triton", "cpu", "reference")
AUTO_ORDER = {"cuda": ("cuda", "triton", "reference"), "cpu": ("cpu", "reference")}

# op name -> backend -> zero-argument loader returning the callable
_IMPLS: dict[str, dict[str, Callable[[], Callable]]] = {}
_CACHE: dict[tuple[str, str], Callable] = {}
_WARNED: set[str] = set()


@dataclass
class Choice:
    op: str
    device_type: str
    backend: str
    why: str
    skipped: dict[str, str] = field(default_factory=dict)


def register(op: str, backend: str, loader: Callable[[], Callable]) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
    _IMPLS.setdefault(op, {})[backend] = loader


def ops() -> list[str]:
    return sorted(_IMPLS)


def registered(op: str) -> list[str]:
    """The backends that have a kernel for `op` (whether or not they can run here)."""
    return [b for b in BACKENDS if b in _IMPLS.get(op, {})]


def reset() -> None:
    """Forget cached choices and warnings, e.g. after changing BIGACCEL_BACKEND."""
    _CACHE.clear()
    _WARNED.clear()


def _override(op: str) -> str | None:
    spec = os.environ.get("BIGACCEL_BACKEND", "").strip()
    if not spec:
        return None
    if "=" not in spec:
        choice = spec
    else:
        pairs = dict(item.split("=", 1) for item in spec.split(",") if "=" in item)
        choice = pairs.get(op)
        if choice is None:
            return None
    choice = choice.strip().lower()
    if choice not in BACKENDS:
        raise ValueError(f"BIGACCEL_BACKEND={spec!r}: unknown backend {choice!r}; expected one of {', '.join(BACKENDS)}")
    return choice


def _triton_reason(device_type: str) -> str | None:
    try:
        importlib.import_module("triton")
    except ImportError as exc:
        return f"triton is not installed ({exc})"
    if device_type == "cpu" and os.environ.get("TRITON_INTERPRET") != "1":
        return "Triton runs CPU tensors only in its interpreter (TRITON_INTERPRET=1, for testing)"
    return None


def _cuda_reason() -> str | None:
    ext = _extension.load()["cuda"]
    if not ext.loaded:
        return f"CUDA extension {ext.reason}"
    if not torch.cuda.is_available():
        return "no CUDA GPU is visible"
    major, minor = torch.cuda.get_device_capability()
    archs = ext.details.get("archs", [])
    for arch in archs:
        a_major, a_minor = (int(p) for p in arch.rstrip("a").split("."))
        # SASS runs on the same major arch at an equal or higher minor; 'a' archs only on their own.
        if a_major == major and (a_minor == minor or (a_minor < minor and not arch.endswith("a"))):
            return None
    return (
        f"the CUDA extension was compiled for {';'.join(archs) or 'no archs'}, not for this GPU's sm_{major}{minor}; "
        f"rebuild with BIGACCEL_CUDA_ARCHS=\"{major}.{minor}{'a' if major == 9 else ''}\""
    )


def unavailable_reason(backend: str, device_type: str) -> str | None:
    """Why `backend` cannot run tensors of `device_type` here, or None when it can."""
    if backend == "reference":
        return None
    if backend == "triton":
        return _triton_reason(device_type)
    if backend != device_type:
        return f"the {backend} backend runs {backend} tensors only"
    if backend == "cpu":
        ext = _extension.load()["cpu"]
        return None if ext.loaded else f"C++ CPU extension {ext.reason}"
    return _cuda_reason()


def choose(op: str, device_type: str) -> Choice:
    """Decide (without caching) which backend runs `op` on `device_type`, and why."""
    if op not in _IMPLS:
        raise KeyError(f"unknown bigaccel op {op!r}; known: {', '.join(ops())}")
    if device_type not in AUTO_ORDER:
        raise ValueError(f"bigaccel.{op}: tensors on {device_type} are not supported; move them to cpu or cuda")
    impls = _IMPLS[op]
    forced = _override(op)
    if forced is not None:
        reason = "no kernel for this op" if forced not in impls else unavailable_reason(forced, device_type)
        if reason:
            usable = [b for b in BACKENDS if b in impls and unavailable_reason(b, device_type) is None]
            raise RuntimeError(
                f"BIGACCEL_BACKEND asks for the {forced} backend for bigaccel.{op} on {device_type}, but {reason}. "
                f"Unset BIGACCEL_BACKEND or choose one of: {', '.join(usable)}"
            )
        return Choice(op, device_type, forced, "forced by BIGACCEL_BACKEND")
    skipped = {}
    for backend in AUTO_ORDER[device_type]:
        reason = "no kernel for this op yet" if backend not in impls else unavailable_reason(backend, device_type)
        if reason is None:
            why = "preferred" if not skipped else "first available"
            return Choice(op, device_type, backend, why, skipped)
        skipped[backend] = reason
    raise AssertionError("the reference backend is always available")  # pragma: no cover


def _warn_fallback(choice: Choice) -> None:
    for backend, reason in choice.skipped.items():
        if reason == "no kernel for this op yet" or reason in _WARNED:
            continue
        _WARNED.add(reason)
        warnings.warn(
            f"bigaccel: not using the {backend} backend ({reason}); bigaccel.{choice.op} on {choice.device_type} "
            f"falls back to {choice.backend}. `bigaccel info` shows every op's backend.",
            RuntimeWarning,
            stacklevel=4,
        )


@torch.compiler.disable
def _resolve(op: str, device_type: str) -> Callable:
    choice = choose(op, device_type)
    _warn_fallback(choice)
    fn = _IMPLS[op][choice.backend]()
    _CACHE[(op, device_type)] = fn
    return fn


def get(op: str, device: torch.device) -> Callable:
    """The callable that runs `op` for tensors on `device` (chosen once, then cached)."""
    fn = _CACHE.get((op, device.type))
    return fn if fn is not None else _resolve(op, device.type)


def prepare(device: torch.device | str = "cpu") -> dict[str, str]:
    """Choose every op's backend for `device` now (warning once where one falls back),
    as the first call would. torch.compile(fullgraph=True) cannot trace that choice, so
    call this (bigaccel.convert does) before compiling code that calls the ops directly.
    Returns op -> backend."""
    device = torch.device(device)
    chosen = {}
    for op in ops():
        get(op, device)
        chosen[op] = choose(op, device.type).backend
    return chosen

