from ragtune.rule_settings import settings
from ragtune.runner import run
from ragtune.steps.index import embed_shard

run(
    snakemake,
    lambda s: embed_shard(
        s.input.chunks,
        s.output[0],
        s.params.embedder,
        settings(s)["embedding"],
        s.output.get("info"),
    ),
)
