"""What the tables and figures are called and what their captions say made them.

The caption names the config by its content hash (saved beside the report as
report/config.yaml), its pipelines and datasets, not by the config file's name: the same config
under another name re-makes no table. Speed and memory knobs and resources are left out of the
hash (ragtune.rule_settings.result_config).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ragtune import rule_settings

TABLES = ["all_runs", "per_pipeline", "averaged", "test", "cost", "paper_comparison",
          "significance"]  # fmt: skip
FIGURES = ["strategies", "lr_sensitivity", "loss_curves", "paper_comparison"]


def tables(eval_splits: list[str]) -> list[str]:
    """The tables a config makes: the held-out test table only where it evaluates on test."""
    return [t for t in TABLES if t != "test" or "test" in eval_splits]


def split_size(spec: dict) -> int:
    return spec["size"] if "size" in spec else len(spec["ids"])


def config_md5(config: dict[str, Any]) -> str:
    result = rule_settings.result_config(config)
    return hashlib.md5(json.dumps(result, sort_keys=True).encode()).hexdigest()[:10]


def config_label(config: dict[str, Any], notes: str = "") -> str:
    pipelines = dict(sorted(config["pipelines"].items()))
    pipes = ", ".join(f"{p} ({v['embedder']} + {v['generator']})" for p, v in pipelines.items())
    data = ", ".join(
        f"{d} (validation n={split_size(v['splits']['validation'])})"
        for d, v in sorted(config["datasets"].items())
    )
    label = (
        f"config md5 {config_md5(config)} (report/config.yaml); pipelines: {pipes}; "
        f"datasets: {data}; decoding: {config['evaluation']['decoding']}; "
        f"base generator of No Ft. and Ft. Embed.: {config['evaluation']['base_generator']}"
    )
    return f"{label}; {notes}" if notes else label


def setup_label(config: dict[str, Any]) -> str:
    """Our models and scale, beside the paper's in the comparison table."""
    pipelines = dict(sorted(config["pipelines"].items()))
    pipes = ", ".join(
        f"{config['embedders'][v['embedder']]} + {config['generators'][v['generator']]}"
        for v in pipelines.values()
    )
    n = ", ".join(
        f"{d} {split_size(v['splits']['validation'])}"
        for d, v in sorted(config["datasets"].items())
    )
    return f"{pipes}; top-{config['retrieval']['k']}; validation n = {n}"


def paper_matches(config: dict[str, Any]) -> dict[str, str]:
    """Pipelines that reproduce one of the paper's, for the per-pipeline comparison."""
    return {p: v["paper"] for p, v in sorted(config["pipelines"].items()) if v.get("paper")}
