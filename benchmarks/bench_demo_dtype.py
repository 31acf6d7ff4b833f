"""How far the demo's own numbers move in bfloat16: the check the issue asked for before any
CPU with native bf16 switches to it ("check answers and loss curves against float32").

It starts from a finished float32 demo (``make run``'s ``results/``), hard-links its files
into ``results_bf16_<mode>/`` beside it (the original is never written) and re-runs a part of
it there with this checkout's workflow, in the demo's folder, in bfloat16, all else kept:

- ``--mode generation`` sets ``generation.dtype: bfloat16`` and re-runs every evaluate job
  (``-R evaluate``) and what follows from it: the LR selections, the test evaluations of the
  runs they choose (training any run a changed choice needs, in float32) and the tables;
- ``--mode training`` sets ``training.dtype`` and ``generation.dtype`` to bfloat16, re-trains
  Ft. Gen.'s chosen run of every dataset (``-R train_generator``) and evaluates it on
  validation: the whole of one run in bf16, as on a CPU where bf16 would be the default.

Then it compares the two folders: for every evaluation both hold, how many answers are the
same string and the EM / F1 change; the LR each selection chose; every EM / F1 / Recall cell of
the ``averaged`` and ``test`` tables, and whether bf16's value lies inside float32's 95%
bootstrap interval (the demo's noise: one question is 10 points); for ``training``, both loss
curves; and, per adapter, how much of its delta a merge into bfloat16 weights would round
away. On a CPU without native bf16 the re-run is slow (``bench_cpu_dtype``: a bf16 forward
pass ~6x float32's here), but what it measures, bf16's rounding, is the same on every CPU.

    python -m benchmarks.bench_demo_dtype --mode generation [--results results]
    python -m benchmarks.bench_demo_dtype --mode training [--results results]
    python -m benchmarks.bench_demo_dtype --mode ... --compare-only [--copy FOLDER]  # re-read
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from benchmarks.common import REPO, report
from ragtune.io import read_json, read_jsonl

# Outputs of the end of the run: made afresh in the copy, never hard-linked from the original.
REBUILT = ("tables", "figures", "report", "report.html")
TABLE_METRICS = ("EM", "F1", "Recall@")


def link_copy(results: Path, copy: Path) -> None:
    """The finished run's files as hard links: Snakemake replaces an output by a new file (a
    job's output is deleted first, then written under a temporary name and renamed), so the
    original's files are never changed through the links."""
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(
        results,
        copy,
        copy_function=os.link,
        ignore=lambda folder, names: REBUILT if Path(folder) == results else (),
    )


def overrides(mode: str, copy: Path) -> dict:
    """``training`` sets both dtypes: a run trained in bf16 is evaluated in bf16, as it would be
    wherever ``auto`` meant bf16."""
    demo = yaml.safe_load((REPO / "config/config.yaml").read_text())
    out = {"results": str(copy), "generation": {**demo["generation"], "dtype": "bfloat16"}}
    if mode == "training":
        out["training"] = {**demo["training"], "dtype": "bfloat16"}
    return out


def training_targets(results: Path, copy: Path) -> list[str]:
    """The validation metrics of Ft. Gen.'s chosen run, per dataset and pipeline."""
    targets = []
    for selected in sorted(results.glob("*/*/ft_gen/selected.json")):
        winner = read_json(selected)["winner"]
        run = selected.parent.relative_to(results) / winner / "validation/metrics.json"
        targets.append(str(copy / run))
    return targets


def rerun(mode: str, results: Path, copy: Path, cores: int) -> None:
    """Snakemake in the demo's own folder (its data links; the chunk store's paths are relative
    to it), with this checkout's Snakefile and code. Only file times trigger re-runs, so the
    copied outputs count as done; the forced rule is run again, and whatever depends on it."""
    config = copy / "bench_demo_dtype.yaml"
    config.write_text(yaml.safe_dump(overrides(mode, copy)))
    forced = ["evaluate"] if mode == "generation" else ["train_generator"]
    targets = [] if mode == "generation" else training_targets(results, copy)
    command = [
        sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(results.parent), "--cores", str(cores),
        "--configfile", str(REPO / "config/config.yaml"), str(config),
        "--rerun-triggers", "mtime", "--rerun-incomplete", "--forcerun", *forced, "--", *targets,
    ]  # fmt: skip
    with open(copy / "bench_demo_dtype.log", "w") as log:
        subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=True)


def compare_predictions(base: Path, other: Path) -> dict:
    runs, same, total = {}, 0, 0
    for path in sorted(other.rglob("predictions.jsonl")):
        ref = base / path.relative_to(other)
        if not ref.exists() or path.stat().st_ino == ref.stat().st_ino:
            continue  # not evaluated in both, or not re-run (still the original's file)
        dtype = read_json(path.parent / "metrics.json").get("dtype", "bfloat16")  # older: unset
        if dtype != "bfloat16":
            raise ValueError(f"{path.parent}: evaluated in {dtype}, not bfloat16; re-run it")
        a = {r["id"]: r for r in read_jsonl(ref)}
        b = {r["id"]: r for r in read_jsonl(path)}
        if a.keys() != b.keys():
            raise ValueError(f"{path} answers other questions than {ref}")
        n_same = sum(a[q]["prediction"] == b[q]["prediction"] for q in a)
        same, total = same + n_same, total + len(a)
        key = str(path.parent.relative_to(other))
        runs[key] = {
            "same_answers": f"{n_same}/{len(a)}",
            "em": [_mean(a, "em"), _mean(b, "em")],
            "f1": [_mean(a, "f1"), _mean(b, "f1")],
        }
    if not runs:
        raise ValueError(f"{other} holds no evaluation re-run from {base}: nothing to compare")
    return {"evaluations": len(runs), "same_answers": same, "answers": total, "runs": runs}


