"""The shipped SLURM profile on a real one-node SLURM (Debian's slurm-wlm 22.05 and munge).

One node with 2 CPUs, 20 GB and 8 fake GPUs (`gpu:a100:8` through gres.conf File= device
nodes, so SLURM binds ids and sets CUDA_VISIBLE_DEVICES), partitions `cpu` and `gpu`, no
accounting storage. The tiny config runs to one metrics.json through profiles/slurm with
only its SITE values fitted to this node; one running job is cancelled with scancel and
Snakemake must notice and retry it; a re-run has nothing to do. `make test-slurm` runs it
(`.ci/run` too); `make test` leaves it out. Skipped, with the reason, where the host cannot
start daemons as root.
"""

import re
import subprocess
import threading
import time

import pytest
import slurm_cluster
import yaml

from helpers import REPO, SNAKEMAKE, tiny_config, write_config

pytestmark = [pytest.mark.slow, pytest.mark.slurm]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = slurm_cluster.unavailable()
    if reason:
        pytest.skip(reason)
    c = slurm_cluster.Cluster(tmp_path_factory.mktemp("slurm")).start()
    yield c
    c.stop()


def site_profile(folder):
    """profiles/slurm with its SITE values fitted to the 2-CPU, 20 GB node; nothing else."""
    profile = yaml.safe_load((REPO / "profiles/slurm/profile.yaml").read_text())
    profile["default-resources"]["mem_mb"] = 1000
    for res in profile["set-resources"].values():
        res["mem_mb"] = 1000
        for key in ("cpus_per_task", "cpus_per_gpu"):
            if key in res:
                res[key] = 1
    # The plugin's first status check; the node keeps finished jobs 300 s (MinJobAge), so
    # squeue still sees them at 3x this.
    profile["slurm-init-seconds-before-status-checks"] = 10
    folder.mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump(profile))
    return folder


def _cancel_first_started(env, logs, stop, cancelled):
    """scancel the first RUNNING embed_corpus job once its log says it started (the plugin's
    --comment names the rule and the wildcards' values): a killed attempt with a log to keep."""
    while not stop.is_set():
        out = subprocess.run(
            ["squeue", "-h", "-t", "RUNNING", "-o", "%i %300k"],
            env=env,
            capture_output=True,
            text=True,
        ).stdout
        for line in out.splitlines():
            job_id, _, comment = line.partition(" ")
            shard = re.search(r"rule_embed_corpus_wildcards_\w+_(\d{3})\b", comment)
            log = logs / f"{shard.group(1)}.log" if shard else None
            if log and log.exists() and "rule embed_corpus started" in log.read_text():
                subprocess.run(["scancel", job_id], env=env, check=True)
                cancelled.append((job_id, log))
                return
        time.sleep(0.3)


def test_the_shipped_profile_runs_on_a_real_slurm(cluster, mirror, tmp_path):
    results = tmp_path / "results"
    config = write_config(tiny_config(mirror, results), tmp_path / "tiny.yaml")
    profile = site_profile(tmp_path / "profile")
    target = results / "hotpotqa/minilm-smollm2/no_ft/base/validation/metrics.json"
    env = {**cluster.env, "RAGTUNE_REHEARSE_GPUS": "1"}
    cmd = [
        *SNAKEMAKE,
        "--profile",
        str(profile),
        "--configfile",
        str(config),
        "--directory",
        str(tmp_path),
        "--",
        str(target),
    ]

    stop, cancelled = threading.Event(), []
    shard_logs = results / "logs/embed_corpus/wiki-mirror/minilm"
    canceller = threading.Thread(
        target=_cancel_first_started, args=(cluster.env, shard_logs, stop, cancelled)
    )
    canceller.start()
    start = time.time()
    try:
        run = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
    finally:
        stop.set()
        canceller.join()
    output = run.stdout + run.stderr
    print(f"SLURM run: {time.time() - start:.0f} s")
    assert run.returncode == 0, output[-5000:]
    assert (
        "ragtune: SLURM job status through squeue (MinJobAge=300 s, accounting storage off)"
        in output
    )
    assert target.exists()

    # The cancelled job was seen to end as CANCELLED, retried to success, and its log kept.
    assert cancelled, "no embed_corpus job was seen running"
    job_id, log = cancelled[0]
    assert f"SLURM-job '{job_id}' failed, SLURM status is: 'CANCELLED'" in output
    kept = log.with_name(f"{log.name}.attempt-1")
    assert "rule embed_corpus started" in kept.read_text()
    assert "rule finished" not in kept.read_text() and "rule finished" in log.read_text()
    assert sorted(p.name for p in shard_logs.iterdir()) == sorted(["000.log", "001.log", kept.name])

    # SLURM bound a distinct GPU to each job that ran at once; every GPU job saw one.
    bound = {}
    for log in results.glob("logs/**/*.log"):
        match = re.search(r"SLURM bound GPU\(s\) (\S+) to this job", log.read_text())
        if match:
            bound[log.relative_to(results / "logs").as_posix()] = match.group(1)
    gpu_rules = {"embed_corpus", "build_index", "retrieve", "evaluate"}
    assert {key.split("/")[0] for key in bound} == gpu_rules, bound
    shards = [v for k, v in bound.items() if k.startswith("embed_corpus/")]
    assert len(shards) == 2 and len(set(shards)) == 2, bound

    again = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr, (
        again.stdout + again.stderr
    )[-3000:]


def test_the_unfitted_profile_fails_before_submitting_naming_rule_and_node(
    cluster, mirror, tmp_path
):
    """The shipped profile as it comes (8 CPUs and 64 GB per GPU job) on this 2-CPU, 20 GB
    node: every such job would pend for ever, so the run stops before its first sbatch."""
    config = write_config(tiny_config(mirror, tmp_path / "results"), tmp_path / "tiny.yaml")
    target = tmp_path / "results/hotpotqa/minilm-smollm2/no_ft/base/validation/metrics.json"
    cmd = [*SNAKEMAKE, "--profile", str(REPO / "profiles/slurm"), "--configfile", str(config),
           "--directory", str(tmp_path), "--", str(target)]  # fmt: skip
    run = subprocess.run(cmd, cwd=REPO, env=cluster.env, capture_output=True, text=True,
                         timeout=600)  # fmt: skip
    output = run.stdout + run.stderr
    assert run.returncode != 0
    assert "this SLURM run could not finish; nothing was submitted" in output
    assert (
        "rule embed_corpus asks for 8 CPUs, 64000 MB, 1 GPU(s) of model a100 on partition gpu, "
        f"but its largest node is {cluster.host} (2 CPUs, 20000 MB, a100:8)"
    ) in output, output[-3000:]
    assert "rule chunk_corpus asks for 8 CPUs, 16000 MB on partition cpu" in output
    assert "has been submitted with SLURM jobid" not in output
