"""What one job cost: its wall time from Snakemake's benchmark record, times the devices it held,
from the job's own record (train.json or metrics.json: ``gpu_count``, ``cpu_threads``).

A training job killed and resumed ran in several attempts. The benchmark's last record is the
attempt that finished; the job record's ``earlier_attempts_seconds`` are the ones before it
(a job killed with -9 leaves no benchmark record, so they cannot come from there)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ragtune.io import read_json


@dataclass(frozen=True)
class JobCost:
    benchmark: str
    seconds: float
    units: int  # GPUs held, or CPU threads on a host without one
    unit: str  # "GPU" or "CPU"

    @property
    def hours(self) -> float:
        return self.seconds / 3600

    @property
    def device_hours(self) -> float:
        return self.seconds * self.units / 3600


def benchmark_seconds(path: str | Path) -> float:
    """Wall seconds of a job's last run: a ``.jsonl`` benchmark gains one record per run."""
    lines = [ln for ln in Path(path).read_text(encoding="utf-8").splitlines() if ln.strip()]
    if not lines:
        raise ValueError(f"{path}: empty Snakemake benchmark file; re-run the job that writes it")
    try:
        return float(json.loads(lines[-1])["s"])
    except (json.JSONDecodeError, KeyError) as err:
        raise ValueError(
            f"{path}: the last line is not a Snakemake benchmark record with an 's' field "
            f"({err}); delete the file and re-run the job that writes it"
        ) from err


def job_cost(record: str | Path, benchmark: str | Path) -> JobCost:
    info = read_json(record)
    gpus = int(info.get("gpu_count") or 0)
    units, unit = (gpus, "GPU") if gpus else (int(info.get("cpu_threads") or 1), "CPU")
    seconds = benchmark_seconds(benchmark) + float(info.get("earlier_attempts_seconds") or 0)
    return JobCost(str(benchmark), seconds, units, unit)
