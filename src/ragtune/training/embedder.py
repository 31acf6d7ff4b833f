"""Ft. Embed: multiple-negatives ranking loss on (question, gold chunk) pairs.

Only the query encoder learns. The positive of each question is its gold chunk's embedding read
from the frozen store, and the other questions' positives in the batch are its negatives. The
index therefore stays valid: nothing is re-encoded or re-indexed after training.

Positive rule: a question may have several gold chunks (HotpotQA has two gold articles, and a
long article has several chunks). Each gold *article* gives the question one positive: that
article's chunk the *base* embedder scores highest for it, i.e. its most relevant passage, fixed
before training so every grid point trains on identical pairs. A question with two gold articles
makes two pairs. Taking only the best-scored gold chunk overall would train HotpotQA's questions
on the hop the base embedder already finds and never on the second one, which is the gold that
Recall@k misses; the other article's chunks never count as negatives of their own question.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

DEFAULT_SCALE = 20.0  # sentence-transformers' MNRL default: cosine x 20 as logits


def mnrl_loss(
    queries: torch.Tensor,
    positives: torch.Tensor,
    scale: float = DEFAULT_SCALE,
    offset: int = 0,
    exclude: torch.Tensor | None = None,
):
    """Cross-entropy over ``scale * cos(q_i, c_j)``: each query's own positive is its class.

    The candidates ``c`` are the batch's positives, then any hard negatives: query ``i``'s
    class is column ``i``. ``queries`` may be a slice of the batch starting at ``offset`` (one
    rank's share): query ``i`` of the slice is row ``offset + i``. ``exclude`` [queries,
    candidates], True where a candidate must not count as a negative of that query (a copy of
    one of its gold chunks).
    """
    logits = scale * F.normalize(queries, dim=-1) @ F.normalize(positives, dim=-1).T
    if exclude is not None:
        logits = logits.masked_fill(exclude.to(logits.device), float("-inf"))
    labels = torch.arange(offset, offset + len(queries), device=queries.device)
    return F.cross_entropy(logits, labels)


def encode_with_grad(model, texts: Sequence[str]) -> torch.Tensor:
    """Sentence embeddings with the autograd graph kept (``encode`` runs without grad)."""
    features = model.preprocess(list(texts))
    device = next(model.parameters()).device
    # Besides tensors, sentence-transformers 6 passes metadata (e.g. "modality") through.
    features = {k: v.to(device) if torch.is_tensor(v) else v for k, v in features.items()}
    return model(features)["sentence_embedding"]


def cached_mnrl_step(
    model,
    texts,
    positives,
    scale=DEFAULT_SCALE,
    mini_batch=8,
    offset=0,
    weight=1.0,
    exclude=None,
    documents=None,
):
    """GradCache (Gao et al., 2021), as sentence-transformers' CachedMNRL: the loss sees the
    whole batch, but the encoder's graph is only ever built for ``mini_batch`` texts.

    Pass 1 embeds every mini-batch without grad and takes the loss's gradient w.r.t. those
    embeddings; pass 2 re-embeds each mini-batch with grad and backpropagates its slice of that
    cached gradient. Returns the (detached) loss; gradients of ``weight * loss`` are already in
    the encoder. ``offset``, ``exclude``: as in :func:`mnrl_loss`. ``documents``: the
    candidates' texts, encoded by ``model`` too (document-side training; ``positives`` is then
    unused), in mini-batches of the same size.
    """
    from ragtune.training import rng

    def slices(n):
        return [slice(i, i + mini_batch) for i in range(0, n, mini_batch)]

    sides = [(texts, slices(len(texts)))]
    if documents is not None:
        sides.append((documents, slices(len(documents))))
    # Pass 2 must draw the dropout masks of pass 1, in the same order, from the GPU's generator
    # on CUDA too.
    rng_state = rng.snapshot()
    with torch.no_grad():
        reps = [torch.cat([encode_with_grad(model, side[s]) for s in cuts]) for side, cuts in sides]
    for r in reps:
        r.requires_grad_(True)
    candidates = reps[1] if documents is not None else positives
    loss = mnrl_loss(reps[0], candidates, scale, offset, exclude)
    (loss * weight).backward()
    rng.restore(rng_state)
    for (side, cuts), r in zip(sides, reps, strict=True):
        for s in cuts:
            encode_with_grad(model, side[s]).backward(r.grad[s])
    return loss.detach()


def query_slices(n: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` contiguous (start, end) slices of ``n`` questions, as even as can be; some are
    empty when ``n < parts``."""
    bounds = [round(i * n / parts) for i in range(parts + 1)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def choose_positives(
    base_query_vecs: np.ndarray,
    gold_rows_by_article: Sequence[Sequence[Sequence[int]]],
    store,
    per: str = "per_gold_article",
) -> list[list[int]]:
    """For each question, one positive per gold article: that article's row with the highest
    base score (``per="per_question"``: only the best of those). Articles without a chunk in
    the corpus give none."""
    out: list[list[int]] = []
    for q, articles in zip(base_query_vecs, gold_rows_by_article, strict=True):
        best = []
        for rows in articles:
            if rows:
                scores = store.vectors(list(rows)) @ q
                best.append((float(scores.max()), int(rows[int(np.argmax(scores))])))
        if per == "per_question" and best:
            best = [max(best)]
        out.append([row for _, row in best])
    return out


def hard_negatives(
    retrieved_rows: Sequence[Sequence[int]], gold_rows: Sequence[Sequence[int]], n: int
) -> list[list[int]]:
    """Per question, its ``n`` best-ranked retrieved rows that are not among its gold rows."""
    out = []
    for rows, gold in zip(retrieved_rows, gold_rows, strict=True):
        gold = set(gold)
        out.append([r for r in rows if r not in gold][:n])
    return out


def candidate_exclusions(
    candidates: Sequence[int], gold_rows: Sequence[Sequence[int]], offset: int = 0
) -> torch.Tensor:
    """[questions, candidates] True where candidate ``j`` is a gold row of question ``i`` but
    not its class (column ``offset + i``): a hard negative of one question may be another's
    gold chunk, and must not be pushed away from it."""
    mask = torch.zeros((len(gold_rows), len(candidates)), dtype=torch.bool)
    for i, gold in enumerate(gold_rows):
        gold = set(gold)
        for j, row in enumerate(candidates):
            if row in gold and j != offset + i:
                mask[i, j] = True
    return mask


def batches_without_duplicate_positives(
    pairs: Sequence[tuple[str, int]], batch_size: int, seed: int
) -> list[list[tuple[str, int]]]:
    """Shuffle pairs into batches in which no positive row repeats: a repeated positive would
    be both the target and a negative of the same question (sentence-transformers'
    NoDuplicatesBatchSampler does the same)."""
    order = list(pairs)
    np.random.default_rng(seed).shuffle(order)
    batches: list[list[tuple[str, int]]] = []
    pending = order
    while pending:
        batch, seen, rest = [], set(), []
        for pair in pending:
            if len(batch) < batch_size and pair[1] not in seen:
                batch.append(pair)
                seen.add(pair[1])
            else:
                rest.append(pair)
        batches.append(batch)
        pending = rest
    return batches


def gold_rows_by_title(chunk_titles: Iterable[tuple[int, str]], wanted: set[str]):
    """Map each wanted title to the rows of its chunks (titles repeat across chunks)."""
    out: dict[str, list[int]] = {t: [] for t in wanted}
    for row, title in chunk_titles:
        if title in out:
            out[title].append(row)
    return out
