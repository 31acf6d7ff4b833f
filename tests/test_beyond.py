"""Beyond the paper, on tiny real inputs (mirror questions, MiniLM, a toy Llama as the judge):
PDist / LSR / LOOP through the joint step with the generator frozen, and document-side
training's own refreshed index. The losses themselves: tests/test_distill.py."""

import json

import numpy as np
import pytest
import torch

from helpers import training_corpus
from ragtune import models, toy
from ragtune.io import read_jsonl, write_jsonl
from ragtune.prompting import answer_token_logprobs, build_example, collate, fit_prompt
from ragtune.retrieval.store import ChunkStore, EmbeddingStore
from ragtune.training import distill
from ragtune.training.joint import Retriever, joint_loss, query_scores

SCALE, SHORT, LONG = 20.0, 96, 1536
SPECS = {
    "pdist": {"name": "pdist", "temperature": 1.0},
    "lsr": {"name": "lsr", "temperature": 0.5},
    "loop": {"name": "loop", "temperature": 2.0, "max_prompt_tokens": LONG},
}


@pytest.fixture(scope="module")
def parts(mirror, minilm_spec, tmp_path_factory):
    """4 questions over their 40 context paragraphs, a flat index, and a frozen toy judge."""
    import faiss

    tmp, questions = training_corpus(mirror, minilm_spec, tmp_path_factory.mktemp("beyond"), 4)
    store = EmbeddingStore([tmp / "emb-000.npy"])
    index = faiss.IndexFlatIP(store.dim)
    index.add(store.vectors(np.arange(len(store))))
    retriever = Retriever(index, store, ChunkStore([tmp / "shard-000.jsonl"]), k=3)
    generator, tok = models.load_generator(str(toy.save_llama(tmp / "judge")), "float32")
    generator.requires_grad_(False)
    return tmp, questions, retriever, generator, tok


def _loss(parts, embedder, spec, train_embedder=True, **kwargs):
    _, questions, retriever, generator, tok = parts
    return joint_loss(
        questions[:2], embedder=embedder, generator=generator, tokenizer=tok,
        retriever=retriever, loss=spec, scale=SCALE, max_prompt_tokens=SHORT,
        train_embedder=train_embedder, train_generator=False, **kwargs,
    )  # fmt: skip


@pytest.mark.parametrize("name", list(SPECS))
def test_distillation_trains_the_embedder_and_never_the_generator(parts, minilm_spec, name):
    generator = parts[3]
    embedder = models.load_embedder(minilm_spec, device="cpu")
    loss = _loss(parts, embedder, SPECS[name])
    loss.backward()
    assert torch.isfinite(loss) and loss > 0
    assert sum(float(p.grad.abs().sum()) for p in embedder.parameters() if p.grad is not None)
    assert all(p.grad is None for p in generator.parameters())
    with pytest.raises(ValueError, match="trains the embedder only"):
        joint_loss(
            parts[1][:1], embedder=embedder, generator=generator, tokenizer=parts[4],
            retriever=parts[2], loss=SPECS[name], scale=SCALE, max_prompt_tokens=SHORT,
            train_embedder=True, train_generator=True,
        )  # fmt: skip


@pytest.mark.parametrize("name", ["pdist", "loop"])
def test_the_joint_step_feeds_the_losses_what_the_generator_says_prompt_by_prompt(
    parts, minilm_spec, name
):
    """The joint step's batched, shared-prefix, right-aligned path against one plain forward
    pass per prompt: PDist's single-chunk prompts, LOOP's top-k less one (which holds every
    chunk of the top k but its own)."""
    _, questions, retriever, generator, tok = parts
    embedder = models.load_embedder(minilm_spec, device="cpu")
    batch = questions[:2]
    rows, scores = query_scores(embedder, [q["question"] for q in batch], retriever, SCALE, False)
    seq_logp = torch.zeros(rows.shape, dtype=torch.float64)
    for b, q in enumerate(batch):
        top = [retriever.chunks[int(r)] for r in rows[b]]
        for i, chunk in enumerate(top):
            if name == "loop":
                prompt = fit_prompt(q["question"], top[:i] + top[i + 1 :], tok, LONG)
                assert chunk["text"][:80] not in prompt
                assert all(c["text"][:80] in prompt for c in top if c is not chunk)
            else:
                prompt = fit_prompt(q["question"], [chunk], tok, SHORT)
            example = build_example(tok, prompt, q["answers"][0])
            with torch.no_grad():
                logp = answer_token_logprobs(generator, collate([example], tok.pad_token_id))
            seq_logp[b, i] = float(logp.sum())
    if name == "loop":
        expected = distill.loop_loss(seq_logp, scores, SPECS[name]["temperature"])
    else:
        q = distill.pdist_target(seq_logp, SPECS[name]["temperature"], "atlas")
        expected = distill.kl_to_retriever(q, scores)
    with torch.no_grad():
        got = _loss(parts, embedder, SPECS[name], train_embedder=False)
    torch.testing.assert_close(got.double(), expected.double(), atol=1e-4, rtol=1e-4)


