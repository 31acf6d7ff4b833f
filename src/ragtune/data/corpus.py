"""The retrieval corpus: fetch documents into shards, then cut them into token windows.

Artifacts:
- documents: ``docs/shard-NNN.jsonl``, ``{id, title, text}``, each written by its own job;
- chunks: ``chunks/shard-NNN.jsonl``, ``{id, title, text}``, one file per document shard.

A shard is a job of its own, so an interrupted download resumes the way Snakemake resumes
anything: the shards already written are complete (each is renamed into place at its end) and
are not fetched again; ``--rerun-incomplete`` redoes only the shard that was cut off.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import random
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ragtune.data.sources import load_split
from ragtune.io import write_jsonl

log = logging.getLogger(__name__)


def open_stream(corpus: dict[str, Any], shard: tuple[int, int] | None = None):
    """The corpus as a streaming ``datasets.IterableDataset``; ``shard=(index, count)`` keeps
    the source files of that shard only (the source must have at least ``count`` files)."""
    source = corpus["source"]
    with _named_errors(corpus):  # reading the first records to learn the columns
        ds = load_split(source, source.get("split", "train"), streaming=True)
    if shard is not None:
        index, count = shard
        ds = ds.shard(num_shards=count, index=index, contiguous=True)
    return ds


@contextlib.contextmanager
def _named_errors(corpus: dict[str, Any]):
    """A local file cut short or corrupt (datasets raises gzip's bare errors) becomes a
    ValueError naming the files, their key and the fix."""
    import gzip
    import zlib

    try:
        yield
    except (EOFError, gzip.BadGzipFile, zlib.error, UnicodeDecodeError) as err:
        raise ValueError(
            f"corpus.source.files: {_source_name(corpus)} is corrupt or truncated "
            f"({type(err).__name__}: {err}); download or copy the file again"
        ) from err


def documents(stream, corpus: dict[str, Any]) -> Iterator[dict[str, str]]:
    """``{id, title, text}`` documents of a stream, under the configured field names."""
    with _named_errors(corpus):
        yield from _documents(stream, corpus)


def _documents(stream, corpus: dict[str, Any]) -> Iterator[dict[str, str]]:
    fields = (corpus["id_field"], corpus["title_field"], corpus["text_field"])
    for n, rec in enumerate(stream):
        if corpus.get("limit") is not None and n >= corpus["limit"]:
            return
        missing = [f for f in fields if f not in rec]
        if missing:
            raise KeyError(
                f"corpus record {n} lacks field(s) {missing} (it has {sorted(rec)}); set "
                "corpus.id_field / title_field / text_field to the names the source uses"
            )
        doc_id, title, text = (rec[f] for f in fields)
        bad = [
            f"'{field}' is {value!r:.40}"
            for field, value, ok in (
                (fields[0], doc_id, doc_id is not None and str(doc_id).strip() != ""),
                (fields[1], title, title is None or isinstance(title, str)),
                (fields[2], text, isinstance(text, str) and text.strip() != ""),
            )
            if not ok
        ]
        if bad:
            raise ValueError(
                f"corpus record {n} of {_source_name(corpus)}: {'; '.join(bad)} (want an id, "
                "a text title and non-empty text); fix or drop the record"
            )
        yield {"id": str(doc_id), "title": title or "", "text": text}


def _source_name(corpus: dict[str, Any]) -> str:
    source = corpus["source"]
    return source.get("hub") or ", ".join(source.get("files", []))


def iter_documents(corpus: dict[str, Any]) -> Iterator[dict[str, str]]:
    """Stream every ``{id, title, text}`` document of the configured source, in order."""
    return documents(open_stream(corpus), corpus)


def shard_documents(
    corpus: dict[str, Any],
    index: int,
    count: int,
    gold_titles: set[str] | None = None,
    seed: int = 0,
    questions: Sequence[dict[str, Any]] = (),
) -> Iterator[dict[str, str]]:
    """The documents of shard ``index`` of ``count``.

    - The whole corpus from a source of at least ``count`` files (MedRAG/wikipedia has
      hundreds): the shard streams its own files only, so ``count`` jobs share the download.
    - Otherwise (fewer files, or ``limit`` / ``focus``, which depend on the stream's global
      order): every shard streams the source and keeps every ``count``-th document.
    Either way the shards are disjoint and together hold every document once.
    """
    whole = corpus.get("limit") is None and corpus.get("focus") is None
    if whole:
        stream = open_stream(corpus)
        if stream.num_shards >= count:
            log.info("shard %d of %d: its share of %d files", index, count, stream.num_shards)
            return documents(open_stream(corpus, (index, count)), corpus)
    docs: Iterable[dict[str, str]] = iter_documents(corpus)
    if corpus.get("focus") is not None:
        spec = corpus["focus"]
        docs = focus(
            docs,
            gold_titles or set(),
            spec["distractors"],
            seed,
            questions=questions,
            nearest=spec.get("nearest", 0),
        )
    return itertools.islice(docs, index, None, count)


def focus(
    documents: Iterable[dict[str, Any]],
    gold_titles: set[str],
    distractors: int,
    seed: int,
    questions: Sequence[dict[str, Any]] = (),
    nearest: int = 0,
) -> list[dict[str, Any]]:
    """The gold documents, the ``nearest`` hardest distractors of each of ``questions`` (see
    :func:`nearest_documents`), and ``distractors`` others drawn uniformly (reservoir sampling).

    The draw depends only on the seed and the stream's order, so it is reproducible, and the
    documents keep their order in the source. Random distractors alone make retrieval easy
    (they rarely share a topic with any question); the nearest ones make it as hard as
    HotpotQA's distractor setting. ``nearest`` holds the source in memory: a demo feature.
    """
    close: set[int] = set()
    if nearest and questions:
        documents = list(documents)
        close = nearest_documents(documents, questions, nearest)
    rng = random.Random(seed)
    kept: list[tuple[int, dict[str, Any]]] = []
    reservoir: list[tuple[int, dict[str, Any]]] = []
    seen_other = 0
    for i, doc in enumerate(documents):
        if doc["title"] in gold_titles or i in close:
            kept.append((i, doc))
            continue
        seen_other += 1
        if len(reservoir) < distractors:
            reservoir.append((i, doc))
        else:
            j = rng.randrange(seen_other)
            if j < distractors:
                reservoir[j] = (i, doc)
    return [doc for _, doc in sorted(kept + reservoir, key=lambda pair: pair[0])]


def nearest_documents(
    documents: Sequence[dict[str, Any]], questions: Sequence[dict[str, Any]], per_question: int
) -> set[int]:
    """Indices of the (at most) ``per_question`` documents closest to each question by bigram
    TF-IDF cosine, the question's own gold documents and documents with no shared term excluded.

    This is how HotpotQA chose the distractor paragraphs of its distractor setting (Yang et
    al., 2018): lexically close to the question, so that a retriever must do better than
    match words. TF-IDF rather than the pipeline's embedder keeps the corpus independent of
    the model under test.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), stop_words="english", sublinear_tf=True)
    matrix = vectorizer.fit_transform(f"{d['title']} {d['text']}" for d in documents)
    sims = (vectorizer.transform([q["question"] for q in questions]) @ matrix.T).toarray()
    chosen: set[int] = set()
    for q, row in zip(questions, sims, strict=True):
        gold = set(q["gold_titles"])
        taken = 0
        for i in np.argsort(-row, kind="stable"):
            # A document that shares no term with the question is not near it: stop there.
            if taken == per_question or row[i] <= 0:
                break
            if documents[i]["title"] not in gold:
                chosen.add(int(i))
                taken += 1
    return chosen


