"""bigaccel.convert: plan -> build every new module -> swap, all or nothing.

Nothing in the user's model is modified until every new module has been built
(and, with calibration, run); the swap itself is undone if it fails part way.
So on any error the model holds the same module objects, tensors and hooks as
before, and the error names the layer and the reason.

In a combination ("int8+fuse-activations"), a later recipe sees the model as
the earlier ones left it: it converts layers inside a freshly built module in
that new module (not yet in the model), and layers elsewhere by path.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Iterable

import torch
from torch import nn

from .recipes import ConvertConfig, int4_checkpoint_format, pruning_hooks, resolve
from .report import ConversionReport, LayerReport, SqnrMeter, first_tensor, module_bytes

CONVERSIONS_ATTR = "_bigaccel_conversions"  # on the model: what convert did, for bigaccel.save


class ConversionError(RuntimeError):
    """A layer could not be converted; the model is unchanged."""


def _type_name(module: nn.Module) -> str:
    return type(module).__name__


@dataclass
class _Layer:
    report: LayerReport
    stage: int
    old: nn.Module
    new: nn.Module | None = None
    root: str | None = None  # the top-level replacement this layer lives in, if any


class _Plan:
    """The model as it will be: top-level replacements by path over the original."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.top: dict[str, nn.Module] = {}
        self.layers: list[_Layer] = []
        self.original_ids = {id(m) for m in model.modules()}
        self.paths = defaultdict(list)  # id(module) -> every path it is at
        self.param_users = defaultdict(list)  # id(parameter) -> every module path using it
        for name, module in model.named_modules(remove_duplicate=False):
            self.paths[id(module)].append(name)
            for p in module._parameters.values():
                if p is not None:
                    self.param_users[id(p)].append(name)

    def walk(self) -> Iterable[tuple[str, nn.Module, str | None]]:
        """(path, module, root) over the planned model, each module once; root is the
        path of the fresh replacement that holds it, or None for the user's modules."""
        seen = set()

        def visit(prefix, module, root):
            if id(module) in seen:
                return
            seen.add(id(module))
            yield prefix, module, root
            for child_name, child in module.named_children():
                path = f"{prefix}.{child_name}" if prefix else child_name
                if root is None and path in self.top:
                    yield from visit(path, self.top[path], path)
                else:
                    yield from visit(path, child, root)

        yield from visit("", self.model, None)

    def structural_reason(self, name: str, module: nn.Module, root: str | None, skip_tied: bool = True) -> str | None:
        if name == "":
            return "it is the model itself; wrap it in a module (e.g. nn.Sequential) to convert it"
        if root is None:
            if len(self.paths[id(module)]) > 1:
                return f"the same module is used at {', '.join(self.paths[id(module)])}"
            for p in module.parameters() if skip_tied else ():
                others = [u for u in self.param_users[id(p)] if u != name and not u.startswith(name + ".")]
                if others:
                    return f"weight tied to {others[0]} (the same Parameter); converting would untie them"
            if any(path.startswith(name + ".") for path in self.top):
                return "holds a module converted by an earlier recipe in this combination"
        else:
            parent = name.rpartition(".")[0]
            if id(self._get(parent)) in self.original_ids:
                return "inside a module that the new module shares with the original model"
        return None

    def _get(self, path: str) -> nn.Module:
        for name, module, _ in self.walk():
            if name == path:
                return module
        raise KeyError(path)

    def place(self, layer: _Layer) -> None:
        """Put a built module into the plan (inside fresh modules directly: they are not the user's yet)."""
        name = layer.report.name
        if layer.root is None:
            self.top[name] = layer.new
        else:
            parent, _, attr = name.rpartition(".")
            setattr(self._get(parent), attr, layer.new)

    def swap(self) -> Callable[[], None]:
        """Put the top-level replacements into the model; returns the undo."""
        done = []

        def undo():
            for parent, attr, old in reversed(done):
                setattr(parent, attr, old)

        try:
            for name, new in self.top.items():
                parent_name, _, attr = name.rpartition(".")
                parent = self.model.get_submodule(parent_name)
                old = getattr(parent, attr)
                setattr(parent, attr, new)
                done.append((parent, attr, old))
        except BaseException:
            undo()
            raise
        return undo


def _weight_numel(module: nn.Module) -> int:
    if callable(getattr(module, "weight", None)):  # torch.ao dynamic quantized Linear
        return module.weight().numel()
    return sum(p.numel() for n, p in module.named_parameters() if n.rpartition(".")[2] in ("weight", "weight_orig"))


