from ragtune.plan import lr_value
from ragtune.retrieval.store import read_manifest
from ragtune.rule_settings import settings
from ragtune.runner import run
from ragtune.steps.train import train_generator

run(
    snakemake,
    lambda s: train_generator(
        s.input.questions,
        s.input.retrieved,
        read_manifest(s.input.store)[1],
        s.params.generator,
        s.output.adapter,
        s.output.info,
        lr_value(s.wildcards.lr),
        settings(s)["training"],
        s.params.seed,
    ),
    distributed=True,
)
