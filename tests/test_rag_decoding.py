"""RAG-Token and RAG-Sequence decoding against plain greedy decoding and hand computation."""

import pytest
import torch

from ragtune import toy
from ragtune.evaluation import rag_decoding as rd
from ragtune.evaluation.generate import generate_answers
from ragtune.models import load_generator
from ragtune.prompting import (
    answer_token_logprobs,
    build_example,
    build_prompt,
    collate,
    prompt_ids,
)

CHUNKS = [
    {"title": "Oslo", "text": "Oslo is the capital of Norway."},
    {"title": "Bergen", "text": "Bergen is a city on the west coast of Norway, long a port."},
    {"title": "Tromso", "text": "Tromso lies far north."},
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = toy.save_llama(tmp_path_factory.mktemp("toy") / "llama", seed=3)
    return load_generator(str(folder), "float32")


def _prompts(chunks):
    return [build_prompt("What is the capital of Norway?", [c]) for c in chunks]


def _greedy(model, tokenizer, prompt, n=6):
    return generate_answers(
        model, tokenizer, [prompt], batch_size=1, max_new_tokens=n, progress=False
    )[0]


@pytest.mark.parametrize("decode", [rd.rag_token, rd.rag_sequence])
def test_one_chunk_or_identical_chunks_decode_as_greedy(tiny, decode):
    model, tokenizer = tiny
    prompt = _prompts(CHUNKS[:1])
    greedy = _greedy(model, tokenizer, prompt[0])
    assert decode(model, tokenizer, prompt, rd.chunk_log_weights([0.7], 20.0), 6) == greedy
    same = prompt * 3
    weights = rd.chunk_log_weights([0.7, 0.5, 0.1], 20.0)
    assert decode(model, tokenizer, same, weights, 6) == greedy


def test_the_first_token_distribution_is_the_mixture_by_hand(tiny):
    """Prompts of different lengths (left-padded in one batch) against each prompt alone."""
    model, tokenizer = tiny
    prompts = _prompts(CHUNKS)
    cosines = [0.62, 0.55, 0.31]
    log_w = rd.chunk_log_weights(cosines, 20.0)
    with torch.inference_mode():
        alone = [
            torch.softmax(model(torch.tensor([prompt_ids(tokenizer, p)])).logits[0, -1], -1)
            for p in prompts
        ]
    w = torch.softmax(20.0 * torch.tensor(cosines), 0)
    by_hand = sum(wz * pz for wz, pz in zip(w, alone, strict=True))
    got = rd.first_token_mixture(model, tokenizer, prompts, log_w).exp()
    torch.testing.assert_close(got, by_hand, atol=1e-5, rtol=1e-4)
    assert abs(float(got.sum()) - 1) < 1e-4


def test_rag_sequence_picks_the_candidate_with_the_highest_marginal(tiny):
    model, tokenizer = tiny
    prompts = _prompts(CHUNKS)
    log_w = rd.chunk_log_weights([0.62, 0.55, 0.31], 20.0)
    picked = rd.rag_sequence(model, tokenizer, prompts, log_w, 4)
    candidates = list(dict.fromkeys(_greedy(model, tokenizer, p, 4) for p in prompts))
    assert len(candidates) > 1  # the test means something only if the chunks disagree

    def marginal(answer):  # each (answer, chunk) scored alone, no batch, no padding
        logps = []
        for p in prompts:
            batch = collate([build_example(tokenizer, p, answer)], tokenizer.pad_token_id)
            with torch.inference_mode():
                logps.append(answer_token_logprobs(model, batch).sum())
        return torch.logsumexp(torch.stack(logps) + log_w, 0)

    assert picked == max(candidates, key=lambda c: float(marginal(c)))


@pytest.mark.parametrize(
    ("one", "batched"),
    [(rd.rag_token, rd.rag_token_batch), (rd.rag_sequence, rd.rag_sequence_batch)],
)
def test_questions_decoded_together_answer_as_one_at_a_time(tiny, one, batched):
    """Four questions with their own chunks, orders and weights in one batch of 4 x 3 rows
    (prompts of different lengths, so left padding differs from the one-question batches)."""
    model, tok = tiny
    questions = ["What is the capital of Norway?", "Where is Bergen?", "Who?", "Which port?"]
    orders = [CHUNKS, CHUNKS[::-1], CHUNKS[1:] + CHUNKS[:1], [CHUNKS[2], CHUNKS[0], CHUNKS[1]]]
    groups = [
        [build_prompt(q, [c]) for c in order] for q, order in zip(questions, orders, strict=True)
    ]
    weights = torch.stack(
        [rd.chunk_log_weights(w, 20.0) for w in ([0.9, 0.1, 0.3], [0.2, 0.8, 0.5],
                                                  [0.4, 0.4, 0.4], [0.1, 0.2, 0.95])]
    )  # fmt: skip
    alone = [one(model, tok, g, w, 6) for g, w in zip(groups, weights, strict=True)]
    assert batched(model, tok, groups, weights, 6) == alone


def test_rag_batches_fill_the_rows_of_a_concat_batch():
    assert rd.questions_per_batch(40, 5) == 8 and rd.rows_per_batch(40, 5) == 40
    assert rd.questions_per_batch(3, 5) == 1 and rd.rows_per_batch(3, 5) == 5  # k rows at least


@pytest.mark.parametrize("decoding", ["rag_token", "rag_sequence"])
def test_the_evaluate_step_decodes_as_configured(tmp_path, decoding):
    """The step with each decoding: answers every question from its k single-chunk prompts
    and records which decoding made its metrics; with one chunk per question it answers as
    the concatenated prompt does (a one-chunk context is the same prompt)."""
    import json

    import numpy as np

    from ragtune.io import read_jsonl, write_jsonl
    from ragtune.retrieval.store import line_offsets, offsets_path
    from ragtune.steps.evaluate import evaluate

    folder = toy.save_llama(tmp_path / "llama", seed=3)
    shard = tmp_path / "shard-000.jsonl"
    shard.write_text("".join(json.dumps({"id": f"c{i}", **c}) + "\n" for i, c in enumerate(CHUNKS)))
    np.save(offsets_path(shard), line_offsets(shard))
    questions = [{"id": "q1", "question": "Capital of Norway?", "answers": ["Oslo"],
                  "gold_titles": ["Oslo"]}]  # fmt: skip
    write_jsonl(tmp_path / "q.jsonl", questions)
    generation = {"dtype": "float32", "lora_base": "auto", "max_prompt_tokens": 256,
                  "batch_size": 1, "max_new_tokens": 5, "num_beams": 1}  # fmt: skip
    runs = {}
    for k, name in ((3, decoding), (1, decoding), (1, "concat")):
        write_jsonl(tmp_path / "r.jsonl", [{"qid": "q1", "rows": list(range(k)),
                                            "scores": [0.6, 0.5, 0.4][:k]}])  # fmt: skip
        out = tmp_path / f"{name}-{k}"
        metrics = evaluate(
            str(tmp_path / "q.jsonl"), str(tmp_path / "r.jsonl"), [str(shard)], str(folder),
            generation, str(out) + ".json", str(out) + ".jsonl", decoding=name, scale=20.0,
        )  # fmt: skip
        assert metrics["decoding"] == name and metrics["n"] == 1
        runs[(name, k)] = next(read_jsonl(str(out) + ".jsonl"))["prediction"]
    assert runs[(decoding, 1)] == runs[("concat", 1)]
    assert metrics["dtype"] == "float32"
