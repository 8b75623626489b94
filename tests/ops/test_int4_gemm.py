"""int4_mm (W4A16, group-wise): every backend against the reference."""
import pytest
import torch

import bigaccel
from bigaccel import reference
from tests.conftest import backend_cases, cpu_bf16_kernels, int16_activation_error

DTYPES = [torch.float32, torch.bfloat16, torch.float16]
MS = [1, 2, 3, 4, 5, 17, 64, 200]  # 2, 5: the CUDA GEMV's row counts (1, 2, 4, 8); 4: the CPU GEMV's last; 200: the dequantize + fp32 GEMM path (M >= 128)
# bf16/fp16 x on x86 is held as int16 up to M = 4 (the GEMV) and, with groups of 128, up to
# this many rows (kW4A16Int16MaxRows in csrc/int4_gemm/cpu.cpp: the blocked GEMM).
W4A16_INT16_MAX_ROWS = 127


# From this M, bf16 x on a CPU with AVX512_BF16 runs the vdpbf16ps tiles over the weight rounded
# to bf16 (kW4A16Bf16TileMinRows in csrc/int4_gemm/cpu.cpp; x in panels above 4 rows), and from
# the next, the outer-product GEMM over the same rounded weight (kInt4RowVecMinRows in
# csrc/int4_gemm/cpu_bf16.h; common/rowvec_gemm.h).
W4A16_BF16_TILE_MIN_ROWS = 3
W4A16_BF16_ROWVEC_MIN_ROWS = 32


def _bf16_weight_error(x, w):
    """|x| @ |w - bf16(w)|: what rounding the dequantized weight to bf16 adds on the bf16 paths
    (the bf16 GEMM's sums, rounded to bf16 before the bias, stay within the 2 ulps of the final
    rounding that the tolerance allows)."""
    return x.double().abs() @ (w - w.to(torch.bfloat16).double()).abs().t()


def _int16_rows(g):
    return W4A16_INT16_MAX_ROWS if g == 128 else 4
# N odd; K a multiple of the group but not of larger blocks (128, 256).
GROUP_NKS = [(32, 37, 160), (64, 21, 192), (128, 19, 384)]
EPS32 = torch.finfo(torch.float32).eps


def _data(m, n, k, g, dtype, zero_point, seed=0, bias=True):
    gen = torch.Generator().manual_seed(seed)
    x = (torch.randn(m, k, generator=gen) * 2).to(dtype)
    w = torch.randn(n, k, generator=gen) / 10
    packed, scales, zeros = reference.quantize_int4(w, g, zero_point)
    b = torch.randn(n, generator=gen).to(dtype) if bias else None
    return x, packed, scales, zeros, b


def _tolerance(x, packed, scales, zeros, g, b, ref, case=("reference", "cpu", None)):
    # fp32 sums of K products in another order differ by at most ~K*eps*sum|x*w|; then one
    # rounding to the output dtype each side; plus, where x is held as int16, that
    # representation's error.
    k = x.shape[1]
    w = reference.dequantize_int4(packed, scales, zeros, g).double()
    sum_abs = x.double().abs() @ w.abs().t()
    bias_abs = b.double().abs() if b is not None else 0
    # The bf16 paths hold x as it is (no int16), and round the weight instead.
    x_error = (_bf16_weight_error(x, w) if cpu_bf16_kernels(case, x, W4A16_BF16_TILE_MIN_ROWS)
               else int16_activation_error(case, x, w, max_rows=_int16_rows(g)))
    return k * EPS32 * sum_abs + 2 * torch.finfo(ref.dtype).eps * (ref.double().abs() + bias_abs) + 1e-30 + x_error


