import pytest

from ragtune import models
from ragtune.data.corpus import chunk_document, window_spans


def test_short_text_is_one_window():
    assert window_spans([(0, 1)] * 5, max_tokens=10, overlap=2) == [(0, -1)]


def test_windows_overlap_and_cover_everything():
    offsets = [(i * 2, i * 2 + 1) for i in range(25)]  # 25 one-char tokens, a space apart
    spans = window_spans(offsets, max_tokens=10, overlap=3)
    # windows start at tokens 0, 7, 14, 21 (step 10 - 3); the last one ends at token 24
    assert spans == [(0, 19), (14, 33), (28, 47), (42, 49)]


def test_overlap_must_be_smaller_than_window():
    with pytest.raises(ValueError, match="overlap"):
        window_spans([(0, 1)] * 20, max_tokens=4, overlap=4)


@pytest.fixture(scope="module")
def tokenizer(minilm_spec):
    return models.load_tokenizer(minilm_spec)


def test_short_chunk_passes_through_unchanged(tokenizer):
    doc = {"id": "d1", "title": "T", "text": "A short paragraph, kept exactly as it is."}
    assert chunk_document(doc, tokenizer, max_tokens=50, overlap=5) == [doc]


def test_long_document_is_split_keeping_title_and_exact_text(tokenizer):
    words = [f"word{i}" for i in range(400)]
    doc = {"id": "d2", "title": "Long", "text": " ".join(words)}
    chunks = chunk_document(doc, tokenizer, max_tokens=64, overlap=8)
    assert len(chunks) > 1
    assert [c["id"] for c in chunks] == [f"d2#{i}" for i in range(len(chunks))]
    assert all(c["title"] == "Long" for c in chunks)
    for c in chunks:
        assert c["text"] in doc["text"]  # sliced from the original, never re-detokenized
        assert len(tokenizer(c["text"], add_special_tokens=False)["input_ids"]) <= 64
    assert chunks[0]["text"].startswith("word0")
    assert chunks[-1]["text"].endswith("word399")
    # consecutive chunks overlap
    assert chunks[1]["text"].split()[0] in chunks[0]["text"]
