"""A bad config fails at parse time, before any job, and says which key and how to fix it."""

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
