"""Named conversion recipes and their configs.

A recipe is a config object: which module types it converts, its skip rules,
and how it builds the new module from an old one. ``RECIPES`` maps each name
to a zero-argument factory of its config; a new module path joins with one
``_recipe(...)`` line (and its config class, if it needs new options).

Names combine with "+" ("int8+fuse-activations"): fusions (order 0) run before
weight formats (order 1), and a combination holds at most one recipe of each
kind, since two weight formats would claim the same layers.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import warnings
from dataclasses import dataclass, field
from typing import Callable, ClassVar

import torch
from torch import nn

MIN_WEIGHT_NUMEL = 4096
"""Layers with fewer weights are skipped as too small to gain: such a layer
(e.g. 64x64) saves under 12 KiB as int8, and the per-call activation
quantization and kernel launch cost more than its float matmul."""


class RecipeError(ValueError):
    """An unknown recipe name, or an invalid combination."""


class RecipeNotAvailableError(NotImplementedError):
    """A known recipe whose kernels are not in this version of bigaccel."""


def _dynamic_linear_type():
    from torch.ao.nn.quantized.dynamic import Linear

    return Linear


# Moved to bigaccel.sparsity; re-exported here for the converter.
from .sparsity import effective_linear, pruning_hooks  # noqa: E402,F401


@dataclass
class ConvertConfig:
    """Options shared by every recipe.

    module_types: the module classes a recipe converts, matched exactly (subclasses
        such as MultiheadAttention's out_proj are not, since their owner reads the
        weight directly).
    skip_names: fnmatch patterns of fully qualified names to leave alone ("lm_head", "*.mlp.*").
    filter_fn: (module, name) -> bool, False leaves the layer alone.
    min_weight_numel: layers with fewer weights are skipped as too small to gain
        (except quantize_dynamic layers, which are int8 already).
    skip_tied: skip layers whose weight is also used by another module (a tied lm_head):
        converting one user would untie them and store the weight twice.
    """

    module_types: tuple[type, ...] = (nn.Linear,)
    skip_names: tuple[str, ...] = ()
    filter_fn: Callable[[nn.Module, str], bool] | None = None
    min_weight_numel: int = MIN_WEIGHT_NUMEL
    skip_tied: bool = True

    name: ClassVar[str] = "?"
    kind: ClassVar[str] = "weights"  # a combination holds at most one recipe of each kind
    order: ClassVar[int] = 1  # lower runs first in a combination

    # -- what a recipe overrides -------------------------------------------------

    def unavailable_reason(self) -> str | None:
        """Why this recipe cannot run in this version, or None."""
        return None

    def is_candidate(self, module: nn.Module) -> bool:
        return type(module) in self.module_types

    def unsupported_reason(self, module: nn.Module) -> str | None:
        """Why this layer's shape or format cannot be converted, or None."""
        return None

    def build(self, module: nn.Module) -> nn.Module:
        """The new module computing what `module` does; must not modify `module`."""
        raise NotImplementedError

    def build_structure(self, module: nn.Module) -> nn.Module:
        """A new module of the right type and shapes for `module`, whose state
        bigaccel.load then fills in (so a checkpoint is not quantized again)."""
        return self.build(module)

    # -- shared --------------------------------------------------------------------

    def skip_reason(self, module: nn.Module, name: str) -> str | None:
        """Why the user's rules leave this candidate alone, or None."""
        for pattern in self.skip_names:
            if fnmatch.fnmatchcase(name, pattern):
                return f"excluded by skip_names pattern {pattern!r}"
        if self.filter_fn is not None and not self.filter_fn(module, name):
            return "excluded by the config's filter_fn"
        return None

    def options(self) -> dict:
        """The options as JSON-able data (saved with a checkpoint)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "filter_fn":
                value = None if value is None else getattr(value, "__qualname__", "custom")
            elif f.name == "module_types":
                value = [f"{t.__module__}.{t.__qualname__}" for t in value]
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_options(cls, options: dict) -> "ConvertConfig":
        """Rebuild from options(); callables and types come back as their defaults."""
        keep = {k: (tuple(v) if isinstance(v, list) else v) for k, v in options.items()
                if k not in ("filter_fn", "module_types") and k in {f.name for f in dataclasses.fields(cls)}}
        return cls(**keep)


def _linear_shape_reason(weight: torch.Tensor) -> str | None:
    if weight.dim() != 2 or 0 in weight.shape:
        return f"weight shape {tuple(weight.shape)} is not a non-empty [N, K] matrix"
    if weight.device.type not in ("cpu", "cuda"):
        return f"weight is on {weight.device}; bigaccel runs cpu and cuda tensors"
    return None


@dataclass
class Int8Config(ConvertConfig):
    """int8 weights, one scale per output channel. weight_only=False: W8A8 with
    activations quantized per token at run time (bigaccel.nn.Int8Linear);
    weight_only=True: W8A16, float activations (bigaccel.nn.Int8WeightOnlyLinear).
    Also converts torch.ao quantize_dynamic Linear layers, reusing their int8 weights,
    and pruned nn.Linear layers, keeping the masked weight."""

    weight_only: bool = False
    reuse_dynamic_quantized: bool = True

    @property
    def name(self) -> str:  # type: ignore[override]
        return "int8-weight-only" if self.weight_only else "int8"

    def module_class(self):
        from .nn import Int8Linear, Int8WeightOnlyLinear

        return Int8WeightOnlyLinear if self.weight_only else Int8Linear

    def is_candidate(self, module):
        return super().is_candidate(module) or (
            self.reuse_dynamic_quantized and type(module) is _dynamic_linear_type())

    def unsupported_reason(self, module):
        if isinstance(module, _dynamic_linear_type()):
            w = module.weight()
            if w.dtype != torch.qint8:
                return f"quantize_dynamic weight is {w.dtype}; only qint8 weights can be reused"
            zeros = w.q_per_channel_zero_points() if w.qscheme() in (
                torch.per_channel_affine, torch.per_channel_symmetric) else torch.tensor([w.q_zero_point()])
            if bool((zeros != 0).any()):
                return "quantize_dynamic weight has non-zero zero points; bigaccel's int8 weights are symmetric"
            return None
        weight = effective_linear(module).weight
        if not weight.dtype.is_floating_point:
            return f"weight dtype {weight.dtype} is not a float type"
        return _linear_shape_reason(weight)

    def build(self, module):
        cls = self.module_class()
        if isinstance(module, _dynamic_linear_type()):
            return cls.from_dynamic_quantized(module)
        return cls.from_linear(effective_linear(module))

    def build_structure(self, module):
        if isinstance(module, _dynamic_linear_type()):
            return self.build(module)
        bias = module.bias
        weight = module.weight if hasattr(module, "weight") else module.weight_orig
        return self.module_class()(module.in_features, module.out_features, bias=bias is not None,
                                   device=weight.device,
                                   bias_dtype=bias.dtype if bias is not None else torch.float32)


def _nn_class(name: str):
    from . import nn as bnn

    return getattr(bnn, name, None)


def int4_checkpoint_format(module: nn.Module) -> str | None:
    """"gptq" or "awq" for a 4-bit layer loaded from a GPTQ or AWQ checkpoint, else None.

    Recognised by its tensors, whatever library defined the class: both keep int32
    qweight and qzeros and scales [K/G, N]; GPTQ packs qweight along K ([K/8, N]),
    AWQ along N ([K, N/8])."""
    qweight, qzeros, scales = (getattr(module, n, None) for n in ("qweight", "qzeros", "scales"))
    if not all(isinstance(t, torch.Tensor) for t in (qweight, qzeros, scales)):
        return None
    if getattr(module, "bits", getattr(module, "w_bit", 4)) != 4 or qweight.dim() != 2 or scales.dim() != 2:
        return None
    if qweight.shape[1] == scales.shape[1]:
        return "gptq"
    if qweight.shape[1] * 8 == scales.shape[1]:
        return "awq"
    return None


def _checkpoint_group_size(module: nn.Module, fmt: str) -> int:
    k = module.qweight.shape[0] * (8 if fmt == "gptq" else 1)
    return k // module.scales.shape[0]


@dataclass
class Int4Config(ConvertConfig):
    """int4 group-wise weight-only (W4A16), bigaccel.nn.Int4Linear.
    group_size: 32, 64 or 128 weights per scale along K; zero_point: asymmetric groups
    (both for float layers: GPTQ/AWQ layers keep their own groups and zero points).
    gptq_zero_offset: 1 for GPTQ checkpoints that store zero points minus one (the
    original "gptq" format), 0 for "gptq_v2"."""

    group_size: int = 128
    zero_point: bool = True
    gptq_zero_offset: int = 1

    @property
    def name(self) -> str:  # type: ignore[override]
        return "int4" if self.group_size == 128 else f"int4-g{self.group_size}"

    def unavailable_reason(self):
        if _nn_class("Int4Linear") is None:
            return "the int4 weight-only path (bigaccel.nn.Int4Linear) is not in this version of bigaccel yet"
        return None

    def is_candidate(self, module):
        return super().is_candidate(module) or int4_checkpoint_format(module) is not None

    def unsupported_reason(self, module):
        fmt = int4_checkpoint_format(module)
        if fmt is not None:
            group = _checkpoint_group_size(module, fmt)
            if group not in (32, 64, 128):
                return f"{fmt.upper()} layer with group size {group}; bigaccel's int4 kernels take 32, 64 or 128"
            return None
        weight = effective_linear(module).weight
        if not weight.dtype.is_floating_point:
            return f"weight dtype {weight.dtype} is not a float type"
        reason = _linear_shape_reason(weight)
        if reason is None and weight.shape[1] % self.group_size:
            reason = f"in_features={weight.shape[1]} is not a multiple of group_size={self.group_size}"
        return reason

    def build(self, module):
        cls = _nn_class("Int4Linear")
        fmt = int4_checkpoint_format(module)
        if fmt is not None:  # import the checkpoint's own quantization: no rounding again
            bias = getattr(module, "bias", None)
            group = _checkpoint_group_size(module, fmt)
            if fmt == "gptq":
                return cls.from_gptq(module.qweight, module.qzeros, module.scales, getattr(module, "g_idx", None),
                                     bias=bias, group_size=group, zero_offset=self.gptq_zero_offset)
            return cls.from_awq(module.qweight, module.qzeros, module.scales, bias=bias, group_size=group)
        return cls.from_linear(effective_linear(module), group_size=self.group_size, zero_point=self.zero_point)

    def build_structure(self, module):
        if int4_checkpoint_format(module) is not None:
            return self.build(module)  # an import, not a quantization
        bias = module.bias
        weight = module.weight if hasattr(module, "weight") else module.weight_orig
        return _nn_class("Int4Linear")(module.in_features, module.out_features, bias=bias is not None,
                                       group_size=self.group_size, zero_point=self.zero_point, device=weight.device,
                                       bias_dtype=bias.dtype if bias is not None else torch.float32)


@dataclass
class Sparse24Config(ConvertConfig):
    """2:4 semi-structured sparse weights (bigaccel.nn.Sparse24Linear); int8=True
    also quantizes them to int8 per channel, with int8 activations (Sparse24Int8Linear).

    Converts layers whose weight is 2:4 already, and layers pruned with
    torch.nn.utils.prune whose mask is 2:4 (the mask is kept exactly). Other
    layers are skipped with the fraction of groups of 4 that violate 2:4, unless
    prune_dense=True (dense weights pruned to 2:4 by magnitude: this changes the
    model; fine-tune after bigaccel.sparsity.prune_model instead when accuracy
    matters) or reprune_masks=True (non-2:4 masks re-pruned to 2:4)."""

    int8: bool = False
    prune_dense: bool = False
    reprune_masks: bool = False

    @property
    def name(self) -> str:  # type: ignore[override]
        return "sparse24-int8" if self.int8 else "sparse24"

    def unavailable_reason(self):
        if _nn_class("Sparse24Linear") is None:
            return "the 2:4 sparse path (bigaccel.nn.Sparse24Linear) is not in this version of bigaccel yet"
        if self.int8 and _nn_class("Sparse24Int8Linear") is None:
            return "the 2:4 + int8 path (bigaccel.nn.Sparse24Int8Linear) is not in this version of bigaccel yet"
        return None

    def unsupported_reason(self, module):
        weight = effective_linear(module).weight
        if not weight.dtype.is_floating_point:
            return f"weight dtype {weight.dtype} is not a float type"
        reason = _linear_shape_reason(weight)
        if reason is None and weight.shape[1] % 4:
            reason = f"in_features={weight.shape[1]} is not a multiple of 4"
        return reason

    def skip_reason(self, module, name):
        # A rule about the weight's values, not its shape: bigaccel.load, which rebuilds the
        # structure of a saved model into a fresh float one, does not apply it.
        from .sparsity import pruning_mask, violating_fraction

        reason = super().skip_reason(module, name)
        if reason is None and self.unsupported_reason(module) is None:
            mask, weight = pruning_mask(module), effective_linear(module).weight
            if mask is not None and violating_fraction(mask) and not self.reprune_masks:
                reason = (f"its pruning mask is not 2:4 ({violating_fraction(mask):.1%} of groups of 4 keep more than "
                          f"2 weights); kept dense: set reprune_masks=True to re-prune it to 2:4")
            elif mask is None and violating_fraction(weight) and not self.prune_dense:
                reason = (f"weight is not 2:4 ({violating_fraction(weight):.1%} of groups of 4 violate); kept dense: "
                          f"prune with bigaccel.sparsity.prune_model first, or set prune_dense=True")
        return reason

    def build(self, module):
        with warnings.catch_warnings():  # prune_dense=True asked for magnitude pruning
            warnings.simplefilter("ignore")
            return _nn_class("Sparse24Linear").from_linear(module, int8=self.int8, reprune=self.reprune_masks)

    def build_structure(self, module):
        bias = module.bias
        weight = module.weight if hasattr(module, "weight") else module.weight_orig
        if self.int8:
            return _nn_class("Sparse24Int8Linear")(module.in_features, module.out_features, bias=bias is not None,
                                                   device=weight.device,
                                                   bias_dtype=bias.dtype if bias is not None else torch.float32)
        return _nn_class("Sparse24Linear")(module.in_features, module.out_features, bias=bias is not None,
                                           device=weight.device, dtype=weight.dtype,
                                           bias_dtype=bias.dtype if bias is not None else None)


def _is_gated_mlp(module: nn.Module) -> bool:
    return all(isinstance(getattr(module, a, None), nn.Module) for a in ("gate_proj", "up_proj", "down_proj", "act_fn"))


@dataclass
class FuseActivationsConfig(ConvertConfig):
    """Llama-style gated MLPs (gate_proj, up_proj, down_proj, act_fn) become
    bigaccel.nn.FusedGatedMLP: one GEMM for gate and up, the activation and the
    product fused. Runs before a weight format in a combination, which then
    converts the fused module's linears."""

    module_types: tuple[type, ...] = ()  # matched by structure, see is_candidate
    min_weight_numel: int = 0

    name: ClassVar[str] = "fuse-activations"
    kind: ClassVar[str] = "activations"
    order: ClassVar[int] = 0

    def unavailable_reason(self):
        if _nn_class("FusedGatedMLP") is None:
            return "the fused activations (bigaccel.nn.FusedGatedMLP) are not in this version of bigaccel yet"
        return None

    def is_candidate(self, module):
        return type(module) in self.module_types or _is_gated_mlp(module)

    def unsupported_reason(self, module):
        from .nn.mlp import why_not_fusable

        return why_not_fusable(module)

    def build(self, module):
        return _nn_class("FusedGatedMLP").from_module(module, strict=True)


