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

# Attention and MLP projections of Llama / Mistral / SmolLM2-style decoders.
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
# The paper gives only the rank; QLoRA used this dropout for models of up to 13B.
LORA_DROPOUT = 0.05


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


def load_for_training(
    path: str, quantize: str = "auto", lora_dropout: float = LORA_DROPOUT, seed: int = 0
):
    """The base generator with fresh LoRA adapters (r=16) on every projection, initialised
    from ``seed``.

    ``quantize``: ``auto`` is 4-bit NF4 with bf16 compute on CUDA (QLoRA, as in the paper) and
    no quantisation on CPU; ``4bit`` forces 4-bit (on CPU with float32 compute, since bf16
    compute there is ~20x slower); ``none`` never quantises.
    """
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    cuda = torch.cuda.is_available()
    four_bit = quantize == "4bit" or (quantize == "auto" and cuda)
    kwargs: dict = {}
    if four_bit:
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16 if cuda else torch.float32,
        )
        kwargs["device_map"] = {"": torch.cuda.current_device() if cuda else "cpu"}
    else:
        kwargs["dtype"] = torch.bfloat16 if cuda else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    if four_bit:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    elif cuda:
        model = model.to("cuda")
    lora = LoraConfig(
        r=16,
        lora_alpha=32,
        lora_dropout=lora_dropout,
        target_modules=LORA_TARGETS,
        task_type="CAUSAL_LM",
    )
    # LoRA's A matrices start random (B starts at zero, so the first loss hides it): without
    # a seed here, two runs of one grid point trained different adapters.
    torch.manual_seed(seed)
    return get_peft_model(model, lora), tokenizer
