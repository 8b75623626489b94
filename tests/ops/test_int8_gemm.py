"""int8_mm (W8A8) and int8_weight_only_mm (W8A16): every backend against the reference."""
import pytest
import torch

import bigaccel
from bigaccel import reference
from tests.conftest import backend_cases, cpu_bf16_kernels, int16_activation_error, supported_isas

DTYPES = [torch.float32, torch.bfloat16, torch.float16]
MS = [1, 3, 17, 64, 200]
# bf16/fp16 x on x86 is held as int16 up to this many rows (kW8A16Int16MaxRows in
# csrc/int8_gemm/cpu.cpp: the GEMV to M = 4, then the blocked GEMM; above, the fp32 GEMM path).
W8A16_INT16_MAX_ROWS = 256
# From this M, W8A8 on the AVX-512 tier runs its own GEMM, whose epilogue is the reference's in
# its order (kVnniGemmMinRows in csrc/int8_gemm/cpu_kernel.h; cpu_vnni_gemm.h).
W8A8_VNNI_MIN_ROWS = 12
# On the other tiers, from this M W8A8 takes its int32 sums from torch._int_mm and applies the
# reference's epilogue in its order, once M * K is over W8A8_TILE_A_BYTES; from
# W8A8_TILE_MAX_ROWS always (w8a8_takes_int_mm in csrc/int8_gemm/cpu_w8a8.h).
W8A8_INT_MM_MIN_ROWS = 64
W8A8_TILE_MAX_ROWS = 128
W8A8_TILE_A_BYTES = 256 * 1024
# From this M, bf16 x on a CPU with AVX512_BF16 runs the outer-product GEMM on weight chunks
# staged as bf16 (kW8A16RowVecMinRows in csrc/int8_gemm/cpu_kernel.h; common/rowvec_gemm.h).
W8A16_BF16_ROWVEC_MIN_ROWS = 24
# N and K odd, prime, or not multiples of any vector width (16, 32, 64) or tile (4); and one
# aligned shape (K % 16 == 0, N % 8 == 0) that the CUDA tensor-core path takes when M > 8.
NKS = [(17, 33), (33, 1000), (100, 257), (64, 4099), (128, 512)]
EPS32 = torch.finfo(torch.float32).eps


def _data(m, n, k, dtype, seed=0, bias=True):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(m, k, generator=g) * 2).to(dtype)
    w = torch.randint(-127, 128, (n, k), generator=g, dtype=torch.int8)
    w_scale = torch.rand(n, generator=g) * 0.02 + 1e-3
    b = torch.randn(n, generator=g).to(dtype) if bias else None
    return x, w, w_scale, b


def _too_slow(case, m, n, k):
    return case[0] == "triton" and case[1] == "cpu" and m * n * k > 2_000_000  # the interpreter is numpy


@pytest.mark.parametrize("case", backend_cases("int8_mm"))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("nk", NKS, ids=str)
@pytest.mark.parametrize("m", MS)
def test_w8a8_matches_reference(case, dtype, nk, m, use_backend):
    n, k = nk
    if _too_slow(case, m, n, k):
        pytest.skip("too large for the Triton interpreter")
    backend, device, isa = case
    use_backend(backend, isa)
    x, w, w_scale, b = _data(m, n, k, dtype, seed=m + n)
    out = bigaccel.ops.int8_linear(x.to(device), w.to(device), w_scale.to(device), None, b.to(device)).cpu()
    a, a_scale = reference.quantize_per_token(x)
    ref = reference.int8_mm(a, a_scale, w, w_scale, b, dtype)
    assert out.dtype == dtype and out.shape == (m, n)
    # Same int32 accumulator everywhere; the epilogue's fp32 rounding (FMA or not) and the
    # final rounding to `dtype` may differ by an ulp each: 2 ulps of the magnitudes involved.
    mag = (a.double() @ w.double().t()).abs() * (a_scale * w_scale).double() + b.double().abs()
    tol = 2 * torch.finfo(dtype).eps * mag + 1e-30
    assert torch.all((out.double() - ref.double()).abs() <= tol), (out - ref).abs().max()


