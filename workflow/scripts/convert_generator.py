from ragtune.models import convert_gguf
from ragtune.runner import run

run(snakemake, lambda s: convert_gguf(s.params.spec, s.output[0]))
