from ragtune.runner import run
from ragtune.steps.evaluate import evaluate

run(
    snakemake,
    lambda s: evaluate(
        s.input.questions,
        s.input.retrieved,
        list(s.input.chunks),
        s.params.generator,
        s.params.generation,
        s.output.metrics,
        s.output.predictions,
        extra=dict(s.wildcards),
    ),
)
