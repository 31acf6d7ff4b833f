"""Peak GPU memory of one ragtune job, from its model's architecture and its configured shapes.

A job's peak is what stays resident (weights; for training, the optimizer's states) plus the
peak of everything a step allocates on top, which the step itself shows when it runs on the
``meta`` device (:mod:`ragtune.memory.meta`): activations saved for backward, transients,
gradients, the KV cache of generation. Nothing here is a fitted constant except the CUDA
context, which no tensor counts.

Shapes are the configured caps (micro-batch rows, prompt tokens), since a job's longest batch
is what runs out of memory.
"""

from __future__ import annotations

import contextlib
import copy

import torch

from ragtune.lora import lora_config
from ragtune.memory import meta
from ragtune.memory.result import ANSWER_TOKENS, CUDA_CONTEXT_BYTES, NF4_BITS, Estimate


def _torch_dtype(dtype) -> torch.dtype:
    return getattr(torch, dtype) if isinstance(dtype, str) else dtype


def _bytes(tensor) -> int:
    return tensor.numel() * tensor.element_size()


def _weights(model, quantized: set[str]) -> int:
    total = 0
    for name, param in model.named_parameters():
        total += int(param.numel() * NF4_BITS / 8) if name in quantized else _bytes(param)
    return total


def _build_causal_lm(config, dtype):
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(
            copy.deepcopy(config), dtype=dtype, attn_implementation="sdpa"
        )


def _build_encoder(config):
    """The encoder with the attention it loads with: SDPA where the architecture has it (BERT),
    eager attention, with its full score matrix, where it does not (MPNet)."""
    from transformers import AutoModel

    with torch.device("meta"):
        try:
            return AutoModel.from_config(
                copy.deepcopy(config), dtype=torch.float32, attn_implementation="sdpa"
            )
        except ValueError:
            return AutoModel.from_config(copy.deepcopy(config), dtype=torch.float32)


def _batch(rows: int, tokens: int):
    ids = torch.zeros(rows, tokens, dtype=torch.long, device="meta")
    mask = torch.ones(rows, tokens, dtype=torch.long, device="meta")
    positions = torch.arange(tokens, device="meta").expand(rows, -1)
    return ids, mask, positions


@contextlib.contextmanager
def _watch(model, target: str):
    """The step's live-bytes peak and saved-for-backward total, with ``target``'s attention."""
    live = meta.LiveBytes()
    with meta.fused_attention(target), live, meta.saved_for_backward(model.parameters()) as saved:
        yield live, saved


def affine_in_layers(estimator):
    """Run ``estimator`` on 1- and 2-layer versions of the model and extrapolate to its real
    depth. Every decoder (or encoder) layer has the same shapes, so each part of the estimate
    is affine in the number of layers, a + b * L: the weights and adapters, the activations a
    layer saves; under checkpointing the peak is every layer's saved input plus one layer's
    recompute, affine too. Two shallow runs cost a fraction of a 32-layer one. Inference
    (``train=False``) frees each layer's activations before the next, so its peak is no sum
    over layers: it runs at full depth (without a backward pass, that is cheap)."""

    def run(config, **kwargs) -> Estimate:
        if kwargs.get("train") is False:
            return estimator(config, **kwargs)
        depth = config.num_hidden_layers
        one, two = (
            estimator(
                copy.deepcopy(config).__class__(**{**config.to_dict(), "num_hidden_layers": n}),
                **kwargs,
            )
            for n in (1, 2)
        )
        fields = ("weights", "optimizer", "step_peak", "saved_activations")
        values = {
            f: getattr(one, f) + (depth - 1) * (getattr(two, f) - getattr(one, f)) for f in fields
        }
        return Estimate(job=one.job, overhead=one.overhead, device=one.device, **values)

    run.exact = estimator
    return run


def _examples(rows: int, prompt_tokens: int, prefix_tokens: int, loss_tokens: str = "answer"):
    """``rows`` token sequences of ``prompt_tokens`` + the answer, their first
    ``prefix_tokens`` shared (the joint step's instruction), the rest different per row; the
    loss scores the answer, or (``loss_tokens`` ``all``) every token but the first, which puts
    the LM head over the whole sequence."""
    from ragtune.prompting import Example

    tail = prompt_tokens - prefix_tokens
    n = prompt_tokens + ANSWER_TOKENS
    if loss_tokens == "all":
        mask = [0] + [1] * (n - 1)
    else:
        mask = [0] * prompt_tokens + [1] * ANSWER_TOKENS
    return [
        Example([3] * prefix_tokens + [4 + i] * tail + [5] * ANSWER_TOKENS, mask)
        for i in range(rows)
    ]


