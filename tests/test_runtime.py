"""Device and dtype choice, and the fail-fast check of a claimed GPU, with torch.cuda faked."""

import pytest
import torch

from ragtune import runtime


@pytest.fixture
def fake_cuda(monkeypatch):
    """A CUDA build of torch on a host whose GPU(s) we describe."""

    def setup(available=True, bf16=True, capability=(8, 0), arch=("sm_80", "sm_90")):
        monkeypatch.setattr(torch.version, "cuda", "13.0")
        monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: bf16)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i=0: capability)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "Fake GPU")
        monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: list(arch))
        monkeypatch.setattr(runtime, "_driver_version", lambda: "535.104")

    return setup


def test_a_claimed_gpu_that_torch_cannot_see_fails_naming_driver_and_fix(fake_cuda):
    fake_cuda(available=False)
    with pytest.raises(runtime.CudaUnusableError) as err:
        runtime.check_cuda_usable(["3"])
    message = str(err.value)
    assert "GPU(s) 3" in message and "driver 535.104" in message and "CUDA 13.0" in message
    assert "`make install DEVICE=gpu TORCH_INDEX=" in message  # pasted, it keeps faiss-gpu


def test_a_cpu_only_torch_build_with_a_claimed_gpu_fails(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", None)
    with pytest.raises(runtime.CudaUnusableError, match="CPU-only build"):
        runtime.check_cuda_usable(["0"])
    runtime.check_cuda_usable([])  # no claim: the CPU is where the job belongs


def test_a_gpu_without_kernels_in_the_wheel_fails(fake_cuda):
    fake_cuda(capability=(7, 0), arch=("sm_80", "sm_90"))
    with pytest.raises(runtime.CudaUnusableError, match=r"capability 7\.0\) has no kernels"):
        runtime.check_cuda_usable(["0"])
    fake_cuda(capability=(8, 6), arch=("sm_80", "sm_90"))  # sm_80 cubins run on sm_86
    runtime.check_cuda_usable(["0"])


def test_kernel_compatibility_rules():
    assert runtime._has_kernels((8, 6), ["sm_80"])
    assert not runtime._has_kernels((9, 0), ["sm_80", "sm_86"])
    assert runtime._has_kernels((12, 0), ["sm_90", "compute_90"])  # PTX JIT-compiles forward
    assert runtime._has_kernels((9, 0), ["sm_90a"])
    assert not runtime._has_kernels((7, 5), ["sm_80", "compute_80"])


def test_half_precision_falls_back_to_fp16_without_native_bf16(fake_cuda):
    fake_cuda(bf16=True)
    assert runtime.resolve_dtype("auto") == torch.bfloat16
    fake_cuda(bf16=False)
    assert runtime.half_dtype() == torch.float16
    assert runtime.resolve_dtype("auto") == torch.float16
    assert runtime.resolve_dtype("bfloat16") == torch.float16
    assert runtime.resolve_dtype("float32") == torch.float32


def test_cpu_computes_in_float32():
    assert runtime.resolve_dtype("auto") == torch.float32


def test_the_device_record_keeps_reserved_beside_allocated_gpu_memory(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "NVIDIA H200")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda *a: 3 * 2**30)
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda *a: 4 * 2**30)
    record = runtime.device_record()
    assert record["peak_gpu_mem_mb"] == 3072.0 and record["peak_gpu_reserved_mb"] == 4096.0
