"""Training building blocks on small tensors and tiny models (CPU, seconds)."""

import functools
import os
import signal
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ragtune.prompting import Example, build_example, collate
from ragtune.training import loop
from ragtune.training.embedder import (
    batches_without_duplicate_positives,
    cached_mnrl_step,
    candidate_exclusions,
    choose_positives,
    encode_with_grad,
    hard_negatives,
    mnrl_loss,
)
from ragtune.training.generator import generator_loss, length_grouped_batches, padding_fraction


class TinyEncoder(torch.nn.Module):
    """The two methods of a SentenceTransformer that training uses, over a bag of chars."""

    def __init__(self, dim=6):
        super().__init__()
        torch.manual_seed(0)
        self.proj = torch.nn.Linear(26, dim)

    def preprocess(self, texts):
        x = torch.zeros(len(texts), 26)
        for i, t in enumerate(texts):
            for ch in t.lower():
                if "a" <= ch <= "z":
                    x[i, ord(ch) - 97] += 1
        return {"x": x}

    def forward(self, features):
        return {"sentence_embedding": self.proj(features["x"])}


def test_mnrl_equals_cross_entropy_over_scaled_cosines():
    torch.manual_seed(1)
    q, p = torch.randn(4, 8), torch.randn(4, 8)
    direct = 0.0
    for i in range(4):
        cos = torch.stack([F.cosine_similarity(q[i], p[j], dim=0) for j in range(4)])
        direct += -torch.log_softmax(20 * cos, 0)[i]
    assert mnrl_loss(q, p) == pytest.approx((direct / 4).item(), rel=1e-5)


def test_mnrl_gradient_reaches_only_the_query_encoder():
    enc = TinyEncoder()
    stored = torch.randn(3, 6)  # frozen chunk embeddings from the store
    loss = mnrl_loss(encode_with_grad(enc, ["abc", "xyz", "hello"]), stored)
    loss.backward()
    assert enc.proj.weight.grad is not None and enc.proj.weight.grad.abs().sum() > 0
    assert stored.grad is None and not stored.requires_grad


def test_cached_mnrl_gives_the_same_gradient_as_plain_mnrl():
    texts = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]
    stored = torch.randn(6, 6, generator=torch.Generator().manual_seed(3))
    plain = TinyEncoder()
    mnrl_loss(encode_with_grad(plain, texts), stored).backward()
    cached = TinyEncoder()
    loss = cached_mnrl_step(cached, texts, stored, mini_batch=2)
    assert not loss.requires_grad
    torch.testing.assert_close(cached.proj.weight.grad, plain.proj.weight.grad)


def test_document_side_mnrl_trains_both_sides_and_gradcache_matches_it():
    """training.embedder.train_documents: the candidates are encoded by the model with
    gradient, so the loss reaches the encoder through them too; GradCache, with documents
    cut into the same mini-batches as questions, gives the same loss and gradient."""
    texts = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]
    docs = ["golf", "hotel", "india", "juliet", "kilo", "lima", "mike"]  # one hard negative
    plain = TinyEncoder()
    loss = mnrl_loss(encode_with_grad(plain, texts), encode_with_grad(plain, docs))
    loss.backward()
    queries_only = TinyEncoder()
    frozen_docs = encode_with_grad(queries_only, docs).detach()
    mnrl_loss(encode_with_grad(queries_only, texts), frozen_docs).backward()
    # the document side adds its own share of the gradient
    assert not torch.allclose(plain.proj.weight.grad, queries_only.proj.weight.grad)
    cached = TinyEncoder()
    cached_loss = cached_mnrl_step(cached, texts, None, mini_batch=2, documents=docs)
    torch.testing.assert_close(cached_loss, loss.detach())
    torch.testing.assert_close(cached.proj.weight.grad, plain.proj.weight.grad)


def test_hard_negatives_are_the_best_ranked_non_gold_rows():
    assert hard_negatives([[7, 3, 9, 4], [1, 2]], [[3], [1, 2]], 2) == [[7, 9], []]


