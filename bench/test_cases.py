"""One pytest-benchmark test per case in bench/cases/ (parametrised in conftest.py)."""
from __future__ import annotations

import time

import pytest
import torch

from bench.case import Row, Skip
from bench.timing import measure


def _rounds(call, budget_s: float) -> int:
    start = time.perf_counter()
    call()
    return max(1, min(200, int(budget_s / max(time.perf_counter() - start, 1e-6))))


def test_case(case, benchmark, limits, measured, bench_budget):
    try:
        call = case.setup()
    except Skip as exc:
        pytest.skip(str(exc))
    if case.device == "cuda":
        # pytest-benchmark's wall clock includes a synchronize; the row's numbers come
        # from CUDA events with the L2 flushed (bench.timing), as in `bigaccel bench`.
        seconds = measure(call, "cuda", bench_budget).seconds
        benchmark.pedantic(lambda: (call(), torch.cuda.synchronize()), rounds=_rounds(call, bench_budget), iterations=1)
    else:
        benchmark.pedantic(call, rounds=_rounds(call, bench_budget), iterations=1, warmup_rounds=1)
        stats = getattr(benchmark, "stats", None)
        # the minimum, as bigaccel bench reports on CPU (bench.timing.Timing.seconds)
        seconds = stats.stats.min if stats else measure(call, "cpu", bench_budget).seconds
    row = Row(case, seconds, 0, limits.judge(case.flops, case.nbytes, seconds, case.compute))
    measured[(case.group, case.name)] = seconds
    row.speedup = {b: measured[(case.group, b)] / seconds for b in case.baselines if (case.group, b) in measured}
    info = row.as_dict()
    benchmark.extra_info.update({k: info[k] for k in ("op", "impl", "dtype", "shape", "m", "gbs", "tflops", "bound",
                                                      "pct_limit", "limit", "speedup")})
    benchmark.extra_info["threads"] = limits.threads
