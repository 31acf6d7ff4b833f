"""Prompt and batched generation on the real packaged generator (converted once per session)."""

import pytest
import torch

from ragtune.evaluation.generate import answer_line, generate_answers
from ragtune.models import load_generator
from ragtune.prompting import TEMPLATE, build_prompt, fit_prompt


def test_prompt_is_the_papers_appendix_a():
    p = build_prompt("Who?", [{"title": "A", "text": "x."}, {"title": "B", "text": "y."}])
    assert p == (
        "You are a helpful general knowledge expert. Answer the following question using the "
        "relevant context. Use as few words as possible.\n### Context:\nA. x.\n\nB. y.\n"
        "### Question:\nWho?\n### Answer:\n"
    )


def test_answer_line():
    assert answer_line(" Paris.\n### Explanation: ...") == "Paris."
    assert answer_line("\n\nParis\n") == "Paris"


@pytest.fixture(scope="module")
def generator(smollm_dir):
    torch.manual_seed(0)
    return load_generator(str(smollm_dir), "float32")


@pytest.mark.slow  # the real SmolLM2, converted from its GGUF
def test_fit_prompt_cuts_context_tail_only(generator):
    _, tok = generator
    chunks = [{"title": f"T{i}", "text": "word " * 200} for i in range(5)]
    p = fit_prompt("What is it?", chunks, tok, max_tokens=300)
    assert len(tok(p, add_special_tokens=False)["input_ids"]) <= 300
    assert p.startswith(TEMPLATE.split("{context}")[0] + "T0. word")
    assert p.endswith("### Question:\nWhat is it?\n### Answer:\n")


@pytest.mark.slow  # the real SmolLM2, converted from its GGUF
def test_batched_early_stop_matches_one_at_a_time(generator):
    model, tok = generator
    ctx = [
        [{"title": "Paris", "text": "Paris is the capital of France."}],
        [
            {
                "title": "Blue whale",
                "text": "The blue whale is the largest animal known to have "
                "ever existed, far longer than any elephant or dinosaur on record.",
            }
        ],
        [
            {
                "title": "Mount Everest",
                "text": "Mount Everest, in the Himalayas, is Earth's "
                "highest mountain above sea level.",
            }
        ],
    ]
    qs = [
        "What is the capital of France?",
        "What is the largest animal?",
        "What is the highest mountain?",
    ]
    prompts = [build_prompt(q, c) for q, c in zip(qs, ctx, strict=True)]
    batched = generate_answers(model, tok, prompts, batch_size=3, max_new_tokens=16, progress=False)
    single = [
        generate_answers(
            model, tok, [p], batch_size=1, max_new_tokens=16, early_stop=False, progress=False
        )[0]
        for p in prompts
    ]
    assert batched == single
    assert "Paris" in batched[0]
    assert all("\n" not in a for a in batched)


@pytest.fixture(scope="module")
def toy_llama(tmp_path_factory):
    """A tiny random Llama whose tokenizer puts BOS in front of every text (as Llama-3's)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ragtune import toy

    folder = toy.save_llama(tmp_path_factory.mktemp("toy") / "llama")
    tok = AutoTokenizer.from_pretrained(folder)
    return AutoModelForCausalLM.from_pretrained(folder).eval(), tok


def test_training_and_evaluation_give_the_model_its_bos_token(toy_llama):
    """Llama-3 / Mistral see BOS first in pre-training: the training example and the
    generation input both start with it, and hold the same prompt tokens."""
    from ragtune.prompting import build_example, prompt_ids

    model, tok = toy_llama
    prompts = [
        build_prompt("Who wrote Hamlet?", [{"title": "Hamlet", "text": "A play."}]),
        build_prompt("Capital of France?", [{"title": "Paris", "text": "The city."}]),
    ]
    example = build_example(tok, prompts[0], "William Shakespeare")
    assert example.input_ids[0] == tok.bos_token_id
    assert example.input_ids[1:3] != [tok.bos_token_id] * 2  # once, not twice
    n_prompt = len(example.input_ids) - sum(example.answer_mask)
    assert example.input_ids[:n_prompt] == prompt_ids(tok, prompts[0])

    seen = []
    original = model.generate

    def record(**kwargs):
        seen.append(kwargs["input_ids"].clone())
        return original(**kwargs)

    model.generate = record
    try:
        generate_answers(model, tok, prompts, batch_size=2, max_new_tokens=2, progress=False)
    finally:
        del model.generate
    (batch,) = seen
    rows = [row[row != tok.pad_token_id].tolist() for row in batch]
    assert sorted(rows) == sorted(prompt_ids(tok, p) for p in prompts)
    assert all(row[0] == tok.bos_token_id for row in rows)


def test_fit_prompt_counts_the_bos_token(toy_llama):
    from ragtune.prompting import prompt_ids

    _, tok = toy_llama
    chunks = [{"title": f"T{i}", "text": "Paris is the capital. " * 20} for i in range(3)]
    for limit in (60, 61, 97):
        assert len(prompt_ids(tok, fit_prompt("Who?", chunks, tok, limit))) <= limit


def test_bos_is_kept_when_the_probe_tokenizes_otherwise_after_it():
    """A tokenizer whose text tokens change after BOS (a SentencePiece space, say): the
    prefix must not silently come out empty."""
    from ragtune.prompting import special_prefix

    class Probe:
        bos_token_id = 1

        def __call__(self, text, add_special_tokens):
            return {"input_ids": [1, 29874] if add_special_tokens else [263]}

    assert special_prefix(Probe()) == [1]


def test_beam_search_is_a_config_choice(toy_llama):
    """generation.num_beams: 1 (greedy) by default; 3 beams answer every prompt too."""
    model, tok = toy_llama
    prompts = ["### Question:\nWhat is it?\n### Answer:\n", "### Answer:\n"]
    greedy = generate_answers(model, tok, prompts, batch_size=2, max_new_tokens=4)
    beams = generate_answers(model, tok, prompts, batch_size=2, max_new_tokens=4, num_beams=3)
    assert len(greedy) == len(beams) == 2 and all(isinstance(a, str) for a in beams)
