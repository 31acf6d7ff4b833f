"""ragtune.slurm on recorded scontrol output and fake jobs: what fits, which status command,
and the sacct shim. tests/test_slurm.py runs the same checks against a real SLURM."""

import subprocess
from types import SimpleNamespace

import pytest

from ragtune import slurm

NODES = """\
NodeName=g1 Arch=x86_64 CPUTot=32 RealMemory=256000 Gres=gpu:a100:8(S:0-1) Partitions=gpu,all
NodeName=g2 Arch=x86_64 CPUTot=128 RealMemory=1024000 Gres=gpu:h100:4 Partitions=gpu
NodeName=c1 Arch=x86_64 CPUTot=64 RealMemory=128000 Gres=(null) Partitions=cpu,all
"""
PARTITIONS = "PartitionName=cpu Default=YES Nodes=c1\nPartitionName=gpu Default=NO Nodes=g[1-2]\n"
NO_ACCOUNTING = {"MinJobAge": "300 sec", "AccountingStorageType": "accounting_storage/none"}
ACCOUNTING = {
    "MinJobAge": "300 sec",
    "AccountingStorageType": "accounting_storage/slurmdbd",
    "AccountingStorageEnforce": "associations,limits",
}


def cluster(config=NO_ACCOUNTING):
    return slurm.Cluster(
        slurm.parse_nodes(NODES), slurm.default_partition(PARTITIONS), dict(config)
    )


def job(rule, threads=1, **resources):
    return SimpleNamespace(
        rule=SimpleNamespace(name=rule), threads=threads, resources=resources, is_local=False
    )


def test_nodes_and_their_gres_are_read_from_scontrol():
    g1, g2, c1 = slurm.parse_nodes(NODES)
    assert (g1.cpus, g1.mem_mb, g1.gpus, g1.partitions) == (32, 256000, {"a100": 8}, ("gpu", "all"))
    assert g2.gpu_count("h100") == 4 and g2.gpu_count("a100") == 0 and c1.gpus == {}
    assert slurm.parse_gres("gpu:4,gpu:t4:2(S:0),shard:8") == {"": 4, "t4": 2}
    assert slurm.default_partition(PARTITIONS) == "cpu"
    assert (
        slurm.seconds(slurm.parse_config("MinJobAge               = 300 sec")["MinJobAge"]) == 300
    )


def test_a_job_asks_as_the_plugin_builds_its_sbatch_options():
    assert slurm.ask_of("a", {"cpus_per_task": 8, "mem_mb": 100}, threads=2).cpus == 8
    gpu = slurm.ask_of("b", {"gpu": 2, "cpus_per_gpu": 8, "mem_mb_per_cpu": 1000}, threads=2)
    assert (gpu.cpus, gpu.mem_mb, gpu.gpus, gpu.cpus_per_gpu) == (16, 16000, 2, 8)
    # cpus_per_gpu means nothing without a GPU: the rule's threads are asked for instead.
    assert slurm.ask_of("c", {"cpus_per_gpu": 8}, threads=3).cpus == 3


def test_a_job_no_node_can_hold_fails_naming_rule_ask_and_largest_node():
    jobs = [
        job("chunk_corpus", cpus_per_task=8, mem_mb=16000),  # fits c1
        job(
            "train_joint",
            slurm_partition="gpu",
            gpu=1,
            gpu_model="a100",
            cpus_per_gpu=4,
            mem_mb=300000,
        ),  # more memory than g1, the only a100 node
        job("evaluate", slurm_partition="gpu", gpu=1, gpu_model="v100", mem_mb=1000),
        job("retrieve", slurm_partition="fast", mem_mb=1000),
    ]
    with pytest.raises(slurm.SlurmPreflightError) as err:
        slurm.preflight(jobs, SimpleNamespace(), _no_shim_folder(), cluster(), say=lambda _: None)
    text = str(err.value)
    assert "chunk_corpus" not in text and "nothing was submitted" in text
    assert (
        "rule train_joint asks for 4 CPUs, 300000 MB, 1 GPU(s) of model a100 on partition "
        "gpu, but its largest node is g1 (32 CPUs, 256000 MB, a100:8)"
    ) in text
    assert "rule evaluate asks for" in text and "of model v100" in text
    assert "rule retrieve: partition 'fast' has no node (partitions: all, cpu, gpu)" in text


