"""Fused activations: every backend against float64 math, the fp32 reference and eager autograd."""
import math

import pytest
import torch
import torch.nn.functional as F

import bigaccel
from bigaccel import reference
from tests.conftest import backend_cases

DTYPES = [torch.float32, torch.bfloat16, torch.float16]
MANTISSA_BITS = {torch.float32: 23, torch.bfloat16: 7, torch.float16: 10}
MIN_ULP = {torch.float32: 2.0**-149, torch.bfloat16: 2.0**-133, torch.float16: 2.0**-24}


def _act(x, activation):
    if x.dtype == torch.float64:
        return _exact_act(x, activation)
    if activation == "silu":
        return F.silu(x)
    return F.gelu(x, approximate="tanh" if activation == "gelu_tanh" else "none")


def _exact_act(x, activation):
    """The activations in float64, in forms that keep their relative accuracy in the negative tail
    (0.5 * (1 + erf) and 1 + tanh cancel there, even in float64, and so does torch.special.ndtr)."""
    if activation == "silu":
        return x * torch.sigmoid(x)
    if activation == "gelu":
        return x * 0.5 * torch.special.erfc(-x / math.sqrt(2))
    return x * torch.sigmoid(2 * math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))  # 0.5 (1 + tanh z) = sigmoid(2z)


# name -> (bigaccel call, eager formula in the input's own dtype, gated, has bias)
CASES = {
    "silu_and_mul": (lambda x, b, out=None: bigaccel.ops.silu_and_mul(x, out=out), "silu", True),
    "gelu_and_mul": (lambda x, b, out=None: bigaccel.ops.gelu_and_mul(x, out=out), "gelu", True),
    "gelu_and_mul_tanh": (lambda x, b, out=None: bigaccel.ops.gelu_and_mul(x, "tanh", out=out), "gelu_tanh", True),
    "gelu": (lambda x, b, out=None: bigaccel.ops.gelu(x, out=out), "gelu", False),
    "gelu_tanh": (lambda x, b, out=None: bigaccel.ops.gelu(x, "tanh", out=out), "gelu_tanh", False),
    "bias_silu": (lambda x, b, out=None: bigaccel.ops.bias_silu(x, b, out=out), "silu", False),
    "bias_gelu": (lambda x, b, out=None: bigaccel.ops.bias_gelu(x, b, out=out), "gelu", False),
    "bias_gelu_tanh": (lambda x, b, out=None: bigaccel.ops.bias_gelu(x, b, "tanh", out=out), "gelu_tanh", False),
}
OP_OF = {"silu_and_mul": "silu_and_mul", "gelu_and_mul": "gelu_and_mul", "gelu_and_mul_tanh": "gelu_and_mul",
         "gelu": "gelu", "gelu_tanh": "gelu", "bias_silu": "bias_act", "bias_gelu": "bias_act",
         "bias_gelu_tanh": "bias_act"}


def _has_bias(name):
    return name.startswith("bias_")


def formula(name, x, b):
    """The eager PyTorch formula, computed in x's dtype (float64 gives the exact answer)."""
    _, activation, gated = CASES[name]
    if gated:
        d = x.shape[-1] // 2
        return _act(x[..., :d], activation) * x[..., d:]
    return _act(x + b if _has_bias(name) else x, activation)


def ulp(v: torch.Tensor, dtype) -> torch.Tensor:
    """One unit in the last place of `dtype` at the magnitude of v (float64)."""
    _, exponent = torch.frexp(v.double())
    return torch.maximum(torch.ldexp(torch.ones_like(v, dtype=torch.float64), exponent - 1 - MANTISSA_BITS[dtype]),
                         torch.tensor(MIN_ULP[dtype], dtype=torch.float64))


def ulp_error(got, exact) -> torch.Tensor:
    """|got - exact| in fp32 ulps of exact, over the elements not in the underflow range."""
    keep = exact.abs() > 1e-30
    return ((got.double() - exact).abs() / ulp(exact, torch.float32))[keep]


