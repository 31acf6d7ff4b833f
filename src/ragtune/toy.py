"""Toy models built in memory, with no download: a tiny Llama-shaped generator and a byte-level
BPE tokenizer that adds BOS, as Llama-3's and Mistral's do.

``make gpu-check`` runs every CUDA path of ragtune on them, and the tests use them where the
real SmolLM2 would only make a test slower without testing more.
"""

from __future__ import annotations

# Enough text for the BPE to learn the prompt's words, so sequences stay short.
_CORPUS = [
    "You are a helpful general knowledge expert. Answer the following question using the "
    "relevant context. Use as few words as possible.",
    "### Context:", "### Question:", "### Answer:",
    "Paris is the capital of France. Berlin is the capital of Germany.",
    "Who wrote Hamlet? William Shakespeare wrote Hamlet in about 1600.",
    "The Eiffel Tower stands in Paris. The river Seine flows through the city.",
    "yes no the a an of in on is was who what which when where 0 1 2 3 4 5 6 7 8 9",
]  # fmt: skip


def tokenizer(vocab_size: int = 512, add_bos: bool = True):
    """A ``PreTrainedTokenizerFast`` (byte-level BPE) with ``<s>`` / ``</s>`` / ``<pad>``; with
    ``add_bos`` it puts ``<s>`` before every text, as Llama-3 and Mistral do."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS, trainer)
    if add_bos:
        bos = tok.token_to_id("<s>")
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )


def llama_config(vocab_size: int = 512, **overrides):
    """A Llama-shaped config small enough for a CPU test: 2 layers, hidden 64, grouped KV."""
    from transformers import LlamaConfig

    shape = dict(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        tie_word_embeddings=False,
    )
    return LlamaConfig(**{**shape, **overrides})


def save_llama(folder, seed: int = 0, **overrides):
    """A randomly initialised tiny Llama and its tokenizer, saved as a ``save_pretrained``
    folder (what ragtune's loaders take). Returns the folder."""
    import torch
    from transformers import LlamaForCausalLM

    tok = tokenizer()
    torch.manual_seed(seed)
    vocab = overrides.pop("vocab_size", len(tok))  # a larger table only adds unused rows
    model = LlamaForCausalLM(llama_config(vocab, **overrides))
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def save_minilm(folder, seed: int = 0):
    """A random-weight embedder of all-MiniLM-L6-v2's shape (BERT, 6 layers, hidden 384, mean
    pooling, normalised), as a sentence-transformers folder: what ``make gpu-check`` uses where
    the packaged MiniLM is not installed. Its tokenizer is the toy BPE (a smaller vocabulary
    than the real 30,522 rows, which only leaves rows unused). Returns the folder."""
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel

    tok = tokenizer(add_bos=False)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=384,
        num_hidden_layers=6,
        num_attention_heads=12,
        intermediate_size=1536,
        max_position_embeddings=512,
        pad_token_id=tok.pad_token_id,
    )
    bert = folder / "bert" if hasattr(folder, "joinpath") else f"{folder}/bert"
    BertModel(config).save_pretrained(bert)
    tok.save_pretrained(bert)
    encoder = models.Transformer(str(bert), max_seq_length=256)
    model = SentenceTransformer(
        modules=[encoder, models.Pooling(384, pooling_mode="mean"), models.Normalize()]
    )
    model.save(str(folder))
    return folder
