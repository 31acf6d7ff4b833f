"""Encode passages and questions with a sentence-transformers model."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def passage_text(chunk: dict) -> str:
    """What the embedder sees for a chunk: its title, then its text (as MedRAG's ``contents``)."""
    title = chunk.get("title") or ""
    return f"{title}. {chunk['text']}" if title else chunk["text"]


def encode(model, texts: Sequence[str], batch_size: int, *, progress: bool = False) -> np.ndarray:
    """L2-normalised float32 embeddings, so inner product is cosine similarity.

    ``SentenceTransformer.encode`` already sorts texts by length within the call, which keeps
    padding small; we only ask it for normalised numpy output. No texts (an empty shard of a
    tiny corpus) give a (0, dim) array, not the flat empty one the library returns.
    """
    if not texts:
        return np.zeros((0, model.get_embedding_dimension()), dtype=np.float32)
    return model.encode(
        list(texts),
        batch_size=batch_size,
        convert_to_numpy=True,
        normalize_embeddings=True,
        show_progress_bar=progress,
    ).astype(np.float32, copy=False)
