"""One joint RAG training step: retrieve with the current query encoder, score, marginalise.

Per batch of B questions (the joint step of RAG-Sequence and RAG-Token, the paper's §2.3):

1. encode the questions with the trainable query encoder (with gradient if it learns);
2. search the frozen index without gradient for the top-k rows;
3. recompute s(z) = scale * cos(q(x), d(z)) exactly, with gradient, from the stored d(z);
4. run the generator on the k single-chunk prompts of every question as one (B*k)-row batch,
   left-padded so every row's answer ends at the right edge, with the LM head on the answer
   tokens only. ``rows_per_forward`` splits that batch into length-sorted pieces: the k chunks
   of a question differ in length, and on a CPU, where a bigger batch buys no speed, one row
   per forward pass removes all padding (its activations are what fills memory). The prompt's
   opening instruction is the same in all B*k prompts: it runs once, and every row attends to
   its cached keys and values (gradient flows through them), so it is not paid k times;
5. return the RAG-Sequence or RAG-Token marginal NLL; its backward pass reaches both models.

Either side may be frozen (2-Phase trains one side at a time): a frozen side runs without
gradient, which also saves its activations.

PDist, LSR and LOOP (beyond the paper, ``ragtune.training.distill``) share steps 1-4 with the
generator frozen, and return KL(Q || P_R) instead of a marginal NLL: Q from the generator's
answer log-likelihoods, with one chunk in the prompt (PDist, LSR) or the concatenated top-k less
one (LOOP).

With ``train_documents`` (``training.embedder.train_documents``) step 3 encodes the top-k
chunks with the embedder itself, with gradient, instead of reading d(z) from the store: the
index searched stays the base one (it is refreshed after training, as DAG steps).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ragtune.prompting import Example, answer_token_logprobs, build_example, collate, fit_prompt
from ragtune.retrieval.embed import passage_text
from ragtune.retrieval.index import search
from ragtune.training import distill
from ragtune.training.embedder import encode_with_grad
from ragtune.training.marginal import LOSSES

# The distillation losses (strategies PDist, LSR, LOOP): their target Q(z) over the top k.
DISTILL = {"pdist": "atlas", "lsr": "replug", "loop": "leave_one_out"}


@dataclass
class Retriever:
    """The frozen half of retrieval: a faiss index, the float16 store and the chunk texts."""

    index: object
    store: object
    chunks: object
    k: int
    rescore_factor: int = 1


def query_scores(
    embedder,
    texts: Sequence[str],
    retriever: Retriever,
    scale: float,
    train: bool,
    documents: bool = False,
):
    """Top-k rows [B, k] (no gradient) and their scores s(z) [B, k] (gradient if ``train``).
    ``documents``: d(z) is encoded by ``embedder`` with gradient, not read from the store."""
    with torch.set_grad_enabled(train):
        queries = F.normalize(encode_with_grad(embedder, texts).float(), dim=-1)
    rows, _ = search(
        retriever.index,
        retriever.store,
        queries.detach().cpu().numpy(),
        retriever.k,
        rescore_factor=retriever.rescore_factor,
    )
    if documents:
        passages = [passage_text(retriever.chunks[int(r)]) for r in rows.reshape(-1)]
        with torch.set_grad_enabled(train):
            docs = encode_with_grad(embedder, passages).float().view(*rows.shape, -1)
    else:
        docs = torch.from_numpy(retriever.store.vectors(rows)).float().to(queries.device)
    scores = scale * torch.einsum("bd,bkd->bk", queries, F.normalize(docs, dim=-1))
    return rows, scores


def single_chunk_examples(tokenizer, questions: Sequence[dict], rows, chunks, max_prompt_tokens):
    """The B*k prompts, question-major (row b*k + z is question b with its z-th chunk)."""
    return [
        build_example(
            tokenizer,
            fit_prompt(q["question"], [chunks[int(r)]], tokenizer, max_prompt_tokens),
            q["answers"][0],
        )
        for q, question_rows in zip(questions, rows, strict=True)
        for r in question_rows
    ]


def leave_one_out_examples(tokenizer, questions: Sequence[dict], rows, chunks, max_prompt_tokens):
    """LOOP's B*k prompts, question-major: row b*k + i holds question b's top k in rank order
    less its i-th chunk, cut to ``max_prompt_tokens`` as evaluation cuts its prompt."""
    return [
        build_example(
            tokenizer,
            fit_prompt(
                q["question"],
                [chunks[int(r)] for j, r in enumerate(question_rows) if j != i],
                tokenizer,
                max_prompt_tokens,
            ),
            q["answers"][0],
        )
        for q, question_rows in zip(questions, rows, strict=True)
        for i in range(len(question_rows))
    ]


def shared_prefix_length(examples: Sequence[Example]) -> int:
    """Tokens every example starts with, stopping one short of the shortest prompt: the last
    prompt token must stay in each row, since its logits predict the first answer token."""
    limit = min(len(e.input_ids) - sum(e.answer_mask) for e in examples) - 1
    first = examples[0].input_ids
    n = 0
    while n < limit and all(e.input_ids[n] == first[n] for e in examples):
        n += 1
    return n


def _decoder_layers(generator) -> list:
    from transformers.modeling_layers import GradientCheckpointingLayer

    return [m for m in generator.modules() if isinstance(m, GradientCheckpointingLayer)]


def _checkpointing_modules(generator) -> list:
    """The decoder layers and the model that holds them: both read ``gradient_checkpointing``
    (the model to turn ``use_cache`` off)."""
    return [m for m in generator.modules() if "gradient_checkpointing" in m.__dict__]


@contextlib.contextmanager
def _layer_flags(generator, modules=None, **flags):
    """Set attributes of every decoder layer (or of ``modules``) for one forward pass."""
    layers = _decoder_layers(generator) if modules is None else modules
    saved = [{name: layer.__dict__.get(name) for name in flags} for layer in layers]
    for layer in layers:
        for name, value in flags.items():
            setattr(layer, name, value)
    try:
        yield
    finally:
        for layer, old in zip(layers, saved, strict=True):
            for name, value in old.items():
                if value is None:
                    layer.__dict__.pop(name, None)  # back to the class default
                else:
                    setattr(layer, name, value)


def _prefix_cache(generator, ids: list[int]):
    """Keys and values of the shared prefix, one row, with the autograd graph kept. Computed
    without checkpointing (a checkpointed layer keeps no cache); one short row saves little."""
    device = next(generator.parameters()).device
    with _layer_flags(generator, _checkpointing_modules(generator), gradient_checkpointing=False):
        out = generator(
            input_ids=torch.tensor([ids], device=device), use_cache=True, logits_to_keep=1
        )
    return [(layer.keys, layer.values) for layer in out.past_key_values.layers]


def _shared_prefix_cache(layers):
    """A cache holding the shared prefix that every layer reads in front of its own keys and
    values, and that none extends: a checkpointed layer's recompute then reads exactly what
    its forward pass read (a ``DynamicCache`` would have grown by the suffix in between)."""
    from transformers import DynamicCache

    class SharedPrefix(DynamicCache):
        def update(self, key_states, value_states, layer_idx, *args, **kwargs):
            prefix = self.layers[layer_idx]
            return (
                torch.cat([prefix.keys, key_states], dim=-2),
                torch.cat([prefix.values, value_states], dim=-2),
            )

    return SharedPrefix(ddp_cache_data=layers)


def _with_prefix(batch, prefix_kv, length: int):
    """Model kwargs that put the cached prefix in front of a batch of suffixes."""
    n = batch["input_ids"].shape[0]
    batch = dict(batch)
    batch["attention_mask"] = torch.cat(
        [torch.ones(n, length, dtype=batch["attention_mask"].dtype), batch["attention_mask"]], 1
    )
    batch["position_ids"] = batch["position_ids"] + length
    cache = _shared_prefix_cache(
        [(k.expand(n, -1, -1, -1), v.expand(n, -1, -1, -1)) for k, v in prefix_kv]
    )
    return batch, {"past_key_values": cache}


def answer_logprobs_by_row(generator, examples, pad_id: int, rows_per_forward: int):
    """``answer_token_logprobs`` of every example, [N, L] right-aligned, computed in pieces
    of ``rows_per_forward`` rows of similar length (0: all rows in one batch), after running
    the examples' shared prefix once."""
    size = rows_per_forward or len(examples)
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].input_ids))
    width = max(sum(e.answer_mask) for e in examples)
    prefix = shared_prefix_length(examples)
    prefix_kv = _prefix_cache(generator, examples[0].input_ids[:prefix]) if prefix else None
    pieces, index = [], []
    for a in range(0, len(order), size):
        part = order[a : a + size]
        suffixes = [
            Example(examples[i].input_ids[prefix:], examples[i].answer_mask[prefix:]) for i in part
        ]
        batch, kwargs = collate(suffixes, pad_id), {}
        if prefix_kv is not None:
            batch, kwargs = _with_prefix(batch, prefix_kv, prefix)
        # The prefix cache is read-only, so checkpointed layers may keep it (transformers drops
        # a layer's cache under checkpointing unless the layer says it only reads it).
        with _layer_flags(generator, _can_checkpoint_with_cache=True):
            logp = answer_token_logprobs(generator, batch, **kwargs)
        pieces.append(torch.nn.functional.pad(logp, (width - logp.shape[1], 0)))
        index += part
    stacked = torch.cat(pieces)
    return stacked[torch.argsort(torch.tensor(index, device=stacked.device))]