def test_hard_negatives_join_the_candidates_but_never_against_a_gold_chunk():
    """Two questions, positives rows 10 and 11, hard negatives 12 (q0's) and 11 (q1's: q0's
    positive, but also a gold chunk of q1). q1's own gold row 11 must not count against it,
    neither as the in-batch column of q0 nor as its own hard negative."""
    rows = [10, 11, 12, 11]
    gold = [[10], [11, 13]]
    exclude = candidate_exclusions(rows, gold)
    assert exclude.tolist() == [[False] * 4, [False, False, False, True]]
    queries = torch.randn(2, 6, generator=torch.Generator().manual_seed(1))
    cands = torch.randn(4, 6, generator=torch.Generator().manual_seed(2))
    cands[3] = cands[1]
    logits = 20 * F.normalize(queries, dim=-1) @ F.normalize(cands, dim=-1).T
    expected = F.cross_entropy(
        torch.stack([logits[0], torch.cat([logits[1, :3], torch.tensor([-torch.inf])])]),
        torch.tensor([0, 1]),
    )
    torch.testing.assert_close(mnrl_loss(queries, cands, exclude=exclude), expected)
    # A slice of the batch (one rank's share) keeps its questions' classes and exclusions.
    part = mnrl_loss(queries[1:], cands, offset=1, exclude=candidate_exclusions(rows, gold[1:], 1))
    torch.testing.assert_close(part, F.cross_entropy(logits[1:, :3], torch.tensor([1])))


def test_each_gold_article_gives_its_best_scoring_chunk_as_a_positive():
    class Store:
        vecs = np.eye(5, dtype=np.float32)

        def vectors(self, rows):
            return self.vecs[rows]

    q = np.array(
        [[0.1, 0.2, 0.9, 0.0, 0.3], [1.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0, 0.0]],
        dtype=np.float32,
    )
    # Question 0: article A has chunks 0 and 2, article B chunks 3 and 4. B's best (4) scores
    # below A's best (2), so one positive per question would drop it; it is the second hop.
    # Question 1 has no gold chunk in the corpus; question 2's second article has none either.
    articles = [[[0, 2], [3, 4]], [], [[3], []]]
    assert choose_positives(q, articles, Store()) == [[2, 4], [], [3]]
    # training.embedder.positives: per_question keeps the best-scored gold chunk only.
    assert choose_positives(q, articles, Store(), "per_question") == [[2], [], [3]]


def test_batches_never_repeat_a_positive():
    pairs = [(f"q{i}", i % 5) for i in range(20)]
    batches = batches_without_duplicate_positives(pairs, 4, seed=0)
    assert sorted(p for b in batches for p in b) == sorted(pairs)
    assert all(len({row for _, row in b}) == len(b) for b in batches)


class FixedLogits(torch.nn.Module):
    """A "model" whose logits ignore its input, so only the targets can move the loss."""

    def __init__(self, batch, width, vocab=50):
        super().__init__()
        self.logits = torch.nn.Parameter(
            torch.randn(batch, width, vocab, generator=torch.Generator().manual_seed(0))
        )

    def forward(self, input_ids, attention_mask, position_ids, logits_to_keep):
        return type("Out", (), {"logits": self.logits[:, -logits_to_keep:]})


def test_answer_nll_ignores_everything_but_answer_tokens():
    examples = [
        Example(list(range(10, 19)), [0] * 6 + [1] * 3),
        Example(list(range(20, 27)), [0] * 5 + [1] * 2),
    ]
    batch = collate(examples, pad_id=0)
    model = FixedLogits(2, 9)
    base = generator_loss(model, batch)
    scrambled = dict(batch, input_ids=batch["input_ids"].clone())
    prompt = torch.zeros_like(scrambled["input_ids"], dtype=torch.bool)
    prompt[0, :6] = prompt[1, :7] = True  # row 1 is left-padded by 2
    scrambled["input_ids"][prompt] = torch.randint(0, 50, (int(prompt.sum()),))
    assert generator_loss(model, scrambled) == base  # prompt "labels" change nothing
    # and it is the mean NLL of exactly the answer tokens (predicted one position earlier)
    logp = torch.log_softmax(model.logits.detach(), -1)
    ids = batch["input_ids"]
    picks = [logp[0, t - 1, ids[0, t]] for t in (6, 7, 8)] + [
        logp[1, t - 1, ids[1, t]] for t in (7, 8)
    ]
    assert base.item() == pytest.approx(-torch.stack(picks).mean().item(), rel=1e-5)


