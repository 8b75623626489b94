"""pytest-benchmark front end of the suite: `pytest bench/ [--bench-quick] [--bench-threads N]`.

Every case of every bench/cases module becomes one test; extra_info carries its
throughput, roofline verdict and speedups over the baselines measured earlier in
the same session (baselines come first in each group).
"""
from __future__ import annotations

import warnings

import pytest
import torch

from bench import cases as cases_pkg
from bench import timing
from bench.cases import BenchConfig
from bench.limits import measure_limits
from bench.runner import setup_threads


def pytest_addoption(parser):
    group = parser.getgroup("bigaccel bench")
    group.addoption("--bench-quick", action="store_true", help="fewer shapes and M values (as bigaccel bench --quick)")
    group.addoption("--bench-threads", type=int, default=None, help="CPU threads (default: all available)")
    group.addoption("--bench-budget", type=float, default=None, help="seconds of timed calls per case")


def _cfg(config) -> BenchConfig:
    return BenchConfig(device="cuda" if torch.cuda.is_available() else "cpu", quick=config.getoption("--bench-quick"))


def pytest_configure(config):
    setup_threads(config.getoption("--bench-threads"))
    timing.ROTATION_FACTOR = 2.0 if config.getoption("--bench-quick") else 8.0
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def pytest_generate_tests(metafunc):
    if "case" in metafunc.fixturenames:
        cfg = _cfg(metafunc.config)
        all_cases = [c for module in cases_pkg.families().values() for c in module.cases(cfg)]
        metafunc.parametrize("case", all_cases, ids=[c.id for c in all_cases])


@pytest.fixture(scope="session")
def bench_cfg(request) -> BenchConfig:
    return _cfg(request.config)


@pytest.fixture(scope="session")
def limits(bench_cfg):
    return measure_limits(bench_cfg.device, bench_cfg.quick)


@pytest.fixture(scope="session")
def measured() -> dict:
    """(group, name) -> median seconds, for the speedups of later cases."""
    return {}


@pytest.fixture(scope="session")
def bench_budget(request, bench_cfg) -> float:
    budget = request.config.getoption("--bench-budget")
    return budget if budget is not None else (0.15 if bench_cfg.quick else 0.5)
