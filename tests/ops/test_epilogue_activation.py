"""The GEMMs' epilogue activation (activation= of int8_mm, int8_weight_only_mm, int4_mm):
every backend against act(the GEMM's fp32 result), opcheck, and clear errors."""
import pytest
import torch
import torch.nn.functional as F

import bigaccel
from bigaccel import reference
from tests.conftest import backend_cases, cpu_bf16_kernels
from tests.ops.test_int4_gemm import W4A16_BF16_TILE_MIN_ROWS

EPS32 = torch.finfo(torch.float32).eps
ACTIVATIONS = ["silu", "gelu", "gelu_tanh"]
N, K, G = 37, 96, 32  # odd N; K a multiple of the int4 group but of no larger block


def _data(m, dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    x = (torch.randn(m, K, generator=gen) * 2).to(dtype)
    w = torch.randn(N, K, generator=gen) / 10
    b = torch.randn(N, generator=gen).to(dtype)
    return x, w, b


def _problem(op, m, dtype, seed, case=("reference", "cpu", None)):
    """(run(activation) on a device, the fp32 pre-activation, its error bound before the activation)."""
    x, w, b = _data(m, dtype, seed)
    bias_abs = b.double().abs()
    if op == "int8_mm":
        a, a_scale = reference.quantize_per_token(x)
        q, s = reference.quantize_per_channel_int8(w)
        pre = reference.int8_mm(a, a_scale, q, s, b, torch.float32)
        # exact int32 sums; the epilogue's few fp32 roundings
        lin_tol = 4 * EPS32 * (pre.double().abs() + bias_abs)
        args, tail = (a, a_scale, q, s, q.sum(1, dtype=torch.int32), b), (dtype,)
    elif op == "int8_weight_only_mm":
        q, s = reference.quantize_per_channel_int8(w)
        pre = reference.int8_weight_only_mm(x.float(), q, s, b)
        w_abs = reference.dequantize_int8_rowwise(q, s).double().abs()
        lin_tol = K * EPS32 * (x.double().abs() @ w_abs.t()) + 4 * EPS32 * (pre.double().abs() + bias_abs)
        args, tail = (x, q, s, b), ()
    else:
        packed, scales, zeros = reference.quantize_int4(w, G, True)
        pre = reference.int4_mm(x.float(), packed, scales, zeros, G, b)
        w_dq = reference.dequantize_int4(packed, scales, zeros, G).double()
        lin_tol = K * EPS32 * (x.double().abs() @ w_dq.abs().t()) + 4 * EPS32 * (pre.double().abs() + bias_abs)
        if cpu_bf16_kernels(case, x, W4A16_BF16_TILE_MIN_ROWS, direct_op=True):  # the weight rounded to bf16
            lin_tol = lin_tol + x.double().abs() @ (w_dq - w_dq.bfloat16().double()).abs().t()
        args, tail = (x, packed, scales, zeros, G, b), ()

    def run(activation, device):
        moved = [t.to(device) if isinstance(t, torch.Tensor) else t for t in args]
        return getattr(torch.ops.bigaccel, op)(*moved, *tail, activation=activation).cpu()

    return run, pre, lin_tol


def _expected_and_tolerance(pre, lin_tol, activation, dtype):
    expected = reference.epilogue_activation(pre.double(), activation)
    eps = torch.finfo(dtype).eps
    # The pre-activation's own error and (on the C++ paths) its rounding to the output dtype
    # before the activation, through |act'| <= 1.13; the activation kernel's few ulps; the
    # final rounding.
    tol = 1.2 * (lin_tol + eps * pre.double().abs()) + 16 * EPS32 * pre.double().abs() + eps * expected.abs() + 1e-30
    return expected, tol


def _cases():
    for op in ("int8_mm", "int8_weight_only_mm", "int4_mm"):
        for case in backend_cases(op):
            yield pytest.param(op, case.values[0], id=f"{op}-{case.id}")


@pytest.mark.parametrize("op,case", list(_cases()))
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("m", [1, 5, 17, 130])  # 130: int4's dequantize + fp32 GEMM path
def test_epilogue_activation_matches_reference(op, case, activation, dtype, m, use_backend):
    backend, device, isa = case
    if backend == "triton" and device == "cpu" and (m != 5 or dtype == torch.float16):
        pytest.skip("the Triton interpreter is slow: one M and two dtypes cover its epilogue")
    use_backend(backend, isa)
    run, pre, lin_tol = _problem(op, m, dtype, seed=m, case=case)
    out = run(activation, device)
    assert out.dtype == dtype and out.shape == (m, N)
    expected, tol = _expected_and_tolerance(pre, lin_tol, activation, dtype)
    err = (out.double() - expected).abs()
    assert torch.all(err <= tol), f"max error {err.max():.3g}, at most {tol.flatten()[err.argmax()]:.3g} allowed"
    # The activation changed the result: a kernel that ignored it would fail above.
    assert ((expected - pre.double()).abs() > tol).double().mean() > 0.25


@pytest.mark.parametrize("op", ["int8_mm", "int8_weight_only_mm", "int4_mm"])
def test_opcheck_with_activation(op):
    x, w, b = _data(3, torch.float32, 3)
    if op == "int8_mm":
        a, a_scale = reference.quantize_per_token(x)
        q, s = reference.quantize_per_channel_int8(w)
        args = (a, a_scale, q, s, None, b, torch.bfloat16, "gelu")
    elif op == "int8_weight_only_mm":
        q, s = reference.quantize_per_channel_int8(w)
        args = (x, q, s, b, "silu")
    else:
        packed, scales, zeros = reference.quantize_int4(w, G, True)
        args = (x, packed, scales, zeros, G, b, "gelu_tanh")
    torch.library.opcheck(getattr(torch.ops.bigaccel, op).default, args)


@pytest.mark.parametrize("op", ["int8_mm", "int8_weight_only_mm", "int4_mm"])
def test_bad_activation_is_explained_by_the_kernel(op):
    run, _, _ = _problem(op, 2, torch.float32, seed=0)
    with pytest.raises(RuntimeError, match="activation must be 'none', 'silu', 'gelu'"):
        run("relu", "cpu")


@pytest.mark.parametrize("layer", ["Int8Linear", "Int8WeightOnlyLinear", "Int4Linear"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_layers_apply_the_activation(layer, activation):
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 19)
    cls = getattr(bigaccel.nn, layer)
    kw = {"group_size": 32} if layer == "Int4Linear" else {}
    plain, fused = cls.from_linear(linear, **kw), cls.from_linear(linear, activation=activation, **kw)
    assert f"activation={activation!r}" in repr(fused)
    x = torch.randn(2, 3, 64)
    expected = reference.epilogue_activation(plain(x), activation)
    torch.testing.assert_close(fused(x), expected, rtol=1e-5, atol=1e-5)
    # training: the unfused path, with the activation's gradient
    xg = x.clone().requires_grad_()
    fused(xg).sum().backward()
    xe = x.clone().requires_grad_()
    reference.epilogue_activation(plain(xe), activation).sum().backward()
    torch.testing.assert_close(xg.grad, xe.grad, rtol=1e-4, atol=1e-5)
    # state_dict round trip into a layer built with the same option
    again = cls(64, 19, activation=activation, **kw)
    again.load_state_dict(fused.state_dict())
    torch.testing.assert_close(again(x), fused(x), rtol=0, atol=0)


def test_layer_with_activation_compiles():
    torch.manual_seed(0)
    layer = bigaccel.nn.Int8Linear.from_linear(torch.nn.Linear(32, 24), activation="gelu")
    x = torch.randn(4, 32)
    torch.testing.assert_close(torch.compile(layer, fullgraph=True)(x), layer(x))


def test_bad_activation_is_explained():
    linear = torch.nn.Linear(32, 8)
    with pytest.raises(ValueError, match="activation must be None or one of"):
        bigaccel.nn.Int8Linear.from_linear(linear, activation="relu")
    with pytest.raises(ValueError, match="activation must be None or one of"):
        bigaccel.nn.Int4Linear(32, 8, group_size=32, activation="tanh")
    q, s = reference.quantize_per_channel_int8(linear.weight.detach())
    with pytest.raises(ValueError, match="activation must be None or one of"):
        bigaccel.ops.int8_weight_only_linear(torch.randn(2, 32), q, s, activation="swish")


def test_eager_silu_matches_module_option():
    # The documented equivalence: Int8Linear(activation="silu") == F.silu(Int8Linear(x)) up to rounding.
    torch.manual_seed(1)
    linear = torch.nn.Linear(48, 16)
    x = torch.randn(5, 48, dtype=torch.bfloat16)
    fused = bigaccel.nn.Int8WeightOnlyLinear.from_linear(linear, activation="silu")(x)
    unfused = F.silu(bigaccel.nn.Int8WeightOnlyLinear.from_linear(linear)(x).float()).bfloat16()
    torch.testing.assert_close(fused, unfused, rtol=2 * 2**-8, atol=1e-3)
