"""bigaccel.convert: recipes, skip rules, atomicity, pruned / quantize_dynamic inputs,
the report and its SQNR, torch.compile and torch.export of converted models."""
import math
import warnings

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

import bigaccel
from bigaccel import recipes
from bigaccel.models import tiny_llama
from bigaccel.nn import Int8Linear, Int8WeightOnlyLinear

INT8_RECIPES = {"int8": Int8Linear, "int8-weight-only": Int8WeightOnlyLinear}
# Known recipes whose kernels are not in this version (each test skips once its path lands).
LATER = [n for n in ("int4", "int4-g32", "int4-g64", "sparse24", "sparse24-int8", "fuse-activations")
         if n not in recipes.available_recipes()]


def mlp(seed=0):
    torch.manual_seed(seed)
    # 64x128 and 128x64 convert; 64x32 (2048 weights) is below the 4096 threshold.
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 32)).eval()


def small_llama(**kw):
    # q/o/gate/up/down/lm_head have >= 4096 weights; k/v (32x64 = 2048) are too small.
    return tiny_llama(**{**dict(vocab=256, hidden=64, intermediate=128, layers=2, heads=4, kv_heads=2), **kw})


def tokens(n=2, s=8):
    return torch.randint(0, 256, (n, s), generator=torch.Generator().manual_seed(1))


def rel_error(out, ref):
    return ((out - ref).norm() / ref.norm()).item()


def snapshot(model):
    """Everything atomicity promises to keep: module objects, tensors (storage and values), hooks."""
    return {
        "modules": [(n, id(m)) for n, m in model.named_modules()],
        "tensors": {n: (t.data_ptr(), t.clone()) for n, t in model.state_dict(keep_vars=True).items()},
        "hooks": {n: (dict(m._forward_pre_hooks), dict(m._forward_hooks)) for n, m in model.named_modules()},
    }


def assert_unchanged(model, before):
    after = snapshot(model)
    assert after["modules"] == before["modules"]
    assert after["hooks"] == before["hooks"]
    assert after["tensors"].keys() == before["tensors"].keys()
    for name, (ptr, value) in before["tensors"].items():
        assert after["tensors"][name][0] == ptr and torch.equal(after["tensors"][name][1], value), name


@pytest.mark.parametrize("recipe", list(INT8_RECIPES))
def test_int8_recipes_convert_an_mlp_and_a_llama(recipe):
    cls = INT8_RECIPES[recipe]
    for model, x in ((mlp(), torch.randn(5, 64)), (small_llama(), tokens())):
        ref = model(x)
        report = bigaccel.convert(model, recipe)
        assert report.recipe == recipe and report.converted and not report.dry_run
        for row in report.converted:
            assert isinstance(model.get_submodule(row.name), cls) and row.new_type == cls.__name__
            assert row.bytes_after < row.bytes_before / 3  # int8 + scales vs fp32
        out = model(x)
        # int8 rounding of weights (and activations for W8A8): ~1% per layer, a few layers deep
        assert 0 < rel_error(out, ref) < 0.05
        assert report.model_bytes_after < report.model_bytes_before
        assert recipe in str(report) and report.converted[0].name in report.table()


@pytest.mark.parametrize("recipe", recipes.available_recipes())
def test_every_available_recipe_converts_the_llama(recipe):
    model, x = small_llama(), tokens()
    model.lm_head.register_forward_hook(lambda m, i, o: None)
    if recipe.startswith("sparse24"):  # converts 2:4 layers as they are: prune first, then compare
        from bigaccel.sparsity import prune_model
        prune_model(model)
    ref = model(x)
    report = bigaccel.convert(model, recipe)
    assert report.converted and all(type(model.get_submodule(r.name)).__name__ == r.new_type for r in report.converted)
    # int8 rounding: ~1% per layer; fusion: float reassociation only; int4 (16 levels a group):
    # ~5-7% per layer on these uniform weights, compounding over the 2 blocks.
    assert rel_error(model(x), ref) < (0.2 if recipe.startswith("int4") else 0.05)
    if recipe in INT8_RECIPES:
        assert "1 hook(s) stay on the old module" in {r.name: r.note for r in report.converted}["lm_head"]


