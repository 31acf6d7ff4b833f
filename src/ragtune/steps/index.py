"""Steps of rules/index.smk: embed one chunk shard, build the faiss index from all shards."""

from __future__ import annotations

import logging
import time

import faiss
import numpy as np

from ragtune import models, runtime
from ragtune.io import atomic_path, read_jsonl, write_json
from ragtune.retrieval import index as faiss_index
from ragtune.retrieval.embed import encode, passage_text
from ragtune.retrieval.store import EmbeddingStore, check_vectors, write_manifest

log = logging.getLogger(__name__)


def embed_shard(
    chunks_path: str, out_npy: str, embedder: str, embedding: dict, out_info: str | None = None
) -> None:
    """One shard's vectors; ``out_info``, where given, records the job's device for the cost
    tables (a run's corpus re-embedded by its own encoder, training.embedder.train_documents)."""
    runtime.keep_out_bitsandbytes()  # a sentence-transformers job: nothing is 4-bit
    model = models.load_embedder(embedder, device=runtime.device())
    if embedding["max_seq_length"]:
        model.max_seq_length = embedding["max_seq_length"]
    texts = [passage_text(c) for c in read_jsonl(chunks_path)]
    start = time.time()
    vectors = encode(model, texts, embedding["batch_size"], progress=True)
    seconds = time.time() - start
    log.info(
        "embedded %d chunks in %.1f s (%.1f chunks/s)",
        len(texts),
        seconds,
        len(texts) / max(seconds, 1e-9),
    )
    stored = vectors.astype(np.float16)
    check_vectors(stored, f"{chunks_path} embedded by {embedder}")
    with atomic_path(out_npy) as tmp, open(tmp, "wb") as fh:
        np.save(fh, stored)
    if out_info:
        write_json(
            out_info,
            {"chunks": len(texts), "seconds": round(seconds, 3), **runtime.device_record()},
        )


def build_index(
    shards: list[str],
    chunk_shards: list[str],
    out_index: str,
    out_info: str,
    out_store: str,
    retrieval: dict,
    seed: int,
):
    """The faiss index over all embedding shards, and the store manifest that downstream rules
    read the shards from (see :func:`ragtune.retrieval.store.write_manifest`)."""
    write_manifest(out_store, chunk_shards, shards)
    store = EmbeddingStore(shards)
    faiss_index.check_k(retrieval["k"], len(store), "the corpus")
    start = time.time()
    index = faiss_index.build(
        store,
        retrieval["index_factory"],
        train_size=retrieval["train_size"],
        add_batch_size=retrieval["add_batch_size"],
        seed=seed,
    )
    with atomic_path(out_index) as tmp:
        faiss.write_index(index, str(tmp))
    write_json(
        out_info,
        {
            "index_factory": retrieval["index_factory"],
            "ntotal": int(index.ntotal),
            "dim": store.dim,
            "seconds": round(time.time() - start, 3),
            **faiss_index.faiss_build(),
            **runtime.device_record(),
        },
    )
