"""Greedy answer generation, batched.

Prompts are sorted by length so each batch pads little, padded on the left so every row's
next token sits in the last column, and generation stops as soon as every row of the batch has
finished its answer line (``stop_strings``) instead of running to ``max_new_tokens``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tqdm import tqdm

from ragtune.prompting import prompt_ids

STOP = "\n"


def answer_line(text: str) -> str:
    """The answer is the first line the model writes after '### Answer:'."""
    return text.strip().split(STOP, 1)[0].strip()


@torch.inference_mode()
def generate_answers(
    model,
    tokenizer,
    prompts: Sequence[str],
    *,
    batch_size: int,
    max_new_tokens: int,
    num_beams: int = 1,
    early_stop: bool = True,
    progress: bool = True,
) -> list[str]:
    """Each prompt's answer line, greedy (``num_beams`` 1) or by beam search."""
    tokenizer.padding_side = "left"
    # With the tokenizer's special prefix (BOS), exactly as training tokenized its prompts.
    encoded = [prompt_ids(tokenizer, p) for p in prompts]
    lengths = [len(ids) for ids in encoded]
    order = sorted(range(len(prompts)), key=lambda i: -lengths[i])
    answers: list[str] = [""] * len(prompts)
    stop_kwargs = {"stop_strings": [STOP], "tokenizer": tokenizer} if early_stop else {}
    batches = range(0, len(order), batch_size)
    for a in tqdm(batches, desc="generate", unit="batch", disable=not progress):
        idx = order[a : a + batch_size]
        enc = tokenizer.pad(
            {"input_ids": [encoded[i] for i in idx]}, padding=True, return_tensors="pt"
        ).to(model.device)
        out = model.generate(
            **enc,
            do_sample=False,
            num_beams=num_beams,
            max_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
            **stop_kwargs,
        )
        texts = tokenizer.batch_decode(
            out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True
        )
        for i, text in zip(idx, texts, strict=True):
            answers[i] = answer_line(text)
    return answers
