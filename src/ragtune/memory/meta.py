"""Run a model's real code on the ``meta`` device and count the memory it would use.

Meta tensors have shapes and dtypes but no data, so an 8B model costs nothing to build and a
training step costs a fraction of a second. Two instruments watch the step:

- :class:`LiveBytes`, a dispatch mode that sees every tensor an operator creates and, through a
  weakref, when it dies: its peak is the step's peak of live tensors (activations saved for
  backward, transients, gradients), what a caching allocator's own peak counter reports;
- :func:`saved_for_backward`, a ``saved_tensors_hooks`` pair that sums the bytes autograd keeps
  for the backward pass (the activation part, reported on its own).

The meta device would run attention through its math fallback, which materialises the
sequence x sequence score matrix. On a GPU (and a CPU) PyTorch runs fused kernels instead, so
:func:`fused_attention` routes ``scaled_dot_product_attention`` to the kernel the target device
runs (memory-efficient attention on CUDA, which is what SDPA picks with a padding mask; flash
attention on CPU), whose meta implementations allocate and save what the real ones do.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


class LiveBytes(TorchDispatchMode):
    """Peak bytes of the storages that operators create inside the mode and that some tensor
    still holds. A storage is counted once, however many tensors share it: views, and the
    aliases some operators return without marking them as views (``detach``,
    ``_unsafe_view``), own no memory of their own."""

    def __init__(self):
        super().__init__()
        self.live = 0
        self.peak = 0
        self._storages: dict[int, list[int]] = {}  # StorageImpl address -> [bytes, tensors]

    def _release(self, key: int) -> None:
        entry = self._storages[key]
        entry[1] -= 1
        if entry[1] == 0:
            self.live -= entry[0]
            del self._storages[key]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default and args[0].is_meta:
            # Reading a value (``.item()``, ``if tensor.all()``) is the one thing meta cannot
            # do. transformers reads masks to skip them where nothing is padded; answering
            # "false" / 0 takes the padded path, which a length-grouped batch does run.
            return False if args[0].dtype == torch.bool else 0
        out = func(*args, **(kwargs or {}))
        inputs = {
            t.untyped_storage()._cdata
            for t in tree_flatten((args, kwargs))[0]
            if isinstance(t, torch.Tensor)
        }
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor):
                continue
            storage = t.untyped_storage()
            key = storage._cdata
            if key in self._storages:  # an alias of a storage made in the mode: keeps it alive
                self._storages[key][1] += 1
            elif key in inputs:  # an alias of a storage made before (a weight, an input)
                continue
            else:
                self._storages[key] = [storage.nbytes(), 1]
                self.live += storage.nbytes()
            weakref.finalize(t, self._release, key)
        self.peak = max(self.peak, self.live)
        return out


@contextlib.contextmanager
def saved_for_backward(params) -> Iterator[list[int]]:
    """Sums the bytes autograd saves for backward, each storage once (parameters excluded: they
    exist anyway). Yields a one-element list that holds the total."""
    seen = {p.untyped_storage()._cdata for p in params}
    total = [0]

    def pack(t):
        storage = t.untyped_storage()
        if storage._cdata not in seen:
            seen.add(storage._cdata)
            total[0] += storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield total


def _efficient_attention(query, key, value, attn_mask, is_causal, scale):
    """CUDA: SDPA with a mask runs memory-efficient attention, after turning a boolean mask
    into an additive bias of the query's dtype (what torch does before the kernel)."""
    bias = attn_mask
    if bias is not None:
        if bias.dtype == torch.bool:
            bias = torch.zeros(bias.shape, dtype=query.dtype, device=query.device).masked_fill(
                ~bias, float("-inf")
            )
        shape = (query.shape[0], query.shape[1], query.shape[2], key.shape[2])
        bias = bias.expand(shape)
    grad = query.requires_grad or key.requires_grad or value.requires_grad
    return torch.ops.aten._scaled_dot_product_efficient_attention(
        query, key, value, bias, grad, 0.0, is_causal and bias is None, scale=scale
    )[0]


def _flash_attention_cpu(query, key, value, attn_mask, is_causal, scale):
    return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
        query, key, value, 0.0, is_causal, attn_mask=attn_mask, scale=scale
    )[0]


@contextlib.contextmanager
def fused_attention(target: str):
    """Route SDPA to the fused kernel that ``target`` (``cuda`` or ``cpu``) runs."""
    kernel = _efficient_attention if target == "cuda" else _flash_attention_cpu
    original = F.scaled_dot_product_attention

    def sdpa(
        query,
        key,
        value,
        attn_mask=None,
        dropout_p=0.0,
        is_causal=False,
        scale=None,
        enable_gqa=False,
    ):
        if enable_gqa and key.shape[1] != query.shape[1]:
            groups = query.shape[1] // key.shape[1]
            key = key.repeat_interleave(groups, dim=1)
            value = value.repeat_interleave(groups, dim=1)
        return kernel(query, key, value, attn_mask, is_causal, scale)

    F.scaled_dot_product_attention = sdpa
    try:
        yield
    finally:
        F.scaled_dot_product_attention = original


class Linear4bitStandIn(torch.nn.Linear):
    """What bitsandbytes' ``Linear4bit`` does to activations, on meta: the input is cast to the
    compute dtype for the matmul, the output back to the input's dtype, and nothing but the
    (frozen) weight is saved for backward. Its weight's bytes are counted as 4-bit elsewhere."""

    compute_dtype = torch.bfloat16

    def forward(self, x):
        return F.linear(x.to(self.compute_dtype), self.weight.to(self.compute_dtype)).to(x.dtype)


def quantize_like_qlora(model, compute_dtype: torch.dtype) -> list[str]:
    """Turn the decoder's linear layers into :class:`Linear4bitStandIn` (bitsandbytes quantises
    every ``nn.Linear`` but the LM head) and, as peft's ``prepare_model_for_kbit_training``
    does, every other parameter (embeddings, norms, LM head) into float32. Returns the names
    of the quantised layers."""
    names = []
    for name, module in model.named_modules():
        if type(module) is torch.nn.Linear and not name.endswith("lm_head"):
            module.__class__ = Linear4bitStandIn
            module.compute_dtype = compute_dtype
            module.weight.requires_grad_(False)
            names.append(name)
    quantized = {f"{n}.weight" for n in names}
    for name, param in model.named_parameters():
        if name not in quantized:
            param.data = param.data.to(torch.float32)
    return names
