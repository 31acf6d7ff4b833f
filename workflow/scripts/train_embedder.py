from ragtune.plan import lr_value
from ragtune.retrieval.store import read_manifest
from ragtune.rule_settings import settings
from ragtune.runner import run
from ragtune.steps.train import train_embedder

run(
    snakemake,
    lambda s: train_embedder(
        s.input.questions,
        *read_manifest(s.input.store),
        s.params.embedder,
        s.output.model,
        s.output.info,
        lr_value(s.wildcards.lr),
        settings(s)["training"],
        s.params.seed,
        s.input.retrieved or None,  # no input without hard negatives
    ),
    distributed=True,
)