def assert_accurate(name, got, x, b, grad_of=None):
    """fp32: the worst ulp error against float64 at most 2x PyTorch's own fp32 worst (or 8 ulps).
    bf16/fp16: every element within 1 ulp of the output dtype of the exact answer rounded once."""
    fn = (lambda x, b: formula(name, x, b)) if grad_of is None else grad_of
    dtype = got.dtype
    if dtype == torch.float32:
        exact = fn(x.double(), None if b is None else b.double())
        ours, torch_err = ulp_error(got, exact), ulp_error(fn(x, b), exact)
        worst = ours.max().item() if ours.numel() else 0.0
        assert worst <= max(2 * torch_err.max().item(), 8.0), f"{worst:.1f} ulps, PyTorch fp32 {torch_err.max():.1f}"
        return
    # the exact answer rounded once (PyTorch's fp32 is itself far off in the GELU's negative tail), plus,
    # for values near a zero (GELU's derivative at x = -0.75 is a difference of two terms), twice the
    # absolute error PyTorch makes computing the same thing in fp32
    exact = fn(x.double(), None if b is None else b.double())
    expected = exact.to(dtype)
    fp32_err = (fn(x.float(), None if b is None else b.float()).double() - exact).abs().max()
    err = (got.double() - expected.double()).abs()
    bad = err > ulp(expected.double(), dtype) + 2 * fp32_err
    assert not bad.any(), f"{int(bad.sum())} of {bad.numel()} elements over 1 ulp off; worst {err.max().item():.3g}"


def _inputs(name, shape, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(shape, generator=g) * 3).to(dtype)
    b = (torch.randn(shape[-1], generator=g)).to(dtype) if _has_bias(name) else None
    return x, b


def _shape(name, lead, d):
    return (*lead, 2 * d) if CASES[name][2] else (*lead, d)


# odd d everywhere (and not a multiple of 8 or 16 vector lanes), M = 1, leading batch dims
SHAPES = [((1,), 1), ((1,), 37), ((3,), 17), ((2, 3), 33), ((5,), 300)]


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("case", backend_cases("silu_and_mul"))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_forward_matches_reference(name, case, dtype, use_backend):
    backend, device, isa = case
    use_backend(backend, isa)
    for lead, d in SHAPES:
        x, b = _inputs(name, _shape(name, lead, d), dtype)
        out = CASES[name][0](x.to(device), None if b is None else b.to(device)).cpu()
        assert out.dtype == dtype and out.shape == (*lead, d)
        assert_accurate(name, out, x, b)


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("case", backend_cases("silu_and_mul"))
def test_non_contiguous_and_out(name, case, use_backend):
    backend, device, isa = case
    use_backend(backend, isa)
    x, b = _inputs(name, _shape(name, (6,), 40), torch.bfloat16)
    base = torch.cat([x, x], dim=-1).to(device)
    strided = base[::2, ::2]  # every other row and column
    x_view = strided.cpu()
    out = CASES[name][0](strided, None if b is None else b.to(device)).cpu()
    assert_accurate(name, out, x_view, b)
    buf = torch.full(out.shape, float("nan"), dtype=out.dtype, device=device)
    ret = CASES[name][0](strided, None if b is None else b.to(device), out=buf)
    assert ret is buf and torch.equal(buf.cpu(), out)


STREAM_OUTPUT_BYTES = 4 << 20  # csrc/activations/cpu.cpp: larger outputs are stored past the caches


