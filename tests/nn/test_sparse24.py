"""bigaccel.nn.Sparse24Linear and Sparse24Int8Linear: construction from dense and pruned layers, state_dict,
leading dims, dtypes, gradients, torch.compile, and the sparse24 and sparse24-int8 recipes."""
import warnings

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

import bigaccel
from bigaccel import reference, sparsity
from bigaccel.nn import Sparse24Int8Linear, Sparse24Linear

EPS32 = torch.finfo(torch.float32).eps


def _pruned_linear(k=36, n=9, seed=0):
    torch.manual_seed(seed)
    linear = nn.Linear(k, n)
    prune.custom_from_mask(linear, "weight", sparsity.mask_2_4(linear.weight))
    return linear


def _close(out, ref, x, w):
    bound = x.shape[-1] * EPS32 * (x.double().abs() @ w.double().abs().t()) + torch.finfo(out.dtype).eps * ref.abs()
    assert bool(((out.double() - ref.double()).abs() <= bound + 1e-6).all())


def test_from_pruned_module_keeps_the_mask_exactly_and_matches():
    linear = _pruned_linear()
    layer = Sparse24Linear.from_linear(linear)
    assert torch.equal(layer.dense_weight(), linear.weight.detach())
    x = torch.randn(2, 3, 36)
    _close(layer(x), linear(x).detach(), x, linear.weight.detach())
    assert "sparsity=2:4" in repr(layer) and "in_features=36" in repr(layer)


def test_dense_weight_is_pruned_with_a_warning_and_non_2_4_masks_are_reported():
    dense = nn.Linear(36, 5)
    with pytest.warns(UserWarning, match="not 2:4"):
        layer = Sparse24Linear.from_linear(dense)
    assert torch.equal(layer.dense_weight(), sparsity.prune_2_4(dense.weight.detach()))
    prune.l1_unstructured(dense, "weight", amount=0.25)
    with pytest.raises(ValueError, match="groups of 4"):
        Sparse24Linear.from_linear(dense)
    layer = Sparse24Linear.from_linear(dense, reprune=True)
    assert reference.is_2_4_sparse(layer.dense_weight())
    with pytest.raises(ValueError, match="multiple of 4"):
        Sparse24Linear(34, 5)


def test_state_dict_round_trip_is_the_canonical_format():
    layer = Sparse24Linear.from_linear(_pruned_linear())
    sd = layer.state_dict()
    assert set(sd) == {"values", "meta", "bias"} and sd["meta"].dtype == torch.uint8
    assert torch.equal(reference.decompress_2_4(sd["values"], sd["meta"], 36), layer.dense_weight())
    fresh = Sparse24Linear(36, 9)
    fresh.load_state_dict(sd)
    x = torch.randn(4, 36)
    assert torch.equal(fresh(x), layer(x))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
def test_dtypes_and_bias_free(dtype):
    linear = sparsity.effective_linear(_pruned_linear().to(dtype))  # .weight is stale after .to() until a forward
    layer = Sparse24Linear.from_linear(linear)
    assert layer.values.dtype == dtype
    x = torch.randn(3, 36).to(dtype)
    out = layer(x)
    ref = x.float() @ linear.weight.detach().float().t() + linear.bias.detach().float()
    assert out.dtype == dtype
    _close(out, ref, x.float(), linear.weight.detach().float())
    no_bias = nn.Linear(36, 4, bias=False)
    prune.custom_from_mask(no_bias, "weight", sparsity.mask_2_4(no_bias.weight))
    layer = Sparse24Linear.from_linear(no_bias)
    assert layer.bias is None and torch.equal(layer(x.float()), layer(x.float()))
    _close(layer(x.float()), x.float() @ no_bias.weight.detach().t(), x.float(), no_bias.weight.detach())


