"""The paper's Appendix-A prompt, used for every generator, at training and at evaluation."""

from __future__ import annotations

from collections.abc import Sequence

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
