"""Build bigaccel's compiled extensions.

bigaccel._C        CPU kernels (always built). Each kernel is compiled once per
                   instruction set (AVX-512+VNNI, AVX2, portable) and chosen at run time.
bigaccel._C_cuda   CUDA kernels, built when nvcc and a CUDA build of torch are present.
bigaccel._C_hopper Hopper-only kernels (wgmma, TMA: csrc/**/hopper_*), compiled for sm_90a
                   alone, built only when 9.0a is in the arch list and nvidia-cutlass is
                   installed; _C_cuda calls them on sm_90 GPUs (see csrc/hopper_kernels.h).

Environment:
  BIGACCEL_BUILD_CUDA   auto (default) | 0 | 1
  BIGACCEL_CUDA_ARCHS   e.g. "8.0;9.0a" -> one -gencode per arch, plus PTX for the newest.
                        Default: the visible GPU's arch, else "8.0;9.0a".
  MAX_JOBS              parallel compile jobs (read by torch's ninja build).
  CUDA_HOME             CUDA toolkit; default /usr/local/cuda, else found from nvcc.
  BIGACCEL_SKIP_CPU_EXTENSION=1   developers only: build _C_cuda alone (a quick GPU rebuild).
"""
import datetime
import glob
import importlib.util
import os
import shutil
import sys
from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).resolve().parent
BASE_VERSION = "0.1.0"


def _find_cuda_home():
    # torch guesses CUDA_HOME from `which nvcc`, which is wrong when nvcc is a wrapper
    # script outside the toolkit (/usr/local/bin/nvcc here), so settle it first.
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(var):
            return os.environ[var]
    if os.path.exists("/usr/local/cuda/bin/nvcc"):
        return "/usr/local/cuda"
    nvcc = shutil.which("nvcc")
    if nvcc:
        return str(Path(os.path.realpath(nvcc)).parent.parent)
    return None


_cuda_home = _find_cuda_home()
if _cuda_home:
    os.environ["CUDA_HOME"] = _cuda_home

import torch  # noqa: E402  (after CUDA_HOME is settled)
from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension  # noqa: E402


def _want_cuda():
    mode = os.environ.get("BIGACCEL_BUILD_CUDA", "auto").strip().lower()
    if mode not in ("auto", "0", "1"):
        sys.exit(f"BIGACCEL_BUILD_CUDA must be auto, 0 or 1, not {mode!r}")
    if mode == "0":
        return False, "BIGACCEL_BUILD_CUDA=0"
    problems = []
    if torch.version.cuda is None:
        problems.append(f"torch {torch.__version__} is not a CUDA build")
    if not (_cuda_home and os.path.exists(os.path.join(_cuda_home, "bin", "nvcc"))):
        problems.append("nvcc not found (set CUDA_HOME)")
    if problems and mode == "1":
        sys.exit("BIGACCEL_BUILD_CUDA=1 but " + "; ".join(problems))
    return (not problems), "; ".join(problems) or "nvcc and CUDA torch found"


def _cuda_archs():
    spec = os.environ.get("BIGACCEL_CUDA_ARCHS", "").strip()
    if not spec:
        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability()
            spec = f"{major}.{minor}" + ("a" if major == 9 else "")
        else:
            spec = "8.0;9.0a"
    archs = []
    for item in spec.replace(",", ";").split(";"):
        item = item.strip()
        if not item:
            continue
        number, suffix = (item[:-1], "a") if item.endswith("a") else (item, "")
        try:
            major, minor = (int(p) for p in number.split("."))
        except ValueError:
            sys.exit(f"BIGACCEL_CUDA_ARCHS: cannot read {item!r}; write archs like 8.0;8.6;9.0a")
        archs.append((major, minor, suffix))
    if not archs:
        sys.exit("BIGACCEL_CUDA_ARCHS is empty")
    return sorted(set(archs))


def _gencode_flags(archs):
    flags = [f"-gencode=arch=compute_{a}{b}{s},code=sm_{a}{b}{s}" for a, b, s in archs]
    # PTX of the newest arch (without the arch-specific 'a', which would not run forward).
    a, b, _ = archs[-1]
    flags.append(f"-gencode=arch=compute_{a}{b},code=compute_{a}{b}")
    return flags


def _nvidia_wheel_includes():
    # ATen's CUDA headers include cuBLAS/cuSPARSE headers that ship in torch's nvidia
    # wheels, not always in the toolkit.
    site = Path(torch.__file__).resolve().parent.parent / "nvidia"
    return sorted(str(p) for p in site.glob("*/include") if p.is_dir())


def _cutlass_include():
    # find_spec, not import: the headers are all we need, and importing cutlass_library
    # pulls in its Python generator's dependencies (pydot, treelib), absent on some machines.
    spec = importlib.util.find_spec("cutlass_library")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "source" / "include"
    return str(path) if path.is_dir() else None


def _sources(pattern):
    return sorted(os.path.relpath(p, ROOT) for p in glob.glob(str(ROOT / "csrc" / pattern), recursive=True))


def _is_hopper(source):
    return os.path.basename(source).startswith("hopper_")


