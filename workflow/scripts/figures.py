from pathlib import Path

from ragtune.report.build import build_figures
from ragtune.runner import run

run(
    snakemake,
    lambda s: build_figures(
        s.input.runs,
        s.input.comparison,
        s.params.selections,
        s.params.curves,
        Path(s.output.strategies).parent,
        s.params.caption,
        s.params.rows,
        dict(s.params.bootstrap),
        s.params.seed,
    ),
)
