"""Model architectures for the memory plan: from a model's own config, or, for the paper's four
models, from numbers shipped here, so that the plan of config/paper.yaml runs offline.

The numbers are those of each model's config.json on the Hub (the fields the memory estimate
reads: shape of every weight matrix, attention heads, vocabulary, position table).
"""

from __future__ import annotations

from pathlib import Path

# Hub id -> (transformers model_type, config fields). sentence-transformers models also carry
# the max_seq_length their encoder truncates to (sentence_bert_config.json).
PAPER_MODELS = {
    "meta-llama/Meta-Llama-3-8B-Instruct": (
        "llama",
        dict(
            vocab_size=128256,
            hidden_size=4096,
            intermediate_size=14336,
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=8,
            max_position_embeddings=8192,
            rope_theta=500000.0,
            rms_norm_eps=1e-5,
            tie_word_embeddings=False,
            bos_token_id=128000,
            eos_token_id=128009,
        ),
    ),
    "mistralai/Mistral-7B-Instruct-v0.1": (
        "mistral",
        dict(
            vocab_size=32000,
            hidden_size=4096,
            intermediate_size=14336,
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=8,
            max_position_embeddings=32768,
            sliding_window=4096,
            rope_theta=10000.0,
            rms_norm_eps=1e-5,
            tie_word_embeddings=False,
            bos_token_id=1,
            eos_token_id=2,
        ),
    ),
    "sentence-transformers/all-MiniLM-L6-v2": (
        "bert",
        dict(
            vocab_size=30522,
            hidden_size=384,
            intermediate_size=1536,
            num_hidden_layers=6,
            num_attention_heads=12,
            max_position_embeddings=512,
            type_vocab_size=2,
            max_seq_length=256,
        ),
    ),
    "sentence-transformers/all-mpnet-base-v2": (
        "mpnet",
        dict(
            vocab_size=30527,
            hidden_size=768,
            intermediate_size=3072,
            num_hidden_layers=12,
            num_attention_heads=12,
            max_position_embeddings=514,
            relative_attention_num_buckets=32,
            max_seq_length=384,
        ),
    ),
}


class ArchitectureUnknownError(ValueError):
    pass


def _encoder_max_seq_length(folder: Path) -> int | None:
    import json

    path = folder / "sentence_bert_config.json"
    if path.exists():
        return json.loads(path.read_text()).get("max_seq_length")
    return None


def load(spec: str):
    """The transformers config of the model ``spec`` names (a ragtune model spec), with
    ``max_seq_length`` set for sentence-transformers folders. Local folders and GGUF files are
    read from disk, the paper's models from :data:`PAPER_MODELS`, other Hub ids from the Hub."""
    from transformers import AutoConfig

    from ragtune.models import resolve

    resolved = resolve(spec)
    repo = resolved.location if resolved.kind == "hub" else None
    if repo in PAPER_MODELS:
        model_type, fields = PAPER_MODELS[repo]
        fields = dict(fields)
        max_seq = fields.pop("max_seq_length", None)
        config = AutoConfig.for_model(model_type, **fields)
        config.max_seq_length = max_seq
        return config
    try:
        config = AutoConfig.from_pretrained(resolved.location, **resolved.pretrained_kwargs())
    except OSError as err:
        raise ArchitectureUnknownError(
            f"{spec}: no architecture for the GPU memory plan: {err}. Go online (the Hub "
            "serves the model's config.json), point the spec at a local folder, or set "
            "resources.gpu_memory_check: false"
        ) from err
    if resolved.kind == "dir":
        config.max_seq_length = _encoder_max_seq_length(Path(resolved.location))
    return config
