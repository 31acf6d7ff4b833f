"""Runs the real workflow end to end on a tiny config: every rule, real models, real data."""

import json

import pandas as pd
import pytest

from helpers import snakemake, tiny_config, write_config
from ragtune.io import read_jsonl

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def tiny_run(mirror, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tiny")
    results = tmp / "results"
    cfg = tiny_config(mirror, results)
    path = write_config(cfg, tmp / "tiny.yaml")
    out = snakemake("--cores", "2", "--configfile", str(path), "--directory", str(tmp))
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    return cfg, results, out


def test_every_rule_ran_and_logged(tiny_run):
    _, results, _ = tiny_run
    rules = {
        "download_corpus",
        "chunk_corpus",
        "embed_corpus",
        "build_index",
        "prepare_qa",
        "retrieve",
        "evaluate",
        "convert_generator",
        "tables",
    }
    assert {p.name for p in (results / "logs").iterdir()} == rules
    assert {p.name for p in (results / "benchmarks").iterdir()} == rules
    for log in (results / "logs").rglob("*.log"):
        assert "rule finished" in log.read_text(), log


def test_corpus_is_small_sharded_and_consistent(tiny_run):
    _, results, _ = tiny_run
    corpus = results / "corpus/wiki-mirror"
    chunks = [list(read_jsonl(corpus / f"chunks/shard-00{i}.jsonl")) for i in range(2)]
    assert 150 < sum(map(len, chunks)) < 600
    info = json.loads((corpus / "index/minilm/info.json").read_text())
    assert info["ntotal"] == sum(map(len, chunks)) and info["dim"] == 384


def test_splits_are_disjoint_with_gold_titles(tiny_run):
    _, results, _ = tiny_run
    for dataset in ("hotpotqa", "popqa"):
        ids = {}
        for split in ("train", "validation", "test"):
            recs = list(read_jsonl(results / dataset / "qa" / f"{split}.jsonl"))
            assert all(r["gold_titles"] and r["answers"] for r in recs)
            ids[split] = {r["id"] for r in recs}
        assert [len(v) for v in ids.values()] == [12, 6, 6]
        assert not (ids["train"] & ids["validation"] or ids["validation"] & ids["test"])


def test_table_matches_the_metrics_files(tiny_run):
    _, results, _ = tiny_run
    table = pd.read_csv(results / "tables/main.csv")
    assert len(table) == 4  # 2 datasets x 2 splits, one pipeline, No Ft.
    assert set(table["strategy"]) == {"No Ft."}
    for row in table.itertuples():
        run = results / row.dataset / "minilm-smollm2/no_ft/base" / row.split
        metrics = json.loads((run / "metrics.json").read_text())
        preds = list(read_jsonl(run / "predictions.jsonl"))
        assert row.n == metrics["n"] == len(preds) == 6
        assert row.EM == metrics["em"]
        assert row.F1 == pytest.approx(round(100 * sum(p["f1"] for p in preds) / 6, 2))
        assert row._7 == pytest.approx(round(100 * sum(p["recall"] for p in preds) / 6, 2))
        assert row.k == 5 and all(len(p["retrieved_titles"]) == 5 for p in preds)
    # The focused corpus holds every gold document, so the base embedder finds most of them.
    assert table["Recall@k"].mean() > 50
    md = (results / "tables/main.md").read_text()
    assert "No Ft." in md and "hotpotqa EM" in md


def test_rerun_has_nothing_to_do(tiny_run, tmp_path):
    cfg, results, _ = tiny_run
    path = write_config(cfg, tmp_path / "again.yaml")
    out = snakemake(
        "-n", "--cores", "2", "--configfile", str(path), "--directory", str(results.parent)
    )
    assert out.returncode == 0
    assert "Nothing to be done" in out.stdout + out.stderr