@pytest.mark.parametrize("name", ["silu_and_mul", "gelu_and_mul", "bias_gelu_tanh"])
@pytest.mark.parametrize("case", [c for c in backend_cases("silu_and_mul") if c.values[0][0] == "cpu"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_large_outputs_equal_small_ones(name, case, dtype, use_backend):
    """An output over the streaming size (non-temporal stores on AVX-512, only at 64-byte aligned
    addresses: odd d leaves most rows unaligned), into a fresh tensor and into an offset `out=`
    view, is bit for bit the same as the same rows computed in calls under that size."""
    backend, device, isa = case
    use_backend(backend, isa)
    d = 4103
    rows = STREAM_OUTPUT_BYTES // (d * dtype.itemsize) + 3
    x, b = _inputs(name, _shape(name, (rows,), d), dtype, seed=4)
    small = torch.cat([CASES[name][0](chunk, b) for chunk in x.split(64)])
    assert torch.equal(CASES[name][0](x, b), small)
    buf = torch.full((rows * d + 5,), float("nan"), dtype=dtype)
    view = buf[5:].view(rows, d)
    assert CASES[name][0](x, b, out=view) is view
    assert torch.equal(view, small) and buf[:5].isnan().all()
    assert_accurate(name, small[:2], x[:2], b)


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("case", backend_cases("silu_and_mul"))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_nan_in_nan_out(name, case, dtype, use_backend):
    """A nan in x (gate or up) gives a nan in that output, forward and backward, in every
    dtype (the bf16 stores round without a nan fix-up: see vec_math.h)."""
    backend, device, isa = case
    use_backend(backend, isa)
    x, b = _inputs(name, _shape(name, (3,), 21), dtype, seed=2)
    x[0, 4] = x[1, -1] = x[2, 0] = float("nan")
    expected = formula(name, x.double(), None if b is None else b.double()).isnan()
    assert expected.sum() >= 3
    out = CASES[name][0](x.to(device), None if b is None else b.to(device)).cpu()
    assert torch.equal(out.isnan(), expected)
    x64 = x.double().requires_grad_()
    formula(name, x64, None if b is None else b.double()).sum().backward()
    xg = x.to(device).requires_grad_()
    CASES[name][0](xg, None if b is None else b.to(device)).sum().backward()
    assert torch.equal(xg.grad.cpu().isnan(), x64.grad.isnan())


@pytest.mark.parametrize("case", [c for c in backend_cases("silu_and_mul") if c.values[0][0] != "reference"])
def test_fp32_math_over_the_whole_range(case, use_backend):
    """The kernels' (not the fp32 PyTorch reference's) exp / erfc, densely over the range, against float64: SiLU and the erf GELU within a
    few ulps everywhere (the GELU's negative tail included, where PyTorch's fp32 loses every digit); the
    tanh GELU within 2x PyTorch (its argument 2z carries |2z| x 2 ulps of rounding into exp)."""
    backend, device, isa = case
    use_backend(backend, isa)
    n = 2001 if backend == "triton" else 200_001
    x = torch.linspace(-20, 20, n)
    silu = ulp_error(bigaccel.ops.bias_silu(x.to(device), torch.zeros(n, device=device)).cpu(), _exact_act(x.double(), "silu"))
    gelu = ulp_error(bigaccel.ops.gelu(x.to(device)).cpu(), _exact_act(x.double(), "gelu"))
    # Triton's interpreter runs tl.fma as a rounded multiply and add, so the low half of x^2 is lost
    # there (|x|^2 / 2 ulps in the tail); on a GPU tl.fma is fused and the 8 ulps hold.
    interpreted = backend == "triton" and device == "cpu"
    assert silu.max() <= 4 and gelu.max() <= (128 if interpreted else 8), (silu.max(), gelu.max())
    tanh = ulp_error(bigaccel.ops.gelu(x.to(device), "tanh").cpu(), _exact_act(x.double(), "gelu_tanh"))
    assert tanh.max() <= 2 * ulp_error(F.gelu(x, approximate="tanh"), _exact_act(x.double(), "gelu_tanh")).max()


def _every_finite(dtype) -> torch.Tensor:
    """Every finite value of a 16-bit float type."""
    bits = torch.arange(-(2**15), 2**15, dtype=torch.int32).to(torch.int16).view(dtype)
    return bits[torch.isfinite(bits)]


SMALLEST_NORMAL = {torch.bfloat16: 2.0**-126, torch.float16: 2.0**-14}


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("case", [c for c in backend_cases("silu_and_mul") if c.values[0][0] != "reference"])
def test_16_bit_math_on_every_value(case, dtype, use_backend):
    """Every finite 16-bit input (the huge and the denormal ones too), through each activation and
    the gated ops: within 1 ulp of the exact answer rounded once, or within the smallest normal
    where the answer is below it. 16-bit outputs may take shorter polynomials on CPU
    (csrc/activations/vec_math.h, "Fast"); this is the check that they are short enough."""
    backend, device, isa = case
    use_backend(backend, isa)
    x = _every_finite(dtype)
    up = torch.linspace(-3, 3, x.numel()).to(dtype)
    for name in ("gelu", "gelu_tanh", "bias_silu", "silu_and_mul", "gelu_and_mul", "gelu_and_mul_tanh"):
        if CASES[name][2]:
            inp = torch.cat([x, up]).unsqueeze(0)
            got = CASES[name][0](inp.to(device), None).cpu()[0]
            exact = formula(name, inp.double(), None)[0]
        else:
            b = torch.zeros(x.numel(), dtype=dtype) if _has_bias(name) else None
            got = CASES[name][0](x.to(device), None if b is None else b.to(device)).cpu()
            exact = formula(name, x.double(), None if b is None else b.double())
        expected = exact.to(dtype).double()
        tiny = exact.abs() < SMALLEST_NORMAL[dtype]
        err = torch.where(tiny, (got.double() - exact).abs(), (got.double() - expected).abs())
        bound = torch.where(tiny, torch.full_like(exact, SMALLEST_NORMAL[dtype]), ulp(expected, dtype))
        bad = (err > bound) | (got.isinf() != expected.isinf()) | got.isnan()
        if backend == "triton" and device == "cpu":  # the interpreter misrounds denormals (5.7e-39 -> 3.5e-39)
            bad &= ~tiny & (x.abs() >= 2.0**-126)  # output i comes from x[i], gated or not
        assert not bad.any(), (name, int(bad.sum()), x[bad][:4].tolist(), got[bad][:4].tolist())


@pytest.mark.parametrize("case", backend_cases("silu_and_mul"))
def test_backward_at_huge_inputs(case, use_backend):
    """The derivatives at |x| far past where the activations saturate: 1 and 0, not nan (the
    tanh GELU's x^2 once overflowed into 0 * inf)."""
    backend, device, isa = case
    use_backend(backend, isa)
    x = torch.tensor([200.0, -200.0, 1e20, -1e20, 3e38, -3e38])
    expected = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0, 0.0])
    # the reference backend is F.gelu under torch's own autograd, whose tanh derivative is nan there
    for name in ("gelu", "bias_silu") if backend == "reference" else ("gelu", "gelu_tanh", "bias_silu"):
        xg = x.clone().to(device).requires_grad_()
        b = torch.zeros(x.numel(), device=device) if _has_bias(name) else None
        CASES[name][0](xg, b).sum().backward()
        assert torch.equal(xg.grad.cpu().abs(), expected), (name, xg.grad)


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("case", backend_cases("silu_and_mul"))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_backward_matches_eager_autograd(name, case, dtype, use_backend):
    backend, device, isa = case
    use_backend(backend, isa)
    x, b = _inputs(name, _shape(name, (3,), 21), dtype, seed=1)
    grad = torch.randn(3, 21, generator=torch.Generator().manual_seed(3)).to(dtype)

    def eager_grads(x, b):
        x = x.detach().requires_grad_()
        b = b.detach().requires_grad_() if b is not None else None
        formula(name, x, b).backward(grad.to(x.dtype))
        return x.grad, b.grad if b is not None else None

    xd = x.to(device).requires_grad_()
    bd = b.to(device).requires_grad_() if b is not None else None
    CASES[name][0](xd, bd).backward(grad.to(device))
    assert_accurate(name, xd.grad.cpu(), x, b, grad_of=lambda x, b: eager_grads(x, b)[0])
    if b is not None:
        # the bias gradient is the column sum of grad_x: within the rounding of each term and of the sum
        # (bf16/fp16), or of 2x PyTorch's fp32 error (GELU's derivative cancels near x = -0.75)
        exact_gx, exact_gb = eager_grads(x.double(), b.double())
        err = (bd.grad.cpu().double() - exact_gb).abs()
        if dtype == torch.float32:
            torch_err = (eager_grads(x, b)[1].double() - exact_gb).abs()
            assert err.max() <= max(2 * torch_err.max(), (8 * ulp(exact_gx, dtype).sum(0)).max())
        else:
            assert torch.all(err <= ulp(exact_gx, dtype).sum(0) + ulp(exact_gb, dtype))


