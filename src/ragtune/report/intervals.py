"""The tables' uncertainty, from every run's per-question scores (its predictions.jsonl): a
bootstrap interval for each score, and paired comparisons between strategies
(``ragtune.report.uncertainty`` has the statistics)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ragtune.io import read_json, read_jsonl
from ragtune.report import uncertainty
from ragtune.report.uncertainty import Interval

# A run's per-question scores, in percent, by table metric.
SCORE_FIELDS = {"EM": "em", "F1": "f1", "Recall@k": "recall"}


def question_scores(metrics_path: str | Path) -> pd.DataFrame:
    """One row per question of a run: id and EM / F1 / Recall@k in percent, read from the
    predictions.jsonl beside its metrics.json."""
    path = Path(metrics_path).with_name("predictions.jsonl")
    rows = [
        {"id": str(r["id"]), **{m: 100.0 * float(r[f]) for m, f in SCORE_FIELDS.items()}}
        for r in read_jsonl(path)
    ]
    if not rows:
        raise ValueError(f"{path}: no predictions; re-run the evaluate job that writes it")
    return pd.DataFrame(rows).set_index("id")


def check_matches(scores: pd.DataFrame, metrics: dict, metrics_path: str | Path) -> None:
    """The per-question scores must average to the run's recorded metrics: otherwise the
    predictions are another run's (a stale or replaced file) and every interval built on them
    would sit around the wrong value."""
    recorded = {"EM": metrics["em"], "F1": metrics["f1"], "Recall@k": metrics["recall_at_k"]}
    for metric, value in recorded.items():
        mean = float(scores[metric].mean())
        if len(scores) != metrics["n"] or abs(mean - value) > 0.01:
            raise ValueError(
                f"{Path(metrics_path).with_name('predictions.jsonl')} ({len(scores)} questions, "
                f"{metric} {mean:.2f}) disagrees with {metrics_path} (n={metrics['n']}, "
                f"{metric} {value}); they must come from one evaluate job: delete both and "
                "re-run it"
            )


def aligned(frames: list[pd.DataFrame], metric: str, where: str) -> np.ndarray:
    """(pipelines x questions) scores of one metric over the same questions, in one order."""
    ids = frames[0].index
    for frame in frames[1:]:
        if set(frame.index) != set(ids):
            raise ValueError(f"{where}: the runs were evaluated on different questions")
    return np.stack([frame.loc[ids, metric].to_numpy() for frame in frames])


def with_intervals(
    table: pd.DataFrame, scores, keys: list[str], metrics: list[str], boot: dict, seed: int
) -> pd.DataFrame:
    """``table`` with ``<metric> lo`` / ``<metric> hi`` after each metric. ``scores(row)`` gives
    the row's groups: one (pipelines x questions) array per dataset, for one metric."""
    out = table.copy()
    for metric in metrics:
        los, his = [], []
        for _, row in table.iterrows():
            ci = uncertainty.interval(
                scores(row, metric), boot["resamples"], boot["level"], _seed(seed, row, keys)
            )
            los.append(ci.lo)
            his.append(ci.hi)
        at = out.columns.get_loc(metric) + 1
        out.insert(at, f"{metric} hi", his)
        out.insert(at, f"{metric} lo", los)
    return out


def _seed(seed: int, row, keys: list[str]) -> int:
    """One seed per row, from the config's and the row's key: the same table twice gives the
    same intervals, and rows do not share their resamples."""
    import zlib

    text = "|".join(str(row[k]) for k in keys)
    return (seed * 1_000_003 + zlib.crc32(text.encode())) % (2**32)


def shown(df: pd.DataFrame, metrics: list[str], digits: int = 1) -> pd.DataFrame:
    """For Markdown and LaTeX: ``x [lo, hi]`` in each metric column, lo / hi dropped; with a
    spread over seeds (``<metric> sd``), ``x ± sd [lo, hi]``."""
    out = df.copy()
    for col in [c for c in df.columns if any(str(c).endswith(m) for m in metrics)]:
        lo, hi, sd = f"{col} lo", f"{col} hi", f"{col} sd"
        if lo in df.columns and hi in df.columns:
            spread = df[sd] if sd in df.columns else [float("nan")] * len(df)
            out[col] = [
                f"{v:.{digits}f}"
                + (f" ± {e:.{digits}f}" if e == e else "")  # NaN: one seed, no spread
                + f" [{a:.{digits}f}, {b:.{digits}f}]"
                for v, e, a, b in zip(df[col], spread, df[lo], df[hi], strict=True)
            ]
            out = out.drop(columns=[c for c in (lo, hi, sd) if c in out.columns])
    return out


