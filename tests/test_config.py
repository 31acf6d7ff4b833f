"""A bad config fails at parse time, before any job, and says which key and how to fix it."""

import json

import pytest

from helpers import REPO, snakemake, tiny_config, write_config


@pytest.fixture
def cfg(mirror, tmp_path):
    return tiny_config(mirror, tmp_path / "results", datasets=("hotpotqa", "popqa"))


def _dry_run(cfg, tmp_path):
    path = write_config(cfg, tmp_path / "c.yaml")
    out = snakemake("-n", "--cores", "1", "--configfile", str(path))
    out.text = out.stdout + out.stderr  # Snakemake prints parse errors on stdout
    return out


def test_tiny_config_plans(cfg, tmp_path):
    out = _dry_run(cfg, tmp_path)
    assert out.returncode == 0, out.text
    assert "evaluate" in out.stdout


def test_schema_violation_names_the_key(cfg, tmp_path):
    cfg["retrieval"]["k"] = 0
    out = _dry_run(cfg, tmp_path)
    assert out.returncode != 0
    assert "0 is less than the minimum of 1" in out.text and "k" in out.text


def test_unknown_key_is_rejected(cfg, tmp_path):
    cfg["retrieval"]["topk"] = 5
    out = _dry_run(cfg, tmp_path)
    assert (
        out.returncode != 0 and "config key 'retrieval.topk' is not a ragtune setting" in out.text
    )


def test_evaluating_without_validation_is_rejected(cfg, tmp_path):
    # every LR grid is selected on validation; a test-only evaluation could select nothing
    cfg["evaluation"] = {"splits": ["test"]}
    out = _dry_run(cfg, tmp_path)
    assert out.returncode != 0
    assert "'validation'" in out.text and "splits" in out.text


def test_missing_data_file(cfg, tmp_path):
    cfg["datasets"]["popqa"]["source"]["files"]["test"] = "/nowhere/popqa.jsonl.gz"
    out = _dry_run(cfg, tmp_path)
    assert out.returncode != 0
    assert "datasets.popqa.source.files.test: file '/nowhere/popqa.jsonl.gz' does not exist" in (
        out.text
    )


def test_dataset_without_expected_columns(cfg, tmp_path, mirror):
    # A HotpotQA file declared as PopQA lacks PopQA's columns.
    cfg["datasets"]["popqa"]["source"]["files"]["test"] = str(mirror / "hotpotqa/train.jsonl.gz")
    out = _dry_run(cfg, tmp_path)
    assert out.returncode != 0
    assert "lacks column(s) ['possible_answers', 's_wiki_title']" in out.text
    assert "akariasai/PopQA schema" in out.text


def test_unresolvable_model_and_dangling_pipeline(cfg, tmp_path):
    cfg["generators"]["smollm2"] = "package:not-installed-model-pkg/model.gguf"
    cfg["pipelines"]["minilm-smollm2"]["embedder"] = "mpnet"
    out = _dry_run(cfg, tmp_path)
    assert out.returncode != 0
    assert "generators.smollm2: package:not-installed-model-pkg" in out.text
    assert "is not installed" in out.text
    assert "pipelines.minilm-smollm2.embedder: 'mpnet' is not a key of embedders" in out.text


def test_split_from_unknown_source_split(cfg, tmp_path):
    cfg["datasets"]["hotpotqa"]["splits"]["test"]["from"] = "test"
    out = _dry_run(cfg, tmp_path)
    assert out.returncode != 0
    assert "datasets.hotpotqa.splits.test.from: source split 'test' has no file" in out.text


def test_a_misspelt_key_is_one_line_with_the_nearest_valid_one(tmp_path, mirror):
    cfg = tiny_config(mirror, tmp_path / "results")
    cfg["trainig"] = cfg.pop("training")
    cfg["retrieval"]["rescore_factr"] = 2
    out = snakemake("-n", "--configfile", str(write_config(cfg, tmp_path / "typo.yaml")))
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert "config key 'trainig' is not a ragtune setting; did you mean 'training'?" in text
    assert "'retrieval.rescore_factr' is not a ragtune setting; did you mean " in text
    assert "'retrieval.rescore_factor'?" in text
    assert len(text.splitlines()) < 20, text  # no dump of the schema and config


