from ragtune.report import tables
from ragtune.runner import run

run(
    snakemake,
    lambda s: tables.write(tables.collect(s.params.rows), s.output.csv, s.output.md),
)
