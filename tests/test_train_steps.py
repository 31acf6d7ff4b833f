"""Ft. Embed and Ft. Gen steps on tiny real inputs: real MiniLM, real SmolLM2, mirror data."""

from unittest.mock import Mock

import numpy as np
import pandas as pd
import pytest
import torch
from sentence_transformers import SentenceTransformer

from helpers import training_corpus
from ragtune import models
from ragtune.io import read_json, write_jsonl
from ragtune.retrieval.embed import encode
from ragtune.steps.train import train_embedder, train_generator
from ragtune.training import loop

# Slow tier (real SmolLM2-135M and MiniLM training): `make test` runs it, test-fast does not.
pytestmark = pytest.mark.slow

TRAINING = {
    "warmup_ratio": 0.0,
    "optimizer": "adamw",
    "weight_decay": 0.0,
    "max_grad_norm": 1.0,
    "checkpoint_every": 1,
    "lora_dropout": 0.05,
    "gradient_checkpointing": "auto",
    "dtype": "auto",
    "embedder": {
        "batch_size": 4,
        "loss": "mnrl",
        "scale": 20.0,
        "mini_batch": 2,
        "positives": "per_gold_article",
        "hard_negatives": 0,
        "train_documents": False,
    },
    "generator": {
        "batch_size": 2,
        "effective_batch_size": 2,
        "max_prompt_tokens": 128,
        "loss_tokens": "answer",
        "quantize": "none",
    },
}


@pytest.fixture(scope="module")
def tiny(mirror, minilm_spec, tmp_path_factory):
    """8 HotpotQA questions, their 10 context paragraphs each as the corpus, base retrieval."""
    return training_corpus(mirror, minilm_spec, tmp_path_factory.mktemp("train"), 8)


def test_train_embedder_moves_only_the_query_side(tiny, minilm_spec, monkeypatch):
    tmp, questions = tiny
    out = tmp / "ft_embed"

    def run():
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

    # The first attempt is killed after its last step; the second resumes and finishes, and
    # its record counts both attempts' time.
    with monkeypatch.context() as m:
        m.setattr(loop, "write_loss_csv", Mock(side_effect=KeyboardInterrupt("killed")))
        with pytest.raises(KeyboardInterrupt):
            run()
    assert not out.exists() and (tmp / "ft_embed.ckpt" / loop.CHECKPOINT).exists()
    run()
    info = read_json(tmp / "e.json")
    assert info["attempts"] == 2 and info["earlier_attempts_seconds"] > 0
    # Every HotpotQA question has two gold articles in this corpus: one pair each, 4 per batch.
    assert all(len(q["gold_titles"]) == 2 for q in questions)
    assert info["examples"] == 16 and info["steps"] == 4
    assert not (tmp / "ft_embed.ckpt").exists()  # the checkpoint folder goes once saved
    tuned = SentenceTransformer(str(out), device="cpu")
    base = models.load_embedder(minilm_spec, device="cpu")
    qs = [q["question"] for q in questions]
    delta = np.abs(encode(tuned, qs, 8) - encode(base, qs, 8)).max()
    assert 1e-5 < delta < 0.5  # trained, and not blown up
    assert (out / "loss.csv").read_text().count("\n") == 5


def test_hard_negatives_make_the_first_loss_harder(tiny, minilm_spec):
    """The base retrieval's non-gold chunks as extra negatives: the same first batch, a higher
    loss (these negatives score close to the positives)."""
    tmp, questions = tiny
    # Two questions, two gold articles each: one batch of 4 pairs, one step per run.
    write_jsonl(tmp / "train-2.jsonl", questions[:2])
    first = {}
    for n in (0, 2):
        training = {**TRAINING, "embedder": {**TRAINING["embedder"], "hard_negatives": n}}
        train_embedder(
            str(tmp / "train-2.jsonl"),
            [str(tmp / "emb-000.npy")],
            [str(tmp / "shard-000.jsonl")],
            minilm_spec,
            str(tmp / f"hn{n}"),
            str(tmp / f"hn{n}.json"),
            1e-4,
            training,
            seed=0,
            retrieved_path=str(tmp / "retrieved.jsonl"),
        )
        first[n] = read_json(tmp / f"hn{n}.json")["first_loss"]
        assert read_json(tmp / f"hn{n}.json")["steps"] == 1
    assert first[2] > first[0] > 0