def _note(module: nn.Module) -> str | None:
    notes = []
    if callable(getattr(module, "weight", None)):
        notes.append("reused the quantize_dynamic int8 weights")
    if int4_checkpoint_format(module) is not None:
        notes.append(f"imported the {int4_checkpoint_format(module).upper()} 4-bit weights")
    pruning = pruning_hooks(module)
    if pruning:
        zeros = float((module.weight_mask == 0).float().mean()) if hasattr(module, "weight_mask") else 0.0
        notes.append(f"pruning mask applied ({zeros:.0%} zeros), reparametrisation removed")
    # Hooks are written for the old module's type and arguments, so they are not moved.
    hooks = len(module._forward_hooks) + len(module._forward_pre_hooks) - len(pruning) + len(module._backward_hooks)
    if hooks:
        notes.append(f"its {hooks} hook(s) stay on the old module")
    return "; ".join(notes) or None


def _build_error(layer: _Layer, config: ConvertConfig, exc: Exception) -> ConversionError:
    return ConversionError(f"bigaccel.convert: could not convert layer {layer.report.name!r} "
                           f"({layer.report.old_type}) with recipe {config.name!r}: {type(exc).__name__}: {exc}. "
                           f"The model was left unchanged.")


def _plan_stage(plan: _Plan, config: ConvertConfig, stage: int, filter_fn, build: Callable,
                skip_rules: bool = True) -> None:
    """Decide, then build, every layer of one recipe; nothing touches the user's model.
    skip_rules=False (bigaccel.load) takes every layer filter_fn chooses that can be converted."""
    chosen = []
    for name, module, root in list(plan.walk()):
        if not config.is_candidate(module):
            continue
        reason = None
        if filter_fn is not None and not filter_fn(module, name):
            reason = "excluded by filter_fn"
        if skip_rules:
            reason = reason or config.skip_reason(module, name) or plan.structural_reason(name, module, root, config.skip_tied)
        # quantize_dynamic / GPTQ / AWQ layers are quantized already: no float weight to keep.
        already_quantized = callable(getattr(module, "weight", None)) or int4_checkpoint_format(module) is not None
        if reason is None and skip_rules and not already_quantized and _weight_numel(module) < config.min_weight_numel:
            reason = (f"too small to gain: {_weight_numel(module)} weights < min_weight_numel="
                      f"{config.min_weight_numel}")
        reason = reason or config.unsupported_reason(module)
        size = module_bytes(module)
        report = LayerReport(name, _type_name(module), None, size, size, config.name, skipped=reason, inside=root)
        layer = _Layer(report, stage, module, root=root)
        plan.layers.append(layer)
        if reason is None:
            chosen.append(layer)
    for layer in chosen:
        try:
            layer.new = build(config, layer.old)
            layer.new.train(layer.old.training)
        except Exception as exc:
            raise _build_error(layer, config, exc) from exc
        layer.report.new_type = _type_name(layer.new)
        layer.report.bytes_after = module_bytes(layer.new)
        layer.report.note = _note(layer.old)
    for layer in chosen:  # after building them all, so that building reads the plan as the stage began
        plan.place(layer)


def _batches(calibration) -> list:
    if calibration is None:
        return []
    if isinstance(calibration, list):
        return calibration
    return [calibration]


def _run(model: nn.Module, batch):
    if isinstance(batch, dict):
        return model(**batch)
    if isinstance(batch, tuple):
        return model(*batch)
    return model(batch)


def _measure_layers(plan: _Plan, batches: list) -> list:
    """Run the float model on the batches; each top-level new module runs on the
    inputs its original saw (forward hooks), measuring its own error. Returns the model's outputs."""
    meters = {}
    handles = []

    def hook_for(new, meter):
        def hook(module, args, kwargs, output):
            meter.add(output, new(*args, **kwargs))
        return hook

    for layer in plan.layers:
        if layer.new is not None and layer.root is None:
            meters[layer.report.name] = meter = SqnrMeter()
            handles.append(layer.old.register_forward_hook(hook_for(layer.new, meter), with_kwargs=True))
    try:
        with torch.no_grad():
            outputs = [first_tensor(_run(plan.model, b)) for b in batches]
    finally:
        for h in handles:
            h.remove()
    for layer in plan.layers:
        if layer.report.name in meters and layer.root is None:
            layer.report.sqnr_db = meters[layer.report.name].db
    return outputs