@pytest.mark.parametrize("case", backend_cases("int4_mm"))
@pytest.mark.parametrize("gnk", GROUP_NKS, ids=lambda t: f"g{t[0]}")
@pytest.mark.parametrize("m", [W4A16_BF16_TILE_MIN_ROWS - 1, W4A16_BF16_TILE_MIN_ROWS, 4, 5, 11, 14, 16,
                               W4A16_BF16_ROWVEC_MIN_ROWS - 1, W4A16_BF16_ROWVEC_MIN_ROWS, W4A16_INT16_MAX_ROWS,
                               W4A16_INT16_MAX_ROWS + 1, 300])  # 128: kSgemmMinRows
def test_bf16_at_each_cpu_path_boundary(case, gnk, m, use_backend):
    """Each side of every switch: on AVX512_BF16 CPUs the int16 GEMV, the vdpbf16ps tiles in
    registers (to 4 rows), from panels of x, then the outer-product GEMM (M = 300: two blocks of
    rows); elsewhere the int16 GEMV, then (g128) the int16 GEMM or the fp32 tiles, then the fp32
    GEMM path. Panels of 5-8 rows (common/dot_tile.h: with_tile_rows_5_to_8): 5 one tile, 11
    panels of 6 and 5, 14 two of 7, 16 two of 8, 31 three of 8 and one of 7."""
    if case[0] == "triton" and case[1] == "cpu":
        pytest.skip("the Triton interpreter is slow; test_matches_reference covers it")
    g, n, k = gnk
    if case[0] == "cpu" and m >= W4A16_BF16_ROWVEC_MIN_ROWS:
        n, k = 200, 1152  # k in chunks of 512 with a tail, columns in blocks of 96 with a tail
    use_backend(case[0], case[2])
    x, packed, scales, zeros, b = _data(m, n, k, g, torch.bfloat16, True, seed=m)
    dev = case[1]
    out = bigaccel.ops.int4_linear(x.to(dev), packed.to(dev), scales.to(dev), zeros.to(dev), g, b.to(dev)).cpu()
    ref = reference.int4_mm(x, packed, scales, zeros, g, b)
    assert torch.all((out.double() - ref.double()).abs() <= _tolerance(x, packed, scales, zeros, g, b, ref, case))


def _too_slow(case, m, dtype=torch.float32):
    # The interpreter is numpy (~0.5 s a case) and runs every dtype through the same fp32 dot:
    # one M (a partial M tile) and two dtypes cover its paths.
    return case[0] == "triton" and case[1] == "cpu" and (m != 3 or dtype == torch.float16)