def _answer_logprobs(generator, tokenizer, examples, k: int, rows_per_forward: int, grad: bool):
    """``token_logp`` [B, k, L] and ``answer_mask`` [B, L], right-aligned, of B*k examples."""
    with torch.set_grad_enabled(grad):
        token_logp = answer_logprobs_by_row(
            generator, examples, tokenizer.pad_token_id, rows_per_forward
        )
    token_logp = token_logp.view(len(examples) // k, k, -1)
    # The answer is the same in all k prompts of a question, so one row's mask serves all.
    answer_mask = collate(examples[::k], tokenizer.pad_token_id)["answer_mask"]
    answer_mask = F.pad(answer_mask, (token_logp.shape[-1] - answer_mask.shape[1], 0))
    return token_logp, answer_mask


def joint_loss(
    questions: Sequence[dict],
    *,
    embedder,
    generator,
    tokenizer,
    retriever: Retriever,
    loss: str | dict,
    scale: float,
    max_prompt_tokens: int,
    train_embedder: bool,
    train_generator: bool,
    rows_per_forward: int = 0,
    train_documents: bool = False,
) -> torch.Tensor:
    """``loss``: a marginal's name (``rag_sequence``, ``rag_token``), or a distillation loss
    as ``ragtune.plan.Plan.loss_params`` gives it (``{"name": "loop", "temperature": 1.0,
    "max_prompt_tokens": 1536}``)."""
    spec = loss if isinstance(loss, dict) else {"name": loss}
    name = spec["name"]
    if name in DISTILL and train_generator:
        raise ValueError(f"{name} trains the embedder only: its generator stays frozen")
    rows, scores = query_scores(
        embedder,
        [q["question"] for q in questions],
        retriever,
        scale,
        train_embedder,
        documents=train_documents and train_embedder,
    )
    k = scores.shape[1]
    if name == "loop":
        examples = leave_one_out_examples(
            tokenizer, questions, rows, retriever.chunks, spec["max_prompt_tokens"]
        )
    else:
        examples = single_chunk_examples(
            tokenizer, questions, rows, retriever.chunks, max_prompt_tokens
        )
    token_logp, answer_mask = _answer_logprobs(
        generator, tokenizer, examples, k, rows_per_forward, train_generator
    )
    token_logp, answer_mask = token_logp.to(scores.device), answer_mask.to(scores.device)
    if name == "loop":
        loo_logp = distill.answer_logp(token_logp, answer_mask)
        return distill.loop_loss(loo_logp, scores, spec["temperature"])
    if name in DISTILL:
        return distill.pdist_loss(
            token_logp, answer_mask, scores, spec["temperature"], DISTILL[name]
        )
    return LOSSES[name](token_logp, answer_mask, scores)
