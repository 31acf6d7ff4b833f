"""The GPU allocator, with fake ids: no GPU needed."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from ragtune import gpu

CLAIM_SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    from ragtune import gpu
    claim = gpu.claim(int(sys.argv[1]), timeout=60, poll=0.05)
    print(os.environ["CUDA_VISIBLE_DEVICES"], flush=True)
    time.sleep(float(sys.argv[2]))
    """
)


@pytest.fixture
def fake_pool(tmp_path, monkeypatch):
    monkeypatch.setenv(gpu.POOL_ENV, "0,1,2,3")
    monkeypatch.setenv(gpu.LOCK_DIR_ENV, str(tmp_path / "locks"))
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    # claim() exports CUDA_VISIBLE_DEVICES itself. Setting it here first makes monkeypatch
    # record its original state and restore it afterwards: a leaked "7" once made every job
    # of the later workflow test queue for one fake GPU.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    yield tmp_path
    for held in gpu._HELD:
        held.release()
    gpu._HELD.clear()


def _spawn(n, hold):
    return subprocess.Popen(
        [sys.executable, "-c", CLAIM_SCRIPT, str(n), str(hold)],
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )


def test_concurrent_claims_never_share_an_id(fake_pool):
    procs = [_spawn(1, 1.5) for _ in range(4)]
    ids = [p.stdout.readline().strip() for p in procs]
    for p in procs:
        p.wait(timeout=30)
    assert sorted(ids) == ["0", "1", "2", "3"]


def test_multi_gpu_claims_are_disjoint_and_wait_for_free_ids(fake_pool):
    first, second = _spawn(2, 1.0), _spawn(2, 1.0)
    a = set(first.stdout.readline().strip().split(","))
    b = set(second.stdout.readline().strip().split(","))
    assert len(a) == len(b) == 2 and not a & b
    # a third job must wait until one of them ends, then gets a full set of 2
    start = time.monotonic()
    third = _spawn(2, 0)
    c = set(third.stdout.readline().strip().split(","))
    assert len(c) == 2 and time.monotonic() - start > 0.3
    for p in (first, second, third):
        p.wait(timeout=30)


def test_lock_is_released_when_holder_is_killed(fake_pool, monkeypatch):
    monkeypatch.setenv(gpu.POOL_ENV, "7")
    holder = _spawn(1, 60)
    assert holder.stdout.readline().strip() == "7"
    with pytest.raises(TimeoutError):
        gpu.claim(1, timeout=0.3, poll=0.05)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    claim = gpu.claim(1, timeout=5, poll=0.05)
    assert claim.ids == ["7"] and os.environ["CUDA_VISIBLE_DEVICES"] == "7"
    claim.release()


def test_jobs_without_a_gpu_see_none(fake_pool, monkeypatch):
    """gpu: 0, or a host without GPUs: the job is given no GPU at all, so it cannot land on
    one that the scheduler counts as free."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    assert gpu.claim(0).ids == []
    assert os.environ["CUDA_VISIBLE_DEVICES"] == ""
    monkeypatch.setenv(gpu.POOL_ENV, "")
    assert gpu.claim(1).ids == []
    assert os.environ["CUDA_VISIBLE_DEVICES"] == ""


def test_without_nvidia_smi_the_pool_comes_from_the_device_nodes(monkeypatch):
    monkeypatch.delenv(gpu.POOL_ENV, raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(gpu, "_nvidia_smi_ids", lambda: None)
    monkeypatch.setattr(
        gpu.glob, "glob", lambda _: ["/dev/nvidia10", "/dev/nvidia2", "/dev/nvidiactl"]
    )
    assert gpu.visible_gpu_ids() == ["2", "10"]


def test_slurm_bound_gpus_are_used_as_they_are(fake_pool, monkeypatch):
    """A job the SLURM executor submitted sees exactly the GPUs it asked for: no lock."""
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.setenv(gpu.POOL_ENV, "3")
    claim = gpu.claim(1)
    assert claim.ids == ["3"] and not claim.files
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3"


def test_inside_a_slurm_allocation_jobs_claim_distinct_gpus(fake_pool, monkeypatch):
    """salloc / sbatch + the local profile: each job sees the allocation's 4 GPUs, and two
    jobs must not both take GPU 0. Locks live in the allocation's own folder."""
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.delenv(gpu.LOCK_DIR_ENV)
    first, second = _spawn(1, 1.5), _spawn(1, 1.5)
    ids = {first.stdout.readline().strip(), second.stdout.readline().strip()}
    for p in (first, second):
        p.wait(timeout=30)
    assert len(ids) == 2 and ids <= {"0", "1", "2", "3"}
    assert gpu.lock_dir().name.endswith("-slurm42")
    monkeypatch.setenv("SLURM_JOB_ID", "43")
    assert gpu.lock_dir().name.endswith("-slurm43")


