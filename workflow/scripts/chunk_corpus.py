from ragtune.runner import run
from ragtune.steps.corpus import chunk_shard

run(snakemake, lambda s: chunk_shard(s.input.docs, s.output.chunks, s.params.chunking))
