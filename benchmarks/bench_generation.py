"""Batched, early-stopping generation against one `generate` call per question.

Baseline: the plain loop a user would write first: one question at a time, greedy, always
``max_new_tokens`` new tokens. Ours: length-sorted batches, left padding, stop when every row
has ended its answer line. Same prompts (HotpotQA validation questions with 5 of their own
context paragraphs, gold first), same model, same process. Target: >= 3x per question, with
the same answers.
"""

from __future__ import annotations

import argparse
import tempfile

import torch

from benchmarks.common import MIRROR, SMOLLM, report, timed
from ragtune import models
from ragtune.evaluation.generate import generate_answers
from ragtune.io import read_jsonl
from ragtune.models import load_generator
from ragtune.prompting import build_prompt


def hotpot_prompts(n: int, k: int = 5, cut=None) -> list[str]:
    """``n`` HotpotQA validation prompts with ``k`` of their own paragraphs, gold first; with
    ``cut``, each paragraph's text passes through it (e.g. to a chunk's length) first."""
    prompts = []
    for rec in read_jsonl(MIRROR / "hotpotqa/validation.jsonl.gz"):
        gold = set(rec["supporting_facts"]["title"])
        paras = [
            {"title": t, "text": cut("".join(s)) if cut else "".join(s)}
            for t, s in zip(rec["context"]["title"], rec["context"]["sentences"], strict=True)
        ]
        paras.sort(key=lambda p: p["title"] not in gold)  # gold first, as a good retriever would
        prompts.append(build_prompt(rec["question"], paras[:k]))
        if len(prompts) == n:
            break
    return prompts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", type=int, default=24)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        models.convert_gguf(SMOLLM, f"{tmp}/smollm2")
        model, tok = load_generator(f"{tmp}/smollm2", "float32")
        prompts = hotpot_prompts(args.questions)
        kw = {"max_new_tokens": args.max_new_tokens, "progress": False}
        generate_answers(model, tok, prompts[:2], batch_size=2, **kw)  # warm-up
        base, t_base = timed(
            lambda: [
                generate_answers(model, tok, [p], batch_size=1, early_stop=False, **kw)[0]
                for p in prompts
            ]
        )
        ours, t_ours = timed(
            generate_answers, model, tok, prompts, batch_size=args.batch_size, **kw
        )
    same = sum(a == b for a, b in zip(base, ours, strict=True))
    report(
        "generation",
        {
            "questions": len(prompts),
            "batch_size": args.batch_size,
            "max_new_tokens": args.max_new_tokens,
            "baseline_s_per_question": round(t_base / len(prompts), 3),
            "ours_s_per_question": round(t_ours / len(prompts), 3),
            "speedup": round(t_base / t_ours, 2),
            "same_answers": f"{same}/{len(prompts)}",
        },
    )


if __name__ == "__main__":
    main()