@pytest.mark.parametrize("case", backend_cases("int8_weight_only_mm"))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("nk", NKS, ids=str)
@pytest.mark.parametrize("m", MS)
def test_w8a16_matches_reference(case, dtype, nk, m, use_backend):
    n, k = nk
    if _too_slow(case, m, n, k):
        pytest.skip("too large for the Triton interpreter")
    backend, device, isa = case
    use_backend(backend, isa)
    x, w, w_scale, b = _data(m, n, k, dtype, seed=m * n)
    out = bigaccel.ops.int8_weight_only_linear(x.to(device), w.to(device), w_scale.to(device), b.to(device)).cpu()
    ref = reference.int8_weight_only_mm(x, w, w_scale, b)
    assert out.dtype == dtype and out.shape == (m, n)
    assert torch.all((out.double() - ref.double()).abs() <= _w8a16_tolerance(case, x, w, w_scale, b, ref))


def _w8a16_tolerance(case, x, w, w_scale, b, ref):
    # fp32 sums of K products in another order differ by at most ~K*eps*sum|x*w| (times the
    # scale); then one rounding to the output dtype each side; plus, where x is held as int16,
    # that representation's error (never for bf16 x on an AVX512_BF16 CPU: the vdpbf16ps tiles,
    # then the outer-product GEMM, take x as it is).
    w_dense = w.double() * w_scale.double()[:, None]
    sum_abs = x.double().abs() @ w_dense.abs().t()
    bias_abs = b.double().abs() if b is not None else 0
    x_error = (0 if cpu_bf16_kernels(case, x, 0)
               else int16_activation_error(case, x, w_dense, max_rows=W8A16_INT16_MAX_ROWS))
    return x.shape[1] * EPS32 * sum_abs + 2 * torch.finfo(ref.dtype).eps * (ref.double().abs() + bias_abs) + x_error