def seed_runs(metrics_paths) -> tuple[list[dict], pd.DataFrame]:
    """A row's runs, one per seed (``metrics_paths``: one metrics.json, or one per seed): each
    run's recorded metrics, and its per-question scores averaged over the seeds. Every run's
    predictions must average to its metrics (:func:`check_matches`), and every seed must have
    answered the same questions."""
    paths = [metrics_paths] if isinstance(metrics_paths, str | Path) else list(metrics_paths)
    metrics, frames = [], []
    for path in paths:
        recorded, scores = read_json(path), question_scores(path)
        check_matches(scores, recorded, path)
        metrics.append(recorded)
        frames.append(scores)
    ids = frames[0].index
    for path, frame in zip(paths[1:], frames[1:], strict=True):
        if set(frame.index) != set(ids):
            raise ValueError(f"{path}: its seed's run answered other questions than {paths[0]}")
    return metrics, sum(frame.loc[ids] for frame in frames) / len(frames)


def strategy_intervals(entries: list[dict], boot: dict, seed: int) -> dict[tuple, Interval]:
    """Figure 2's error bars: per (strategy label, metric), the validation score's interval
    over datasets and pipelines (datasets resampled independently, a dataset's pipelines
    together). ``entries``: the table rows (their metrics paths)."""
    from ragtune.plan import LABELS

    frames: dict[str, dict[str, list]] = {}
    for e in entries:
        if e["split"] == "validation":
            by_dataset = frames.setdefault(LABELS.get(e["strategy"], e["strategy"]), {})
            by_dataset.setdefault(e["dataset"], []).append(seed_runs(e["metrics"])[1])
    out = {}
    for label, by_dataset in frames.items():
        for metric in SCORE_FIELDS:
            groups = [aligned(fs, metric, f"{d} {label}") for d, fs in by_dataset.items()]
            out[(label, metric)] = uncertainty.interval(
                groups, boot["resamples"], boot["level"], _seed(seed, {"s": label}, ["s"])
            )
    return out


def significance(
    scores: dict[tuple, pd.DataFrame],
    strategies: list[str],
    boot: dict,
    seed: int,
    baselines: tuple[str, ...] = ("No Ft.", "Indp."),
) -> pd.DataFrame:
    """Paired comparisons on validation, per dataset and pipeline and over a dataset's
    pipelines ("all"): every strategy against each baseline, and the best (by EM) against
    every other. ``scores[(dataset, pipeline, strategy)]``: the run's question scores."""
    rows = []
    datasets = list(dict.fromkeys(k[0] for k in scores))
    for dataset in datasets:
        pipelines = list(dict.fromkeys(k[1] for k in scores if k[0] == dataset))
        # "all": over the dataset's pipelines, where there are several
        for pipeline in [*pipelines, "all"] if len(pipelines) > 1 else pipelines:
            scope = pipelines if pipeline == "all" else [pipeline]
            have = [s for s in strategies if all((dataset, p, s) in scores for p in scope)]

            def arr(strategy, metric, scope=scope, dataset=dataset):
                frames = [scores[(dataset, p, strategy)] for p in scope]
                return aligned(frames, metric, f"{dataset} {strategy}")

            best = max(have, key=lambda s: arr(s, "EM").mean())
            pairs: list[tuple[str, str]] = []
            for b in [*[b for b in baselines if b in have], best]:
                for s in have:  # each pair once, whichever way round it came first
                    if s != b and (s, b) not in pairs and (b, s) not in pairs:
                        pairs.append((s, b) if b in baselines else (best, s))
            for a, b in pairs:
                row = {"dataset": dataset, "pipeline": pipeline, "strategy": a, "versus": b}
                row["n"] = arr(a, "EM").shape[1]
                for metric in ("EM", "F1"):
                    d = uncertainty.paired(
                        arr(a, metric),
                        arr(b, metric),
                        boot["resamples"],
                        boot["level"],
                        _seed(seed, row, ["dataset", "pipeline", "strategy", "versus"]),
                    )
                    row |= {
                        f"{metric} diff": d.value,
                        f"{metric} diff lo": d.lo,
                        f"{metric} diff hi": d.hi,
                        f"{metric} p": d.p,
                        f"{metric} distinguishable": d.p < 1 - boot["level"],
                    }
                rows.append(row)
    # A config with one strategy (a baseline-only run) compares nothing: an empty table,
    # with its columns, so that everything downstream still reads it.
    columns = ["dataset", "pipeline", "strategy", "versus", "n"] + [
        f"{m} {part}" for m in ("EM", "F1") for part in ("diff", "diff lo", "diff hi", "p")
    ]
    columns += ["EM distinguishable", "F1 distinguishable"]
    return pd.DataFrame(rows, columns=list(dict.fromkeys([*columns, *(rows[0] if rows else {})])))
