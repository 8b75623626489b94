"""Backend choice, the BIGACCEL_BACKEND override, fallbacks, and bigaccel info."""
import json
import os
import subprocess
import sys

import pytest
import torch

import bigaccel
from bigaccel import backends
from tests.conftest import CPU_EXT


def _run(code: str, **env) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k != "BIGACCEL_BACKEND"}
    full_env.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=300)


def test_cpu_prefers_the_extension(fresh_backends):
    if not CPU_EXT.loaded:
        pytest.skip(f"no C++ CPU extension: {CPU_EXT.reason}")
    choice = backends.choose("quantize_per_token", "cpu")
    assert choice.backend == "cpu" and choice.why == "preferred"


def test_override_for_all_ops_and_per_op(monkeypatch, fresh_backends):
    monkeypatch.setenv("BIGACCEL_BACKEND", "reference")
    assert backends.choose("quantize_per_token", "cpu").backend == "reference"
    monkeypatch.setenv("BIGACCEL_BACKEND", "some_other_op=cuda,quantize_per_token=reference")
    choice = backends.choose("quantize_per_token", "cpu")
    assert choice.backend == "reference" and "BIGACCEL_BACKEND" in choice.why


def test_forced_backend_that_cannot_run_is_an_error(monkeypatch, fresh_backends):
    monkeypatch.setenv("BIGACCEL_BACKEND", "cuda")
    with pytest.raises(RuntimeError, match="asks for the cuda backend .* runs cuda tensors only.*choose one of"):
        bigaccel.ops.quantize_per_token(torch.ones(2, 4))
    monkeypatch.setenv("BIGACCEL_BACKEND", "fastest")
    with pytest.raises(ValueError, match="unknown backend 'fastest'"):
        backends.choose("quantize_per_token", "cpu")


def test_unsupported_device_is_explained(fresh_backends):
    with pytest.raises(ValueError, match="tensors on mps are not supported"):
        backends.choose("quantize_per_token", "mps")
    with pytest.raises(KeyError, match="unknown bigaccel op"):
        backends.choose("no_such_op", "cpu")


def test_missing_extension_falls_back_with_one_warning():
    """No compiled extension: import works, one warning, the reference runs, results unchanged."""
    code = """
import warnings, torch, bigaccel
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    x = torch.randn(4, 33)
    for _ in range(3):
        q, s = bigaccel.ops.quantize_per_token(x)
    q2, _ = bigaccel.ops.quantize_per_token(x.bfloat16())
ref_q, ref_s = bigaccel.reference.quantize_per_token(x)
assert torch.equal(q, ref_q) and torch.equal(s, ref_s)
msgs = [str(w.message) for w in caught if "bigaccel" in str(w.message)]
assert len(msgs) == 1, msgs
print(msgs[0])
print(bigaccel.info()["ops"]["quantize_per_token"]["cpu"]["backend"])
"""
    out = _run(code, BIGACCEL_NO_EXTENSIONS="1")
    assert out.returncode == 0, out.stderr
    assert "not using the cpu backend" in out.stdout and "hidden by BIGACCEL_NO_EXTENSIONS" in out.stdout
    assert out.stdout.strip().endswith("reference")


def test_torch_version_mismatch_is_detected(monkeypatch):
    from bigaccel import _extension

    monkeypatch.setattr(_extension.build_info, "torch_version", "2.0.0+fake")
    ext = _extension._load("_C", "C++ CPU kernels", True, "")
    assert not ext.loaded
    assert "compiled against torch 2.0.0+fake" in ext.reason and "rebuild" in ext.reason


def test_cpu_isa_override_is_applied_and_validated():
    if not CPU_EXT.loaded:
        pytest.skip("no C++ CPU extension")
    out = _run("import bigaccel; print(bigaccel.info()['cpu']['isa_in_use'])", BIGACCEL_CPU_ISA="portable")
    assert out.returncode == 0 and out.stdout.strip() == "portable", out.stderr
    out = _run("import bigaccel; print(bigaccel.info()['cpu']['isa_in_use'])", BIGACCEL_CPU_ISA="sse9")
    assert out.returncode == 0 and "ignoring BIGACCEL_CPU_ISA='sse9'" in out.stderr


def test_info_describes_the_installation():
    data = bigaccel.info()
    assert data["version"] == bigaccel.__version__
    assert data["torch"]["running"] == torch.__version__
    assert set(data["extensions"]) == {"cpu", "cuda", "hopper"}
    op = data["ops"]["quantize_per_token"]["cpu"]
    assert op["backend"] in ("cpu", "reference") and op["why"]
    if CPU_EXT.loaded:
        assert data["cpu"]["isa_in_use"] in ("avx512", "avx2", "portable")
        assert op["backend"] == "cpu"
    json.dumps(data)  # serialisable


@pytest.mark.parametrize("argv", [["-m", "bigaccel", "info"], ["-m", "bigaccel", "info", "--json"]])
def test_info_command(argv):
    out = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "quantize_per_token" in out.stdout
    if "--json" in argv:
        assert json.loads(out.stdout)["ops"]["quantize_per_token"]["cpu"]["backend"]


def test_demo_command_runs():
    # --tiny: the TinyLlama demo (the transformers one is the default when installed, and takes ~1 min)
    out = subprocess.run([sys.executable, "-m", "bigaccel", "demo", "--tiny", "--layers", "1", "--hidden", "64",
                          "--seq", "8", "--repeat", "1"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    # the int8 report (per-layer SQNR, totals), then one row per recipe against fp32
    assert "model.layers.0.mlp.down_proj" in out.stdout and "output SQNR" in out.stdout
    assert "fp32 (as built)" in out.stdout and "\nint8-weight-only " in out.stdout


def test_prepare_lets_fullgraph_compile_run_before_any_eager_call(fresh_backends):
    chosen = backends.prepare("cpu")
    assert chosen["quantize_per_token"] in ("cpu", "reference")
    compiled = torch.compile(lambda x: bigaccel.ops.quantize_per_token(x), fullgraph=True, backend="aot_eager")
    x = torch.randn(3, 40)
    q, scale = compiled(x)
    q_ref, scale_ref = bigaccel.reference.quantize_per_token(x)
    assert torch.equal(q, q_ref) and torch.equal(scale, scale_ref)
