"""The planning-time checks run once per config and input files, not at every parse."""

import os
import shutil

import pytest

from helpers import tiny_config
from ragtune import preflight


@pytest.fixture
def cfg(mirror, tmp_path):
    from snakemake.utils import validate

    from helpers import REPO

    c = tiny_config(mirror, tmp_path / "results")
    validate(c, str(REPO / "config/schema.yaml"))
    return c


def test_config_check_is_skipped_when_nothing_it_reads_changed(cfg, tmp_path, monkeypatch):
    from ragtune import config as ragtune_config

    calls = []
    real = ragtune_config.check
    monkeypatch.setattr(ragtune_config, "check", lambda c: calls.append(1) or real(c))
    assert preflight.check_config(cfg, tmp_path) is True
    assert preflight.check_config(cfg, tmp_path) is False  # stamped: not again
    assert len(calls) == 1
    # A data file it read changes (here: its mtime): checked again.
    data = cfg["datasets"]["hotpotqa"]["source"]["files"]["train"]
    copy = tmp_path / "train.jsonl.gz"
    shutil.copyfile(data, copy)
    cfg["datasets"]["hotpotqa"]["source"]["files"]["train"] = str(copy)
    assert preflight.check_config(cfg, tmp_path) is True
    os.utime(copy, ns=(1, 1))
    assert preflight.check_config(cfg, tmp_path) is True
    # The config's content changes: checked again.
    cfg["seed"] = 99
    assert preflight.check_config(cfg, tmp_path) is True
    assert len(calls) == 4


def test_a_failing_check_leaves_no_stamp(cfg, tmp_path):
    from ragtune.config import ConfigError

    cfg["pipelines"]["minilm-smollm2"]["embedder"] = "nope"
    for _ in range(2):  # fails every time: a failure is never stamped
        with pytest.raises(ConfigError):
            preflight.check_config(cfg, tmp_path)
    assert not (tmp_path / preflight.STAMPS).exists()
