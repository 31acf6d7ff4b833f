from ragtune.retrieval.store import read_manifest
from ragtune.rule_settings import settings
from ragtune.runner import run
from ragtune.steps.train import train_joint

run(
    snakemake,
    lambda s: train_joint(
        s.input.questions,
        s.input.index,
        *read_manifest(s.input.store),
        s.params.embedder,
        s.params.generator,
        s.output.model,
        s.output.info,
        loss=s.params.loss,
        embed_lr=s.params.lrs["embed"],
        gen_lr=s.params.lrs["gen"],
        retrieval=settings(s)["retrieval"],
        training=settings(s)["training"],
        seed=s.params.seed,
        val_questions_path=s.input.val_questions,
    ),
    distributed=True,
)
