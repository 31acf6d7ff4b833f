"""Names in the config become folders: none may escape its own results subfolder. A generator
named '..' once made convert_generator's output the results folder itself, which the atomic
write then removed."""

from __future__ import annotations

import os
import re
from pathlib import Path

import jsonschema
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from snakemake.utils import validate

from helpers import REPO, snakemake, tiny_config, write_config
from ragtune import config
from ragtune.io import atomic_path
from ragtune.plan import Layout

SCHEMA = yaml.safe_load((REPO / "config/schema.yaml").read_text())
NAMED = ("embedders", "generators", "pipelines", "datasets")


def _pattern(section: str) -> str:
    return SCHEMA["properties"][section]["propertyNames"]["pattern"]


@pytest.mark.parametrize("section", NAMED)
@pytest.mark.parametrize("name", ["..", ".", ".hidden", "a/b", "", "-x", "../results"])
def test_the_schema_refuses_names_that_are_no_plain_folder(section, name):
    assert not re.search(_pattern(section), name)
    names_only = {"type": "object", "propertyNames": SCHEMA["properties"][section]["propertyNames"]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({name: {}}, names_only)


def test_the_corpus_name_is_held_to_the_same_rule():
    pattern = SCHEMA["properties"]["corpus"]["properties"]["name"]["pattern"]
    assert not re.search(pattern, "..") and re.search(pattern, "wiki-2024.v1")


def _strictly_inside(path: str, folder: str) -> bool:
    return os.path.dirname(os.path.normpath(path)) == os.path.normpath(folder)


@settings(max_examples=300, deadline=None)
@given(
    generator=st.from_regex(_pattern("generators"), fullmatch=True),
    embedder=st.from_regex(_pattern("embedders"), fullmatch=True),
    pipeline=st.from_regex(_pattern("pipelines"), fullmatch=True),
    dataset=st.from_regex(_pattern("datasets"), fullmatch=True),
)
def test_every_accepted_name_stays_inside_its_own_results_subfolder(
    generator, embedder, pipeline, dataset
):
    layout = Layout("results", "wiki")
    assert _strictly_inside(layout.converted_generator(generator), "results/models")
    assert _strictly_inside(layout.index_dir(embedder), "results/corpus/wiki/index")
    assert _strictly_inside(layout.qa_split(dataset, "train"), f"results/{dataset}/qa")
    assert _strictly_inside(f"results/{dataset}", "results")
    run = layout.run_dir(dataset, pipeline, "ft_gen", "lr1e-04")
    assert os.path.normpath(run).split(os.sep)[:3] == ["results", dataset, pipeline]
    tuned = layout.tuned_embedder_dir(dataset, embedder, "1e-04")
    assert os.path.normpath(tuned).split(os.sep)[:4] == ["results", dataset, "models", embedder]


def test_an_atomic_write_never_removes_a_folder_above_its_output(tmp_path):
    canary = tmp_path / "results" / "models" / "canary.txt"
    canary.parent.mkdir(parents=True)
    canary.write_text("keep me")
    with (
        pytest.raises(ValueError, match="refusing to write .*models/\\.\\."),
        atomic_path(tmp_path / "results" / "models" / "..", is_dir=True),
    ):
        pass
    assert canary.read_text() == "keep me"


def test_a_results_folder_above_the_checkout_is_still_writable(tmp_path, monkeypatch):
    """Only the last part of a path is checked: `results: ../elsewhere` is a user's right."""
    (tmp_path / "repo").mkdir()
    monkeypatch.chdir(tmp_path / "repo")
    with atomic_path(Path("../elsewhere/models/gen"), is_dir=True) as tmp:
        (tmp / "config.json").write_text("{}")
    assert (tmp_path / "elsewhere/models/gen/config.json").exists()


def test_names_of_the_layouts_own_folders_are_refused(mirror, tmp_path):
    cfg = tiny_config(mirror, tmp_path / "results")
    cfg["datasets"] = {"logs": cfg["datasets"]["hotpotqa"]}
    cfg["pipelines"] = {"qa": next(iter(cfg["pipelines"].values()))}
    validate(cfg, str(REPO / "config/schema.yaml"))  # as the Snakefile does: defaults filled
    with pytest.raises(config.ConfigError) as err:
        config.check(cfg)
    assert "datasets.logs: 'logs' is a folder ragtune itself writes" in str(err.value)
    assert "pipelines.qa: 'qa' is a folder ragtune itself writes" in str(err.value)


def test_a_generator_named_dot_dot_stops_the_plan_and_deletes_nothing(mirror, tmp_path):
    """As the probe tried it: a dry run stops naming the key, and the results folder's canary
    survives."""
    results = tmp_path / "results"
    results.mkdir()
    (results / "canary.txt").write_text("keep me")
    cfg = tiny_config(mirror, results)
    cfg["generators"] = {"..": next(iter(cfg["generators"].values()))}
    for pipe in cfg["pipelines"].values():
        pipe["generator"] = ".."
    out = snakemake(
        "-n", "--cores", "1", "--configfile", str(write_config(cfg, tmp_path / "c.yaml"))
    )
    text = out.stdout + out.stderr
    assert out.returncode != 0 and "'..' does not match" in text, text[-2000:]
    assert (results / "canary.txt").read_text() == "keep me"
