"""What the build produced: build info, the extensions, and the installed kernels package."""
import importlib
import os
from pathlib import Path

import pytest

import bigaccel
from bigaccel import _extension


def test_build_info_is_recorded():
    info = _extension.build_info
    assert info is not None, "bigaccel/_build_info.py missing: the package was not built"
    assert info.version == bigaccel.__version__
    assert "+" in info.version and "torch" in info.version
    assert isinstance(info.cuda_archs, list)


def test_cpu_extension_loads():
    ext = _extension.load()["cpu"]
    assert ext.loaded, ext.reason
    assert ext.module.detected_isa() in ("avx512", "avx2", "portable")


@pytest.mark.skipif(os.environ.get("BIGACCEL_EXPECT_CUDA_EXTENSION") != "1",
                    reason="set BIGACCEL_EXPECT_CUDA_EXTENSION=1 where the CUDA extension must have been built")
def test_cuda_extension_was_built_and_loads():
    ext = _extension.load()["cuda"]
    assert ext.loaded, ext.reason
    expected = os.environ.get("BIGACCEL_CUDA_ARCHS")
    if expected:
        assert ext.module.compiled_archs == expected
        assert bigaccel.info()["cuda"]["archs_compiled"] == expected.split(";")
    # CI installs nvidia-cutlass as the README says, so the tensor-core GEMMs must be in.
    assert ext.module.cutlass, "built without CUTLASS: pip install nvidia-cutlass and rebuild"


def test_kernels_package_is_installed_under_bigaccel():
    pytest.importorskip("triton")
    module = importlib.import_module("bigaccel.kernels.quantize_per_token")
    # Editable installs map bigaccel.kernels to the top-level kernels/ folder; wheels copy it.
    assert Path(module.__file__).parent.name == "kernels"
    assert hasattr(module, "quantize_per_token_triton")


def test_hopper_module_is_built_exactly_when_9_0a_is_compiled_and_says_why_not():
    """bigaccel._C_hopper holds the sm_90a-only kernels: built when 9.0a is in the arch list
    (with nvidia-cutlass), and then attached to _C_cuda; otherwise the reason is recorded."""
    info = _extension.build_info
    hopper, cuda = _extension.load()["hopper"], _extension.load()["cuda"]
    if not getattr(info, "hopper_built", False):
        assert not hopper.loaded and hopper.reason.startswith("not built: ")
        if info.cuda_built and "9.0a" not in info.cuda_archs:
            assert "9.0a is not in BIGACCEL_CUDA_ARCHS" in hopper.reason
        return
    assert "9.0a" in info.cuda_archs
    if cuda.loaded:
        assert hopper.loaded, hopper.reason
        assert cuda.module.hopper_kernels_attached()