def test_gradient_wrt_input_and_bias_is_the_masked_layers():
    linear = _pruned_linear()
    layer = Sparse24Linear.from_linear(linear)
    layer.bias.requires_grad_(True)
    x = torch.randn(2, 4, 36, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    layer(x).square().sum().backward()
    linear(x_ref).square().sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(layer.bias.grad, linear.bias.grad, rtol=1e-5, atol=1e-5)


def test_torch_compile_matches_eager():
    layer = Sparse24Linear.from_linear(_pruned_linear())
    x = torch.randn(5, 36)
    eager = layer(x)
    torch.testing.assert_close(torch.compile(layer, fullgraph=True)(x), eager, rtol=0, atol=0)


def test_recipe_converts_2_4_layers_and_keeps_others_dense_with_the_reason():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 64))
    sparsity.prune_model(model, filter_fn=lambda m, name: name == "0")
    prune.l1_unstructured(model[2], "weight", amount=0.5)
    x = torch.randn(3, 64)
    ref = model(x).detach()
    report = bigaccel.convert(model, "sparse24")
    assert [r.name for r in report.converted] == ["0"] and isinstance(model[0], Sparse24Linear)
    reasons = {r.name: r.skipped for r in report.skipped}
    assert "pruning mask is not 2:4" in reasons["2"] and "weight is not 2:4" in reasons["4"]
    torch.testing.assert_close(model(x), ref, rtol=1e-4, atol=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bigaccel.convert(model, bigaccel.recipes.Sparse24Config(prune_dense=True, reprune_masks=True))
    assert all(isinstance(model[i], Sparse24Linear) for i in (0, 2, 4))


# ---------------------------------------------------------------------------
# Sparse24Int8Linear: 2:4 + int8 weights, int8 activations
# ---------------------------------------------------------------------------


def test_int8_layer_is_the_int8_layer_of_the_masked_weight():
    """Same weight codes, scales and outputs as Int8Linear on the pruned layer: 2:4 only saves bytes."""
    linear = _pruned_linear(k=68, n=11)
    layer = Sparse24Int8Linear.from_linear(linear)
    dense = bigaccel.nn.Int8Linear.from_linear(sparsity.effective_linear(linear))
    assert torch.equal(reference.decompress_2_4(layer.values, layer.meta, 68), dense.weight)
    assert torch.equal(layer.weight_scale, dense.weight_scale)
    assert bool((layer.dense_weight()[linear.weight_mask == 0] == 0).all())  # pruned stays exactly zero
    x = torch.randn(2, 3, 68)
    out, ref = layer(x), dense(x)
    torch.testing.assert_close(out, ref, rtol=2 * EPS32, atol=1e-6)
    # int8 rounding of weights and activations: ~1%, not garbage
    exact = linear(x).detach()
    assert (out - exact).norm() / exact.norm() < 0.03
    assert "sparsity=2:4" in repr(layer) and "int8" in repr(layer)
    assert isinstance(Sparse24Linear.from_linear(linear, int8=True), Sparse24Int8Linear)


def test_int8_layer_state_dict_dtypes_grad_and_compile():
    layer = Sparse24Int8Linear.from_linear(_pruned_linear())
    sd = layer.state_dict()
    assert set(sd) == {"values", "meta", "weight_scale", "bias"} and sd["values"].dtype == torch.int8
    fresh = Sparse24Int8Linear(36, 9)
    fresh.load_state_dict(sd)
    assert torch.equal(fresh.weight_sum, layer.values.sum(1, dtype=torch.int32))  # derived state rebuilt
    x = torch.randn(4, 36)
    assert torch.equal(fresh(x), layer(x))
    for dtype in (torch.bfloat16, torch.float16):
        out = layer(x.to(dtype))
        assert out.dtype == dtype
        torch.testing.assert_close(out.float(), layer(x), rtol=2e-2, atol=2e-2)
    x_grad = x.clone().requires_grad_(True)
    layer(x_grad).sum().backward()
    torch.testing.assert_close(x_grad.grad, layer.dense_weight().sum(0).expand(4, 36))
    eager = layer(x)
    torch.testing.assert_close(torch.compile(layer, fullgraph=True)(x), eager, rtol=0, atol=0)
    with pytest.raises(ValueError, match="multiple of 4"):
        Sparse24Int8Linear(34, 5)


@pytest.mark.parametrize("recipe, cls", [("sparse24", Sparse24Linear), ("sparse24-int8", Sparse24Int8Linear)])
def test_recipes_convert_pruned_layers_and_load_into_a_fresh_float_model(recipe, cls, tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64))
    sparsity.prune_model(model)
    x = torch.randn(3, 64)
    ref = model(x).detach()
    report = bigaccel.convert(model, recipe)
    assert all(isinstance(model[i], cls) for i in (0, 2)) and len(report.converted) == 2
    assert ((model(x) - ref).norm() / ref.norm()) < 0.03
    bigaccel.save(model, tmp_path / "m.safetensors")
    fresh = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64))  # dense: the 2:4 rule must not apply
    bigaccel.load(fresh, tmp_path / "m.safetensors")
    assert isinstance(fresh[0], cls) and torch.equal(fresh(x), model(x))
