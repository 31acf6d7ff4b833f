"""Step of rules/evaluate.smk: answer every question from its retrieved chunks and score it."""

from __future__ import annotations

import logging
import time

import torch
from tqdm import tqdm

from ragtune import runtime
from ragtune.evaluation import rag_decoding
from ragtune.evaluation.generate import generate_answers
from ragtune.evaluation.metrics import best_em, best_f1, mean, recall_at_k
from ragtune.io import read_jsonl, write_json, write_jsonl
from ragtune.models import base_quantization, load_generator, loads_4bit
from ragtune.prompting import fit_prompt
from ragtune.retrieval.store import ChunkStore

log = logging.getLogger(__name__)


def evaluate(
    questions_path: str,
    retrieved_path: str,
    chunk_shards: list[str],
    generator: str,
    generation: dict,
    out_metrics: str,
    out_predictions: str,
    extra: dict | None = None,
    decoding: str = "concat",
    scale: float | None = None,
    base_generator: str = "as_adapters",
    train_quantize: str = "auto",
) -> dict:
    """Answer every question and score it. ``decoding``: ``concat`` (the paper's Appendix A:
    one prompt with the top-k chunks) or ``rag_token`` / ``rag_sequence`` over the k
    single-chunk prompts weighted by p(z|x) = softmax(``scale`` * cos)
    (``ragtune.evaluation.rag_decoding``)."""
    start = time.time()
    questions = list(read_jsonl(questions_path))
    retrieved = {r["qid"]: r for r in read_jsonl(retrieved_path)}
    missing = [q["id"] for q in questions if q["id"] not in retrieved]
    if missing:
        raise ValueError(
            f"{retrieved_path} has no retrieval for {len(missing)} question(s) of "
            f"{questions_path} (first: {missing[0]}); re-run the retrieve rule"
        )
    chunks = ChunkStore(chunk_shards)
    # A run without an adapter: on the base the adapter runs use (evaluation.base_generator).
    quantize = base_quantization(generator, generation["lora_base"], base_generator, train_quantize)
    if not loads_4bit(generator, generation["lora_base"], quantize):
        runtime.keep_out_bitsandbytes()
    model, tokenizer = load_generator(generator, generation["dtype"], generation["lora_base"],
                                      quantize=quantize)  # fmt: skip
    contexts = [chunks.get_many(retrieved[q["id"]]["rows"]) for q in questions]
    gen_start = time.time()
    if decoding == "concat":
        prompts = [
            fit_prompt(q["question"], ctx, tokenizer, generation["max_prompt_tokens"])
            for q, ctx in zip(questions, contexts, strict=True)
        ]
        answers = generate_answers(
            model,
            tokenizer,
            prompts,
            batch_size=generation["batch_size"],
            max_new_tokens=generation["max_new_tokens"],
            num_beams=generation["num_beams"],
        )
    else:
        decode = {
            "rag_token": rag_decoding.rag_token_batch,
            "rag_sequence": rag_decoding.rag_sequence_batch,
        }[decoding]
        k = len(contexts[0]) if contexts else 1
        size = rag_decoding.questions_per_batch(generation["batch_size"], k)
        answers = []
        for a in tqdm(range(0, len(questions), size), desc=decoding, unit="batch"):
            batch = list(zip(questions[a : a + size], contexts[a : a + size], strict=True))
            groups = [
                [
                    fit_prompt(q["question"], [c], tokenizer, generation["max_prompt_tokens"])
                    for c in ctx
                ]
                for q, ctx in batch
            ]
            log_w = torch.stack(
                [
                    rag_decoding.chunk_log_weights(retrieved[q["id"]]["scores"], scale)
                    for q, _ in batch
                ]
            )
            answers += decode(model, tokenizer, groups, log_w, generation["max_new_tokens"])
    gen_seconds = time.time() - gen_start
    rows = []
    for q, ctx, answer in zip(questions, contexts, answers, strict=True):
        titles = [c["title"] for c in ctx]
        rows.append(
            {
                "id": q["id"],
                "question": q["question"],
                "prediction": answer,
                "answers": q["answers"],
                "em": best_em(answer, q["answers"]),
                "f1": best_f1(answer, q["answers"]),
                "recall": recall_at_k(titles, q["gold_titles"]),
                "retrieved_titles": titles,
                "gold_titles": q["gold_titles"],
            }
        )
    write_jsonl(out_predictions, rows)
    metrics = {
        "em": round(100 * mean([r["em"] for r in rows]), 2),
        "f1": round(100 * mean([r["f1"] for r in rows]), 2),
        "recall_at_k": round(100 * mean([r["recall"] for r in rows]), 2),
        "k": len(next(iter(retrieved.values()))["rows"]) if retrieved else 0,
        "n": len(rows),
        "decoding": decoding,
        # a run without an adapter: the base it loaded (none: full precision)
        "base_quantization": quantize,
        "seconds": round(time.time() - start, 3),
        "generation_seconds": round(gen_seconds, 3),
        "dtype": str(model.dtype).removeprefix("torch."),
        **runtime.device_record(),
        **(extra or {}),
    }
    write_json(out_metrics, metrics)
    log.info(
        "EM %.1f  F1 %.1f  Recall@%d %.1f  (n=%d)",
        metrics["em"],
        metrics["f1"],
        metrics["k"],
        metrics["recall_at_k"],
        metrics["n"],
    )
    return metrics
