import os

import pytest
import torch

# Triton kernels run on the CPU in Triton's interpreter when there is no GPU.
# It must be set before triton is imported.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import bigaccel  # noqa: E402
from bigaccel import _extension, backends, reference  # noqa: E402

HAS_GPU = torch.cuda.is_available()
CPU_EXT = _extension.load()["cpu"]
ISA_ORDER = ("portable", "avx2", "avx512")


def int16_activation_error(case, x: torch.Tensor, w_dense: torch.Tensor, max_rows: int = 4) -> torch.Tensor:
    """|w| @ |x - x16|: what the x86 kernels of the weight-only GEMMs add to the float
    computation by holding bf16/fp16 x as int16 (reference.quantize_activations_int16) at
    M <= max_rows (4, the GEMVs; W8A16 keeps it up to 127); zero for every other path.
    [M, N], float64."""
    backend, _, isa = case
    m = x.shape[0]
    if not (backend == "cpu" and isa in ("avx2", "avx512") and x.dtype in (torch.bfloat16, torch.float16)
            and m <= max_rows):
        return torch.zeros(m, w_dense.shape[0], dtype=torch.float64)
    x16 = reference.dequantize_activations_int16(*reference.quantize_activations_int16(x))
    return (x.double() - x16.double()).abs() @ w_dense.double().abs().t()


def cpu_bf16_kernels(case, x: torch.Tensor, min_rows: int, direct_op: bool = False) -> bool:
    """Whether this call takes the CPU's bf16 kernels (use_bf16_kernels in
    csrc/common/cpu_parallel.h): bf16 x, M >= min_rows, AVX-512 kernels on a CPU with
    AVX512_BF16; they take x as it is, with fp32 sums (int4 rounds its weight to bf16).
    direct_op: the test calls torch.ops.bigaccel.* itself, which on CPU tensors runs the C++
    kernel whatever backend the case names (BIGACCEL_BACKEND steers bigaccel.ops)."""
    backend, device, isa = case
    runs_cpp = backend == "cpu" or (direct_op and device == "cpu")
    return (runs_cpp and x.dtype == torch.bfloat16 and x.shape[0] >= min_rows and CPU_EXT.loaded
            and CPU_EXT.module.has_avx512_bf16())


def supported_isas() -> list[str]:
    if not CPU_EXT.loaded:
        return []
    best = CPU_EXT.module.detected_isa()
    return list(ISA_ORDER[: ISA_ORDER.index(best) + 1])


def backend_cases(op: str) -> list:
    """(backend, device, isa) for every backend of `op` that can run here, as pytest params."""
    registered = backends.registered(op)
    cases = []
    if "cpu" in registered:
        cases += [pytest.param(("cpu", "cpu", isa), id=f"cpu-{isa}") for isa in supported_isas()]
    if "triton" in registered and backends.unavailable_reason("triton", "cpu") is None:
        cases.append(pytest.param(("triton", "cpu", None), id="triton-interpreter"))
    cases.append(pytest.param(("reference", "cpu", None), id="reference"))
    if HAS_GPU:
        cases += [pytest.param((b, "cuda", None), id=f"{b}-gpu") for b in ("cuda", "triton") if b in registered]
    return cases


@pytest.fixture
def use_backend(monkeypatch):
    """use_backend(backend, isa=None): run the ops through this backend (and CPU ISA) for the test."""
    original_isa = CPU_EXT.module.active_isa() if CPU_EXT.loaded else None

    def select(backend: str, isa: str | None = None):
        monkeypatch.setenv("BIGACCEL_BACKEND", backend)
        backends.reset()
        if isa is not None:
            _extension.cpu_isa(isa)

    yield select
    monkeypatch.delenv("BIGACCEL_BACKEND", raising=False)
    backends.reset()
    if original_isa is not None:
        _extension.cpu_isa(original_isa)


@pytest.fixture
def fresh_backends():
    backends.reset()
    yield
    backends.reset()


def pytest_report_header(config):
    info = bigaccel.info()
    return [
        f"bigaccel {info['version']}: cpu isa {info['cpu']['isa_in_use']}, extensions "
        + ", ".join(f"{k}={'loaded' if v['loaded'] else 'missing'}" for k, v in info["extensions"].items())
        + f", triton interpreter={os.environ.get('TRITON_INTERPRET') == '1'}, gpu={HAS_GPU}"
    ]