def test_skip_reasons_too_small_tied_shared_and_unsupported():
    model = small_llama(tie_embeddings=True)
    shared = nn.Linear(128, 128)
    model.extra = nn.ModuleDict({"a": shared, "b": shared})
    model.on_meta = nn.Linear(128, 128, device="meta")
    report = bigaccel.convert(model, "int8")
    reasons = {r.name: r.skipped for r in report.skipped}
    assert "too small to gain: 2048 weights" in reasons["model.layers.0.self_attn.k_proj"]
    assert "weight tied to model.embed_tokens" in reasons["lm_head"]
    assert "the same module is used at extra.a, extra.b" in reasons["extra.a"]
    assert "meta" in reasons["on_meta"]
    for name in reasons:
        assert type(model.get_submodule(name)) is nn.Linear  # skipped means untouched
    assert model.lm_head.weight is model.model.embed_tokens.weight
    assert isinstance(model.model.layers[0].self_attn.q_proj, Int8Linear)  # exactly 4096 weights converts
    bigaccel.convert(model, bigaccel.Int8Config(skip_tied=False))  # untie on request: the embedding stays float
    assert isinstance(model.lm_head, Int8Linear) and model.model.embed_tokens.weight.dtype == torch.float32


def test_filter_fn_and_config_options():
    model = small_llama()
    report = bigaccel.convert(model, "int8", filter_fn=lambda m, name: ".mlp." in name)
    assert {r.name for r in report.converted} == {f"model.layers.{i}.mlp.{p}_proj" for i in range(2)
                                                  for p in ("gate", "up", "down")}
    assert all(r.skipped == "excluded by filter_fn" for r in report.skipped if r.name.endswith("q_proj"))
    assert type(model.lm_head) is nn.Linear
    config = bigaccel.Int8Config(weight_only=True, min_weight_numel=0, skip_names=("lm_head",))
    report = bigaccel.convert(model, config)
    assert isinstance(model.model.layers[0].self_attn.k_proj, Int8WeightOnlyLinear)  # no size threshold
    assert "skip_names pattern 'lm_head'" in {r.name: r.skipped for r in report.skipped}["lm_head"]


def test_a_failure_leaves_the_model_exactly_as_it_was(monkeypatch):
    model = small_llama()
    prune.l1_unstructured(model.model.layers[0].mlp.up_proj, "weight", amount=0.5)
    model.model.layers[0].self_attn.q_proj.register_forward_hook(lambda m, i, o: None)
    before = snapshot(model)
    real = Int8Linear.from_linear.__func__
    calls = []

    def failing(cls, linear):
        calls.append(linear)
        if len(calls) == 7:  # a later layer: earlier ones are already built
            raise RuntimeError("injected failure")
        return real(cls, linear)

    monkeypatch.setattr(Int8Linear, "from_linear", classmethod(failing))
    with pytest.raises(bigaccel.ConversionError, match=r"'model.layers.1.self_attn.o_proj' \(Linear\).*injected"):
        bigaccel.convert(model, "int8", calibration=tokens())
    assert_unchanged(model, before)


def test_a_failure_during_the_swap_is_undone():
    class RefusesSecondSwap(nn.Sequential):
        def __setattr__(self, name, value):
            if name == "2" and isinstance(value, Int8Linear):
                raise RuntimeError("refused")
            super().__setattr__(name, value)

    model = RefusesSecondSwap(*mlp())
    before = snapshot(model)
    with pytest.raises(RuntimeError, match="refused"):
        bigaccel.convert(model, "int8")
    assert_unchanged(model, before)


def test_unknown_and_not_yet_available_recipes():
    with pytest.raises(bigaccel.RecipeError, match="unknown recipe 'int3'; known recipes: int8, int8-weight-only, int4"):
        bigaccel.convert(mlp(), "int3")
    for name in LATER:
        with pytest.raises(bigaccel.RecipeNotAvailableError, match=f"recipe '{name}' is known.*not in this version"):
            bigaccel.convert(mlp(), name)
    with pytest.raises(bigaccel.RecipeError, match="both convert weights"):
        bigaccel.convert(mlp(), "int8+int8-weight-only")


def test_dry_run_reports_and_changes_nothing():
    model = small_llama()
    before = snapshot(model)
    report = bigaccel.convert(model, "int8", dry_run=True, calibration=tokens())
    assert_unchanged(model, before)
    assert report.dry_run and len(report.converted) == 11 and report.output_sqnr_db is None
    assert all(r.sqnr_db is not None for r in report.converted)
    assert report.model_bytes_after < report.model_bytes_before
    assert not hasattr(model, "_bigaccel_conversions")


