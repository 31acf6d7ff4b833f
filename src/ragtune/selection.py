"""Pick a learning-rate grid's winner by its validation score."""

from __future__ import annotations

import statistics

from ragtune.io import read_json, write_json


def pick(scores: dict[str, float]) -> str:
    """The best-scoring grid point; a tie goes to the one listed first (the config's order)."""
    best = max(scores.values())
    return next(lrs for lrs, value in scores.items() if value == best)


def select_lr(
    metrics_paths: list[str],
    grid: list[str],
    metric: str,
    out_path: str,
    seeds: list[int | None] | None = None,
    pipelines: list[str] | None = None,
) -> str:
    """``metrics_paths``: each grid point's runs in ``grid`` order, one per seed of ``seeds``
    (the config's `seeds`; ``[None]``, the default, is one unseeded run per point) and, within
    a seed, one per pipeline of ``pipelines`` (several where the LR is chosen per embedder). A
    point scores the mean of its runs' validation ``metric``; with several seeds the record
    keeps the seeds, every seed's score (its pipelines' mean) and their sample standard
    deviation; with several pipelines, which ones."""
    seeds = seeds or [None]
    pipelines = pipelines or []
    n, m = len(seeds), max(1, len(pipelines))
    if len(metrics_paths) != len(grid) * n * m:
        raise ValueError(
            f"{out_path}: {len(metrics_paths)} validation metrics for {len(grid)} grid points "
            f"x {n} seed(s) x {m} pipeline(s)"
        )

    def score(paths: list[str]) -> float:
        return statistics.fmean(read_json(p)[metric] for p in paths)

    per_seed = {
        lrs: [score(metrics_paths[(i * n + j) * m : (i * n + j + 1) * m]) for j in range(n)]
        for i, lrs in enumerate(grid)
    }
    scores = {lrs: statistics.fmean(values) for lrs, values in per_seed.items()}
    winner = pick(scores)
    record = {"metric": metric, "split": "validation", "winner": winner, "scores": scores}
    if m > 1:
        record["pipelines"] = pipelines
    if n > 1:
        record["seeds"] = seeds
        record["seed_scores"] = per_seed
        record["seed_sd"] = {lrs: statistics.stdev(v) for lrs, v in per_seed.items()}
    write_json(out_path, record)
    return winner
