"""The result tables, built from the metrics files and the job records behind every row.

``collect`` reads one entry per (dataset, pipeline, strategy, split) row into two frames: the
runs (metrics, chosen LRs, time) and the jobs (every training and evaluation job behind a row,
with what it cost). Every table the report shows is a view of these two frames:

- ``per_pipeline``: the paper's Figures 6/7, one block per dataset;
- ``averaged``: the paper's Figure 3, the mean over pipelines (validation, and test);
- ``cost``: device-hours of the chosen runs and of the whole LR search, per strategy.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ragtune.io import atomic_path
from ragtune.plan import STRATEGIES, parse_lrs
from ragtune.report import intervals
from ragtune.report.records import job_cost

# The paper's row labels, in its order (Figure 3).
STRATEGY_LABELS = {name: s.label for name, s in STRATEGIES.items() if s.row}
ORDER = {label: i for i, label in enumerate(STRATEGY_LABELS.values())}

RUN_COLUMNS = [
    "dataset", "split", "pipeline", "embedder", "generator", "strategy", "EM", "F1",
    "Recall@k", "k", "n", "Time (h)", "Grid cost (device-h)", "Unit", "Grid points",
    "Embed LR", "Gen LR", "LR at grid edge",
]  # fmt: skip
METRICS = ["EM", "F1", "Recall@k"]
METRIC_FIELDS = {"EM": "em", "F1": "f1", "Recall@k": "recall_at_k"}


@dataclass
class Results:
    runs: pd.DataFrame  # one row per (dataset, split, pipeline, strategy)
    # one row per (row, job): role is chosen | grid_train | grid_eval | grid_refresh
    jobs: pd.DataFrame
    # per-question scores of each row: (dataset, split, pipeline, strategy label) -> frame
    # (averaged over the row's seeds)
    questions: dict = field(default_factory=dict)
    # each row's scores per seed: the same key -> frame (seeds x METRICS)
    seeds: dict = field(default_factory=dict)

    @property
    def seeded(self) -> bool:
        """Whether any row averages more than one seed's run."""
        return any(len(frame) > 1 for frame in self.seeds.values())


def _grid_edges(lrs: str, grid: list[dict]) -> str:
    """The sides (embed, gen) whose chosen LR is the smallest or largest of the LRs searched
    for it: the best LR may then lie outside the grid."""
    chosen, edges = parse_lrs(lrs), []
    for key, side in (("e", "embed"), ("g", "gen")):
        searched = {float(parse_lrs(p["lrs"])[key]) for p in grid if key in parse_lrs(p["lrs"])}
        edge = key in chosen and float(chosen[key]) in (
            min(searched, default=0),
            max(searched, default=0),
        )
        if len(searched) > 1 and edge:
            edges.append(side)
    return ", ".join(edges)


def _lr_columns(lrs: str) -> dict[str, str]:
    parts = parse_lrs(lrs)
    return {"Embed LR": parts.get("e", "N/A"), "Gen LR": parts.get("g", "N/A")}


