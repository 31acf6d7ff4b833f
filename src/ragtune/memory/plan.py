"""The GPU memory plan of a config: every GPU job's estimated peak against its GPU's memory,
checked when the workflow is planned (``snakemake -n`` included), before anything is submitted.

One row per (rule, model): Ft. Gen., the joint step and evaluation per generator of a pipeline,
embedding, retrieval and Ft. Embed. per embedder. A job that does not fit under
:data:`HEADROOM` of its budget fails the plan with its estimate, its budget and the knob to
turn, with the largest value of it that fits where the knob is a batch size.

Estimates are cached on disk (keyed by the architecture, the shapes and the estimator's own
source), so only a config's first plan pays for them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from ragtune.lora import LORA_RANK, LORA_TARGETS
from ragtune.memory.result import Estimate
from ragtune.rules import RULES

log = logging.getLogger(__name__)

# A job must fit in this fraction of its GPU: the rest is the allocator's fragmentation and
# what the estimate does not see (cuDNN / NCCL buffers).
HEADROOM = 0.9
# Tokens every single-chunk prompt of the joint step starts with (the Appendix-A instruction up
# to its context, about 25 Llama-3 tokens): run once per micro-batch. Fewer is the safe side.
JOINT_PREFIX_TOKENS = 16
# The estimator's own code: a change to it invalidates every cached estimate.
_SOURCES = [Path(__file__).with_name(n) for n in ("estimate.py", "meta.py", "result.py")]


class MemoryPlanError(ValueError):
    pass


@dataclass
class Row:
    rule: str
    model: str  # the pipeline (generator jobs) or the embedder
    estimate: Estimate
    budget_gb: float
    knobs: list[str] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return self.estimate.gb() <= HEADROOM * self.budget_gb

    def as_dict(self) -> dict:
        return {
            "job": f"{self.rule} ({self.model})",
            "rule": self.rule,
            "model": self.model,
            "peak_gb": round(self.estimate.gb(), 2),
            "budget_gb": self.budget_gb,
            "fits": self.fits,
            **{
                k: round(v / 1e9, 2)
                for k, v in self.estimate.as_dict().items()
                if k in ("weights", "optimizer", "step_peak", "saved_activations", "overhead")
            },
        }


def _architecture_key(spec: str) -> str:
    """What identifies a model's architecture without loading it: the shipped numbers of the
    paper's models, a local folder's config files, a GGUF file's size and time, or the id."""
    from ragtune.memory.architectures import PAPER_MODELS
    from ragtune.models import resolve

    resolved = resolve(spec)
    if resolved.kind == "hub" and resolved.location in PAPER_MODELS:
        return json.dumps(PAPER_MODELS[resolved.location], sort_keys=True)
    if resolved.is_gguf and resolved.kind != "hub":
        stat = (Path(resolved.location) / resolved.gguf_file).stat()
        return f"{spec}:{stat.st_size}:{stat.st_mtime_ns}"
    if resolved.kind == "dir":
        folder = Path(resolved.location)
        files = ("config.json", "sentence_bert_config.json")
        return "".join((folder / f).read_text() for f in files if (folder / f).exists())
    return spec


class _Cache:
    """Estimates on disk, keyed by the estimator, the architecture, the shapes and the
    estimator's code: a cached plan is read without torch or transformers."""

    def __init__(self, folder: Path | None):
        self.folder = folder
        digest = hashlib.sha256()
        for src in _SOURCES:
            digest.update(src.read_bytes())
        for dist in ("torch", "transformers", "peft"):
            digest.update(importlib.metadata.version(dist).encode())
        self.code = digest.hexdigest()[:16]
        self.archs: dict = {}
        self.arch_keys: dict = {}

    def get(self, name: str, spec: str, **kwargs) -> Estimate:
        if spec not in self.arch_keys:
            self.arch_keys[spec] = _architecture_key(spec)
        key_src = json.dumps([name, self.arch_keys[spec], kwargs, self.code], sort_keys=True)
        key = hashlib.sha256(key_src.encode()).hexdigest()[:24]
        path = self.folder / f"{key}.json" if self.folder else None
        if path and path.exists():
            return Estimate(**json.loads(path.read_text()))
        from ragtune.memory import architectures, estimate

        if spec not in self.archs:
            self.archs[spec] = architectures.load(spec)
        log.info("estimating %s of %s (%s)", name, spec, kwargs)
        result = getattr(estimate, name)(self.archs[spec], **kwargs)
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(result.__dict__))
            tmp.replace(path)
        return result


