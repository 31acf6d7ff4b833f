"""PDist / LSR and LOOP against a float64 brute force: the loss, and its gradient with respect
to the query embedding (central differences), on a toy retriever of k chunk vectors."""

import math

import pytest
import torch

from ragtune.training import distill

B, K, L, D = 3, 4, 5, 6
SCALE = 20.0


@pytest.fixture
def toy():
    g = torch.Generator().manual_seed(0)
    queries = torch.randn(B, D, generator=g, dtype=torch.float64)
    chunks = torch.randn(B, K, D, generator=g, dtype=torch.float64)
    token_logp = -torch.rand(B, K, L, generator=g, dtype=torch.float64) * 3
    mask = torch.ones(B, L, dtype=torch.float64)
    mask[0, -2:] = 0  # a shorter answer
    token_logp = token_logp * mask[:, None, :]
    loo_logp = -torch.rand(B, K, generator=g, dtype=torch.float64) * 6
    return queries, chunks, token_logp, mask, loo_logp


def scores_of(queries, chunks):
    q = queries / queries.norm(dim=-1, keepdim=True)
    c = chunks / chunks.norm(dim=-1, keepdim=True)
    return SCALE * torch.einsum("bd,bkd->bk", q, c)


def brute_loss(queries, chunks, target_of_b):
    """KL(Q || P_R) with plain Python sums over b and z, in float64."""
    total = 0.0
    for b in range(B):
        s = []
        for z in range(K):
            qv, cv = queries[b].tolist(), chunks[b, z].tolist()
            dot = sum(x * y for x, y in zip(qv, cv, strict=True))
            nq = math.sqrt(sum(x * x for x in qv))
            nc = math.sqrt(sum(x * x for x in cv))
            s.append(SCALE * dot / (nq * nc))
        m = max(s)
        log_norm = m + math.log(sum(math.exp(v - m) for v in s))
        q = target_of_b(b)
        total += sum(q[z] * (math.log(q[z]) - (s[z] - log_norm)) for z in range(K) if q[z] > 0)
    return total / B


def softmax(values):
    m = max(values)
    e = [math.exp(v - m) for v in values]
    return [x / sum(e) for x in e]


def brute_grad(queries, chunks, target_of_b, eps=1e-6):
    grad = torch.zeros_like(queries)
    for b in range(B):
        for d in range(D):
            up, down = queries.clone(), queries.clone()
            up[b, d] += eps
            down[b, d] -= eps
            grad[b, d] = (brute_loss(up, chunks, target_of_b)
                          - brute_loss(down, chunks, target_of_b)) / (2 * eps)  # fmt: skip
    return grad


def seq_logp_of(token_logp, mask, b, z):
    return sum(float(token_logp[b, z, t]) * float(mask[b, t]) for t in range(L))


@pytest.mark.parametrize("target", ["atlas", "replug"])
@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_pdist_and_lsr_equal_brute_force(toy, target, temperature):
    queries, chunks, token_logp, mask, _ = toy

    def target_of_b(b):
        seq = [seq_logp_of(token_logp, mask, b, z) for z in range(K)]
        values = seq if target == "atlas" else [math.exp(v) for v in seq]
        return softmax([v / temperature for v in values])

    q = queries.clone().requires_grad_(True)
    gen_side = token_logp.clone().requires_grad_(True)
    loss = distill.pdist_loss(gen_side, mask, scores_of(q, chunks), temperature, target)
    assert float(loss) == pytest.approx(brute_loss(queries, chunks, target_of_b), rel=1e-10)
    loss.backward()
    torch.testing.assert_close(q.grad, brute_grad(queries, chunks, target_of_b),
                               rtol=1e-5, atol=1e-7)  # fmt: skip
    assert gen_side.grad is None  # the generator is frozen: Q is a constant


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_loop_equals_brute_force(toy, temperature):
    queries, chunks, _, _, loo_logp = toy

    def target_of_b(b):
        return softmax([-float(loo_logp[b, i]) / temperature for i in range(K)])

    q = queries.clone().requires_grad_(True)
    loss = distill.loop_loss(loo_logp, scores_of(q, chunks), temperature)
    assert float(loss) == pytest.approx(brute_loss(queries, chunks, target_of_b), rel=1e-10)
    loss.backward()
    torch.testing.assert_close(q.grad, brute_grad(queries, chunks, target_of_b),
                               rtol=1e-5, atol=1e-7)  # fmt: skip


def test_the_targets_differ_and_the_retriever_is_pulled_toward_them(toy):
    queries, chunks, token_logp, mask, loo_logp = toy
    seq = distill.answer_logp(token_logp, mask)
    atlas, replug = distill.pdist_target(seq), distill.pdist_target(seq, target="replug")
    assert not torch.allclose(atlas, replug)
    # a chunk the generator needs most (dropping it costs the most) gets the most mass
    loop = distill.loop_target(loo_logp)
    assert (loop.argmax(-1) == loo_logp.argmin(-1)).all()
    # one gradient step on the query lowers the KL
    q = queries.clone().requires_grad_(True)
    before = distill.kl_to_retriever(atlas, scores_of(q, chunks))
    before.backward()
    with torch.no_grad():
        after = distill.kl_to_retriever(atlas, scores_of(q - 0.01 * q.grad, chunks))
    assert after < before
    with pytest.raises(ValueError, match="target must be one of"):
        distill.pdist_target(seq, target="nope")
