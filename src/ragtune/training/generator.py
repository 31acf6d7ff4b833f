"""Ft. Gen: QLoRA on the generator with the NLL of the answer tokens only.

The prompt is the paper's Appendix-A prompt over the top-k chunks that the *base* embedder
retrieved (the cached retrieval), and the target is the gold answer followed by a newline: the
newline is where evaluation stops reading, so the model learns to end its answer line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ragtune.evaluation.prompt import prompt_ids
from ragtune.training.lora import LORA_DROPOUT, LORA_TARGETS, lora_config  # noqa: F401


@dataclass
class Example:
    input_ids: list[int]
    answer_mask: list[int]  # 1 on the answer tokens the loss scores


def build_example(tokenizer, prompt: str, answer: str) -> Example:
    """The prompt with the tokenizer's special prefix (as at evaluation), then the answer."""
    prompt_part = prompt_ids(tokenizer, prompt)
    answer_ids = tokenizer(answer.strip() + "\n", add_special_tokens=False)["input_ids"]
    return Example(prompt_part + answer_ids, [0] * len(prompt_part) + [1] * len(answer_ids))


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


def use_checkpointing(setting) -> bool:
    """``training.gradient_checkpointing``: ``auto`` is on where the device is CUDA (an 8B
    model's saved activations, 11-14 MB per token, would not fit a 24 GB GPU) and off on a CPU,
    where memory is plentiful and the recompute would cost a third more time."""
    if setting == "auto":
        return torch.cuda.is_available()
    return bool(setting)


def quantizes(quantize: str) -> bool:
    """Whether ``training.*.quantize`` loads the base 4-bit here (see :func:`load_for_training`)."""
    return quantize == "4bit" or (quantize == "auto" and torch.cuda.is_available())


def load_for_training(
    path: str,
    quantize: str = "auto",
    lora_dropout: float = LORA_DROPOUT,
    seed: int = 0,
    gradient_checkpointing=False,
    dtype: str = "auto",
):
    """The base generator with fresh LoRA adapters (r=16) on every projection, initialised
    from ``seed``.

    ``quantize``: ``auto`` is 4-bit NF4 on CUDA (QLoRA, the paper's §2.2), with the GPU's 16-bit
    compute dtype (bf16, or fp16 where bf16 is not native), and no quantisation on CPU;
    ``4bit`` forces 4-bit (on CPU with float32 compute, since bf16 compute there is ~20x
    slower); ``none`` never quantises. ``gradient_checkpointing`` (see
    :func:`use_checkpointing`) recomputes each decoder layer in the backward pass, non-reentrant
    (the frozen base's inputs need no gradient for it to reach the adapters). ``dtype``
    (``training.dtype``) is the frozen base's compute dtype (:func:`runtime.resolve_dtype`);
    peft keeps the adapters in float32 whatever it is.

    The adapter folder records what base it trained on (:data:`BASE_RECORD`), so evaluation
    can run on the same base.
    """
    from peft import get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ragtune import models, runtime

    # A spec, not a path: `org/name@revision` loads that revision (and the adapter records
    # it, so evaluation loads the same base).
    resolved = models.resolve(path)
    cuda = torch.cuda.is_available()
    four_bit = quantizes(quantize)
    compute = runtime.resolve_dtype(dtype)
    kwargs: dict = dict(resolved.pretrained_kwargs())
    if four_bit:
        kwargs["quantization_config"] = nf4_config(compute)
        kwargs["device_map"] = {"": torch.cuda.current_device() if cuda else "cpu"}
    else:
        kwargs["dtype"] = compute
    tokenizer = AutoTokenizer.from_pretrained(resolved.location, **resolved.pretrained_kwargs())
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(resolved.location, **kwargs)
    checkpointing = use_checkpointing(gradient_checkpointing)
    non_reentrant = {"use_reentrant": False}
    if four_bit:
        models.pin_bnb_cpu_kernel(model, compute)
        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=checkpointing,
            gradient_checkpointing_kwargs=non_reentrant,
        )
    else:
        if cuda:
            model = model.to("cuda")
        if checkpointing:
            model.activation_checkpointing_enable(non_reentrant)
    if checkpointing:
        model.config.use_cache = False
    lora = lora_config(lora_dropout)
    # LoRA's A matrices start random (B starts at zero, so the first loss hides it): without
    # a seed here, two runs of one grid point trained different adapters.
    torch.manual_seed(seed)
    peft_model = get_peft_model(model, lora, revision=resolved.revision)
    peft_model.ragtune_base = {
        "quantization": "nf4" if four_bit else "none",
        "compute_dtype": str(compute).removeprefix("torch."),
    }
    return peft_model, tokenizer


# Written into every adapter folder ragtune trains: the base it trained on.
BASE_RECORD = "ragtune_base.json"


def nf4_config(compute_dtype):
    """QLoRA's quantisation: 4-bit NF4 with double quantisation, ``compute_dtype`` compute."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
    )


def save_adapter(model, tokenizer, folder) -> None:
    """The adapter, its tokenizer and the record of the base it trained on."""
    import json
    from pathlib import Path

    model.save_pretrained(folder)  # adapter only; adapter_config.json points at the base
    tokenizer.save_pretrained(folder)
    record = getattr(model, "ragtune_base", {"quantization": "none"})
    (Path(folder) / BASE_RECORD).write_text(json.dumps(record))
