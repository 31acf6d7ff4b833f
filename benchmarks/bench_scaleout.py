"""Embedding scale-out: N shard jobs against one job over the same chunks, in total CPU time.

The chunks are the mirror's Wikipedia documents cut as the workflow cuts them (MiniLM
tokenizer, 128-token windows), dealt round-robin into N shards. Each shard is embedded by a
process of its own, exactly the rule's step (``ragtune.steps.index.embed_shard``: import,
model load, read, encode sorted by length, float16 ``.npy``), with one torch thread. The CPU
time of each job comes from the kernel (``wait4`` rusage: user + system), so N jobs are
charged everything N jobs cost, start-up included. Two jobs run at a time on this 2-core host.
Target: N = 2 and N = 4 within 5% of N = 1's total CPU time.

The default is 24,000 chunks: 6,000 per job at N = 4, still 80x fewer than a paper-scale shard
(29.9M / 64 = 467k). Much smaller jobs would measure the start-up cost rather than the
sharding: see below.

N jobs pay a job's fixed cost (imports, model load) N times, so the overhead is about
(N - 1) x fixed / total work: the bench also measures the fixed cost, as the CPU time of a job
that embeds only 64 chunks (three runs, the lowest).

    python -m benchmarks.bench_scaleout [--chunks 24000] [--shards 1 2 4]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import MINILM, MIRROR, report
from ragtune import models
from ragtune.data.corpus import chunk_documents, iter_documents

JOB = (
    "import sys, torch; torch.set_num_threads(1);"
    "from ragtune.steps.index import embed_shard;"
    "embed_shard(sys.argv[1], sys.argv[2], sys.argv[3], {'batch_size': 64, 'max_seq_length': None})"
)


def chunk_corpus(n_chunks: int) -> list[dict]:
    corpus = {
        "source": {"files": [str(MIRROR / "wikipedia/chunks.jsonl.gz")]},
        "id_field": "id",
        "title_field": "title",
        "text_field": "content",
    }
    tokenizer = models.load_tokenizer(MINILM)
    chunks = []
    for chunk in chunk_documents(iter_documents(corpus), tokenizer, 128, 16):
        chunks.append(chunk)
        if len(chunks) == n_chunks:
            return chunks
    # The mirror holds fewer chunks than asked: repeat them. An encoder's work per chunk does
    # not depend on having seen the text before, so the job costs what a bigger corpus would.
    return [chunks[i % len(chunks)] for i in range(n_chunks)]


def run_jobs(shards: list[Path], out: Path, parallel: int = 2) -> tuple[float, float, list[float]]:
    """Embed every shard in its own process, ``parallel`` at a time; return (total CPU s, wall
    s, CPU s of each job)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    pending = list(shards)
    running: dict[int, Path] = {}
    cpu: dict[Path, float] = {}
    start = time.perf_counter()
    while pending or running:
        while pending and len(running) < parallel:
            shard = pending.pop(0)
            npy = out / (shard.stem + ".npy")
            proc = subprocess.Popen(
                [sys.executable, "-c", JOB, str(shard), str(npy), MINILM],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            running[proc.pid] = shard
        pid, status, usage = os.wait4(-1, 0)
        shard = running.pop(pid)
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"embedding {shard} failed")
        cpu[shard] = usage.ru_utime + usage.ru_stime
    wall = time.perf_counter() - start
    per_job = [cpu[s] for s in shards]
    return sum(per_job), wall, per_job


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=24000)
    parser.add_argument("--shards", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    chunks = chunk_corpus(args.chunks)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        small = Path(tmp) / "shard-small.jsonl"
        small.write_text("".join(json.dumps(c) + "\n" for c in chunks[:64]))
        fixed = min(run_jobs([small], Path(tmp), parallel=1)[0] for _ in range(3))
        vectors = {}
        for n in args.shards:
            folder = Path(tmp) / f"n{n}"
            folder.mkdir()
            shards = [folder / f"shard-{i:03d}.jsonl" for i in range(n)]
            for i, path in enumerate(shards):
                path.write_text("".join(json.dumps(c) + "\n" for c in chunks[i::n]))
            total, wall, per_job = run_jobs(shards, folder)
            vectors[n] = [np.load(folder / f"shard-{i:03d}.npy") for i in range(n)]
            results[n] = {
                "cpu_s": round(total, 1),
                "wall_s": round(wall, 1),
                "job_cpu_s": [round(c, 1) for c in per_job],
            }
            print(n, results[n], flush=True)
        # The shards hold the same vectors as the single job, in the round-robin order.
        one = vectors[args.shards[0]][0]
        for n, parts in vectors.items():
            for i, part in enumerate(parts):
                np.testing.assert_allclose(part, one[i::n], atol=2e-3)
    base = results[args.shards[0]]["cpu_s"]
    report(
        "scaleout",
        {
            "chunks": len(chunks),
            "distinct_chunks": len({(c["id"], c["text"]) for c in chunks}),
            "cpu_s_of_a_64_chunk_job": round(fixed, 1),
            "jobs": {str(n): r for n, r in results.items()},
            "cpu_overhead_vs_1_job": {
                str(n): round(r["cpu_s"] / base - 1, 4) for n, r in results.items()
            },
        },
    )


if __name__ == "__main__":
    main()
