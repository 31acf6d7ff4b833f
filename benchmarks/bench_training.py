"""Ft. Gen training throughput against a plain Hugging Face ``Trainer``.

Both sides train the same SmolLM2-135M with the same LoRA adapters (r=16 on every projection),
on the same examples (HotpotQA train questions, the Appendix-A prompt over 5 of their own
context paragraphs cut to the demo's 384 prompt tokens, answer-only loss), with the same
micro-batch, gradient accumulation, schedule and seed, for one epoch. The baseline is what a
user would write with transformers: ``Trainer`` with ``group_by_length`` and labels at -100 on
the prompt. Ours is ``ragtune.training``: length-grouped left-padded batches, and the LM head
run only on answer positions.

Each side runs in its own fresh process (spawned one after the other), so that each one's peak
RSS is its own. Targets: tokens/s >= 1.0x the Trainer's, padding < 15% of tokens, and the
peak RSS of the training process < 4 GB.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import tempfile
import time

import torch

from benchmarks.common import MIRROR, SMOLLM, report
from ragtune import models
from ragtune.io import read_jsonl
from ragtune.prompting import fit_prompt

LR = 3e-4


def examples(tokenizer, n: int, max_prompt_tokens: int):
    from ragtune.prompting import build_example

    out = []
    for rec in read_jsonl(MIRROR / "hotpotqa/train.jsonl.gz"):
        paras = [
            {"title": t, "text": "".join(s)}
            for t, s in zip(rec["context"]["title"], rec["context"]["sentences"], strict=True)
        ]
        prompt = fit_prompt(rec["question"], paras[:5], tokenizer, max_prompt_tokens)
        out.append(build_example(tokenizer, prompt, rec["answer"]))
        if len(out) == n:
            return out
    raise ValueError(f"{MIRROR}/hotpotqa/train.jsonl.gz has fewer than {n} questions")


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def run_ours(path, n, batch_size, accum, max_prompt_tokens, threads, queue) -> None:
    from ragtune.models import load_for_training
    from ragtune.prompting import collate
    from ragtune.training import loop
    from ragtune.training.generator import generator_loss, length_grouped_batches, padding_fraction

    torch.set_num_threads(threads)
    model, tok = load_for_training(path, "none")
    exs = examples(tok, n, max_prompt_tokens)
    lengths = [len(e.input_ids) for e in exs]
    start = time.perf_counter()
    groups = length_grouped_batches(lengths, batch_size, seed=13)
    batches = [collate([exs[i] for i in g], tok.pad_token_id) for g in groups]
    model.train()
    with tempfile.TemporaryDirectory() as work:
        cfg = loop.LoopConfig(grad_accum=accum, warmup_ratio=0.1, checkpoint_every=10**6, seed=13)
        trainable = [p for p in model.parameters() if p.requires_grad]
        history = loop.train(
            batches,
            lambda b: generator_loss(model, b),
            [{"params": trainable, "lr": LR}],
            work,
            cfg,
        )
    seconds = time.perf_counter() - start
    queue.put(
        {
            "seconds": seconds,
            "tokens": sum(lengths),
            "padding_fraction": padding_fraction(groups, lengths),
            "final_loss": history[-1]["loss"],
            "peak_rss_gb": _peak_rss_gb(),
        }
    )


def run_trainer(path, n, batch_size, accum, max_prompt_tokens, threads, queue) -> None:
    from datasets import Dataset
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    from ragtune.models import load_for_training

    torch.set_num_threads(threads)
    model, tok = load_for_training(path, "none")
    exs = examples(tok, n, max_prompt_tokens)
    data = Dataset.from_dict(
        {
            "input_ids": [e.input_ids for e in exs],
            "attention_mask": [[1] * len(e.input_ids) for e in exs],
            "labels": [
                [t if m else -100 for t, m in zip(e.input_ids, e.answer_mask, strict=True)]
                for e in exs
            ],
        }
    )
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out,
            per_device_train_batch_size=batch_size,
            gradient_accumulation_steps=accum,
            num_train_epochs=1,
            learning_rate=LR,
            lr_scheduler_type="linear",
            warmup_steps=0.1,
            weight_decay=0.0,
            max_grad_norm=1.0,
            train_sampling_strategy="group_by_length",
            seed=13,
            use_cpu=True,
            save_strategy="no",
            report_to="none",
            logging_steps=1,
            dataloader_num_workers=0,
            disable_tqdm=True,
        )
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=data,
            data_collator=DataCollatorForSeq2Seq(tok, padding=True),
        )
        start = time.perf_counter()
        result = trainer.train()
        seconds = time.perf_counter() - start
    queue.put(
        {
            "seconds": seconds,
            "tokens": sum(len(e.input_ids) for e in exs),
            "final_loss": trainer.state.log_history[-2]["loss"],
            "train_loss": result.training_loss,
            "peak_rss_gb": _peak_rss_gb(),
        }
    )


def _in_child(target, *args) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    while proc.is_alive() or not queue.empty():
        try:
            result = queue.get(timeout=5)
        except Exception:  # queue.Empty: still training
            continue
        proc.join()
        return result
    raise RuntimeError(f"{target.__name__} died with exit code {proc.exitcode}; see its traceback")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--grad-accum", type=int, default=8)
    parser.add_argument("--max-prompt-tokens", type=int, default=384)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/smollm2"
        models.convert_gguf(SMOLLM, path)
        common = (
            path,
            args.examples,
            args.batch_size,
            args.grad_accum,
            args.max_prompt_tokens,
            args.threads,
        )
        base = _in_child(run_trainer, *common)
        ours = _in_child(run_ours, *common)
    report(
        "training",
        {
            "examples": args.examples,
            "micro_batch": args.batch_size,
            "grad_accum": args.grad_accum,
            "max_prompt_tokens": args.max_prompt_tokens,
            "trainer": {**base, "tokens_per_s": base["tokens"] / base["seconds"]},
            "ours": {**ours, "tokens_per_s": ours["tokens"] / ours["seconds"]},
            "speedup": base["seconds"] / ours["seconds"],
        },
    )


if __name__ == "__main__":
    main()
