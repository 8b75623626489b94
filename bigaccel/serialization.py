"""bigaccel.save / bigaccel.load: a converted model's state in safetensors, with the
recipes and the converted layers as metadata.

load() takes a freshly built float model of the same architecture, gives it the
saved structure (each converted layer's new module, built empty: nothing is
quantized again), checks every tensor's name, shape and dtype against the file,
and loads the state. A mismatch raises CheckpointMismatchError naming the first
one, and leaves the model as it was.
"""
from __future__ import annotations

import json
import os

import torch
from torch import nn

from .convert import CONVERSIONS_ATTR, ConversionError, rebuild
from .recipes import CONFIG_TYPES

FORMAT = "bigaccel"
FORMAT_VERSION = "1"


class CheckpointMismatchError(ValueError):
    """The model does not have the structure or tensors of the checkpoint."""


def _safetensors():
    try:
        import safetensors.torch
    except ImportError as exc:  # pragma: no cover - a dependency of bigaccel
        raise ImportError("bigaccel.save/load need the safetensors package: pip install safetensors") from exc
    return safetensors


def save(model: nn.Module, path: str | os.PathLike) -> None:
    """Write `model`'s state (as bigaccel.convert left it) to a safetensors file,
    with the recipes, their options and the converted layers as metadata.
    Tensors shared by several names (tied weights) are stored once."""
    from . import __version__

    state = model.state_dict()
    tensors, aliases, views, storages = {}, {}, {}, set()
    for name, tensor in state.items():
        if not isinstance(tensor, torch.Tensor) or tensor.is_quantized:
            raise TypeError(f"bigaccel.save: {name!r} is a {type(tensor).__name__ if not isinstance(tensor, torch.Tensor) else 'quantized tensor'}, "
                            f"which safetensors cannot hold (a torch.ao quantized module?); convert that layer "
                            f"with bigaccel.convert first")
        t = tensor.detach()
        storage = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
        view = (*storage, t.storage_offset(), tuple(t.shape), tuple(t.stride()), t.dtype)
        if view in views and t.numel():
            aliases[name] = views[view]  # the same tensor under two names (tied weights)
            continue
        views[view] = name
        # safetensors refuses two names on one storage: a different view of a saved storage is copied.
        tensors[name] = t.clone() if storage in storages else t.contiguous()
        storages.add(storage)
    history = getattr(model, CONVERSIONS_ATTR, [])
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "bigaccel_version": __version__,
        "recipe": "+".join(entry["recipe"] for entry in history) or "none",
        "conversions": json.dumps(history),
        "aliases": json.dumps(aliases),
    }
    _safetensors().torch.save_file({k: v.cpu() for k, v in tensors.items()}, os.fspath(path), metadata=metadata)


def read_metadata(path: str | os.PathLike) -> dict:
    """The recipe and conversion record saved in a bigaccel file."""
    from safetensors import safe_open

    with safe_open(os.fspath(path), framework="pt") as f:
        metadata = f.metadata() or {}
    if metadata.get("format") != FORMAT:
        raise CheckpointMismatchError(f"{os.fspath(path)} is not a bigaccel checkpoint (no bigaccel metadata); "
                                      f"write it with bigaccel.save")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise CheckpointMismatchError(f"{os.fspath(path)} has bigaccel format version {metadata.get('format_version')}, "
                                      f"this bigaccel reads version {FORMAT_VERSION}")
    return {"recipe": metadata["recipe"], "bigaccel_version": metadata.get("bigaccel_version"),
            "conversions": json.loads(metadata["conversions"]), "aliases": json.loads(metadata["aliases"])}


def _first_mismatch(expected: dict, saved: dict) -> str | None:
    for name, t in expected.items():
        if name not in saved:
            return f"the model has {name!r} ({_describe(t)}), the checkpoint does not"
        s = saved[name]
        if tuple(s.shape) != tuple(t.shape) or s.dtype != t.dtype:
            return f"{name!r} is {_describe(t)} in the model but {_describe(s)} in the checkpoint"
    for name, s in saved.items():
        if name not in expected:
            return f"the checkpoint has {name!r} ({_describe(s)}), the model does not"
    return None


def _describe(t: torch.Tensor) -> str:
    return f"{str(t.dtype).replace('torch.', '')} {list(t.shape)}"


def load(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Give a freshly built float `model` the structure saved in `path` and load its
    state; returns the model. Tensors go to the device of the model's first tensor."""
    info = read_metadata(path)
    if getattr(model, CONVERSIONS_ATTR, None):
        raise CheckpointMismatchError("bigaccel.load needs a freshly built float model; this one was already converted")
    try:
        undo = rebuild(model, info["conversions"], CONFIG_TYPES)
    except ConversionError as exc:
        raise CheckpointMismatchError(f"bigaccel.load({os.fspath(path)!r}): {exc}") from exc
    try:
        first = next(iter(model.state_dict().values()), None)
        device = str(first.device) if first is not None else "cpu"
        saved = _safetensors().torch.load_file(os.fspath(path), device=device)
        for alias, name in info["aliases"].items():
            saved[alias] = saved[name]
        mismatch = _first_mismatch(model.state_dict(), saved)
        if mismatch:
            raise CheckpointMismatchError(f"bigaccel.load({os.fspath(path)!r}): the model does not match the "
                                          f"checkpoint (recipe {info['recipe']!r}): {mismatch}")
        model.load_state_dict(saved)
    except BaseException:
        undo()
        model.__dict__.pop(CONVERSIONS_ATTR, None)
        raise
    return model
