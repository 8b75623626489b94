"""What bigaccel.convert did: one row per layer it looked at, totals, and errors.

SQNR (signal-to-quantization-noise ratio) in dB compares a converted output y
with the float one x: 10 * log10(sum x^2 / sum (x - y)^2). Higher is better;
int8 per-channel weights with per-token activations typically give 30-45 dB on
a layer, each halving of the error adds 6 dB, and inf means identical outputs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch


def module_bytes(module: torch.nn.Module) -> int:
    """Bytes of every tensor the module holds: parameters, buffers (masks, scales,
    derived sums), and the packed weights of torch.ao dynamic quantized layers."""
    total = sum(t.numel() * t.element_size() for t in module.parameters())
    total += sum(t.numel() * t.element_size() for t in module.buffers())
    for m in module.modules():
        packed = getattr(m, "_packed_params", None)
        if packed is not None and hasattr(m, "weight") and callable(m.weight):
            w = m.weight()
            total += w.numel() * w.element_size() + w.shape[0] * 4  # int8 weight + fp32 scales
            b = m.bias()
            total += b.numel() * b.element_size() if b is not None else 0
    return total


def first_tensor(output) -> torch.Tensor | None:
    """The main tensor of a module's output: itself, the first of a tuple or dict, or .logits."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)):
        return next((t for t in map(first_tensor, output) if t is not None), None)
    if isinstance(output, dict):
        return first_tensor(list(output.values()))
    return first_tensor(getattr(output, "logits", None)) if hasattr(output, "logits") else None


class SqnrMeter:
    """Accumulates SQNR over several outputs (in float64)."""

    def __init__(self):
        self.signal = 0.0
        self.noise = 0.0

    def add(self, reference, converted) -> None:
        ref, out = first_tensor(reference), first_tensor(converted)
        if ref is None or out is None or ref.shape != out.shape:
            return
        ref, out = ref.detach().double(), out.detach().double()
        self.signal += float(ref.pow(2).sum())
        self.noise += float((ref - out).pow(2).sum())

    @property
    def db(self) -> float | None:
        if self.signal == 0.0 and self.noise == 0.0:
            return None
        return math.inf if self.noise == 0.0 else 10 * math.log10(self.signal / self.noise) if self.signal else -math.inf


@dataclass
class LayerReport:
    name: str
    old_type: str
    new_type: str | None  # None when skipped
    bytes_before: int
    bytes_after: int
    recipe: str
    skipped: str | None = None  # why the layer was left alone
    note: str | None = None  # e.g. "pruning mask applied", "reused quantize_dynamic int8 weights"
    sqnr_db: float | None = None  # with calibration: this layer alone on the inputs it saw
    inside: str | None = None  # set when the layer is inside a module this conversion built

    @property
    def converted(self) -> bool:
        return self.skipped is None


@dataclass
class ConversionReport:
    recipe: str
    dry_run: bool
    layers: list[LayerReport] = field(default_factory=list)
    model_bytes_before: int = 0
    model_bytes_after: int = 0
    output_sqnr_db: float | None = None  # with calibration (not in dry runs): the model's output

    @property
    def converted(self) -> list[LayerReport]:
        return [r for r in self.layers if r.converted]

    @property
    def skipped(self) -> list[LayerReport]:
        return [r for r in self.layers if not r.converted]

    def table(self) -> str:
        rows = [("layer", "from", "to", "bytes before", "after", "SQNR dB", "note")]
        for r in self.layers:
            rows.append((r.name, r.old_type, r.new_type or "-", _kib(r.bytes_before),
                         _kib(r.bytes_after) if r.converted else "-", _db(r.sqnr_db),
                         f"skipped: {r.skipped}" if r.skipped else (r.note or "")))
        widths = [max(len(row[i]) for row in rows) for i in range(6)]
        lines = ["  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
                 + ("  " + row[6] if row[6] else "") for row in rows]
        return "\n".join(lines)

    def summary(self) -> str:
        top = [r for r in self.converted if r.inside is None]  # nested rows are counted in their parent
        before = sum(r.bytes_before for r in top)
        after = sum(r.bytes_after for r in top)
        what = "would convert" if self.dry_run else "converted"
        text = (f"recipe {self.recipe!r}: {what} {len(self.converted)} layers, skipped {len(self.skipped)}; "
                f"their weights {_mib(before)} -> {_mib(after)}; "
                f"model {_mib(self.model_bytes_before)} -> {_mib(self.model_bytes_after)}")
        if self.output_sqnr_db is not None:
            text += f"; output SQNR {_db(self.output_sqnr_db)} dB"
        return text

    def __str__(self) -> str:
        return self.table() + "\n" + self.summary()


def _kib(n: int) -> str:
    return f"{n / 1024:.1f} KiB"


def _mib(n: int) -> str:
    return f"{n / 2**20:.2f} MiB"


def _db(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"
