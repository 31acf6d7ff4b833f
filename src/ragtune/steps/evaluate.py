"""Step of rules/evaluate.smk: answer every question from its retrieved chunks and score it."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from ragtune import runtime
from ragtune.evaluation.generate import generate_answers
from ragtune.evaluation.metrics import best_em, best_f1, mean, recall_at_k
from ragtune.evaluation.prompt import fit_prompt
from ragtune.io import read_jsonl, write_json, write_jsonl
from ragtune.retrieval.store import ChunkStore

log = logging.getLogger(__name__)


LORA_BASES = ("auto", "as_trained", "dequantized", "full")


def load_generator(path: str, dtype: str, lora_base: str = "auto", quantize: str = "none"):
    """A causal LM and its tokenizer, ready for left-padded batched generation.

    ``path`` is a model, or an adapter folder whose base comes from its adapter_config.json
    (see :func:`_load_with_adapter` for ``lora_base``). ``quantize`` ``nf4`` loads the model
    4-bit, as QLoRA trained on it.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ragtune.models import resolve

    if (Path(path) / "adapter_config.json").exists():
        return _load_with_adapter(path, dtype, lora_base)
    resolved = resolve(path)
    tokenizer = AutoTokenizer.from_pretrained(resolved.location, **resolved.pretrained_kwargs())
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    import torch

    cuda = torch.cuda.is_available()
    compute = runtime.resolve_dtype(dtype)
    kwargs = dict(resolved.pretrained_kwargs())
    if quantize == "nf4":
        from ragtune.training.generator import nf4_config

        kwargs["quantization_config"] = nf4_config(compute)
        # This process's GPU: under torchrun (2-Phase's second phase) each rank's own.
        kwargs["device_map"] = {"": torch.cuda.current_device() if cuda else "cpu"}
    model = AutoModelForCausalLM.from_pretrained(resolved.location, dtype=compute, **kwargs)
    if quantize != "nf4":
        model = model.to(runtime.device())
    model.eval()
    return model, tokenizer


def trained_base(adapter: str) -> dict:
    """What an adapter trained on (its ``ragtune_base.json``): quantization ``nf4`` or ``none``
    and the compute dtype. Adapters from elsewhere are taken as trained on the full base."""
    import json

    from ragtune.training.generator import BASE_RECORD

    record = Path(adapter) / BASE_RECORD
    return json.loads(record.read_text()) if record.exists() else {"quantization": "none"}


def _load_with_adapter(adapter: str, dtype: str, lora_base: str = "auto"):
    """The base model its adapter_config.json points at, with the adapter.

    ``lora_base`` (``generation.lora_base``) says which base an adapter trained on a 4-bit NF4
    base (QLoRA on CUDA) is evaluated on:

    - ``as_trained`` (``auto``): that same 4-bit base with the adapter unmerged, the forward
      pass training optimised;
    - ``dequantized``: the NF4 weights dequantized to the compute dtype, the adapter merged in:
      the weights training saw, up to rounding, at the speed of a plain model;
    - ``full``: the original full-precision weights with the adapter merged: the usual way to
      ship a QLoRA adapter, but not the base it was trained on.

    An adapter trained on the full-precision base (on a CPU) is merged into it in every case:
    merged weights generate as fast as the base model.
    """
    from peft import PeftConfig, PeftModel

    if lora_base not in LORA_BASES:
        raise ValueError(f"generation.lora_base must be one of {LORA_BASES}, not {lora_base!r}")
    base = PeftConfig.from_pretrained(adapter).base_model_name_or_path
    nf4 = trained_base(adapter).get("quantization") == "nf4"
    as_trained = nf4 and lora_base in ("auto", "as_trained")
    dequantize = nf4 and lora_base == "dequantized"
    model, tokenizer = load_generator(
        base, dtype, quantize="nf4" if (as_trained or dequantize) else "none"
    )
    if dequantize:
        model = model.dequantize()
    model = PeftModel.from_pretrained(model, adapter)
    if not as_trained:
        model = model.merge_and_unload()
    log.info(
        "generator: %s + adapter %s (%s)",
        base,
        adapter,
        "4-bit NF4 base, adapter unmerged"
        if as_trained
        else "NF4 base dequantized, adapter merged"
        if dequantize
        else "full-precision base, adapter merged",
    )
    model.eval()
    return model, tokenizer


def evaluate(
    questions_path: str,
    retrieved_path: str,
    chunk_shards: list[str],
    generator: str,
    generation: dict,
    out_metrics: str,
    out_predictions: str,
    extra: dict | None = None,
) -> dict:
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
    model, tokenizer = load_generator(
        generator, generation["dtype"], generation["lora_base"]
    )
    contexts = [chunks.get_many(retrieved[q["id"]]["rows"]) for q in questions]
    prompts = [
        fit_prompt(q["question"], ctx, tokenizer, generation["max_prompt_tokens"])
        for q, ctx in zip(questions, contexts, strict=True)
    ]
    gen_start = time.time()
    answers = generate_answers(
        model,
        tokenizer,
        prompts,
        batch_size=generation["batch_size"],
        max_new_tokens=generation["max_new_tokens"],
    )
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
        "seconds": round(time.time() - start, 3),
        "generation_seconds": round(gen_seconds, 3),
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