def collect(entries: Iterable[dict]) -> Results:
    """``entries``, one per table row: dataset, split, pipeline, embedder, generator, strategy,
    lrs, metrics (the path of its run's metrics.json, or one per seed), ``chosen`` (the jobs
    that trained the row's model: Indp. has the embedder's and the generator's, 2-Phase both
    phases', so time is their sum, as in the paper's Figure 3; every seed's) and ``grid`` (one
    {train, eval} pair per run of the search behind the row, every seed's). A job is
    {record: its train.json or metrics.json, benchmark: Snakemake's benchmark file}."""
    runs, jobs, questions, seeds = [], [], {}, {}
    for e in entries:
        recorded, scores = intervals.seed_runs(e["metrics"])
        per_seed = pd.DataFrame(
            [{name: m[f] for name, f in METRIC_FIELDS.items()} for m in recorded]
        )
        m = recorded[0]  # its k and n, the same for every seed
        key = {"dataset": e["dataset"], "pipeline": e["pipeline"]}
        key["strategy"] = STRATEGY_LABELS.get(e["strategy"], e["strategy"])
        questions[(e["dataset"], e["split"], e["pipeline"], key["strategy"])] = scores
        seeds[(e["dataset"], e["split"], e["pipeline"], key["strategy"])] = per_seed
        costs = [("chosen", job_cost(**j)) for j in e.get("chosen", [])]
        for point in e.get("grid", []):
            costs += [("grid_train", job_cost(**point["train"]))]
            costs += [("grid_eval", job_cost(**point["eval"]))]
            # a run that trained its document encoder re-embedded the corpus for its index
            costs += [("grid_refresh", job_cost(**job)) for job in point.get("refresh", [])]
        units = {c.unit for _, c in costs}
        runs.append(
            {
                **key,
                "split": e["split"],
                "embedder": e["embedder"],
                "generator": e["generator"],
                **per_seed.mean().to_dict(),
                # the spread over seeds (the sample standard deviation; NaN for one seed)
                **{f"{name} sd": per_seed[name].std() for name in METRICS},
                "Seeds": len(per_seed),
                "k": m["k"],
                "n": m["n"],
                # one run's: the chosen jobs of every seed, divided by the seeds
                "Time (h)": sum(c.hours for role, c in costs if role == "chosen") / len(per_seed),
                "Grid cost (device-h)": sum(
                    c.device_hours for role, c in costs if role != "chosen"
                ),
                "Re-embedding (device-h)": sum(
                    c.device_hours for role, c in costs if role == "grid_refresh"
                ),
                "Unit": "/".join(sorted(units)) or "N/A",
                "Grid points": len(e.get("grid", [])) // len(per_seed),
                **_lr_columns(e.get("lrs", "base")),
                "LR at grid edge": _grid_edges(e.get("lrs", "base"), e.get("grid", [])),
            }
        )
        if e["split"] == "validation":  # the same jobs stand behind every split's row
            jobs += [
                {**key, "role": role, "benchmark": c.benchmark, "seconds": c.seconds,
                 "unit": c.unit, "device_h": c.device_hours}
                for role, c in costs
            ]  # fmt: skip
    columns = RUN_COLUMNS
    if any(r["Seeds"] > 1 for r in runs):
        columns = [*RUN_COLUMNS[:9], *(f"{m} sd" for m in METRICS), "Seeds", *RUN_COLUMNS[9:]]
    if any(r["Re-embedding (device-h)"] for r in runs):  # training.embedder.train_documents
        at = columns.index("Grid cost (device-h)") + 1
        columns = [*columns[:at], "Re-embedding (device-h)", *columns[at:]]
    runs_df = pd.DataFrame(runs, columns=columns)
    runs_df = in_paper_order(runs_df, ["split", "dataset", "pipeline"])
    jobs_df = pd.DataFrame(
        jobs,
        columns=["dataset", "pipeline", "strategy", "role", "benchmark", "seconds", "unit",
                 "device_h"],
    )  # fmt: skip
    return Results(runs_df, jobs_df, questions, seeds)


def in_paper_order(df: pd.DataFrame, before: list[str]) -> pd.DataFrame:
    """Rows in the paper's strategy order, after the ``before`` columns."""
    df = df.assign(_o=df["strategy"].map(ORDER))
    return df.sort_values([*before, "_o"], kind="stable").drop(columns="_o").reset_index(drop=True)


def recall_label(runs: pd.DataFrame) -> str:
    ks = sorted(set(runs["k"]))
    return f"Recall@{ks[0]}" if len(ks) == 1 else "Recall@k"


def per_pipeline(runs: pd.DataFrame, split: str = "validation") -> pd.DataFrame:
    """The paper's Figures 6/7: every (embedder, generator, strategy), per dataset."""
    part = runs[runs["split"] == split]
    ends = ("", " lo", " hi", " sd")
    scores = [c for m in METRICS for c in (m + end for end in ends) if c in part.columns]
    seeds = ["Seeds"] if "Seeds" in part.columns else []
    cols = ["dataset", "pipeline", "embedder", "generator", "strategy", *scores, *seeds,
            "Time (h)", "Embed LR", "Gen LR", "LR at grid edge"]  # fmt: skip
    out = part[cols].rename(columns=_recall_names(part))
    return out.reset_index(drop=True)


def _recall_names(part: pd.DataFrame) -> dict[str, str]:
    label = recall_label(part)
    return {f"Recall@k{end}": f"{label}{end}" for end in ("", " lo", " hi", " sd")}


