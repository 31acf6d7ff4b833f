"""Claim GPU ids for one Snakemake job before CUDA starts.

Snakemake counts ``resources: gpu`` but never says *which* GPUs a job may use, so two jobs on
an 8-GPU node would both land on GPU 0. Each job therefore claims ids itself: one ``flock``
per GPU in a shared lock folder. The kernel drops a flock when its holder dies, even on
SIGKILL, so a killed job never strands a GPU.

- A job that asks for no GPU is given none (``CUDA_VISIBLE_DEVICES=""``): it must not sit on
  a GPU that the scheduler counted as free.
- Under SLURM a job submitted on its own (the SLURM executor) sees exactly the GPUs it asked
  for, bound by the scheduler: nothing to claim. Where SLURM grants GPUs without binding them
  (gres.conf without ``File=``, so no ``CUDA_VISIBLE_DEVICES``), the ids it granted are read
  from ``SLURM_STEP_GPUS`` / ``SLURM_JOB_GPUS``; a SLURM job with neither may not guess, since
  two jobs on one node would both take GPU 0, and fails with what to fix.
- Inside one allocation that runs many jobs (``salloc`` / ``sbatch`` + the local profile) the
  job sees the whole allocation's GPUs and claims from them like on any node, in a lock folder
  of that allocation.
- The ranks that ``torchrun`` starts take a shared lock on their GPUs' rank locks
  (:func:`hold_for_ranks`), and a GPU counts as free only when no rank holds it: if only the
  launching process dies, its GPUs stay taken while its ranks run.
"""

from __future__ import annotations

import fcntl
import glob
import logging
import os
import re
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
    """The lock folder: one per user, and one per SLURM allocation inside an allocation (its
    GPU ids are the allocation's, not the node's)."""
    name = f"ragtune-gpu-locks-{os.getuid()}"
    if os.environ.get("SLURM_JOB_ID"):
        name += f"-slurm{os.environ['SLURM_JOB_ID']}"
    path = Path(os.environ.get(LOCK_DIR_ENV, Path(tempfile.gettempdir()) / name))
    path.mkdir(parents=True, exist_ok=True)
    return path


def nvidia_smi(field: str) -> list[str] | None:
    """One ``nvidia-smi --query-gpu`` field of every GPU, or None where nvidia-smi is missing
    or fails. It reads the driver, not CUDA, so it is safe before CUDA starts."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={field}", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return None
    return [line.strip() for line in out.splitlines() if line.strip()]


def _nvidia_smi_ids() -> list[str] | None:
    return nvidia_smi("index")


def _device_node_ids() -> list[str]:
    """GPU ids from the driver's device nodes, for hosts (containers) without nvidia-smi."""
    nodes = (re.fullmatch(r"/dev/nvidia(\d+)", p) for p in glob.glob("/dev/nvidia[0-9]*"))
    return sorted((m.group(1) for m in nodes if m), key=int)


def _ids(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip() and v.strip() != "-1"]


# The GPUs SLURM granted a job (physical ids, as nvidia-smi numbers them), for steps that
# SLURM did not bind through CUDA_VISIBLE_DEVICES.
SLURM_GPU_VARS = ("SLURM_STEP_GPUS", "SLURM_JOB_GPUS")


def slurm_granted_ids() -> list[str] | None:
    for var in SLURM_GPU_VARS:
        value = os.environ.get(var)
        if value:
            return _ids(value)
    return None


def visible_gpu_ids() -> list[str]:
    """The ids this job may choose from, without initialising CUDA."""
    for var in (POOL_ENV, "CUDA_VISIBLE_DEVICES"):
        value = os.environ.get(var)
        if value is not None:
            return _ids(value)
    if under_slurm() and (granted := slurm_granted_ids()) is not None:
        # CUDA numbers GPUs fastest first unless told otherwise; SLURM's ids are nvidia-smi's
        # (PCI bus order), so CUDA must number them the same way.
        os.environ["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
        return granted
    ids = _nvidia_smi_ids()
    return ids if ids is not None else _device_node_ids()


class UnboundSlurmGpusError(RuntimeError):
    """A SLURM job that would have to guess which of the node's GPUs are its own."""


def _unbound_under_slurm() -> bool:
    bound = POOL_ENV in os.environ or "CUDA_VISIBLE_DEVICES" in os.environ
    return under_slurm() and not bound and slurm_granted_ids() is None


def under_slurm() -> bool:
    return "SLURM_JOB_ID" in os.environ


def hide_gpus() -> None:
    os.environ["CUDA_VISIBLE_DEVICES"] = ""


def _rank_lock(folder: Path, gpu_id: str) -> Path:
    return folder / f"gpu{gpu_id}.ranks.lock"


def _ranks_running(folder: Path, gpu_id: str) -> bool:
    """True while some torchrun rank still holds ``gpu_id`` (its launcher may be gone)."""
    with open(_rank_lock(folder, gpu_id), "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
        return False


def claim(n: int, *, timeout: float | None = None, poll: float = 1.0) -> Claim:
    """Claim ``n`` distinct GPU ids and export them as ``CUDA_VISIBLE_DEVICES``.

    ``n`` 0 hides every GPU. Returns an empty claim on a host without GPUs, and the visible ids
    unclaimed where SLURM bound exactly ``n`` GPUs to this job. Waits (polling, with a log
    line) while other jobs hold the ids; raises ``TimeoutError`` after ``timeout``.
    """
    if n <= 0:
        hide_gpus()
        return Claim([])
    if _unbound_under_slurm() and visible_gpu_ids():
        raise UnboundSlurmGpusError(
            f"this SLURM job (SLURM_JOB_ID={os.environ['SLURM_JOB_ID']}) asks for gpu={n}, but "
            "SLURM set neither CUDA_VISIBLE_DEVICES nor SLURM_JOB_GPUS, so the node's GPUs "
            "it was granted are unknown and another job may hold them: submit with the "
            "profile's `gpu` resource (sbatch --gpus), or have the site list each GPU with "
            "File= in gres.conf so that SLURM binds them"
        )
    pool = visible_gpu_ids()
    if not pool:
        log.info("no GPU visible: running on CPU")
        hide_gpus()
        return Claim([])
    if n > len(pool):
        raise RuntimeError(
            f"this job asks for gpu={n} but only {len(pool)} GPU(s) are visible ({pool}); "
            "lower the rule's gpu resource in the config"
        )
    if under_slurm() and len(pool) == n:
        log.info("SLURM bound GPU(s) %s to this job", ",".join(pool))
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(pool)
        return Claim(list(pool))
    folder = lock_dir()
    deadline = None if timeout is None else time.monotonic() + timeout
    waited = False
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
            if _ranks_running(folder, gpu_id):
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
        if not waited:
            log.warning("waiting for %d free GPU(s) of %s (%s)", n, pool, folder)
            waited = True
        time.sleep(poll)


def hold_for_ranks() -> Claim:
    """In a torchrun rank: hold a shared lock on each of the job's GPUs (its
    ``CUDA_VISIBLE_DEVICES``) until this rank exits, so that no other job claims them while
    the rank runs, even if its launcher died."""
    ids = [v for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    held = Claim(ids)
    if not ids:
        return held
    folder = lock_dir()
    for gpu_id in ids:
        fh = open(_rank_lock(folder, gpu_id), "a")  # noqa: SIM115
        fcntl.flock(fh, fcntl.LOCK_SH)
        held.files.append(fh)
    _HELD.append(held)
    return held


def node_gpu_count() -> int:
    """GPUs this host (or allocation) shows, for planning-time checks."""
    return len(visible_gpu_ids())
