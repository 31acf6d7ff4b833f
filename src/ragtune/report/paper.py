"""The paper's published numbers, and ours beside them.

``lawton2025_results.csv`` ships the numbers of the paper's Figures 3, 6 and 7 (validation).
At paper scale (config/paper.yaml) the comparison is a reproduction check; on the demo's small
models and samples it is context only, and the labels say which is which.
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

from ragtune.plan import STRATEGIES
from ragtune.report.tables import STRATEGY_LABELS, in_paper_order

PAPER_SETUP = "Lawton et al. 2025: MiniLM/MPNet x LLaMA3-8B/Mistral-7B, paper scale"
COLUMNS = {"EM": "EM", "F1": "F1", "recall_at_5": "Recall@5", "time_h": "Time (h)"}


def load() -> pd.DataFrame:
    """The paper's numbers, one row per (figure, dataset, embedder, generator, strategy)."""
    with resources.files("ragtune.report").joinpath("lawton2025_results.csv").open() as fh:
        return pd.read_csv(fh, comment="#", dtype={"embed_lr": str, "gen_lr": str})


def paper_pipeline_rows(paper: pd.DataFrame, name: str | None) -> pd.DataFrame:
    """Figure 3's averages (``name`` None), or one of Figures 6/7's pipelines, e.g.
    'MiniLM/LLaMA3-8b', relabelled in ragtune's columns and strategy labels."""
    if name is None:
        part = paper[paper["figure"] == 3]
    else:
        embedder, _, generator = name.partition("/")
        part = paper[(paper["embedder"] == embedder) & (paper["generator"] == generator)]
        if part.empty:
            known = sorted(
                {
                    f"{e}/{g}"
                    for e, g in zip(paper.embedder, paper.generator, strict=True)
                    if e != "average"
                }
            )
            raise ValueError(f"no paper pipeline {name!r}; the paper has {', '.join(known)}")
    out = part.rename(columns=COLUMNS)[["dataset", "strategy", *COLUMNS.values()]].copy()
    out["strategy"] = out["strategy"].map(STRATEGY_LABELS)
    return out


def comparison(
    ours: pd.DataFrame,
    ours_setup: str,
    matches: dict[str, str] | None = None,
    ours_per_pipeline: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Long form: (setup, source, dataset, strategy) x (EM, F1, Recall@5, Time (h)).

    ``ours`` is our Figure 3 view (``tables.averaged``) beside the paper's Figure 3. Each
    pipeline in ``matches`` (ours -> the paper's 'Embedder/Generator') also sits beside that
    pipeline's row of Figures 6/7, taken from ``ours_per_pipeline`` (``tables.per_pipeline``).
    Only datasets we ran are kept.
    """
    paper = load()
    datasets = set(ours["dataset"])
    parts = []

    def add(frame, source, setup, comparing):
        # our Recall@k sits under the paper's Recall@5; the setup label says our k
        frame = frame[frame["dataset"].isin(datasets)].rename(
            columns=lambda c: "Recall@5" if str(c).startswith("Recall@") else c
        )
        cols = ["dataset", "strategy", *COLUMNS.values()]
        parts.append(frame[cols].assign(source=source, setup=setup, comparing=comparing))

    add(ours, "ragtune", ours_setup, "mean over pipelines")
    add(paper_pipeline_rows(paper, None), "paper", PAPER_SETUP, "mean over pipelines")
    for pipeline, name in (matches or {}).items():
        mine = ours_per_pipeline[ours_per_pipeline["pipeline"] == pipeline]
        add(mine, "ragtune", f"{ours_setup}; pipeline {pipeline}", name)
        add(paper_pipeline_rows(paper, name), "paper", f"Lawton et al. 2025: {name}", name)
    out = pd.concat(parts, ignore_index=True)
    out = out[["comparing", "source", "setup", "dataset", "strategy", *COLUMNS.values()]]
    return in_paper_order(out, ["comparing", "dataset"]).reset_index(drop=True)


def side_by_side(comp: pd.DataFrame) -> pd.DataFrame:
    """One row per (comparing, dataset, strategy); each metric's ragtune and paper columns
    next to each other ("EM ragtune", "EM paper", ...), for reading by eye. A strategy beyond
    the paper (PDist, LSR, LOOP) has its ragtune columns only: its paper cells stay empty."""
    keys = ["comparing", "dataset", "strategy"]
    out = comp.pivot_table(index=keys, columns="source", values=list(COLUMNS.values()),
                           sort=False)  # fmt: skip
    out = out.reindex(columns=[(m, s) for m in COLUMNS.values() for s in ("ragtune", "paper")])
    out.columns = [f"{m} {s}" for m, s in out.columns]
    return in_paper_order(out.reset_index(), ["comparing", "dataset"])


def beyond_note(comp: pd.DataFrame) -> str:
    """The caption's word on rows the paper has no numbers for ('' when there are none)."""
    beyond = [s.label for s in STRATEGIES.values() if not s.in_paper]
    shown = [label for label in beyond if label in set(comp["strategy"])]
    if not shown:
        return ""
    return f"{', '.join(shown)}: beyond the paper, which has no numbers for them. "
