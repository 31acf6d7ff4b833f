"""The local 8-GPU and SLURM profiles plan the workflow, and SLURM jobs ask sbatch for GPUs."""

import json
import os
import subprocess
import sys
import time

import pytest
import yaml

from helpers import REPO, SNAKEMAKE, snakemake, tiny_config, write_config

SBATCH = """#!/bin/sh
# stub: record the submission, answer with a job id as `sbatch --parsable` does
echo "$@" >> "$SBATCH_LOG"
echo "$((1000 + $(wc -l < "$SBATCH_LOG")))"
"""
# Status queries find nothing: the test stops the run once its jobs are submitted.
QUERY = "#!/bin/sh\nexit 0\n"
# One 8-GPU node in partitions cpu and gpu, without accounting (tests/test_slurm.py has a real one).
SCONTROL = """#!/bin/sh
case "$2" in
node) echo "NodeName=n1 CPUTot=64 RealMemory=512000 Gres=gpu:a100:8 Partitions=cpu,gpu" ;;
partition) echo "PartitionName=cpu Default=YES Nodes=n1"
           echo "PartitionName=gpu Default=NO Nodes=n1" ;;
config) printf "MinJobAge = 300 sec\\nAccountingStorageType = accounting_storage/none\\n" ;;
esac
"""


