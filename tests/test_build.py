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
