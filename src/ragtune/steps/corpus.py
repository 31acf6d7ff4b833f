"""Steps of rules/corpus.smk: download the corpus into shards, chunk one shard."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ragtune import models
from ragtune.data.corpus import chunk_documents, shard_documents, write_shard
from ragtune.io import atomic_path, read_jsonl
from ragtune.retrieval.store import line_offsets, offsets_path

log = logging.getLogger(__name__)


def download(
    corpus: dict,
    shard_path: str,
    index: int,
    count: int,
    qa_paths: list[str] = (),
    seed: int = 0,
) -> None:
    """Stream shard ``index`` of ``count`` of the corpus into ``shard_path``; with
    ``corpus.focus``, the corpus is the gold documents of the questions in ``qa_paths`` plus
    distractors."""
    gold, questions = None, []
    if corpus.get("focus") is not None:
        questions = [q for path in qa_paths for q in read_jsonl(path)]
        gold = {t for q in questions for t in q["gold_titles"]}
        log.info("focused corpus: the gold documents of %d titles plus distractors", len(gold))
    docs = shard_documents(corpus, index, count, gold, seed, questions=questions)
    n = write_shard(docs, shard_path)
    log.info("%s: %d documents (shard %d of %d)", Path(shard_path).name, n, index, count)


def chunk_shard(docs_path: str, chunks_path: str, chunking: dict) -> None:
    """Chunk one document shard; also write the byte offset of every chunk for random access."""
    tokenizer = models.load_tokenizer(chunking["tokenizer"])
    docs = read_jsonl(docs_path)
    chunks = chunk_documents(
        tqdm(docs, desc="chunk", unit="doc", mininterval=5),
        tokenizer,
        chunking["max_tokens"],
        chunking["overlap"],
    )
    n = 0
    with atomic_path(chunks_path) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            for chunk in chunks:
                fh.write(json.dumps(chunk, ensure_ascii=False) + "\n")
                n += 1
        # The offsets are written inside the same atomic step: both files or neither.
        with atomic_path(offsets_path(chunks_path)) as otmp, open(otmp, "wb") as ofh:
            np.save(ofh, line_offsets(tmp))
    log.info("%s: %d chunks", Path(chunks_path).name, n)