class _ReferenceFunction(torch.autograd.Function):
    """Forward and the written-out backward of reference.py, for gradcheck."""

    @staticmethod
    def forward(ctx, x, b, op, arg):
        ctx.save_for_backward(x, b)
        ctx.op, ctx.arg = op, arg
        fwd = getattr(reference, op)
        return fwd(x, b, arg) if op == "bias_act" else (fwd(x, arg) if arg else fwd(x))

    @staticmethod
    def backward(ctx, grad):
        x, b = ctx.saved_tensors
        bwd = getattr(reference, f"{ctx.op}_backward")
        if ctx.op == "bias_act":
            gx = bwd(grad, x, b, ctx.arg)
            return gx, gx.reshape(-1, gx.shape[-1]).sum(0), None, None
        return (bwd(grad, x, ctx.arg) if ctx.arg else bwd(grad, x)), None, None, None


@pytest.mark.parametrize("op, arg", [("silu_and_mul", None), ("gelu_and_mul", "none"), ("gelu_and_mul", "tanh"),
                                     ("gelu", "none"), ("gelu", "tanh"), ("bias_act", "silu"),
                                     ("bias_act", "gelu"), ("bias_act", "gelu_tanh")])
def test_reference_backward_gradcheck(op, arg):
    g = torch.Generator().manual_seed(2)
    x = (torch.randn(3, 10, generator=g, dtype=torch.float64) * 2).requires_grad_()
    b = torch.randn(10, generator=g, dtype=torch.float64).requires_grad_(op == "bias_act")
    torch.autograd.gradcheck(lambda x, b: _ReferenceFunction.apply(x, b, op, arg), (x, b))


