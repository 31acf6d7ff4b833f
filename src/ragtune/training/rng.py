"""The random state a step depends on: the CPU generator and, on a GPU, the current device's.

Dropout on CUDA draws from the GPU's generator, not the CPU's. Saving and restoring only the
CPU state (what ``torch.get_rng_state`` covers) makes GradCache's second pass draw other dropout
masks than its first, so the cached gradient is silently not MNRL's, and makes a resumed run
draw other masks than an uninterrupted one. Only the current device's state is taken: under
torchrun each rank owns one GPU, and touching the others would create a CUDA context on each.
"""

from __future__ import annotations

import torch


def snapshot() -> dict:
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore(state) -> None:
    """Restore a :func:`snapshot` (or a bare CPU state, as older checkpoints stored it)."""
    if isinstance(state, torch.Tensor):
        torch.set_rng_state(state)
        return
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])
