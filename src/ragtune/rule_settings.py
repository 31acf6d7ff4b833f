"""Which config keys each rule reads, and which of them re-run it when they change.

Snakemake re-runs a job whose ``params`` changed. A rule that received whole config sections
re-ran for keys it never reads (editing ``training.joint.scale`` re-trained Ft. Embed.) and for
knobs that change only speed or memory (``embedding.batch_size`` re-embedded the corpus). So
each rule's ``params.settings`` holds exactly the keys that shape its outputs
(:data:`TRIGGERS`), and its script adds, from ``snakemake.config`` at run time, the keys it
only reads for speed, memory or a check (:data:`RUN_TIME`), which re-run nothing.

A step that reads a key listed in neither fails with a ``KeyError`` on its first run: the
tables below cannot silently drift from the code.
"""

from __future__ import annotations

import copy
from typing import Any

from ragtune.rules import RULES

# Each rule's keys live in its entry of ragtune.rules.RULES.
TRIGGERS: dict[str, list[str]] = {n: list(r.triggers) for n, r in RULES.items() if r.triggers}
# Read only by RAG-Token / RAG-Sequence decoding (p(z|x)): a trigger of evaluate only there.
DECODING_TRIGGERS = ["training.joint.scale"]
# The generator's compute dtype shapes what a generator job trains, but is a trigger only once
# set: at its default (auto, what every run before the key had) it stays out of the params,
# so that results trained before it existed are not re-trained for it.
DTYPE_TRIGGERS = ["training.dtype"]
GENERATOR_TRAINING = ("train_generator", "train_joint")
# Document-side training likewise: a trigger of the embedder's training jobs only once on, so
# that runs trained before the key existed (or with it off) are not re-trained for it.
DOCUMENT_TRIGGERS = ["training.embedder.train_documents"]
EMBEDDER_TRAINING = ("train_embedder", "train_joint")
RUN_TIME: dict[str, list[str]] = {n: list(r.run_time) for n, r in RULES.items() if r.run_time}


def canonical(value: Any) -> Any:
    """``value`` with every dict's keys sorted, recursively. Snakemake compares a job's params
    by their ``repr``, and a dict's repr follows its key order: a config with the same content
    in another key order (``yaml.safe_dump`` sorts keys) re-ran every rule from prepare_qa
    down. Every dict a rule passes as params goes through here. Lists keep their order: theirs
    is content."""
    if isinstance(value, dict):
        return {k: canonical(value[k]) for k in sorted(value)}
    if isinstance(value, list | tuple):
        return type(value)(canonical(v) for v in value)
    return value


def pick(config: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    """The nested sub-dict of ``config`` holding only the dotted ``keys``."""
    out: dict[str, Any] = {}
    for key in keys:
        *parents, leaf = key.split(".")
        src, dst = config, out
        for part in parents:
            src = src[part]
            dst = dst.setdefault(part, {})
        dst[leaf] = copy.deepcopy(src[leaf])
    return out


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def triggers(config: dict[str, Any], rule: str) -> dict[str, Any]:
    """The rule's ``params.settings``: the keys whose change re-runs it."""
    keys = TRIGGERS[rule]
    if rule == "evaluate" and config["evaluation"]["decoding"] != "concat":
        keys = keys + DECODING_TRIGGERS
    if rule in GENERATOR_TRAINING and config["training"]["dtype"] != "auto":
        keys = keys + DTYPE_TRIGGERS
    if rule in EMBEDDER_TRAINING and config["training"]["embedder"].get("train_documents"):
        keys = keys + DOCUMENT_TRIGGERS
    return canonical(pick(config, keys))


def settings(smk: Any) -> dict[str, Any]:
    """In a rule's script: its trigger keys plus its run-time keys, as one config-shaped dict.
    Evaluation under ``concat`` decoding also sees ``training.joint.scale`` (unused there), and
    a generator-training job ``training.dtype`` at its default, and an embedder-training job
    ``training.embedder.train_documents`` when off."""
    extra = [
        *(DECODING_TRIGGERS if smk.rule == "evaluate" else []),
        *(DTYPE_TRIGGERS if smk.rule in GENERATOR_TRAINING else []),
        *(DOCUMENT_TRIGGERS if smk.rule in EMBEDDER_TRAINING else []),
    ]
    return merge(dict(smk.params.settings), pick(smk.config, RUN_TIME[smk.rule] + extra))


def result_config(config: dict[str, Any]) -> dict[str, Any]:
    """The config less what cannot change a result: every run-time key above and the
    ``resources`` section. Its hash labels the tables and the report keeps it, so a speed knob
    or a GPU count changed between runs re-makes no table."""
    out = copy.deepcopy(config)
    out.pop("resources", None)
    # A run-time key that is another rule's trigger (k: build_index only checks it, retrieval
    # depends on it) stays.
    triggers = {k for keys in TRIGGERS.values() for k in keys}
    for key in {k for keys in RUN_TIME.values() for k in keys} - triggers:
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.get(part, {})
        node.pop(leaf, None)
    return out