@pytest.fixture
def slurm_path(tmp_path):
    """A PATH with stub sbatch, sacct and squeue in front, and the file sbatch records to."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("sbatch", SBATCH), ("sacct", QUERY), ("squeue", QUERY),
                       ("scontrol", SCONTROL)):  # fmt: skip
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "sbatch.log"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SBATCH_LOG": str(log)}
    return env, log


@pytest.fixture
def tiny(mirror, tmp_path):
    cfg = tiny_config(mirror, tmp_path / "results")
    return write_config(cfg, tmp_path / "tiny.yaml"), tmp_path / "results"


def test_local_8gpu_profile_plans_the_workflow(tiny):
    config, _ = tiny
    profile = yaml.safe_load((REPO / "profiles/local-8gpu/profile.yaml").read_text())
    assert profile["resources"] == {"gpu": 8} and profile["cores"] == "all"
    assert profile["keep-going"] and profile["rerun-incomplete"]
    out = snakemake("-n", "--profile", "profiles/local-8gpu", "--configfile", str(config))
    assert out.returncode == 0, out.stderr[-3000:]
    assert "embed_corpus" in out.stdout and "train_embedder" in out.stdout


def test_slurm_profile_plans_the_workflow(tiny, slurm_path):
    config, _ = tiny
    env, _ = slurm_path
    profile = yaml.safe_load((REPO / "profiles/slurm/profile.yaml").read_text())
    assert profile["executor"] == "slurm"
    for rule, res in profile["set-resources"].items():
        assert "gpus" not in res, f"{rule}: `gpus` never reaches sbatch; use `gpu`"
        assert "--gres" not in str(res.get("slurm_extra", "")), rule
        if res.get("gpu"):
            assert {"gpu_model", "cpus_per_gpu", "mem_mb", "runtime", "slurm_partition"} <= set(
                res
            ), rule
    out = subprocess.run(
        [*SNAKEMAKE, "-n", "--profile", "profiles/slurm", "--configfile", str(config)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:] + out.stdout[-3000:]


def test_slurm_gpu_jobs_ask_sbatch_for_gpus(tiny, slurm_path):
    """Two embedding shards, their chunk files present: each is one sbatch call with a GPU."""
    config, results = tiny
    env, log = slurm_path
    chunks = results / "corpus/wiki-mirror/chunks"
    chunks.mkdir(parents=True)
    for shard in ("000", "001"):
        (chunks / f"shard-{shard}.jsonl").write_text('{"id": "a", "title": "T", "text": "x"}\n')
    targets = [str(results / f"corpus/wiki-mirror/embeddings/minilm/shard-{s}.npy") for s in
               ("000", "001")]  # fmt: skip
    cmd = [
        *SNAKEMAKE,
        "--profile",
        "profiles/slurm",
        "--configfile",
        str(config),
        "--directory",
        str(results.parent),
        "--allowed-rules",
        "embed_corpus",
        "--",
        *targets,
    ]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            if log.exists() and len(log.read_text().splitlines()) >= 2:
                break
            time.sleep(1)
    finally:
        proc.kill()
        output = proc.communicate()[0]
    calls = log.read_text().splitlines() if log.exists() else []
    assert len(calls) == 2, output[-3000:]
    # ragtune's preflight read the (stub) cluster and picked squeue: it has no accounting.
    assert (
        "ragtune: SLURM job status through squeue (MinJobAge=300 s, accounting storage off)"
        in output
    )
    for call, shard in zip(sorted(calls, key=lambda c: "001" in c), ("000", "001"), strict=True):
        assert f"embed_corpus:embedder=minilm,shard={shard}" in call
        assert " --gpus=a100:1" in call and " -p gpu " in call
        assert "--cpus-per-gpu=8" in call and "--mem 64000" in call and "-t 240" in call
        assert "--gres" not in call


def _sbatch_calls(config: str) -> dict[str, str]:
    out = subprocess.run(
        [sys.executable, str(REPO / "tests/render_sbatch.py"), str(REPO), config,
         str(REPO / "profiles/slurm/profile.yaml")],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    # The small rules run in Snakemake's own process, never as queued sbatch jobs: select_lr
    # sits between 2-Phase's phases.
    local = {row["rule"] for row in rows if row["local"]}
    assert local == {"select_lr", "tables", "figures", "report_config"}, local
    return {row["rule"]: row["call"] for row in rows if not row["local"]}


def test_paper_config_sbatch_calls_put_every_gpu_job_on_the_gpu_partition(tmp_path):
    """Every rule of the paper config (with train_documents), as the plugin would submit it:
    no GPU is asked for on a CPU partition, and every rule the config gives a GPU lands on the
    GPU partition. With
    2-Phase's phase 1 as its own RAG-Token grid, a joint job is in the DAG before any grid is
    selected (by default the first joint job waits for Ft. Gen.'s selection)."""
    paper = yaml.safe_load((REPO / "config/paper.yaml").read_text())
    paper["strategies"]["two_phase"].update(
        phase1="rag_token", gen_lrs=paper["strategies"]["ft_gen"]["lrs"]
    )
    # Document-side training adds each tuned encoder's corpus embedding and index (its joint
    # steps, chunks encoded with gradient, fit a 24 GB GPU one question at a time).
    paper["training"]["embedder"].update(train_documents=True, max_refreshes=1000)
    paper["training"]["joint"]["batch_size"] = 1
    config = write_config(paper, tmp_path / "paper.yaml")
    calls = _sbatch_calls(str(config))
    # Each rule's GPUs come from config `resources`; retrieve_tuned shares retrieve's, and a
    # refreshed index's jobs share the base index's.
    gpu_rules = {rule for rule, n in paper["resources"].items() if n and rule != "gpu_memory_gb"}
    gpu_rules |= {"retrieve_tuned"} if "retrieve" in gpu_rules else set()
    gpu_rules |= {f"{r}_refreshed" for r in ("embed_corpus", "build_index") if r in gpu_rules}
    assert gpu_rules <= set(calls), sorted(gpu_rules - set(calls))
    for rule, call in calls.items():
        asks_gpu = "--gpus" in call or "--gres=gpu" in call
        partition = call.split(" -p ")[1].split()[0]
        if asks_gpu:
            assert partition == "gpu", f"{rule} asks for a GPU on partition {partition}: {call}"
        if rule in gpu_rules:
            assert asks_gpu and partition == "gpu", f"{rule}: {call}"
            assert "--cpus-per-gpu" in call and "--cpus-per-task" not in call, call
        else:
            assert not asks_gpu, f"{rule} is a CPU rule but asks for a GPU: {call}"
