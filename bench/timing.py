"""How bench/ times one call, the way a real model would see it.

CPU: a fixed thread count (reported with the results) and wall-clock time per
call. GPU: CUDA events around the replay of a CUDA graph of the calls (kernel
time, without Python's launch cost), with the L2 flushed unless the operands
rotate. Bandwidth-bound cases rotate their operands through enough
copies that together they exceed the last-level cache 8-fold: a 4096x4096 int8
weight (16 MiB) fits in a 32 MiB LLC and would otherwise be timed from cache, and
3-fold was not enough on a VM whose vCPUs' L3 (a victim cache, possibly on two
CCDs) kept part of the rotation: a bf16 GEMV then read 35 GB/s against 12 measured.
"""
from __future__ import annotations

import math
import os
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

_FALLBACK_LLC = 32 * 2**20
MAX_COPIES = 4096  # the harness's own tests lower this: at toy sizes rotation only costs time
# How many times the cache the rotated operands fill. --quick (a smoke run for CI)
# lowers it to 2: still past the cache, and allocating 8x per case dominated its time.
ROTATION_FACTOR = 8.0


def cpu_threads_available() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def cpu_llc_bytes() -> int:
    """The largest CPU cache (from sysfs), or 32 MiB when it cannot be read."""
    best = 0
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        for entry in os.listdir(base):
            with open(os.path.join(base, entry, "size")) as f:
                text = f.read().strip()
            scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1], 1)
            best = max(best, int(text.rstrip("KMG")) * scale)
    except (OSError, ValueError):
        pass
    return best or _FALLBACK_LLC


def cache_bytes(device: str) -> int:
    if device == "cuda":
        return int(getattr(torch.cuda.get_device_properties(0), "L2_cache_size", 50 * 2**20))
    return cpu_llc_bytes()


def copies_to_exceed_cache(bytes_per_copy: float, device: str, factor: float | None = None, cap: int = 4096) -> int:
    """How many copies of the operands make their total at least `factor` (default
    ROTATION_FACTOR) x the cache."""
    if bytes_per_copy <= 0:
        return 1
    factor = ROTATION_FACTOR if factor is None else factor
    return max(1, min(cap, MAX_COPIES, math.ceil(factor * cache_bytes(device) / bytes_per_copy)))


class Rotation:
    """Calls fn(*args) with the next set of operands each time, round robin."""

    def __init__(self, fn: Callable, arg_sets: Sequence[tuple]):
        self.fn, self.arg_sets, self.i = fn, list(arg_sets), 0

    def __call__(self):
        args = self.arg_sets[self.i]
        self.i = (self.i + 1) % len(self.arg_sets)
        return self.fn(*args)


def rotated(fn: Callable, make_copy: Callable[[], tuple], nbytes: float, device: str, cap: int = 4096) -> Rotation:
    """fn over enough fresh operand sets (make_copy(), `nbytes` of weights each) to exceed the cache."""
    return Rotation(fn, [make_copy() for _ in range(copies_to_exceed_cache(nbytes, device, cap=cap))])


def random_activations(m: int, k: int, dtype: torch.dtype, device: str) -> torch.Tensor:
    return torch.randn(m, k, device=device).to(dtype)


def float_linear_setup(m: int, k: int, weight: Callable[[], torch.Tensor], dtype: torch.dtype, device: str):
    """The setup of the F.linear baseline on `weight()` cast to `dtype`, rotated like the weights it stands beside."""
    def setup():
        w = weight().to(dtype)
        return rotated(torch.nn.functional.linear, lambda: (random_activations(m, k, dtype, device), w.clone()),
                       w.numel() * w.element_size(), device)
    return setup


@dataclass
class Timing:
    median_s: float
    min_s: float
    reps: int
    device: str = "cpu"
    method: str = "wall clock"  # GPU: "cuda graph", or "eager" for a call that cannot be captured

    @property
    def seconds(self) -> float:
        """The time a row reports. GPU: the median. CPU: the minimum, because CPU
        timings are taken on machines shared with other work (CI, builds): a
        descheduled OpenMP thread stalls a whole parallel region for a scheduler
        tick, which inflates the median but rarely the best of several calls."""
        return self.median_s if self.device == "cuda" else self.min_s

    def as_dict(self) -> dict:
        return {"median_s": self.median_s, "min_s": self.min_s, "reps": self.reps, "device": self.device,
                "method": self.method}


def _cpu_times(call: Callable, budget_s: float, min_reps: int, max_reps: int) -> list[float]:
    start = time.perf_counter()
    call()  # warm-up: allocator, lazy init, first touch
    warm = time.perf_counter() - start
    if warm > 5 * budget_s:
        # A call far slower than the whole budget (a slow baseline at large M) is
        # timed once; warm-up effects are small against it. The row reports reps=1.
        return [warm]
    times: list[float] = []
    spent = 0.0
    while len(times) < max_reps and (len(times) < min_reps or spent < budget_s):
        t0 = time.perf_counter()
        call()
        dt = time.perf_counter() - t0
        times.append(dt)
        spent += dt
    return times


_FLUSH: dict[int, torch.Tensor] = {}


def _capture(call: Callable, n: int):
    """A CUDA graph of `n` calls, or None when the call cannot be captured (it syncs, say)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up on a side stream, as capture requires
        for _ in range(3):
            call()
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph):
            for _ in range(n):
                call()
    except Exception:  # noqa: BLE001  timed eagerly instead; the row says so
        torch.cuda.synchronize()
        return None
    return graph


def _gpu_times(call: Callable, budget_s: float, min_reps: int, max_reps: int) -> tuple[list[float], str]:
    """Kernel time per call, and how it was taken. The calls are captured in a CUDA graph
    and replayed: one eager call's Python and dispatch cost (~30 us on the lent H100s)
    exceeds a decode GEMV's kernel, and would be timed instead of it. A rotation's
    copies exceed L2, so a burst of one call per copy is timed without flushing;
    anything else is timed one call at a time after an L2 flush."""
    if 0 not in _FLUSH:
        _FLUSH[0] = torch.empty(2 * cache_bytes("cuda"), dtype=torch.int8, device="cuda")
    flush = _FLUSH[0]
    burst = len(call.arg_sets) if isinstance(call, Rotation) else 1
    if isinstance(call, Rotation):
        call.i = 0
    graph = _capture(call, burst)
    method = "cuda graph" if graph is not None else "eager"
    run = graph.replay if graph is not None else (lambda: [call() for _ in range(burst)])
    run()
    torch.cuda.synchronize()
    times: list[float] = []
    spent = 0.0
    while len(times) < max_reps and (len(times) < min_reps or spent < budget_s):
        if burst == 1:
            flush.zero_()  # evict the previous call's operands from L2
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        run()
        end.record()
        end.synchronize()
        dt = start.elapsed_time(end) / 1e3
        times.append(dt / burst)
        spent += dt + 20e-6  # count the flush too, so tiny kernels stop in reasonable time
    del graph
    return times, method


def measure(call: Callable, device: str, budget_s: float = 0.5, min_reps: int = 3, max_reps: int = 2000) -> Timing:
    """Median and minimum seconds per call of `call` on `device`."""
    if device == "cuda":
        times, method = _gpu_times(call, budget_s, min_reps, max_reps)
    else:
        times, method = _cpu_times(call, budget_s, min_reps, max_reps), "wall clock"
    return Timing(statistics.median(times), min(times), len(times), device, method)
