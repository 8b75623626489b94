"""int8 linear layers: W8A8 dynamic (bigaccel.ops.int8_linear) and W8A16
(bigaccel.ops.int8_weight_only_linear) against what a user would otherwise run:
fp32 and bf16 F.linear, torch.ao quantize_dynamic (CPU, fp32 only),
torch._int_mm (raw int8 GEMM, no quantization: the int8 rate torch offers),
torch._weight_int8pack_mm (torch's W8A16), and torchao when installed.

Weights rotate through copies whose total exceeds the cache; activations do not
(in a model they were just written, so they are in cache).
"""
from __future__ import annotations

import copy
import functools
import importlib.util
import warnings

import torch

import bigaccel
from bigaccel import reference

from ..case import DTYPE_BYTES, Case, Skip, linear_case_maker
from ..timing import float_linear_setup, random_activations, rotated

FAMILY = "int8_linear"


@functools.lru_cache(maxsize=1)
def _weight(n: int, k: int, device: str) -> torch.Tensor:
    return torch.randn(n, k, device=device) / k**0.5


@functools.lru_cache(maxsize=1)
def _int8_weight(n: int, k: int, device: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    q, scale = reference.quantize_per_channel_int8(_weight(n, k, device))
    return q, scale, q.sum(1, dtype=torch.int32)


def _float_linear(m, n, k, dtype, device):
    return float_linear_setup(m, k, lambda: _weight(n, k, device), dtype, device)


def _quantize_dynamic(m, n, k, device):
    def setup():
        if device != "cpu":
            raise Skip("torch.ao quantize_dynamic runs on CPU only")
        from torch.ao.quantization import quantize_dynamic

        linear = torch.nn.Linear(k, n, bias=False)
        linear.weight.data = _weight(n, k, device)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.backends.quantized.engine = "x86"  # fbgemm with x86 heuristics
            layer = quantize_dynamic(torch.nn.Sequential(linear), {torch.nn.Linear}, dtype=torch.qint8)
        x = random_activations(m, k, torch.float32, device)
        return rotated(lambda x, layer: layer(x), lambda: (x, copy.deepcopy(layer)), n * k, device, cap=64)
    return setup


def _int_mm(m, n, k, device):
    def setup():
        q = _int8_weight(n, k, device)[0]
        a = torch.randint(-127, 128, (m, k), dtype=torch.int8, device=device)
        try:
            torch._int_mm(a, q.t())
        except RuntimeError as exc:
            raise Skip(f"torch._int_mm: {str(exc).splitlines()[0]}") from None
        return rotated(lambda a, q: torch._int_mm(a, q.t()), lambda: (a, q.clone()), n * k, device)
    return setup


def _weight_int8pack_mm(m, n, k, dtype, device):
    def setup():
        q, scale, _ = _int8_weight(n, k, device)
        x, s = random_activations(m, k, dtype, device), scale.to(dtype)
        try:
            torch._weight_int8pack_mm(x, q, s)
        except (RuntimeError, AttributeError) as exc:
            raise Skip(f"torch._weight_int8pack_mm: {str(exc).splitlines()[0]}") from None
        return rotated(torch._weight_int8pack_mm, lambda: (x, q.clone(), s), n * k, device)
    return setup


def _bigaccel(op, m, n, k, dtype, device):
    def setup():
        q, scale, wsum = _int8_weight(n, k, device)
        x = random_activations(m, k, dtype, device)
        if op == "W8A8":
            fn = lambda x, q, s, ws: bigaccel.ops.int8_linear(x, q, s, ws)  # noqa: E731
            return rotated(fn, lambda: (x, q.clone(), scale, wsum), n * k, device)
        return rotated(bigaccel.ops.int8_weight_only_linear, lambda: (x, q.clone(), scale), n * k, device)
    return setup


def _bigaccel_gelu(fused: bool, m, n, k, dtype, device):
    """W8A8 then GELU: in the GEMM's epilogue (the layers' activation= option), or the
    same layer followed by F.gelu, what a user would otherwise write."""
    def setup():
        q, scale, wsum = _int8_weight(n, k, device)
        x = random_activations(m, k, dtype, device)
        if fused:
            fn = lambda x, q, s, ws: bigaccel.ops.int8_linear(x, q, s, ws, activation="gelu")  # noqa: E731
        else:
            fn = lambda x, q, s, ws: torch.nn.functional.gelu(bigaccel.ops.int8_linear(x, q, s, ws))  # noqa: E731
        return rotated(fn, lambda: (x, q.clone(), scale, wsum), n * k, device)
    return setup


def _torchao(op, m, n, k, dtype, device):
    """torchao's int8 layers via quantize_(); its config names changed across versions."""
    def setup():
        try:
            from torchao.quantization import quantize_
            import torchao.quantization as tq

            if op == "W8A16":
                config = getattr(tq, "Int8WeightOnlyConfig", None) or tq.int8_weight_only
            else:
                config = getattr(tq, "Int8DynamicActivationInt8WeightConfig", None) or tq.int8_dynamic_activation_int8_weight
            model = torch.nn.Sequential(torch.nn.Linear(k, n, bias=False, device=device, dtype=dtype))
            model[0].weight.data = _weight(n, k, device).to(dtype)
            quantize_(model, config())
            x = random_activations(m, k, dtype, device)
            model(x)
        except Exception as exc:  # an optional extra: any failure is a skip, with the reason
            raise Skip(f"torchao {op}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
        return rotated(lambda x, mod: mod(x), lambda: (x, copy.deepcopy(model)), n * k, device, cap=64)
    return setup


def notes(cfg) -> list[str]:
    out = []
    if importlib.util.find_spec("torchao") is None:
        out.append("torchao is not installed: its int8 layers are not compared (pip install torchao)")
    if importlib.util.find_spec("bitsandbytes") is None:
        out.append("bitsandbytes is not installed: LLM.int8() is not compared")
    elif cfg.device != "cuda":
        out.append("bitsandbytes is compared on GPU only")
    out.append("torch._int_mm is a raw int8 x int8 -> int32 GEMM (no quantization, no scales): the int8 rate torch offers")
    return out


def cases(cfg) -> list[Case]:
    dev, out = cfg.device, []
    have_torchao = importlib.util.find_spec("torchao") is not None
    for n, k in cfg.linear_shapes:
        for m in cfg.ms:
            case = linear_case_maker(FAMILY, n, k, m, dev)

            # Baselines first, so pytest-benchmark can compute speedups as it goes.
            for d, dt in cfg.dtypes.items():
                out.append(case("linear", "F.linear", d, _float_linear(m, n, k, dt, dev), DTYPE_BYTES[d]))
            if dev == "cpu":
                out.append(case("W8A8", "quantize_dynamic", "fp32", _quantize_dynamic(m, n, k, dev), 1, compute="int8"))
            out.append(case("int8 GEMM", "torch._int_mm", "int8", _int_mm(m, n, k, dev), 1, out_bytes=4))
            # On CUDA torch's W8A16 is a plain kernel, 100-900x slower than the GEMMs from M = 64
            # (H200, 2026-11-27): no GPU user would pick it there, and timing it at 8192^3 takes minutes.
            for d, dt in cfg.dtypes.items():
                if dev == "cpu" or m <= 64:
                    out.append(case("W8A16", "torch._weight_int8pack_mm", d, _weight_int8pack_mm(m, n, k, dt, dev), 1))
            torchao = []
            if have_torchao:
                for d, dt in cfg.dtypes.items():
                    for op in ("W8A8", "W8A16"):
                        out.append(case(op, f"torchao {op}", d, _torchao(op, m, n, k, dt, dev), 1,
                                        compute="int8" if op == "W8A8" else d))
                        torchao.append((op, d, out[-1].name))
            for d, dt in cfg.dtypes.items():
                other = "bf16" if d == "fp32" else "fp32"
                ao = [name for op, dd, name in torchao if dd == d]
                w8a8 = [f"F.linear {d}", f"F.linear {other}", "torch._int_mm int8"] + (
                    ["quantize_dynamic fp32"] if d == "fp32" and dev == "cpu" else []) + [a for a in ao if "W8A8" in a]
                out.append(case("W8A8", "bigaccel", d, _bigaccel("W8A8", m, n, k, dt, dev), 1, compute="int8", baselines=w8a8,
                                headline=[f"F.linear {d}", "quantize_dynamic fp32" if d == "fp32" and dev == "cpu"
                                          else "torch._int_mm int8"]))
                w8a16 = [f"F.linear {d}", f"F.linear {other}", f"torch._weight_int8pack_mm {d}"] + [
                    a for a in ao if "W8A16" in a]
                out.append(case("W8A16", "bigaccel", d, _bigaccel("W8A16", m, n, k, dt, dev), 1, baselines=w8a16,
                                headline=[f"F.linear {d}", f"torch._weight_int8pack_mm {d}"]))
                out.append(case("W8A8+GELU", "bigaccel then F.gelu", d, _bigaccel_gelu(False, m, n, k, dt, dev), 1,
                                compute="int8"))
                out.append(case("W8A8+GELU", "bigaccel epilogue GELU", d, _bigaccel_gelu(True, m, n, k, dt, dev), 1,
                                compute="int8", baselines=[f"bigaccel then F.gelu {d}"],
                                headline=[f"bigaccel then F.gelu {d}"]))
    return out