def test_unknown_keys_inside_named_sections():
    import yaml

    from ragtune.config import unknown_keys

    schema = yaml.safe_load((REPO / "config/schema.yaml").read_text())
    config = {"datasets": {"hotpotqa": {"formatt": "hotpotqa"}}, "pipelines": {"p": {}}}
    assert unknown_keys(config, schema) == [
        "config key 'datasets.hotpotqa.formatt' is not a ragtune setting; did you mean "
        "'datasets.hotpotqa.format'?"
    ]


def _mirror_rows(mirror, n=30):
    import gzip
    import json

    with gzip.open(mirror / "popqa/test.jsonl.gz", "rt") as fh:
        return [json.loads(next(fh)) for _ in range(n)]


def _write_jsonl(path, rows):
    import json

    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_bad_rows_after_the_first_are_named_before_any_job(cfg, tmp_path, mirror):
    """A question column that goes missing from row 2 on, or null, or empty: the file, the
    row and the field, at parse time."""
    rows = _mirror_rows(mirror)
    for r in rows[1:]:
        del r["question"]
    rows[3]["s_wiki_title"] = None
    cfg["datasets"]["popqa"]["source"]["files"]["test"] = _write_jsonl(tmp_path / "p.jsonl", rows)
    out = _dry_run(cfg, tmp_path)
    assert out.returncode != 0
    assert "datasets.popqa.source.files.test" in out.text
    assert "row 2: 'question' is missing" in out.text
    assert "row 4: 'question' is missing; 's_wiki_title' is null" in out.text


def test_splits_larger_than_their_data_fail_before_any_job(cfg, tmp_path, mirror):
    cfg["datasets"]["popqa"]["source"]["files"]["test"] = _write_jsonl(
        tmp_path / "p.jsonl", _mirror_rows(mirror, 10)
    )
    out = _dry_run(cfg, tmp_path)
    assert out.returncode != 0
    assert "train, validation, test ask for 12 questions from source split 'test'" in out.text
    assert "holds 10; lower datasets.popqa.splits.<split>.size" in out.text


