"""A benchmark case: one implementation of one op at one shape, and its verdict.

Cases that should be compared share a `group` (same op family, shape and M);
a subject (usually bigaccel's) names the baselines of its group it is compared
with. `setup()` builds the operands (rotated past the cache where that matters)
and returns the zero-argument call to time; it raises Skip when the
implementation cannot run here, which the table reports with the reason.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable


class Skip(Exception):
    """This implementation cannot run here; the message says why."""


@dataclass
class Case:
    family: str                 # the cases/ file it came from, e.g. "int8_linear"
    op: str                     # what is computed, e.g. "W8A8", "linear", "quantize_per_token"
    impl: str                   # who computes it, e.g. "bigaccel", "F.linear", "quantize_dynamic"
    dtype: str                  # activation dtype
    shape: str                  # weight N x K (or K for elementwise)
    m: int                      # tokens
    flops: float
    nbytes: float               # the least bytes the call must move (weights + activations + output)
    compute: str                # "fp32" | "bf16" | "int8" | "none" (elementwise): which peak applies
    setup: Callable[[], Callable[[], object]]
    baselines: tuple[str, ...] = ()   # names of cases in the same group to compare against
    headline: tuple[str, ...] = ()    # the subset of baselines the README table shows
    device: str = "cpu"

    @property
    def name(self) -> str:
        """Unique within its group."""
        return f"{self.impl} {self.op} {self.dtype}" if self.impl == "bigaccel" else f"{self.impl} {self.dtype}"

    @property
    def group(self) -> str:
        return f"{self.family}/{self.shape}/M{self.m}"

    @property
    def id(self) -> str:
        return f"{self.group}/{self.name}".replace(" ", "_")


@dataclass
class Row:
    """What the table, the JSON and pytest-benchmark's extra_info carry for a case."""

    case: Case
    time_s: float | None = None
    reps: int = 0
    verdict: dict = field(default_factory=dict)
    speedup: dict[str, float] = field(default_factory=dict)
    skipped: str | None = None  # why it could not run here (Skip), or "error: ..." when it broke
    error: bool = False
    method: str | None = None  # how it was timed (bench.timing.Timing.method)
    median_s: float | None = None  # time_s is the minimum on CPU (see bench.timing.Timing.seconds)

    def as_dict(self) -> dict:
        c = self.case
        d = {"id": c.id, "family": c.family, "group": c.group, "name": c.name, "op": c.op, "impl": c.impl,
             "dtype": c.dtype, "shape": c.shape, "m": c.m, "flops": c.flops, "bytes": c.nbytes, "compute": c.compute,
             "baselines": list(c.baselines), "headline": list(c.headline)}
        if self.skipped is not None:
            d["skipped"] = self.skipped
            if self.error:
                d["error"] = True
            return d
        d.update({"time_us": self.time_s * 1e6, "median_us": (self.median_s or self.time_s) * 1e6, "reps": self.reps,
                  "timing": self.method, "gbs": self.verdict["gbs"], "tflops": self.verdict["tflops"], "bound": self.verdict["bound"],
                  "pct_limit": self.verdict["pct_limit"], "limit": self.verdict["limit"],
                  "speedup": self.speedup})
        return d


def add_speedups(rows: list[Row]) -> None:
    """Fill each row's speedup over the baselines of its group that were measured."""
    times = {(r.case.group, r.case.name): r.time_s for r in rows if r.time_s}
    for r in rows:
        if not r.time_s:
            continue
        for base in r.case.baselines:
            t = times.get((r.case.group, base))
            if t:
                r.speedup[base] = t / r.time_s


DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2, "int8": 1}


def gemm_case_size(m: int, n: int, k: int, x_bytes: int, w_bytes: float, out_bytes: int) -> tuple[float, float]:
    """(FLOPs, least bytes) of an [m, k] x [n, k]^T GEMM with the given element sizes."""
    return 2.0 * m * n * k, m * k * x_bytes + n * k * w_bytes + m * n * out_bytes


def linear_case_maker(family: str, n: int, k: int, m: int, device: str) -> Callable[..., Case]:
    """case(op, impl, dtype, setup, w_bytes, compute=dtype, out_bytes=None, baselines=(), headline=())
    for one weight shape [n, k] and M of a linear family: the [m, k] x [n, k]^T GEMM's FLOPs
    (a sparse kernel's too, so that rates compare like with like) and least bytes, with the
    activations and, unless out_bytes says otherwise, the output in `dtype`, and w_bytes per weight."""
    def case(op, impl, dtype, setup, w_bytes, compute=None, out_bytes=None, baselines=(), headline=()) -> Case:
        x_bytes = DTYPE_BYTES[dtype]
        flops, nbytes = gemm_case_size(m, n, k, x_bytes, w_bytes, out_bytes or x_bytes)
        return Case(family, op, impl, dtype, f"{n}x{k}", m, flops, nbytes, compute or dtype, setup,
                    tuple(baselines), tuple(headline), device)
    return case
