"""RAG-Token and RAG-Sequence decoding (Lewis et al. 2020) at evaluation.

Joint and 2-Phase generators train on single-chunk prompts, weighted by the retriever's
p(z|x) = softmax(scale * cos(q(x), d(z))); the paper evaluates them, as every strategy, on the
concatenated top-k prompt (``evaluation.decoding: concat``). These decoders evaluate them on
the marginal they were trained on, from the k single-chunk prompts of a question:

- ``rag_token``: the next token maximises the mixture sum_z p(z|x) p(y_t | x, z, y_<t); the
  chosen token is appended to every chunk's prompt. The k prompts run as one batch with a KV
  cache, so a question costs k single-chunk decodes.
- ``rag_sequence``: each chunk's prompt is decoded greedily (one batch of k), then every
  distinct candidate is scored under every chunk and the one with the highest marginal
  sum_z p(z|x) p(y | x, z) wins: the RAG paper's "thorough decoding" over the k greedy beams.

Both stop where greedy generation stops (end of sequence, or the answer line's newline), so
with k = 1, or k identical chunks, each equals plain greedy decoding.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ragtune.evaluation.generate import STOP, answer_line, generate_answers
from ragtune.evaluation.prompt import prompt_ids
from ragtune.training.generator import answer_token_logprobs, build_example, collate

DECODINGS = ("concat", "rag_token", "rag_sequence")


def chunk_log_weights(cosines: Sequence[float], scale: float) -> torch.Tensor:
    """log p(z|x) of the k retrieved chunks, as training computed it."""
    return torch.log_softmax(scale * torch.tensor(cosines, dtype=torch.float32), dim=0)


def _eos_ids(model) -> set[int]:
    eos = model.generation_config.eos_token_id
    return set(eos if isinstance(eos, list) else [eos] if eos is not None else [])


def _prefill(model, tokenizer, prompts: Sequence[str]):
    """The k prompts, left-padded, through the model once: (output, mask, positions)."""
    device = next(model.parameters()).device
    encoded = [prompt_ids(tokenizer, p) for p in prompts]
    width = max(map(len, encoded))
    pad = tokenizer.pad_token_id or 0
    ids = torch.tensor([[pad] * (width - len(e)) + e for e in encoded], device=device)
    mask = torch.tensor([[0] * (width - len(e)) + [1] * len(e) for e in encoded], device=device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)  # padding shifts no position
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True)
    return out, mask, positions


def mixture(logits: torch.Tensor, log_weights: torch.Tensor) -> torch.Tensor:
    """log sum_z p(z|x) p(token | x, z, ...) over the vocabulary, from the k rows' last
    logits [k, V]."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return torch.logsumexp(log_weights.to(logp.device)[:, None] + logp, dim=0)


@torch.inference_mode()
def first_token_mixture(model, tokenizer, prompts, log_weights) -> torch.Tensor:
    """The RAG-Token distribution of the answer's first token (log-probabilities)."""
    out, _, _ = _prefill(model, tokenizer, prompts)
    return mixture(out.logits[:, -1, :], log_weights)


@torch.inference_mode()
def rag_token(
    model, tokenizer, prompts: Sequence[str], log_weights: torch.Tensor, max_new_tokens: int
) -> str:
    """The answer line RAG-Token greedy decoding writes for one question's k prompts."""
    out, mask, positions = _prefill(model, tokenizer, prompts)
    device = mask.device
    eos, generated = _eos_ids(model), []
    for _ in range(max_new_tokens):
        token = int(mixture(out.logits[:, -1, :], log_weights).argmax())
        if token in eos:
            break
        generated.append(token)
        if STOP in tokenizer.decode(generated, skip_special_tokens=True):
            break
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        positions = positions[:, -1:] + 1
        step = torch.full((len(prompts), 1), token, device=device)
        out = model(
            input_ids=step,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=out.past_key_values,
            use_cache=True,
        )
    return answer_line(tokenizer.decode(generated, skip_special_tokens=True))


@torch.inference_mode()
def rag_sequence(
    model, tokenizer, prompts: Sequence[str], log_weights: torch.Tensor, max_new_tokens: int
) -> str:
    """The answer RAG-Sequence decoding picks for one question's k prompts."""
    candidates = generate_answers(
        model,
        tokenizer,
        prompts,
        batch_size=len(prompts),
        max_new_tokens=max_new_tokens,
        progress=False,
    )
    distinct = list(dict.fromkeys(candidates))
    if len(distinct) == 1:
        return distinct[0]
    examples = [build_example(tokenizer, p, c) for c in distinct for p in prompts]
    batch = collate(examples, tokenizer.pad_token_id or 0)
    token_logp = answer_token_logprobs(model, batch)  # [C * k, L]
    answer_logp = token_logp.sum(-1).view(len(distinct), len(prompts))
    marginal = torch.logsumexp(answer_logp + log_weights.to(answer_logp.device), dim=1)
    return distinct[int(marginal.argmax())]
