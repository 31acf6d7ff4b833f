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

Questions are decoded in batches (:func:`questions_per_batch`): B questions' k prompts run as
one batch of B x k rows, at most ``generation.batch_size`` rows, as concat decoding's batch of
prompts (the memory plan counts the same rows). The prefill keeps only the last position's
logits: the prompt's other logits are never read, and for Llama-3's 128k vocabulary they
were about 0.8 GB in bf16 per question.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ragtune.evaluation.generate import STOP, answer_line, generate_answers
from ragtune.prompting import answer_token_logprobs, build_example, collate, prompt_ids

DECODINGS = ("concat", "rag_token", "rag_sequence")


def chunk_log_weights(cosines: Sequence[float], scale: float) -> torch.Tensor:
    """log p(z|x) of the k retrieved chunks, as training computed it."""
    return torch.log_softmax(scale * torch.tensor(cosines, dtype=torch.float32), dim=0)


def _eos_ids(model) -> set[int]:
    eos = model.generation_config.eos_token_id
    return set(eos if isinstance(eos, list) else [eos] if eos is not None else [])


def questions_per_batch(batch_size: int, k: int) -> int:
    """Questions decoded together: their k prompts each fill at most ``batch_size`` rows (one
    question at least, k rows, where k is larger)."""
    return max(1, batch_size // k)


def rows_per_batch(batch_size: int, k: int) -> int:
    """The rows of one RAG decoding batch (what the memory plan sizes)."""
    return questions_per_batch(batch_size, k) * k


def _prefill(model, tokenizer, prompts: Sequence[str]):
    """The prompts, left-padded, through the model once: (output, mask, positions). Only the
    last position's logits are kept."""
    device = next(model.parameters()).device
    encoded = [prompt_ids(tokenizer, p) for p in prompts]
    width = max(map(len, encoded))
    pad = tokenizer.pad_token_id or 0
    ids = torch.tensor([[pad] * (width - len(e)) + e for e in encoded], device=device)
    mask = torch.tensor([[0] * (width - len(e)) + [1] * len(e) for e in encoded], device=device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)  # padding shifts no position
    out = model(
        input_ids=ids,
        attention_mask=mask,
        position_ids=positions,
        use_cache=True,
        logits_to_keep=1,
    )
    return out, mask, positions


def mixture(logits: torch.Tensor, log_weights: torch.Tensor) -> torch.Tensor:
    """log sum_z p(z|x) p(token | x, z, ...) over the vocabulary, from the k rows' last
    logits: [k, V] with weights [k] gives [V]; [B, k, V] with [B, k] gives [B, V]."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return torch.logsumexp(log_weights.to(logp.device)[..., None] + logp, dim=-2)


@torch.inference_mode()
def first_token_mixture(model, tokenizer, prompts, log_weights) -> torch.Tensor:
    """The RAG-Token distribution of the answer's first token (log-probabilities)."""
    out, _, _ = _prefill(model, tokenizer, prompts)
    return mixture(out.logits[:, -1, :], log_weights)


def rag_token(
    model, tokenizer, prompts: Sequence[str], log_weights: torch.Tensor, max_new_tokens: int
) -> str:
    """The answer line RAG-Token greedy decoding writes for one question's k prompts."""
    return rag_token_batch(model, tokenizer, [prompts], log_weights[None], max_new_tokens)[0]


@torch.inference_mode()
def rag_token_batch(
    model,
    tokenizer,
    groups: Sequence[Sequence[str]],
    log_weights: torch.Tensor,
    max_new_tokens: int,
) -> list[str]:
    """RAG-Token greedy decoding of B questions at once: ``groups`` holds each question's k
    prompts, ``log_weights`` [B, k] their log p(z|x). Each question stops on its own; a
    finished question's rows run on (rows do not see each other) until all are done."""
    prompts = [p for group in groups for p in group]
    n_questions, k = len(groups), len(groups[0])
    if any(len(group) != k for group in groups):
        raise ValueError("every question of a batch needs the same number of prompts (k)")
    out, mask, positions = _prefill(model, tokenizer, prompts)
    device = mask.device
    eos = _eos_ids(model)
    generated: list[list[int]] = [[] for _ in groups]
    done = [False] * n_questions
    for _ in range(max_new_tokens):
        logits = out.logits[:, -1, :].view(n_questions, k, -1)
        tokens = mixture(logits, log_weights).argmax(-1)  # [B]
        for q, token in enumerate(tokens.tolist()):
            if done[q]:
                continue
            if token in eos:
                done[q] = True
                continue
            generated[q].append(token)
            if STOP in tokenizer.decode(generated[q], skip_special_tokens=True):
                done[q] = True
        if all(done):
            break
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        positions = positions[:, -1:] + 1
        step = tokens.to(device).repeat_interleave(k)[:, None]
        out = model(
            input_ids=step,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=out.past_key_values,
            use_cache=True,
        )
    return [answer_line(tokenizer.decode(g, skip_special_tokens=True)) for g in generated]


def rag_sequence(
    model, tokenizer, prompts: Sequence[str], log_weights: torch.Tensor, max_new_tokens: int
) -> str:
    """The answer RAG-Sequence decoding picks for one question's k prompts."""
    return rag_sequence_batch(model, tokenizer, [prompts], log_weights[None], max_new_tokens)[0]


@torch.inference_mode()
def rag_sequence_batch(
    model,
    tokenizer,
    groups: Sequence[Sequence[str]],
    log_weights: torch.Tensor,
    max_new_tokens: int,
) -> list[str]:
    """RAG-Sequence decoding of B questions at once (see :func:`rag_token_batch` for the
    arguments): every prompt decoded greedily as one batch, then each question's distinct
    candidates scored under its k prompts, in pieces of at most B x k rows."""
    prompts = [p for group in groups for p in group]
    k = len(groups[0])
    rows = len(prompts)
    candidates = generate_answers(
        model,
        tokenizer,
        prompts,
        batch_size=rows,
        max_new_tokens=max_new_tokens,
        progress=False,
    )
    distinct = [list(dict.fromkeys(candidates[q * k : (q + 1) * k])) for q in range(len(groups))]
    # (question, candidate) pairs that need scoring: a question with one candidate needs none
    pairs = [(q, c) for q, cands in enumerate(distinct) if len(cands) > 1 for c in cands]
    examples = [build_example(tokenizer, p, c) for q, c in pairs for p in groups[q]]
    sums = []
    for a in range(0, len(examples), rows):
        batch = collate(examples[a : a + rows], tokenizer.pad_token_id or 0)
        sums.append(answer_token_logprobs(model, batch).sum(-1).float().cpu())
    answer_logp = torch.cat(sums).view(len(pairs), k) if pairs else torch.empty(0, k)
    best: dict[int, tuple[float, str]] = {}
    for (q, c), logp in zip(pairs, answer_logp, strict=True):
        marginal = float(torch.logsumexp(logp + log_weights[q].cpu().float(), dim=0))
        if q not in best or marginal > best[q][0]:
            best[q] = (marginal, c)
    return [best[q][1] if q in best else cands[0] for q, cands in enumerate(distinct)]