def add_intervals(res: Results, boot: dict, seed: int) -> None:
    """``<metric> lo`` / ``<metric> hi`` on every run: the bootstrap interval over its
    questions (``boot``: resamples and level, the config's ``evaluation.bootstrap``)."""

    def scores(row, metric):
        key = (row["dataset"], row["split"], row["pipeline"], row["strategy"])
        return [res.questions[key][metric].to_numpy()[None, :]]

    keys = ["dataset", "split", "pipeline", "strategy"]
    res.runs = intervals.with_intervals(res.runs, scores, keys, METRICS, boot, seed)


def averaged_intervals(
    table: pd.DataFrame, res: Results, split: str, boot: dict, seed: int
) -> pd.DataFrame:
    """:func:`averaged` with intervals: a strategy's pipelines answer the same questions, so
    they are resampled together."""
    pipelines = res.runs[res.runs["split"] == split].groupby(["dataset", "strategy"])["pipeline"]
    members = {k: list(v) for k, v in pipelines}
    label = recall_label(res.runs[res.runs["split"] == split])

    def scores(row, metric):
        frames = [
            res.questions[(row["dataset"], split, p, row["strategy"])]
            for p in members[(row["dataset"], row["strategy"])]
        ]
        column = "Recall@k" if metric == label else metric
        return [intervals.aligned(frames, column, f"{row['dataset']} {row['strategy']}")]

    # the split in the seed: the validation and test tables do not share their resamples
    split_seed = seed + sum(map(ord, split))
    keys = ["dataset", "strategy"]
    return intervals.with_intervals(table, scores, keys, ["EM", "F1", label], boot, split_seed)


def significance(res: Results, boot: dict, seed: int) -> pd.DataFrame:
    """Paired comparisons on validation (:func:`ragtune.report.intervals.significance`)."""
    scores = {
        (d, p, st): frame for (d, sp, p, st), frame in res.questions.items() if sp == "validation"
    }
    strategies = list(dict.fromkeys(res.runs["strategy"]))
    return intervals.significance(scores, strategies, boot, seed)


def significance_shown(sig: pd.DataFrame) -> pd.DataFrame:
    """Differences as ``x [lo, hi]``, p-values to 3 decimals, distinguishable as yes / no."""
    out = intervals.shown(sig, ["EM diff", "F1 diff"])
    for metric in ("EM", "F1"):
        out[f"{metric} p"] = sig[f"{metric} p"].map(lambda p: f"{p:.3f}")
        out[f"{metric} distinguishable"] = sig[f"{metric} distinguishable"].map(
            {True: "yes", False: "no"}
        )
    return out


def averaged(runs: pd.DataFrame, split: str = "validation") -> pd.DataFrame:
    """The paper's Figure 3: each strategy's mean over pipelines, per dataset (long form)."""
    part = runs[runs["split"] == split]
    out = (
        part.groupby(["dataset", "strategy"], sort=False)[
            [*METRICS, "Time (h)", "Grid cost (device-h)"]
        ]
        .mean()
        .reset_index()
    )
    out.insert(2, "pipelines", part.groupby(["dataset", "strategy"], sort=False).size().values)
    return in_paper_order(out, ["dataset"]).rename(columns={"Recall@k": recall_label(part)})


def averaged_seed_spread(table: pd.DataFrame, res: Results, split: str) -> pd.DataFrame:
    """:func:`averaged` with ``<metric> sd`` after each metric's interval, where runs have
    several seeds: the spread over seeds of the mean over pipelines (each seed's pipelines
    averaged first, then the sample standard deviation over seeds)."""
    if not res.seeded:
        return table
    label = recall_label(res.runs[res.runs["split"] == split])
    out = table.copy()
    for metric, column in (("EM", "EM"), ("F1", "F1"), ("Recall@k", label)):
        sds = []
        for _, row in table.iterrows():
            frames = [
                frame[metric].to_numpy()
                for (d, sp, _p, st), frame in res.seeds.items()
                if (d, sp, st) == (row["dataset"], split, row["strategy"])
            ]
            spread = pd.Series(sum(frames) / len(frames)).std() if frames else float("nan")
            sds.append(spread)
        after = f"{column} hi" if f"{column} hi" in out.columns else column
        out.insert(out.columns.get_loc(after) + 1, f"{column} sd", sds)
    return out


