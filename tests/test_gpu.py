"""What only a CUDA GPU can check (skipped without one): opcheck of every op's CUDA kernel
and of its Triton kernel on CUDA tensors (Triton's interpreter cannot run opcheck of a
triton_op), and converted models on the GPU: each backend against the reference backend,
eager and under inductor. The per-op elementwise checks at awkward shapes are in tests/ops,
whose backend cases include cuda-gpu and triton-gpu when a GPU is present."""
import importlib

import pytest
import torch

import bigaccel
from bigaccel import backends, recipes, reference
from bigaccel.models import tiny_llama
from tests.conftest import HAS_GPU
from tests.ops import test_activations, test_int4_gemm, test_sparse24_gemm

pytestmark = pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA GPU")

TRITON_MODULES = ("quantize_per_token", "int8_gemm", "int4_gemm", "sparse24_gemm", "activations")


def _op_cases():
    """(id, op, args on the CPU): shapes that take each CUDA path: M <= 8 (GEMV), M > 8 with
    aligned N and K (tensor cores), M > 8 unaligned (the fallback)."""
    cases = []
    g = torch.Generator().manual_seed(0)
    for m, n, k in ((5, 24, 40), (32, 64, 128), (33, 17, 100)):
        x = torch.randn(m, k, generator=g)
        w = torch.randint(-127, 128, (n, k), generator=g, dtype=torch.int8)
        w_scale = torch.rand(n, generator=g) * 0.02 + 1e-3
        b = torch.randn(n, generator=g)
        a, a_scale = reference.quantize_per_token(x)
        shape = f"{m}x{n}x{k}"
        cases += [
            (f"quantize-{shape}", "quantize_per_token", (x.bfloat16(),)),
            (f"w8a8-bf16-{shape}", "int8_mm", (a, a_scale, w, w_scale, None, b, torch.bfloat16)),
            (f"w8a8-f32-wsum-{shape}", "int8_mm", (a, a_scale, w, w_scale, w.sum(1, dtype=torch.int32), b)),
            (f"w8a16-bf16-{shape}", "int8_weight_only_mm", (x.bfloat16(), w, w_scale, b.bfloat16())),
            (f"w8a16-f16-{shape}", "int8_weight_only_mm", (x.half(), w, w_scale, None)),
        ]
    for m, group in ((1, 32), (17, 128)):
        x, packed, scales, zeros, b = test_int4_gemm._data(m, 19, 384, group, torch.bfloat16, True)
        cases.append((f"int4-g{group}-m{m}", "int4_mm", (x, packed, scales, zeros, group, b)))
    x, _, values, meta, b = test_sparse24_gemm._data(17, 9, 36, torch.bfloat16)
    cases.append(("sparse24", "sparse24_mm", (x, values, meta, 36, b)))
    a, a_scale, values, meta, w_scale, b = test_sparse24_gemm._int8_data(17, 9, 36)
    cases.append(("sparse24-int8", "sparse24_int8_mm", (a, a_scale, values, meta, 36, w_scale, None, b,
                                                        torch.bfloat16)))
    for op, extra in test_activations.OPCHECK:
        k = 18 if op != "bias_act" else 9
        x = torch.randn(5, k, dtype=torch.bfloat16)
        args = ((torch.randn(k, dtype=torch.bfloat16),) if op == "bias_act" else ()) + extra
        out_shape = (5, k // 2) if op.endswith("_and_mul") else (5, k)
        tag = "-".join([op, *[a for a in extra if isinstance(a, str)]])
        cases += [
            (tag, op, (x, *args)),
            (f"{tag}-backward", f"{op}_backward", (torch.randn(out_shape, dtype=torch.bfloat16), x, *args)),
            (f"{tag}-out", f"{op}_out", (x, *args, torch.empty(out_shape, dtype=torch.bfloat16))),
        ]
    return cases


def _cuda(args):
    return tuple(a.cuda() if isinstance(a, torch.Tensor) else a for a in args)


@pytest.mark.parametrize("kernel", ["cuda", "triton"])
@pytest.mark.parametrize("op, args", [pytest.param(op, args, id=i) for i, op, args in _op_cases()])
def test_opcheck_on_gpu(kernel, op, args):
    if kernel not in backends.registered(op):
        pytest.skip(f"{op} has no {kernel} kernel")
    if kernel == "triton":
        for module in TRITON_MODULES:
            importlib.import_module(f"bigaccel.kernels.{module}")
        op = f"{op}_triton"
    torch.library.opcheck(getattr(torch.ops.bigaccel, op).default, _cuda(args))


def _llama():
    # hidden 256 and MLP 512: every recipe's group size divides K, so every linear converts.
    model = tiny_llama(vocab=256, hidden=256, intermediate=512, layers=2, heads=4, kv_heads=2)
    return model.cuda().eval()


def _tokens():
    return torch.randint(0, 256, (2, 12), generator=torch.Generator().manual_seed(1)).cuda()


def _rel(out, ref):
    return ((out.float() - ref.float()).norm() / ref.float().norm()).item()


GPU_RECIPES = [r for r in ("int8", "int8-weight-only", "int4-g32", "int4", "sparse24", "sparse24-int8",
                           "fuse-activations")
               if r in recipes.available_recipes()]


@pytest.mark.parametrize("backend", ["cuda", "triton"])
@pytest.mark.parametrize("recipe", GPU_RECIPES)
def test_converted_model_on_gpu_matches_the_reference_backend(recipe, backend, monkeypatch):
    torch.manual_seed(0)
    model, t = _llama(), _tokens()
    with torch.no_grad():
        bigaccel.convert(model, recipe)
        monkeypatch.setenv("BIGACCEL_BACKEND", "reference")
        backends.reset()
        ref = model(t).float()
        # Ops without a kernel in this backend (sparse24_mm has no CUDA one) keep their default.
        only = ",".join(f"{op}={backend}" for op in backends.ops() if backend in backends.registered(op))
        monkeypatch.setenv("BIGACCEL_BACKEND", only)
        backends.reset()
        out = model(t).float()
    backends.reset()
    # The same converted model: only summation order and (W8A8) an activation rounding at a
    # tie can differ.
    assert _rel(out, ref) < 2e-3, _rel(out, ref)


@pytest.mark.parametrize("recipe", GPU_RECIPES)
def test_converted_model_compiles_with_inductor_on_gpu(recipe, fresh_backends):
    torch.manual_seed(0)
    model, t = _llama(), _tokens()
    bigaccel.convert(model, recipe)
    backends.prepare("cuda")
    with torch.no_grad():
        eager = model(t)
        compiled = torch.compile(model, fullgraph=True)(t)
    # inductor fuses and reorders the float math around the opaque bigaccel ops.
    assert _rel(compiled, eager) < 1e-4, _rel(compiled, eager)


def test_hopper_kernels_are_attached_on_hopper_when_built():
    """On an sm_90 GPU with a 9.0a build, the W8A8 op can reach the sm_90a GEMM of _C_hopper
    (M > 8, N and K multiples of 16: the int8 op tests run it)."""
    exts = bigaccel._extension.load()
    if torch.cuda.get_device_capability() != (9, 0) or "9.0a" not in exts["cuda"].details.get("archs", []):
        pytest.skip("needs an sm_90 GPU and a build that includes 9.0a")
    assert exts["hopper"].loaded, exts["hopper"].reason
    assert exts["cuda"].module.hopper_kernels_attached()


# ---------------------------------------------------------------------------
# The CUTLASS 2:4 sparse tensor-core kernels, called directly at awkward M (the public
# ops route only M >= CUTLASS_MIN_ROWS with aligned N and K to them)
# ---------------------------------------------------------------------------


def _cutlass_or_skip():
    from bigaccel import _sparse24_ops

    if not _sparse24_ops._cutlass_built():
        pytest.skip("the CUDA extension was built without nvidia-cutlass")


@pytest.mark.parametrize("nk", [(64, 128), (96, 320)], ids=str)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("m", [1, 3, 17, 64, 200])
def test_cutlass_sparse24_matches_masked_dense(m, dtype, nk):
    _cutlass_or_skip()
    n, k = nk
    x, w, values, meta, b = test_sparse24_gemm._data(m, n, k, dtype, seed=m)
    out = torch.ops.bigaccel.sparse24_mm_cutlass(x.cuda(), values.cuda(), meta.cuda(), k, b.cuda())
    test_sparse24_gemm._check(out.cpu(), x, w, b)
    no_bias = torch.ops.bigaccel.sparse24_mm_cutlass(x.cuda(), values.cuda(), meta.cuda(), k, None)
    test_sparse24_gemm._check(no_bias.cpu(), x, w, torch.zeros(n))


@pytest.mark.parametrize("nk", [(32, 128), (48, 384)], ids=str)
@pytest.mark.parametrize("out_dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("m", [1, 3, 17, 64, 200])
def test_cutlass_sparse24_int8_matches_the_dense_int8_reference(m, out_dtype, nk):
    _cutlass_or_skip()
    n, k = nk
    a, a_scale, values, meta, w_scale, b = test_sparse24_gemm._int8_data(m, n, k, seed=m)
    out = torch.ops.bigaccel.sparse24_int8_mm_cutlass(a.cuda(), a_scale.cuda(), values.cuda(), meta.cuda(), k,
                                                       w_scale.cuda(), None, b.cuda(), out_dtype).cpu()
    ref = reference.int8_mm(a, a_scale, reference.decompress_2_4(values, meta, k), w_scale, b, out_dtype)
    assert out.dtype == out_dtype and out.shape == (m, n)
    tol = 2 * torch.finfo(out_dtype).eps * (ref.double().abs() + b.double().abs()) + 1e-30
    assert torch.all((out.double() - ref.double()).abs() <= tol), (out.double() - ref.double()).abs().max()


def test_cutlass_sparse24_opcheck_and_errors():
    _cutlass_or_skip()
    x, _, values, meta, b = test_sparse24_gemm._data(17, 64, 128, torch.bfloat16)
    torch.library.opcheck(torch.ops.bigaccel.sparse24_mm_cutlass.default, _cuda((x, values, meta, 128, b)))
    a, a_scale, values8, meta8, w_scale, b8 = test_sparse24_gemm._int8_data(17, 32, 128)
    torch.library.opcheck(torch.ops.bigaccel.sparse24_int8_mm_cutlass.default,
                          _cuda((a, a_scale, values8, meta8, 128, w_scale, None, b8, torch.bfloat16)))
    with pytest.raises(RuntimeError, match="N a multiple of 32"):
        torch.ops.bigaccel.sparse24_mm_cutlass(*_cuda((x, values[:40], meta[:40], 128, None)))
    with pytest.raises(RuntimeError, match="bfloat16 or float16 x and values of the same dtype"):
        torch.ops.bigaccel.sparse24_mm_cutlass(*_cuda((x.float(), values, meta, 128, None)))
