"""Fused activations in Triton: gated (silu/gelu(gate) * up) and elementwise
(act(x + bias)), forward and backward, one program per (row, column block).

Same math as csrc/activations/cpu_kernel.h: fp32 inside, one rounding; GELU's
Phi(x) = erfc(-x/sqrt2)/2 through the same erfc polynomial (accurate in the
negative tail), and the tanh GELU as x * sigmoid(2z) (0.5 (1 + tanh z) exactly).
"""
import torch
import triton
import triton.language as tl

SILU, GELU_ERF, GELU_TANH = 0, 1, 2
_ACT_BY_APPROXIMATE = {"none": GELU_ERF, "tanh": GELU_TANH}
_ACT_BY_NAME = {"silu": SILU, "gelu": GELU_ERF, "gelu_tanh": GELU_TANH}
_BLOCK = 1024


@triton.jit
def _exp(x):
    """exp in fp32 within ~1 ulp: vec_math.h's exp_approx (Cody-Waite reduction, degree-6
    polynomial, 2^n built from its bits). On a GPU tl.exp is ex2.approx of the rounded
    x * log2(e), |x| ulps off for large |x| (measured on an H100: SiLU 14 ulps, GELU 52)."""
    x = tl.minimum(tl.maximum(x, -104.0), 89.0)  # 0 below, inf above; keeps n in range
    n = tl.floor(x * 1.44269502 + 0.5)
    r = tl.fma(n, -0.693145751953125, x)  # ln2 split in two: n * hi is exact
    r = tl.fma(n, -1.4286068203094172e-06, r)
    p = tl.fma(0.001394858118146658, r, 0.008375128731131554)
    p = tl.fma(p, r, 0.041666217148303986)
    p = tl.fma(p, r, 0.16666415333747864)
    p = tl.fma(p, r, 0.5)
    p = tl.fma(p, r, 1.0)
    p = tl.fma(p, r, 1.0)
    ni = n.to(tl.int32)
    n1 = ni >> 1  # p * 2^n in two factors, so that neither exponent overflows
    s1 = ((n1 + 127) << 23).to(tl.float32, bitcast=True)
    s2 = ((ni - n1 + 127) << 23).to(tl.float32, bitcast=True)
    return p * s1 * s2


@triton.jit
def _sigmoid(x):
    # From e = exp(-|x|) <= 1, as the CPU kernels: 1 / (1 + e) for x >= 0, e / (1 + e) below.
    # 1 / (1 + exp(-x)) overflowed to 0 below x = -88.7, where x * sigmoid(x) is still a normal
    # bf16 number. div_rn: a plain / is div.full.f32 on a GPU (2 ulps).
    e = _exp(-tl.abs(x))
    return tl.math.div_rn(tl.where(x >= 0, 1.0, e), 1.0 + e)


@triton.jit
def _act(x, ACT: tl.constexpr):
    """(act(x), act'(x)) in fp32."""
    if ACT == 0:
        s = _sigmoid(x)
        return x * s, s * (1.0 + x * (1.0 - s))
    elif ACT == 1:
        ax = tl.minimum(tl.abs(x), 20.0)  # Phi is 0 or 1 in fp32 beyond; x^2 cannot overflow
        t = tl.math.div_rn(tl.full(ax.shape, 1.0, tl.float32), 1.0 + 0.35355339059327373 * ax)
        hi = ax * ax  # exp(-x^2/2) from x^2 = hi + lo, as in csrc/activations/vec_math.h
        lo = tl.fma(ax, ax, -hi)
        e = _exp(-0.5 * hi)
        e = e - 0.5 * lo * e
        p = 0.04317306727170944 * t - 0.23460549116134644
        p = p * t + 0.4933857321739197
        p = p * t - 0.454563707113266
        p = p * t + 0.13185003399848938
        p = p * t - 0.05905091017484665
        p = p * t + 0.09341474622488022
        p = p * t + 0.17532408237457275
        p = p * t + 0.24688388407230377
        p = p * t + 0.28209376335144043
        p = p * t + 0.282094806432724
        half_erfc = 0.5 * t * e * p
        phi = tl.where(x < 0, half_erfc, 1.0 - half_erfc)
        return x * phi, phi + x * e * 0.3989422804014327
    else:
        x2 = tl.minimum(x * x, 1e4)  # as on CPU: beyond |x| = 100 s is 0 or 1; no 0 * inf in dz2
        s = _sigmoid(1.5957691216057308 * x * (1.0 + 0.044715 * x2))
        dz2 = 1.5957691216057308 * (1.0 + 3.0 * 0.044715 * x2)
        return x * s, s + x * s * (1.0 - s) * dz2