def test_examples_mask_the_prompt_and_end_the_answer_line():
    class Tok:
        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [ord(c) for c in text]}

    ex = build_example(Tok(), "Q?\n", " Paris ")
    assert ex.input_ids == [ord(c) for c in "Q?\nParis\n"]
    assert ex.answer_mask == [0, 0, 0, 1, 1, 1, 1, 1, 1]
    batch = collate([ex, build_example(Tok(), "Q", "x")], pad_id=0)
    assert batch["input_ids"].shape == (2, 9)
    # left padding: the answers end at the right edge, positions count from the first token
    assert batch["attention_mask"][1].tolist() == [0] * 6 + [1, 1, 1]
    assert batch["position_ids"][1].tolist() == [0] * 7 + [1, 2]
    assert batch["answer_mask"].tolist() == [[1] * 6, [0] * 4 + [1, 1]]
    # training.generator.loss_tokens: all scores every token but the first (nothing predicts
    # it), prompt included
    every = build_example(Tok(), "Q?\n", " Paris ", "all")
    assert every.input_ids == ex.input_ids and every.answer_mask == [0] + [1] * 8
    assert collate([every], pad_id=0)["answer_mask"].tolist() == [[1] * 8]


def test_length_grouping_cuts_padding():
    lengths = np.random.default_rng(0).integers(50, 800, 400).tolist()
    grouped = length_grouped_batches(lengths, 8, seed=0)
    assert sorted(i for b in grouped for i in b) == list(range(400))
    naive = [list(range(a, a + 8)) for a in range(0, 400, 8)]
    assert padding_fraction(grouped, lengths) < 0.15 < padding_fraction(naive, lengths)


def _tiny_run(work_dir, stop_at=None, lr=0.05, every=2, started=None, sigterm_at=None, warmup=0.2):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.2), torch.nn.Linear(8, 1))
    gen = torch.Generator().manual_seed(1)
    batches = [
        (torch.randn(5, 4, generator=gen), torch.randn(5, 1, generator=gen)) for _ in range(12)
    ]
    calls = {"n": 0}

    def loss_fn(batch):
        calls["n"] += 1
        if stop_at is not None and calls["n"] > stop_at:
            raise KeyboardInterrupt("killed")
        if calls["n"] == sigterm_at:  # as SLURM does before it preempts the job
            os.kill(os.getpid(), signal.SIGTERM)
        x, y = batch
        return F.mse_loss(model(x), y)

    cfg = loop.LoopConfig(grad_accum=2, warmup_ratio=warmup, checkpoint_every=every, seed=7)
    history = loop.train(
        batches,
        loss_fn,
        [{"params": list(model.parameters()), "lr": lr}],
        work_dir,
        cfg,
        state=model.state_dict,
        load_state=model.load_state_dict,
        started=started,
    )
    return model, history


def test_resume_after_kill_matches_an_uninterrupted_run(tmp_path):
    full, full_hist = _tiny_run(tmp_path / "full")
    with pytest.raises(KeyboardInterrupt):
        _tiny_run(tmp_path / "killed", stop_at=9)  # dies between checkpoints
    assert (tmp_path / "killed" / loop.CHECKPOINT).exists()
    resumed, hist = _tiny_run(tmp_path / "killed")
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    assert [h["loss"] for h in hist] == pytest.approx([h["loss"] for h in full_hist])
    assert (tmp_path / "killed" / "loss.csv").read_text().startswith("step,loss,lr0")


def test_sigterm_saves_a_checkpoint_and_the_rerun_resumes_from_it(tmp_path, caplog):
    """Mid-step (micro-batch 5 of 2-batch steps): the step is finished, saved, and the job
    fails; its re-run ends where an uninterrupted run does."""
    full, full_hist = _tiny_run(tmp_path / "full", every=100)
    with pytest.raises(loop.Preempted, match="after step 3, with a checkpoint"):
        _tiny_run(tmp_path / "term", every=100, sigterm_at=5)
    assert "SIGTERM: saved" in caplog.text
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handler removed again
    saved = torch.load(tmp_path / "term" / loop.CHECKPOINT, weights_only=False)
    assert saved["done"] == 6 and len(saved["history"]) == 3
    resumed, hist = _tiny_run(tmp_path / "term", every=100)
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    assert [h["loss"] for h in hist] == pytest.approx([h["loss"] for h in full_hist])


