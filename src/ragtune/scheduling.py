"""Planning-time facts about the node a local run schedules on: how many GPUs it really has,
and how many CPU threads each GPU job gets.

Snakemake packs jobs by the ``gpu`` resource the user gives (``--resources gpu=8``) and by
``threads`` against ``--cores``. Both must match the node: a ``gpu`` budget above the node's
GPUs lets jobs start that then wait in :func:`ragtune.gpu.claim` (their wait counted as
training time), and a fixed ``threads: 8`` per GPU job runs fewer GPU jobs than GPUs on a
node with fewer than 8 cores per GPU.
"""

from __future__ import annotations


class GpuBudgetError(ValueError):
    pass


def check_gpu_budget(budget: int | None, visible: int) -> None:
    """``budget``: the run's ``--resources gpu=N`` (None if not given); ``visible``: the GPUs
    this host shows (0 on a CPU-only host, where GPU jobs run on the CPU)."""
    if budget and visible and budget > visible:
        raise GpuBudgetError(
            f"--resources gpu={budget}, but this node has {visible} GPU(s): jobs would start "
            f"and then wait for a GPU that does not exist. Run with --resources gpu={visible} "
            "(or edit `resources: gpu` in your profile)"
        )


def gpu_job_threads(threads: int, job_gpus: int, cores: int | None, budget: int | None) -> int:
    """CPU threads of one job that holds ``job_gpus`` GPUs: the config's ``threads``, but no
    more than its GPUs' share of the node's cores (``cores`` / ``budget`` per GPU), so that
    every GPU can have a job running at once."""
    if not job_gpus or not budget or not cores:
        return threads
    share = max(1, cores // budget) * job_gpus
    return max(1, min(threads, share))
