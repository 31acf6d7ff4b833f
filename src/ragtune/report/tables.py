"""Result tables: one row per (pipeline, strategy, dataset, split), from the metrics files."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from ragtune.io import atomic_path, read_json

# The paper's row labels and order (Figure 3).
STRATEGY_LABELS = {
    "no_ft": "No Ft.",
    "ft_embed": "Ft. Embed.",
    "ft_gen": "Ft. Gen.",
    "indp": "Indp.",
    "two_phase": "2-Phase",
    "rag_seq": "RAG-Seq.",
    "rag_tok": "RAG-Tok.",
}

COLUMNS = [
    "pipeline", "strategy", "dataset", "split", "EM", "F1", "Recall@k", "k", "Time (h)",
    "Grid cost (device-h)", "Embed LR", "Gen LR", "n",
]  # fmt: skip


def device_hours(info: dict) -> float:
    """A training job's cost: seconds x GPUs, or x CPU threads on a CPU-only host."""
    units = info.get("gpu_count") or info.get("cpu_threads") or 1
    return info["seconds"] * units / 3600


def collect(entries: Iterable[dict]) -> pd.DataFrame:
    """``entries``: one dict per table row with pipeline, strategy, dataset, split, lrs,
    metrics (path), train_infos (the chosen run's training records: Indp. has the embedder's
    and the generator's, so its time is their sum, as in the paper) and grid_infos (every
    training record of the grid search behind the row)."""
    rows = []
    for e in entries:
        m = read_json(e["metrics"])
        chosen = [read_json(p) for p in e.get("train_infos", [])]
        grid = [read_json(p) for p in e.get("grid_infos", [])]
        lrs = (
            {}
            if e.get("lrs", "base") == "base"
            else dict((part[0], part[1:]) for part in e["lrs"].split("_"))
        )
        rows.append(
            {
                "pipeline": e["pipeline"],
                "strategy": STRATEGY_LABELS.get(e["strategy"], e["strategy"]),
                "dataset": e["dataset"],
                "split": e["split"],
                "EM": m["em"],
                "F1": m["f1"],
                "Recall@k": m["recall_at_k"],
                "k": m["k"],
                "Time (h)": round(sum(i["seconds"] for i in chosen) / 3600, 4),
                "Grid cost (device-h)": round(sum(device_hours(i) for i in grid), 4),
                "Embed LR": lrs.get("e", "N/A"),
                "Gen LR": lrs.get("g", "N/A"),
                "n": m["n"],
            }
        )
    df = pd.DataFrame(rows, columns=COLUMNS)
    order = {label: i for i, label in enumerate(STRATEGY_LABELS.values())}
    df["_o"] = df["strategy"].map(order)
    return df.sort_values(["split", "pipeline", "_o", "dataset"], kind="stable").drop(columns="_o")


def paper_layout(df: pd.DataFrame, split: str) -> pd.DataFrame:
    """Strategies as rows and (dataset, metric) as columns, as in the paper's Figure 3."""
    part = df[df["split"] == split]
    wide = part.pivot_table(
        index=["pipeline", "strategy"],
        columns="dataset",
        values=["EM", "F1", "Recall@k", "Time (h)", "Grid cost (device-h)"],
        sort=False,
    )
    wide = wide.swaplevel(0, 1, axis=1).sort_index(axis=1, level=0, sort_remaining=False)
    order = {label: i for i, label in enumerate(STRATEGY_LABELS.values())}
    return wide.sort_index(key=lambda idx: idx.map(lambda v: order.get(v, v)))


def write(df: pd.DataFrame, csv_path: str | Path, md_path: str | Path) -> None:
    with atomic_path(csv_path) as tmp:
        df.to_csv(tmp, index=False)
    parts = []
    for split in df["split"].unique():
        wide = paper_layout(df, split)
        wide.columns = [f"{d} {m}" for d, m in wide.columns]
        parts.append(
            f"### {split}\n\n" + wide.reset_index().to_markdown(index=False, floatfmt=".1f")
        )
    with atomic_path(md_path) as tmp:
        Path(tmp).write_text("\n\n".join(parts) + "\n", encoding="utf-8")
