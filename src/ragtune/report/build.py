"""What the report rules run: every table from the runs' files, every figure from the tables."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pandas as pd
import yaml

from ragtune.io import atomic_path
from ragtune.report import figures, intervals, paper, tables


def _stamp(caption: str) -> str:
    return f"{caption}; made {datetime.date.today().isoformat()} by ragtune"


def read_runs(path: str | Path) -> pd.DataFrame:
    # LRs stay strings ("1e-04"), and "N/A" stays "N/A"; a spread over one seed is NaN.
    runs = pd.read_csv(path, dtype={"Embed LR": str, "Gen LR": str}, keep_default_na=False)
    for column in [c for c in runs.columns if c.endswith(" sd")]:
        runs[column] = pd.to_numeric(runs[column], errors="coerce")
    return runs


def build_tables(
    entries: list[dict],
    out_dir: str | Path,
    caption: str,
    setup: str,
    paper_matches: dict[str, str],
    boot: dict | None = None,
    seed: int = 0,
) -> tables.Results:
    """all_runs, per_pipeline, averaged (validation), test (where evaluated), significance,
    cost and paper_comparison, each as CSV, Markdown and LaTeX, plus jobs.csv: every job behind
    the tables and its cost. Every score comes with its bootstrap interval over questions
    (``boot``: the config's ``evaluation.bootstrap``), in ``<metric> lo`` / ``<metric> hi``
    columns and as ``x [lo, hi]`` in Markdown and LaTeX.
    ``caption`` says which config made them; ``setup`` names our models and scale beside the
    paper's."""
    boot = boot or {"resamples": 1000, "level": 0.95}
    out = Path(out_dir)
    res = tables.collect(entries)
    tables.add_intervals(res, boot, seed)
    caption = _stamp(caption)
    ci = (
        f"[lo, hi]: {boot['level']:.0%} bootstrap interval over questions "
        f"({boot['resamples']} resamples)"
    )
    with atomic_path(out / "jobs.csv") as tmp:
        res.jobs.to_csv(tmp, index=False)
    recall = tables.recall_label(res.runs)
    metrics = ["EM", "F1", recall]
    spread = [" sd"] if res.seeded else []
    scored = [c for m in metrics for c in (m + end for end in ["", " lo", " hi", *spread])]
    if res.seeded:
        ci += (
            f"; each score is the mean over {res.runs['Seeds'].max()} training seeds, and sd "
            "their spread (sample standard deviation; none where nothing trains)"
        )

    def averaged(split):
        table = tables.averaged_intervals(tables.averaged(res.runs, split), res, split, boot, seed)
        table = tables.averaged_seed_spread(table, res, split)
        return tables.wide(table, ["strategy"], [*scored, "Time (h)", "Grid cost (device-h)"])

    views = {
        "all_runs": (res.runs, "Every run, both splits"),
        "per_pipeline": (
            tables.per_pipeline(res.runs),
            "Validation metrics, training time and learning rates per pipeline "
            "(the paper's Figures 6/7; LR at grid edge: the chosen LR is the smallest or "
            "largest searched, so the best may lie outside the grid)",
        ),
        "averaged": (
            averaged("validation"),
            "Validation metrics and time to fine-tune, mean over pipelines (the paper's Figure 3)",
        ),
        "cost": (
            tables.cost(res),
            "Device-hours (GPU-h, or CPU-h x threads on CPU) of the chosen runs and of the "
            "whole LR search: every grid point's training and validation evaluation",
        ),
    }
    # A config may evaluate on validation only (`evaluation.splits`): then no test table.
    if (res.runs["split"] == "test").any():
        test = averaged("test")
        test = test.drop(columns=[c for c in test.columns if "(h)" in c or "device-h" in c])
        views["test"] = (
            test,
            "Held-out test metrics of the runs chosen on validation, mean over pipelines",
        )
    sig = tables.significance(res, boot, seed)
    n = ", ".join(f"{d} {g['n'].max()}" for d, g in sig.groupby("dataset", sort=False))
    sig_caption = (
        f"Paired differences (strategy - versus) in EM and F1 on validation, over the same "
        f"questions ({n} per dataset), with their {boot['level']:.0%} paired bootstrap "
        f"intervals and p-values; distinguishable: p < {1 - boot['level']:.2f}"
        if len(sig)
        else "No paired differences: the config ran one strategy, so there is nothing to compare"
    )
    comp = paper.comparison(
        tables.averaged(res.runs), setup, paper_matches, tables.per_pipeline(res.runs)
    )
    scale = "a reproduction check" if paper_matches else "context only: other models, other scale"
    for name, (df, title) in views.items():
        tables.write_table(
            df,
            out / name,
            title=title,
            caption=f"{caption}. {ci}",
            shown=intervals.shown(df, metrics),
        )
    tables.write_table(
        sig,
        out / "significance",
        title="Which differences are distinguishable from noise",
        caption=f"{sig_caption}. {caption}",
        shown=tables.significance_shown(sig),
    )
    tables.write_table(
        comp,
        out / "paper_comparison",
        title=f"ragtune beside the paper's published numbers ({scale})",
        caption=f"ragtune: {setup}. Paper: {paper.PAPER_SETUP}. {paper.beyond_note(comp)}{caption}",
        shown=paper.side_by_side(comp),
    )
    return res


def build_figures(
    runs_csv: str | Path,
    comparison_csv: str | Path,
    selections: list[dict],
    curves: list[dict],
    out_dir: str | Path,
    caption: str,
    entries: list[dict] | None = None,
    boot: dict | None = None,
    seed: int = 0,
) -> None:
    """Every figure. With the table rows (``entries``) and ``boot``, the scores carry their
    bootstrap intervals as error bars."""
    out = Path(out_dir)
    caption = _stamp(caption)
    runs = read_runs(runs_csv)
    errors = intervals.strategy_intervals(entries, boot, seed) if entries and boot else None
    if errors:
        caption += f"; error bars: {boot['level']:.0%} bootstrap intervals over questions"
    figures.strategy_bars(tables.averaged(runs), out / "strategies", caption, errors)
    figures.lr_sensitivity(selections, out / "lr_sensitivity", caption, boot, seed)
    figures.loss_curves(curves, out / "loss_curves", caption)
    figures.paper_comparison(pd.read_csv(comparison_csv), out / "paper_comparison", caption)


def write_config(
    config: dict, path: str | Path, label: str, demo_source: dict | None = None
) -> None:
    """The config the run used, defaults filled in, for the report; with ``demo_source``
    (the demo data folder's SOURCE.json), where the demo's data came from."""
    from ragtune.data.demo import describe

    head = f"# {label}\n"
    if demo_source:
        head += f"# demo data from {describe(demo_source)}\n"
        head += "".join(f"#   {line}\n" for line in json.dumps(demo_source, indent=1).splitlines())
    with atomic_path(path) as tmp:
        Path(tmp).write_text(head + yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
