"""Build small configs for workflow tests, pointing at ../shared's mirror."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def tiny_config(mirror: Path, results: Path, datasets=("hotpotqa",)) -> dict:
    """A few hundred chunks and 12 questions per dataset.

    The workflow test runs HotpotQA only, to keep the suite short on 2 cores:
    PopQA's own path (splits carved from its test split) is covered by tests/test_data.py. Ft.
    grids have 2 points; 2-Phase has 2 generator LRs (its phase-1 winner feeds phase 2) and 1
    embedder LR. Every job is kept small (4 training questions, i.e. 2 optimizer steps; 4 per
    evaluation split; short prompts): the test checks that the rules chain and that the tables
    are true to the run's files, not what the models learn. Most of a tiny job's time is its
    start-up (importing torch, transformers and peft: ~7 s on one core), so the sizes are
    about as small as they can usefully be.
    """
    base = yaml.safe_load((REPO / "config/config.yaml").read_text())
    cfg = copy.deepcopy(base)
    cfg["results"] = str(results)
    del cfg["demo_data"]  # the mirror's files are read where they are
    cfg["corpus"]["source"]["files"] = [str(mirror / "wikipedia/chunks.jsonl.gz")]
    cfg["corpus"]["focus"] = {"distractors": 150}
    ds = cfg["datasets"]
    ds["hotpotqa"]["source"]["files"] = {
        "train": str(mirror / "hotpotqa/train.jsonl.gz"),
        "validation": str(mirror / "hotpotqa/validation.jsonl.gz"),
    }
    ds["popqa"]["source"]["files"] = {"test": str(mirror / "popqa/test.jsonl.gz")}
    cfg["datasets"] = ds = {name: ds[name] for name in datasets}
    for d in ds.values():
        for split, size in (("train", 4), ("validation", 4), ("test", 4)):
            # a seeded sample of the mirror's files, not the demo's pinned ids
            d["splits"][split] = {"from": d["splits"][split]["from"], "size": size}
    cfg["generation"]["max_new_tokens"] = 8
    cfg["generation"]["max_prompt_tokens"] = 128
    cfg["training"]["generator"]["max_prompt_tokens"] = 96
    cfg["training"]["joint"]["max_prompt_tokens"] = 80
    cfg["strategies"]["two_phase"]["embed_lrs"] = cfg["strategies"]["two_phase"]["embed_lrs"][-1:]
    return cfg


def mirror_corpus_files(mirror: Path, folder: Path, files: int, per_file: int = 20) -> list[Path]:
    """The mirror's first Wikipedia records split over ``files`` JSONL files (Hub schema), as a
    many-file Hub corpus such as MedRAG/wikipedia comes."""
    import gzip
    import itertools

    with gzip.open(mirror / "wikipedia/chunks.jsonl.gz", "rt") as fh:
        lines = list(itertools.islice(fh, files * per_file))
    paths = [folder / f"part-{i}.jsonl" for i in range(files)]
    for i, path in enumerate(paths):
        path.write_text("".join(lines[per_file * i : per_file * (i + 1)]))
    return paths


def write_config(cfg: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def snakemake(
    *args: str, cwd: Path = REPO, timeout: int = 900, env: dict | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*SNAKEMAKE, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )


def training_corpus(mirror: Path, minilm_spec: str, tmp: Path, n: int):
    """``n`` HotpotQA questions of the mirror's train file, their 10 context paragraphs each
    as a one-shard corpus embedded by MiniLM (``emb-000.npy``), and the base top 3
    (``retrieved.jsonl``). Returns (the folder, the questions)."""
    import json

    import numpy as np

    from ragtune import models
    from ragtune.io import read_jsonl, write_jsonl
    from ragtune.retrieval.embed import encode, passage_text
    from ragtune.retrieval.store import line_offsets, offsets_path

    questions, chunks = [], {}
    for rec in read_jsonl(mirror / "hotpotqa/train.jsonl.gz"):
        questions.append(
            {
                "id": rec["id"],
                "question": rec["question"],
                "answers": [rec["answer"]],
                "gold_titles": list(dict.fromkeys(rec["supporting_facts"]["title"])),
            }
        )
        for title, sents in zip(rec["context"]["title"], rec["context"]["sentences"], strict=True):
            chunks.setdefault(
                title, {"id": f"c{len(chunks)}", "title": title, "text": "".join(sents)}
            )
        if len(questions) == n:
            break
    shard = tmp / "shard-000.jsonl"
    shard.write_text("".join(json.dumps(c) + "\n" for c in chunks.values()))
    np.save(offsets_path(shard), line_offsets(shard))
    model = models.load_embedder(minilm_spec, device="cpu")
    vecs = encode(model, [passage_text(c) for c in chunks.values()], 32)
    np.save(tmp / "emb-000.npy", vecs.astype(np.float16))
    write_jsonl(tmp / "train.jsonl", questions)
    qv = encode(model, [q["question"] for q in questions], 32)
    top = np.argsort(-(qv @ vecs.T), axis=1)[:, :3]
    write_jsonl(
        tmp / "retrieved.jsonl",
        [
            {"qid": q["id"], "rows": [int(r) for r in rows]}
            for q, rows in zip(questions, top, strict=True)
        ],
    )
    return tmp, questions
