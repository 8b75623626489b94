"""Activation modules and FusedGatedMLP: same results as the eager modules they replace."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import bigaccel
from bigaccel.nn import FastGELU, FusedGatedMLP, GeluAndMul, SiluAndMul
from bigaccel.nn.mlp import fuse_gated_mlps, why_not_fusable


class LlamaStyleMLP(nn.Module):
    def __init__(self, hidden=24, inter=40, act=None, bias=False):
        super().__init__()
        self.gate_proj = nn.Linear(hidden, inter, bias=bias)
        self.up_proj = nn.Linear(hidden, inter, bias=bias)
        self.down_proj = nn.Linear(inter, hidden, bias=bias)
        self.act_fn = act if act is not None else nn.SiLU()

    def forward(self, x):
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


class GELUTanh(nn.Module):  # named like transformers' class for gelu_pytorch_tanh
    def forward(self, x):
        return F.gelu(x, approximate="tanh")


class QuickGELUActivation(nn.Module):  # not a GELU: must be left alone
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


def test_gated_modules_match_formula():
    x = torch.randn(3, 2 * 19)
    gate, up = x[:, :19], x[:, 19:]
    torch.testing.assert_close(SiluAndMul()(x), F.silu(gate) * up)
    torch.testing.assert_close(GeluAndMul("tanh")(x), F.gelu(gate, approximate="tanh") * up)
    with pytest.raises(ValueError, match="approximate"):
        GeluAndMul("erf")


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_fast_gelu_is_a_drop_in(approximate):
    ref = nn.GELU(approximate=approximate)
    fast = FastGELU.from_module(ref)
    assert isinstance(fast, nn.GELU) and fast.approximate == approximate
    x = torch.randn(4, 33, requires_grad=True)
    torch.testing.assert_close(fast(x), ref(x))
    (gx,) = torch.autograd.grad(fast(x).sum(), x)
    (gx_ref,) = torch.autograd.grad(ref(x).sum(), x)
    torch.testing.assert_close(gx, gx_ref)
    x64 = torch.randn(5, dtype=torch.float64)  # not a kernel dtype: falls back to nn.GELU
    assert torch.equal(fast(x64), ref(x64))


@pytest.mark.parametrize("act, name", [(nn.SiLU(), "silu"), (nn.GELU(), "gelu"), (nn.GELU("tanh"), "gelu_tanh"),
                                       (GELUTanh(), "gelu_tanh")])
@pytest.mark.parametrize("bias", [False, True])
def test_fused_mlp_matches_the_original(act, name, bias):
    torch.manual_seed(0)
    mlp = LlamaStyleMLP(act=act, bias=bias)
    fused = FusedGatedMLP.from_module(mlp)
    assert fused.activation == name and fused.gate_up_proj.weight.shape == (80, 24)
    x = torch.randn(2, 5, 24, requires_grad=True)
    torch.testing.assert_close(fused(x), mlp(x), rtol=1e-5, atol=1e-5)
    # training through the fused op: gradients reach the input and the fused weights
    (gx,) = torch.autograd.grad(mlp(x).square().sum(), x)
    fused(x).square().sum().backward()
    torch.testing.assert_close(x.grad, gx, rtol=1e-4, atol=1e-5)
    w_grad = torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight])
    assert fused.gate_up_proj.weight.grad.shape == w_grad.shape


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda: LlamaStyleMLP(act=QuickGELUActivation()), "act_fn is a QuickGELUActivation"),
        (lambda: LlamaStyleMLP(act=nn.ReLU()), "act_fn is a ReLU"),
        (lambda: nn.Sequential(nn.Linear(4, 4)), "has no gate_proj"),
    ],
)
def test_unsupported_mlps_are_left_alone(make, reason):
    mlp = make()
    assert reason in why_not_fusable(mlp)
    assert FusedGatedMLP.from_module(mlp) is None
    with pytest.raises(ValueError, match=reason):
        FusedGatedMLP.from_module(mlp, strict=True)


def test_subclassed_projection_is_left_alone():
    mlp = LlamaStyleMLP()
    mlp.up_proj = bigaccel.nn.Int8Linear.from_linear(mlp.up_proj)
    assert "up_proj is a Int8Linear" in why_not_fusable(mlp)


def test_fuse_gated_mlps_in_a_model():
    torch.manual_seed(1)
    model = nn.Sequential(LlamaStyleMLP(), nn.LayerNorm(24), LlamaStyleMLP(act=QuickGELUActivation()))
    x = torch.randn(3, 24)
    expected = model(x)
    assert fuse_gated_mlps(model) == ["0"]
    assert isinstance(model[0], FusedGatedMLP) and isinstance(model[2], LlamaStyleMLP)
    torch.testing.assert_close(model(x), expected, rtol=1e-5, atol=1e-5)


def test_quantized_gate_up_projection():
    """The gate|up projection is a submodule: an Int8Linear works in its place."""
    torch.manual_seed(2)
    fused = FusedGatedMLP.from_module(LlamaStyleMLP())
    x = torch.randn(4, 24)
    expected = fused(x)
    fused.gate_up_proj = bigaccel.nn.Int8Linear.from_linear(fused.gate_up_proj)
    got = fused(x)
    # int8 weights and activations: a few percent of the output's scale, far from garbage
    assert (got - expected).abs().max() < 0.05 * expected.abs().max()


def test_torch_compile_of_the_module(fresh_backends):
    torch.manual_seed(3)
    fused = FusedGatedMLP.from_module(LlamaStyleMLP(act=nn.GELU("tanh")))
    x = torch.randn(2, 7, 24, requires_grad=True)
    eager = fused(x)  # the backend choice is made once, eagerly (backends.get is not traced)
    (eager_grad,) = torch.autograd.grad(eager.sum(), x)
    compiled = torch.compile(fused, fullgraph=True)
    out = compiled(x)
    torch.testing.assert_close(out, eager, rtol=1e-6, atol=1e-6)
    (grad,) = torch.autograd.grad(out.sum(), x)
    torch.testing.assert_close(grad, eager_grad, rtol=1e-6, atol=1e-6)


def test_bf16_module():
    torch.manual_seed(4)
    mlp = LlamaStyleMLP().to(torch.bfloat16)
    fused = FusedGatedMLP.from_module(mlp)
    assert fused.gate_up_proj.weight.dtype == torch.bfloat16
    x = torch.randn(3, 24, dtype=torch.bfloat16)
    # eager rounds silu(gate) before the product; the fused op does not: a few bf16 ulps apart
    torch.testing.assert_close(fused(x), mlp(x), rtol=4e-2, atol=4e-2)
