"""One place per rule: the facts about a workflow rule that the library needs, beside
``ragtune.plan.STRATEGIES``.

- ``triggers``: the config keys that shape its outputs; their change re-runs it (its
  ``params.settings``, see ``ragtune.rule_settings``);
- ``run_time``: the keys it reads only for speed, memory or a check, which re-run nothing;
- ``hub``: the config key prefixes of the Hub sources it reads (``ragtune.hub`` checks them
  before the first job that does);
- ``batch_knob``: on a GPU, the config key that sizes its batch, which the memory plan names
  when a job would not fit (``ragtune.memory.plan``).

A rule's output paths live in ``ragtune.plan.Layout``; its GPU count in config ``resources``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class RuleSpec:
    triggers: tuple[str, ...] = ()
    run_time: tuple[str, ...] = ()
    hub: tuple[str, ...] = ()
    batch_knob: str | None = None


_SEARCH = ("retrieval.k", "retrieval.nprobe", "retrieval.ef_search", "retrieval.rescore_factor")
_TRAINING = (
    "training.warmup_ratio",
    "training.optimizer",
    "training.weight_decay",
    "training.max_grad_norm",
)
_LORA = ("training.lora_dropout",)
_RUN_TIME_TRAINING = ("training.checkpoint_every", "training.gradient_checkpointing")

_EMBED = RuleSpec(
    triggers=("embedding.max_seq_length",),
    run_time=("embedding.batch_size",),
    hub=("embedders.",),
    batch_knob="embedding.batch_size",
)
_INDEX = RuleSpec(
    triggers=("retrieval.index_factory", "retrieval.train_size"),
    # k is only checked against the corpus here: the index does not depend on it.
    run_time=("retrieval.add_batch_size", "retrieval.k"),
)

RULES: dict[str, RuleSpec] = {
    "download_corpus": RuleSpec(hub=("corpus.source",)),
    "chunk_corpus": RuleSpec(hub=("corpus.chunking.tokenizer",)),
    "prepare_qa": RuleSpec(hub=("datasets.",)),
    "convert_generator": RuleSpec(hub=("generators.",)),
    "embed_corpus": _EMBED,
    "build_index": _INDEX,
    # A run's corpus re-embedded by its own (local) encoder, and its index (train_documents):
    # the base rules' keys.
    "embed_corpus_refreshed": replace(_EMBED, hub=()),
    "build_index_refreshed": _INDEX,
    "retrieve": RuleSpec(
        triggers=_SEARCH,
        run_time=("retrieval.query_batch_size",),
        hub=("embedders.",),
        batch_knob="retrieval.query_batch_size",
    ),
    "retrieve_tuned": RuleSpec(triggers=_SEARCH, run_time=("retrieval.query_batch_size",)),
    "train_embedder": RuleSpec(
        triggers=_TRAINING
        + (
            "training.embedder.loss",
            "training.embedder.batch_size",
            "training.embedder.scale",
            "training.embedder.positives",
            "training.embedder.hard_negatives",
        ),
        # GradCache computes the same loss and gradients as plain MNRL in mini-batches.
        run_time=("training.checkpoint_every", "training.embedder.mini_batch"),
        hub=("embedders.",),
        batch_knob="training.embedder.batch_size (or loss: cached_mnrl with a smaller mini_batch)",
    ),
    "train_generator": RuleSpec(
        triggers=_TRAINING + _LORA + ("training.generator",),
        run_time=_RUN_TIME_TRAINING,
        hub=("generators.",),
        batch_knob="training.generator.batch_size",
    ),
    "train_joint": RuleSpec(
        triggers=_TRAINING
        + _LORA
        + _SEARCH
        + (
            "training.joint.batch_size",
            "training.joint.effective_batch_size",
            "training.joint.scale",
            "training.joint.max_prompt_tokens",
            "training.joint.quantize",
            "training.joint.validation_loss_every",
            "training.joint.validation_questions",
        ),
        run_time=_RUN_TIME_TRAINING + ("training.joint.rows_per_forward",),
        hub=("embedders.", "generators."),
        batch_knob="training.joint.batch_size",
    ),
    "evaluate": RuleSpec(
        triggers=(
            "generation.max_new_tokens",
            "generation.num_beams",
            "generation.max_prompt_tokens",
            "generation.dtype",
            "generation.lora_base",
            "evaluation.decoding",
            "evaluation.base_generator",
            # which base a run without an adapter loads follows how training quantises
            "training.generator.quantize",
        ),
        run_time=("generation.batch_size",),
        hub=("embedders.", "generators."),
        batch_knob="generation.batch_size",
    ),
}


def readers(prefix: str) -> set[str]:
    """The rules that read the Hub sources under a config key prefix."""
    return {name for name, spec in RULES.items() if prefix in spec.hub}
