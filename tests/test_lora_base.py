"""Evaluation runs a QLoRA adapter on the base it trained on: a 4-bit NF4 base (CPU bitsandbytes
with float32 compute stands in for CUDA), on a tiny random Llama.

bitsandbytes has two CPU kernels for a 4-bit forward (``ragtune.models.bnb_cpu_kernel``); the
tests hold with either forced through ``RAGTUNE_BNB_CPU_KERNEL``, each to its own tolerance."""

import pytest
import torch

from ragtune import models, toy
from ragtune.models import load_for_training, load_generator, save_adapter, trained_base


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


def _kernel_tolerance(reference: torch.Tensor) -> dict:
    """How far a 4-bit forward may lie from the same weights dequantized to float32.

    The generic kernel dequantizes and multiplies in float32: only summation order differs.
    The fused AVX512-BF16 kernel rounds activations and block scales to bfloat16 (8 significant
    bits, a relative error of at most 2**-8 each) before a float32 accumulation, so its error
    scales with the outputs: at most bf16's epsilon (2**-7) of the largest logit."""
    if models.bnb_cpu_kernel(torch.float32) == "packed_bf16":
        return {"atol": 2**-7 * reference.abs().max().item(), "rtol": 0.0}
    return {"atol": 1e-4, "rtol": 1e-4}


def test_dequantized_and_full_bases(nf4_adapter):
    adapter, ids, trained = nf4_adapter
    dequantized, _ = load_generator(str(adapter), "float32", lora_base="dequantized")
    assert not any("4bit" in type(m).__name__ for m in dequantized.modules())
    torch.testing.assert_close(_logits(dequantized, ids), trained, **_kernel_tolerance(trained))
    # The original weights, not the NF4 ones the adapter trained on: a different model.
    full, _ = load_generator(str(adapter), "float32", lora_base="full")
    assert (_logits(full, ids) - trained).abs().max() > 1e-3


def test_a_16_bit_base_keeps_a_small_adapter_unmerged(tmp_path):
    """Merged into bfloat16 weights, a LoRA delta smaller than their rounding step is lost;
    unmerged, it still moves the output. In float32 the merged weights keep it."""
    from peft import PeftModel

    base = toy.save_llama(tmp_path / "base")
    model, tok = load_for_training(str(base), "none", lora_dropout=0.0, seed=0, dtype="float32")
    with torch.no_grad():  # a delta far below the weights (std 0.02), as a few LoRA steps make
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 2e-5)
    save_adapter(model, tok, tmp_path / "adapter")
    ids = torch.tensor([tok("Paris is the capital of France.")["input_ids"]])

    merged32, _ = load_generator(str(tmp_path / "adapter"), "float32")
    assert not isinstance(merged32, PeftModel)
    base32, _ = load_generator(str(base), "float32")
    assert (_logits(merged32, ids) - _logits(base32, ids)).abs().max() > 0

    bf16, _ = load_generator(str(tmp_path / "adapter"), "bfloat16")
    assert isinstance(bf16, PeftModel)  # unmerged
    base16, _ = load_generator(str(base), "bfloat16")
    moved = (_logits(bf16, ids).float() - _logits(base16, ids).float()).abs().max()
    assert moved > 0
    # What merging would have done: most of the delta rounds away in the weights.
    merged16 = PeftModel.from_pretrained(base16, str(tmp_path / "adapter")).merge_and_unload()
    base16_again, _ = load_generator(str(base), "bfloat16")
    kept = [
        (a != b).float().mean().item()
        for a, b in zip(merged16.parameters(), base16_again.parameters(), strict=True)
        if a.dim() == 2 and a.shape[0] != len(tok)
    ]
    assert max(kept) < 0.5, kept


def _has_packed_kernel() -> bool:
    return models._bnb_has_avx512bf16()


