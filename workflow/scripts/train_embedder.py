from ragtune.runner import run
from ragtune.steps.train import train_embedder

run(
    snakemake,
    lambda s: train_embedder(
        s.input.questions,
        list(s.input.embeddings),
        list(s.input.chunks),
        s.params.embedder,
        s.output.model,
        s.output.info,
        float(s.wildcards.lr),
        s.params.training,
        s.params.seed,
        s.input.retrieved,
    ),
    distributed=True,
)
