"""The runner keeps every failed attempt's log, and a GPU rehearsal runs on the CPU."""

import os
from types import SimpleNamespace

import pytest

from ragtune import gpu, runner


def _smk(log):
    return SimpleNamespace(log=[str(log)], resources=SimpleNamespace(gpu=0), threads=1, rule="demo")


def _fail(_smk):
    raise ValueError("attempt went wrong")


def test_each_failed_attempt_keeps_its_log_and_a_success_leaves_only_the_log(tmp_path):
    log = tmp_path / "logs" / "job.log"
    log.parent.mkdir()
    for attempt in (1, 2):
        with pytest.raises(ValueError):
            runner.run(_smk(log), _fail)
        # What Snakemake does before a retry: the declared log goes.
        log.unlink()
        kept = log.with_name(f"job.log.attempt-{attempt}")
        assert "attempt went wrong" in kept.read_text() and "Traceback" in kept.read_text()
    runner.run(_smk(log), lambda smk: None)
    assert "rule finished" in log.read_text() and "went wrong" not in log.read_text()
    assert sorted(p.name for p in log.parent.iterdir()) == [
        "job.log",
        "job.log.attempt-1",
        "job.log.attempt-2",
    ]
    assert "rule finished" not in log.with_name("job.log.attempt-1").read_text()


def test_a_gpu_rehearsal_claims_and_logs_ids_then_runs_on_the_cpu(tmp_path, monkeypatch):
    monkeypatch.setenv(gpu.POOL_ENV, "3")
    monkeypatch.setenv(gpu.LOCK_DIR_ENV, str(tmp_path / "locks"))
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    monkeypatch.setenv(runner.REHEARSE_ENV, "1")
    seen = {}
    smk = _smk(tmp_path / "job.log")
    smk.resources.gpu = 1
    runner.run(smk, lambda _: seen.update(cvd=os.environ["CUDA_VISIBLE_DEVICES"]))
    assert seen["cvd"] == ""  # hidden: this CPU-only torch never sees a GPU
    text = (tmp_path / "job.log").read_text()
    assert "SLURM bound GPU(s) 3" in text and "RAGTUNE_REHEARSE_GPUS=1: running on the CPU" in text