def wide(long: pd.DataFrame, index: list[str], values: list[str]) -> pd.DataFrame:
    """Datasets side by side, as the paper prints them: columns are '<dataset> <metric>'."""
    datasets = list(dict.fromkeys(long["dataset"]))
    parts = [
        long[long["dataset"] == d].set_index(index)[values].add_prefix(f"{d} ") for d in datasets
    ]
    out = pd.concat(parts, axis=1).reset_index()
    return in_paper_order(out, [c for c in index if c != "strategy"])


def cost(res: Results) -> pd.DataFrame:
    """Device-hours per strategy and dataset, and over all datasets: the chosen run(s), and the
    whole LR search (every grid point's training and validation evaluation, and with
    train_documents its re-embedding of the corpus). A job that several rows share (an
    embedder trained once for every pipeline that uses it) counts once."""
    jobs = res.jobs
    rows = []
    strategies = list(dict.fromkeys(res.runs["strategy"]))
    datasets = list(dict.fromkeys(res.runs["dataset"]))
    for strategy in strategies:
        for dataset in [*datasets, "all"]:
            sel = jobs["strategy"] == strategy
            if dataset != "all":
                sel &= jobs["dataset"] == dataset
            part = jobs[sel]

            def hours(role, part=part):
                unique = part[part["role"] == role].drop_duplicates("benchmark")
                return float(unique["device_h"].sum()), len(unique)

            chosen, _ = hours("chosen")
            train, n_train = hours("grid_train")
            evaluation, _ = hours("grid_eval")
            refresh, _ = hours("grid_refresh")
            rows.append(
                {
                    "strategy": strategy,
                    "dataset": dataset,
                    "Unit": "/".join(sorted(set(part["unit"]))) or "N/A",
                    "Chosen run(s) (device-h)": chosen,
                    "Grid training jobs": n_train,
                    "Grid training (device-h)": train,
                    "Grid evaluation (device-h)": evaluation,
                    "Grid re-embedding (device-h)": refresh,
                    "Grid total (device-h)": train + evaluation + refresh,
                }
            )
    out = pd.DataFrame(rows)
    if not (jobs["role"] == "grid_refresh").any():  # no training.embedder.train_documents
        out = out.drop(columns="Grid re-embedding (device-h)")
    out["_d"] = out["dataset"].map({d: i for i, d in enumerate([*datasets, "all"])})
    out = in_paper_order(out, ["_d"]).drop(columns="_d")
    return out


def _formatted(df: pd.DataFrame) -> pd.DataFrame:
    """Scores to 0.1 as the paper prints them; hours to 0.001, since a demo's are hundredths.
    A paper column is blank where the paper has no number."""
    out = df.copy()
    for col in out.columns:
        if pd.api.types.is_float_dtype(out[col]):
            hours = "(h)" in str(col) or "device-h" in str(col)
            out[col] = out[col].map(lambda v, d=3 if hours else 1: f"{v:.{d}f}")
            if str(col).endswith(" paper"):
                # a strategy beyond the paper (PDist, LSR, LOOP) has no paper number
                out.loc[df[col].isna(), col] = ""
    return out


def write_table(
    df: pd.DataFrame,
    stem: str | Path,
    *,
    title: str,
    caption: str,
    shown: pd.DataFrame | None = None,
) -> list[Path]:
    """``stem``.csv (full precision), .md and .tex (rounded, of ``shown`` where a table reads
    better in another layout than its CSV), each written atomically."""
    stem = Path(stem)
    paths = [stem.with_suffix(s) for s in (".csv", ".md", ".tex")]
    shown = _formatted(df if shown is None else shown)
    with atomic_path(paths[0]) as tmp:
        df.to_csv(tmp, index=False)
    with atomic_path(paths[1]) as tmp:
        body = shown.to_markdown(index=False, disable_numparse=True)
        Path(tmp).write_text(f"### {title}\n\n{body}\n\n{caption}\n", encoding="utf-8")
    with atomic_path(paths[2]) as tmp:
        latex = shown.to_latex(index=False, caption=f"{title}. {caption}", escape=True)
        Path(tmp).write_text(latex, encoding="utf-8")
    return paths