def write_shard(documents: Iterable[dict[str, Any]], path: str | Path) -> int:
    """Write one shard atomically, with a progress bar; return its document count."""
    return write_jsonl(
        path, tqdm(documents, desc=f"download {Path(path).name}", unit="doc", mininterval=5)
    )


def window_spans(
    offsets: list[tuple[int, int]], max_tokens: int, overlap: int
) -> list[tuple[int, int]]:
    """Character spans of overlapping windows of at most ``max_tokens`` tokens.

    ``offsets`` are the (start, end) characters of each token. A text that fits in one window
    yields a single span covering all of it, so short chunks pass through unchanged.
    """
    if overlap >= max_tokens:
        raise ValueError(
            f"chunk overlap ({overlap}) must be smaller than max_tokens ({max_tokens})"
        )
    if len(offsets) <= max_tokens:
        return [(0, -1)]
    spans = []
    step = max_tokens - overlap
    for start in range(0, len(offsets), step):
        window = offsets[start : start + max_tokens]
        spans.append((window[0][0], window[-1][1]))
        if start + max_tokens >= len(offsets):
            break
    return spans


def chunk_document(doc: dict[str, str], tokenizer, max_tokens: int, overlap: int) -> list[dict]:
    """Cut one document into windows; each chunk keeps the document's title."""
    text = doc["text"]
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    spans = window_spans(enc["offset_mapping"], max_tokens, overlap)
    if spans == [(0, -1)]:
        return [{"id": doc["id"], "title": doc["title"], "text": text}]
    # Slicing the original text by token offsets keeps its exact characters (no detokenizing).
    return [
        {"id": f"{doc['id']}#{i}", "title": doc["title"], "text": text[a:b]}
        for i, (a, b) in enumerate(spans)
    ]


def chunk_documents(
    docs: Iterable[dict[str, str]], tokenizer, max_tokens: int, overlap: int
) -> Iterator[dict[str, str]]:
    for doc in docs:
        yield from chunk_document(doc, tokenizer, max_tokens, overlap)
