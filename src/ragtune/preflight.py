"""The checks a run makes before it plans a job: once, in Snakemake's main process.

Every job parses the Snakefile again (each local job's script, each SLURM job), so a check at
parse time would run once per job. The workflow calls :func:`run` only where
``workflow.is_main_process`` is true. The costliest check (``ragtune.config.check`` reads every
row of every local QA file) is skipped when neither the config nor any local file it names
changed since it last passed: a stamp under ``.snakemake/ragtune-preflight/``, keyed on the
config's content and those files' sizes and mtimes, as the memory plan caches its own.

What is checked, each failing before any job with the key and the fix:
- the config's cross-references, data files, their columns and rows (``ragtune.config``);
- ``--resources gpu=N`` against the node's GPUs (``ragtune.scheduling``);
- every GPU job's memory against its GPU (``ragtune.memory.plan``);
- ``retrieval.k`` against every index already built (``ragtune.retrieval.index``);
- with ``training.embedder.train_documents``, how often the corpus is re-embedded (a warning).

The SLURM checks need the DAG and the executor, so they run in ``onstart`` instead
(``ragtune.slurm``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

STAMPS = "ragtune-preflight"


def _local_files(node: Any) -> Iterable[Path]:
    """Every string in the config that names an existing file (data files, local models)."""
    if isinstance(node, dict):
        for value in node.values():
            yield from _local_files(value)
    elif isinstance(node, list):
        for value in node:
            yield from _local_files(value)
    elif isinstance(node, str) and len(node) < 4096 and os.path.isfile(node):
        yield Path(node)


def fingerprint(config: dict) -> str:
    """The config's content and the size and mtime of every local file it names."""
    files = sorted({str(p.resolve()) for p in _local_files(config)})
    stats = [(f, os.stat(f).st_size, os.stat(f).st_mtime_ns) for f in files]
    blob = json.dumps([config, stats], sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


def check_config(config: dict, cache_dir: Path | None) -> bool:
    """``ragtune.config.check``, unless it passed before on this very config and files.
    Returns whether it ran."""
    from ragtune import config as ragtune_config

    stamp = Path(cache_dir) / STAMPS / fingerprint(config) if cache_dir else None
    if stamp is not None and stamp.exists():
        return False
    ragtune_config.check(config)
    if stamp is not None:
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.touch()
    return True


def run(
    config: dict,
    *,
    gpu_budget: int | None,
    gpu_memory_overrides: dict[str, float],
    built_index_infos: list[str],
    cache_dir: Path | None = Path(".snakemake"),
) -> None:
    """Every planning-time check, in the main process (see the module's docstring)."""
    from ragtune import gpu, scheduling
    from ragtune.memory import plan as memory_plan
    from ragtune.retrieval import index as faiss_index

    check_config(config, cache_dir)
    scheduling.check_gpu_budget(gpu_budget, gpu.node_gpu_count())
    memory_plan.check(
        config,
        gpu_memory_overrides,
        cache_dir=Path(cache_dir) / "ragtune-memory-plan" if cache_dir else None,
    )
    faiss_index.check_k_against_built(config["retrieval"]["k"], built_index_infos)
    warn_refreshes(config)


def warn_refreshes(config: dict) -> str | None:
    """With ``training.embedder.train_documents``, every training run of the embedder
    re-embeds the whole corpus for its own index. Warns (on stderr, and returns the line)
    when the plan would do so more often than ``training.embedder.max_refreshes``."""
    import sys

    from ragtune.plan import Plan

    count = len(Plan(config, winner=lambda *_: "base").refreshes())
    most = config["training"]["embedder"]["max_refreshes"]
    if count <= most:
        return None
    line = (
        f"ragtune: warning: training.embedder.train_documents re-embeds the corpus {count} "
        f"times (once per training run of the embedder, every grid point and seed), more than "
        f"training.embedder.max_refreshes ({most}). At paper scale one re-embedding is "
        "29.9M chunks: shorten the embedder grids, set train_documents: false, or raise "
        "max_refreshes to accept the cost"
    )
    print(line, file=sys.stderr)
    return line