CONFIG_TYPES: dict[str, type[ConvertConfig]] = {
    c.__name__: c for c in (Int8Config, Int4Config, Sparse24Config, FuseActivationsConfig)}


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    make_config: Callable[[], ConvertConfig] = field(repr=False)


RECIPES: dict[str, Recipe] = {}


def _recipe(name: str, description: str, make_config: Callable[[], ConvertConfig]) -> None:
    RECIPES[name] = Recipe(name, description, make_config)


_recipe("int8", "W8A8 dynamic: int8 weights per channel, activations per token", Int8Config)
_recipe("int8-weight-only", "W8A16: int8 weights per channel, float activations", lambda: Int8Config(weight_only=True))
_recipe("int4", "W4A16: int4 weights, groups of 128 with zero points", lambda: Int4Config(group_size=128))
_recipe("int4-g32", "W4A16: int4 weights, groups of 32 with zero points", lambda: Int4Config(group_size=32))
_recipe("int4-g64", "W4A16: int4 weights, groups of 64 with zero points", lambda: Int4Config(group_size=64))
_recipe("sparse24", "2:4 semi-structured sparse weights", Sparse24Config)
_recipe("sparse24-int8", "2:4 sparse int8 weights, int8 activations", lambda: Sparse24Config(int8=True))
_recipe("fuse-activations", "gated MLPs -> one gate/up GEMM with the activation fused", FuseActivationsConfig)


