from ragtune.rule_settings import settings
from ragtune.runner import run
from ragtune.steps.index import build_index

run(
    snakemake,
    lambda s: build_index(
        list(s.input.shards),
        list(s.input.chunks),
        s.output.index,
        s.output.info,
        s.output.store,
        settings(s)["retrieval"],
        s.params.seed,
    ),
)
