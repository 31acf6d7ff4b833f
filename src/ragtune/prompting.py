"""The paper's Appendix-A prompt, used for every generator, at training and at evaluation, and
the token batches built from it: an example's prompt and answer ids, a left-padded batch with
answers aligned on the right, and the answer tokens' log-probabilities.

Below both training and evaluation: each imports from here, and nothing here imports either."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ragtune.retrieval.embed import passage_text

# Verbatim from Lawton et al. (2025), Appendix A (the backslashes there only join lines).
TEMPLATE = (
    "You are a helpful general knowledge expert. Answer the following question using the "
    "relevant context. Use as few words as possible.\n"
    "### Context:\n"
    "{context}\n"
    "### Question:\n"
    "{question}\n"
    "### Answer:\n"
)


def format_context(chunks: Sequence[dict]) -> str:
    """Top-k chunks concatenated in rank order, one per paragraph."""
    return "\n\n".join(passage_text(c) for c in chunks)


def build_prompt(question: str, chunks: Sequence[dict]) -> str:
    return TEMPLATE.format(context=format_context(chunks), question=question)


def special_prefix(tokenizer) -> list[int]:
    """The special tokens the tokenizer puts in front of a text: BOS for Llama-3 and Mistral,
    nothing for SmolLM2. Only the leading ones: a tokenizer that also appends EOS must not end
    a prompt with it, since the answer follows. Worked out once per tokenizer (every prompt of
    every step asks)."""
    cached = getattr(tokenizer, "_ragtune_special_prefix", None)
    if cached is not None:
        return list(cached)
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a", add_special_tokens=True)["input_ids"]
    starts = [s for s in range(len(full) - len(plain) + 1) if full[s : s + len(plain)] == plain]
    if starts:
        prefix = list(full[: starts[0]])
    elif full and full[0] == tokenizer.bos_token_id:
        prefix = [full[0]]  # the text tokenizes otherwise after BOS: keep BOS all the same
    else:
        prefix = []
    tokenizer._ragtune_special_prefix = tuple(prefix)
    return prefix


def prompt_ids(tokenizer, prompt: str) -> list[int]:
    """A prompt's token ids as the model saw them in pre-training: its special prefix, then the
    text. Training, the joint step and evaluation all tokenize prompts here, so they agree."""
    return special_prefix(tokenizer) + tokenizer(prompt, add_special_tokens=False)["input_ids"]


def fit_prompt(question: str, chunks: Sequence[dict], tokenizer, max_tokens: int) -> str:
    """The prompt, with the context's tail cut so that the whole fits in ``max_tokens``.

    Chunks come in rank order, so cutting the tail drops the least relevant text first, and
    the instruction and question are always kept. The count includes the special prefix.
    """
    prompt = build_prompt(question, chunks)
    n = len(prompt_ids(tokenizer, prompt))
    if n <= max_tokens:
        return prompt
    context = format_context(chunks)
    enc = tokenizer(context, add_special_tokens=False, return_offsets_mapping=True)
    keep = max(0, len(enc["input_ids"]) - (n - max_tokens))
    cut = enc["offset_mapping"][keep - 1][1] if keep else 0
    return TEMPLATE.format(context=context[:cut], question=question)


@dataclass
class Example:
    input_ids: list[int]
    answer_mask: list[int]  # 1 on the answer tokens the loss scores


def build_example(tokenizer, prompt: str, answer: str, loss_tokens: str = "answer") -> Example:
    """The prompt with the tokenizer's special prefix (as at evaluation), then the answer.
    ``loss_tokens`` ``all`` scores every token but the first (nothing predicts it), prompt
    included; ``answer`` the answer's alone."""
    prompt_part = prompt_ids(tokenizer, prompt)
    answer_ids = tokenizer(answer.strip() + "\n", add_special_tokens=False)["input_ids"]
    ids = prompt_part + answer_ids
    if loss_tokens == "all":
        return Example(ids, [0] + [1] * (len(ids) - 1))
    return Example(ids, [0] * len(prompt_part) + [1] * len(answer_ids))


def collate(examples: Sequence[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Left-padded batch, so that every row's answer ends at the right edge.

    Keys: ``input_ids``, ``attention_mask``, ``position_ids`` (counted from each row's first
    real token, so padding shifts nothing) and ``answer_mask`` [B, L]: 1 on the answer tokens
    among the last L positions, L being the longest answer. Answers aligned on the right let
    the LM head run on those L positions only, and let the k prompts of one question (same
    answer, different chunks) line their answer tokens up for RAG-Sequence / RAG-Token.
    """
    width = max(len(e.input_ids) for e in examples)
    answer_width = max(sum(e.answer_mask) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(examples), width), dtype=torch.long)
    ans = torch.zeros((len(examples), answer_width), dtype=torch.long)
    for i, e in enumerate(examples):
        n, a = len(e.input_ids), sum(e.answer_mask)
        if e.answer_mask[n - a :] != [1] * a:
            raise ValueError("an example's answer must be its last tokens")
        ids[i, width - n :] = torch.tensor(e.input_ids)
        attn[i, width - n :] = 1
        ans[i, answer_width - a :] = 1
    positions = (attn.cumsum(-1) - 1).clamp(min=0)
    return {"input_ids": ids, "attention_mask": attn, "position_ids": positions, "answer_mask": ans}


def answer_token_logprobs(model, batch: dict[str, torch.Tensor], **model_kwargs) -> torch.Tensor:
    """log p(y_t | x, y_<t) for the last L tokens of each row (the answer), 0 where
    ``answer_mask`` is 0: shape [B, L].

    The LM head runs only where an answer token is predicted (``logits_to_keep``): with a
    49k-token vocabulary, logits over the whole prompt would cost more memory than the rest
    of the step, and they are never read. Targets are the input ids at answer positions only,
    so whatever stands at prompt positions cannot reach the loss.
    """
    device = next(model.parameters()).device
    ids = batch["input_ids"].to(device)
    mask = batch["answer_mask"].to(device)
    width = mask.shape[1]
    logits = model(
        input_ids=ids,
        attention_mask=batch["attention_mask"].to(device),
        position_ids=batch["position_ids"].to(device),
        logits_to_keep=width + 1,
        **model_kwargs,
    ).logits[:, :-1]  # position T-L-1 predicts token T-L, ..., T-2 predicts T-1
    logp = torch.log_softmax(logits.float(), dim=-1)
    token_logp = logp.gather(-1, ids[:, -width:].unsqueeze(-1)).squeeze(-1)
    return token_logp * mask
