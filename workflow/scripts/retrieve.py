from ragtune.retrieval.store import read_manifest
from ragtune.rule_settings import settings
from ragtune.runner import run
from ragtune.steps.retrieve import retrieve

run(
    snakemake,
    lambda s: retrieve(
        list(s.input.questions),
        s.input.index,
        *read_manifest(s.input.store),
        list(s.output),
        s.params.embedder,
        settings(s)["retrieval"],
    ),
)
