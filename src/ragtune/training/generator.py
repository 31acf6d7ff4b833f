"""Ft. Gen: QLoRA on the generator with the NLL of the answer tokens only.

The prompt is the paper's Appendix-A prompt over the top-k chunks that the *base* embedder
retrieved (the cached retrieval), and the target is the gold answer followed by a newline: the
newline is where evaluation stops reading, so the model learns to end its answer line.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ragtune.prompting import answer_token_logprobs


def answer_nll(token_logp: torch.Tensor, answer_mask: torch.Tensor) -> torch.Tensor:
    """Mean NLL over the answer tokens of the batch."""
    return -(token_logp * answer_mask).sum() / answer_mask.sum()


def generator_loss(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    token_logp = answer_token_logprobs(model, batch)
    return answer_nll(token_logp, batch["answer_mask"].to(token_logp.device))


def length_grouped_batches(
    lengths: Sequence[int], batch_size: int, seed: int, mega: int = 50
) -> list[list[int]]:
    """Indices in batches of similar length (as transformers' ``group_by_length``): shuffle,
    cut into mega-batches of ``mega`` batches, sort each by length, then shuffle the batches.
    Padding stays small while the order stays random."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths)).tolist()
    size = batch_size * mega
    batches = []
    for a in range(0, len(order), size):
        group = sorted(order[a : a + size], key=lambda i: -lengths[i])
        batches += [group[b : b + batch_size] for b in range(0, len(group), batch_size)]
    rng.shuffle(batches)
    return batches


def padding_fraction(batches: Sequence[Sequence[int]], lengths: Sequence[int]) -> float:
    real = sum(lengths[i] for b in batches for i in b)
    padded = sum(max(lengths[i] for i in b) * len(b) for b in batches)
    return 1 - real / padded if padded else 0.0