@pytest.mark.parametrize("activation", ["none", "gelu_tanh"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("m,k", [(4, 4201), (3, 11001), (W8A8_VNNI_MIN_ROWS - 1, 4201), (W8A8_VNNI_MIN_ROWS, 4201), (17, 130),
                                 (W8A8_INT_MM_MIN_ROWS - 1, 4201), (W8A8_INT_MM_MIN_ROWS, 130),
                                 (W8A8_INT_MM_MIN_ROWS, 4201), (W8A8_TILE_MAX_ROWS - 1, 130),
                                 (W8A8_TILE_MAX_ROWS, 130), (300, 1031)])
@pytest.mark.parametrize("case", [pytest.param(("cpu", "cpu", isa), id=f"cpu-{isa}") for isa in supported_isas()])
def test_w8a8_cpu_on_each_side_of_each_path_switch(case, m, k, dtype, activation, use_backend):
    """Up to 4 rows the streaming GEMV, or the tile row once x passes 32 KiB (M = 3 at K =
    11001); the register tiles below each switch; above it, the AVX-512 GEMM (rows in 16-row blocks,
    k in chunks of 1024 bytes, columns in blocks of 96, rows in blocks of 256: M = 300 crosses
    one) or, on the other tiers, torch._int_mm's exact sums. Every path applies the reference's
    epilogue in its order (no fma contraction), so each gives the reference's bits (N = 2100:
    column blocks with a tail). The activation is bigaccel's own (vectorized) one, within an
    ulp or two of torch's."""
    use_backend(*case[::2])
    x, w, w_scale, b = _data(m, 2100, k, dtype, seed=m)
    a, a_scale = reference.quantize_per_token(x)
    out = torch.ops.bigaccel.int8_mm(a, a_scale, w, w_scale, None, b, dtype, activation)
    ref = reference.int8_mm(a, a_scale, w, w_scale, b, dtype, activation)
    if activation == "none":
        assert torch.equal(out, ref)
    else:
        assert (out.double() - ref.double()).abs().max() <= 4 * torch.finfo(dtype).eps * ref.double().abs().max()


@pytest.mark.parametrize("case", backend_cases("int8_weight_only_mm"))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("m,k", [(2, 4000), (4, 4000), (2, 16411), (4, 16411)])
def test_w8a16_streaming_gemv_and_the_tile_row(case, dtype, m, k, use_backend):
    """Up to 4 rows, CPU kernels stream one weight row at a time while x fits 32 KiB (M * K *
    element size; common/dot_tile.h: dot_gemm_panels), else run one row of tiles."""
    backend, device, isa = case
    if backend == "triton" and device == "cpu":
        pytest.skip("too large for the Triton interpreter")
    use_backend(backend, isa)
    x, w, w_scale, b = _data(m, 37, k, dtype, seed=m + k)
    out = bigaccel.ops.int8_weight_only_linear(x.to(device), w.to(device), w_scale.to(device), b.to(device)).cpu()
    ref = reference.int8_weight_only_mm(x, w, w_scale, b)
    assert torch.all((out.double() - ref.double()).abs() <= _w8a16_tolerance(case, x, w, w_scale, b, ref))


@pytest.mark.parametrize("case", backend_cases("int8_weight_only_mm"))
@pytest.mark.parametrize("m", [4, 5, 6, 7, 8, 14, 16, W8A16_BF16_ROWVEC_MIN_ROWS - 1, W8A16_BF16_ROWVEC_MIN_ROWS,
                               64, W8A16_INT16_MAX_ROWS, W8A16_INT16_MAX_ROWS + 1, 300])
def test_w8a16_bf16_at_each_cpu_path_boundary(case, m, use_backend):
    """The int16 GEMV, the int16 GEMM, the last row it takes and the fp32 GEMM path after it;
    with AVX512_BF16, the vdpbf16ps tiles of 5-8 rows (M = 5-23, one to three tiles; M = 16 at
    K = 16411 in two blocks of rows) and the outer-product GEMM from W8A16_BF16_ROWVEC_MIN_ROWS
    (M = 300: two blocks of rows; K = 1031 below: k chunks with a tail; N = 2100: column blocks
    with a tail)."""
    backend, device, isa = case
    if backend == "triton" and device == "cpu" and m > 8:
        pytest.skip("too large for the Triton interpreter")
    use_backend(backend, isa)
    n, k = (37, 300) if m < W8A16_BF16_ROWVEC_MIN_ROWS or backend != "cpu" else (2100, 1031)
    if m == 16 and backend == "cpu":
        k = 16411
    x, w, w_scale, b = _data(m, n, k, torch.bfloat16, seed=m)
    out = bigaccel.ops.int8_weight_only_linear(x.to(device), w.to(device), w_scale.to(device), b.to(device)).cpu()
    ref = reference.int8_weight_only_mm(x, w, w_scale, b)
    assert torch.all((out.double() - ref.double()).abs() <= _w8a16_tolerance(case, x, w, w_scale, b, ref))


@pytest.mark.parametrize("case", backend_cases("int8_weight_only_mm"))
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("m", [1, 2, 4, 5, 17])  # the int16 GEMV to M = 4, then the int16 GEMM
def test_w8a16_int16_activations_at_outliers_and_non_finite(case, dtype, m, use_backend):
    """Blocks with an outlier 10^3 times the rest (their int16 scale is the outlier's): within
    the int16 representation's error; an inf or nan in x still reaches the output."""
    backend, device, isa = case
    use_backend(backend, isa)
    x, w, w_scale, b = _data(m, 40, 300, dtype, seed=7)
    x[:, ::97] = 1000.0
    out = bigaccel.ops.int8_weight_only_linear(x.to(device), w.to(device), w_scale.to(device), b.to(device)).cpu()
    ref = reference.int8_weight_only_mm(x, w, w_scale, b)
    assert torch.all((out.double() - ref.double()).abs() <= _w8a16_tolerance(case, x, w, w_scale, b, ref))
    x[0, 3], x[-1, 250] = float("inf"), float("nan")
    out = bigaccel.ops.int8_weight_only_linear(x.to(device), w.to(device), w_scale.to(device), b.to(device)).cpu()
    assert out[0].isinf().any() or out[0].isnan().all()
    assert out[-1].isnan().all()


@pytest.mark.parametrize("case", backend_cases("int8_mm"))
def test_no_bias_empty_batch_and_non_contiguous(case, use_backend):
    backend, device, isa = case
    use_backend(backend, isa)
    x, w, w_scale, _ = _data(6, 20, 66, torch.float32)
    x, w, w_scale = x.to(device), w.to(device), w_scale.to(device)
    wide = torch.randn(6, 132, device=device)
    x_strided = wide[:, ::2]  # non-contiguous, must work
    for fn in (bigaccel.ops.int8_linear, bigaccel.ops.int8_weight_only_linear):
        torch.testing.assert_close(fn(x_strided, w, w_scale), fn(x_strided.contiguous(), w, w_scale), rtol=0, atol=0)
        assert fn(x[:0], w, w_scale).shape == (0, 20)
        assert fn(x.reshape(2, 3, 66), w, w_scale).shape == (2, 3, 20)
    out = bigaccel.ops.int8_linear(x, w, w_scale).cpu()
    a, s = reference.quantize_per_token(x.cpu())
    torch.testing.assert_close(out, reference.int8_mm(a, s, w.cpu(), w_scale.cpu()), rtol=2 * EPS32, atol=1e-6)


def test_w8a8_error_is_the_quantization_error():
    """Against the float layer, our error equals the reference's for the same quantization."""
    g = torch.Generator().manual_seed(5)
    x, w_f = torch.randn(32, 512, generator=g), torch.randn(64, 512, generator=g) / 20
    w, w_scale = reference.quantize_per_channel_int8(w_f)
    exact = x.double() @ w_f.double().t()
    ours = bigaccel.ops.int8_linear(x, w, w_scale).double()
    a, s = reference.quantize_per_token(x)
    ref = reference.int8_mm(a, s, w, w_scale).double()
    assert (ours - exact).norm() <= (ref - exact).norm() * (1 + 1e-6)
    assert (ours - exact).norm() / exact.norm() < 0.02  # int8 x int8 on Gaussian data: ~1%


def test_opcheck():
    x, w, w_scale, b = _data(5, 24, 40, torch.float32)
    a, a_scale = reference.quantize_per_token(x)
    for out_dtype in (torch.float32, torch.bfloat16):
        torch.library.opcheck(torch.ops.bigaccel.int8_mm.default, (a, a_scale, w, w_scale, None, b, out_dtype))
    torch.library.opcheck(torch.ops.bigaccel.int8_mm.default, (a, a_scale, w, w_scale, w.sum(1, dtype=torch.int32)))
    # torch._int_mm's sums below AVX-512, its own GEMM on that tier
    xl, wl, w_scale_l, bl = _data(W8A8_TILE_MAX_ROWS, 24, 40, torch.float32)
    al, al_scale = reference.quantize_per_token(xl)
    torch.library.opcheck(torch.ops.bigaccel.int8_mm.default, (al, al_scale, wl, w_scale_l, None, bl, torch.bfloat16))
    torch.library.opcheck(torch.ops.bigaccel.int8_weight_only_mm.default, (x.bfloat16(), w, w_scale, b.bfloat16()))
    torch.library.opcheck(torch.ops.bigaccel.int8_weight_only_mm.default, (x, w, w_scale))
    # bf16/fp16 x, M <= 4: the int16-activation GEMV on x86 (M = 5 above: the int16 GEMM)
    torch.library.opcheck(torch.ops.bigaccel.int8_weight_only_mm.default, (x[:1].bfloat16(), w, w_scale, b.bfloat16()))
    torch.library.opcheck(torch.ops.bigaccel.int8_weight_only_mm.default, (x[:4].half(), w, w_scale))


@pytest.mark.parametrize(
    "fn", [bigaccel.ops.int8_linear, bigaccel.ops.int8_weight_only_linear], ids=["w8a8", "w8a16"]
)
def test_bad_input_is_explained(fn):
    x, w, w_scale, b = _data(4, 8, 16, torch.float32)
    with pytest.raises(ValueError, match="K mismatch: the input's last dimension is 15"):
        fn(x[:, :15], w, w_scale)
    with pytest.raises(TypeError, match="must be float32, bfloat16 or float16"):
        fn(x.double(), w, w_scale)
    with pytest.raises(TypeError, match="weight must be int8"):
        fn(x, w.float(), w_scale)
    with pytest.raises(ValueError, match="bias must have 8 elements"):
        fn(x, w, w_scale, *([None] if fn is bigaccel.ops.int8_linear else []), torch.zeros(7))
    with pytest.raises(ValueError, match="is on meta"):
        fn(x, w.to("meta"), w_scale)
    if fn is bigaccel.ops.int8_linear:
        with pytest.raises(ValueError, match="w_sum must be int32 with 8 elements"):
            fn(x, w, w_scale, w.sum(1, dtype=torch.int32)[:7])


def test_cpp_kernels_check_direct_callers():
    x, w, w_scale, _ = _data(4, 8, 16, torch.float32)
    a, a_scale = reference.quantize_per_token(x)
    if not bigaccel._extension.load()["cpu"].loaded:
        pytest.skip("no C++ CPU extension")
    with pytest.raises(RuntimeError, match="K mismatch"):
        torch.ops.bigaccel.int8_mm(a[:, :8], a_scale, w, w_scale)
    with pytest.raises(RuntimeError, match="out_dtype must be float32, bfloat16 or float16"):
        torch.ops.bigaccel.int8_mm(a, a_scale, w, w_scale, None, None, torch.int32)
