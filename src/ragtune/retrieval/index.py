"""Build and search a faiss index over the float16 embedding store.

The index only proposes candidates. Scores come from an exact rescoring against the stored
vectors, so an approximate index (PQ, HNSW) changes which chunks are found, never the score a
found chunk gets, and the training loss never sees quantisation error.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
from pathlib import Path

import faiss
import numpy as np
from tqdm import tqdm

from ragtune.retrieval.store import EmbeddingStore, check_vectors

log = logging.getLogger(__name__)


FAISS_PACKAGES = ("faiss-gpu", "faiss-cpu", "faiss-gpu-cu12", "faiss-gpu-cu11", "faiss")


def faiss_build() -> dict:
    """Which faiss this process runs: its version, the distribution that installed it, and the
    GPUs it can use (0 for faiss-cpu, or for faiss-gpu on a host without a usable GPU)."""
    installed = []
    for name in FAISS_PACKAGES:
        try:
            installed.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return {
        "faiss_version": faiss.__version__,
        "faiss_package": ", ".join(installed) or "unknown",
        "faiss_gpus": faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0,
    }


class FaissGpuError(RuntimeError):
    """An index that had to be on the GPU stayed on the CPU."""


def to_gpus(
    index: faiss.Index, factory: str, *, required: bool = False
) -> tuple[faiss.Index, bool]:
    """The index on every visible GPU when faiss has GPU support, else the index unchanged.

    Returns (index, on_gpu). Not every index type has a GPU implementation (4-bit fast-scan PQ
    and HNSW have none); those are built on the CPU, with a log line that says so, unless
    ``required`` (``make gpu-check``), where staying on the CPU raises :class:`FaissGpuError`.
    Float16 lookup tables let GPU IVF-PQ use more than 48 sub-quantizers (paper.yaml's PQ64).
    """
    build = faiss_build()
    log.info(
        "faiss %s from %s, %d GPU(s) usable",
        build["faiss_version"],
        build["faiss_package"],
        build["faiss_gpus"],
    )
    if build["faiss_gpus"] == 0:
        if required:
            raise FaissGpuError(
                f"{factory}: faiss ({build['faiss_package']}) sees no GPU; "
                "`make install DEVICE=gpu` installs faiss-gpu"
            )
        log.info("building %s on the CPU (faiss-gpu: `make install DEVICE=gpu`)", factory)
        return index, False
    options = faiss.GpuMultipleClonerOptions()
    options.useFloat16 = True
    try:
        gpu_index = faiss.index_cpu_to_all_gpus(index, options)
    except RuntimeError as err:
        if required:
            raise FaissGpuError(f"{factory}: faiss could not move it to the GPU: {err}") from err
        log.info("%s has no GPU implementation (%s): building it on the CPU", factory, err)
        return index, False
    log.info("building %s on %d GPU(s)", factory, faiss.get_num_gpus())
    return gpu_index, True


def build(
    store: EmbeddingStore,
    factory: str,
    *,
    train_size: int,
    add_batch_size: int,
    seed: int = 0,
    require_gpu: bool = False,
) -> faiss.Index:
    """An inner-product index from a faiss ``index_factory`` string, trained on a sample and
    filled batch by batch, on the GPUs where faiss-gpu is installed (``require_gpu``: there or
    not at all). Returns a CPU index (what ``faiss.write_index`` serialises and every rule
    searches)."""
    index, on_gpu = to_gpus(
        faiss.index_factory(store.dim, factory, faiss.METRIC_INNER_PRODUCT),
        factory,
        required=require_gpu,
    )
    if not index.is_trained:
        n = min(train_size, len(store))
        rows = np.sort(np.random.default_rng(seed).choice(len(store), size=n, replace=False))
        log.info("training %s on %d of %d vectors", factory, n, len(store))
        index.train(store.vectors(rows))
    # Batches never straddle two shards, so each shard ends with a short one.
    total = sum(-(-len(shard) // add_batch_size) for shard in store.shards)
    bar = tqdm(total=total, desc="add to index", unit="batch")
    for path, shard in zip(store.paths, store.shards, strict=True):
        for a in range(0, len(shard), add_batch_size):
            batch = np.asarray(shard[a : a + add_batch_size], dtype=np.float32)
            check_vectors(batch, path, first_row=a)  # nothing broken enters the index
            index.add(batch)
            bar.update(1)
    bar.close()
    return faiss.index_gpu_to_cpu(index) if on_gpu else index


def read_index(path: str) -> faiss.Index:
    """The faiss index, or an error that names the file and the rule to re-run."""
    try:
        return faiss.read_index(str(path))
    except RuntimeError as err:
        raise ValueError(
            f"{path} is not a readable faiss index ({str(err).splitlines()[0]}): it was cut "
            "short or overwritten. Delete it and run snakemake again, which re-runs build_index"
        ) from err


def check_k_against_built(k: int, info_paths) -> None:
    """At planning time: k against each index already built (its ``info.json``), so a k the
    corpus cannot fill fails before any job, not in ``retrieve``. Unbuilt indexes are checked
    by ``build_index``."""
    import json

    for path in map(Path, info_paths):
        if path.exists():
            ntotal = json.loads(path.read_text(encoding="utf-8"))["ntotal"]
            check_k(
                k,
                ntotal,
                f"the index built before ({path}; if the corpus changed since, delete "
                f"{path.parent} and plan again)",
            )


def check_k(k: int, ntotal: int, where: str) -> None:
    """The corpus must hold at least k chunks: otherwise every question would get all of them
    and the tables would say Recall@k of a k that never ran."""
    if k > ntotal:
        raise ValueError(
            f"retrieval.k is {k}, but {where} holds only {ntotal} chunks: lower retrieval.k "
            f"to at most {ntotal}, or give the corpus more documents"
        )


def set_search_params(index: faiss.Index, *, nprobe: int, ef_search: int) -> None:
    """Apply nprobe / efSearch where the index has them (a Flat index has neither)."""
    space = faiss.ParameterSpace()
    for name, value in (("nprobe", nprobe), ("efSearch", ef_search)):
        with contextlib.suppress(RuntimeError):
            space.set_index_parameter(index, name, value)


def search(
    index: faiss.Index,
    store: EmbeddingStore,
    queries: np.ndarray,
    k: int,
    *,
    rescore_factor: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` rows and exact cosine scores for each normalised query."""
    n_cand = min(k * rescore_factor, index.ntotal)
    _, cand = index.search(np.ascontiguousarray(queries, dtype=np.float32), n_cand)
    cand = np.where(cand < 0, 0, cand)  # faiss pads missing hits with -1
    exact = np.einsum("qd,qcd->qc", queries, store.vectors(cand))
    order = np.argsort(-exact, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(cand, order, 1), np.take_along_axis(exact, order, 1)
