import pytest

from helpers import mirror_corpus_files
from ragtune.data.corpus import focus, iter_documents, shard_documents
from ragtune.data.qa import carve, normalise
from ragtune.data.sources import load_split
from ragtune.io import read_jsonl, write_jsonl


def test_hotpotqa_mirror_loads_through_datasets_and_normalises(mirror):
    source = {"files": {"train": str(mirror / "hotpotqa/train.jsonl.gz")}}
    recs = normalise(load_split(source, "train"), "hotpotqa", "train")
    assert len(recs) == 100
    first = recs[0]
    assert first["id"] == "5a77ec115542992a6e59dff7"
    assert first["answers"] == ["a spirit"]
    assert first["gold_titles"] == ["Alû", "Lilu (mythology)"]


def test_popqa_possible_answers_are_decoded(mirror):
    source = {"files": {"test": str(mirror / "popqa/test.jsonl.gz")}}
    recs = normalise(load_split(source, "test"), "popqa", "test")
    assert len(recs) == 1000
    george = recs[0]
    assert george["answers"][:2] == ["politician", "political leader"]
    assert george["gold_titles"] == ["George Rankin"]


def test_missing_columns_name_the_schema():
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['s_wiki_title'\].*akariasai/PopQA"):
        normalise([{"id": 1, "question": "q", "possible_answers": "[]"}], "popqa", "f.jsonl")


def test_carve_is_disjoint_deterministic_and_sized():
    pools = {"test": [{"id": str(i)} for i in range(100)]}
    plan = {
        s: {"from": "test", "size": n} for s, n in (("train", 50), ("validation", 20), ("test", 30))
    }
    a, b = carve(pools, plan, seed=1), carve(pools, plan, seed=1)
    assert a == b
    ids = [{r["id"] for r in a[s]} for s in ("train", "validation", "test")]
    assert [len(x) for x in ids] == [50, 20, 30]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert carve(pools, plan, seed=2)["train"] != a["train"]


def test_carve_rejects_oversized_plan():
    pools = {"validation": [{"id": str(i)} for i in range(10)]}
    plan = {
        "train": {"from": "validation", "size": 5},
        "validation": {"from": "validation", "size": 5},
        "test": {"from": "validation", "size": 1},
    }
    with pytest.raises(ValueError, match="ask for 11 questions.*only 10"):
        carve(pools, plan, seed=0)


def test_corpus_mirror_streams_with_field_mapping(mirror):
    corpus = {
        "source": {"files": [str(mirror / "wikipedia/chunks.jsonl.gz")]},
        "id_field": "id",
        "title_field": "title",
        "text_field": "content",
        "limit": 3,
    }
    docs = list(iter_documents(corpus))
    assert len(docs) == 3 and docs[0]["title"] == "Demon Dice"
    assert docs[0]["text"].startswith("Demon Dice, originally published")
    corpus["text_field"] = "body"
    with pytest.raises(KeyError, match="lacks field.*body"):
        list(iter_documents(corpus))


def test_a_truncated_corpus_gz_names_the_file_and_the_key(mirror, tmp_path):
    cut = tmp_path / "chunks.jsonl.gz"
    data = (mirror / "wikipedia/chunks.jsonl.gz").read_bytes()
    cut.write_bytes(data[: len(data) // 3])
    corpus = {
        "source": {"files": [str(cut)]},
        "id_field": "id",
        "title_field": "title",
        "text_field": "content",
    }
    with pytest.raises(ValueError, match=f"corpus.source.files: {cut} is corrupt or truncated"):
        list(iter_documents(corpus))


def test_focus_keeps_gold_and_a_seeded_sample():
    docs = [{"id": str(i), "title": f"t{i}", "text": ""} for i in range(200)]
    kept = focus(iter(docs), {"t5", "t150"}, distractors=10, seed=3)
    titles = [d["title"] for d in kept]
    assert {"t5", "t150"} <= set(titles) and len(kept) == 12
    assert [int(d["id"]) for d in kept] == sorted(int(d["id"]) for d in kept)
    assert kept == focus(iter(docs), {"t5", "t150"}, distractors=10, seed=3)


def test_focus_adds_each_questions_nearest_non_gold_documents():
    docs = [{"id": str(i), "title": f"t{i}", "text": f"filler text number {i}"} for i in range(50)]
    docs[7]["text"] = "Marie Curie won the Nobel Prize in Physics"  # gold of the question
    docs[20]["text"] = "The Nobel Prize in Physics is awarded in Stockholm"
    docs[33]["text"] = "Pierre Curie shared the Nobel Prize in Physics"
    question = {"question": "Which Nobel Prize did Marie Curie win?", "gold_titles": ["t7"]}
    kept = focus(iter(docs), {"t7"}, 0, seed=1, questions=[question], nearest=2)
    # Only lexically close documents join the gold one, never the unrelated filler.
    assert [d["title"] for d in kept] == ["t7", "t20", "t33"]
    # Asked for more neighbours than share a term with the question: no filler is taken.
    more = focus(iter(docs), {"t7"}, 0, seed=1, questions=[question], nearest=5)
    assert [d["title"] for d in more] == ["t7", "t20", "t33"]
    with_random = focus(iter(docs), {"t7"}, 5, seed=1, questions=[question], nearest=2)
    assert len(with_random) == 8 and {"t7", "t20", "t33"} <= {d["title"] for d in with_random}


def test_jsonl_roundtrip_is_atomic(tmp_path):
    path = tmp_path / "x.jsonl.gz"
    assert write_jsonl(path, [{"a": 1}, {"b": "é"}]) == 2
    assert list(read_jsonl(path)) == [{"a": 1}, {"b": "é"}]

    def boom():
        yield {"a": 1}
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        write_jsonl(tmp_path / "y.jsonl", boom())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.jsonl.gz"]


def _corpus(files, **extra):
    return {
        "source": {"files": [str(f) for f in files]},
        "id_field": "id",
        "title_field": "title",
        "text_field": "content",
        **extra,
    }


def test_shards_of_a_many_file_source_read_only_their_files(mirror, tmp_path):
    """MedRAG/wikipedia comes in many files: each shard job streams its own share of them."""
    files = mirror_corpus_files(mirror, tmp_path, 4)
    whole = [d["id"] for d in iter_documents(_corpus(files))]
    shards = [[d["id"] for d in shard_documents(_corpus(files), i, 2)] for i in range(2)]
    assert shards[0] == whole[:40] and shards[1] == whole[40:]  # files 0-1, then 2-3
    # Fewer files than shards: every shard streams all and keeps every third document.
    three = [[d["id"] for d in shard_documents(_corpus(files[:2]), i, 3)] for i in range(3)]
    assert sorted(sum(three, [])) == sorted(whole[:40])
    assert three[1] == whole[1:40:3]


def test_focused_shards_split_the_focused_corpus(mirror):
    corpus = _corpus([mirror / "wikipedia/chunks.jsonl.gz"], limit=300, focus={"distractors": 20})
    gold = {"Demon Dice"}
    expected = focus(iter_documents(corpus), gold, 20, seed=5)
    shards = [list(shard_documents(corpus, i, 2, gold, seed=5)) for i in range(2)]
    assert shards[0] + shards[1] != [] and len(shards[0]) + len(shards[1]) == len(expected)
    assert shards[0] == expected[0::2] and shards[1] == expected[1::2]
