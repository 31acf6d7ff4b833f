"""How sure a table can be: bootstrap intervals over questions, and paired comparisons.

Every score of ragtune's tables is a mean over questions (and over pipelines, and datasets), so
its uncertainty comes from which questions were asked. The bootstrap resamples them: a score's
95% interval is the 2.5th and 97.5th percentiles of the score over ``resamples`` resampled
question sets. Pipelines of one dataset answer the same questions, so they are resampled
together; datasets independently. Two strategies compared on the same questions are compared
per question (a paired bootstrap): most of the question-to-question spread is shared and
cancels, so a paired interval is far narrower than the two intervals side by side.

The p-value of a paired difference is the bootstrap's own test of "no difference": the share
of resampled differences, re-centred on zero, at least as far from zero as the observed one
(Efron and Tibshirani 1993, 16.4).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Interval:
    value: float
    lo: float
    hi: float


@dataclass(frozen=True)
class Difference:
    value: float  # a - b
    lo: float
    hi: float
    p: float  # two-sided


def _indices(rng: np.random.Generator, n: int, resamples: int) -> np.ndarray:
    return rng.integers(0, n, size=(resamples, n))


def _group_means(groups: Sequence[np.ndarray], rng, resamples: int) -> np.ndarray:
    """Per resample, the mean over groups of each group's mean over pipelines and resampled
    questions. ``groups``: one (pipelines x questions) array per dataset."""
    total = np.zeros(resamples)
    for scores in groups:
        scores = np.atleast_2d(np.asarray(scores, dtype=float))
        idx = _indices(rng, scores.shape[1], resamples)
        # (resamples, pipelines, questions) -> mean over both
        total += scores[:, idx].mean(axis=(0, 2))
    return total / len(groups)


def interval(
    groups: Sequence[np.ndarray], resamples: int = 1000, level: float = 0.95, seed: int = 0
) -> Interval:
    """The mean over groups (datasets) of each group's mean over pipelines and questions, and
    its percentile bootstrap interval at ``level``."""
    value = float(np.mean([np.atleast_2d(np.asarray(g, dtype=float)).mean() for g in groups]))
    boot = _group_means(groups, np.random.default_rng(seed), resamples)
    tail = (1 - level) / 2
    lo, hi = np.quantile(boot, [tail, 1 - tail])
    return Interval(value, float(lo), float(hi))


def paired(
    a: np.ndarray, b: np.ndarray, resamples: int = 1000, level: float = 0.95, seed: int = 0
) -> Difference:
    """Mean of ``a - b`` over the same questions (rows: pipelines, resampled together), its
    paired bootstrap interval and two-sided p-value."""
    diff = np.atleast_2d(np.asarray(a, dtype=float) - np.asarray(b, dtype=float))
    value = float(diff.mean())
    boot = _group_means([diff], np.random.default_rng(seed), resamples)
    tail = (1 - level) / 2
    lo, hi = np.quantile(boot, [tail, 1 - tail])
    far = np.abs(boot - value) >= abs(value) - 1e-12
    p = float((1 + far.sum()) / (1 + resamples)) if value != 0 else 1.0
    return Difference(value, float(lo), float(hi), min(p, 1.0))
