from ragtune.runner import run
from ragtune.steps.qa import retrieve

run(
    snakemake,
    lambda s: retrieve(
        s.input.questions,
        s.input.index,
        list(s.input.embeddings),
        list(s.input.chunks),
        s.output[0],
        s.params.embedder,
        s.params.retrieval,
    ),
)
