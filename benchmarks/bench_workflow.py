"""Workflow overheads, against Snakemake's own start-up measured in the same run.

- planning: `snakemake -n` of the paper config's full DAG (target: under 10 s);
- report: every table and figure rebuilt from an existing `results/` (`--forcerun tables`),
  then `--report` (target: under 30 s). Skipped when no finished run is there.

    python -m benchmarks.bench_workflow
"""

from __future__ import annotations

import subprocess
import sys

from benchmarks.common import REPO, report, timed

SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def _run(*args: str) -> None:
    out = subprocess.run([*SNAKEMAKE, *args], cwd=REPO, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"snakemake {' '.join(args)} failed:\n{out.stderr[-3000:]}")


def main() -> dict:
    _, startup = timed(_run, "--version")
    _, planning = timed(_run, "-n", "--cores", "8", "--configfile", "config/paper.yaml")
    result = {
        "snakemake_startup_s": round(startup, 2),
        "paper_dry_run_s": round(planning, 2),
        "paper_dry_run_vs_startup": round(planning / startup, 2),
    }
    if (REPO / "results/tables/averaged.csv").exists():
        _, tables = timed(_run, "--cores", "2", "--forcerun", "tables")
        _, html = timed(_run, "--cores", "1", "--report", "results/report.html")
        result |= {
            "tables_and_figures_s": round(tables, 2),
            "report_html_s": round(html, 2),
            "report_total_s": round(tables + html, 2),
            "report_total_vs_startup": round((tables + html) / startup, 2),
        }
    return report("workflow", result)


if __name__ == "__main__":
    main()