def test_document_side_scores_encode_the_chunks_as_the_corpus_was_embedded(parts, minilm_spec):
    """train_documents: d(z) comes from the encoder, with gradient, and before any training
    equals the stored vector (float16) it replaces."""
    _, questions, retriever, _, _ = parts
    embedder = models.load_embedder(minilm_spec, device="cpu")
    texts = [q["question"] for q in questions]
    rows, stored = query_scores(embedder, texts, retriever, SCALE, True)
    same_rows, encoded = query_scores(embedder, texts, retriever, SCALE, True, documents=True)
    assert (rows == same_rows).all()
    torch.testing.assert_close(encoded, stored, atol=0.05, rtol=0)  # 20 x float16 rounding
    with_docs = torch.autograd.grad(encoded.sum(), list(embedder.parameters()), allow_unused=True)
    without = torch.autograd.grad(
        query_scores(embedder, texts, retriever, SCALE, True)[1].sum(),
        list(embedder.parameters()),
        allow_unused=True,
    )
    assert any(
        a is not None and not torch.allclose(a, b) for a, b in zip(with_docs, without, strict=True)
    )


def test_a_run_that_trains_documents_retrieves_from_its_own_refreshed_index(parts, minilm_spec):
    """Ft. Embed. with train_documents, then the DAG steps the plan adds for it: the corpus
    re-embedded by the tuned encoder, its own index, and a retrieval that reads that index."""
    from test_train_steps import TRAINING

    from ragtune.steps.index import build_index, embed_shard
    from ragtune.steps.retrieve import retrieve
    from ragtune.steps.train import train_embedder

    tmp = parts[0]
    training = {**TRAINING, "embedder": {**TRAINING["embedder"], "train_documents": True}}
    tuned = tmp / "tuned"
    train_embedder(
        str(tmp / "train.jsonl"), [str(tmp / "emb-000.npy")], [str(tmp / "shard-000.jsonl")],
        minilm_spec, str(tuned), str(tmp / "tuned.json"), 1e-3, training, seed=13,
    )  # fmt: skip
    own = tmp / "refreshed"
    embed_shard(
        str(tmp / "shard-000.jsonl"), str(own / "shard-000.npy"), str(tuned),
        {"max_seq_length": None, "batch_size": 32}, str(own / "shard-000.json"),
    )  # fmt: skip
    assert json.loads((own / "shard-000.json").read_text())["chunks"] == len(parts[2].chunks)
    build_index(
        [str(own / "shard-000.npy")], [str(tmp / "shard-000.jsonl")], str(own / "index.faiss"),
        str(own / "info.json"), str(own / "store.json"),
        {"k": 3, "index_factory": "Flat", "train_size": 600, "add_batch_size": 128}, seed=13,
    )  # fmt: skip
    base, refreshed = np.load(tmp / "emb-000.npy"), np.load(own / "shard-000.npy")
    assert base.shape == refreshed.shape
    assert np.abs(base.astype(np.float32) - refreshed.astype(np.float32)).max() > 0.01
    write_jsonl(tmp / "validation.jsonl", parts[1])
    retrieve(
        [str(tmp / "validation.jsonl")], str(own / "index.faiss"), [str(own / "shard-000.npy")],
        [str(tmp / "shard-000.jsonl")], [str(tmp / "retrieved-own.jsonl")], str(tuned),
        {"k": 3, "nprobe": 1, "ef_search": 16, "rescore_factor": 1, "query_batch_size": 8},
    )  # fmt: skip
    # Its scores are the tuned encoder's cosines against the refreshed vectors, not the base.
    from ragtune.retrieval.embed import encode

    tuned_encoder = models.load_embedder(str(tuned), device="cpu")
    queries = encode(tuned_encoder, [q["question"] for q in parts[1]], 8)
    for q, got in zip(queries, read_jsonl(tmp / "retrieved-own.jsonl"), strict=True):
        rows = got["rows"]
        np.testing.assert_allclose(got["scores"], refreshed[rows] @ q, atol=2e-3)
        assert np.abs(base[rows] @ q - refreshed[rows] @ q).max() > 2e-3
        assert rows == list(np.argsort(-(refreshed.astype(np.float32) @ q))[:3])
