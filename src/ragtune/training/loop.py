"""The one training loop every strategy shares.

One epoch over a fixed, seeded batch order, a linear schedule with warm-up, gradient
accumulation, a checkpoint every N optimizer steps and resume from the newest one, a guard that
stops on a non-finite loss before anything is saved, a loss CSV and a tqdm bar. What a strategy
trains and how it computes its loss is a ``loss_fn(batch) -> scalar tensor`` plus the parameter
groups it passes in; the loop knows nothing else about it.

Under torchrun the same loop is data-parallel (``ragtune.training.distributed``): the
micro-batches of each optimizer step are dealt over the ranks and the gradients summed once
per step, so any number of processes applies the updates one process would.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import math
import random
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ragtune.io import atomic_path, read_json, write_json
from ragtune.training import distributed, rng

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
# Wall seconds of each attempt at this run (a killed job's and its resumption's), kept beside
# the checkpoint, so a resumed job's cost counts every attempt, not only the last.
ATTEMPTS = "attempts.json"
ATTEMPTS_EVERY_S = 10.0


class Preempted(RuntimeError):
    """SIGTERM arrived (SLURM and Kubernetes send it before they preempt or time out a job):
    the loop saved a checkpoint at the end of its optimizer step and stopped, so that the job
    fails and its re-run resumes there."""


@contextlib.contextmanager
def _sigterm_flag():
    """An Event that SIGTERM sets while the loop runs (in the main thread: a handler cannot be
    installed from another, and there SIGTERM keeps its default)."""
    flag = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: flag.set())
    try:
        yield flag
    finally:
        signal.signal(signal.SIGTERM, previous)


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (a full disk, a quota)."""


class NonFiniteLossError(RuntimeError):
    pass


@dataclass
class LoopConfig:
    epochs: int = 1
    grad_accum: int = 1
    warmup_ratio: float = 0.0
    checkpoint_every: int = 50  # optimizer steps (at most; see checkpoint_interval)
    max_grad_norm: float | None = 1.0
    optimizer: str = "adamw"  # or "sgd"
    # Validation loss every this many optimizer steps and at the last (0: never).
    eval_every: int = 0
    weight_decay: float = 0.0
    seed: int = 0
    # Dynamic loss scaling, for float16 compute (GPUs without native bf16): float16 gradients
    # of a small loss underflow to zero without it.
    loss_scaling: bool = False


def make_optimizer(cfg: LoopConfig, param_groups: list[dict]) -> torch.optim.Optimizer:
    """The config's optimizer over the parameter groups (each with its own LR)."""
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(param_groups, weight_decay=cfg.weight_decay)
    if cfg.optimizer != "adamw":
        raise ValueError(f"training.optimizer: unknown optimizer {cfg.optimizer!r}")
    return torch.optim.AdamW(param_groups, weight_decay=cfg.weight_decay)


