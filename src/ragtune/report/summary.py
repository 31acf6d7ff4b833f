"""What the terminal shows when a run ends: the main table, and where everything else is."""

from __future__ import annotations

from pathlib import Path


def summary(tables_dir: str | Path, figures_dir: str | Path, report: str | Path) -> str | None:
    """The averaged validation table (the paper's Figure 3) and where the rest lives; None
    when the run did not get as far as the tables (a partial target, say)."""
    main = Path(tables_dir) / "averaged.md"
    if not main.exists():
        return None
    where = [
        f"All tables (CSV, Markdown, LaTeX): {tables_dir}/",
        f"Figures (PNG, SVG): {figures_dir}/",
    ]
    if Path(report).exists():
        where.append(f"Report: {report}")
    else:
        where.append(f"Report: make report (snakemake --report {report}) builds {report}")
    bar = "=" * 100
    return "\n".join([bar, "ragtune results", bar, main.read_text().rstrip(), "", *where, bar])
