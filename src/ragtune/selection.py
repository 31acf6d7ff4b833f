"""Pick a learning-rate grid's winner by its validation score."""

from __future__ import annotations

from ragtune.io import read_json, write_json


def pick(scores: dict[str, float]) -> str:
    """The best-scoring grid point; a tie goes to the one listed first (the config's order)."""
    best = max(scores.values())
    return next(lrs for lrs, value in scores.items() if value == best)


def select_lr(metrics_paths: list[str], grid: list[str], metric: str, out_path: str) -> str:
    scores = {lrs: read_json(p)[metric] for lrs, p in zip(grid, metrics_paths, strict=True)}
    winner = pick(scores)
    write_json(
        out_path, {"metric": metric, "split": "validation", "winner": winner, "scores": scores}
    )
    return winner
