"""Int4Linear (W4A16, group-wise) as a drop-in module, and the int4 recipes."""
import pytest
import torch
from torch import nn

import bigaccel
from bigaccel import reference
from bigaccel.nn import Int4Linear


def _linear(k=192, n=40, bias=True, seed=0):
    torch.manual_seed(seed)
    return nn.Linear(k, n, bias=bias)


@pytest.mark.parametrize("group_size", [32, 64])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("bias", [True, False])
def test_from_linear_is_close_to_the_float_layer(group_size, dtype, bias):
    linear = _linear(bias=bias).to(dtype)
    layer = Int4Linear.from_linear(linear, group_size=group_size, zero_point=bias)
    x = torch.randn(2, 3, 192).to(dtype)  # leading batch dims
    out = layer(x)
    assert out.dtype == dtype and out.shape == (2, 3, 40)
    expected = linear.float()(x.float())
    rel = ((out.float() - expected).norm() / expected.norm()).item()
    assert rel < 0.15, rel  # 4-bit RTN on uniform weights: a few percent
    ref = reference.int4_mm(x.reshape(6, 192), layer.weight_packed, layer.weight_scales, layer.weight_zeros,
                            group_size, layer.bias)
    torch.testing.assert_close(out.reshape(6, 40), ref, rtol=1e-2, atol=1e-2)


def test_state_dict_round_trip_and_repr():
    layer = Int4Linear.from_linear(_linear(), group_size=64)
    state = layer.state_dict()
    assert set(state) == {"weight_packed", "weight_scales", "weight_zeros", "bias"}
    assert state["weight_packed"].shape == (40, 96) and state["weight_scales"].shape == (40, 3)
    fresh = Int4Linear(192, 40, group_size=64)
    fresh.load_state_dict(state)
    x = torch.randn(5, 192)
    torch.testing.assert_close(fresh(x), layer(x), rtol=0, atol=0)
    assert repr(layer) == "Int4Linear(in_features=192, out_features=40, bias=True, group_size=64, zero_point=True)"
    sym = Int4Linear.from_linear(_linear(bias=False), group_size=32, zero_point=False)
    assert "weight_zeros" not in sym.state_dict() and "zero_point=False" in repr(sym)


def test_clear_errors():
    with pytest.raises(ValueError, match="in_features=100 is not a multiple of group_size=32"):
        Int4Linear.from_linear(nn.Linear(100, 8), group_size=32)
    with pytest.raises(ValueError, match="group_size must be one of"):
        Int4Linear.from_linear(nn.Linear(96, 8), group_size=48)
    with pytest.raises(TypeError, match="expects an nn.Linear"):
        Int4Linear.from_linear(nn.Conv1d(4, 4, 1))
    with pytest.raises(ValueError, match="K mismatch"):
        Int4Linear.from_linear(_linear(), group_size=64)(torch.randn(2, 191))


def test_gradient_wrt_input_and_bias_is_the_dequantized_layers():
    layer = Int4Linear.from_linear(_linear(), group_size=32)
    dense = nn.Linear(192, 40)
    with torch.no_grad():
        dense.weight.copy_(layer.dequantized_weight())
        dense.bias.copy_(layer.bias)
    layer.bias.requires_grad_(True)
    x = torch.randn(2, 3, 192, requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    grad = torch.randn(2, 3, 40)
    layer(x).backward(grad)
    dense(x2).backward(grad)
    torch.testing.assert_close(x.grad, x2.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(layer.bias.grad, dense.bias.grad, rtol=1e-5, atol=1e-5)
    assert layer.weight_packed.grad is None


@pytest.mark.parametrize("recipe,group_size", [("int4", 128), ("int4-g32", 32), ("int4-g64", 64)])
def test_recipes_convert_and_skip_with_a_reason(recipe, group_size):
    assert recipe in bigaccel.recipes.available_recipes()
    model = nn.Sequential(nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 96), nn.ReLU(), nn.Linear(96, 64))
    x = torch.randn(3, 128)
    expected = model(x)
    configs = bigaccel.recipes.resolve(recipe)
    assert configs[0].group_size == group_size
    for i in (0, 2, 4):
        reason = configs[0].unsupported_reason(model[i])
        if model[i].in_features % group_size:
            assert f"is not a multiple of group_size={group_size}" in reason
        else:
            assert reason is None
            built = configs[0].build(model[i])
            assert isinstance(built, Int4Linear) and built.group_size == group_size
            structure = configs[0].build_structure(model[i])
            structure.load_state_dict(built.state_dict())
            torch.testing.assert_close(structure(x[:, :model[i].in_features]),
                                       built(x[:, :model[i].in_features]), rtol=0, atol=0)
    assert expected.shape == (3, 64)