def test_slurm_granted_but_unbound_gpus_are_read_from_slurm_job_gpus(fake_pool, monkeypatch):
    """gres.conf without File=: SLURM grants GPUs 5 and 6 but sets no CUDA_VISIBLE_DEVICES.
    The job takes what it was granted, in nvidia-smi's numbering, not the node's GPU 0."""
    monkeypatch.setenv("SLURM_JOB_ID", "44")
    monkeypatch.delenv(gpu.POOL_ENV)
    monkeypatch.setenv("SLURM_JOB_GPUS", "5,6")
    monkeypatch.setattr(gpu, "_nvidia_smi_ids", lambda: [str(i) for i in range(8)])
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    claim = gpu.claim(2)
    assert claim.ids == ["5", "6"] and os.environ["CUDA_VISIBLE_DEVICES"] == "5,6"
    assert os.environ["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.setenv("SLURM_STEP_GPUS", "7")  # inside an srun step, the step's own
    assert gpu.visible_gpu_ids() == ["7"]


def test_a_slurm_job_that_would_guess_its_gpus_fails_naming_the_fix(fake_pool, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "45")
    monkeypatch.delenv(gpu.POOL_ENV)
    for var in gpu.SLURM_GPU_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(gpu, "_nvidia_smi_ids", lambda: [str(i) for i in range(8)])
    with pytest.raises(gpu.UnboundSlurmGpusError, match="SLURM_JOB_GPUS.*File= in gres.conf"):
        gpu.claim(1)
    assert gpu.claim(0).ids == []  # a CPU job is never refused
    monkeypatch.setattr(gpu, "_nvidia_smi_ids", lambda: [])
    monkeypatch.setattr(gpu, "_device_node_ids", lambda: [])
    assert gpu.claim(1).ids == []  # and a node without GPUs runs on the CPU, as anywhere


RANK_SCRIPT = textwrap.dedent(
    """
    import os, subprocess, sys, time
    from ragtune import gpu
    if sys.argv[1] == "launcher":
        gpu.claim(1, timeout=60, poll=0.05)
        rank = subprocess.Popen([sys.executable, __file__, "rank"], stdout=sys.stdout)
        time.sleep(60)
    else:
        gpu.hold_for_ranks()
        print("rank", os.getpid(), flush=True)
        time.sleep(60)
    """
)


def test_ranks_keep_their_gpus_when_the_launcher_dies(fake_pool, monkeypatch, tmp_path):
    monkeypatch.setenv(gpu.POOL_ENV, "5")
    script = tmp_path / "ranks.py"
    script.write_text(RANK_SCRIPT)
    launcher = subprocess.Popen(
        [sys.executable, str(script), "launcher"], stdout=subprocess.PIPE, text=True
    )
    rank_pid = int(launcher.stdout.readline().split()[1])
    launcher.send_signal(signal.SIGKILL)
    launcher.wait(timeout=10)
    # The launcher's lock is gone, but its rank still computes on GPU 5.
    with pytest.raises(TimeoutError):
        gpu.claim(1, timeout=0.5, poll=0.05)
    os.kill(rank_pid, signal.SIGKILL)
    time.sleep(0.2)
    claim = gpu.claim(1, timeout=5, poll=0.05)
    assert claim.ids == ["5"]
    claim.release()


def test_asking_for_more_gpus_than_visible_is_an_error(fake_pool):
    with pytest.raises(RuntimeError, match="gpu=5 but only 4"):
        gpu.claim(5)
