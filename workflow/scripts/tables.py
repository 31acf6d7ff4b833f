from pathlib import Path

from ragtune.report.build import build_tables
from ragtune.runner import run

run(
    snakemake,
    lambda s: build_tables(
        s.params.rows,
        Path(s.output.all_runs).parent,
        s.params.caption,
        s.params.setup,
        s.params.paper_matches,
        dict(s.params.bootstrap),
        s.params.seed,
    ),
)
