from ragtune.retrieval.store import read_manifest
from ragtune.rule_settings import settings
from ragtune.runner import run
from ragtune.steps.evaluate import evaluate

run(
    snakemake,
    lambda s: evaluate(
        s.input.questions,
        s.input.retrieved,
        read_manifest(s.input.store)[1],
        s.params.generator,
        settings(s)["generation"],
        s.output.metrics,
        s.output.predictions,
        extra=dict(s.wildcards),
        decoding=settings(s)["evaluation"]["decoding"],
        scale=settings(s)["training"]["joint"]["scale"],
        base_generator=settings(s)["evaluation"]["base_generator"],
        train_quantize=settings(s)["training"]["generator"]["quantize"],
    ),
)
