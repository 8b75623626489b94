"""The machine's limits, measured in the same run as the cases they judge.

- read bandwidth: a sum over a buffer 8x the last-level cache (streaming read);
- copy bandwidth: dst.copy_(src) of such a buffer, counting read + write bytes;
- GEMM peaks: fp32 and bf16 torch.mm in nn.Linear's layout (x @ w.T) at a large
  square shape; int8 as the best of torch._int_mm and, on CPU, torch.ao's
  quantized dynamic linear (fbgemm) at a large square shape, since torch._int_mm
  has no fast CPU path and would understate what the hardware does. On CPU each
  peak is raised to the vector units' own rate where bigaccel's extension can
  measure it (bigaccel._C.peak_tops: a loop of independent FMA / vdpbf16ps /
  vpdpbusd on every thread): torch's fp32 GEMM reached ~42% of the FMA rate on a
  Zen 5 VM, which put faster kernels above 100% of "peak".

A case is bandwidth-bound when its arithmetic intensity (FLOPs per byte moved)
is below the ridge point (peak FLOP/s / read bandwidth) for its compute type,
and is then judged by its percent of read bandwidth; otherwise by its percent
of the GEMM peak. These are measured limits, not datasheet ones.
"""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field

import torch

from .timing import cache_bytes, measure


@dataclass
class Limits:
    device: str
    threads: int
    read_gbs: float
    copy_gbs: float
    peak_tflops: dict[str, float]
    sources: dict[str, str] = field(default_factory=dict)
    int8_candidates_tflops: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Limits":
        return cls(**d)

    def compute_peak(self, kind: str) -> float:
        """Peak TFLOP/s for a compute type. A bf16 kernel may widen to fp32 and
        use fp32 FMAs, so its limit is never below the fp32 peak (on CPUs without
        bf16 dot products torch's bf16 GEMM is far slower than fp32)."""
        if kind == "bf16":
            return max(self.peak_tflops["bf16"], self.peak_tflops["fp32"])
        return self.peak_tflops[kind]

    def judge(self, flops: float, nbytes: float, seconds: float, kind: str) -> dict:
        """Roofline verdict for one timed case: which limit applies and its percent."""
        gbs = nbytes / seconds / 1e9
        tflops = flops / seconds / 1e12
        if kind == "none" or flops == 0:
            return {"bound": "bandwidth", "pct_limit": 100 * gbs / self.read_gbs, "limit": "read GB/s",
                    "gbs": gbs, "tflops": tflops}
        peak = self.compute_peak(kind)
        ridge = peak * 1e12 / (self.read_gbs * 1e9)  # FLOP per byte
        intensity = flops / nbytes
        if intensity < ridge:
            return {"bound": "bandwidth", "pct_limit": 100 * gbs / self.read_gbs, "limit": "read GB/s",
                    "gbs": gbs, "tflops": tflops, "intensity": intensity, "ridge": ridge}
        return {"bound": "compute", "pct_limit": 100 * tflops / peak, "limit": f"{kind} peak",
                "gbs": gbs, "tflops": tflops, "intensity": intensity, "ridge": ridge}


def raise_to_observed(results: dict) -> None:
    """Raise each GEMM peak to the best rate a compute-bound baseline achieved in
    the same run, then judge every row again. A peak measured while the machine
    was busy (or with a kernel slower than a baseline, as torch._int_mm is on CPU)
    would otherwise put rows above 100%. bigaccel's own rows never raise a limit
    (that would be circular), and bandwidth is never raised: a bandwidth-bound row
    above the measured read bandwidth means its operands were partly served from
    cache, which the table should show, not hide. Measured values stay under "measured"."""
    lim = results["limits"]
    lim.setdefault("measured", {"read_gbs": lim["read_gbs"], "peak_tflops": dict(lim["peak_tflops"])})
    lim["read_gbs"], lim["peak_tflops"] = lim["measured"]["read_gbs"], dict(lim["measured"]["peak_tflops"])
    raised = {}
    measured = Limits.from_dict({k: v for k, v in lim.items() if k in Limits.__dataclass_fields__})
    for r in results["rows"]:
        if "skipped" in r or r["impl"].startswith("bigaccel") or r["compute"] == "none":  # "bigaccel then F.gelu" too
            continue
        if measured.judge(r["flops"], r["bytes"], r["time_us"] / 1e6, r["compute"])["bound"] != "compute":
            continue
        kind = r["compute"]
        if kind in lim["peak_tflops"] and r["tflops"] > lim["peak_tflops"][kind]:
            lim["peak_tflops"][kind], raised[kind] = r["tflops"], r["id"]
    lim["raised_by"] = raised
    limits = Limits.from_dict({k: v for k, v in lim.items() if k in Limits.__dataclass_fields__})
    for r in results["rows"]:
        if "skipped" not in r:
            r.update(limits.judge(r["flops"], r["bytes"], r["time_us"] / 1e6, r["compute"]))


