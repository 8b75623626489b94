"""quantize_per_token: every backend against the reference, bit for bit."""
import pytest
import torch

import bigaccel
from bigaccel import reference
from tests.conftest import HAS_GPU, backend_cases

DTYPES = [torch.float32, torch.bfloat16, torch.float16]
# M = 1, odd sizes, K not a multiple of any vector width (8, 16) or block, leading batch dims.
SHAPES = [(1, 1), (1, 4096), (3, 17), (17, 33), (64, 127), (2, 3, 255), (5, 1000), (200, 64)]


def _inputs(shape, dtype, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g) * torch.rand(shape[:-1] + (1,), generator=g).mul(10)
    return x.to(dtype=dtype, device=device)


@pytest.mark.parametrize("case", backend_cases("quantize_per_token"))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_matches_reference_exactly(case, dtype, shape, use_backend):
    backend, device, isa = case
    use_backend(backend, isa)
    x = _inputs(shape, dtype, device)
    q, scale = bigaccel.ops.quantize_per_token(x)
    q_ref, scale_ref = reference.quantize_per_token(x)
    assert q.dtype == torch.int8 and scale.dtype == torch.float32
    assert q.shape == x.shape and scale.shape == x.shape[:-1] + (1,)
    assert torch.equal(scale.cpu(), scale_ref.cpu())
    assert torch.equal(q.cpu(), q_ref.cpu())


@pytest.mark.parametrize("case", backend_cases("quantize_per_token"))
def test_special_rows(case, use_backend):
    """Zero rows, tiny rows, exact .5 ties, the max magnitude, and -127 (never -128)."""
    backend, device, isa = case
    use_backend(backend, isa)
    rows = torch.zeros(6, 40)
    rows[1, :] = 1e-30  # below INT8_MIN_AMAX
    rows[2, :4] = torch.tensor([127.0, 0.5, 1.5, -2.5])  # scale 1: ties round to even
    rows[3] = torch.linspace(-3, 3, 40)
    rows[4, 7] = -5.0  # the single largest magnitude is negative
    rows[5] = torch.randn(40) * 1e4
    for dtype in DTYPES:
        x = rows.to(dtype=dtype, device=device)
        q, scale = bigaccel.ops.quantize_per_token(x)
        q_ref, scale_ref = reference.quantize_per_token(x)
        assert torch.equal(q.cpu(), q_ref.cpu()) and torch.equal(scale.cpu(), scale_ref.cpu())
    assert q[0].abs().sum() == 0 and scale[0].item() > 0
    assert q[2, :4].tolist() == [127, 0, 2, -2]
    assert q[4, 7].item() == -127 and int(q.min()) >= -127


@pytest.mark.parametrize("case", backend_cases("quantize_per_token"))
def test_non_contiguous_and_empty(case, use_backend):
    backend, device, isa = case
    use_backend(backend, isa)
    base = _inputs((9, 70), torch.float32, device)
    for x in (base[:, ::2], base.t()[:33], base[1:8, 3:64]):
        q, scale = bigaccel.ops.quantize_per_token(x)
        q_ref, scale_ref = reference.quantize_per_token(x.contiguous())
        assert torch.equal(q.cpu(), q_ref.cpu()) and torch.equal(scale.cpu(), scale_ref.cpu())
    q, scale = bigaccel.ops.quantize_per_token(torch.empty(0, 16, device=device))
    assert q.shape == (0, 16) and scale.shape == (0, 1)


def test_quantization_error_is_bounded():
    """The definition itself: |x - q*scale| <= scale/2 and scale = amax/127."""
    x = _inputs((32, 513), torch.float32, "cpu", seed=3)
    q, scale = reference.quantize_per_token(x)
    err = (x - reference.dequantize_int8_rowwise(q, scale)).abs()
    assert torch.all(err <= scale / 2 * (1 + 1e-6))
    torch.testing.assert_close(scale.squeeze(-1), x.abs().amax(-1) / 127, rtol=1e-7, atol=0)


def test_opcheck_cpu():
    x = _inputs((7, 45), torch.float32, "cpu")
    torch.library.opcheck(torch.ops.bigaccel.quantize_per_token.default, (x,))
    torch.library.opcheck(torch.ops.bigaccel.quantize_per_token.default, (x.to(torch.bfloat16),))


@pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA GPU")
def test_opcheck_cuda_and_triton():
    x = _inputs((7, 45), torch.bfloat16, "cuda")
    torch.library.opcheck(torch.ops.bigaccel.quantize_per_token.default, (x,))
    import bigaccel.kernels.quantize_per_token  # noqa: F401  (defines the Triton op)

    torch.library.opcheck(torch.ops.bigaccel.quantize_per_token_triton.default, (x,))


def test_torch_compile_matches_eager(fresh_backends):
    x = _inputs((4, 8, 96), torch.float32, "cpu")
    eager = bigaccel.ops.quantize_per_token(x)
    compiled = torch.compile(bigaccel.ops.quantize_per_token, fullgraph=True)(x)
    assert torch.equal(compiled[0], eager[0]) and torch.equal(compiled[1], eager[1])


@pytest.mark.parametrize(
    "x, error, match",
    [
        (torch.ones(4, 8, dtype=torch.int32), TypeError, "float32, bfloat16 or float16, got torch.int32"),
        (torch.ones(4, 8, dtype=torch.float64), TypeError, "convert it first"),
        (torch.tensor(1.0), ValueError, r"must be \[..., K\] with K > 0"),
        (torch.ones(4, 0), ValueError, "K > 0"),
        ("not a tensor", TypeError, "must be a torch.Tensor"),
    ],
)
def test_bad_input_is_explained(x, error, match):
    with pytest.raises(error, match=match):
        bigaccel.ops.quantize_per_token(x)


def test_cpp_kernel_checks_direct_callers():
    if not bigaccel._extension.load()["cpu"].loaded:
        pytest.skip("no C++ CPU extension")
    with pytest.raises(RuntimeError, match="must be float32, bfloat16 or float16"):
        torch.ops.bigaccel.quantize_per_token(torch.ones(2, 3, dtype=torch.int64))
    with pytest.raises(RuntimeError, match="non-empty"):
        torch.ops.bigaccel.quantize_per_token(torch.ones(2, 0))
