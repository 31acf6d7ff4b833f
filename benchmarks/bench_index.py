"""Index at scale: an IVF-PQ index against Flat on synthetic embedding-like vectors.

Measures, in one run, each index's build time, bytes per vector (the serialised index) and
search QPS, and Recall@5 against exact search after ragtune's exact rescoring from the float16
store (``retrieval.index.search`` with ``rescore_factor``). The target: Recall@5 >= 0.95 at
<= 1/8 of Flat's memory.

    python -m benchmarks.bench_index [--n 1000000] [--factory IVF4096,PQ48x4fs]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import faiss
import numpy as np

from benchmarks.common import report, timed
from ragtune.retrieval import index as faiss_index
from ragtune.retrieval import synthetic
from ragtune.retrieval.store import EmbeddingStore


def exact_top(store: EmbeddingStore, queries: np.ndarray, k: int, batch: int = 100_000):
    """Exact top-k by brute force over the store, batch by batch (never all of it in RAM)."""
    best_s = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_r = np.zeros((len(queries), k), dtype=np.int64)
    start = 0
    for vecs in store.iter_batches(batch):
        s = queries @ vecs.T
        rows = np.arange(start, start + len(vecs))
        all_s = np.concatenate([best_s, s], axis=1)
        all_r = np.concatenate([best_r, np.broadcast_to(rows, s.shape)], axis=1)
        order = np.argsort(-all_s, axis=1)[:, :k]
        best_s = np.take_along_axis(all_s, order, 1)
        best_r = np.take_along_axis(all_r, order, 1)
        start += len(vecs)
    return best_r


def measure(store, queries, truth, factory, *, nprobe, rescore_factor, train_size, k=5):
    index, build_s = timed(
        faiss_index.build, store, factory, train_size=train_size, add_batch_size=100_000
    )
    faiss_index.set_search_params(index, nprobe=nprobe, ef_search=128)
    (rows, _), search_s = timed(
        faiss_index.search, index, store, queries, k, rescore_factor=rescore_factor
    )
    recall = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(rows, truth, strict=True)]))
    return {
        "factory": factory,
        "build_s": round(build_s, 2),
        "bytes_per_vector": round(len(faiss.serialize_index(index)) / len(store), 2),
        "qps": round(len(queries) / search_s, 1),
        f"recall_at_{k}_after_rescoring": round(recall, 4),
        "nprobe": nprobe,
        "rescore_factor": rescore_factor,
    }


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--factory", default="IVF4096,PQ48x4fs")
    p.add_argument("--nprobe", type=int, default=64)
    p.add_argument("--rescore-factor", type=int, default=50)
    p.add_argument("--train-size", type=int, default=200_000)
    args = p.parse_args(argv)
    vectors = synthetic.embeddings(args.n, args.dim)
    queries = synthetic.queries(vectors, args.queries)
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, part in enumerate(np.array_split(vectors, 8)):  # 8 float16 shards, memory-mapped
            paths.append(Path(tmp) / f"shard-{i:03d}.npy")
            np.save(paths[-1], part.astype(np.float16))
        del vectors
        store = EmbeddingStore(paths)
        truth = exact_top(store, queries, 5)
        flat = measure(store, queries, truth, "Flat", nprobe=1, rescore_factor=1, train_size=0)
        ivfpq = measure(
            store, queries, truth, args.factory, nprobe=args.nprobe,
            rescore_factor=args.rescore_factor, train_size=args.train_size,
        )  # fmt: skip
    return report(
        "index",
        {
            "n": args.n,
            "dim": args.dim,
            "queries": args.queries,
            "flat": flat,
            "approximate": ivfpq,
            "memory_ratio_vs_flat": round(ivfpq["bytes_per_vector"] / flat["bytes_per_vector"], 4),
            "qps_ratio_vs_flat": round(ivfpq["qps"] / flat["qps"], 2),
        },
    )


if __name__ == "__main__":
    main()
