"""RAG-Sequence and RAG-Token marginal likelihoods (Lewis et al., 2020), in log space.

Inputs, for B questions with k retrieved chunks each and answers of at most L tokens:

- ``token_logp[b, z, t]``: log p(y_t | x, z, y_<t), the generator's log-prob of answer token t
  when the prompt holds only chunk z (0 where ``answer_mask`` is 0);
- ``answer_mask[b, t]``: 1 on real answer tokens. The answer is the same whatever the chunk, so
  one mask serves all k rows;
- ``scores[b, z]``: s(z) = scale * cos(q(x), d(z)); p(z|x) = softmax over the k of s.

Both losses are normalised like Ft. Gen's loss, per answer token over the batch, so that with
k=1 (or a one-hot p(z|x)) they equal that plain NLL exactly, and a learning rate means the same
thing for the generator in every strategy.
"""

from __future__ import annotations

import torch

# Scale of the cosine in p(z|x). With scale 1 the softmax over k cosines in [0.3, 0.8] is almost
# uniform and the embedder gets no signal; 20 is the MNRL scale Ft. Embed already trains with, so
# a query encoder tuned there produces a p(z|x) of the same sharpness here.
DEFAULT_SCALE = 20.0


def _check(token_logp: torch.Tensor, answer_mask: torch.Tensor, scores: torch.Tensor) -> None:
    b, k, t = token_logp.shape
    if scores.shape != (b, k) or answer_mask.shape != (b, t):
        raise ValueError(
            f"shapes disagree: token_logp {tuple(token_logp.shape)}, scores "
            f"{tuple(scores.shape)} (want {(b, k)}), answer_mask {tuple(answer_mask.shape)}"
        )


def rag_sequence_nll(token_logp, answer_mask, scores) -> torch.Tensor:
    """−log Σ_z p(z|x) Π_t p(y_t|x,z,y<t), summed over questions, per answer token."""
    _check(token_logp, answer_mask, scores)
    mask = answer_mask.to(token_logp.dtype)
    log_pz = torch.log_softmax(scores.float(), dim=-1)
    seq_logp = (token_logp * mask[:, None, :]).sum(-1)  # [B, k]: log Π_t p(y_t | x, z)
    marginal = torch.logsumexp(log_pz + seq_logp, dim=-1)  # [B]
    return -marginal.sum() / mask.sum()


def rag_token_nll(token_logp, answer_mask, scores) -> torch.Tensor:
    """−Σ_t log Σ_z p(z|x) p(y_t|x,z,y<t), summed over questions, per answer token."""
    _check(token_logp, answer_mask, scores)
    mask = answer_mask.to(token_logp.dtype)
    log_pz = torch.log_softmax(scores.float(), dim=-1)
    per_token = torch.logsumexp(log_pz[:, :, None] + token_logp, dim=1)  # [B, L]
    return -(per_token * mask).sum() / mask.sum()


LOSSES = {"rag_sequence": rag_sequence_nll, "rag_token": rag_token_nll}
