"""Data-parallel training over the processes that ``torchrun`` starts: one per GPU.

Semantics (the same as one process, so results do not depend on how many GPUs ran them):
- every rank builds the same micro-batches in the same order from the same seed;
- an optimizer step is ``grad_accum`` micro-batches, whichever ranks compute them: micro-batch
  ``j`` of a step goes to rank ``j % world``;
- each rank backpropagates ``loss / grad_accum`` of its micro-batches, and the gradients are
  *summed* across ranks once per step, before clipping. The step therefore applies exactly the
  gradient one process would, the global batch and the learning rate are unchanged, and there
  is no learning-rate scaling rule to apply.

Why not ``torch.nn.parallel.DistributedDataParallel``: its reduction is driven by autograd
hooks of one wrapped module's forward, while a ragtune step may run two models (joint
training), backpropagate twice per micro-batch (GradCache) or freeze one side. With gradient
accumulation DDP reduces once per step (``no_sync``) anyway; that one reduction, coalesced into
a few flat buffers, is what :func:`sum_gradients` does, for any set of parameters. Like DDP,
the ranks start from rank 0's weights (:func:`broadcast_parameters`).

On CUDA the backend is NCCL and each rank owns ``cuda:LOCAL_RANK``; on CPU the same path runs
over gloo.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterable, Sequence

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)

# Gradients are reduced in flat buffers of at most this many elements (256 MB of float32).
BUCKET_ELEMENTS = 64 * 2**20


def in_worker() -> bool:
    """True inside a process that torchrun started."""
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def is_main() -> bool:
    return rank() == 0


def init_from_env() -> None:
    """Join the process group torchrun describes in the environment; pin this rank's GPU."""
    if dist.is_initialized() or not in_worker():
        return
    if torch.cuda.is_available():
        # Set before any CUDA allocation, so "cuda" means this rank's GPU everywhere after.
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        dist.init_process_group("nccl", device_id=torch.device("cuda", torch.cuda.current_device()))
    else:
        dist.init_process_group("gloo")
    log.info("rank %d of %d (%s)", rank(), world_size(), dist.get_backend())


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def _reduce_device() -> torch.device:
    return (
        torch.device("cuda", torch.cuda.current_device())
        if dist.get_backend() == "nccl"
        else torch.device("cpu")
    )


def sum_scalar(value: float) -> float:
    if world_size() == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=_reduce_device())
    dist.all_reduce(t)
    return float(t.item())


def gather_objects(obj) -> list:
    """Every rank's ``obj``, in rank order (one element without a process group)."""
    if world_size() == 1:
        return [obj]
    out = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def _buckets(tensors: list[torch.Tensor]) -> Iterable[list[torch.Tensor]]:
    """Consecutive runs of tensors with one device and dtype, each at most a bucket long."""
    run: list[torch.Tensor] = []
    size = 0
    for t in tensors:
        if run and (
            t.device != run[0].device
            or t.dtype != run[0].dtype
            or size + t.numel() > BUCKET_ELEMENTS
        ):
            yield run
            run, size = [], 0
        run.append(t)
        size += t.numel()
    if run:
        yield run


def _flat_collective(tensors: list[torch.Tensor], collective) -> None:
    """Run ``collective`` on each bucket's flat copy, then copy the result back in place."""
    for bucket in _buckets(tensors):
        flat = torch.cat([t.reshape(-1) for t in bucket])
        collective(flat)
        offset = 0
        for t in bucket:
            t.copy_(flat[offset : offset + t.numel()].view_as(t))
            offset += t.numel()


def sum_gradients(params: Iterable[torch.nn.Parameter]) -> None:
    """Sum every trainable parameter's gradient over the ranks, in place.

    A rank that computed no micro-batch of this step (or never reached a parameter) adds zeros,
    so every rank joins the same collective with the same buffers.
    """
    if world_size() == 1:
        return
    params = [p for p in params if p.requires_grad]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    _flat_collective([p.grad for p in params], dist.all_reduce)


@torch.no_grad()
def broadcast_parameters(params: Iterable[torch.nn.Parameter]) -> None:
    """Give every rank rank 0's values (fresh LoRA weights are drawn at random per process)."""
    if world_size() == 1:
        return
    _flat_collective([p.data for p in params], lambda flat: dist.broadcast(flat, src=0))


def torchrun_command(script: str, n_proc: int, args: Sequence[str] = ()) -> list[str]:
    """The launch of ``script args...`` as ``n_proc`` ranks on this node.

    ``--standalone`` picks a free rendezvous port, so several multi-GPU jobs can share a node.
    """
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={n_proc}",
        script,
        *args,
    ]


def launch(script: str, n_proc: int, threads: int, stream=None, args: Sequence[str] = ()) -> None:
    """Run ``script args...`` under torchrun; raise if any rank failed (its traceback is in
    the log). ``stream``: the job's log file, which also gets the launcher's own messages."""
    env = dict(os.environ)
    # On CPU the ranks share the job's cores; on GPU each rank needs few host threads.
    env["OMP_NUM_THREADS"] = str(max(1, threads // n_proc))
    cmd = torchrun_command(script, n_proc, args)
    log.info("launching %d ranks: %s", n_proc, " ".join(cmd))
    done = subprocess.run(cmd, env=env, stdout=stream, stderr=stream, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"torchrun exited with status {done.returncode}: a rank failed; its traceback is "
            "logged above"
        )
