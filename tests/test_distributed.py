"""Data-parallel training on CPU: torchrun with the gloo backend, as on GPUs with NCCL."""

import json
import subprocess
import sys
import textwrap

import pytest
import torch

from ragtune.training import distributed
from ragtune.training.embedder import cached_mnrl_step, mnrl_loss, query_slices

# Slow tier (ranks under torchrun): `make test` runs it, `make test-fast` leaves it out.
pytestmark = pytest.mark.slow

# A job script as Snakemake writes one: it builds its own `snakemake` object, then hands a
# step to the runner. With gpu=2 the runner re-runs this very file under torchrun.
JOB = textwrap.dedent(
    """
    import json, sys
    from types import SimpleNamespace

    import torch
    import torch.nn.functional as F

    from ragtune.runner import run
    from ragtune.training import distributed, loop

    out, n_gpu = sys.argv[1], int(sys.argv[2])
    snakemake = SimpleNamespace(
        log=[out + ".log"], threads=2, rule="toy", resources=SimpleNamespace(gpu=n_gpu)
    )

    def step(smk):
        # Each rank draws different initial weights, like fresh LoRA adapters: the loop must
        # start every rank from rank 0's.
        torch.manual_seed(100 + distributed.rank())
        model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
        gen = torch.Generator().manual_seed(1)
        # 10 micro-batches of uneven size, 4 per step: steps of 4, 4 and 2 micro-batches.
        batches = [
            (torch.randn(3 + i % 3, 4, generator=gen), torch.randn(3 + i % 3, 1, generator=gen))
            for i in range(10)
        ]
        cfg = loop.LoopConfig(grad_accum=4, warmup_ratio=0.2, checkpoint_every=2, seed=7)
        history = loop.train(
            batches,
            lambda b: F.mse_loss(model(b[0]), b[1]),
            [{"params": list(model.parameters()), "lr": 0.05}],
            out + ".work",
            cfg,
            state=model.state_dict,
            load_state=model.load_state_dict,
        )
        weights = [p.detach().flatten().tolist() for p in model.parameters()]
        if distributed.is_main():
            with open(out, "w") as fh:
                json.dump({"loss": [h["loss"] for h in history], "weights": weights}, fh)
        loop.finish(out + ".work")

    run(snakemake, step, distributed=True)
    """
)


def _train(tmp_path, n_gpu):
    script = tmp_path / "job.py"
    script.write_text(JOB)
    out = tmp_path / f"gpu{n_gpu}.json"
    # No GPU on this host: the runner's claim is empty and the ranks run on CPU over gloo.
    env = {"CUDA_VISIBLE_DEVICES": "", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, str(script), str(out), str(n_gpu)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    log = (tmp_path / f"gpu{n_gpu}.json.log").read_text()
    assert done.returncode == 0, log[-3000:] + done.stderr[-2000:]
    return json.loads(out.read_text()), log


def test_two_gloo_ranks_follow_the_one_process_loss_curve(tmp_path):
    one, _ = _train(tmp_path, 1)
    two, log = _train(tmp_path, 2)
    assert "launching 2 ranks" in log and "[rank 1]" in log and "(gloo)" in log
    assert len(two["loss"]) == len(one["loss"]) == 3
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-5)
    for a, b in zip(two["weights"], one["weights"], strict=True):
        assert a == pytest.approx(b, rel=1e-4, abs=1e-6)
    # Nothing but the output and the log is left behind: the checkpoint went with finish().
    assert not (tmp_path / "gpu2.json.work" / "checkpoint.pt").exists()


def test_a_failing_rank_fails_the_job_with_its_traceback_in_the_log(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(
        JOB.replace(
            "def step(smk):", "def step(smk):\n    assert distributed.rank() == 0, 'rank 1 broke'"
        )
    )
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "out.json"), "2"],
        env={"CUDA_VISIBLE_DEVICES": "", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    log = (tmp_path / "out.json.log").read_text()
    assert done.returncode != 0
    assert "rank 1 broke" in log and "torchrun exited with status" in log


@pytest.mark.parametrize("documents", [False, True])
@pytest.mark.parametrize("cached", [False, True])
def test_question_slices_carry_the_whole_batch_gradient(cached, documents):
    """Ft. Embed under DDP: each rank scores its slice of the questions against all positives;
    the slices' weighted gradients add up to the one-process batch gradient. With
    train_documents every rank encodes all the positives with gradient, and the sum still
    equals the one-process gradient, document side included."""
    torch.manual_seed(0)
    encoder = torch.nn.Linear(5, 3)
    queries, positives = torch.randn(7, 5), torch.randn(7, 3)
    docs = torch.randn(7, 5)  # the positives' texts, for train_documents

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = encoder

        def preprocess(self, rows):
            return {"x": torch.stack(rows)}

        def forward(self, features):
            return {"sentence_embedding": self.enc(features["x"])}

    def candidates():
        return encoder(docs) if documents else positives

    model = Model()
    encoder.zero_grad()
    mnrl_loss(encoder(queries), candidates()).backward()
    whole = encoder.weight.grad.clone()
    expected = mnrl_loss(encoder(queries), candidates()).item()
    encoder.zero_grad()
    total = 0.0
    for a, b in query_slices(len(queries), 3):
        share = (b - a) / len(queries)
        if cached:
            rows = list(queries[a:b])
            total += (
                share
                * cached_mnrl_step(
                    model, rows, None if documents else positives, mini_batch=2, offset=a,
                    weight=share, documents=list(docs) if documents else None,
                ).item()
            )  # fmt: skip
        else:
            loss = mnrl_loss(encoder(queries[a:b]), candidates(), offset=a) * share
            loss.backward()
            total += loss.item()
    torch.testing.assert_close(encoder.weight.grad, whole)
    assert total == pytest.approx(expected, rel=1e-5)


def test_query_slices_cover_the_batch_once():
    assert query_slices(7, 3) == [(0, 2), (2, 5), (5, 7)]
    assert query_slices(1, 2) == [(0, 0), (0, 1)]
    assert query_slices(8, 1) == [(0, 8)]


def test_torchrun_command_is_standalone_with_one_rank_per_gpu():
    cmd = distributed.torchrun_command("/tmp/job.py", 8)
    assert cmd[1:4] == ["-m", "torch.distributed.run", "--standalone"]
    assert "--nproc-per-node=8" in cmd and cmd[-1] == "/tmp/job.py"
