"""`training.dtype`: the generator's frozen base in bfloat16 (the lever for CPUs with native
bf16), its LoRA adapters in float32, and a loss curve that follows float32's."""

import logging

import pytest
import torch

from ragtune import runtime, toy
from ragtune.models import load_for_training
from ragtune.prompting import build_example, collate
from ragtune.training.generator import generator_loss

PROMPT = "### Context: Paris is the capital of France. ### Question: capital of France?"


def _curve(folder, dtype: str, steps: int = 4):
    model, tok = load_for_training(str(folder), "none", 0.0, seed=0, dtype=dtype)
    batch = collate([build_example(tok, PROMPT, "Paris")], tok.pad_token_id)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-2)
    losses = []
    for _ in range(steps):
        loss = generator_loss(model, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return model, losses


def test_a_bf16_base_trains_float32_adapters_along_the_float32_curve(tmp_path):
    folder = toy.save_llama(tmp_path / "toy")
    bf16, bf16_losses = _curve(folder, "bfloat16")
    _, fp32_losses = _curve(folder, "float32")
    base = [p for n, p in bf16.named_parameters() if "lora_" not in n]
    adapters = [p for n, p in bf16.named_parameters() if "lora_" in n]
    assert adapters and all(p.dtype == torch.float32 for p in adapters)
    assert all(p.dtype == torch.bfloat16 for p in base)
    assert bf16.ragtune_base["compute_dtype"] == "bfloat16"
    # The curve falls, and stays within bf16's rounding of float32's.
    assert bf16_losses[-1] < bf16_losses[0]
    assert bf16_losses == pytest.approx(fp32_losses, rel=0.05)


def test_bf16_on_a_cpu_without_it_is_kept_with_a_warning(monkeypatch, caplog):
    if torch.cuda.is_available():
        pytest.skip("the CPU path")
    monkeypatch.setattr(runtime, "cpu_native_bf16", lambda: False)
    with caplog.at_level(logging.WARNING, logger="ragtune.runtime"):
        assert runtime.resolve_dtype("bfloat16") == torch.bfloat16
    assert "without native bf16" in caplog.text and "bench_cpu_dtype" in caplog.text
    caplog.clear()
    monkeypatch.setattr(runtime, "cpu_native_bf16", lambda: True)
    with caplog.at_level(logging.WARNING, logger="ragtune.runtime"):
        assert runtime.resolve_dtype("bfloat16") == torch.bfloat16
    assert caplog.text == ""
    assert runtime.resolve_dtype("auto") == torch.float32  # never switched behind one's back
