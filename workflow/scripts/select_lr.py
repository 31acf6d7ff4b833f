from ragtune.runner import run
from ragtune.selection import select_lr

run(
    snakemake,
    lambda s: select_lr(
        list(s.input.metrics), list(s.params.grid), s.params.metric, s.output[0], s.params.seeds
    ),
)
