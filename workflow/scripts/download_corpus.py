from ragtune.runner import run
from ragtune.steps.corpus import download

run(
    snakemake,
    lambda s: download(s.params.corpus, list(s.output.shards), list(s.input.qa), s.params.seed),
)