def epilogue_code(activation: str) -> int:
    """The ACT constant of `epilogue` for a GEMM's activation name ("none": -1)."""
    return -1 if activation == "none" else _ACT_BY_NAME[activation]


@triton.jit
def epilogue(v, ACT: tl.constexpr):
    """The quantized GEMMs' epilogue activation (bigaccel.reference.epilogue_activation) on fp32
    v, before the store's rounding; ACT < 0 leaves v as it is."""
    if ACT >= 0:
        v = _act(v, ACT)[0]
    return v


@triton.jit
def _gated_kernel(x_ptr, grad_ptr, out_ptr, D, ACT: tl.constexpr, BACKWARD: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < D
    gate = tl.load(x_ptr + row * 2 * D + offs, mask=mask, other=0.0).to(tl.float32)
    up = tl.load(x_ptr + row * 2 * D + D + offs, mask=mask, other=0.0).to(tl.float32)
    a, da = _act(gate, ACT)
    if BACKWARD:
        g = tl.load(grad_ptr + row * D + offs, mask=mask, other=0.0).to(tl.float32)
        ty = out_ptr.dtype.element_ty
        tl.store(out_ptr + row * 2 * D + offs, (g * up * da).to(ty), mask=mask)
        tl.store(out_ptr + row * 2 * D + D + offs, (g * a).to(ty), mask=mask)
    else:
        tl.store(out_ptr + row * D + offs, (a * up).to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _elementwise_kernel(x_ptr, bias_ptr, grad_ptr, out_ptr, D, ACT: tl.constexpr, HAS_BIAS: tl.constexpr,
                        BACKWARD: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < D
    x = tl.load(x_ptr + row * D + offs, mask=mask, other=0.0).to(tl.float32)
    if HAS_BIAS:
        x += tl.load(bias_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    a, da = _act(x, ACT)
    if BACKWARD:
        g = tl.load(grad_ptr + row * D + offs, mask=mask, other=0.0).to(tl.float32)
        a = g * da
    tl.store(out_ptr + row * D + offs, a.to(out_ptr.dtype.element_ty), mask=mask)


def _grid(rows: int, d: int) -> tuple[int, int]:
    return (rows, triton.cdiv(d, _BLOCK))


def _gated(x: torch.Tensor, act: int, out: torch.Tensor, grad: torch.Tensor | None = None) -> None:
    d = x.shape[-1] // 2
    rows = x.numel() // x.shape[-1] if x.numel() else 0
    if rows and d:
        torch.library.wrap_triton(_gated_kernel)[_grid(rows, d)](
            x, grad if grad is not None else x, out, d, ACT=act, BACKWARD=grad is not None, BLOCK=_BLOCK)


def _elementwise(x, bias, act: int, out: torch.Tensor, grad: torch.Tensor | None = None) -> None:
    d = x.shape[-1]
    rows = x.numel() // d if x.numel() else 0
    if rows:
        torch.library.wrap_triton(_elementwise_kernel)[_grid(rows, d)](
            x, bias if bias is not None else x, grad if grad is not None else x, out, d, ACT=act,
            HAS_BIAS=bias is not None, BACKWARD=grad is not None, BLOCK=_BLOCK)


def _half(x: torch.Tensor) -> torch.Tensor:
    return x.new_empty((*x.shape[:-1], x.shape[-1] // 2))


@torch.library.triton_op("bigaccel::silu_and_mul_triton", mutates_args=())
def silu_and_mul_triton(x: torch.Tensor) -> torch.Tensor:
    x = x.contiguous()
    out = _half(x)
    _gated(x, SILU, out)
    return out


@torch.library.triton_op("bigaccel::silu_and_mul_out_triton", mutates_args={"out"})
def silu_and_mul_out_triton(x: torch.Tensor, out: torch.Tensor) -> None:
    _gated(x.contiguous(), SILU, out)


@torch.library.triton_op("bigaccel::silu_and_mul_backward_triton", mutates_args=())
def silu_and_mul_backward_triton(grad: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    x = x.contiguous()
    grad_x = torch.empty_like(x)
    _gated(x, SILU, grad_x, grad.contiguous())
    return grad_x


@torch.library.triton_op("bigaccel::gelu_and_mul_triton", mutates_args=())
def gelu_and_mul_triton(x: torch.Tensor, approximate: str) -> torch.Tensor:
    x = x.contiguous()
    out = _half(x)
    _gated(x, _ACT_BY_APPROXIMATE[approximate], out)
    return out


@torch.library.triton_op("bigaccel::gelu_and_mul_out_triton", mutates_args={"out"})
def gelu_and_mul_out_triton(x: torch.Tensor, approximate: str, out: torch.Tensor) -> None:
    _gated(x.contiguous(), _ACT_BY_APPROXIMATE[approximate], out)


@torch.library.triton_op("bigaccel::gelu_and_mul_backward_triton", mutates_args=())
def gelu_and_mul_backward_triton(grad: torch.Tensor, x: torch.Tensor, approximate: str) -> torch.Tensor:
    x = x.contiguous()
    grad_x = torch.empty_like(x)
    _gated(x, _ACT_BY_APPROXIMATE[approximate], grad_x, grad.contiguous())
    return grad_x


@torch.library.triton_op("bigaccel::gelu_triton", mutates_args=())
def gelu_triton(x: torch.Tensor, approximate: str) -> torch.Tensor:
    x = x.contiguous()
    out = torch.empty_like(x)
    _elementwise(x, None, _ACT_BY_APPROXIMATE[approximate], out)
    return out


@torch.library.triton_op("bigaccel::gelu_out_triton", mutates_args={"out"})
def gelu_out_triton(x: torch.Tensor, approximate: str, out: torch.Tensor) -> None:
    _elementwise(x.contiguous(), None, _ACT_BY_APPROXIMATE[approximate], out)


@torch.library.triton_op("bigaccel::gelu_backward_triton", mutates_args=())
def gelu_backward_triton(grad: torch.Tensor, x: torch.Tensor, approximate: str) -> torch.Tensor:
    x = x.contiguous()
    grad_x = torch.empty_like(x)
    _elementwise(x, None, _ACT_BY_APPROXIMATE[approximate], grad_x, grad.contiguous())
    return grad_x


@torch.library.triton_op("bigaccel::bias_act_triton", mutates_args=())
def bias_act_triton(x: torch.Tensor, bias: torch.Tensor, activation: str) -> torch.Tensor:
    x = x.contiguous()
    out = torch.empty_like(x)
    _elementwise(x, bias.contiguous(), _ACT_BY_NAME[activation], out)
    return out


@torch.library.triton_op("bigaccel::bias_act_out_triton", mutates_args={"out"})
def bias_act_out_triton(x: torch.Tensor, bias: torch.Tensor, activation: str, out: torch.Tensor) -> None:
    _elementwise(x.contiguous(), bias.contiguous(), _ACT_BY_NAME[activation], out)


@torch.library.triton_op("bigaccel::bias_act_backward_triton", mutates_args=())
def bias_act_backward_triton(grad: torch.Tensor, x: torch.Tensor, bias: torch.Tensor, activation: str) -> torch.Tensor:
    x = x.contiguous()
    grad_x = torch.empty_like(x)
    _elementwise(x, bias.contiguous(), _ACT_BY_NAME[activation], grad_x, grad.contiguous())
    return grad_x