@pytest.mark.parametrize("recipe", list(INT8_RECIPES))
def test_pruned_layers_keep_the_mask_and_lose_the_reparametrisation(recipe):
    model = mlp()
    prune.l1_unstructured(model[0], "weight", amount=0.6)
    masked = model[0].weight_orig.detach() * model[0].weight_mask
    x = torch.randn(5, 64)
    ref = model(x)
    report = bigaccel.convert(model, recipe)
    layer = model[0]
    assert isinstance(layer, INT8_RECIPES[recipe]) and not layer._forward_pre_hooks
    assert not any("orig" in n or "mask" in n for n in model.state_dict())
    plain = nn.Linear(64, 128)
    plain.weight.data, plain.bias.data = masked.clone(), model[0].bias.clone()
    assert torch.equal(layer.weight, INT8_RECIPES[recipe].from_linear(plain).weight)  # the masked weight, quantized
    assert bool((layer.weight[masked == 0] == 0).all())
    assert "pruning mask applied (60% zeros)" in report.converted[0].note
    assert rel_error(model(x), ref) < 0.05


def test_quantize_dynamic_models_reuse_their_int8_weights():
    model = mlp()
    x = torch.randn(5, 64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torch.ao.quantization import quantize_dynamic
        quantized = quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
    int_reprs = [quantized[i].weight().int_repr() for i in (0, 2, 4)]
    report = bigaccel.convert(quantized, "int8")
    assert [r.name for r in report.converted] == ["0", "2", "4"]  # int8 already: no size threshold
    assert all("reused the quantize_dynamic int8 weights" in r.note for r in report.converted)
    for i, q in zip((0, 2, 4), int_reprs):
        assert isinstance(quantized[i], Int8Linear) and torch.equal(quantized[i].weight, q)
    assert rel_error(quantized(x), model(x)) < 0.05


def test_calibration_reports_per_layer_and_output_sqnr():
    model = mlp()
    x = torch.randn(16, 64)
    float_first = nn.Linear(64, 128)
    float_first.load_state_dict(model[0].state_dict())
    ref = model(x).detach()
    report = bigaccel.convert(model, "int8", calibration=[x[:8], x[8:]])
    first = report.converted[0]
    # the first layer saw x itself: its SQNR must equal one computed here from its definition
    with torch.no_grad():
        expected_ref, got = float_first(x).double(), model[0](x).double()
    expected = 10 * math.log10(expected_ref.pow(2).sum() / (expected_ref - got).pow(2).sum())
    assert first.sqnr_db == pytest.approx(expected, rel=1e-9)
    # int8 per-channel weights and per-token activations: ~40 dB of rounding noise per layer
    assert all(30 < r.sqnr_db < 60 for r in report.converted)
    out = model(x).detach().double()
    expected_out = 10 * math.log10(ref.double().pow(2).sum() / (ref.double() - out).pow(2).sum())
    assert report.output_sqnr_db == pytest.approx(expected_out, rel=1e-9)
    assert "SQNR dB" in report.table() and "output SQNR" in report.summary()


@pytest.mark.skipif("fuse-activations" in LATER, reason="bigaccel.nn.FusedGatedMLP is not in this version")
def test_fuse_activations_combined_with_int8():
    model, x = small_llama(), tokens()
    ref = model(x)
    report = bigaccel.convert(model, "int8+fuse-activations")
    assert report.recipe == "fuse-activations+int8"
    assert type(model.model.layers[0].mlp).__name__ == "FusedGatedMLP"
    assert any(r.inside == "model.layers.0.mlp" for r in report.converted)
    assert 0 < rel_error(model(x), ref) < 0.05


def test_torch_compile_fullgraph_matches_eager(fresh_backends):
    model, x = mlp(), torch.randn(3, 64)
    bigaccel.convert(model, "int8")  # chooses the backends (outside any graph), as a first call would
    compiled = torch.compile(model, fullgraph=True)(x)
    torch.testing.assert_close(compiled, model(x), rtol=0, atol=0)
    # A transformer: attention, norms and rotary traced around the opaque bigaccel ops. Inference
    # only (no_grad): the int8 ops are not differentiable. aot_eager keeps the test fast on 2 cores
    # and exact (inductor reorders the float math around the ops, by ~1 ulp).
    llama, t = small_llama(layers=1), tokens()
    bigaccel.convert(llama, "int8")
    with torch.no_grad():
        eager = llama(t)
        compiled = torch.compile(llama, fullgraph=True, backend="aot_eager")(t)
    torch.testing.assert_close(compiled, eager, rtol=0, atol=0)


def test_torch_export_contains_the_bigaccel_ops():
    model, x = mlp(), torch.randn(3, 64)
    bigaccel.convert(model, "int8")
    eager = model(x)
    program = torch.export.export(model, (x,))
    targets = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
    assert {"bigaccel.quantize_per_token.default", "bigaccel.int8_mm.default"} <= targets, targets
    torch.testing.assert_close(program.module()(x), eager, rtol=0, atol=0)
