"""Steps of rules/train.smk: Ft. Embed and Ft. Gen for one grid point (one learning rate).

Checkpoints live in ``<output>.ckpt/``, beside the output and not inside it: Snakemake clears a
job's declared outputs before re-running it, and the checkpoint must survive that to resume.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import torch

from ragtune import models, rule_settings, runtime
from ragtune.io import atomic_path, read_jsonl, write_json
from ragtune.models import load_for_training, quantizes, save_adapter
from ragtune.prompting import build_example, collate, fit_prompt
from ragtune.retrieval.embed import encode, passage_text
from ragtune.retrieval.store import ChunkStore, EmbeddingStore
from ragtune.training import distributed, loop
from ragtune.training.embedder import (
    batches_without_duplicate_positives,
    cached_mnrl_step,
    candidate_exclusions,
    choose_positives,
    encode_with_grad,
    gold_rows_by_title,
    hard_negatives,
    mnrl_loss,
    query_slices,
)
from ragtune.training.generator import generator_loss, length_grouped_batches, padding_fraction

log = logging.getLogger(__name__)


def _stat(paths) -> list:
    """Large inputs (embedding shards, the index) stand in a fingerprint by size and time:
    hashing gigabytes at every start would cost more than the check is worth."""
    return [(str(p), Path(p).stat().st_size, Path(p).stat().st_mtime_ns) for p in paths]


def _work_dir(out_dir: str) -> Path:
    return Path(str(out_dir).rstrip("/") + ".ckpt")


def _result_shaping(training: dict) -> dict:
    """The training settings a checkpoint's fingerprint holds: those that shape the result.
    A speed or memory knob (checkpoint_every, gradient checkpointing, GradCache's mini-batch,
    rows per forward) changed between attempts must not throw a checkpoint away."""
    return rule_settings.result_config({"training": training})["training"]


def _loop_config(training: dict, seed: int, grad_accum: int = 1, generator=None) -> loop.LoopConfig:
    """``generator``: the trained generator, if any; float16 compute (a GPU without native
    bf16) turns on loss scaling."""
    compute = (getattr(generator, "ragtune_base", None) or {}).get("compute_dtype")
    return loop.LoopConfig(
        grad_accum=grad_accum,
        warmup_ratio=training["warmup_ratio"],
        checkpoint_every=training["checkpoint_every"],
        optimizer=training["optimizer"],
        weight_decay=training["weight_decay"],
        max_grad_norm=training["max_grad_norm"],
        seed=seed,
        loss_scaling=compute == "float16",
    )


def train_embedder(
    questions_path: str,
    embedding_shards: list[str],
    chunk_shards: list[str],
    embedder: str,
    out_dir: str,
    out_info: str,
    lr: float,
    training: dict,
    seed: int,
    retrieved_path: str | None = None,
) -> None:
    """Ft. Embed for one learning rate. ``retrieved_path``: the base retrieval of the train
    split, where ``training.embedder.hard_negatives`` are taken from."""
    start = time.time()
    questions = list(read_jsonl(questions_path))
    store, chunks = EmbeddingStore(embedding_shards), ChunkStore(chunk_shards)
    wanted = {t for q in questions for t in q["gold_titles"]}
    by_title = gold_rows_by_title(((r, chunks[r]["title"]) for r in range(len(chunks))), wanted)
    runtime.keep_out_bitsandbytes()  # a sentence-transformers job: nothing is 4-bit
    model = models.load_embedder(embedder, device=runtime.device())
    base_vecs = encode(model, [q["question"] for q in questions], 64)
    articles = [[by_title[t] for t in q["gold_titles"]] for q in questions]
    gold = [[r for rows in a for r in rows] for a in articles]
    cfg = training["embedder"]
    positives = choose_positives(base_vecs, articles, store, cfg["positives"])
    negatives = [[] for _ in questions]
    if cfg["hard_negatives"]:
        if retrieved_path is None:
            raise ValueError("training.embedder.hard_negatives needs the train split's retrieval")
        retrieved = {r["qid"]: r["rows"] for r in read_jsonl(retrieved_path)}
        ranked = [retrieved[q["id"]] for q in questions]
        negatives = hard_negatives(ranked, gold, cfg["hard_negatives"])
    # (question, positive row, its gold rows, its hard-negative rows): one per gold article
    pairs = [
        (q["question"], p, g, n)
        for q, ps, g, n in zip(questions, positives, gold, negatives, strict=True)
        for p in ps
    ]
    if not pairs:
        raise ValueError(f"{questions_path}: no question has a gold chunk in the corpus")
    log.info(
        "%d (question, gold chunk) pairs of %d questions, %d hard negatives",
        len(pairs),
        len(questions),
        sum(len(p[3]) for p in pairs),
    )
    batches = batches_without_duplicate_positives(pairs, cfg["batch_size"], seed)
    scale, cached = cfg["scale"], cfg["loss"] == "cached_mnrl"
    documents = cfg["train_documents"]
    # One MNRL batch is one optimizer step. Its questions are cut into one slice per rank, each
    # scored against all the batch's positives (read from the store, or with train_documents
    # encoded by every rank, so no rank needs another's embeddings): the in-batch negatives and
    # the loss are the whole batch's on any world size.
    world = distributed.world_size()
    micro = [(batch, part) for batch in batches for part in query_slices(len(batch), world)]
    model.train()

    def loss_fn(item):
        batch, (a, b) = item
        if a == b:  # fewer questions than ranks in this batch
            return torch.zeros(())
        texts = [pair[0] for pair in batch[a:b]]
        # Candidates: every positive of the batch (column i is question i's), then every hard
        # negative; none counts as a negative of a question whose gold chunk it is.
        rows = [pair[1] for pair in batch] + [r for pair in batch for r in pair[3]]
        exclude = candidate_exclusions(rows, [pair[2] for pair in batch[a:b]], a)
        # The loop averages its `world` micro-batches; weigh each slice by its share instead.
        share = (b - a) / len(batch)
        # Document-side training encodes the candidates with the model, with gradient; else
        # they are the base embedder's stored vectors.
        passages = [passage_text(chunks[r]) for r in rows] if documents else None
        cands = None if documents else torch.from_numpy(store.vectors(rows)).to(model.device)
        if cached:
            loss = cached_mnrl_step(
                model, texts, cands, scale, cfg["mini_batch"], a, share, exclude, passages
            )
            return loss * share * world
        query = encode_with_grad(model, texts)
        if documents:
            cands = encode_with_grad(model, passages)
        return mnrl_loss(query, cands, scale, a, exclude) * share * world

    work = _work_dir(out_dir)
    history = loop.train(
        micro,
        loss_fn,
        [{"params": [p for p in model.parameters() if p.requires_grad], "lr": lr}],
        work,
        _loop_config(training, seed, grad_accum=world),
        state=model.state_dict,
        load_state=model.load_state_dict,
        started=start,
        run_fingerprint=loop.fingerprint(
            [questions_path, *([retrieved_path] if retrieved_path else [])],
            store=_stat(embedding_shards),
            embedder=embedder,
            lr=lr,
            training=_result_shaping(training),
            seed=seed,
        ),
    )
    _finish(
        out_dir,
        out_info,
        work,
        lambda tmp: model.save(str(tmp)),
        start,
        lr,
        len(pairs),
        history,
        seed=seed,
    )


def train_generator(
    questions_path: str,
    retrieved_path: str,
    chunk_shards: list[str],
    generator: str,
    out_dir: str,
    out_info: str,
    lr: float,
    training: dict,
    seed: int,
) -> None:
    start = time.time()
    cfg = training["generator"]
    if not quantizes(cfg["quantize"]):
        runtime.keep_out_bitsandbytes()
    questions = list(read_jsonl(questions_path))
    retrieved = {r["qid"]: r for r in read_jsonl(retrieved_path)}
    chunks = ChunkStore(chunk_shards)
    model, tokenizer = load_for_training(
        generator,
        cfg["quantize"],
        training["lora_dropout"],
        seed,
        training["gradient_checkpointing"],
        training["dtype"],
    )
    examples = [
        build_example(
            tokenizer,
            fit_prompt(
                q["question"],
                chunks.get_many(retrieved[q["id"]]["rows"]),
                tokenizer,
                cfg["max_prompt_tokens"],
            ),
            q["answers"][0],
            cfg["loss_tokens"],
        )
        for q in questions
    ]
    lengths = [len(e.input_ids) for e in examples]
    groups = length_grouped_batches(lengths, cfg["batch_size"], seed)
    log.info(
        "%d examples, %d batches, padding %.1f%% of tokens",
        len(examples),
        len(groups),
        100 * padding_fraction(groups, lengths),
    )
    batches = [collate([examples[i] for i in g], tokenizer.pad_token_id) for g in groups]
    grad_accum = max(1, cfg["effective_batch_size"] // cfg["batch_size"])
    trainable = [p for p in model.parameters() if p.requires_grad]
    model.train()

    def lora_state():
        return {k: v for k, v in model.state_dict().items() if "lora_" in k}

    work = _work_dir(out_dir)
    history = loop.train(
        batches,
        lambda b: generator_loss(model, b),
        [{"params": trainable, "lr": lr}],
        work,
        _loop_config(training, seed, grad_accum, generator=model),
        state=lora_state,
        load_state=lambda s: model.load_state_dict(s, strict=False),
        started=start,
        run_fingerprint=loop.fingerprint(
            [questions_path, retrieved_path],
            chunks=_stat(chunk_shards),
            generator=generator,
            lr=lr,
            training=_result_shaping(training),
            seed=seed,
        ),
    )
    _finish(
        out_dir,
        out_info,
        work,
        lambda tmp: save_adapter(model, tokenizer, tmp),
        start,
        lr,
        len(examples),
        history,
        seed=seed,
    )


def train_joint(
    questions_path: str,
    index_path: str,
    embedding_shards: list[str],
    chunk_shards: list[str],
    embedder: str,
    generator: str,
    out_dir: str,
    out_info: str,
    *,
    loss: str | dict,
    embed_lr: float | None,
    gen_lr: float | None,
    retrieval: dict,
    training: dict,
    seed: int,
    val_questions_path: str | None = None,
) -> None:
    """RAG-Sequence / RAG-Token training of both models, or of one with the other frozen
    (``embed_lr`` or ``gen_lr`` None). ``generator`` is the base model when it trains (fresh
    LoRA), or a model or adapter folder that stays frozen (2-Phase's second phase).

    Output folder: ``query_encoder/`` (a sentence-transformers folder) if the embedder
    trained, ``adapter/`` (a peft folder) if the generator did, and ``loss.csv``.
    """

    from ragtune.retrieval import index as faiss_index
    from ragtune.training.joint import Retriever, joint_loss

    if embed_lr is None and gen_lr is None:
        raise ValueError(f"{out_dir}: a joint run must train the embedder, the generator or both")
    start = time.time()
    cfg = training["joint"]
    # The generator is 4-bit when it trains on a quantised base, or when it is a frozen
    # adapter that trained on one (2-Phase's second phase); else bitsandbytes stays out.
    # A frozen base (PDist, LSR, LOOP on the base generator) judges as QLoRA would see it.
    frozen_quantize = "nf4" if quantizes(cfg["quantize"]) else "none"
    four_bit = (
        quantizes(cfg["quantize"])
        if gen_lr is not None
        else models.loads_4bit(generator, quantize=frozen_quantize)
    )
    if not four_bit:
        runtime.keep_out_bitsandbytes()
    questions = list(read_jsonl(questions_path))
    index = faiss_index.read_index(index_path)
    faiss_index.set_search_params(
        index, nprobe=retrieval["nprobe"], ef_search=retrieval["ef_search"]
    )
    retriever = Retriever(
        index,
        EmbeddingStore(embedding_shards),
        ChunkStore(chunk_shards),
        retrieval["k"],
        retrieval["rescore_factor"],
    )
    query_encoder = models.load_embedder(embedder, device=runtime.device())
    # One encoder for questions and chunks: it trains both sides (train_documents).
    documents = training["embedder"]["train_documents"] and embed_lr is not None
    query_encoder.train(embed_lr is not None)
    if gen_lr is not None:
        gen, tokenizer = load_for_training(
            generator,
            cfg["quantize"],
            training["lora_dropout"],
            seed,
            training["gradient_checkpointing"],
            training["dtype"],
        )
        gen.train()
    else:
        gen, tokenizer = models.load_generator(
            generator, training["dtype"], quantize=frozen_quantize
        )
        gen.requires_grad_(False)
    groups = []
    if embed_lr is not None:
        groups.append(
            {"params": [p for p in query_encoder.parameters() if p.requires_grad], "lr": embed_lr}
        )
    else:
        query_encoder.requires_grad_(False)
    if gen_lr is not None:
        groups.append({"params": [p for p in gen.parameters() if p.requires_grad], "lr": gen_lr})

    order = torch.randperm(len(questions), generator=torch.Generator().manual_seed(seed))
    size = cfg["batch_size"]
    batches = [[questions[i] for i in order[a : a + size]] for a in range(0, len(order), size)]
    log.info(
        "%s on %d questions, %d x %d prompts per batch; training the %s",
        loss,
        len(questions),
        size,
        retrieval["k"],
        " and the ".join(n for n, lr in (("embedder", embed_lr), ("generator", gen_lr)) if lr),
    )

    def loss_fn(batch):
        return joint_loss(
            batch,
            embedder=query_encoder,
            generator=gen,
            tokenizer=tokenizer,
            retriever=retriever,
            loss=loss,
            scale=cfg["scale"],
            max_prompt_tokens=cfg["max_prompt_tokens"],
            train_embedder=embed_lr is not None,
            train_generator=gen_lr is not None,
            rows_per_forward=cfg["rows_per_forward"],
            train_documents=documents,
        )

    evaluate = None
    if cfg["validation_loss_every"] and val_questions_path:
        val = list(read_jsonl(val_questions_path))[: cfg["validation_questions"]]

        def evaluate() -> float:
            """The joint loss on the validation questions, without gradient, dropout off."""
            modes = (query_encoder.training, gen.training)
            query_encoder.eval()
            gen.eval()
            total = 0.0
            with torch.no_grad():
                for a in range(0, len(val), size):
                    part = val[a : a + size]
                    value = joint_loss(
                        part, embedder=query_encoder, generator=gen, tokenizer=tokenizer,
                        retriever=retriever, loss=loss, scale=cfg["scale"],
                        max_prompt_tokens=cfg["max_prompt_tokens"], train_embedder=False,
                        train_generator=False, rows_per_forward=cfg["rows_per_forward"],
                    )  # fmt: skip
                    total += float(value) * len(part)
            query_encoder.train(modes[0])
            gen.train(modes[1])
            return total / len(val)

    def state():
        out = {}
        if embed_lr is not None:
            out["embedder"] = query_encoder.state_dict()
        if gen_lr is not None:
            out["generator"] = {k: v for k, v in gen.state_dict().items() if "lora_" in k}
        return out

    def load_state(saved):
        if "embedder" in saved:
            query_encoder.load_state_dict(saved["embedder"])
        if "generator" in saved:
            gen.load_state_dict(saved["generator"], strict=False)

    work = _work_dir(out_dir)
    accum = max(1, cfg["effective_batch_size"] // cfg["batch_size"])
    history = loop.train(
        batches,
        loss_fn,
        groups,
        work,
        dataclasses.replace(
            _loop_config(training, seed, accum, generator=gen if gen_lr is not None else None),
            eval_every=cfg["validation_loss_every"],
        ),
        state=state,
        load_state=load_state,
        started=start,
        evaluate=evaluate,
        run_fingerprint=loop.fingerprint(
            [questions_path],
            index=_stat([index_path]),
            store=_stat(embedding_shards),
            embedder=embedder,
            generator=generator,
            loss=loss,
            lrs=[embed_lr, gen_lr],
            retrieval=retrieval,
            training=_result_shaping(training),
            seed=seed,
        ),
    )

    def save(tmp: Path) -> None:
        if embed_lr is not None:
            query_encoder.save(str(tmp / "query_encoder"))
        if gen_lr is not None:
            save_adapter(gen, tokenizer, tmp / "adapter")

    lrs = {"embedder": embed_lr, "generator": gen_lr}
    # Which generator it started from: the base, or (2-Phase) phase 1's adapter.
    _finish(
        out_dir, out_info, work, save, start, lrs, len(questions), history, loss=loss, seed=seed,
        generator=generator,
    )  # fmt: skip


def _finish(out_dir, out_info, work: Path, save, start, lr, n, history, **extra) -> None:
    """The end every training step shares: ``save(tmp)`` writes the model into a temporary
    folder that becomes ``out_dir`` with the loss curve, then the job record, and only then
    the checkpoint folder goes (a kill before that resumes instead of starting over)."""
    if distributed.is_main():
        with atomic_path(out_dir, is_dir=True) as tmp:
            save(tmp)
            (tmp / "loss.csv").write_bytes((work / "loss.csv").read_bytes())
        _write_info(out_info, start, lr, n, history, loop.earlier_attempts(work), **extra)
    loop.finish(work)


def _write_info(path, start, lr, n, history, earlier: list[float], **extra) -> None:
    """``seconds``: this attempt's, as its Snakemake benchmark record; the cost tables add
    ``earlier_attempts_seconds``, those of the killed attempts it resumed."""
    write_json(
        path,
        {
            **extra,
            "lr": lr,
            "examples": n,
            "steps": len(history),
            "first_loss": history[0]["loss"] if history else None,
            "final_loss": history[-1]["loss"] if history else None,
            "seconds": round(time.time() - start, 3),
            "attempts": len(earlier) + 1,
            "earlier_attempts_seconds": round(sum(earlier), 3),
            "ranks": distributed.world_size(),
            **runtime.device_record(),
        },
    )