def _dtype(name: str) -> str:
    # The plan is for a GPU: auto is bf16 there (fp16 GPUs use as much memory).
    return "bfloat16" if name == "auto" else name


def _checkpointing(training: dict) -> bool:
    setting = training["gradient_checkpointing"]
    return True if setting == "auto" else bool(setting)


def _quantized(setting: str) -> bool:
    return setting in ("auto", "4bit")  # auto is NF4 on CUDA


def _encoder_tokens(spec: str, cap: int | None) -> int:
    """The encoder's token cap: ``cap`` (embedding.max_seq_length) or the model's own."""
    from ragtune.memory.architectures import PAPER_MODELS
    from ragtune.models import resolve

    resolved = resolve(spec)
    if resolved.kind == "hub" and resolved.location in PAPER_MODELS:
        model_cap = PAPER_MODELS[resolved.location][1]["max_seq_length"]
    elif (
        resolved.kind == "dir" and (Path(resolved.location) / "sentence_bert_config.json").exists()
    ):
        bert = json.loads((Path(resolved.location) / "sentence_bert_config.json").read_text())
        model_cap = bert["max_seq_length"]
    else:
        from ragtune.memory import architectures

        arch = architectures.load(spec)
        model_cap = getattr(arch, "max_seq_length", None) or arch.max_position_embeddings
    return min(cap or model_cap, model_cap)


