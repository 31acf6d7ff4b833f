"""The report's figures, each saved as PNG and SVG with a caption naming the config behind it."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on a cluster node
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from ragtune.io import atomic_path, read_json  # noqa: E402
from ragtune.plan import parse_lrs, with_seed  # noqa: E402
from ragtune.report.intervals import seed_runs  # noqa: E402
from ragtune.report.tables import ORDER  # noqa: E402
from ragtune.report.uncertainty import interval  # noqa: E402

# The paper's scores: its Recall is at k = 5 (ours at the config's k, named in our columns).
SCORES = ["EM", "F1", "Recall@5"]


CAPTION_PT = 7
# Characters per inch of a 7-pt caption line: DejaVu Sans averages about 0.55 em per character.
CAPTION_CHARS_PER_INCH = 72 / (0.55 * CAPTION_PT) * 0.9


def place_caption(fig, caption: str):
    """The caption wrapped to the figure's width under the axes, with the axes laid out above
    it: a caption that grows (more notes, more pipelines) pushes the axes up instead of
    running over their tick labels."""
    import textwrap

    width, height = fig.get_size_inches()
    lines = textwrap.wrap(caption, max(40, int(width * CAPTION_CHARS_PER_INCH)))
    text = fig.text(
        0.01, 0.01, "\n".join(lines), ha="left", va="bottom", fontsize=CAPTION_PT, color="0.3"
    )
    line_height = CAPTION_PT * 1.3 / 72  # inches
    bottom = min(0.6, (len(lines) * line_height + 0.15) / height)
    fig.tight_layout(rect=(0, bottom, 1, 1))
    return text


def save(fig, stem: str | Path, caption: str) -> list[Path]:
    """Caption under the axes, then ``stem``.png and ``stem``.svg, each written atomically."""
    place_caption(fig, caption)
    paths = []
    for ext in ("png", "svg"):
        path = Path(stem).with_suffix(f".{ext}")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=ext, dpi=120)
        paths.append(path)
    plt.close(fig)
    return paths


def _panels(n: int, cols: int, width: float, height: float):
    """A grid of ``n`` panels, ``cols`` wide at most; the unused cells of its last row hidden."""
    cols = min(n, cols) or 1
    rows = max(math.ceil(n / cols), 1)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    return fig, axes.flat


def _scores(df: pd.DataFrame) -> list[str]:
    """EM, F1 and Recall@k at the k of the run (the demo's is 3, the paper's 5)."""
    return ["EM", "F1"] + [c for c in df.columns if str(c).startswith("Recall@")][:1]


def strategy_bars(
    averaged: pd.DataFrame, stem, caption: str, errors: dict | None = None
) -> list[Path]:
    """The paper's Figure 2: EM, F1 and Recall@k per strategy as grouped bars, with training
    time on its own axis (hours and percentages do not share a scale), averaged over the
    datasets and pipelines of ``averaged`` (``tables.averaged`` on validation). ``errors``:
    {(strategy, metric): Interval}, drawn as error bars."""
    scores = _scores(averaged)
    df = averaged.groupby("strategy", sort=False)[[*scores, "Time (h)"]].mean()
    df = df.sort_index(key=lambda idx: idx.map(ORDER))
    fig, ax = plt.subplots(figsize=(9, 4.5))
    n = len(scores) + 1
    width = 0.8 / n
    x = range(len(df))
    for i, col in enumerate(scores):
        yerr = None
        if errors:
            metric = "Recall@k" if col.startswith("Recall@") else col
            cis = [errors[(s, metric)] for s in df.index]
            yerr = [[v - c.lo for v, c in zip(df[col], cis, strict=True)],
                    [c.hi - v for v, c in zip(df[col], cis, strict=True)]]  # fmt: skip
        ax.bar(
            [v + (i - n / 2 + 0.5) * width for v in x], df[col], width, label=col, yerr=yerr,
            capsize=2, error_kw={"elinewidth": 0.8},
        )  # fmt: skip
    time_ax = ax.twinx()
    time_ax.bar(
        [v + (n / 2 - 0.5) * width for v in x], df["Time (h)"], width, color="0.35",
        label="Time (h)",
    )  # fmt: skip
    ax.set_xticks(list(x), df.index)
    ax.set_ylabel("score (%)")
    time_ax.set_ylabel("training time of the chosen run(s) (h)")
    ax.set_title("Validation metrics and time to fine-tune, by strategy")
    handles = ax.get_legend_handles_labels()
    extra = time_ax.get_legend_handles_labels()
    ax.legend(handles[0] + extra[0], handles[1] + extra[1], loc="upper left", fontsize=8)
    return save(fig, stem, caption)


def lr_sensitivity(
    selections: Iterable[dict], stem, caption: str, boot: dict | None = None, seed: int = 0
) -> list[Path]:
    """The validation metric against the LR for every grid: one panel per searched strategy,
    one line per (dataset, pipeline), a star on the recorded winner. ``selections``: {dataset,
    pipeline, strategy, path}, path being select_lr's selected.json (``scores``: the grid).
    With ``boot``, each point has its bootstrap interval over questions as an error bar (read
    from the grid point's predictions, ``<strategy>/<lrs>/validation/`` beside the file)."""
    panels: dict[str, list] = {}
    for s in selections:
        sel = read_json(s["path"])
        # 2-Phase's phase 2 (e<lr>_g<phase-1 winner>) varies the embedder LR; joint grids of
        # their own vary both, and are drawn against the embedder LR, one line per gen LR.
        points: dict[str, list] = {}
        for lrs, score in sel["scores"].items():
            parts = {k: float(v) for k, v in parse_lrs(lrs).items()}
            lr_key = "e" if "e" in parts else "g"
            other = f", g={parts['g']:.0e}" if lr_key == "e" and len(parts) > 1 else ""
            ci = None
            if boot:
                # the point's runs: one, or one per seed (their per-question mean)
                _, mean = seed_runs(
                    [
                        Path(s["path"]).parent / with_seed(lrs, seed) / "validation/metrics.json"
                        for seed in sel.get("seeds") or [None]
                    ]
                )
                column = {"em": "EM", "f1": "F1", "recall_at_k": "Recall@k"}[sel["metric"]]
                groups = [mean[column].to_numpy()[None, :]]
                ci = interval(groups, boot["resamples"], boot["level"], seed)
            points.setdefault(other, []).append((parts[lr_key], score, lrs == sel["winner"], ci))
        for other, pts in points.items():
            label = f"{s['dataset']} / {s['pipeline']}{other}"
            pts = sorted(pts, key=lambda p: p[0])
            panels.setdefault(s["strategy"], []).append((label, pts, lr_key, sel))
    fig, axes = _panels(len(panels), 3, 4.2, 3.4)
    for ax, (strategy, lines) in zip(axes, panels.items(), strict=False):
        for label, pts, _, _ in lines:
            (line,) = ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
            if all(p[3] is not None for p in pts):
                ax.errorbar(
                    [p[0] for p in pts], [p[1] for p in pts],
                    yerr=[[p[1] - p[3].lo for p in pts], [p[3].hi - p[1] for p in pts]],
                    fmt="none", ecolor=line.get_color(), capsize=2, elinewidth=0.8,
                )  # fmt: skip
            for lr, score, won, _ in pts:
                if won:  # the winner select_lr recorded
                    ax.plot(lr, score, marker="*", markersize=14, color=line.get_color())
        metric = lines[0][3]["metric"].upper().replace("RECALL_AT_K", "Recall@k")
        ax.set_xscale("log")
        ax.set_xlabel(("embedder" if lines[0][2] == "e" else "generator") + " learning rate")
        ax.set_ylabel(f"validation {metric} (%)")
        ax.set_title(strategy)
        ax.legend(fontsize=7)
    fig.suptitle("Sensitivity to the learning rate (validation)")
    return save(fig, stem, caption)


def loss_curves(curves: Iterable[dict], stem, caption: str) -> list[Path]:
    """Training loss per optimiser step of every chosen run, and its validation loss where the
    run recorded one (dashed, the paper's Figure 4): one panel per (dataset, pipeline).
    ``curves``: {dataset, pipeline, label, path} where path is a run's loss.csv."""
    panels: dict[str, list] = {}
    for c in curves:
        panels.setdefault(f"{c['dataset']} / {c['pipeline']}", []).append(c)
    fig, axes = _panels(len(panels), 2, 6, 3.8)
    for ax, (title, items) in zip(axes, panels.items(), strict=False):
        for c in items:
            df = pd.read_csv(c["path"])
            (line,) = ax.plot(df["step"], df["loss"], marker=".", label=c["label"])
            if "val_loss" in df:
                val = df.dropna(subset=["val_loss"])
                ax.plot(val["step"], val["val_loss"], "--", marker="o", color=line.get_color(),
                        label=f"{c['label']}, validation")  # fmt: skip
        ax.set_yscale("log")
        ax.set_xlabel("optimiser step")
        ax.set_ylabel("loss (nats, log scale)")
        ax.set_title(title)
        ax.legend(fontsize=7)
    fig.suptitle("Training loss of the chosen runs")
    return save(fig, stem, caption)


def paper_comparison(comp: pd.DataFrame, stem, caption: str) -> list[Path]:
    """Ours beside the paper: EM, F1 and Recall@5 per strategy, one panel per (comparison,
    dataset); ragtune's bars solid, the paper's hatched."""
    groups = list(dict.fromkeys(zip(comp["comparing"], comp["dataset"], strict=True)))
    fig, axes = plt.subplots(len(groups), 1, figsize=(12, 3.4 * len(groups)), squeeze=False)
    colours = dict(zip(SCORES, ("C0", "C1", "C2"), strict=True))
    for ax, (comparing, dataset) in zip(axes[:, 0], groups, strict=True):
        part = comp[(comp["comparing"] == comparing) & (comp["dataset"] == dataset)]
        strategies = sorted(set(part["strategy"]), key=ORDER.get)
        width = 0.8 / (2 * len(SCORES))
        for s_i, source in enumerate(("ragtune", "paper")):
            rows = part[part["source"] == source].set_index("strategy")
            for m_i, metric in enumerate(SCORES):
                offset = (2 * m_i + s_i - len(SCORES) + 0.5) * width
                ax.bar(
                    [i + offset for i in range(len(strategies))],
                    [rows[metric].get(st, float("nan")) for st in strategies],
                    width,
                    color=colours[metric],
                    hatch="//" if source == "paper" else None,
                    alpha=0.55 if source == "paper" else 1.0,
                    label=f"{metric} ({source})",
                )
        ax.set_xticks(range(len(strategies)), strategies)
        ax.set_ylabel("validation score (%)")
        ax.set_title(f"{dataset}: ragtune vs the paper ({comparing})")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    return save(fig, stem, caption)
