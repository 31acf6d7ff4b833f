"""Where a job runs and what it used: device and dtype choice, the check that a claimed GPU is
usable, and the device record of every metrics file."""

from __future__ import annotations

import logging
import os
import resource
import sys

import torch

log = logging.getLogger(__name__)

# Where a GPU user gets a torch build for their driver (docs/gpu.md). The command works when
# pasted: DEVICE=gpu keeps faiss-gpu, and a new TORCH_INDEX reinstalls torch from it.
TORCH_FIX = (
    "install the torch build that matches your driver, e.g. "
    "`make install DEVICE=gpu TORCH_INDEX=https://download.pytorch.org/whl/cu128` (CUDA 12.8 "
    "drivers), or upgrade the NVIDIA driver; docs/gpu.md, 'A bare GPU box', says how to pick"
)


class CudaUnusableError(RuntimeError):
    """A GPU was claimed, but this torch build cannot run on it."""


def device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def half_dtype() -> torch.dtype:
    """The 16-bit compute dtype of this GPU: bfloat16 where it is native (Ampere and newer),
    float16 elsewhere (V100, T4), where bf16 is emulated or missing."""
    if torch.cuda.is_bf16_supported(including_emulation=False):
        return torch.bfloat16
    return torch.float16


def cpu_bf16_features() -> dict[str, bool]:
    """The CPU features that compute bfloat16 natively, as torch reports them (private
    helpers of torch 2.x; a torch without them reports none)."""
    probes = {"avx512_bf16": "_is_avx512_bf16_supported", "amx": "_is_amx_tile_supported"}
    return {name: bool(getattr(torch.cpu, fn, lambda: False)()) for name, fn in probes.items()}


def cpu_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX). Elsewhere torch
    converts, and a bf16 matmul runs at a fraction of the float32 rate
    (``benchmarks/bench_cpu_dtype.py``: 1.23 against 74.9 GFLOP/s on an AVX2-only host)."""
    return any(cpu_bf16_features().values())


def resolve_dtype(name: str) -> torch.dtype:
    """``auto`` is the GPU's 16-bit dtype on CUDA (:func:`half_dtype`) and float32 on CPU, where
    bf16 matmuls are far slower unless the CPU has native bf16. An explicit ``bfloat16`` falls
    back to float16 on a GPU without native bf16, with a log line, and is kept on a CPU
    without it, with a warning that it will be slow."""
    if name == "auto":
        return half_dtype() if torch.cuda.is_available() else torch.float32
    dtype = getattr(torch, name)
    if dtype == torch.bfloat16 and torch.cuda.is_available() and half_dtype() != dtype:
        log.warning("this GPU has no native bfloat16: using float16 instead")
        return torch.float16
    if dtype == torch.bfloat16 and not torch.cuda.is_available() and not cpu_native_bf16():
        log.warning(
            "bfloat16 on a CPU without native bf16 (no AVX512-BF16 or AMX): expect it to be "
            "many times slower than float32 (python -m benchmarks.bench_cpu_dtype); "
            "set the dtype to auto or float32"
        )
    return dtype


# Set by ragtune.runner in the process of one Snakemake job (and its ranks). Blocking an
# import is for the life of a process, so it is never done in a process that runs other
# work afterwards (a test session, a notebook).
_one_job_process = False


def mark_one_job_process() -> None:
    global _one_job_process
    _one_job_process = True


def keep_out_bitsandbytes() -> bool:
    """Make ``bitsandbytes`` unimportable in this process, for a job that quantises nothing.

    peft and sentence-transformers import bitsandbytes whenever it is installed, and its CPU
    backend decorates its kernels with ``torch.compile``, which imports torch's compiler
    stack: 3-5 s of every job's start-up (``benchmarks/bench_overhead.py``), for a library
    only a 4-bit model uses. A ``None`` entry in ``sys.modules`` is Python's own way of
    blocking an import: ``find_spec`` then reports the package missing, so both libraries take
    their no-bitsandbytes path. Call it before they are imported, and only in a process that
    will load no 4-bit model: only in a job's own process (:func:`mark_one_job_process`).
    Returns whether the block is in place."""
    if not _one_job_process or sys.modules.get("bitsandbytes", None) is not None:
        return False
    sys.modules["bitsandbytes"] = None  # type: ignore[assignment]
    return True


def _driver_version() -> str:
    from ragtune.gpu import nvidia_smi

    versions = nvidia_smi("driver_version")
    return versions[0] if versions else "unknown (nvidia-smi missing or failing)"


def _has_kernels(capability: tuple[int, int], arch_list: list[str]) -> bool:
    """Whether a wheel built for ``arch_list`` (``sm_80``, ``compute_90``, ...) runs on a GPU of
    ``capability``: a cubin runs on its own major version at an equal or higher minor, and PTX
    is compiled for any newer GPU."""
    major, minor = capability
    for arch in arch_list:
        kind, _, number = arch.partition("_")
        digits = "".join(ch for ch in number if ch.isdigit())
        if not digits:
            continue
        a_major, a_minor = int(digits[:-1]), int(digits[-1])
        if kind == "sm" and a_major == major and a_minor <= minor:
            return True
        if kind == "compute" and (a_major, a_minor) <= (major, minor):
            return True
    return False


def check_cuda_usable(gpu_ids: list[str]) -> None:
    """Fail fast where this job holds GPUs that torch cannot use: otherwise it would silently
    train on the CPU (in float32, for days) while the GPUs it claimed sit idle."""
    if not gpu_ids:
        return
    build = torch.version.cuda
    if build is None:
        raise CudaUnusableError(
            f"this job claimed GPU(s) {','.join(gpu_ids)}, but the installed torch "
            f"{torch.__version__} is a CPU-only build; {TORCH_FIX}"
        )
    if not torch.cuda.is_available():
        raise CudaUnusableError(
            f"this job claimed GPU(s) {','.join(gpu_ids)}, but torch {torch.__version__} "
            f"(built for CUDA {build}) cannot use them: NVIDIA driver {_driver_version()} is "
            f"older than CUDA {build} needs, or no driver is loaded; {TORCH_FIX}"
        )
    arch_list = torch.cuda.get_arch_list()
    for index in range(torch.cuda.device_count()):
        capability = torch.cuda.get_device_capability(index)
        if not _has_kernels(capability, arch_list):
            name = torch.cuda.get_device_name(index)
            raise CudaUnusableError(
                f"GPU {index} ({name}, compute capability {capability[0]}.{capability[1]}) has "
                f"no kernels in torch {torch.__version__} (built for {' '.join(arch_list)}); "
                f"{TORCH_FIX}"
            )


def peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux and in bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def device_record() -> dict:
    """Hardware facts written next to every result, so costs can be reckoned later."""
    cuda = torch.cuda.is_available()
    return {
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "gpu_count": torch.cuda.device_count() if cuda else 0,
        "cpu_threads": torch.get_num_threads(),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "peak_gpu_mem_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if cuda else 0.0,
        # What the caching allocator held at its peak: what the GPU really had to give, and
        # against allocated, how much fragmentation cost.
        "peak_gpu_reserved_mb": (
            round(torch.cuda.max_memory_reserved() / 2**20, 1) if cuda else 0.0
        ),
        "host": os.uname().nodename,
    }
