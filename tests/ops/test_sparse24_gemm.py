"""sparse24_mm (2:4 compressed weight) against the masked dense product, and sparse24_int8_mm
(2:4 int8 weight, W8A8) against the dense int8 reference, on every backend."""
import pytest
import torch

import bigaccel
from bigaccel import backends, reference, sparsity
from tests.conftest import backend_cases

DTYPES = [torch.float32, torch.bfloat16]
# From these M, bf16 x and values on a CPU with AVX512_BF16 take the vdpbf16ps tiles over the
# weight expanded to bf16, then the outer-product kernel over pair vectors of x, then the dense
# outer-product GEMM over chunks expanded to bf16 (kSparse24Bf16TileMinRows,
# kSparse24PairsMinRows, kSparse24DenseRowVecMinRows in csrc/sparse24_gemm/cpu.cpp).
SPARSE24_BF16_TILE_MIN_ROWS = 4
SPARSE24_BF16_PAIRS_MIN_ROWS = 32
SPARSE24_BF16_DENSE_ROWVEC_MIN_ROWS = 128
# 1, 2: the GEMV with two accumulators a row; 3, 4, 31, 32, 127, 128: each side of the bf16
# switches; 5, 14, 17, 15: tiles of 5, 7 + 7, 6 + 6 + 5 and 8 + 7 rows on the tile path
# (with_tile_rows_5_to_8 in csrc/common/dot_tile.h); 64: the fp32 GEMM's first row; 95: 64 + 31
# rows (two row blocks of the pair kernel, the second partial).
MS = [1, 2, 3, 4, 5, 14, 15, 17, 31, 32, 64, 95, 127, 128]
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
    sums = x.double() @ w.double().t()
    exact = sums + bias.double()
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


@pytest.mark.parametrize("m", [SPARSE24_BF16_PAIRS_MIN_ROWS, 95, SPARSE24_BF16_DENSE_ROWVEC_MIN_ROWS, 300])
def test_bf16_outer_product_paths_at_a_larger_shape(m):
    """The pair kernel and the dense outer-product GEMM (on AVX512_BF16 CPUs; the other CPU
    paths elsewhere) past one chunk of k: K = 1156 is 289 groups (chunks of 16 groups and of
    512 k, an odd last group), N = 200 columns in blocks of 96 with a tail, M = 300 two blocks
    of rows."""
    x, w, values, meta, b = _data(m, 200, 1156, torch.bfloat16, seed=m)
    _check(torch.ops.bigaccel.sparse24_mm(x, values, meta, 1156, b), x, w, b)


@pytest.mark.parametrize("case", backend_cases("sparse24_mm"))
@pytest.mark.parametrize("m, k", [(1, 260), (5, 36), (5, 260)])  # the CPU kernel's bf16-activation path, fp32 values
def test_fp32_weight_bf16_activations_and_no_bias(case, m, k, use_backend):
    backend, device, isa = case
    use_backend(backend, isa)
    x, w, values, meta, _ = _data(m, 9, k, torch.bfloat16, values_dtype=torch.float32)
    out = bigaccel.ops.sparse24_linear(x.to(device), values.to(device), meta.to(device), k)
    _check(out.cpu(), x, w, torch.zeros(9))


def test_opcheck():
    x, w, values, meta, b = _data(3, 9, 36, torch.float32)
    torch.library.opcheck(torch.ops.bigaccel.sparse24_mm.default, (x, values, meta, 36, b))
    torch.library.opcheck(torch.ops.bigaccel.sparse24_mm.default, (x.bfloat16(), values.bfloat16(), meta, 36, None))
    # M = 5, bf16: the expanded-bf16 tiles on AVX512_BF16 CPUs (a full panel and a partial one)
    x, w, values, meta, b = _data(5, 9, 36, torch.bfloat16)
    torch.library.opcheck(torch.ops.bigaccel.sparse24_mm.default, (x, values, meta, 36, b))


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


# ---------------------------------------------------------------------------
# sparse24_int8_mm: W8A8 with the int8 weight compressed 2:4
# ---------------------------------------------------------------------------


def _int8_data(m, n, k, seed=0):
    """Per-token int8 activations and a 2:4 int8 weight compressed: (a, a_scale, values, meta, w_scale, bias)."""
    g = torch.Generator().manual_seed(seed)
    a, a_scale = reference.quantize_per_token(torch.randn(m, k, generator=g))
    q, w_scale = reference.quantize_per_channel_int8(sparsity.prune_2_4(torch.randn(n, k, generator=g)))
    values, meta = reference.compress_2_4(q)
    return a, a_scale, values, meta, w_scale, torch.randn(n, generator=g)


