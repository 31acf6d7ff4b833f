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


def test_files_inside_a_folder_output_follow_the_umask_too(tmp_path, umask):
    """safetensors writes its weights owner-only: a colleague could read every output of a
    run but its models."""
    import torch
    from safetensors.torch import save_file

    with atomic_path(tmp_path / "adapter", is_dir=True) as tmp:
        save_file({"w": torch.zeros(2)}, tmp / "adapter_model.safetensors")
        (tmp / "sub").mkdir(mode=0o700)
        (tmp / "sub" / "x.json").write_text("{}")
        os.chmod(tmp / "sub" / "x.json", 0o600)
    assert _mode(tmp_path / "adapter" / "adapter_model.safetensors") == 0o644
    assert _mode(tmp_path / "adapter" / "sub") == 0o755
    assert _mode(tmp_path / "adapter" / "sub" / "x.json") == 0o644
