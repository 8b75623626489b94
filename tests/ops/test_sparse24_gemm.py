"""sparse24_mm (2:4 compressed weight): every backend against the masked dense product."""
import pytest
import torch

import bigaccel
from bigaccel import reference, sparsity
from tests.conftest import backend_cases

DTYPES = [torch.float32, torch.bfloat16]
MS = [1, 3, 17, 64]
NKS = [(17, 36), (33, 100), (7, 260)]  # odd N; K multiples of 4 but not of 8, 16, 32 or 64
EPS32 = torch.finfo(torch.float32).eps


def _data(m, n, k, dtype, seed=0, values_dtype=None):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(m, k, generator=g).to(dtype)
    w = sparsity.prune_2_4(torch.randn(n, k, generator=g)).to(values_dtype or dtype)
    values, meta = reference.compress_2_4(w)
    return x, w, values, meta, torch.randn(n, generator=g).to(dtype)


def _check(out, x, w, bias):
    """out vs the exact masked product: fp32 sums in another order (K * eps32 * sum|x*w|)
    plus one rounding to the output dtype."""
    exact = x.double() @ w.double().t() + bias.double()
    bound = x.shape[1] * EPS32 * (x.double().abs() @ w.double().abs().t()) + torch.finfo(out.dtype).eps * exact.abs()
    assert out.dtype == x.dtype and out.shape == exact.shape
    err = (out.double() - exact).abs()
    assert bool((err <= bound + 1e-30).all()), f"max err {err.max():.3g}, over the bound by {(err - bound).max():.3g}"


@pytest.mark.parametrize("case", backend_cases("sparse24_mm"))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("nk", NKS, ids=str)
@pytest.mark.parametrize("m", MS)
def test_matches_masked_dense(case, dtype, nk, m, use_backend):
    n, k = nk
    backend, device, isa = case
    if backend == "triton" and device == "cpu" and m > 17:
        pytest.skip("the Triton interpreter is slow; tiny shapes only")
    use_backend(backend, isa)
    x, w, values, meta, b = _data(m, n, k, dtype, seed=m + n)
    out = bigaccel.ops.sparse24_linear(x.to(device), values.to(device), meta.to(device), k, b.to(device))
    _check(out.cpu(), x, w, b)


@pytest.mark.parametrize("case", backend_cases("sparse24_mm"))
def test_fp32_weight_bf16_activations_and_no_bias(case, use_backend):
    backend, device, isa = case
    use_backend(backend, isa)
    x, w, values, meta, _ = _data(5, 9, 36, torch.bfloat16, values_dtype=torch.float32)
    out = bigaccel.ops.sparse24_linear(x.to(device), values.to(device), meta.to(device), 36)
    _check(out.cpu(), x, w, torch.zeros(9))


def test_opcheck():
    x, w, values, meta, b = _data(3, 9, 36, torch.float32)
    torch.library.opcheck(torch.ops.bigaccel.sparse24_mm.default, (x, values, meta, 36, b))
    torch.library.opcheck(torch.ops.bigaccel.sparse24_mm.default, (x.bfloat16(), values.bfloat16(), meta, 36, None))


def test_bad_input_gives_clear_errors():
    x, w, values, meta, b = _data(2, 5, 36, torch.float32)
    with pytest.raises(ValueError, match="multiple of 4"):
        bigaccel.ops.sparse24_linear(torch.randn(2, 34), values, meta, 34)
    with pytest.raises(ValueError, match="K mismatch"):
        bigaccel.ops.sparse24_linear(torch.randn(2, 40), values, meta, 36)
    with pytest.raises(ValueError, match="meta must be uint8"):
        bigaccel.ops.sparse24_linear(x, values, meta[:, :2], 36)
    with pytest.raises(ValueError, match="not 2:4"):
        reference.compress_2_4(torch.ones(3, 8))