def test_a_truncated_gzip_names_the_file_and_the_key(cfg, tmp_path, mirror):
    data = (mirror / "popqa/test.jsonl.gz").read_bytes()
    cut = tmp_path / "test.jsonl.gz"
    cut.write_bytes(data[: len(data) // 2])
    cfg["datasets"]["popqa"]["source"]["files"]["test"] = str(cut)
    out = _dry_run(cfg, tmp_path)
    assert out.returncode != 0
    assert f"datasets.popqa.source.files.test: {cut}: corrupt or truncated after row" in out.text


def test_a_corpus_record_without_text_is_named():
    from ragtune.data.corpus import documents

    corpus = {"id_field": "id", "title_field": "title", "text_field": "content",
              "source": {"files": ["wiki.jsonl"]}}  # fmt: skip
    stream = [
        {"id": "a", "title": "A", "content": "ok"},
        {"id": "b", "title": "B", "content": None},
    ]
    with pytest.raises(ValueError, match=r"corpus record 1 of wiki\.jsonl: 'content' is None"):
        list(documents(stream, corpus))


def test_hub_sources_are_listed_and_local_configs_have_none(cfg):
    import yaml

    from ragtune.hub import sources

    assert sources(cfg) == []
    paper = yaml.safe_load((REPO / "config/paper.yaml").read_text())
    paper["corpus"]["chunking"].setdefault("tokenizer", "sentence-transformers/all-MiniLM-L6-v2")
    found = [str(s) for s in sources(paper)]
    assert "corpus.source.hub: MedRAG/wikipedia" in found
    assert "generators.llama3-8b: meta-llama/Meta-Llama-3-8B-Instruct" in found


def test_k_above_a_built_index_fails_the_plan(cfg, tmp_path):
    """Once the index is built, its size is known at planning time: a k it cannot fill fails
    the plan instead of the retrieval job (and would otherwise say Recall@k of a k that never
    ran)."""
    import json

    info = tmp_path / "results" / "corpus" / cfg["corpus"]["name"] / "index" / "minilm"
    info.mkdir(parents=True)
    (info / "info.json").write_text(json.dumps({"ntotal": 1375}))
    cfg["retrieval"]["k"] = 100000
    out = _dry_run(cfg, tmp_path)
    assert out.returncode != 0
    assert "retrieval.k is 100000, but the index built before" in out.text
    assert "holds only 1375 chunks" in out.text
    cfg["retrieval"]["k"] = 5
    assert _dry_run(cfg, tmp_path).returncode == 0


def _checked(cfg):
    """The planning-time checks in this process: the schema's defaults, then config.check."""
    from snakemake.utils import validate

    from ragtune import config

    validate(cfg, str(REPO / "config/schema.yaml"))
    config.check(cfg)


def test_a_repeated_question_id_is_refused_with_its_rows(cfg, tmp_path, mirror):
    """The probe's case: the same question twice in one file, which the carve put in train and
    in test."""
    from ragtune.config import ConfigError

    rows = _mirror_rows(mirror)
    rows[7]["id"] = rows[2]["id"]
    path = _write_jsonl(tmp_path / "p.jsonl", rows)
    cfg["datasets"]["popqa"]["source"]["files"]["test"] = path
    with pytest.raises(ConfigError) as err:
        _checked(cfg)
    assert "datasets.popqa.source.files.test" in str(err.value)
    assert f"id '{rows[2]['id']}' is on rows 3, 8: ids must be unique" in str(err.value)


def test_a_question_in_two_source_files_is_refused(cfg, tmp_path, mirror):
    import gzip
    import json

    from ragtune.config import ConfigError

    files = cfg["datasets"]["hotpotqa"]["source"]["files"]
    with gzip.open(files["train"], "rt") as fh:
        train = [json.loads(line) for line in fh]
    with gzip.open(files["validation"], "rt") as fh:
        validation = [json.loads(line) for line in fh]
    validation[0]["id"] = train[5]["id"]
    files["validation"] = _write_jsonl(tmp_path / "v.jsonl", validation)
    with pytest.raises(
        ConfigError, match=f"1 id\\(s\\) are in both .* \\(first: {train[5]['id']}\\)"
    ):
        _checked(cfg)


def test_hub_data_keeps_each_ids_first_record():
    from ragtune.data.qa import drop_duplicate_ids

    pools = {
        "validation": [{"id": "a", "n": 3}, {"id": "c", "n": 4}],
        "train": [{"id": "a", "n": 1}, {"id": "b", "n": 2}, {"id": "a", "n": 9}],
    }
    assert drop_duplicate_ids(pools) == 2
    assert pools == {
        "train": [{"id": "a", "n": 1}, {"id": "b", "n": 2}],
        "validation": [{"id": "c", "n": 4}],
    }


def test_a_random_bytes_gz_names_the_file_and_the_key(cfg, tmp_path):
    from ragtune.config import ConfigError

    junk = tmp_path / "test.jsonl.gz"
    junk.write_bytes(bytes(range(256)) * 8)
    cfg["datasets"]["popqa"]["source"]["files"]["test"] = str(junk)
    with pytest.raises(ConfigError, match=f"datasets.popqa.source.files.test: .*{junk}: corrupt"):
        _checked(cfg)


@pytest.mark.parametrize("row", [1, 151])
def test_a_non_utf8_byte_names_its_own_row(cfg, tmp_path, mirror, row):
    from ragtune.config import ConfigError

    rows = _mirror_rows(mirror, 200)
    path = tmp_path / "p.jsonl"
    lines = [json.dumps(r).encode() for r in rows]
    lines[row - 1] = lines[row - 1].replace(b'"question": "', b'"question": "\xff', 1)
    path.write_bytes(b"\n".join(lines) + b"\n")
    cfg["datasets"]["popqa"]["source"]["files"]["test"] = str(path)
    with pytest.raises(ConfigError, match=f"{path}:{row}: not UTF-8"):
        _checked(cfg)


def test_an_empty_string_answer_is_refused_like_no_answer(cfg, tmp_path, mirror):
    from ragtune.config import ConfigError

    rows = _mirror_rows(mirror)
    rows[4]["possible_answers"] = json.dumps([""])
    cfg["datasets"]["popqa"]["source"]["files"]["test"] = _write_jsonl(tmp_path / "p.jsonl", rows)
    with pytest.raises(ConfigError, match="row 5: 'possible_answers' is"):
        _checked(cfg)


def test_an_ivf_index_with_too_few_training_vectors_fails_the_plan(cfg):
    """paper.yaml trained IVF65536 on 2M vectors: faiss's k-means needs 39 per list."""
    from ragtune.config import ConfigError

    cfg["retrieval"].update(index_factory="OPQ64,IVF65536,PQ64", train_size=2_000_000)
    with pytest.raises(ConfigError, match="needs at least 39 x 65536 = 2555904 vectors"):
        _checked(cfg)
    cfg["retrieval"]["train_size"] = 2_555_904
    _checked(cfg)
    cfg["retrieval"].update(index_factory="IVF16,PQ8x4", train_size=600)
    with pytest.raises(ConfigError, match="PQ8x4 .* 39 x 16 = 624"):
        _checked(cfg)


def test_two_phase_phase_1_is_checked_before_any_job(cfg):
    from ragtune.config import ConfigError

    two_phase = cfg["strategies"]["two_phase"]
    assert two_phase["phase1"] == "ft_gen" and "gen_lrs" not in two_phase
    two_phase["gen_lrs"] = [1e-4]
    with pytest.raises(ConfigError, match="gen_lrs would be unused: drop it, or set "
                       "strategies.two_phase.phase1: rag_token"):  # fmt: skip
        _checked(cfg)
    two_phase["phase1"] = "rag_token"
    _checked(cfg)
    del two_phase["gen_lrs"]
    with pytest.raises(ConfigError, match="give strategies.two_phase.gen_lrs"):
        _checked(cfg)
    two_phase["phase1"] = "ft_gen"
    del cfg["strategies"]["ft_gen"]
    with pytest.raises(ConfigError, match="strategies.ft_gen.lrs is not set"):
        _checked(cfg)


def test_two_phase_phase_1_as_its_own_rag_token_grid_plans_its_joint_jobs(cfg, tmp_path):
    """phase1: rag_token trains phase 1 as a RAG-Token grid (train_joint, generator only)
    before any other grid is selected; the default plans no joint job that early."""
    out = _dry_run(cfg, tmp_path)
    assert (
        out.returncode == 0 and "two_phase_1" not in out.stdout and "train_joint" not in out.stdout
    )
    cfg["strategies"]["two_phase"].update(phase1="rag_token", gen_lrs=[3e-4, 1e-3])
    out = _dry_run(cfg, tmp_path)
    assert out.returncode == 0, out.text[-3000:]
    for lrs in ("g3e-04", "g1e-03"):
        assert f"hotpotqa/minilm-smollm2/two_phase_1/{lrs}/model" in out.stdout


def test_beam_search_only_with_concat_decoding(cfg):
    from ragtune.config import ConfigError

    cfg["generation"]["num_beams"] = 3
    _checked(cfg)
    cfg["evaluation"]["decoding"] = "rag_token"
    with pytest.raises(ConfigError, match="num_beams is 3, but evaluation.decoding rag_token"):
        _checked(cfg)
