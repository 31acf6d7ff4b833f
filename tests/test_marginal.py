"""RAG-Sequence / RAG-Token losses against brute force in probability space."""

import itertools

import pytest
import torch

from ragtune.training.marginal import rag_sequence_nll, rag_token_nll


def _random(b, k, length, seed):
    g = torch.Generator().manual_seed(seed)
    # a proper distribution over a vocabulary of 7, read at random target tokens
    logits = torch.randn(b, k, length, 7, generator=g, dtype=torch.float64)
    targets = torch.randint(0, 7, (b, length), generator=g)
    token_logp = torch.log_softmax(logits, -1).gather(
        -1, targets[:, None, :, None].expand(b, k, length, 1)
    )[..., 0]
    lengths = torch.randint(1, length + 1, (b,), generator=g)
    mask = (torch.arange(length)[None] < lengths[:, None]).double()
    scores = 3 * torch.randn(b, k, generator=g, dtype=torch.float64)
    return token_logp * mask[:, None, :], mask, scores


def _brute(token_logp, mask, scores):
    """Plain products and sums of probabilities, one question at a time."""
    seq_total, tok_total = 0.0, 0.0
    p = torch.exp(token_logp)
    for b in range(len(scores)):
        pz = torch.exp(scores[b]) / torch.exp(scores[b]).sum()
        n = int(mask[b].sum())
        seq = sum(pz[z] * torch.prod(p[b, z, :n]) for z in range(len(pz)))
        seq_total -= torch.log(seq)
        for t in range(n):
            tok_total -= torch.log(sum(pz[z] * p[b, z, t] for z in range(len(pz))))
    return seq_total / mask.sum(), tok_total / mask.sum()


@pytest.mark.parametrize(("k", "length"), itertools.product(range(1, 6), range(1, 7)))
def test_losses_equal_brute_force(k, length):
    token_logp, mask, scores = _random(3, k, length, seed=10 * k + length)
    seq, tok = _brute(token_logp, mask, scores)
    assert rag_sequence_nll(token_logp, mask, scores).item() == pytest.approx(seq.item())
    assert rag_token_nll(token_logp, mask, scores).item() == pytest.approx(tok.item())


def _plain_nll(token_logp_one_chunk, mask):
    return -(token_logp_one_chunk * mask).sum() / mask.sum()


def test_k1_and_one_hot_reduce_to_plain_nll():
    token_logp, mask, scores = _random(4, 1, 5, seed=1)
    plain = _plain_nll(token_logp[:, 0], mask)
    assert rag_sequence_nll(token_logp, mask, scores).item() == pytest.approx(plain.item())
    assert rag_token_nll(token_logp, mask, scores).item() == pytest.approx(plain.item())

    token_logp, mask, _ = _random(4, 5, 5, seed=2)
    one_hot = torch.full((4, 5), -1e4, dtype=torch.float64)
    one_hot[:, 3] = 0.0  # p(z=3|x) = 1
    plain = _plain_nll(token_logp[:, 3], mask)
    assert rag_sequence_nll(token_logp, mask, one_hot).item() == pytest.approx(plain.item())
    assert rag_token_nll(token_logp, mask, one_hot).item() == pytest.approx(plain.item())


def test_stable_for_long_answers():
    """A 400-token answer at log p = -5 per token underflows in probability space (e^-2000)."""
    token_logp = torch.full((2, 5, 400), -5.0)
    mask = torch.ones(2, 400)
    scores = torch.zeros(2, 5)
    for loss in (rag_sequence_nll, rag_token_nll):
        value = loss(token_logp, mask, scores)
        assert torch.isfinite(value) and value.item() == pytest.approx(5.0)


def test_gradient_reaches_scores_and_token_logprobs():
    token_logp, mask, scores = _random(2, 3, 4, seed=3)
    token_logp.requires_grad_(True)
    scores.requires_grad_(True)
    for loss in (rag_sequence_nll, rag_token_nll):
        token_logp.grad = scores.grad = None
        loss(token_logp, mask, scores).backward()
        assert scores.grad.abs().sum() > 0 and token_logp.grad.abs().sum() > 0
        # padded answer positions get no gradient
        assert (token_logp.grad * (1 - mask[:, None, :])).abs().sum() == 0


def test_shape_mismatch_is_a_clear_error():
    token_logp, mask, scores = _random(2, 3, 4, seed=4)
    with pytest.raises(ValueError, match="scores"):
        rag_token_nll(token_logp, mask, scores[:, :2])
