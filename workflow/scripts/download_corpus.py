from ragtune.runner import run
from ragtune.steps.corpus import download

run(
    snakemake,
    lambda s: download(
        s.params.corpus,
        s.output.docs,
        int(s.wildcards.shard),
        s.params.shards,
        list(s.input.qa),
        s.params.seed,
    ),
)