def test_cpus_per_gpu_that_would_idle_gpus_of_an_8_gpu_node_warn():
    said = []
    jobs = [
        job(
            "train_generator",
            slurm_partition="gpu",
            gpu=1,
            gpu_model="a100",
            cpus_per_gpu=8,
            mem_mb=1000,
        )
    ]
    slurm.preflight(jobs, SimpleNamespace(), _no_shim_folder(), cluster(), say=said.append)
    warning = next(s for s in said if "warning" in s)
    assert "8 CPUs per GPU x 8 GPUs exceeds node g1's 32 CPUs" in warning
    assert "at most 4 of its GPUs" in warning and "lower cpus_per_gpu to 4" in warning


def test_the_status_command_is_one_that_sees_jobs_end():
    sc = slurm.status_command
    assert sc(NO_ACCOUNTING, "sacct", 40, True)[0] == "squeue"  # sacct fails on every query
    assert sc(ACCOUNTING, "squeue", 40, True)[0] == "squeue"
    short = {**ACCOUNTING, "MinJobAge": "60 sec"}
    assert sc(short, "squeue", 40, True)[0] == "sacct"  # what the plugin falls back to
    with pytest.raises(slurm.SlurmPreflightError, match="MinJobAge of at least 120 s.*to 20"):
        sc({**NO_ACCOUNTING, "MinJobAge": "60 sec"}, "squeue", 40, True)
    assert sc({**NO_ACCOUNTING, "MinJobAge": "60 sec"}, "squeue", 20, True)[0] == "squeue"


def test_the_chosen_status_command_is_written_to_the_plugins_settings():
    settings = SimpleNamespace(status_command="sacct", init_seconds_before_status_checks=40)
    said = []
    slurm.preflight([], settings, _no_shim_folder(), cluster(), say=said.append)
    assert settings.status_command == "squeue"
    assert said == [
        "ragtune: SLURM job status through squeue (MinJobAge=300 s, accounting storage off)"
    ]


def test_a_cluster_that_enforces_accounts_needs_slurm_account():
    jobs = [job("embed_corpus", slurm_account=""), job("evaluate", slurm_account="lab")]
    with pytest.raises(
        slurm.SlurmPreflightError,
        match="rules embed_corpus have none: set slurm_account under default-resources",
    ):
        slurm.preflight(
            jobs, SimpleNamespace(), _no_shim_folder(), cluster(ACCOUNTING), say=lambda _: None
        )


def _no_shim_folder():
    import tempfile
    from pathlib import Path

    return Path(tempfile.mkdtemp()) / "bin"


def test_sacct_cancelled_by_uid_reads_as_cancelled():
    text = "101|COMPLETED\n102|CANCELLED by 0\n103|CANCELLED by 1000|x\n104|FAILED\n"
    assert slurm.normalise_sacct(text) == (
        "101|COMPLETED\n102|CANCELLED\n103|CANCELLED|x\n104|FAILED\n"
    )


def test_the_sacct_shim_wraps_the_real_sacct_on_path(tmp_path, monkeypatch):
    real = tmp_path / "real"
    real.mkdir()
    (real / "sacct").write_text('#!/bin/sh\necho "$@" >&2\nprintf "7|CANCELLED by 0\\n"\n')
    (real / "sacct").chmod(0o755)
    monkeypatch.setenv("PATH", f"{real}:/usr/bin:/bin")
    shim = slurm.install_sacct_shim(tmp_path / "shim")
    assert shim is not None and shim.parent == tmp_path / "shim"
    out = subprocess.run(["sacct", "-X", "--parsable2"], capture_output=True, text=True)
    assert out.stdout == "7|CANCELLED\n" and out.stderr.strip() == "-X --parsable2"
    # Installed again (a second run in this process): still one shim, first on PATH.
    slurm.install_sacct_shim(tmp_path / "shim")
    import os

    assert os.environ["PATH"].split(os.pathsep).count(str(tmp_path / "shim")) == 1
