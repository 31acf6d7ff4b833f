"""Build and search a faiss index over the float16 embedding store.

The index only proposes candidates. Scores come from an exact rescoring against the stored
vectors, so an approximate index (PQ, HNSW) changes which chunks are found, never the score a
found chunk gets, and the training loss never sees quantisation error.
"""

from __future__ import annotations

import contextlib
import logging

import faiss
import numpy as np
from tqdm import tqdm

from ragtune.retrieval.store import EmbeddingStore

log = logging.getLogger(__name__)


def build(
    store: EmbeddingStore,
    factory: str,
    *,
    train_size: int,
    add_batch_size: int,
    seed: int = 0,
) -> faiss.Index:
    """An inner-product index from a faiss ``index_factory`` string, trained on a sample."""
    index = faiss.index_factory(store.dim, factory, faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained:
        n = min(train_size, len(store))
        rows = np.sort(np.random.default_rng(seed).choice(len(store), size=n, replace=False))
        log.info("training %s on %d of %d vectors", factory, n, len(store))
        index.train(store.vectors(rows))
    batches = store.iter_batches(add_batch_size)
    # Batches never straddle two shards, so each shard ends with a short one.
    total = sum(-(-len(shard) // add_batch_size) for shard in store.shards)
    for batch in tqdm(batches, total=total, desc="add to index", unit="batch"):
        index.add(batch)
    return index


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