def available_recipes() -> list[str]:
    return [n for n, r in RECIPES.items() if r.make_config().unavailable_reason() is None]


def resolve(recipe: "str | ConvertConfig | list[ConvertConfig]") -> list[ConvertConfig]:
    """Configs for a recipe name ("a+b" too), a config, or a list of configs,
    in the order they run. Raises RecipeError or RecipeNotAvailableError."""
    if isinstance(recipe, ConvertConfig):
        configs = [recipe]
    elif isinstance(recipe, str):
        configs = []
        for part in (p.strip() for p in recipe.split("+")):
            if part not in RECIPES:
                raise RecipeError(f"unknown recipe {part!r}; known recipes: {', '.join(RECIPES)} "
                                  f"(combine with '+', e.g. 'int8+fuse-activations')")
            configs.append(RECIPES[part].make_config())
    elif isinstance(recipe, (list, tuple)) and recipe and all(isinstance(c, ConvertConfig) for c in recipe):
        configs = list(recipe)
    else:
        raise RecipeError(f"recipe must be a name, a ConvertConfig or a list of them, got {recipe!r}")
    kinds: dict[str, str] = {}
    for config in configs:
        if config.kind in kinds:
            raise RecipeError(f"recipes {kinds[config.kind]!r} and {config.name!r} both convert {config.kind}; "
                              f"combine at most one of each kind")
        kinds[config.kind] = config.name
    for config in configs:
        reason = config.unavailable_reason()
        if reason is not None:
            raise RecipeNotAvailableError(f"recipe {config.name!r} is known but cannot run: {reason}. "
                                          f"Available now: {', '.join(available_recipes())}")
    return sorted(configs, key=lambda c: c.order)