def test_a_failed_checkpoint_write_names_the_file_and_the_fix(tmp_path, monkeypatch):
    def full_disk(obj, f):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")

    monkeypatch.setattr(loop.torch, "save", full_disk)
    with pytest.raises(loop.CheckpointWriteError, match="checkpoint.pt .*is its disk full"):
        _tiny_run(tmp_path)
    assert not list(tmp_path.glob(".checkpoint.pt.*"))  # no half-written file left


def test_the_loss_log_records_the_rate_each_step_applied(tmp_path):
    """Without warm-up the first step runs at the base rate and the last at a rate above 0
    (the schedule's value after the step is the next step's)."""
    _, hist = _tiny_run(tmp_path, lr=1e-3, warmup=0.0)
    assert hist[0]["lr"] == [pytest.approx(1e-3)]
    assert hist[-1]["lr"][0] > 0
    assert hist[1]["lr"][0] == pytest.approx(1e-3 * (1 - 1 / len(hist)))


def test_non_finite_loss_stops_with_a_clear_error(tmp_path):
    with pytest.raises(loop.NonFiniteLossError, match="nothing was saved"):
        _tiny_run(tmp_path, lr=1e30)


class FakeGpuGenerator:
    """A GPU's random generator, as torch.cuda exposes it: a state one can get and set."""

    def __init__(self):
        self.state = torch.tensor([5], dtype=torch.uint8)

    def get(self, device=None):
        return self.state.clone()

    def set(self, state, device=None):
        self.state = state.clone()

    def draw_mask(self, shape):
        """Dropout on the GPU: the mask depends on (and advances) this generator only."""
        gen = torch.Generator().manual_seed(int(self.state[0]))
        self.state = self.state + 1
        return (torch.rand(shape, generator=gen) > 0.3).float() / 0.7


@pytest.fixture
def fake_gpu_rng(monkeypatch):
    gpu = FakeGpuGenerator()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_rng_state", gpu.get)
    monkeypatch.setattr(torch.cuda, "set_rng_state", gpu.set)
    return gpu


def test_cached_mnrl_replays_the_gpu_dropout_masks(fake_gpu_rng):
    """With dropout drawn on the GPU, GradCache's second pass must draw pass 1's masks, or its
    gradient is not MNRL's."""

    class GpuDropoutEncoder(TinyEncoder):
        def forward(self, features):
            out = self.proj(features["x"])
            return {"sentence_embedding": out * fake_gpu_rng.draw_mask(out.shape)}

    texts = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]
    stored = torch.randn(6, 6, generator=torch.Generator().manual_seed(3))
    start = fake_gpu_rng.get()
    plain = GpuDropoutEncoder()
    mnrl_loss(torch.cat([encode_with_grad(plain, texts[i : i + 2]) for i in (0, 2, 4)]),
              stored).backward()  # fmt: skip
    fake_gpu_rng.set(start)
    cached = GpuDropoutEncoder()
    cached_mnrl_step(cached, texts, stored, mini_batch=2)
    torch.testing.assert_close(cached.proj.weight.grad, plain.proj.weight.grad)


def test_checkpoints_keep_the_gpu_random_state_and_load_onto_the_cpu(
    tmp_path, fake_gpu_rng, monkeypatch
):
    from ragtune.training import rng

    fake_gpu_rng.set(torch.tensor([42], dtype=torch.uint8))
    state = rng.snapshot()
    assert int(state["cuda"][0]) == 42
    fake_gpu_rng.set(torch.tensor([7], dtype=torch.uint8))
    rng.restore(state)
    assert int(fake_gpu_rng.get()[0]) == 42

    loads = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(k) or real_load(*a, **k))
    with pytest.raises(KeyboardInterrupt):
        _tiny_run(tmp_path, stop_at=9)
    saved = real_load(tmp_path / loop.CHECKPOINT, weights_only=False)
    assert set(saved["torch_rng"][0]) == {"cpu", "cuda"}
    _tiny_run(tmp_path)
    assert loads and loads[0]["map_location"] == "cpu"


