"""Step of rules/qa.smk's retrieve and retrieve_tuned: the top-k chunks of every question."""

from __future__ import annotations

import logging

from ragtune import models, runtime
from ragtune.io import read_jsonl, write_jsonl
from ragtune.retrieval import index as faiss_index
from ragtune.retrieval.embed import encode
from ragtune.retrieval.store import ChunkStore, EmbeddingStore

log = logging.getLogger(__name__)


def retrieve(
    questions_paths: list[str],
    index_path: str,
    embedding_shards: list[str],
    chunk_shards: list[str],
    out_paths: list[str],
    embedder: str,
    retrieval: dict,
) -> None:
    """Top-k chunks for every question of each split: ``{qid, chunk_ids, rows, scores}``,
    ``questions_paths[i]`` into ``out_paths[i]``. The model and the index load once for all.

    Scores are exact cosines rescored from the float16 store; ``rows`` are index rows, which
    give random access to the chunk text without an id dictionary.
    """
    if len(questions_paths) != len(out_paths):
        raise ValueError(f"{len(questions_paths)} question files for {len(out_paths)} outputs")
    runtime.keep_out_bitsandbytes()  # a sentence-transformers job: nothing is 4-bit
    model = models.load_embedder(embedder, device=runtime.device())
    index = faiss_index.read_index(index_path)
    faiss_index.set_search_params(
        index, nprobe=retrieval["nprobe"], ef_search=retrieval["ef_search"]
    )
    store = EmbeddingStore(embedding_shards)
    chunks = ChunkStore(chunk_shards)
    if len(store) != len(chunks) or index.ntotal != len(store):
        raise ValueError(
            f"index ({index.ntotal}), embeddings ({len(store)}) and chunks ({len(chunks)}) "
            "disagree on the corpus size; re-run build_index"
        )
    faiss_index.check_k(retrieval["k"], index.ntotal, f"the index {index_path}")
    for questions_path, out_path in zip(questions_paths, out_paths, strict=True):
        questions = list(read_jsonl(questions_path))
        query_vecs = encode(
            model, [q["question"] for q in questions], retrieval["query_batch_size"]
        )
        rows, scores = faiss_index.search(
            index, store, query_vecs, retrieval["k"], rescore_factor=retrieval["rescore_factor"]
        )
        write_jsonl(
            out_path,
            (
                {
                    "qid": q["id"],
                    "chunk_ids": [chunks[int(r)]["id"] for r in rs],
                    "rows": [int(r) for r in rs],
                    "scores": [round(float(s), 6) for s in ss],
                }
                for q, rs, ss in zip(questions, rows, scores, strict=True)
            ),
        )
        log.info("%s: top-%d for %d questions", out_path, retrieval["k"], len(questions))