@pytest.mark.parametrize("case", backend_cases("int4_mm"))
@pytest.mark.parametrize("zero_point", [True, False], ids=["asym", "sym"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("gnk", GROUP_NKS, ids=lambda t: f"g{t[0]}")
@pytest.mark.parametrize("m", MS)
def test_w4a16_matches_reference(case, zero_point, dtype, gnk, m, use_backend):
    g, n, k = gnk
    if _too_slow(case, m, dtype):
        pytest.skip("too large for the Triton interpreter")
    backend, device, isa = case
    use_backend(backend, isa)
    x, packed, scales, zeros, b = _data(m, n, k, g, dtype, zero_point, seed=m + n)
    dev = lambda t: t.to(device) if t is not None else None  # noqa: E731
    out = bigaccel.ops.int4_linear(dev(x), dev(packed), dev(scales), dev(zeros), g, dev(b)).cpu()
    ref = reference.int4_mm(x, packed, scales, zeros, g, b)
    assert out.dtype == dtype and out.shape == (m, n)
    tol = _tolerance(x, packed, scales, zeros, g, b, ref, case)
    assert torch.all((out.double() - ref.double()).abs() <= tol), (out - ref).abs().max()


@pytest.mark.parametrize("case", backend_cases("int4_mm"))
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("m", [1, 2, 4, 5, 17])  # the int16 GEMV to M = 4, then the int16 GEMM
@pytest.mark.parametrize("g", [32, 128])
def test_w4a16_int16_activations_at_outliers_and_non_finite(case, dtype, m, g, use_backend):
    """Blocks with an outlier 10^3 times the rest (their int16 scale is the outlier's), an odd
    number of groups of 32: within the int16 representation's error; an inf or nan in x still
    reaches the output."""
    if _too_slow(case, 3, dtype):
        pytest.skip("too large for the Triton interpreter")
    backend, device, isa = case
    use_backend(backend, isa)
    x, packed, scales, zeros, b = _data(m, 24, 3 * 128 + (32 if g == 32 else 0), g, dtype, True, seed=5)
    x[:, ::97] = 1000.0
    dev = lambda t: t.to(device)  # noqa: E731
    out = bigaccel.ops.int4_linear(dev(x), dev(packed), dev(scales), dev(zeros), g, dev(b)).cpu()
    ref = reference.int4_mm(x, packed, scales, zeros, g, b)
    tol = _tolerance(x, packed, scales, zeros, g, b, ref, case)
    assert torch.all((out.double() - ref.double()).abs() <= tol), (out - ref).abs().max()
    x[0, 3], x[-1, 250] = float("inf"), float("nan")
    out = bigaccel.ops.int4_linear(dev(x), dev(packed), dev(scales), dev(zeros), g, dev(b)).cpu()
    assert out[0].isinf().any() or out[0].isnan().all()
    assert out[-1].isnan().all()


@pytest.mark.parametrize("case", backend_cases("int4_mm"))
@pytest.mark.parametrize("zero_point", [True, False], ids=["asym", "sym"])
@pytest.mark.parametrize("gk", [(32, 32 * 67), (64, 64 * 70)], ids=["g32x67", "g64x70"])
@pytest.mark.parametrize("m", [1, 3])
def test_w4a16_many_groups(case, zero_point, gk, m, use_backend):
    """More groups than the CPU GEMV's block of 64 (csrc/int4_gemm/cpu_kernel.h kGroupBlock), with
    a partial vector of 8 groups at each block's end, an odd count for groups of 32."""
    backend, device, isa = case
    if backend == "triton" and device == "cpu":
        pytest.skip("too large for the Triton interpreter")
    use_backend(backend, isa)
    g, k = gk
    x, packed, scales, zeros, b = _data(m, 5, k, g, torch.bfloat16, zero_point, seed=k)
    dev = lambda t: t.to(device) if t is not None else None  # noqa: E731
    out = bigaccel.ops.int4_linear(dev(x), dev(packed), dev(scales), dev(zeros), g, dev(b)).cpu()
    ref = reference.int4_mm(x, packed, scales, zeros, g, b)
    tol = _tolerance(x, packed, scales, zeros, g, b, ref, case)
    assert torch.all((out.double() - ref.double()).abs() <= tol), (out - ref).abs().max()


@pytest.mark.parametrize("case", backend_cases("int4_mm"))
def test_no_bias_empty_batch_leading_dims_and_non_contiguous(case, use_backend):
    backend, device, isa = case
    use_backend(backend, isa)
    x, packed, scales, zeros, _ = _data(3, 9, 64, 32, torch.float32, True)
    x, packed, scales, zeros = x.to(device), packed.to(device), scales.to(device), zeros.to(device)
    x_strided = torch.randn(3, 128, device=device)[:, ::2]
    fn = bigaccel.ops.int4_linear
    torch.testing.assert_close(fn(x_strided, packed, scales, zeros, 32), fn(x_strided.contiguous(), packed, scales, zeros, 32),
                               rtol=0, atol=0)
    assert fn(x[:0], packed, scales, zeros, 32).shape == (0, 9)
    out = fn(x.reshape(3, 1, 64), packed, scales, zeros, 32)
    assert out.shape == (3, 1, 9)
    ref = reference.int4_mm(x.cpu(), packed.cpu(), scales.cpu(), zeros.cpu(), 32)
    tol = _tolerance(x.cpu(), packed.cpu(), scales.cpu(), zeros.cpu(), 32, None, ref)
    assert torch.all((out.reshape(3, 9).cpu().double() - ref.double()).abs() <= tol)


def test_error_is_the_quantization_error():
    """Against the float weight: int4 group-wise RTN on Gaussian data is ~5-10% off, not garbage."""
    gen = torch.Generator().manual_seed(5)
    x, w = torch.randn(8, 256, generator=gen), torch.randn(48, 256, generator=gen) / 20
    exact = x.double() @ w.double().t()
    for zp in (True, False):
        packed, scales, zeros = reference.quantize_int4(w, 64, zp)
        ours = bigaccel.ops.int4_linear(x, packed, scales, zeros, 64).double()
        assert (ours - exact).norm() / exact.norm() < 0.15


def test_opcheck():
    x, packed, scales, zeros, b = _data(5, 7, 64, 32, torch.float32, True)
    torch.library.opcheck(torch.ops.bigaccel.int4_mm.default, (x, packed, scales, zeros, 32, b))
    torch.library.opcheck(torch.ops.bigaccel.int4_mm.default, (x.bfloat16(), packed, scales, None, 32))
    # M <= 4 with bf16/fp16 x: the int16-activation GEMV on x86 (bf16 on AVX512_BF16 CPUs: to M = 2;
    # M = 3 the vdpbf16ps tiles decoding in registers, M = 5 above their panels)
    torch.library.opcheck(torch.ops.bigaccel.int4_mm.default, (x[:1].bfloat16(), packed, scales, zeros, 32, b.bfloat16()))
    torch.library.opcheck(torch.ops.bigaccel.int4_mm.default, (x[:3].half(), packed, scales, None, 32))
    torch.library.opcheck(torch.ops.bigaccel.int4_mm.default, (x[:3].bfloat16(), packed, scales, zeros, 32, b.bfloat16()))
    # groups of 128, M > 4, bf16/fp16 x: the int16 GEMM on x86 (bf16 with AVX512_BF16: the tiles)
    x, packed, scales, zeros, b = _data(5, 7, 128, 128, torch.bfloat16, True)
    torch.library.opcheck(torch.ops.bigaccel.int4_mm.default, (x, packed, scales, zeros, 128, b))
    torch.library.opcheck(torch.ops.bigaccel.int4_mm.default, (x.half(), packed, scales, None, 128))


def test_torch_compile(fresh_backends):
    x, packed, scales, zeros, b = _data(4, 7, 64, 32, torch.float32, True)
    eager = bigaccel.ops.int4_linear(x, packed, scales, zeros, 32, b)  # first: chooses the backend, untraced
    fn = torch.compile(lambda x: bigaccel.ops.int4_linear(x, packed, scales, zeros, 32, b), backend="eager",
                       fullgraph=True)
    torch.testing.assert_close(fn(x), eager)


def test_bad_input_is_explained():
    x, packed, scales, zeros, b = _data(4, 8, 64, 32, torch.float32, True)
    fn = bigaccel.ops.int4_linear
    with pytest.raises(ValueError, match="group_size must be one of"):
        fn(x, packed, scales, zeros, 16)
    with pytest.raises(ValueError, match="K mismatch: the input's last dimension is 62"):
        fn(x[:, :62], packed, scales, zeros, 32)
    with pytest.raises(ValueError, match="K=64 is not a multiple of group_size=128"):
        fn(x, packed, scales, zeros, 128)
    with pytest.raises(TypeError, match="packed weight must be uint8"):
        fn(x, packed.to(torch.int8), scales, zeros, 32)
    with pytest.raises(ValueError, match=r"scales must be float32 \[N, K/G\] = \[8, 2\]"):
        fn(x, packed, scales.half(), zeros, 32)
    with pytest.raises(ValueError, match="zeros must be uint8"):
        fn(x, packed, scales, zeros.float(), 32)
    with pytest.raises(ValueError, match="bias must have 8 elements"):
        fn(x, packed, scales, zeros, 32, torch.zeros(7))
    with pytest.raises(TypeError, match="must be float32, bfloat16 or float16"):
        fn(x.double(), packed, scales, zeros, 32)
    with pytest.raises(ValueError, match="is on meta"):
        fn(x, packed.to("meta"), scales, zeros, 32)
