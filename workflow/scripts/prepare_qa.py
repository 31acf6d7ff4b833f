from ragtune.runner import run
from ragtune.steps.qa import prepare_qa

run(
    snakemake,
    lambda s: prepare_qa(
        s.params.dataset,
        {split: s.output[split] for split in ("train", "validation", "test")},
        s.output.sizes,
        s.params.seed,
    ),
)