def fingerprint(files=(), **params) -> dict[str, str]:
    """What shapes a run, one digest per part: the content of each input file, and each
    parameter (model, every training setting, the grid point, the seed). A checkpoint made by
    a run with another fingerprint is not resumed."""
    import hashlib
    import json

    def digest(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()[:16]

    out = {f"file:{Path(f).name}": digest(Path(f).read_bytes()) for f in files}
    for key, value in params.items():
        out[key] = digest(json.dumps(value, sort_keys=True, default=str).encode())
    return out


def checkpoint_interval(every: int, total_steps: int) -> int:
    """Optimizer steps between checkpoints: ``every``, but at least 4 checkpoints a run. A fixed
    interval longer than a short run (the demo's 8 steps against 20) never checkpoints, and a
    killed job then starts over."""
    return max(1, min(every, math.ceil(total_steps / 4)))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def linear_schedule(optimizer, total_steps: int, warmup_steps: int):
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def train(
    batches: Sequence[Any],
    loss_fn: Callable[[Any], torch.Tensor],
    param_groups: list[dict],
    work_dir: str | Path,
    cfg: LoopConfig,
    *,
    state: Callable[[], dict] | None = None,
    load_state: Callable[[dict], None] | None = None,
    run_fingerprint: dict[str, str] | None = None,
    started: float | None = None,
    evaluate: Callable[[], float] | None = None,
) -> list[dict]:
    """Run the loop; return the loss log. ``state`` / ``load_state`` save and restore the
    trainable weights (a strategy knows which ones they are); the loop adds the optimizer,
    scheduler, RNG states and its position. ``run_fingerprint`` (:func:`fingerprint`) is
    stored with each checkpoint: one from a run that differs in it is discarded, with a log
    line, and training starts over. ``started``: when this attempt began (``time.time()``;
    default now), so its seconds in :data:`ATTEMPTS` include loading the model."""
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    world, rank = distributed.world_size(), distributed.rank()
    clock = _AttemptClock(work_dir / ATTEMPTS, run_fingerprint, started, rank == 0)
    if world > cfg.grad_accum:
        log.warning(
            "%d ranks but %d micro-batch(es) per optimizer step: %d rank(s) idle at every step. "
            "Raise effective_batch_size or lower batch_size",
            world,
            cfg.grad_accum,
            world - cfg.grad_accum,
        )
    params = [p for g in param_groups for p in g["params"]]
    optimizer = make_optimizer(cfg, param_groups)
    steps_per_epoch = math.ceil(len(batches) / cfg.grad_accum)
    total = steps_per_epoch * cfg.epochs
    scheduler = linear_schedule(optimizer, total, int(cfg.warmup_ratio * total))
    device_type = params[0].device.type if params else "cpu"
    scaler = torch.amp.GradScaler(device_type, enabled=cfg.loss_scaling)
    history: list[dict] = []
    done = 0  # micro-batches processed (by all ranks together)
    ckpt = work_dir / CHECKPOINT
    # Onto the CPU: every tensor is copied into its parameter's (or optimizer state's) device by
    # load_state_dict, and without it every DDP rank would load onto GPU 0.
    saved = torch.load(ckpt, weights_only=False, map_location="cpu") if ckpt.exists() else None
    if saved is not None and run_fingerprint is not None:
        saved_print = saved.get("fingerprint")
        if saved_print != run_fingerprint:
            saved = None  # every rank reads the same file and decides alike
            changed = sorted(
                k
                for k in set(run_fingerprint) | set(saved_print or {})
                if (saved_print or {}).get(k) != run_fingerprint.get(k)
            )
            log.warning(
                "%s was made by another run (it differs in: %s): starting over",
                ckpt,
                ", ".join(changed) or "no fingerprint",
            )
    if saved is not None:
        if load_state:
            load_state(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        if saved.get("scaler"):
            scaler.load_state_dict(saved["scaler"])
        history, done = saved["history"], saved["done"]
        states = saved["torch_rng"]
        if len(states) == world:
            rng.restore(states[rank])
        else:  # resumed on another number of ranks: dropout masks cannot be replayed
            seed_everything(cfg.seed + rank + done)
        log.info("resumed from %s at micro-batch %d of %d", ckpt, done, len(batches) * cfg.epochs)
    else:
        seed_everything(cfg.seed + rank)
    # As DDP does: every rank starts from rank 0's weights.
    distributed.broadcast_parameters(params)

    def save() -> None:
        states = distributed.gather_objects(rng.snapshot())
        if rank != 0:
            return
        try:
            with atomic_path(ckpt) as tmp:
                torch.save(
                    {
                        "model": state() if state else {},
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "scaler": scaler.state_dict(),
                        "torch_rng": states,
                        "history": history,
                        "done": done,
                        "fingerprint": run_fingerprint,
                    },
                    tmp,
                )
        except (RuntimeError, OSError) as err:  # torch says "unexpected pos" on a full disk
            raise CheckpointWriteError(
                f"could not write the checkpoint {ckpt} ({type(err).__name__}: "
                f"{str(err).splitlines()[0]}): is its disk full? Free space there and run "
                "snakemake again (training.checkpoint_every sets how often it is written)"
            ) from err

    n_micro = len(batches) * cfg.epochs
    interval = checkpoint_interval(cfg.checkpoint_every, total)
    bar = tqdm(total=n_micro, initial=done, desc="train", unit="batch", disable=rank != 0)
    with _sigterm_flag() as sigterm:
        running = 0.0
        while done < n_micro:
            # Micro-batch j of a step belongs to rank j % world; one process computes all.
            if (done % cfg.grad_accum) % world == rank:
                loss = loss_fn(batches[done % len(batches)])
                if not torch.isfinite(loss):
                    raise NonFiniteLossError(
                        f"loss is {loss.item()} at micro-batch {done}; nothing was saved. Lower "
                        "the learning rate or check the inputs of this batch"
                    )
                # A loss that needs no grad was already backpropagated by its strategy (the
                # cached MNRL does its own two-pass backward); the loop only steps for it.
                if loss.requires_grad:
                    scaler.scale(loss / cfg.grad_accum).backward()
                running += loss.item() / cfg.grad_accum
            done += 1
            bar.update(1)
            if done % cfg.grad_accum == 0 or done == n_micro:
                distributed.sum_gradients(params)
                running = distributed.sum_scalar(running)
                # Summed first, so every rank sees the same overflow and skips the same steps.
                scaler.unscale_(optimizer)
                if cfg.max_grad_norm:
                    torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
                # The rates this step applies: the scheduler moves them on for the next one.
                lrs = [g["lr"] for g in optimizer.param_groups]
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step = len(history) + 1
                history.append({"step": step, "loss": running, "lr": lrs})
                last = done >= n_micro
                if evaluate is not None and cfg.eval_every and (step % cfg.eval_every == 0 or last):
                    # before the checkpoint below, so a resumed run keeps the point
                    history[-1]["val_loss"] = float(evaluate())
                bar.set_postfix(loss=f"{running:.4f}")
                running = 0.0
                # Every rank stops at the same step: a SIGTERM to any rank stops them all.
                stop = done < n_micro and distributed.sum_scalar(float(sigterm.is_set())) > 0
                if stop or (step % interval == 0 and done < n_micro):
                    save()
                    clock.tick(force=True)
                else:
                    clock.tick()
                if stop:
                    bar.close()
                    log.warning("SIGTERM: saved %s at step %d; stopping", ckpt, step)
                    raise Preempted(
                        f"stopped by SIGTERM after step {step}, with a checkpoint at {ckpt}; run "
                        "snakemake again to resume from it"
                    )
    bar.close()
    clock.tick(force=True)
    if rank == 0:
        write_loss_csv(history, work_dir / "loss.csv")
    return history


class _AttemptClock:
    """Keeps :data:`ATTEMPTS` up to date: the list of this run's attempts' wall seconds, the
    running one last, rewritten every few seconds (a job killed with -9 writes nothing at its
    end). Attempts of another run (another fingerprint) are dropped with its checkpoint."""

    def __init__(self, path: Path, run_fingerprint, started: float | None, writes: bool):
        self.path, self.writes = path, writes
        self.started = time.time() if started is None else started
        self.fingerprint = run_fingerprint
        earlier = read_json(path) if path.exists() else {}
        same = earlier.get("fingerprint") == run_fingerprint
        self.earlier = [float(s) for s in earlier.get("seconds", [])] if same else []
        self.last = 0.0
        self.tick(force=True)

    def tick(self, force: bool = False) -> None:
        now = time.time()
        if not self.writes or (not force and now - self.last < ATTEMPTS_EVERY_S):
            return
        self.last = now
        seconds = [*self.earlier, round(now - self.started, 3)]
        write_json(self.path, {"fingerprint": self.fingerprint, "seconds": seconds})


def earlier_attempts(work_dir: str | Path) -> list[float]:
    """Wall seconds of the attempts before the one that finished this run (empty when the first
    attempt finished it): what a resumed job's cost adds to its last benchmark record."""
    path = Path(work_dir) / ATTEMPTS
    return read_json(path)["seconds"][:-1] if path.exists() else []


def write_loss_csv(history: list[dict], path: str | Path) -> None:
    """One row per optimizer step: its training loss, the LR of each parameter group and,
    where the run recorded one (``training.joint.validation_loss_every``), the validation
    loss (blank at other steps)."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        n_groups = len(history[0]["lr"]) if history else 1
        val = any("val_loss" in row for row in history)
        writer.writerow(["step", "loss", *[f"lr{i}" for i in range(n_groups)],
                         *(["val_loss"] if val else [])])  # fmt: skip
        for row in history:
            cells = [row["step"], f"{row['loss']:.6f}", *row["lr"]]
            if val:
                cells.append(f"{row['val_loss']:.6f}" if "val_loss" in row else "")
            writer.writerow(cells)


def finish(work_dir: str | Path) -> None:
    """Drop the checkpoint folder once the final model is saved (its loss.csv is in the model
    folder): a re-run then starts afresh, and no stale checkpoint is left to resume.

    Every rank calls it; the barrier keeps rank 0 from deleting what another still reads."""
    import shutil

    distributed.barrier()
    if distributed.is_main():
        shutil.rmtree(work_dir, ignore_errors=True)