def _largest_fitting(make, current: int, budget_gb: float) -> int | None:
    """The largest value <= ``current`` (halving) whose estimate fits, or None."""
    value = current
    while value > 1:
        value = max(1, value // 2)
        if make(value).gb() <= HEADROOM * budget_gb:
            return value
    return None


def _chunk_tokens(config: dict, encoder_tokens: int) -> int:
    """A chunk's tokens in an encoder that reads ``encoder_tokens`` at most: its chunking
    length plus the special tokens."""
    return min(config["corpus"]["chunking"]["max_tokens"] + 2, encoder_tokens)


def _embedder_jobs(config: dict, spec: str) -> list[tuple[str, dict, str]]:
    """(rule, encoder_step arguments, the batch knob) of an embedder's GPU jobs."""
    tokens = _encoder_tokens(spec, config["embedding"]["max_seq_length"])
    chunk_tokens = _chunk_tokens(config, tokens)
    emb = config["training"]["embedder"]
    train_rows = emb["mini_batch"] if emb["loss"] == "cached_mnrl" else emb["batch_size"]
    if emb.get("train_documents") and emb["loss"] != "cached_mnrl":
        # The batch's positives and hard negatives are encoded with gradient too (GradCache
        # encodes them mini_batch at a time).
        train_rows *= 2 + emb["hard_negatives"]
    batch = config["embedding"]["batch_size"]
    queries = config["retrieval"]["query_batch_size"]
    jobs = [
        ("embed_corpus", dict(rows=batch, tokens=chunk_tokens, train=False)),
        ("retrieve", dict(rows=queries, tokens=tokens, train=False)),
        ("train_embedder", dict(rows=train_rows, tokens=tokens, train=True)),
    ]
    if emb.get("train_documents"):  # each tuned encoder re-embeds the corpus
        jobs.append(("embed_corpus_refreshed", dict(rows=batch, tokens=chunk_tokens, train=False)))
    return [(rule, kwargs, RULES[rule].batch_knob) for rule, kwargs in jobs]


def plan(config: dict, budgets: dict[str, float], cache_dir: Path | None = None) -> list[Row]:
    """Every GPU job kind of ``config``. ``budgets``: GB per rule (the profile's per-rule
    ``gpu_memory_gb``), falling back to ``resources.gpu_memory_gb``."""
    cache = _Cache(cache_dir)
    resources, training = config["resources"], config["training"]

    def budget(rule):
        return float(budgets.get(rule.removesuffix("_refreshed"), resources["gpu_memory_gb"]))

    def on_gpu(rule):
        # A refreshed index's embedding runs on embed_corpus's GPUs.
        return resources.get(rule.removesuffix("_refreshed"), 0) > 0

    def add(rule, model, make, size, knob, extra_knobs=()):
        """A row for ``make(size)``; where it does not fit, the largest size that does."""
        row = Row(rule, model, make(size), budget(rule))
        row.knobs = [knob, *extra_knobs]
        if not row.fits:
            fit = _largest_fitting(make, size, row.budget_gb)
            row.knobs[0] = f"{knob}: {size} -> {fit}" if fit else knob
        rows.append(row)

    rows: list[Row] = []
    used = {p["embedder"] for p in config["pipelines"].values()}
    for name in [n for n in config["embedders"] if n in used]:
        spec = config["embedders"][name]
        for rule, kwargs, knob in _embedder_jobs(config, spec):
            if on_gpu(rule):

                def encoder(n, spec=spec, rule=rule, kwargs=kwargs):
                    return cache.get("encoder_step", spec, job=rule, **{**kwargs, "rows": n})

                add(rule, name, encoder, kwargs["rows"], knob)

    checkpointing = _checkpointing(training)
    lora = dict(
        compute_dtype=_dtype(training["dtype"]),
        lora_rank=LORA_RANK,
        lora_targets=LORA_TARGETS,
        lora_dropout=training["lora_dropout"],
        checkpointing=checkpointing,
    )
    more = [] if checkpointing else ["training.gradient_checkpointing: true"]
    k = config["retrieval"]["k"]
    for pipeline, p in config["pipelines"].items():
        gen_spec = config["generators"][p["generator"]]
        enc_spec = config["embedders"][p["embedder"]]
        if on_gpu("train_generator"):
            g = training["generator"]

            def ft_gen(rows, g=g, gen_spec=gen_spec):
                return cache.get(
                    "generator_training",
                    gen_spec,
                    job="train_generator",
                    rows=rows,
                    prompt_tokens=g["max_prompt_tokens"],
                    quantized=_quantized(g["quantize"]),
                    loss_tokens=g["loss_tokens"],
                    **lora,
                )

            add(
                "train_generator",
                pipeline,
                ft_gen,
                g["batch_size"],
                RULES["train_generator"].batch_knob,
                ["training.generator.max_prompt_tokens", *more],
            )
        if on_gpu("train_joint"):
            j = training["joint"]
            documents = bool(training["embedder"].get("train_documents"))
            corpus_tokens = (
                _encoder_tokens(enc_spec, config["embedding"]["max_seq_length"]) if documents else 0
            )

            def joint(
                questions, j=j, gen_spec=gen_spec, enc_spec=enc_spec, documents=documents,
                corpus_tokens=corpus_tokens,
            ):  # fmt: skip
                gen = cache.get(
                    "generator_training",
                    gen_spec,
                    job="train_joint",
                    rows=questions * k,
                    prompt_tokens=j["max_prompt_tokens"],
                    quantized=_quantized(j["quantize"]),
                    joint_k=k,
                    prefix_tokens=JOINT_PREFIX_TOKENS,
                    rows_per_forward=j["rows_per_forward"],
                    **lora,
                )
                enc = cache.get(
                    "encoder_step",
                    enc_spec,
                    job="train_joint",
                    rows=questions,
                    tokens=_encoder_tokens(enc_spec, None),
                    train=True,
                )
                if documents:  # the top-k chunks are encoded with gradient too
                    docs = cache.get(
                        "encoder_step",
                        enc_spec,
                        job="train_joint",
                        rows=questions * k,
                        tokens=_chunk_tokens(config, corpus_tokens),
                        train=True,
                    )
                    enc = dataclasses.replace(
                        enc,
                        step_peak=enc.step_peak + docs.step_peak,
                        saved_activations=enc.saved_activations + docs.saved_activations,
                    )
                # The query encoder learns beside the generator: its weights, Adam states and
                # step add up (its graph lives until the joint backward has run).
                return Estimate(
                    job="train_joint",
                    weights=gen.weights + enc.weights,
                    optimizer=gen.optimizer + enc.optimizer,
                    step_peak=gen.step_peak + enc.step_peak,
                    saved_activations=gen.saved_activations + enc.saved_activations,
                    overhead=gen.overhead,
                )

            add(
                "train_joint",
                pipeline,
                joint,
                j["batch_size"],
                RULES["train_joint"].batch_knob,
                [
                    "training.joint.rows_per_forward",
                    "training.joint.max_prompt_tokens",
                    *more,
                ],
            )
        if on_gpu("train_joint") and "loop" in config["strategies"]:
            j, gcfg = training["joint"], config["generation"]

            def loop(questions, j=j, gcfg=gcfg, gen_spec=gen_spec):
                # LOOP scores k prompts of k-1 chunks per question with its generator frozen:
                # forward passes at evaluation's prompt length, no gradient (its query encoder
                # is the row above's).
                return cache.get(
                    "generation",
                    gen_spec,
                    job="train_joint",
                    rows=j["rows_per_forward"] or questions * k,
                    prompt_tokens=gcfg["max_prompt_tokens"],
                    new_tokens=1,
                    dtype=_dtype(training["dtype"]),
                )

            add(
                "train_joint",
                f"{pipeline}, LOOP",
                loop,
                j["batch_size"],
                RULES["train_joint"].batch_knob,
                ["training.joint.rows_per_forward"],
            )
        if on_gpu("evaluate"):
            gcfg = config["generation"]

            def evaluation(batch_size, gcfg=gcfg, gen_spec=gen_spec):
                # The base model in the compute dtype: No Ft. and Ft. Embed. evaluate it, the
                # largest of a pipeline's evaluations (tuned runs use the 4-bit base). RAG
                # decoding runs a batch's questions' k single-chunk prompts as its rows, beam
                # search a prompt's num_beams beams.
                rows = batch_size * gcfg["num_beams"]
                if config["evaluation"]["decoding"] != "concat":
                    from ragtune.evaluation.rag_decoding import rows_per_batch

                    rows = rows_per_batch(batch_size, config["retrieval"]["k"])
                return cache.get(
                    "generation",
                    gen_spec,
                    job="evaluate",
                    rows=rows,
                    prompt_tokens=gcfg["max_prompt_tokens"],
                    new_tokens=gcfg["max_new_tokens"],
                    dtype=_dtype(gcfg["dtype"]),
                )

            add(
                "evaluate",
                pipeline,
                evaluation,
                gcfg["batch_size"],
                RULES["evaluate"].batch_knob,
                ["generation.max_prompt_tokens"],
            )
    return rows


def table(rows: list[Row]) -> str:
    lines = [f"{'job':<40} {'peak GB':>8} {'budget GB':>10}  fits"]
    for r in rows:
        job = f"{r.rule} ({r.model})"
        lines.append(f"{job:<40} {r.estimate.gb():>8.1f} {r.budget_gb:>10.0f}  {r.fits}")
    return "\n".join(lines)


def check(config: dict, budgets: dict[str, float], cache_dir: Path | None = None) -> list[Row]:
    """Fail with every job that does not fit; return the plan when all do."""
    if config["resources"].get("gpu_memory_gb") is None:
        return []
    rows = plan(config, budgets, cache_dir)
    too_big = [r for r in rows if not r.fits]
    if too_big:
        lines = [
            f"- {r.rule} ({r.model}): needs {r.estimate.gb():.1f} GB, more than "
            f"{HEADROOM:.0%} of its {r.budget_gb:g} GB GPU ({HEADROOM * r.budget_gb:.1f} GB). "
            f"Turn: {'; '.join(r.knobs)}"
            for r in too_big
        ]
        raise MemoryPlanError(
            "GPU memory plan: these jobs would run out of GPU memory "
            "(resources.gpu_memory_gb, or gpu_memory_gb per rule in your profile, sets the "
            "budget):\n" + "\n".join(lines)
        )
    return rows
