"""Ft. Embed and Ft. Gen steps on tiny real inputs: real MiniLM, real SmolLM2, mirror data."""

import json

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from ragtune import models
from ragtune.io import read_json, read_jsonl, write_jsonl
from ragtune.retrieval.embed import encode, passage_text
from ragtune.retrieval.store import line_offsets, offsets_path
from ragtune.steps.train import train_embedder, train_generator

TRAINING = {
    "warmup_ratio": 0.0,
    "checkpoint_every": 1,
    "embedder": {"batch_size": 4, "loss": "mnrl", "scale": 20.0, "mini_batch": 2},
    "generator": {
        "batch_size": 2,
        "effective_batch_size": 2,
        "max_prompt_tokens": 256,
        "quantize": "none",
    },
}


@pytest.fixture(scope="module")
def tiny(mirror, minilm_spec, tmp_path_factory):
    """8 HotpotQA questions, their 10 context paragraphs each as the corpus, base retrieval."""
    tmp = tmp_path_factory.mktemp("train")
    questions, chunks = [], {}
    for rec in read_jsonl(mirror / "hotpotqa/train.jsonl.gz"):
        questions.append(
            {
                "id": rec["id"],
                "question": rec["question"],
                "answers": [rec["answer"]],
                "gold_titles": list(dict.fromkeys(rec["supporting_facts"]["title"])),
            }
        )
        for title, sents in zip(rec["context"]["title"], rec["context"]["sentences"], strict=True):
            chunks.setdefault(
                title, {"id": f"c{len(chunks)}", "title": title, "text": "".join(sents)}
            )
        if len(questions) == 8:
            break
    shard = tmp / "shard-000.jsonl"
    shard.write_text("".join(json.dumps(c) + "\n" for c in chunks.values()))
    np.save(offsets_path(shard), line_offsets(shard))
    model = models.load_embedder(minilm_spec, device="cpu")
    vecs = encode(model, [passage_text(c) for c in chunks.values()], 32)
    np.save(tmp / "emb-000.npy", vecs.astype(np.float16))
    write_jsonl(tmp / "train.jsonl", questions)
    qv = encode(model, [q["question"] for q in questions], 32)
    top = np.argsort(-(qv @ vecs.T), axis=1)[:, :3]
    write_jsonl(
        tmp / "retrieved.jsonl",
        [
            {"qid": q["id"], "rows": [int(r) for r in rows]}
            for q, rows in zip(questions, top, strict=True)
        ],
    )
    return tmp, questions


def test_train_embedder_moves_only_the_query_side(tiny, minilm_spec):
    tmp, questions = tiny
    out = tmp / "ft_embed"
    train_embedder(
        str(tmp / "train.jsonl"),
        [str(tmp / "emb-000.npy")],
        [str(tmp / "shard-000.jsonl")],
        minilm_spec,
        str(out),
        str(tmp / "e.json"),
        1e-4,
        TRAINING,
        seed=0,
    )
    info = read_json(tmp / "e.json")
    assert info["examples"] == 8 and info["steps"] == 2
    assert not (tmp / "ft_embed.ckpt" / "checkpoint.pt").exists()  # removed once saved
    tuned = SentenceTransformer(str(out), device="cpu")
    base = models.load_embedder(minilm_spec, device="cpu")
    qs = [q["question"] for q in questions]
    delta = np.abs(encode(tuned, qs, 8) - encode(base, qs, 8)).max()
    assert 1e-5 < delta < 0.5  # trained, and not blown up
    assert (out / "loss.csv").read_text().count("\n") == 3


def test_train_generator_writes_a_lora_adapter(tiny, smollm_dir):
    from peft import PeftConfig

    tmp, _ = tiny
    out = tmp / "ft_gen"
    train_generator(
        str(tmp / "train.jsonl"),
        str(tmp / "retrieved.jsonl"),
        [str(tmp / "shard-000.jsonl")],
        str(smollm_dir),
        str(out),
        str(tmp / "g.json"),
        1e-4,
        TRAINING,
        seed=0,
    )
    info = read_json(tmp / "g.json")
    assert info["examples"] == 8 and info["steps"] == 4
    assert np.isfinite(info["final_loss"])
    cfg = PeftConfig.from_pretrained(str(out))
    assert cfg.r == 16 and cfg.base_model_name_or_path == str(smollm_dir)
    assert set(cfg.target_modules) >= {"q_proj", "v_proj", "down_proj"}
    assert (out / "adapter_model.safetensors").exists()