@pytest.mark.parametrize("case", backend_cases("sparse24_int8_mm"))
@pytest.mark.parametrize("out_dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("nk", NKS + [(40, 4100)], ids=str)
@pytest.mark.parametrize("m", MS)
def test_int8_matches_the_dense_int8_reference(case, out_dtype, nk, m, use_backend):
    n, k = nk
    backend, device, isa = case
    if backend == "triton" and device == "cpu" and (m > 17 or k > 260 or out_dtype == torch.float16):
        pytest.skip("the Triton interpreter is slow; tiny shapes only")
    use_backend(backend, isa)
    a, a_scale, values, meta, w_scale, b = _int8_data(m, n, k, seed=m + n)
    args = [t.to(device) for t in (a, a_scale, values, meta)] + [k, w_scale.to(device), None, b.to(device), out_dtype]
    out = backends.get("sparse24_int8_mm", torch.device(device))(*args).cpu()
    # The exact int32 sum, then the epilogue: equal to the dense int8 GEMM on the decompressed
    # weight up to an fma contraction of the epilogue (an ulp or two of fp32) and its one rounding.
    ref = reference.int8_mm(a, a_scale, reference.decompress_2_4(values, meta, k), w_scale, b, out_dtype)
    assert out.dtype == out_dtype and out.shape == (m, n)
    tol = 2 * torch.finfo(out_dtype).eps * (ref.double().abs() + b.double().abs()) + 1e-30
    assert torch.all((out.double() - ref.double()).abs() <= tol), (out.double() - ref.double()).abs().max()


@pytest.mark.parametrize("case", backend_cases("sparse24_int8_mm"))
def test_int8_linear_leading_dims_empty_batch_and_non_contiguous(case, use_backend):
    backend, device, isa = case
    use_backend(backend, isa)
    _, _, values, meta, w_scale, b = _int8_data(1, 9, 36)
    values, meta, w_scale = values.to(device), meta.to(device), w_scale.to(device)
    x = torch.randn(3, 72, device=device)[:, ::2]
    fn = bigaccel.ops.sparse24_int8_linear
    torch.testing.assert_close(fn(x, values, meta, 36, w_scale), fn(x.contiguous(), values, meta, 36, w_scale),
                               rtol=0, atol=0)
    assert fn(x[:0], values, meta, 36, w_scale).shape == (0, 9)
    assert fn(x.reshape(3, 1, 36), values, meta, 36, w_scale).shape == (3, 1, 9)


def test_int8_opcheck():
    a, a_scale, values, meta, w_scale, b = _int8_data(3, 9, 36)
    op = torch.ops.bigaccel.sparse24_int8_mm.default
    torch.library.opcheck(op, (a, a_scale, values, meta, 36, w_scale, values.sum(1, dtype=torch.int32), b))
    torch.library.opcheck(op, (a, a_scale, values, meta, 36, w_scale, None, None, torch.bfloat16))


def test_int8_bad_input_gives_clear_errors():
    _, _, values, meta, w_scale, _ = _int8_data(1, 5, 36)
    fn = bigaccel.ops.sparse24_int8_linear
    x = torch.randn(2, 36)
    with pytest.raises(TypeError, match="values must be int8"):
        fn(x, values.float(), meta, 36, w_scale)
    with pytest.raises(ValueError, match="K mismatch"):
        fn(torch.randn(2, 40), values, meta, 36, w_scale)
    with pytest.raises(ValueError, match="multiple of 4"):
        fn(torch.randn(2, 34), values, meta, 34, w_scale)
    with pytest.raises(ValueError, match="weight scale must be float32 with 5 elements"):
        fn(x, values, meta, 36, w_scale[:4])
    with pytest.raises(ValueError, match="meta must be uint8"):
        fn(x, values, meta[:, :2], 36, w_scale)
    with pytest.raises(TypeError, match="float32, bfloat16 or float16"):
        fn(x.double(), values, meta, 36, w_scale)
    with pytest.raises(ValueError, match="w_sum must be int32 with 5 elements"):
        fn(x, values, meta, 36, w_scale, values.sum(1))  # int64 sums
    with pytest.raises(ValueError, match="w_sum must be int32 with 5 elements"):
        fn(x, values, meta, 36, w_scale, values.sum(1, dtype=torch.int32).to("meta"))


# ---------------------------------------------------------------------------
# The CUTLASS kernels' metadata order (the kernels themselves run in tests/test_gpu.py)
# ---------------------------------------------------------------------------


def _two_per_group(n, k, dtype, seed=0):
    """A 2:4 weight with exactly two non-zeros in every group, where torch's and our
    encodings of the kept positions agree (they pad sparser groups differently)."""
    g = torch.Generator().manual_seed(seed)
    w = torch.zeros(n, k // 4, 4)
    kept = torch.rand(n, k // 4, 4, generator=g).argsort(-1)[..., :2]
    w.scatter_(2, kept, torch.randint(1, 100, (n, k // 4, 2), generator=g).float())
    return w.reshape(n, k).to(dtype)


@pytest.mark.parametrize("dtype, n, k", [(torch.bfloat16, 64, 128), (torch.float16, 96, 192), (torch.int8, 48, 256)],
                         ids=str)
def test_cutlass_metadata_order_matches_torchs_cutlass_layout(dtype, n, k):
    """Our bytes, read as CUTLASS's 16-bit (32-bit for int8) metadata words and scattered
    by the kernels' reordering, equal the metadata torch.sparse.to_sparse_semi_structured
    hands its CUTLASS kernel; the values are the same [N, K/2] either way."""
    from bigaccel import _sparse24_ops
    from torch.sparse._semi_structured_conversions import sparse_semi_structured_from_dense_cutlass

    if not _sparse24_ops._cutlass_built():
        pytest.skip("the CUDA extension was not built with nvidia-cutlass")
    w = _two_per_group(n, k, dtype)
    values, meta = reference.compress_2_4(w)
    torch_values, torch_meta = sparse_semi_structured_from_dense_cutlass(w)
    assert torch.equal(values, torch_values)
    words = meta.view(torch_meta.dtype)
    offsets = bigaccel._extension.load()["cuda"].module.sparse24_cutlass_meta_offsets(*words.shape,
                                                                                      dtype == torch.int8)
    reordered = torch.empty_like(words).view(-1)
    reordered[torch.tensor(offsets)] = words.reshape(-1)
    assert torch.equal(reordered.view(words.shape), torch_meta)


def test_cuda_backend_routes_only_the_shapes_cutlass_takes():
    """The CUDA backend sends M > 8 with N, K aligned (and bf16/fp16 x with values of its dtype)
    to CUTLASS, the rest to Triton; it exists only with BIGACCEL_UNVERIFIED_KERNELS=1."""
    import os
    import subprocess
    import sys

    from bigaccel import _sparse24_ops as s

    def takes_float(m, n, k, dtype=torch.bfloat16, values_dtype=None):
        x = torch.empty(m, k, dtype=dtype, device="meta")
        values = torch.empty(n, k // 2, dtype=values_dtype or dtype, device="meta")
        return s._cutlass_takes_float(x, values, None, k)

    assert takes_float(9, 64, 128) and takes_float(300, 96, 192, torch.float16)
    assert not takes_float(8, 64, 128)  # decode rows: Triton
    assert not takes_float(16, 48, 128) and not takes_float(16, 64, 96)  # N % 32, K % 64
    assert not takes_float(16, 64, 128, torch.float32)  # the sparse tensor cores are not fp32
    assert not takes_float(16, 64, 128, torch.bfloat16, torch.float32)
    a = torch.empty(9, 128, dtype=torch.int8, device="meta")
    assert s._cutlass_takes_int8(a, None, torch.empty(16, 64, dtype=torch.int8, device="meta"), None, 128)
    assert not s._cutlass_takes_int8(a, None, torch.empty(24, 64, dtype=torch.int8, device="meta"), None, 128)
    assert not s._cutlass_takes_int8(a[:, :64], None, torch.empty(16, 32, dtype=torch.int8, device="meta"), None, 64)
    probe = "from bigaccel import backends; print(backends.registered('sparse24_mm'), backends.registered('sparse24_int8_mm'))"
    for flag, expected in (("1", "'cuda'"), ("0", None)):
        env = {**os.environ, "BIGACCEL_UNVERIFIED_KERNELS": flag}
        out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True).stdout
        assert (out.count("'cuda'") == 2) if expected else ("'cuda'" not in out), out
