"""Bootstrap intervals and paired tests against plain reference code and simulations."""

import numpy as np
import pandas as pd
import pytest

from ragtune.report import intervals, uncertainty


def _reference_interval(groups, resamples, level, seed):
    """The textbook loop: per resample and dataset, draw n question indices with replacement
    (the same draws, in the same order, as the vectorised code), average."""
    rng = np.random.default_rng(seed)
    draws = [rng.integers(0, np.shape(g)[1], size=(resamples, np.shape(g)[1])) for g in groups]
    stats = []
    for r in range(resamples):
        per_dataset = []
        for g, idx in zip(groups, draws, strict=True):
            per_dataset.append(np.mean([[row[i] for i in idx[r]] for row in g]))
        stats.append(np.mean(per_dataset))
    tail = (1 - level) / 2
    return np.quantile(stats, [tail, 1 - tail])


def test_interval_matches_the_reference_loop():
    rng = np.random.default_rng(3)
    groups = [rng.random((2, 15)), rng.integers(0, 2, (3, 9)).astype(float)]
    ci = uncertainty.interval(groups, resamples=200, level=0.9, seed=11)
    lo, hi = _reference_interval(groups, 200, 0.9, 11)
    assert (ci.lo, ci.hi) == pytest.approx((lo, hi))
    assert ci.value == pytest.approx(np.mean([g.mean() for g in groups]))


def test_paired_p_value_matches_the_reference():
    rng = np.random.default_rng(5)
    a, b = rng.random((1, 40)), rng.random((1, 40))
    d = uncertainty.paired(a, b, resamples=500, seed=2)
    diff = (a - b)[0]
    idx = np.random.default_rng(2).integers(0, 40, size=(500, 40))
    boot = np.array([diff[i].mean() for i in idx])
    p = (1 + np.sum(np.abs(boot - diff.mean()) >= abs(diff.mean()))) / 501
    assert d.value == pytest.approx(diff.mean()) and d.p == pytest.approx(p)


def test_95_percent_intervals_cover_the_true_mean_95_percent_of_the_time():
    """A metric with a known mean (EM of a model right 60% of the time on 200 questions):
    over 1,000 simulated question sets the interval covers 0.6 in 93-97% of them."""
    rng = np.random.default_rng(0)
    hits = 0
    for sim in range(1000):
        scores = (rng.random((1, 200)) < 0.6).astype(float)
        ci = uncertainty.interval([scores], resamples=1000, seed=sim)
        hits += ci.lo <= 0.6 <= ci.hi
    assert 930 <= hits <= 970, hits


def test_strategies_that_differ_by_construction_are_told_apart():
    rng = np.random.default_rng(1)
    worse = (rng.random((2, 300)) < 0.3).astype(float)
    better = np.maximum(worse, (rng.random((2, 300)) < 0.3).astype(float))  # never worse
    d = uncertainty.paired(better, worse, resamples=1000, seed=0)
    assert d.value > 0.15 and d.lo > 0 and d.p < 0.01


def test_identical_strategies_are_not():
    same = (np.random.default_rng(2).random((1, 100)) < 0.5).astype(float)
    d = uncertainty.paired(same, same.copy(), resamples=500, seed=0)
    assert (d.value, d.lo, d.hi, d.p) == (0.0, 0.0, 0.0, 1.0)


def _frame(values):
    ids = [f"q{i}" for i in range(len(values))]
    return pd.DataFrame({"EM": values, "F1": values, "Recall@k": values}, index=ids)


def test_the_significance_table_compares_with_the_baselines_and_the_best():
    rng = np.random.default_rng(4)
    base = (rng.random(120) < 0.2) * 100.0
    good = np.maximum(base, (rng.random(120) < 0.5) * 100.0)
    scores = {
        ("hotpotqa", p, strategy): _frame(values)
        for p in ("p", "q")
        for strategy, values in (("No Ft.", base), ("Indp.", good), ("RAG-Tok.", good.copy()))
    }
    table = intervals.significance(
        scores, ["No Ft.", "Indp.", "RAG-Tok."], {"resamples": 500, "level": 0.95}, seed=13
    )
    row = table.set_index(["pipeline", "strategy", "versus"])
    assert row.loc[("p", "Indp.", "No Ft."), "EM distinguishable"]
    assert not row.loc[("p", "RAG-Tok.", "Indp."), "EM distinguishable"]
    assert row.loc[("p", "RAG-Tok.", "Indp."), "EM p"] == 1.0
    assert set(table["pipeline"]) == {"p", "q", "all"} and (table["n"] == 120).all()
    # each pair once: Indp. against No Ft., not No Ft. against Indp. as well
    pairs = set(zip(table["strategy"], table["versus"], strict=True))
    assert ("Indp.", "No Ft.") in pairs and ("No Ft.", "Indp.") not in pairs


def test_tables_show_value_and_interval_together():
    df = pd.DataFrame({"strategy": ["A"], "EM": [12.34], "EM lo": [10.0], "EM hi": [15.55]})
    assert intervals.shown(df, ["EM"]).to_dict("records") == [
        {"strategy": "A", "EM": "12.3 [10.0, 15.6]"}
    ]
