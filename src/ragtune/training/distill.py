"""Retrievers trained by the generator's judgement: perplexity distillation and leave-one-out.

The embedder learns to match a target distribution Q over a question's top-k chunks, computed
from the frozen generator, by minimising KL(Q || P_R), where P_R(z|x) = softmax over the top k
of the retrieval scores (``scores[b, z]``, scale x cosine, as in the joint strategies). Q is a
constant: no gradient reaches the generator.

- **PDist** (Atlas, Izacard et al. 2023, "perplexity distillation"): Q(z) = softmax over the k
  of log p(y | x, z) / T, the answer's log-likelihood with chunk z alone in the prompt.
- **LSR** (REPLUG, Shi et al. 2024, "LM-supervised retrieval"): Q(z) = softmax over the k of
  p(y | x, z) / T, the softmax applied to the likelihood itself.
- **LOOP** (Atlas, "leave-one-out perplexity distillation"): Q(z_i) proportional to
  exp(-log p(y | x, all top-k chunks but z_i) / T): a chunk scores by how much the
  concatenated prompt evaluation uses loses without it.

Inputs follow ``ragtune.training.marginal``: ``token_logp[b, z, t]`` and ``answer_mask[b, t]``
give log p(y | x, z) as the masked sum over the answer's tokens; ``loo_logp[b, i]`` is
log p(y | x, top-k but z_i). Losses are the mean over questions.
"""

from __future__ import annotations

import torch

TARGETS = ("atlas", "replug")


def answer_logp(token_logp: torch.Tensor, answer_mask: torch.Tensor) -> torch.Tensor:
    """log p(y | x, z) [B, k]: the masked sum of the answer tokens' log-probs."""
    return (token_logp * answer_mask.to(token_logp.dtype)[:, None, :]).sum(-1)


def pdist_target(seq_logp: torch.Tensor, temperature: float = 1.0, target: str = "atlas"):
    """Q [B, k], detached: softmax of log p(y|x,z) / T (``atlas``) or of p(y|x,z) / T
    (``replug``)."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, not {target!r}")
    seq_logp = seq_logp.detach().double()
    values = seq_logp if target == "atlas" else seq_logp.exp()
    return torch.softmax(values / temperature, dim=-1)


def loop_target(loo_logp: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Q [B, k], detached: softmax of -log p(y | x, top-k but z_i) / T."""
    return torch.softmax(-loo_logp.detach().double() / temperature, dim=-1)


def kl_to_retriever(target: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """KL(Q || P_R), P_R = softmax(scores) over the k, the mean over questions. Q's zeros
    contribute nothing (0 log 0 = 0)."""
    log_pr = torch.log_softmax(scores.double(), dim=-1)
    q = target.to(log_pr.dtype)
    kl = torch.where(q > 0, q * (torch.log(q.clamp_min(1e-300)) - log_pr), torch.zeros_like(q))
    return kl.sum(-1).mean().to(scores.dtype)


def pdist_loss(token_logp, answer_mask, scores, temperature=1.0, target="atlas"):
    """PDist (``atlas``) or LSR (``replug``): KL(Q || P_R) with Q from the frozen generator."""
    q = pdist_target(answer_logp(token_logp, answer_mask), temperature, target)
    return kl_to_retriever(q, scores)


def loop_loss(loo_logp, scores, temperature=1.0):
    """LOOP: KL(Q || P_R) with Q from the leave-one-out likelihoods of the concatenated prompt."""
    return kl_to_retriever(loop_target(loo_logp, temperature), scores)
