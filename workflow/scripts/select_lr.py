from ragtune.runner import run
from ragtune.selection import select_lr

run(
    snakemake,
    lambda s: select_lr(
        list(s.input.metrics),
        list(s.params.grid),
        s.params.metric,
        s.output[0],
        # read at run time: a change of seeds changes the inputs, which re-runs this already
        s.config.get("seeds"),
        list(s.params.pipelines),
    ),
)
