"""Evaluation runs a QLoRA adapter on the base it trained on: a 4-bit NF4 base (CPU bitsandbytes
with float32 compute stands in for CUDA), on a tiny random Llama."""

import pytest
import torch

from ragtune import toy
from ragtune.models import load_generator, trained_base
from ragtune.training.generator import load_for_training, save_adapter


@pytest.fixture(scope="module")
def nf4_adapter(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("qlora")
    base = toy.save_llama(tmp / "base")
    model, tok = load_for_training(str(base), "4bit", lora_dropout=0.0, seed=0)
    with torch.no_grad():  # a trained adapter: B is no longer zero
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    save_adapter(model, tok, tmp / "adapter")
    model.eval()
    ids = torch.tensor([tok("Paris is the capital of France.")["input_ids"]])
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    return tmp / "adapter", ids, logits


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_the_adapter_records_its_4bit_base(nf4_adapter):
    adapter, _, _ = nf4_adapter
    assert trained_base(adapter) == {"quantization": "nf4", "compute_dtype": "float32"}


def test_by_default_evaluation_runs_the_training_forward(nf4_adapter):
    import bitsandbytes as bnb

    adapter, ids, trained = nf4_adapter
    model, _ = load_generator(str(adapter), "float32")
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())
    torch.testing.assert_close(_logits(model, ids), trained)


def test_dequantized_and_full_bases(nf4_adapter):
    adapter, ids, trained = nf4_adapter
    dequantized, _ = load_generator(str(adapter), "float32", lora_base="dequantized")
    assert not any("4bit" in type(m).__name__ for m in dequantized.modules())
    torch.testing.assert_close(_logits(dequantized, ids), trained, atol=1e-4, rtol=1e-4)
    # The original weights, not the NF4 ones the adapter trained on: a different model.
    full, _ = load_generator(str(adapter), "float32", lora_base="full")
    assert (_logits(full, ids) - trained).abs().max() > 1e-3
