"""2:4 semi-structured pruning: make weights 2:4, prune whole models through
torch.nn.utils.prune, and inspect masks that models already carry.

The compressed format itself (values + 2-bit positions) is defined once, in
bigaccel.reference (compress_2_4 / decompress_2_4).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.nn.utils import prune

__all__ = ["mask_2_4", "prune_2_4", "prune_model", "violating_fraction", "pruning_hooks", "effective_linear",
           "pruning_mask"]


def mask_2_4(weight: torch.Tensor) -> torch.Tensor:
    """Boolean mask keeping the 2 largest-magnitude entries of every group of 4
    consecutive k in each row of ``weight [..., K]`` (K a multiple of 4). Ties keep
    the lower index (topk on a stable key), so the mask is deterministic."""
    if weight.shape[-1] % 4:
        raise ValueError(f"2:4 pruning needs the last dimension (in_features) to be a multiple of 4, "
                         f"got shape {tuple(weight.shape)}")
    groups = weight.detach().float().abs().reshape(*weight.shape[:-1], -1, 4)
    # A stable sort keeps the lower index among equal magnitudes.
    order = groups.argsort(dim=-1, descending=True, stable=True)[..., :2]
    mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, order, True)
    return mask.reshape(weight.shape)


def prune_2_4(weight: torch.Tensor) -> torch.Tensor:
    """``weight`` with the 2 smallest-magnitude entries of every group of 4 along K zeroed."""
    return weight * mask_2_4(weight).to(weight.dtype)


def violating_fraction(mask_or_weight: torch.Tensor) -> float:
    """Fraction of the groups of 4 along K with more than 2 non-zeros (0.0 means 2:4)."""
    if mask_or_weight.shape[-1] % 4:
        return 1.0
    nonzero = (mask_or_weight != 0).reshape(*mask_or_weight.shape[:-1], -1, 4).sum(-1)
    return float((nonzero > 2).float().mean()) if nonzero.numel() else 0.0


def pruning_hooks(module: nn.Module) -> list:
    """The torch.nn.utils.prune reparametrisations on `module` (forward pre-hooks)."""
    return [h for h in module._forward_pre_hooks.values() if isinstance(h, prune.BasePruningMethod)]


def pruning_mask(module: nn.Module, name: str = "weight") -> torch.Tensor | None:
    """The mask of a pruned parameter (``<name>_mask``), or None if it is not pruned."""
    return getattr(module, f"{name}_mask", None) if pruning_hooks(module) else None


def effective_linear(module: nn.Linear) -> nn.Linear:
    """`module` itself, or for a pruned nn.Linear a detached copy holding the masked
    weight (weight_orig * weight_mask, computed now, not the value cached at the
    last forward) and a plain bias: what the layer computes, without the hooks."""
    hooks = pruning_hooks(module)
    if not hooks:
        return module
    tensors = {"weight": module.weight, "bias": module.bias}
    for hook in hooks:  # a PruningContainer (pruned twice) is one hook that applies every mask
        tensors[hook._tensor_name] = hook.apply_mask(module)
    out_features, in_features = tensors["weight"].shape
    plain = nn.Linear(in_features, out_features, bias=tensors["bias"] is not None, device="meta")
    plain.weight = nn.Parameter(tensors["weight"].detach(), requires_grad=False)
    if tensors["bias"] is not None:
        plain.bias = nn.Parameter(tensors["bias"].detach(), requires_grad=False)
    return plain


def prune_model(
    model: nn.Module,
    pattern: str = "2:4",
    filter_fn: Callable[[nn.Module, str], bool] | None = None,
    on_violation: str = "error",
) -> dict[str, float]:
    """Prune every nn.Linear of ``model`` to 2:4 by magnitude, in place, through
    ``torch.nn.utils.prune.custom_from_mask``: the result is an ordinary pruned
    PyTorch model (weight_orig, weight_mask), to fine-tune, then convert.

    filter_fn(module, name) -> False leaves a layer alone; layers whose in_features
    is not a multiple of 4 are left alone. Layers already pruned keep their mask if
    it is 2:4; a mask that is not (e.g. from l1_unstructured) is never changed
    silently: ``on_violation`` is "error" (raise, naming the fraction of violating
    groups), "keep" (leave the layer as it is) or "reprune" (2:4 by magnitude of
    the masked weight, on top of the existing mask).

    Returns {layer name: fraction of violating groups before pruning (0.0 if the
    layer was dense or already 2:4)} for the layers considered.
    """
    if pattern != "2:4":
        raise ValueError(f"only the '2:4' pattern is supported, got {pattern!r}")
    if on_violation not in ("error", "keep", "reprune"):
        raise ValueError(f"on_violation must be 'error', 'keep' or 'reprune', got {on_violation!r}")
    report: dict[str, float] = {}
    for name, module in model.named_modules():
        if not isinstance(module, nn.Linear) or module.in_features % 4:
            continue
        if filter_fn is not None and not filter_fn(module, name):
            continue
        mask = pruning_mask(module)
        if mask is None:
            prune.custom_from_mask(module, "weight", mask_2_4(module.weight))
            report[name] = 0.0
            continue
        fraction = violating_fraction(mask)
        report[name] = fraction
        if fraction == 0.0 or on_violation == "keep":
            continue
        if on_violation == "error":
            raise ValueError(f"layer {name!r} is already pruned with a mask that is not 2:4: {fraction:.1%} of its "
                             f"groups of 4 keep more than 2 weights; pass on_violation='reprune' to prune it to 2:4 "
                             f"(by magnitude of the masked weight) or 'keep' to leave it")
        # custom_from_mask on a pruned tensor combines the masks (PruningContainer).
        prune.custom_from_mask(module, "weight", mask_2_4(effective_linear(module).weight))
    return report