def test_loss_scaling_changes_no_update_and_is_checkpointed(tmp_path, monkeypatch):
    """float16 compute trains with dynamic loss scaling: the updates are those of the plain
    run (the scale is undone before clipping), and a resumed run keeps the scale."""
    plain_model, plain = _tiny_run(tmp_path / "plain")
    monkeypatch.setattr(loop, "LoopConfig", functools.partial(loop.LoopConfig, loss_scaling=True))
    scaled_model, scaled = _tiny_run(tmp_path / "scaled")
    assert [h["loss"] for h in scaled] == pytest.approx([h["loss"] for h in plain], rel=1e-5)
    for a, b in zip(plain_model.parameters(), scaled_model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    with pytest.raises(KeyboardInterrupt):
        _tiny_run(tmp_path / "killed", stop_at=9)
    saved = torch.load(tmp_path / "killed" / loop.CHECKPOINT, weights_only=False)
    assert saved["scaler"]["scale"] > 1


def test_float16_compute_turns_loss_scaling_on():
    from types import SimpleNamespace

    from ragtune.steps.train import _loop_config

    training = {"warmup_ratio": 0.1, "checkpoint_every": 5, "optimizer": "adamw",
                "weight_decay": 0.0, "max_grad_norm": 1.0}  # fmt: skip
    fp16 = SimpleNamespace(ragtune_base={"compute_dtype": "float16"})
    bf16 = SimpleNamespace(ragtune_base={"compute_dtype": "bfloat16"})
    assert _loop_config(training, 0, generator=fp16).loss_scaling
    assert not _loop_config(training, 0, generator=bf16).loss_scaling
    assert not _loop_config(training, 0).loss_scaling


def test_a_checkpoint_of_another_run_is_not_resumed(tmp_path, caplog):
    """Changing what shapes a run (here its effective batch size) between a killed run and
    its re-run starts over instead of resuming: 6 steps instead of 4, the last ones at LR 0,
    looked finished."""
    import logging

    def run(accum, stop_at=None):
        torch.manual_seed(0)
        model = torch.nn.Linear(4, 1)
        calls = {"n": 0}

        def loss_fn(batch):
            calls["n"] += 1
            if stop_at is not None and calls["n"] > stop_at:
                raise KeyboardInterrupt("killed")
            return F.mse_loss(model(batch[0]), batch[1])

        gen = torch.Generator().manual_seed(1)
        batches = [(torch.randn(5, 4, generator=gen), torch.randn(5, 1, generator=gen))] * 8
        return loop.train(
            batches,
            loss_fn,
            [{"params": list(model.parameters()), "lr": 0.1}],
            tmp_path,
            loop.LoopConfig(grad_accum=accum, checkpoint_every=1, seed=0),
            state=model.state_dict,
            load_state=model.load_state_dict,
            run_fingerprint=loop.fingerprint(effective_batch_size=accum),
        )

    with pytest.raises(KeyboardInterrupt):
        run(accum=1, stop_at=5)
    with caplog.at_level(logging.WARNING):
        history = run(accum=2)
    assert len(history) == 4 and history[0]["step"] == 1
    assert "made by another run (it differs in: effective_batch_size)" in caplog.text
    loop.finish(tmp_path)
    # The same run resumes as before.
    with pytest.raises(KeyboardInterrupt):
        run(accum=2, stop_at=3)
    assert len(run(accum=2)) == 4


def test_fingerprints_see_file_contents(tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text('{"id": 1}\n')
    first = loop.fingerprint([data], lr=1e-4)
    assert loop.fingerprint([data], lr=1e-4) == first
    data.write_text('{"id": 2}\n')
    changed = loop.fingerprint([data], lr=1e-4)
    assert changed["file:train.jsonl"] != first["file:train.jsonl"]
    assert changed["lr"] == first["lr"] != loop.fingerprint([data], lr=3e-4)["lr"]


def test_short_runs_checkpoint_too(tmp_path):
    """checkpoint_every is an upper bound: a run shorter than it still checkpoints (at least 4
    times), so a killed demo job resumes instead of starting over."""
    assert loop.checkpoint_interval(20, 8) == 2
    assert loop.checkpoint_interval(50, 1000) == 50
    assert loop.checkpoint_interval(5, 2) == 1
    with pytest.raises(KeyboardInterrupt):
        _tiny_run(tmp_path, stop_at=5, every=20)  # 6 steps of 2 micro-batches
    assert torch.load(tmp_path / loop.CHECKPOINT, weights_only=False)["done"] == 4
    loop.finish(tmp_path)
    assert not tmp_path.exists()


def test_a_resumed_run_counts_the_seconds_of_every_attempt(tmp_path):
    """The killed attempts' wall times are kept beside the checkpoint and survive into the
    finished run: a resumed job's cost is not only its last attempt's."""
    with pytest.raises(KeyboardInterrupt):
        _tiny_run(tmp_path, stop_at=5, started=time.time() - 30)  # a 30 s attempt, killed
    with pytest.raises(KeyboardInterrupt):
        _tiny_run(tmp_path, stop_at=1, started=time.time() - 20)  # killed again
    _, history = _tiny_run(tmp_path)
    assert len(history) == 6  # resumed, not started over
    first, second = loop.earlier_attempts(tmp_path)
    assert 30 <= first < 40 and 20 <= second < 30


def test_attempts_of_another_run_are_not_counted(tmp_path):
    path = tmp_path / loop.ATTEMPTS
    loop._AttemptClock(path, {"lr": "a"}, started=time.time() - 40, writes=True)
    loop._AttemptClock(path, {"lr": "a"}, started=time.time() - 5, writes=True)
    assert [round(s, -1) for s in loop.earlier_attempts(tmp_path)] == [40]
    loop._AttemptClock(path, {"lr": "b"}, started=time.time(), writes=True)
    assert loop.earlier_attempts(tmp_path) == []


def test_the_optimizer_and_its_weight_decay_are_the_config_s():
    """training.optimizer / weight_decay reach the loop: AdamW by default, without decay; SGD
    on request; anything else is refused."""

    def groups():  # torch writes its defaults into the groups it is given
        return [{"params": [torch.nn.Parameter(torch.ones(3))], "lr": 0.1}]

    adamw = loop.make_optimizer(loop.LoopConfig(), groups())
    assert isinstance(adamw, torch.optim.AdamW) and adamw.param_groups[0]["weight_decay"] == 0
    sgd = loop.make_optimizer(loop.LoopConfig(optimizer="sgd", weight_decay=0.01), groups())
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["weight_decay"] == 0.01
    with pytest.raises(ValueError, match="training.optimizer"):
        loop.make_optimizer(loop.LoopConfig(optimizer="lion"), groups())


def test_the_validation_loss_is_recorded_at_its_interval_and_at_the_last_step(tmp_path):
    """LoopConfig.eval_every with an ``evaluate`` callable: val_loss at steps 2, 4 and the last
    (5), blank elsewhere in loss.csv; without it, loss.csv has no such column."""
    import pandas as pd

    w = torch.nn.Parameter(torch.tensor([2.0]))
    calls = []

    def evaluate():
        calls.append(float(w))
        return float(w.detach() ** 2)

    batches = list(range(5))
    cfg = loop.LoopConfig(eval_every=2, checkpoint_every=100)
    history = loop.train(batches, lambda _: (w**2).sum(), [{"params": [w], "lr": 0.1}],
                         tmp_path / "run", cfg, evaluate=evaluate)  # fmt: skip
    assert [row["step"] for row in history if "val_loss" in row] == [2, 4, 5]
    assert len(calls) == 3
    curve = pd.read_csv(tmp_path / "run" / "loss.csv")
    assert curve["val_loss"].isna().tolist() == [True, False, True, False, False]
    loop.train(batches, lambda _: (w**2).sum(), [{"params": [w], "lr": 0.1}],
               tmp_path / "plain", loop.LoopConfig(checkpoint_every=100))  # fmt: skip
    assert "val_loss" not in pd.read_csv(tmp_path / "plain" / "loss.csv")


def test_a_loss_over_every_token_runs_through_the_same_forward(tmp_path):
    """loss_tokens all: the LM head over the whole sequence, the first token unscored; on a
    toy Llama its NLL is finite and covers more tokens than the answer-only one."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ragtune import toy
    from ragtune.prompting import answer_token_logprobs
    from ragtune.training.generator import generator_loss

    folder = toy.save_llama(tmp_path / "toy")
    model, tok = AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    answer = collate([build_example(tok, "Where is Paris?", "France")], tok.pad_token_id or 0)
    every = collate([build_example(tok, "Where is Paris?", "France", "all")], tok.pad_token_id or 0)
    assert every["answer_mask"].sum() > answer["answer_mask"].sum()
    assert answer_token_logprobs(model, every).shape == every["answer_mask"].shape
    assert torch.isfinite(generator_loss(model, every))
