"""int4 group-wise weight-only linear layers (W4A16, bigaccel.ops.int4_linear) against
what a user would otherwise run: fp32 and bf16 F.linear on the float weight,
torch's own CPU W4A16 (torch._weight_int4pack_mm_for_cpu, fed the same codes,
scales and zeros mapped to its format), and bitsandbytes Linear4bit when installed.

Weights rotate through copies whose total exceeds the cache; activations do not
(in a model they were just written, so they are in cache).
"""
from __future__ import annotations

import copy
import functools
import importlib.util

import torch

import bigaccel
from bigaccel import reference

from ..case import DTYPE_BYTES, Case, Skip, linear_case_maker
from ..timing import float_linear_setup, random_activations, rotated

FAMILY = "int4_linear"
GROUP_SIZES = (32, 64, 128)
QUICK_GROUP_SIZES = (128,)


@functools.lru_cache(maxsize=1)
def _weight(n: int, k: int, device: str) -> torch.Tensor:
    return torch.randn(n, k, device=device) / k**0.5


@functools.lru_cache(maxsize=3)
def _int4_weight(n: int, k: int, group: int, device: str):
    """(packed, scales, zeros) in bigaccel's canonical format, asymmetric (with zero points)."""
    return reference.quantize_int4(_weight(n, k, device), group, zero_point=True)


def _int4_bytes_per_weight(group: int) -> float:
    """Packed codes (half a byte) + an fp32 scale and a uint8 zero per group."""
    return 0.5 + (4 + 1) / group


def _float_linear(m, n, k, dtype, device):
    return float_linear_setup(m, k, lambda: _weight(n, k, device), dtype, device)


def _torch_int4pack(m, n, k, group, dtype, device):
    """torch's CPU W4A16. Its weight is int32 codes 0..15 [N, K] repacked by
    _convert_weight_to_int4pack_for_cpu; it dequantizes w = (code - 8) * scale + zero with
    scale/zero [K/G, N, 2] in x's dtype, so our (code - z) * s maps to zero = (8 - z) * s."""
    def setup():
        if device != "cpu":
            raise Skip("torch._weight_int4pack_mm_for_cpu runs on CPU only (the CUDA op wants another layout)")
        packed, scales, zeros = _int4_weight(n, k, group, device)
        codes = reference.unpack_int4(packed).to(torch.int32)
        scale_zero = torch.stack((scales, (8 - zeros.float()) * scales), -1).transpose(0, 1).contiguous().to(dtype)
        x = random_activations(m, k, dtype, device)
        try:
            w = torch._convert_weight_to_int4pack_for_cpu(codes, 1)
            torch._weight_int4pack_mm_for_cpu(x, w, group, scale_zero)
        except (RuntimeError, AttributeError) as exc:
            raise Skip(f"torch._weight_int4pack_mm_for_cpu: {str(exc).splitlines()[0]}") from None
        return rotated(lambda x, w, sz: torch._weight_int4pack_mm_for_cpu(x, w, group, sz),
                        lambda: (x, w.clone(), scale_zero), n * k / 2, device)
    return setup


def _bitsandbytes(m, n, k, dtype, device):
    """bitsandbytes Linear4bit (NF4, its default blocksize 64), quantized when moved to the device."""
    def setup():
        if importlib.util.find_spec("bitsandbytes") is None:
            raise Skip("bitsandbytes is not installed")
        try:
            import bitsandbytes as bnb

            layer = bnb.nn.Linear4bit(k, n, bias=False, compute_dtype=dtype, quant_type="nf4")
            layer.weight = bnb.nn.Params4bit(_weight(n, k, "cpu").to(dtype), requires_grad=False, quant_type="nf4")
            layer = layer.to(device)
            x = random_activations(m, k, dtype, device)
            layer(x)
        except Exception as exc:  # an optional extra: any failure is a skip, with the reason
            raise Skip(f"bitsandbytes Linear4bit: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
        return rotated(lambda x, mod: mod(x), lambda: (x, copy.deepcopy(layer)), n * k / 2, device, cap=64)
    return setup


def _bigaccel(m, n, k, group, dtype, device):
    def setup():
        packed, scales, zeros = _int4_weight(n, k, group, device)
        x = random_activations(m, k, dtype, device)
        fn = lambda x, p, s, z: bigaccel.ops.int4_linear(x, p, s, z, group)  # noqa: E731
        return rotated(fn, lambda: (x, packed.clone(), scales, zeros), n * k / 2, device)
    return setup


def notes(cfg) -> list[str]:
    out = ["int4 weights are asymmetric (with zero points), round to nearest (reference.quantize_int4); "
           "weight bytes count the packed codes, the fp32 scales and the uint8 zeros"]
    if importlib.util.find_spec("bitsandbytes") is None:
        out.append("bitsandbytes is not installed: its Linear4bit (NF4) is not compared")
    if cfg.device == "cpu":
        out.append("torch._weight_int4pack_mm_for_cpu gets the same codes, scales and zeros as bigaccel "
                   "(zero mapped to its float offset (8 - z) * scale, in the activation dtype)")
    return out


def cases(cfg) -> list[Case]:
    dev, out = cfg.device, []
    groups = (32,) if cfg.toy else QUICK_GROUP_SIZES if cfg.quick else GROUP_SIZES
    for n, k in cfg.linear_shapes:
        for m in cfg.ms:
            case = linear_case_maker(FAMILY, n, k, m, dev)

            # Baselines first, so pytest-benchmark can compute speedups as it goes.
            for d, dt in cfg.dtypes.items():
                out.append(case("linear", "F.linear", d, _float_linear(m, n, k, dt, dev), DTYPE_BYTES[d]))
            for d, dt in cfg.dtypes.items():
                out.append(case("W4A16 nf4", "bitsandbytes nf4", d, _bitsandbytes(m, n, k, dt, dev), 0.5 + 4 / 64))
            for g in groups:
                for d, dt in cfg.dtypes.items():
                    out.append(case(f"W4A16 g{g}", f"torch int4pack g{g}", d, _torch_int4pack(m, n, k, g, dt, dev),
                                    0.5 + 2 * DTYPE_BYTES[d] / g))
            for g in groups:
                for d, dt in cfg.dtypes.items():
                    other = "bf16" if d == "fp32" else "fp32"
                    torch_int4 = f"torch int4pack g{g} {d}"
                    baselines = [f"F.linear {d}", f"F.linear {other}", torch_int4, f"bitsandbytes nf4 {d}"]
                    out.append(case(f"W4A16 g{g}", "bigaccel", d, _bigaccel(m, n, k, g, dt, dev),
                                    _int4_bytes_per_weight(g), baselines=baselines,
                                    headline=[f"F.linear {d}", torch_int4]))
    return out
