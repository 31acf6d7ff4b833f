"""`make gpu-check` on a CPU-only host: the CUDA paths are SKIPPED, the rest run, exit 0."""

import io
import subprocess
import sys

from helpers import REPO
from ragtune import gpu_check
from ragtune.gpu_check import Skipped


def test_on_a_cpu_host_it_runs_what_it_can_and_skips_the_cuda_paths():
    """Snakemake made unimportable: a GPU node may have only the libraries."""
    no_snakemake = (
        "import sys, runpy; sys.modules['snakemake'] = None; "
        "runpy.run_module('ragtune.gpu_check', run_name='__main__')"
    )
    out = subprocess.run(
        [sys.executable, "-c", no_snakemake],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    lines = {line[9:43].strip(): line[:8].strip() for line in out.stdout.splitlines()[:-1]}
    assert lines == {
        "GPU and torch build": "SKIPPED",
        "bf16 / fp16 choice": "SKIPPED",
        "QLoRA NF4 step, checkpointing": "PASS",
        "QLoRA adapter, dequantized base": "PASS",
        "joint RAG-Token step": "PASS",
        "cached MNRL = MNRL, dropout on": "PASS",
        "faiss GPU OPQ+IVF-PQ build": "SKIPPED",
        "batched generation": "PASS",
        "RAG decoding, 4-bit + adapter": "PASS",
        "joint step: 4-bit = dequantized": "PASS",
        "PDist / LOOP, 4-bit judge, docs": "PASS",
        "kill and resume = uninterrupted": "PASS",
        "fp16 with loss scaling": "SKIPPED",
        "torchrun launch, 1 NCCL rank": "SKIPPED",
        "NCCL all-reduce, 2 ranks": "SKIPPED",
    }
    assert out.stdout.splitlines()[-1] == "OK: 0 of 15 paths failed"


def test_any_failed_path_fails_the_check_and_the_others_still_run():
    def broken():
        raise AssertionError("gradients differ")

    def skipped():
        raise Skipped("no CUDA GPU visible")

    out = io.StringIO()
    status = gpu_check.run([("a", broken), ("b", skipped), ("c", lambda: "fine")], out=out)
    lines = out.getvalue().splitlines()
    assert status == 1
    assert lines[0].startswith("FAIL") and "AssertionError: gradients differ" in lines[0]
    assert lines[1].startswith("SKIPPED") and lines[2].startswith("PASS")
    assert lines[-1] == "FAIL: 1 of 3 paths failed"


def test_the_adapter_check_sees_an_unmerged_adapter_in_bf16(tmp_path, monkeypatch):
    """What the check finds on a GPU, where ``auto`` is bf16: the dequantized base keeps the
    adapter unmerged, and answers as the 4-bit base does (bf16 compute on CPU stands in)."""
    import torch

    from ragtune import runtime

    resolve = runtime.resolve_dtype
    monkeypatch.setattr(
        runtime, "resolve_dtype", lambda name: torch.bfloat16 if name == "auto" else resolve(name)
    )
    assert gpu_check.check_adapter_bases(tmp_path).startswith("bfloat16 base, adapter unmerged")


def _faiss_with_a_gpu(monkeypatch, transfer):
    """faiss-cpu dressed as a faiss-gpu build that sees one GPU, with ``transfer`` as its
    cpu-to-GPU copy."""
    import faiss

    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 1, raising=False)
    monkeypatch.setattr(
        faiss, "GpuMultipleClonerOptions", lambda: type("O", (), {})(), raising=False
    )
    monkeypatch.setattr(faiss, "index_cpu_to_all_gpus", transfer, raising=False)
    monkeypatch.setattr(faiss, "index_gpu_to_cpu", lambda index: index, raising=False)


def test_the_faiss_path_fails_when_the_index_stays_on_the_cpu(tmp_path, monkeypatch):
    def transfer(index, options):
        raise RuntimeError("Error: 'ngpus > 0' failed: no GPU implementation")

    _faiss_with_a_gpu(monkeypatch, transfer)
    out = io.StringIO()
    status = gpu_check.run([("faiss", lambda: gpu_check.check_faiss_gpu(tmp_path))], out=out)
    assert status == 1, out.getvalue()
    assert "FaissGpuError" in out.getvalue() and "could not move it to the GPU" in out.getvalue()


def test_the_faiss_path_passes_only_through_the_gpu_transfer(tmp_path, monkeypatch):
    """The same check passes when the transfer works (here it hands the CPU index back), and
    it went through the transfer for the build and for the search. (A pre-transform that trains
    in a second stands in for OPQ, whose k-means takes a minute on 2 cores.)"""
    moved = []

    def transfer(index, options):
        moved.append(type(index).__name__)
        return index

    _faiss_with_a_gpu(monkeypatch, transfer)
    detail = gpu_check.check_faiss_gpu(tmp_path, n=5000, factory="PCA32,IVF16,Flat")
    assert detail.startswith("PCA32,IVF16,Flat trained and searched on the GPU"), detail
    assert moved == ["IndexPreTransform", "IndexPreTransform"]


def test_a_gpu_with_a_cpu_only_faiss_fails_the_check(tmp_path, monkeypatch):
    import faiss
    import torch

    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 0, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    out = io.StringIO()
    assert gpu_check.run([("faiss", lambda: gpu_check.check_faiss_gpu(tmp_path))], out=out) == 1
    assert "has no GPU support" in out.getvalue()


def test_without_the_packaged_embedder_a_random_one_of_its_shape_stands_in(tmp_path, monkeypatch):
    from ragtune import models

    def not_installed(dist_name):
        raise models.ModelSpecError(f"package:{dist_name}: not installed")

    monkeypatch.setattr(models, "package_root", not_installed)
    spec = gpu_check._embedder_spec(tmp_path)
    assert spec == str(tmp_path / "minilm")
    embedder = models.load_embedder(spec, device="cpu")
    assert embedder.get_embedding_dimension() == 384
    assert "gradients agree" in gpu_check.check_cached_mnrl(tmp_path)


def test_the_fp16_path_trains_with_loss_scaling_on_the_cpu_too(tmp_path):
    """The GPU-only path run here with float16 compute on the CPU's 4-bit kernels."""
    assert "float16 compute, loss scaling" in gpu_check.check_fp16_scaling(tmp_path, False)


def test_the_launch_path_runs_one_rank_through_ragtunes_torchrun(tmp_path):
    """The same launch over gloo (NCCL needs a GPU); a rank that joins another backend
    fails the check."""
    assert "1 gloo rank" in gpu_check.run_launch(tmp_path, "gloo")
    out = io.StringIO()
    assert gpu_check.run([("launch", lambda: gpu_check.run_launch(tmp_path, "nccl"))], out=out)
    assert "one nccl rank gave {'backend': 'gloo'" in out.getvalue()


def test_the_rag_decoding_path_fails_when_decoding_departs_from_greedy(tmp_path, monkeypatch):
    from ragtune.evaluation import rag_decoding

    monkeypatch.setattr(
        rag_decoding, "rag_sequence_batch", lambda model, tok, groups, *a: ["x"] * len(groups)
    )
    out = io.StringIO()
    assert gpu_check.run([("rag", lambda: gpu_check.check_rag_decoding(tmp_path))], out=out)
    assert "!= greedy" in out.getvalue()
