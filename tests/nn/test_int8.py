"""Int8Linear (W8A8) and Int8WeightOnlyLinear (W8A16) as drop-in modules."""
import warnings

import pytest
import torch
from torch import nn

import bigaccel
from bigaccel import reference
from bigaccel.nn import Int8Linear, Int8WeightOnlyLinear

MODULES = [Int8Linear, Int8WeightOnlyLinear]


def _linear(k=96, n=40, bias=True, seed=0):
    torch.manual_seed(seed)
    return nn.Linear(k, n, bias=bias)


@pytest.mark.parametrize("cls", MODULES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("bias", [True, False])
def test_from_linear_is_close_to_the_float_layer(cls, dtype, bias):
    linear = _linear(bias=bias).to(dtype)
    layer = cls.from_linear(linear)
    x = torch.randn(2, 3, 96).to(dtype)  # leading batch dims
    out = layer(x)
    assert out.dtype == dtype and out.shape == (2, 3, 40)
    expected = linear.float()(x.float())
    rel = ((out.float() - expected).norm() / expected.norm()).item()
    assert rel < (0.02 if cls is Int8Linear else 0.01), rel  # int8 rounding: ~0.5-1% on random data
    if cls is Int8WeightOnlyLinear:  # exactly the dequantized weight in a float linear
        ref = reference.int8_weight_only_mm(x.reshape(6, 96), layer.weight, layer.weight_scale, layer.bias)
        torch.testing.assert_close(out.reshape(6, 40), ref, rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("cls", MODULES)
def test_state_dict_round_trip_and_repr(cls):
    layer = cls.from_linear(_linear())
    state = layer.state_dict()
    assert set(state) == {"weight", "weight_scale", "bias"} and state["weight"].dtype == torch.int8
    fresh = cls(96, 40)
    fresh.load_state_dict(state)
    x = torch.randn(5, 96)
    assert torch.equal(fresh(x), layer(x))  # Int8Linear's derived weight_sum follows the load
    assert repr(layer) == f"{cls.__name__}(in_features=96, out_features=40, bias=True)"


@pytest.mark.parametrize("cls", MODULES)
def test_from_dynamic_quantized_reuses_the_int8_weights(cls):
    linear = _linear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        for qconfig in (None, per_channel_dynamic_qconfig):
            spec = {nn.Linear} if qconfig is None else {nn.Linear: qconfig}
            quantized = quantize_dynamic(nn.Sequential(linear), spec, dtype=torch.qint8)[0]
            layer = cls.from_dynamic_quantized(quantized)
            w = quantized.weight()
            assert torch.equal(layer.weight, w.int_repr())
            deq = w.dequantize()
            torch.testing.assert_close(layer.dequantized_weight(), deq, rtol=0, atol=0)
            x = torch.randn(4, 96)
            rel = (layer(x) - linear(x)).norm() / linear(x).norm()
            assert rel < 0.02
    with pytest.raises(TypeError, match="expects a torch.ao.nn.quantized.dynamic.Linear"):
        cls.from_dynamic_quantized(linear)


def test_from_linear_rejects_other_modules():
    with pytest.raises(TypeError, match="expects an nn.Linear"):
        Int8Linear.from_linear(nn.Conv1d(3, 3, 1))


@pytest.mark.parametrize("cls", MODULES)
def test_torch_compile_matches_eager(cls):
    layer = cls.from_linear(_linear())
    x = torch.randn(3, 7, 96)
    eager = layer(x)
    bigaccel.backends.reset()
    layer(x)  # choose the backend eagerly, as a model's first call does
    compiled = torch.compile(layer, fullgraph=True)
    torch.testing.assert_close(compiled(x), eager, rtol=0, atol=0)


@pytest.mark.parametrize("cls", MODULES)
def test_gradient_flows_to_the_input_through_the_dequantized_weight(cls):
    layer = cls.from_linear(_linear())
    x = torch.randn(2, 3, 96, requires_grad=True)
    grad_out = torch.randn(2, 3, 40)
    layer(x).backward(grad_out)
    # Straight through the activation quantization: d out / d x is the dequantized weight.
    expected = grad_out @ layer.dequantized_weight()
    torch.testing.assert_close(x.grad, expected, rtol=1e-5, atol=1e-5)
    assert layer.weight.grad is None


@pytest.mark.parametrize("cls", MODULES)
def test_compiles_with_grad_enabled(cls, fresh_backends):
    # Inference without no_grad is common (a model whose embeddings require grad).
    layer = cls.from_linear(_linear())
    bigaccel.backends.prepare("cpu")  # the backend choice cannot be traced (bigaccel.convert does this)
    x = torch.randn(4, 96, requires_grad=True)
    compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)
    out = compiled(x)
    torch.testing.assert_close(out, layer(x))
    out.sum().backward()
    torch.testing.assert_close(x.grad, torch.ones(4, 40) @ layer.dequantized_weight(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_a_converted_model_cast_to_half_keeps_fp32_scales_and_runs(dtype):
    """convert, then model.to(bf16) (or .half()): the scales stay float32, bit for bit, the
    bias follows the model, and the output is the fp32 model's to within half precision."""
    torch.manual_seed(0)
    for recipe, buffer in [("int8", "weight_scale"), ("int8-weight-only", "weight_scale"), ("int4", "weight_scales"),
                           ("sparse24-int8", "weight_scale")]:
        model = nn.Sequential(nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 32))
        if recipe.startswith("sparse24"):
            bigaccel.sparsity.prune_model(model)
        bigaccel.convert(model, recipe)
        scales = getattr(model[0], buffer).clone()
        x = torch.randn(3, 128).to(dtype)
        want = model(x.float())
        model.to(dtype)
        assert getattr(model[0], buffer).dtype == torch.float32 and torch.equal(getattr(model[0], buffer), scales)
        assert model[0].bias.dtype == dtype
        out = model(x)
        assert out.dtype == dtype, recipe
        assert (out.float() - want).norm() <= 2e-2 * want.norm(), recipe  # bf16 rounds x, bias and output


def test_layers_check_their_input_per_call():
    """The layers check their weights when built and the input per call: wrong dtype, K
    or device is a clear error naming the fix (the kernels recheck the weights)."""
    layers = [Int8Linear.from_linear(nn.Linear(64, 8)), Int8WeightOnlyLinear.from_linear(nn.Linear(64, 8)),
              bigaccel.nn.Int4Linear.from_linear(nn.Linear(64, 8), group_size=32)]
    for layer in layers:
        name = type(layer).__name__
        with pytest.raises(ValueError, match=f"nn.{name}: K mismatch: .* is 63, .* in_features=64"):
            layer(torch.randn(2, 63))
        with pytest.raises(ValueError, match=f"nn.{name}: the input is on meta .* layer.to"):
            layer(torch.randn(2, 64, device="meta"))
        with pytest.raises(TypeError, match="float32, bfloat16 or float16"):
            layer(torch.randn(2, 64).double())
