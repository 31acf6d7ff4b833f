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


def test_no_claim_under_slurm_or_without_gpus(fake_pool, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    assert gpu.claim(2).ids == []
    monkeypatch.delenv("SLURM_JOB_ID")
    monkeypatch.setenv(gpu.POOL_ENV, "")
    assert gpu.claim(1).ids == []
    assert "CUDA_VISIBLE_DEVICES" not in os.environ
    assert gpu.claim(0).ids == []


def test_asking_for_more_gpus_than_visible_is_an_error(fake_pool):
    with pytest.raises(RuntimeError, match="gpu=5 but only 4"):
        gpu.claim(5)
