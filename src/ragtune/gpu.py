"""Claim GPU ids for one Snakemake job before CUDA starts.

Snakemake counts ``resources: gpu`` but never says *which* GPUs a job may use, so two jobs on
an 8-GPU node would both land on GPU 0. Each job therefore claims ids itself: one ``flock``
per GPU in a shared lock folder. The kernel drops a flock when its holder dies, even on
SIGKILL, so a killed job never strands a GPU. Under SLURM the scheduler binds GPUs already,
and where there are no GPUs there is nothing to claim.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

# Override of the visible pool, e.g. "0,1,2,3". Tests use fake ids through it.
POOL_ENV = "RAGTUNE_GPU_IDS"
LOCK_DIR_ENV = "RAGTUNE_GPU_LOCK_DIR"

# The claims of this process live as long as the process: the open files hold the locks.
_HELD: list[Claim] = []


@dataclass
class Claim:
    ids: list[str]
    files: list = field(default_factory=list, repr=False)

    def release(self) -> None:
        for fh in self.files:
            fh.close()
        self.files.clear()


def lock_dir() -> Path:
    default = Path(tempfile.gettempdir()) / f"ragtune-gpu-locks-{os.getuid()}"
    path = Path(os.environ.get(LOCK_DIR_ENV, default))
    path.mkdir(parents=True, exist_ok=True)
    return path


def visible_gpu_ids() -> list[str]:
    """The ids this job may choose from, without initialising CUDA."""
    for var in (POOL_ENV, "CUDA_VISIBLE_DEVICES"):
        value = os.environ.get(var)
        if value is not None:
            return [v.strip() for v in value.split(",") if v.strip() and v.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def under_slurm() -> bool:
    return "SLURM_JOB_ID" in os.environ


def claim(n: int, *, timeout: float | None = None, poll: float = 1.0) -> Claim:
    """Claim ``n`` distinct GPU ids and export them as ``CUDA_VISIBLE_DEVICES``.

    Returns an empty claim when ``n`` is 0, under SLURM, or on a host without GPUs.
    Waits (polling) while other jobs hold the ids; raises ``TimeoutError`` after ``timeout``.
    """
    if n <= 0 or under_slurm():
        return Claim([])
    pool = visible_gpu_ids()
    if not pool:
        log.info("no GPU visible: running on CPU")
        return Claim([])
    if n > len(pool):
        raise RuntimeError(
            f"this job asks for gpu={n} but only {len(pool)} GPU(s) are visible ({pool}); "
            "lower the rule's gpu resource in the config"
        )
    folder = lock_dir()
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        got = Claim([])
        for gpu_id in pool:
            # Held open on purpose: the open file *is* the lock, for the life of the job.
            fh = open(folder / f"gpu{gpu_id}.lock", "a")  # noqa: SIM115
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.close()
                continue
            got.ids.append(gpu_id)
            got.files.append(fh)
            if len(got.ids) == n:
                os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(got.ids)
                _HELD.append(got)
                return got
        # Partial claims are given back so two jobs cannot deadlock holding half each.
        got.release()
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"could not claim {n} GPU(s) from {pool} in {timeout} s")
        time.sleep(poll)
