"""Gradient checkpointing in Ft. Gen. and the joint step, on a tiny random Llama (no download).

The joint step runs the prompts' shared prefix once and lets every row attend to its cached
keys and values. transformers drops a checkpointed layer's cache, so the prefix must survive
checkpointing, and the loss and its gradients must be those of the plain computation.
"""

import pytest
import torch

from ragtune import toy
from ragtune.models import load_for_training, use_checkpointing
from ragtune.prompting import answer_token_logprobs, build_example, build_prompt, collate
from ragtune.training.joint import answer_logprobs_by_row, shared_prefix_length
from ragtune.training.marginal import rag_token_nll

CHUNKS = [
    {"title": "Paris", "text": "Paris is the capital of France."},
    {"title": "Berlin", "text": "Berlin is the capital of Germany. The river Spree flows."},
    {"title": "Hamlet", "text": "William Shakespeare wrote Hamlet."},
]


@pytest.fixture(scope="module")
def toy_folder(tmp_path_factory):
    return toy.save_llama(tmp_path_factory.mktemp("toy") / "llama")


def _examples(tok):
    """2 questions x 3 single-chunk prompts, question-major, as the joint step builds them."""
    qa = [("What is the capital of France?", "Paris"), ("Who wrote Hamlet?", "Shakespeare")]
    return [build_example(tok, build_prompt(q, [c]), a) for q, a in qa for c in CHUNKS]


def _layer_calls(model):
    """Counts attention forward passes: a checkpointed layer's recompute calls its forward
    directly (no hook of the layer fires), but its attention module through ``__call__``."""
    calls = []
    for layer in model.base_model.model.model.layers:
        layer.self_attn.register_forward_hook(lambda *_: calls.append(1))
    return calls


def _loss_and_grads(model, tok, examples, *, shared: bool, rows: int = 0):
    model.zero_grad(set_to_none=True)
    if shared:
        logp = answer_logprobs_by_row(model, examples, tok.pad_token_id, rows)
    else:
        logp = answer_token_logprobs(model, collate(examples, tok.pad_token_id))
    mask = collate(examples[::3], tok.pad_token_id)["answer_mask"]
    mask = torch.nn.functional.pad(mask, (logp.shape[-1] - mask.shape[1], 0))
    scores = torch.tensor([[3.0, 1.0, 0.5], [0.2, 0.1, 2.0]])
    loss = rag_token_nll(logp.view(2, 3, -1), mask, scores)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return loss.detach(), grads


@pytest.mark.parametrize("checkpointing", [False, True])
def test_joint_loss_and_gradients_match_the_plain_computation(toy_folder, checkpointing):
    model, tok = load_for_training(
        str(toy_folder), "none", lora_dropout=0.0, seed=0, gradient_checkpointing=checkpointing
    )
    # LoRA's B starts at zero; give it values so every adapter weight gets a gradient.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    model.train()
    examples = _examples(tok)
    assert shared_prefix_length(examples) > 10
    # Reference: full prompts, no prefix sharing, no checkpointing.
    model.base_model.model.activation_checkpointing_disable()
    ref_loss, ref_grads = _loss_and_grads(model, tok, examples, shared=False)
    if checkpointing:
        model.base_model.model.activation_checkpointing_enable({"use_reentrant": False})
    calls = _layer_calls(model)
    for rows in (0, 1):
        calls.clear()
        loss, grads = _loss_and_grads(model, tok, examples, shared=True, rows=rows)
        torch.testing.assert_close(loss, ref_loss, atol=1e-5, rtol=1e-5)
        assert grads.keys() == ref_grads.keys() and len(grads) > 0
        for name, grad in grads.items():
            torch.testing.assert_close(grad, ref_grads[name], atol=1e-5, rtol=1e-4, msg=name)
        # 1 prefix pass + the suffix passes, each through 2 layers; checkpointing recomputes
        # every suffix pass in the backward (the prefix pass is not checkpointed).
        suffix_passes = 1 if rows == 0 else len(examples)
        per_pass = 2 if checkpointing else 1
        assert len(calls) == 2 * (1 + suffix_passes * per_pass)


def test_ft_gen_loss_and_gradients_do_not_change_under_checkpointing(toy_folder):
    from ragtune.training.generator import generator_loss

    results = []
    for checkpointing in (False, True):
        model, tok = load_for_training(
            str(toy_folder), "none", 0.0, seed=0, gradient_checkpointing=checkpointing
        )
        model.train()
        batch = collate(_examples(tok)[:4], tok.pad_token_id)
        loss = generator_loss(model, batch)
        loss.backward()
        grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
        results.append((loss.detach(), grads))
        assert model.base_model.model.model.layers[0].gradient_checkpointing is checkpointing
    (loss_a, grads_a), (loss_b, grads_b) = results
    torch.testing.assert_close(loss_a, loss_b)
    for name in grads_a:
        torch.testing.assert_close(grads_a[name], grads_b[name], atol=1e-6, rtol=1e-5)


def test_checkpointing_is_on_by_default_only_on_cuda(monkeypatch):
    assert use_checkpointing("auto") is False  # this host has no GPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert use_checkpointing("auto") is True
    assert use_checkpointing(False) is False and use_checkpointing(True) is True
