"""Atomic writes: nothing half-written, and the modes any other write would get."""

import os
import stat

import pytest

from ragtune.io import atomic_path


@pytest.fixture
def umask():
    old = os.umask(0o022)
    yield 0o022
    os.umask(old)


def _mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_outputs_follow_the_umask_not_owner_only(tmp_path, umask):
    with atomic_path(tmp_path / "metrics.json") as tmp:
        tmp.write_text("{}")
    with atomic_path(tmp_path / "model", is_dir=True) as tmp:
        (tmp / "weights.bin").write_bytes(b"x")
    assert _mode(tmp_path / "metrics.json") == 0o644
    assert _mode(tmp_path / "model") == 0o755
    os.umask(0o077)
    with atomic_path(tmp_path / "private.json") as tmp:
        tmp.write_text("{}")
    assert _mode(tmp_path / "private.json") == 0o600


def test_a_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "out.json") as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
