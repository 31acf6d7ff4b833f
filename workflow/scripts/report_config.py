from ragtune.report.build import write_config
from ragtune.runner import run

run(
    snakemake,
    lambda s: write_config(
        dict(s.params.config), s.output[0], s.params.files, s.params.demo_source
    ),
)
