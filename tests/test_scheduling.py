"""Planning-time checks of a local run against its node: the GPU budget and threads per job."""

import os
import subprocess

import pytest

from helpers import REPO, SNAKEMAKE, tiny_config, write_config
from ragtune import gpu
from ragtune.scheduling import GpuBudgetError, check_gpu_budget, gpu_job_threads


def test_a_gpu_budget_above_the_node_fails_with_the_fix():
    with pytest.raises(GpuBudgetError, match="gpu=8, but this node has 2 GPU.*gpu=2"):
        check_gpu_budget(8, 2)
    check_gpu_budget(2, 2)
    check_gpu_budget(8, 0)  # a CPU-only host: GPU jobs run on its CPU
    check_gpu_budget(None, 2)  # SLURM: the scheduler counts GPUs


def test_gpu_jobs_share_the_node_cores_so_every_gpu_can_be_busy():
    # 32 cores, 8 GPUs: 4 threads per 1-GPU job, 8 per 2-GPU job, never above the config
    assert gpu_job_threads(8, 1, 32, 8) == 4
    assert gpu_job_threads(8, 2, 32, 8) == 8
    assert gpu_job_threads(8, 1, 128, 8) == 8
    assert gpu_job_threads(8, 1, 4, 8) == 1
    # CPU jobs, and runs without a GPU budget (SLURM, cpus_per_gpu decides), keep the config's
    assert gpu_job_threads(8, 0, 32, 8) == 8
    assert gpu_job_threads(8, 1, 32, None) == 8


def test_dry_run_with_more_gpus_than_the_node_has_fails_before_any_job(mirror, tmp_path):
    config = write_config(tiny_config(mirror, tmp_path / "results"), tmp_path / "c.yaml")
    env = {**os.environ, gpu.POOL_ENV: "0,1"}

    def plan(n):
        return subprocess.run(
            [*SNAKEMAKE, "-n", "--cores", "8", "--resources", f"gpu={n}",
             "--configfile", str(config)],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip

    over = plan(8)
    assert over.returncode != 0
    assert "--resources gpu=8, but this node has 2 GPU(s)" in over.stderr + over.stdout
    assert plan(2).returncode == 0
