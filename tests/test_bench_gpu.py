"""benchmarks/bench_gpu.py on a CPU host: every GPU part SKIPPED with its key present, the memory
plan's figures there; and each GPU job's code run once here on a toy model, so that its first
run on a GPU is not its first run."""

from __future__ import annotations

import json

import pytest
import torch

from benchmarks import bench_gpu
from ragtune import toy


def test_on_a_cpu_host_every_gpu_key_is_skipped_and_the_plan_is_there(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = bench_gpu.main([])
    assert all(result[key] == bench_gpu.SKIPPED for key in bench_gpu.GPU_KEYS)
    assert "train_generator (minilm-llama3)" in result["plan_peak_gb"]
    assert all(0 < gb < 24 for gb in result["plan_peak_gb"].values())
    written = json.loads((bench_gpu.REPO / "benchmarks/out/bench_gpu.json").read_text())
    assert written["memory_rel_error_max"] == bench_gpu.SKIPPED


@pytest.fixture(scope="module")
def toy_folder(tmp_path_factory):
    return toy.save_llama(tmp_path_factory.mktemp("bench-gpu") / "llama")


def test_the_training_jobs_step_on_a_toy_model(toy_folder):
    for job in (
        bench_gpu.ft_gen_job(toy_folder, rows=2, prompt_tokens=24, answer_tokens=4),
        bench_gpu.joint_job(
            toy_folder, 2, 3, prompt_tokens=16, answer_tokens=4, rows_per_forward=2
        ),
    ):
        before = [p.detach().clone() for p in job.model.parameters() if p.requires_grad]
        job.two_steps()
        after = [p for p in job.model.parameters() if p.requires_grad]
        assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
        assert job.optimizer.state  # the states the memory part counts exist


def test_the_generation_jobs_run_on_a_toy_model(toy_folder):
    from ragtune.models import load_generator

    model, tok = load_generator(str(toy_folder), "float32")
    bench_gpu.generation_job(model, rows=2, prompt_tokens=20, new_tokens=3)()
    step, tokens = bench_gpu.rag_decoding_job(model, tok, 2, 3, prompt_tokens=20, new_tokens=3)
    step()
    assert 10 <= tokens <= 60  # the re-tokenized prompt is about as long as asked


def test_memory_summary_extrapolates_per_layer_and_takes_the_worst_error():
    jobs = {
        "train_generator (llama3-8b)": {
            1: {"estimate": 11e9, "allocated": 10e9, "reserved": 12e9},
            2: {"estimate": 10.5e9, "allocated": 10.5e9, "reserved": 12e9},
        }
    }
    out = bench_gpu.summarise_memory(jobs, {"llama3-8b": 32})
    assert out["memory_rel_error_max"] == pytest.approx(0.1)
    assert out["full_depth_peak_gb"]["train_generator (llama3-8b)"] == pytest.approx(25.5)
    assert out["full_depth_fits_24gb"] is False  # 25.5 GB > 0.9 x 24


def test_a_random_generator_is_saved_cut_to_its_depth(toy_folder, tmp_path):
    from transformers import AutoConfig

    folder = bench_gpu.save_random_generator(str(toy_folder), 1, tmp_path / "cut")
    assert AutoConfig.from_pretrained(folder).num_hidden_layers == 1
    job = bench_gpu.ft_gen_job(folder, rows=1, prompt_tokens=8, answer_tokens=2)
    job.step()