def _mean(rows: dict, key: str) -> float:
    return round(100 * sum(r[key] for r in rows.values()) / len(rows), 2)


def compare_selections(base: Path, other: Path) -> dict:
    changed = {}
    for path in sorted(other.rglob("selected.json")):
        ref = base / path.relative_to(other)
        if ref.exists() and read_json(ref)["winner"] != read_json(path)["winner"]:
            changed[str(path.parent.relative_to(other))] = [
                read_json(ref)["winner"],
                read_json(path)["winner"],
            ]
    return changed


def compare_table(base: Path, other: Path, name: str) -> dict:
    """Every metric cell: float32's value [its interval] and bf16's, and whether bf16's lies
    inside float32's interval."""
    if not (other / f"tables/{name}.csv").exists():
        return {}  # the re-run did not get that far
    a, b = _rows(base / f"tables/{name}.csv"), _rows(other / f"tables/{name}.csv")
    cells, inside = {}, 0
    for strategy, row in a.items():
        for column, value in row.items():
            if not column.startswith(_metric_columns(row)) or column.endswith((" lo", " hi")):
                continue
            lo, hi = float(row[f"{column} lo"]), float(row[f"{column} hi"])
            new = float(b[strategy][column])
            ok = lo - 1e-9 <= new <= hi + 1e-9
            inside += ok
            cells[f"{strategy} | {column}"] = [float(value), [lo, hi], new, ok]
    return {"cells": len(cells), "inside_fp32_interval": inside, "values": cells}


def _metric_columns(row: dict) -> tuple[str, ...]:
    datasets = {c.split(" ", 1)[0] for c in row if c != "strategy"}
    return tuple(f"{d} {m}" for d in datasets for m in TABLE_METRICS)


def _rows(path: Path) -> dict:
    with open(path) as fh:
        return {r["strategy"]: r for r in csv.DictReader(fh)}


def compare_losses(base: Path, other: Path) -> dict:
    curves = {}
    for path in sorted(other.glob("*/*/ft_gen/*/adapter/loss.csv")):
        ref = base / path.relative_to(other)
        if path.stat().st_ino == ref.stat().st_ino:
            continue
        a, b = _losses(ref), _losses(path)
        curves[str(path.parent.parent.relative_to(other))] = {
            "float32": a,
            "bfloat16": b,
            "max_abs_diff": round(max(abs(x - y) for x, y in zip(a, b, strict=True)), 4),
        }
    return curves


def merge_rounding(results: Path) -> dict:
    """Per adapter of the finished demo: the share of its LoRA delta's elements that a merge
    into bfloat16 weights rounds away (bf16(W + dW) == bf16(W)), and the relative error of the
    delta the merged bf16 weights carry. What made ``models.load_generator`` keep adapters
    unmerged in 16-bit dtypes."""
    import torch
    from peft import PeftModel
    from peft.tuners.lora import LoraLayer

    from ragtune.models import load_generator

    out = {}
    for config in sorted(results.glob("*/*/*/**/adapter/adapter_config.json")):
        adapter = config.parent
        base, _ = load_generator(read_json(config)["base_model_name_or_path"], "float32")
        model = PeftModel.from_pretrained(base, str(adapter))
        lost = total = 0
        errors = []
        with torch.no_grad():
            for layer in model.modules():
                if not isinstance(layer, LoraLayer):
                    continue
                w = layer.get_base_layer().weight
                delta = layer.get_delta_weight("default")
                kept = (w + delta).bfloat16().float() - w.bfloat16().float()
                lost += int((kept == 0).sum())
                total += delta.numel()
                errors.append(float((kept - delta).norm() / delta.norm()))
        out[str(adapter.relative_to(results))] = {
            "delta_rounded_away": round(lost / total, 3),
            "merged_delta_error_median": round(sorted(errors)[len(errors) // 2], 3),
        }
    return out


def _losses(path: Path) -> list[float]:
    with open(path) as fh:
        return [round(float(r["loss"]), 4) for r in csv.DictReader(fh)]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=("generation", "training"), required=True)
    parser.add_argument("--results", type=Path, default=REPO / "results")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--compare-only", action="store_true")
    parser.add_argument("--copy", type=Path, help="the re-run folder (default under out/)")
    args = parser.parse_args(argv)
    results = args.results.resolve()
    copy = (args.copy or results.parent / f"results_bf16_{args.mode}").resolve()
    if not (results / "tables/averaged.csv").exists():
        parser.error(f"{results} holds no finished demo (no tables/averaged.csv): `make run`")
    if not args.compare_only:
        link_copy(results, copy)
        rerun(args.mode, results, copy, args.cores)
    result = {"mode": args.mode, "predictions": compare_predictions(results, copy)}
    if args.mode == "generation":
        result["selection_changes"] = compare_selections(results, copy)
        result["tables"] = {t: compare_table(results, copy, t) for t in ("averaged", "test")}
        result["merge_into_bf16"] = merge_rounding(results)
    else:
        result["loss_curves"] = compare_losses(results, copy)
    return report(f"demo_dtype_{args.mode}", result)


if __name__ == "__main__":
    main()