OPCHECK = [
    ("silu_and_mul", ()), ("gelu_and_mul", ("none",)), ("gelu_and_mul", ("tanh",)),
    ("gelu", ("none",)), ("gelu", ("tanh",)), ("bias_act", ("silu",)), ("bias_act", ("gelu_tanh",)),
]


@pytest.mark.parametrize("op, args", OPCHECK)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_opcheck(op, args, dtype):
    k = 18 if op != "bias_act" else 9
    x = torch.randn(5, k, dtype=dtype)
    extra = ((torch.randn(k, dtype=dtype),) if op == "bias_act" else ()) + args
    out_shape = (5, k // 2) if op.endswith("_and_mul") else (5, k)
    grad = torch.randn(out_shape, dtype=dtype)
    ops = torch.ops.bigaccel
    torch.library.opcheck(getattr(ops, op).default, (x.requires_grad_(), *extra))
    torch.library.opcheck(getattr(ops, f"{op}_backward").default, (grad, x.detach(), *extra))
    torch.library.opcheck(getattr(ops, f"{op}_out").default, (x.detach(), *extra, torch.empty(out_shape, dtype=dtype)))


def test_torch_compile_trains_through_the_op(fresh_backends):
    x = torch.randn(4, 2, 66, requires_grad=True)

    def f(x):
        return bigaccel.ops.silu_and_mul(x).square().sum()

    eager = torch.autograd.grad(f(x), x)[0]  # eager first: the backend choice is made once, untraced
    compiled = torch.autograd.grad(torch.compile(f, fullgraph=True)(x), x)[0]
    torch.testing.assert_close(compiled, eager, rtol=0, atol=0)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: bigaccel.ops.silu_and_mul(torch.ones(2, 8, dtype=torch.int32)), TypeError, "float32, bfloat16"),
        (lambda: bigaccel.ops.gelu(torch.ones(2, 8, dtype=torch.float64)), TypeError, "convert it first"),
        (lambda: bigaccel.ops.silu_and_mul(torch.ones(2, 7)), ValueError, r"\[gate \| up\].*odd"),
        (lambda: bigaccel.ops.gelu_and_mul(torch.ones(2, 8), "fast"), ValueError, "'none' .* or 'tanh'"),
        (lambda: bigaccel.ops.bias_act(torch.ones(2, 8), torch.ones(8), "relu"), ValueError, "activation must be"),
        (lambda: bigaccel.ops.bias_gelu(torch.ones(2, 8), torch.ones(7)), ValueError, r"bias must be \[8\]"),
        (lambda: bigaccel.ops.bias_gelu(torch.ones(2, 8), torch.ones(8, dtype=torch.bfloat16)), TypeError, "x's dtype"),
        (lambda: bigaccel.ops.bias_silu(torch.ones(2, 8), torch.ones(8, device="meta")), ValueError, "one device"),
        (lambda: bigaccel.ops.gelu(torch.ones(2, 8, device="meta")), ValueError, "not supported"),
        (lambda: bigaccel.ops.silu_and_mul(torch.ones(2, 8), out=torch.empty(2, 8)), ValueError, r"shape \(2, 4\)"),
        (lambda: bigaccel.ops.gelu(torch.ones(2, 8), out=torch.empty(2, 8, dtype=torch.half)), TypeError, "out must"),
        (lambda: bigaccel.ops.gelu(torch.ones(2, 8, requires_grad=True), out=torch.empty(2, 8)), RuntimeError,
         "does not support autograd"),
    ],
)
def test_bad_input_is_explained(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_cpp_kernel_checks_direct_callers():
    if not bigaccel._extension.load()["cpu"].loaded:
        pytest.skip("no C++ CPU extension")
    ops = torch.ops.bigaccel
    with pytest.raises(RuntimeError, match="is odd"):
        ops.silu_and_mul(torch.ones(2, 7))
    with pytest.raises(RuntimeError, match="float32, bfloat16 or float16"):
        ops.gelu(torch.ones(2, 3, dtype=torch.int64), "none")
    with pytest.raises(RuntimeError, match="approximate must be"):
        ops.gelu(torch.ones(2, 3), "exact")
    with pytest.raises(RuntimeError, match="out must have shape"):
        ops.silu_and_mul_out(torch.ones(2, 8), torch.empty(2, 8))