def convert(
    model: nn.Module,
    recipe: "str | ConvertConfig | list[ConvertConfig]" = "int8",
    *,
    filter_fn: Callable[[nn.Module, str], bool] | None = None,
    calibration=None,
    dry_run: bool = False,
) -> ConversionReport:
    """Convert `model` in place with a recipe and return what was done.

    recipe: a name from bigaccel.recipes.RECIPES ("int8", "int8-weight-only", ...,
        combined with "+"), a config (bigaccel.Int8Config(...)), or a list of configs.
    filter_fn: (module, fully_qualified_name) -> bool; False leaves the layer alone.
    calibration: model inputs (a tensor, a tuple of args, a dict of kwargs, or a list
        of those): the report then gives each converted layer's SQNR on the inputs it
        saw in the float model, and the model output's SQNR after conversion.
    dry_run: build and measure everything, report, and leave the model unchanged.

    Raises ConversionError (the model unchanged) when a layer fails to convert.
    """
    configs = resolve(recipe)
    name = "+".join(c.name for c in configs)
    report = ConversionReport(recipe=name, dry_run=dry_run, model_bytes_before=module_bytes(model))
    plan = _Plan(model)
    for stage, config in enumerate(configs):
        _plan_stage(plan, config, stage, filter_fn, lambda c, m: c.build(m))
    order = {name: i for i, (name, _, _) in enumerate(plan.walk())}  # model order, nested rows after their parent
    report.layers = sorted((layer.report for layer in plan.layers), key=lambda r: order.get(r.name, len(order)))
    for layer in plan.layers:  # now that later recipes have converted inside the new modules
        if layer.new is not None:
            layer.report.bytes_after = module_bytes(layer.new)
    batches = _batches(calibration)
    reference_outputs = _measure_layers(plan, batches) if batches else []
    if dry_run:
        report.model_bytes_after = report.model_bytes_before + sum(
            r.bytes_after - r.bytes_before for r in report.converted if r.inside is None)
        return report
    _choose_backends(plan)  # may raise (e.g. a forced backend that cannot run): before the swap
    undo = plan.swap()
    try:
        if batches:
            meter = SqnrMeter()
            with torch.no_grad():
                for batch, ref in zip(batches, reference_outputs):
                    meter.add(ref, _run(model, batch))
            report.output_sqnr_db = meter.db
    except Exception as exc:
        undo()
        raise ConversionError(f"bigaccel.convert: the converted model failed on the calibration inputs "
                              f"({type(exc).__name__}: {exc}); the model was left unchanged") from exc
    _record(model, configs, plan)
    report.model_bytes_after = module_bytes(model)
    return report


def _choose_backends(plan: _Plan) -> None:
    """Pick each op's backend for the devices of the new modules now, as their first
    call would: torch.compile(fullgraph=True) cannot trace that choice."""
    from . import backends

    devices = {t.device.type for layer in plan.layers if layer.new is not None
               for t in (*layer.new.parameters(), *layer.new.buffers())}
    for device in devices & {"cpu", "cuda"}:
        backends.prepare(device)


def _record(model: nn.Module, configs: list[ConvertConfig], plan: _Plan) -> None:
    """Remember the recipes and converted layers on the model (bigaccel.save writes them)."""
    history = list(getattr(model, CONVERSIONS_ATTR, []))
    for stage, config in enumerate(configs):
        history.append({
            "recipe": config.name,
            "config": type(config).__name__,
            "options": config.options(),
            "layers": [{"name": l.report.name, "from": l.report.old_type, "to": l.report.new_type}
                       for l in plan.layers if l.stage == stage and l.new is not None],
        })
    model.__dict__[CONVERSIONS_ATTR] = history


def rebuild(model: nn.Module, history: list[dict], config_types: dict) -> Callable[[], None]:
    """Give a float model the structure `history` describes (bigaccel.load), without
    quantizing: each recorded layer gets its config's build_structure. Returns the undo."""
    plan = _Plan(model)
    for stage, entry in enumerate(history):
        cls = config_types.get(entry["config"])
        if cls is None:
            raise ConversionError(f"the checkpoint uses recipe {entry['recipe']!r} ({entry['config']}), "
                                  f"which this version of bigaccel does not have")
        config = cls.from_options(entry["options"])
        wanted = {layer["name"]: layer for layer in entry["layers"]}
        present = {name: (module, root) for name, module, root in plan.walk() if name in wanted}
        for name, layer in wanted.items():
            if name not in present:
                raise ConversionError(f"the model does not match the checkpoint: it has no module {name!r} "
                                      f"(a {layer['from']} converted to {layer['to']} by recipe {entry['recipe']!r})")
            module, root = present[name]
            if _type_name(module) != layer["from"] and not config.is_candidate(module):
                raise ConversionError(f"the model does not match the checkpoint: {name!r} is a {_type_name(module)}, "
                                      f"the checkpoint's was a {layer['from']}")
        only = set(wanted)
        _plan_stage(plan, config, stage, lambda m, n: n in only, lambda c, m: c.build_structure(m), skip_rules=False)
        for l in plan.layers:
            if l.stage == stage and l.report.name in only and l.new is None:
                raise ConversionError(f"the model does not match the checkpoint: {l.report.name!r} cannot take the "
                                      f"checkpoint's {wanted[l.report.name]['to']}: {l.report.skipped}")
    undo = plan.swap()
    model.__dict__[CONVERSIONS_ATTR] = list(history)
    return undo