# Host C++ that belongs to the CUDA extension is named *_cuda.cpp, the Hopper module's
# hopper_*; all other .cpp is CPU.
def _cpu_sources():
    return [s for s in _sources("**/*.cpp") if not s.endswith("_cuda.cpp") and not _is_hopper(s)]


# CUTLASS kernels live in files named cutlass_*.cu; they need the headers of the
# PyPI package nvidia-cutlass (a build dependency, never downloaded by the build).
def _cuda_sources(with_cutlass):
    sources = _sources("**/*.cu") + _sources("**/*_cuda.cpp")
    return [s for s in sources if not _is_hopper(s) and (with_cutlass or not os.path.basename(s).startswith("cutlass_"))]


# The Hopper kernels are CUTLASS 3 (wgmma, TMA), so they need nvidia-cutlass too.
def _hopper_sources():
    return [s for s in _sources("**/*.cu") + _sources("**/*.cpp") if _is_hopper(s)]


def _write_build_info(info):
    lines = ['"""Written by setup.py at build time; do not edit."""']
    lines += [f"{key} = {value!r}" for key, value in info.items()]
    (ROOT / "bigaccel" / "_build_info.py").write_text("\n".join(lines) + "\n")


def main():
    build_cuda, cuda_reason = _want_cuda()
    archs = _cuda_archs() if build_cuda else []
    arch_names = [f"{a}.{b}{s}" for a, b, s in archs]
    torch_mm = ".".join(torch.__version__.split("+")[0].split(".")[:2])
    if build_cuda:
        local = f"cu{torch.version.cuda.replace('.', '')}.torch{torch_mm}"
    else:
        local = f"cpu.torch{torch_mm}"
    version = f"{BASE_VERSION}+{local}"

    cxx_flags = ["-O3", "-fopenmp", "-Wall", "-Wno-unused-function"]
    include_dirs = [str(ROOT / "csrc")]
    ext_modules = []
    # BIGACCEL_SKIP_CPU_EXTENSION=1: a developer's GPU-only rebuild on a lent machine, whose
    # minutes are counted (the CPU ops then run on the reference); never for a release.
    if os.environ.get("BIGACCEL_SKIP_CPU_EXTENSION") != "1":
        ext_modules.append(
            CppExtension(
                "bigaccel._C",
                _cpu_sources(),
                include_dirs=include_dirs,
                extra_compile_args={"cxx": cxx_flags},
                extra_link_args=["-fopenmp"],
            )
        )
    if build_cuda:
        cuda_includes = include_dirs + _nvidia_wheel_includes()
        cutlass = _cutlass_include()
        if cutlass:
            cuda_includes.append(cutlass)
        else:
            print("bigaccel: nvidia-cutlass is not installed: building the CUDA extension without the CUTLASS "
                  "tensor-core GEMMs (pip install nvidia-cutlass, then rebuild, to get them)", file=sys.stderr)
        archs_define = f'-DBIGACCEL_CUDA_ARCHS="{";".join(arch_names)}"'
        cutlass_define = f"-DBIGACCEL_HAVE_CUTLASS={int(cutlass is not None)}"
        ext_modules.append(
            CUDAExtension(
                "bigaccel._C_cuda",
                _cuda_sources(cutlass is not None),
                include_dirs=cuda_includes,
                extra_compile_args={
                    "cxx": ["-O3", archs_define, cutlass_define],
                    "nvcc": ["-O3", "--expt-relaxed-constexpr", archs_define, cutlass_define] + _gencode_flags(archs),
                },
            )
        )

        hopper_reason = ("9.0a is not in BIGACCEL_CUDA_ARCHS" if (9, 0, "a") not in archs else
                         "nvidia-cutlass is not installed" if cutlass is None else None)
        if hopper_reason is None:
            ext_modules.append(
                CUDAExtension(
                    "bigaccel._C_hopper",
                    _hopper_sources(),
                    include_dirs=cuda_includes,
                    extra_compile_args={
                        "cxx": ["-O3"],
                        "nvcc": ["-O3", "--expt-relaxed-constexpr", "--expt-extended-lambda", "-DNDEBUG",
                                 "-gencode=arch=compute_90a,code=sm_90a"],
                    },
                )
            )
    else:
        hopper_reason = "the CUDA extension is not built"

    _write_build_info(
        {
            "version": version,
            "torch_version": torch.__version__,
            "torch_cuda_version": torch.version.cuda,
            "python_version": ".".join(map(str, sys.version_info[:3])),
            "cuda_built": build_cuda,
            "cuda_build_reason": cuda_reason,
            "cuda_archs": arch_names,
            "cutlass_include": _cutlass_include() is not None,
            "hopper_built": hopper_reason is None,
            "hopper_build_reason": hopper_reason or "9.0a in the arch list and nvidia-cutlass found",
            "built_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
    )

    setup(
        version=version,
        packages=["bigaccel", "bigaccel.nn", "bigaccel.kernels"],
        package_dir={"bigaccel": "bigaccel", "bigaccel.kernels": "kernels"},
        ext_modules=ext_modules,
        cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
    )


main()
