"""The int4 tensor-core GEMM (csrc/int4_gemm/mma_gemm.cuh) without a GPU: its own index maps
(fragments, staging, swizzle, k order) run on the host against an mma.m16n8k16 written from the
PTX ISA's fragment tables, at odd shapes, compared exactly with a plain loop; bank conflicts and
out-of-bounds loads are checked too (tests/ops/int4_mma_emulation.cu). On a GPU, test_int4_gemm
runs the kernel itself (M > 8, bf16/fp16)."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEADER = ROOT / "csrc" / "int4_gemm" / "mma_gemm.cuh"


def _nvcc():
    home = os.environ.get("CUDA_HOME", "/usr/local/cuda")
    path = Path(home) / "bin" / "nvcc"
    return str(path) if path.exists() else shutil.which("nvcc")


@pytest.mark.skipif(_nvcc() is None, reason="needs nvcc (the CUDA toolkit) to compile the host emulation")
@pytest.mark.skipif(not HEADER.exists(), reason="needs the source tree's csrc/ (not part of an installed wheel)")
def test_int4_mma_kernel_index_maps_match_a_plain_gemm(tmp_path):
    binary = tmp_path / "int4_mma_emulation"
    subprocess.run([_nvcc(), "-std=c++17", "-O2", f"-I{ROOT / 'csrc'}", str(ROOT / "tests/ops/int4_mma_emulation.cu"),
                    "-o", str(binary)], check=True, capture_output=True, text=True)
    run = subprocess.run([str(binary)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and "ALL OK" in run.stdout, run.stdout[-3000:]
    assert run.stdout.count("exact") == 22  # every case ran