@pytest.mark.parametrize("kernel", ["dequantize", "packed_bf16"])
def test_each_cpu_kernel_stays_within_its_tolerance(nf4_adapter, monkeypatch, kernel):
    """Both kernels forced in one run, whatever ``RAGTUNE_BNB_CPU_KERNEL`` says outside."""
    if kernel == "packed_bf16" and not _has_packed_kernel():
        pytest.skip("this CPU has no AVX512-BF16: bitsandbytes has no fused 4-bit kernel here")
    monkeypatch.setenv(models.BNB_CPU_KERNEL_ENV, kernel)
    adapter, ids, _ = nf4_adapter
    four_bit, _ = load_generator(str(adapter), "float32")
    flags = {m.support_avx512bf16_for_cpu for m in four_bit.modules() if hasattr(m, "quant_state")}
    assert flags == {kernel == "packed_bf16"}
    dequantized, _ = load_generator(str(adapter), "float32", lora_base="dequantized")
    reference = _logits(dequantized, ids)
    got = _logits(four_bit, ids)
    torch.testing.assert_close(got, reference, **_kernel_tolerance(reference))
    if kernel == "packed_bf16":  # the check can fail: the fused kernel really is bf16
        assert (got - reference).abs().max() > 1e-5


def test_float32_stays_off_the_bf16_kernel_by_default(monkeypatch):
    monkeypatch.delenv(models.BNB_CPU_KERNEL_ENV, raising=False)
    monkeypatch.setattr(models, "_bnb_has_avx512bf16", lambda: True)
    assert models.bnb_cpu_kernel(torch.float32) == "dequantize"
    assert models.bnb_cpu_kernel(torch.bfloat16) == "packed_bf16"
    monkeypatch.setattr(models, "_bnb_has_avx512bf16", lambda: False)
    assert models.bnb_cpu_kernel(torch.bfloat16) == "dequantize"
    monkeypatch.setenv(models.BNB_CPU_KERNEL_ENV, "packed_bf16")
    with pytest.raises(RuntimeError, match="no AVX512-BF16"):
        models.bnb_cpu_kernel(torch.float32)
    monkeypatch.setenv(models.BNB_CPU_KERNEL_ENV, "fast")
    with pytest.raises(ValueError, match="RAGTUNE_BNB_CPU_KERNEL='fast'"):
        models.bnb_cpu_kernel(torch.float32)


def test_runs_without_an_adapter_load_the_base_the_adapters_use(nf4_adapter, tmp_path):
    """evaluation.base_generator: as_adapters puts No Ft. on the NF4 base where training
    quantises (here forced with quantize: 4bit), dequantized with lora_base dequantized; full,
    or a training that does not quantise, keeps the full-precision base."""
    base = toy.save_llama(tmp_path / "base")
    bq = models.base_quantization
    assert bq(base, "auto", "as_adapters", "4bit") == "nf4"
    assert bq(base, "dequantized", "as_adapters", "4bit") == "nf4_dequantized"
    assert bq(base, "full", "as_adapters", "4bit") == "none"
    assert bq(base, "auto", "full", "4bit") == "none"
    assert bq(base, "auto", "as_adapters", "none") == "none"
    assert bq(base, "auto", "as_adapters", "auto") == "none"  # no CUDA here: no 4-bit training
    adapter = str(nf4_adapter[0])
    assert bq(adapter, "auto", "as_adapters", "4bit") == "none"  # loads as it trained
    nf4, _ = models.load_generator(base, "float32", quantize="nf4")
    assert any(type(m).__name__ == "Linear4bit" for m in nf4.modules())
    deq, _ = models.load_generator(base, "float32", quantize="nf4_dequantized")
    assert not any(type(m).__name__ == "Linear4bit" for m in deq.modules())
    ids = torch.tensor([[1, 5, 9, 3]])
    # the same weights, up to the 4-bit kernel's rounding
    torch.testing.assert_close(_logits(deq, ids), _logits(nf4, ids), atol=1e-3, rtol=1e-3)