def _sync(device: str):
    return torch.cuda.synchronize if device == "cuda" else (lambda: None)


def _bandwidth(device: str, budget: float) -> tuple[float, float]:
    n = 8 * cache_bytes(device) // 4
    src = torch.empty(n, dtype=torch.float32, device=device).normal_()
    dst = torch.empty_like(src)
    read = measure(lambda: src.sum(), device, budget).seconds
    copy = measure(lambda: dst.copy_(src), device, budget).seconds
    return n * 4 / read / 1e9, 2 * n * 4 / copy / 1e9


def _mm_tflops(dtype: torch.dtype, n: int, device: str, budget: float) -> float:
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    t = measure(lambda: torch.mm(a, b.t()), device, budget, min_reps=2).seconds
    return 2 * n**3 / t / 1e12


def _int_mm_tflops(n: int, device: str, budget: float) -> float:
    a = torch.randint(-127, 128, (n, n), dtype=torch.int8, device=device)
    b = torch.randint(-127, 128, (n, n), dtype=torch.int8, device=device)
    t = measure(lambda: torch._int_mm(a, b.t()), device, budget, min_reps=1).seconds
    return 2 * n**3 / t / 1e12


def _fbgemm_int8_tflops(n: int, budget: float) -> float:
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.backends.quantized.engine = "x86"
        layer = quantize_dynamic(torch.nn.Sequential(torch.nn.Linear(n, n, bias=False)), {torch.nn.Linear},
                                 dtype=torch.qint8)
    x = torch.randn(n, n)
    t = measure(lambda: layer(x), "cpu", budget, min_reps=2).seconds
    return 2 * n**3 / t / 1e12


def measure_limits(device: str = "cpu", quick: bool = False) -> Limits:
    budget = 0.3 if quick else 1.0
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32 here
    read, copy = _bandwidth(device, budget)
    if device == "cuda":
        n_float, n_int, n_bf16 = 8192, 8192, 8192
    else:  # 2 cores must finish in seconds; these sizes are large enough to be compute-bound
        n_float, n_int, n_bf16 = (1024, 512, 1024) if quick else (2048, 1024, 2048)
    peaks = {"fp32": _mm_tflops(torch.float32, n_float, device, budget),
             "bf16": _mm_tflops(torch.bfloat16, n_bf16, device, budget)}
    candidates = {}
    sources = {
        "read_gbs": f"sum over {8 * cache_bytes(device) >> 20} MiB fp32 (8x the {'L2' if device == 'cuda' else 'LLC'})",
        "copy_gbs": "copy_ of the same buffer, read + write bytes",
        "fp32": f"torch.mm {n_float}^3 (x @ w.T), TF32 off",
        "bf16": f"torch.mm {n_bf16}^3 (x @ w.T)",
    }
    try:
        candidates[f"torch._int_mm {n_int}^3"] = _int_mm_tflops(n_int, device, budget)
    except RuntimeError as exc:
        sources["int8_note"] = f"torch._int_mm unavailable: {exc}"
    if device == "cpu":
        try:
            candidates[f"quantize_dynamic (x86/fbgemm) {n_float}^3"] = _fbgemm_int8_tflops(n_float, budget)
        except (RuntimeError, AssertionError) as exc:
            sources["int8_note"] = f"quantize_dynamic unavailable: {exc}"
    peaks["int8"] = max(candidates.values()) if candidates else float("nan")
    sources["int8"] = "best of " + ", ".join(candidates) if candidates else "unmeasured"
    if device == "cpu":
        _raise_to_vector_peaks(peaks, sources, budget)
    return Limits(device, torch.get_num_threads(), read, copy, peaks, sources, candidates)


_PEAK_INSTRUCTION = {"fp32": "FMA", "bf16": "vdpbf16ps", "int8": "int8 dot products"}


def _raise_to_vector_peaks(peaks: dict, sources: dict, budget: float) -> None:
    """Each CPU peak raised to bigaccel._C.peak_tops where that is higher (see the module doc)."""
    from bigaccel import _extension

    ext = _extension.load()["cpu"]
    if not ext.loaded or not hasattr(ext.module, "peak_tops"):
        return
    for kind in peaks:
        loop = ext.module.peak_tops(kind, budget / 2)
        if loop > peaks[kind]:
            sources[kind] = (f"{_PEAK_INSTRUCTION[kind]} loop on every thread ({ext.module.active_isa()}, "
                             f"bigaccel._C.peak_tops); {sources[kind]} reached {peaks[kind]:.3f} TFLOP/s")
            peaks[kind] = loop
