"""What the terminal shows when a run ends: the main table, and where everything else is."""

from __future__ import annotations

import re
from pathlib import Path


def made_by(table_md: str | Path) -> str | None:
    """The md5 of the config that made a table, from the table's own caption (``config md5
    <md5> (report/config.yaml); ...``); None where it names none. The table's, not the
    report's config copy: that copy is remade early in a run, so after a partial run it named
    this run's config beside a table an older run made."""
    path = Path(table_md)
    if not path.exists():
        return None
    found = re.search(r"config md5 ([0-9a-f]+)", path.read_text(encoding="utf-8"))
    return found.group(1) if found else None


def grid_edge_warnings(per_pipeline: Path, shown: int = 3) -> list[str]:
    """One note on the chosen LRs at the edge of their grid (the best LR may lie outside it),
    naming the first few; per_pipeline's ``LR at grid edge`` column has them all."""
    if not per_pipeline.exists():
        return []
    import pandas as pd

    df = pd.read_csv(per_pipeline, keep_default_na=False, dtype=str)
    if "LR at grid edge" not in df:
        return []
    edges = df[df["LR at grid edge"] != ""]
    if edges.empty:
        return []
    named = "; ".join(
        f"{r['dataset']} / {r['pipeline']} / {r['strategy']} ({r['LR at grid edge']})"
        for _, r in edges.head(shown).iterrows()
    )
    more = f" and {len(edges) - shown} more" if len(edges) > shown else ""
    return [
        f"NOTE: {len(edges)} of {len(df)} rows chose an LR at the edge of its grid: {named}"
        f"{more} (per_pipeline's 'LR at grid edge'). The best LR may lie outside the grid: "
        "widen it in config `strategies` (with 2-point grids every choice is an edge).",
        "",
    ]


def summary(
    tables_dir: str | Path,
    figures_dir: str | Path,
    report: str | Path,
    config_md5: str | None = None,
) -> str | None:
    """The averaged validation table (the paper's Figure 3) and where the rest lives; None
    when the run did not get as far as the tables (a partial target, say). With
    ``config_md5`` (this run's config), a table whose caption names another config says so
    instead of passing for this run's."""
    main = Path(tables_dir) / "averaged.md"
    if not main.exists():
        return None
    warning = []
    if config_md5 is not None:
        made = made_by(main)
        if made != config_md5:
            warning = [
                f"NOTE: this table was made by another config (md5 {made or 'unknown'}), not "
                f"this run's (md5 {config_md5}): this run's targets did not remake it. Run "
                "snakemake without a target to remake the tables for this config.",
                "",
            ]
    warning += grid_edge_warnings(Path(tables_dir) / "per_pipeline.csv")
    where = [
        f"All tables (CSV, Markdown, LaTeX): {tables_dir}/",
        f"Figures (PNG, SVG): {figures_dir}/",
    ]
    if Path(report).exists():
        where.append(f"Report: {report}")
    else:
        where.append(f"Report: make report (snakemake --report {report}) builds {report}")
    bar = "=" * 100
    body = [*warning, main.read_text().rstrip(), "", *where]
    return "\n".join([bar, "ragtune results", bar, *body, bar])


def print_summary(results: str, report: str, config_md5: str, log_file: str | None = None):
    """Print the end-of-run summary (and write it to ``log_file``)."""
    text = summary(f"{results}/tables", f"{results}/figures", report, config_md5)
    text = text or f"ragtune: no tables yet in {results}/tables (run snakemake first)"
    print(text)
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        Path(log_file).write_text(text + "\n")
