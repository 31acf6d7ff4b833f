from ragtune.runner import run
from ragtune.steps.index import build_index

run(
    snakemake,
    lambda s: build_index(
        list(s.input.shards), s.output.index, s.output.info, s.params.retrieval, s.params.seed
    ),
)