@affine_in_layers
def generator_training(
    config,
    *,
    job: str,
    rows: int,
    prompt_tokens: int,
    quantized: bool,
    compute_dtype: torch.dtype | str,
    lora_rank: int,
    lora_targets: list[str],
    lora_dropout: float,
    checkpointing: bool,
    joint_k: int = 0,
    prefix_tokens: int = 0,
    rows_per_forward: int = 0,
    target: str = "cuda",
    loss_tokens: str = "answer",
) -> Estimate:
    """One training step of the generator under QLoRA, through ragtune's own loss code:
    Ft. Gen.'s answer NLL over ``rows`` prompts of ``prompt_tokens`` (+ the answer), or, with
    ``joint_k``, the joint step's RAG-Token marginal over ``rows`` = questions x k
    single-chunk prompts, their shared ``prefix_tokens`` run once, the rest in pieces of
    ``rows_per_forward`` (see :func:`ragtune.training.joint.answer_logprobs_by_row`)."""
    from peft import get_peft_model

    from ragtune.prompting import collate
    from ragtune.training.generator import generator_loss
    from ragtune.training.joint import answer_logprobs_by_row
    from ragtune.training.marginal import rag_token_nll

    compute_dtype = _torch_dtype(compute_dtype)
    model = _build_causal_lm(config, compute_dtype)
    quantized_names = set()
    if quantized:
        quantized_names = {f"{n}.weight" for n in meta.quantize_like_qlora(model, compute_dtype)}
    base_weights = _weights(model, quantized_names)
    model.requires_grad_(False)
    if checkpointing:
        model.activation_checkpointing_enable({"use_reentrant": False})
        model.config.use_cache = False
    lora = lora_config(lora_dropout, lora_rank, lora_targets)
    model = get_peft_model(model, lora)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    weights = base_weights + sum(_bytes(p) for p in trainable)  # LoRA adapters, float32
    examples = _examples(rows, prompt_tokens, prefix_tokens if joint_k else 0, loss_tokens)
    with _watch(model, target) as (live, saved):
        if joint_k:
            logp = answer_logprobs_by_row(model, examples, 0, rows_per_forward)
            logp = logp.view(rows // joint_k, joint_k, -1)
            mask = torch.ones(logp.shape[0], logp.shape[-1], device="meta")
            scores = torch.zeros(logp.shape[:2], device="meta", requires_grad=True)
            loss = rag_token_nll(logp, mask, scores)
            del logp
        else:
            loss = generator_loss(model, collate(examples, 0))
        loss.backward()
    return Estimate(
        job=job,
        weights=weights,
        optimizer=2 * sum(_bytes(p) for p in trainable),
        step_peak=live.peak,
        saved_activations=saved[0],
        overhead=CUDA_CONTEXT_BYTES if target == "cuda" else 0,
        device=target,
    )


@affine_in_layers
def encoder_step(
    config, *, job: str, rows: int, tokens: int, train: bool, target: str = "cuda"
) -> Estimate:
    """A sentence-transformers encoder (float32, as it loads) on ``rows`` texts of ``tokens``:
    a training step of the whole encoder (Ft. Embed., the joint step's query side) or an
    inference batch (embedding the corpus, encoding questions)."""
    model = _build_encoder(config)
    model.train(train)
    ids, mask, _ = _batch(rows, tokens)
    with _watch(model, target) as (live, saved), torch.set_grad_enabled(train):
        hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
        pooled = torch.nn.functional.normalize(hidden.mean(dim=1), dim=-1)
        del hidden
        if train:
            (pooled @ pooled.T).logsumexp(-1).mean().backward()
        del pooled
    params = list(model.parameters())
    return Estimate(
        job=job,
        weights=sum(_bytes(p) for p in params),
        optimizer=2 * sum(_bytes(p) for p in params) if train else 0,
        step_peak=live.peak,
        saved_activations=saved[0] if train else 0,
        overhead=CUDA_CONTEXT_BYTES if target == "cuda" else 0,
        device=target,
    )


def generation(
    config,
    *,
    job: str,
    rows: int,
    prompt_tokens: int,
    new_tokens: int,
    dtype: torch.dtype | str,
    quantized: bool = False,
    target: str = "cuda",
) -> Estimate:
    """Greedy generation of ``new_tokens`` for ``rows`` prompts of ``prompt_tokens``: the
    prefill (run on meta, the KV cache included), then the cache's growth while decoding,
    during which each step concatenates one layer's cache anew."""
    dtype = _torch_dtype(dtype)
    model = _build_causal_lm(config, dtype)
    quantized_names = set()
    if quantized:
        quantized_names = {f"{n}.weight" for n in meta.quantize_like_qlora(model, dtype)}
        for name, param in model.named_parameters():  # inference keeps them in the compute dtype
            if name not in quantized_names:
                param.data = param.data.to(dtype)
    model.eval()
    ids, mask, positions = _batch(rows, prompt_tokens)
    with _watch(model, target) as (live, _), torch.no_grad():
        out = model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,
        )
        cache = out.past_key_values
        kv_layer = sum(_bytes(t) for t in (cache.layers[0].keys, cache.layers[0].values))
        del out, cache
    per_token = kv_layer * config.num_hidden_layers / prompt_tokens
    decode = int(per_token * new_tokens + kv_layer * (prompt_tokens + new_tokens) / prompt_tokens)
    return Estimate(
        job=job,
        weights=_weights(model, quantized_names),
        optimizer=0,
        step_peak=live.peak + decode,
        saved_activations=0,
        overhead=CUDA_CONTEXT_BYTES if target == "cuda" else 0,
        device=target,
    )
