"""Embedding-like synthetic vectors, for sizing and testing an index without a corpus.

Isotropic Gaussian vectors are the worst case for any approximate index and unlike real
sentence embeddings, which sit near a low-dimensional, clustered manifold. These are drawn the
way such embeddings look: cluster centres in a ``intrinsic``-dimensional subspace, points
scattered around them, lifted into ``dim`` dimensions with a little full-rank noise, and
normalised. Queries are perturbed corpus points, as a question sits near its gold chunk.
"""

from __future__ import annotations

import numpy as np


def embeddings(
    n: int, dim: int = 384, *, intrinsic: int = 64, clusters: int = 1000, seed: int = 0,
    chunk: int = 100_000,
) -> np.ndarray:  # fmt: skip
    """``n`` unit float32 vectors (generated in chunks, so 1M x 384 never needs a float64 copy)."""
    rng = np.random.default_rng(seed)
    lift = rng.standard_normal((intrinsic, dim)).astype(np.float32) / np.sqrt(intrinsic)
    centres = rng.standard_normal((clusters, intrinsic)).astype(np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    for a in range(0, n, chunk):
        m = min(chunk, n - a)
        z = centres[rng.integers(clusters, size=m)]
        z += 0.6 * rng.standard_normal((m, intrinsic)).astype(np.float32)
        x = z @ lift + 0.05 * rng.standard_normal((m, dim)).astype(np.float32)
        out[a : a + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def queries(corpus: np.ndarray, n: int, *, noise: float = 0.5, seed: int = 1) -> np.ndarray:
    """``n`` unit queries, each a corpus vector plus noise of norm about ``noise``."""
    rng = np.random.default_rng(seed)
    base = corpus[rng.integers(len(corpus), size=n)]
    q = base + noise * rng.standard_normal(base.shape).astype(np.float32) / np.sqrt(base.shape[1])
    return q / np.linalg.norm(q, axis=1, keepdims=True)