def test_train_generator_writes_a_lora_adapter(tiny, smollm_dir):
    from peft import PeftConfig

    tmp, questions = tiny
    out = tmp / "ft_gen"
    write_jsonl(tmp / "train-4.jsonl", questions[:4])  # 2 steps: what is written, not learnt
    train_generator(
        str(tmp / "train-4.jsonl"),
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
    assert info["examples"] == 4 and info["steps"] == 2
    assert np.isfinite(info["final_loss"])
    cfg = PeftConfig.from_pretrained(str(out))
    assert cfg.r == 16 and cfg.base_model_name_or_path == str(smollm_dir)
    assert set(cfg.target_modules) >= {"q_proj", "v_proj", "down_proj"}
    assert (out / "adapter_model.safetensors").exists()


def test_padded_batch_scores_answers_like_single_rows(smollm_dir):
    """Left padding, position ids and logits_to_keep change nothing on the real SmolLM2:
    each row's answer log-probs equal those of the row alone with full logits."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ragtune.prompting import answer_token_logprobs, build_example, collate

    tok = AutoTokenizer.from_pretrained(smollm_dir)
    model = AutoModelForCausalLM.from_pretrained(smollm_dir, dtype=torch.float32).eval()
    examples = [
        build_example(
            tok, "### Question:\nWho wrote Hamlet?\n### Answer:\n", "William Shakespeare"
        ),
        build_example(tok, "### Question:\nCapital of France?\n### Answer:\n", "Paris"),
    ]
    with torch.no_grad():
        batched = answer_token_logprobs(model, collate(examples, tok.pad_token_id))
        for row, ex in zip(batched, examples, strict=True):
            ids = torch.tensor([ex.input_ids])
            logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1], -1)
            n = sum(ex.answer_mask)
            alone = logp[-n:].gather(-1, ids[0, -n:, None])[:, 0]
            torch.testing.assert_close(row[-n:], alone, atol=2e-4, rtol=1e-4)
            assert (row[:-n] == 0).all()


JOINT = {
    **TRAINING,
    "joint": {
        "batch_size": 2,
        "effective_batch_size": 2,
        "scale": 20.0,
        "max_prompt_tokens": 96,
        "quantize": "none",
        "rows_per_forward": 0,
        "validation_loss_every": 1,
        "validation_questions": 2,
    },
}
RETRIEVAL = {"k": 3, "nprobe": 1, "ef_search": 16, "rescore_factor": 1}


@pytest.fixture(scope="module")
def joint_parts(tiny, minilm_spec, smollm_dir):
    """A flat index over the tiny corpus, the query encoder, and SmolLM2 with fresh LoRA."""
    import faiss

    from ragtune.retrieval.store import ChunkStore, EmbeddingStore
    from ragtune.training.joint import Retriever

    tmp, questions = tiny
    store = EmbeddingStore([tmp / "emb-000.npy"])
    index = faiss.IndexFlatIP(store.dim)
    index.add(store.vectors(np.arange(len(store))))
    faiss.write_index(index, str(tmp / "index.faiss"))
    retriever = Retriever(index, store, ChunkStore([tmp / "shard-000.jsonl"]), k=3)
    return tmp, questions, retriever


def _grads(params):
    return sum(float(p.grad.abs().sum()) for p in params if p.grad is not None)


def _joint_loss(questions, retriever, embedder, generator, tok, **kwargs):
    """The joint loss on the tiny index, at the tests' scale and prompt length; ``kwargs``
    default to RAG-Token with both sides learning."""
    from ragtune.training.joint import joint_loss

    kwargs = {"loss": "rag_token", "train_embedder": True, "train_generator": True, **kwargs}
    return joint_loss(
        questions,
        embedder=embedder,
        generator=generator,
        tokenizer=tok,
        retriever=retriever,
        scale=20.0,
        max_prompt_tokens=96,
        **kwargs,
    )


@pytest.mark.parametrize(("train_embedder", "train_generator"), [(1, 1), (0, 1), (1, 0)])
def test_joint_gradients_reach_exactly_the_trained_sides(
    joint_parts, minilm_spec, smollm_dir, train_embedder, train_generator
):
    from ragtune.models import load_for_training

    _, questions, retriever = joint_parts
    embedder = models.load_embedder(minilm_spec, device="cpu")
    embedder.requires_grad_(bool(train_embedder))
    generator, tok = load_for_training(str(smollm_dir), "none")
    if not train_generator:
        generator.requires_grad_(False)
    for loss in ("rag_sequence", "rag_token"):
        embedder.zero_grad(set_to_none=True)
        generator.zero_grad(set_to_none=True)
        value = _joint_loss(
            questions[:1], retriever, embedder, generator, tok,
            loss=loss, train_embedder=bool(train_embedder), train_generator=bool(train_generator),
        )  # fmt: skip
        value.backward()
        lora = [p for n, p in generator.named_parameters() if "lora_" in n]
        assert (_grads(embedder.parameters()) > 0) == bool(train_embedder), loss
        assert (_grads(lora) > 0) == bool(train_generator), loss


def test_a_bf16_generator_base_trains_jointly(joint_parts, minilm_spec, tmp_path):
    """``training.dtype: bfloat16`` on a CPU (the lever for CPUs with native bf16): the joint
    step runs with a bf16 base, its shared-prefix cache included, and both the float32 LoRA
    adapters and the float32 query encoder get finite gradients. A toy Llama: bf16 is slow on
    a CPU without native bf16."""
    from ragtune import toy
    from ragtune.models import load_for_training

    _, questions, retriever = joint_parts
    embedder = models.load_embedder(minilm_spec, device="cpu")
    folder = toy.save_llama(tmp_path / "toy")
    generator, tok = load_for_training(str(folder), "none", dtype="bfloat16")
    value = _joint_loss(questions[:1], retriever, embedder, generator, tok, rows_per_forward=1)
    value.backward()
    assert torch.isfinite(value) and value.dtype == torch.float32
    lora = [p for n, p in generator.named_parameters() if "lora_" in n]
    assert all(p.dtype == torch.float32 for p in lora)
    assert all(torch.isfinite(p.grad).all() for p in lora if p.grad is not None)
    assert _grads(lora) > 0 and _grads(embedder.parameters()) > 0


def test_joint_training_lowers_its_loss(joint_parts, minilm_spec, smollm_dir, tmp_path):
    """Four RAG-Token steps on one question, both models learning: the loss falls (from 3.6
    to 0.5 after one step and 0.002 after three, here)."""
    from ragtune.models import load_for_training
    from ragtune.training import loop

    _, questions, retriever = joint_parts
    embedder = models.load_embedder(minilm_spec, device="cpu")
    generator, tok = load_for_training(str(smollm_dir), "none")
    lora = [p for p in generator.parameters() if p.requires_grad]
    history = loop.train(
        [questions[:1]] * 4,
        lambda batch: _joint_loss(batch, retriever, embedder, generator, tok),
        [{"params": lora, "lr": 2e-3}, {"params": list(embedder.parameters()), "lr": 1e-5}],
        tmp_path,
        loop.LoopConfig(checkpoint_every=10**6, seed=0),
    )
    first, last = history[0]["loss"], np.mean([h["loss"] for h in history[-2:]])
    assert last < 0.5 * first, (first, last)


def test_train_joint_writes_what_it_trained(joint_parts, minilm_spec, smollm_dir):
    from peft import PeftConfig

    from ragtune.steps.train import train_joint

    tmp, questions, _ = joint_parts
    # 4 questions, 2 steps: this checks what is written, not what is learnt.
    write_jsonl(tmp / "train-4.jsonl", questions[:4])
    common = dict(retrieval=RETRIEVAL, training=JOINT, seed=0, loss="rag_sequence")
    args = (
        str(tmp / "train-4.jsonl"),
        str(tmp / "index.faiss"),
        [str(tmp / "emb-000.npy")],
        [str(tmp / "shard-000.jsonl")],
        minilm_spec,
    )
    common["val_questions_path"] = str(tmp / "train-4.jsonl")
    both = tmp / "joint"
    train_joint(
        *args, str(smollm_dir), str(both), str(tmp / "j.json"), embed_lr=1e-5, gen_lr=1e-4, **common
    )
    assert {p.name for p in both.iterdir()} == {"query_encoder", "adapter", "loss.csv"}
    # validation_loss_every 1: a validation loss at each of the 2 steps (the paper's Figure 4)
    curve = pd.read_csv(both / "loss.csv")
    assert len(curve) == 2 and curve["val_loss"].notna().all() and (curve["val_loss"] > 0).all()
    assert PeftConfig.from_pretrained(str(both / "adapter")).r == 16
    info = read_json(tmp / "j.json")
    assert info["steps"] == 2 and np.isfinite(info["final_loss"])
    assert info["lr"] == {"embedder": 1e-5, "generator": 1e-4}
    # 2-Phase's second phase: the generator above stays frozen, only the query encoder learns
    phase2 = tmp / "phase2"
    train_joint(
        *args,
        str(both / "adapter"),
        str(phase2),
        str(tmp / "p2.json"),
        embed_lr=1e-5,
        gen_lr=None,
        **common,
    )
    assert {p.name for p in phase2.iterdir()} == {"query_encoder", "loss.csv"}
    SentenceTransformer(str(phase2 / "query_encoder"), device="cpu")


def test_rows_in_pieces_score_like_one_batch(joint_parts, smollm_dir):
    """Running the shared prefix once, and the B*k prompts in length-sorted pieces, changes
    no log-prob: each equals the plain full-prompt computation."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ragtune.prompting import answer_token_logprobs, collate
    from ragtune.training.joint import (
        answer_logprobs_by_row,
        shared_prefix_length,
        single_chunk_examples,
    )

    _, questions, retriever = joint_parts
    tok = AutoTokenizer.from_pretrained(smollm_dir)
    model = AutoModelForCausalLM.from_pretrained(smollm_dir, dtype=torch.float32).eval()
    rows = [[0, 5, 9], [3, 1, 7]]
    examples = single_chunk_examples(tok, questions[:2], rows, retriever.chunks, 160)
    assert len({len(e.input_ids) for e in examples}) > 1  # the pieces really differ in length
    assert shared_prefix_length(examples) > 20  # the instruction is shared
    with torch.no_grad():
        plain = answer_token_logprobs(model, collate(examples, tok.pad_token_id))
        together = answer_logprobs_by_row(model, examples, tok.pad_token_id, 0)
        one_by_one = answer_logprobs_by_row(model, examples, tok.pad_token_id, 1)
        pairs = answer_logprobs_by_row(model, examples, tok.pad_token_id, 2)
    torch.testing.assert_close(together, plain, atol=2e-4, rtol=1e-4)
    torch.testing.assert_close(one_by_one, together, atol=2e-4, rtol=1e-4)
    torch.testing.assert_close(pairs, together, atol=2e-4, rtol=1e-4)


def test_fresh_lora_adapters_follow_the_seed(smollm_dir):
    # B starts at zero, so a first loss cannot show it: compare the A matrices themselves
    from ragtune.models import load_for_training

    def lora_a(seed):
        torch.manual_seed(1000 + seed)  # whatever ran before must not matter
        model, _ = load_for_training(str(smollm_dir), "none", seed=seed)
        return {n: p.detach().clone() for n, p in model.named_parameters() if "lora_A" in n}

    first, again, other = lora_a(13), lora_a(13), lora_a(14)
    assert first and first.keys() == again.keys()
    assert all(torch.equal(first[n], again[n]) for n in first)
    assert not any(torch.equal(first[n], other[n]) for n in first)
