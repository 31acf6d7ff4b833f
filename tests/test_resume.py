"""A corpus build killed mid-way resumes without redoing a finished shard.

Snakemake is killed (SIGKILL, as on a node failure or a preemption) once a first document
shard is written and another job has started; then again once a first embedding shard is;
then it runs to the end. Every shard file that was finished before a kill must come through
the later runs untouched, and the last run plans only the jobs whose outputs were missing.
"""

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from helpers import REPO, SNAKEMAKE, mirror_corpus_files, tiny_config, write_config

pytestmark = pytest.mark.workflow


def _files(folder: Path) -> dict[Path, tuple[int, int]]:
    """Finished shard files (temporary names start with a dot) with their inode and mtime."""
    return {
        p: (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in folder.rglob("shard-*")
        if p.is_file() and not p.name.startswith(".")
    }


def _run_until(cmd, results: Path, done_glob: str, timeout=300) -> dict[Path, tuple[int, int]]:
    """Run ``cmd``; once ``done_glob`` matches and a job has started after it, SIGKILL the run.
    Return the files that were finished at that moment."""
    proc = subprocess.Popen(
        cmd, cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + timeout
    logs_then = None
    try:
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            logs = set((results / "logs").rglob("*.log")) if (results / "logs").exists() else set()
            if logs_then is None and list(results.glob(done_glob)):
                logs_then = logs
            elif logs_then is not None and logs - logs_then:
                # The job that wrote the shard is done and Snakemake has moved on to another.
                finished = _files(results / "corpus")
                os.killpg(proc.pid, signal.SIGKILL)
                return finished
            time.sleep(0.2)
        raise AssertionError(f"no job started after {done_glob} appeared in {timeout} s")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_killed_corpus_build_resumes_without_redoing_finished_shards(mirror, tmp_path):
    # Two source files in the Hub's schema, two shards: each download job streams its own file.
    files = mirror_corpus_files(mirror, tmp_path, 2)
    results = tmp_path / "results"
    cfg = tiny_config(mirror, results)
    cfg["corpus"].update({"focus": None, "shards": 2, "source": {"files": list(map(str, files))}})
    config = write_config(cfg, tmp_path / "config.yaml")
    corpus = results / "corpus/wiki-mirror"
    targets = [str(corpus / f"embeddings/minilm/shard-00{i}.npy") for i in range(2)]
    base = [*SNAKEMAKE, "--directory", str(tmp_path), "--configfile", str(config)]
    cmd = [*base, "--cores", "1", "--rerun-incomplete", *targets]
    # What a user does after a crash: the killed run's lock is stale, so lift it, then re-run.
    unlock = [*base, "--unlock"]

    killed_once = _run_until(cmd, results, "corpus/*/docs/shard-*.jsonl")
    assert any(p.parent.name == "docs" for p in killed_once)
    subprocess.run(unlock, cwd=REPO, check=True, capture_output=True)
    killed_twice = _run_until(cmd, results, "corpus/*/embeddings/minilm/shard-*.npy")
    subprocess.run(unlock, cwd=REPO, check=True, capture_output=True)
    assert all(killed_twice.get(p) == stamp for p, stamp in killed_once.items())
    assert any(p.suffix == ".npy" for p in killed_twice)

    plan = subprocess.run([*cmd, "-n"], cwd=REPO, capture_output=True, text=True)
    counts = {
        m.group(1): int(m.group(2))
        for m in re.finditer(r"^(\w+)\s+(\d+)$", plan.stdout.split("Job stats:")[-1], re.M)
    }
    missing = {
        rule: sum(not (corpus / folder / f"shard-00{i}{ext}").exists() for i in range(2))
        for rule, folder, ext in (
            ("download_corpus", "docs", ".jsonl"),
            ("chunk_corpus", "chunks", ".jsonl"),
            ("embed_corpus", "embeddings/minilm", ".npy"),
        )
    }
    assert {r: counts.get(r, 0) for r in missing} == missing, plan.stdout[-2000:]

    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    final = _files(corpus)
    assert all(final[p] == stamp for p, stamp in killed_twice.items())
    assert all(Path(t).exists() for t in targets)
