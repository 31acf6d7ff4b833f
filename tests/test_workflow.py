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
        "train_embedder",
        "train_generator",
        "select_lr",
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


def _table(results):
    # LRs stay strings ("1e-04"), and "N/A" stays "N/A".
    return pd.read_csv(
        results / "tables/main.csv", dtype={"Embed LR": str, "Gen LR": str}, keep_default_na=False
    )


def test_table_matches_the_metrics_files(tiny_run):
    _, results, _ = tiny_run
    table = _table(results)
    # 4 strategies x 2 datasets x 2 splits, one pipeline
    assert len(table) == 16
    assert list(dict.fromkeys(table["strategy"])) == ["No Ft.", "Ft. Embed.", "Ft. Gen.", "Indp."]
    for row in table.itertuples():
        lrs = {
            "No Ft.": "base",
            "Ft. Embed.": f"e{row._11}",
            "Ft. Gen.": f"g{row._12}",
            "Indp.": f"e{row._11}_g{row._12}",
        }[row.strategy]
        strategy = {
            "No Ft.": "no_ft",
            "Ft. Embed.": "ft_embed",
            "Ft. Gen.": "ft_gen",
            "Indp.": "indp",
        }[row.strategy]
        run = results / row.dataset / "minilm-smollm2" / strategy / lrs / row.split
        metrics = json.loads((run / "metrics.json").read_text())
        preds = list(read_jsonl(run / "predictions.jsonl"))
        assert row.n == metrics["n"] == len(preds) == 6
        assert row.EM == metrics["em"]
        assert row.F1 == pytest.approx(round(100 * sum(p["f1"] for p in preds) / 6, 2))
        assert row._7 == pytest.approx(round(100 * sum(p["recall"] for p in preds) / 6, 2))
        assert row.k == 5 and all(len(p["retrieved_titles"]) == 5 for p in preds)
    md = (results / "tables/main.md").read_text()
    assert "No Ft." in md and "hotpotqa EM" in md


def test_winner_is_the_argmax_of_recorded_scores(tiny_run):
    cfg, results, _ = tiny_run
    table = _table(results)
    for dataset in ("hotpotqa", "popqa"):
        for strategy, key, column in (("ft_embed", "e", "Embed LR"), ("ft_gen", "g", "Gen LR")):
            sel = json.loads(
                (results / dataset / "minilm-smollm2" / strategy / "selected.json").read_text()
            )
            assert len(sel["scores"]) == 2 and sel["metric"] == "f1"
            assert sel["winner"].startswith(key)
            best = max(sel["scores"].values())
            assert sel["scores"][sel["winner"]] == best
            assert sel["winner"] == next(k for k, v in sel["scores"].items() if v == best)
            # each score is the grid point's recorded validation metric
            for lrs, score in sel["scores"].items():
                m = results / dataset / "minilm-smollm2" / strategy / lrs / "validation"
                assert json.loads((m / "metrics.json").read_text())["f1"] == score
            rows = table[(table.dataset == dataset) & (table.strategy != "No Ft.")]
            chosen = sel["winner"][1:]
            label = {"ft_embed": "Ft. Embed.", "ft_gen": "Ft. Gen."}[strategy]
            assert (rows[rows.strategy == label][column] == chosen).all()
            assert (rows[rows.strategy == "Indp."][column] == chosen).all()


def test_costs_add_up(tiny_run):
    _, results, _ = tiny_run
    table = _table(results)
    for dataset in ("hotpotqa", "popqa"):
        val = table[(table.dataset == dataset) & (table.split == "validation")].set_index(
            "strategy"
        )
        assert val.loc["No Ft.", "Time (h)"] == 0
        indp = val.loc["Ft. Embed.", "Time (h)"] + val.loc["Ft. Gen.", "Time (h)"]
        assert val.loc["Indp.", "Time (h)"] == pytest.approx(indp, abs=2e-4)
        grid = (
            val.loc["Ft. Embed.", "Grid cost (device-h)"]
            + val.loc["Ft. Gen.", "Grid cost (device-h)"]
        )
        assert val.loc["Indp.", "Grid cost (device-h)"] == pytest.approx(grid, abs=2e-4)
        assert val.loc["Ft. Gen.", "Grid cost (device-h)"] >= val.loc["Ft. Gen.", "Time (h)"]


def test_rerun_has_nothing_to_do(tiny_run, tmp_path):
    cfg, results, _ = tiny_run
    path = write_config(cfg, tmp_path / "again.yaml")
    out = snakemake(
        "-n", "--cores", "2", "--configfile", str(path), "--directory", str(results.parent)
    )
    assert out.returncode == 0
    assert "Nothing to be done" in out.stdout + out.stderr
