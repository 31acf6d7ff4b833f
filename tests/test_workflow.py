"""Runs the real workflow end to end on a tiny config: every rule, real models, real data."""

import json
import os
import statistics
from pathlib import Path

import pandas as pd
import pytest
import yaml

from helpers import snakemake, tiny_config, write_config
from ragtune.io import read_jsonl
from ragtune.plan import STRATEGIES, format_lrs
from ragtune.report.build import read_runs

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def tiny_run(mirror, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tiny")
    results = tmp / "results"
    cfg = tiny_config(mirror, results)
    # Ft. Embed asks for 2 GPUs: on this CPU host its job runs as 2 gloo ranks under torchrun.
    cfg["resources"]["train_embedder"] = 2
    # One Ft. Embed. point: a torchrun job costs ~38 s of CPU here against ~11 s for one rank,
    # and Ft. Gen.'s two points already test choosing among a grid's runs end to end.
    cfg["strategies"]["ft_embed"]["lrs"] = [1e-4]
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
        "retrieve_tuned",
        "evaluate",
        "convert_generator",
        "train_embedder",
        "train_generator",
        "train_joint",
        "select_lr",
        "tables",
        "figures",
        "report_config",
    }
    assert {p.name for p in (results / "logs").iterdir()} == rules
    assert {p.name for p in (results / "benchmarks").iterdir()} == rules
    for log in (results / "logs").rglob("*.log"):
        assert "rule finished" in log.read_text(), log
        # Every source is local: no job asked the Hub for anything.
        assert "Hugging Face Hub offline" in log.read_text(), log


def test_a_two_gpu_rule_ran_under_torchrun(tiny_run):
    _, results, _ = tiny_run
    infos = list((results / "hotpotqa/models/minilm/ft_embed").glob("lr*/train.json"))
    assert infos
    for info in infos:
        assert json.loads(info.read_text())["ranks"] == 2
    for log in (results / "logs/train_embedder").rglob("*.log"):
        text = log.read_text()
        assert "launching 2 ranks" in text and "[rank 1]" in text, log


def test_corpus_is_small_sharded_and_consistent(tiny_run):
    _, results, _ = tiny_run
    corpus = results / "corpus/wiki-mirror"
    chunks = [list(read_jsonl(corpus / f"chunks/shard-00{i}.jsonl")) for i in range(2)]
    assert 150 < sum(map(len, chunks)) < 600
    info = json.loads((corpus / "index/minilm/info.json").read_text())
    assert info["ntotal"] == sum(map(len, chunks)) and info["dim"] == 384


def _size(cfg, split, dataset="hotpotqa"):
    return cfg["datasets"][dataset]["splits"][split]["size"]


def test_splits_are_disjoint_with_gold_titles(tiny_run):
    cfg, results, _ = tiny_run
    for dataset in ("hotpotqa",):
        ids = {}
        for split in ("train", "validation", "test"):
            recs = list(read_jsonl(results / dataset / "qa" / f"{split}.jsonl"))
            assert all(r["gold_titles"] and r["answers"] for r in recs)
            ids[split] = {r["id"] for r in recs}
        assert [len(v) for v in ids.values()] == [_size(cfg, s) for s in ids]
        assert not (ids["train"] & ids["validation"] or ids["validation"] & ids["test"])


def _table(results):
    # LRs stay strings ("1e-04"), and "N/A" stays "N/A".
    return read_runs(results / "tables/all_runs.csv")


LABELS = {s.label: name for name, s in STRATEGIES.items() if s.row}  # the tables' rows
RUNS = "minilm-smollm2"


def _lrs(row):
    lrs = {side: row[col] for side, col in (("embed", "Embed LR"), ("gen", "Gen LR"))}
    return format_lrs(**{side: lr for side, lr in lrs.items() if lr != "N/A"})


def _selected(results, strategy, dataset="hotpotqa"):
    return json.loads((results / dataset / RUNS / strategy / "selected.json").read_text())


def _train_info(path):
    return json.loads(path.read_text())


def test_table_matches_the_metrics_files(tiny_run):
    cfg, results, _ = tiny_run
    k = cfg["retrieval"]["k"]
    table = _table(results)
    # the seven strategies of the paper's Figure 3 x 2 splits, one pipeline, one dataset
    assert len(table) == 14
    paper = [label for label, name in LABELS.items() if STRATEGIES[name].in_paper]
    assert list(dict.fromkeys(table["strategy"])) == paper
    for _, row in table.iterrows():
        run = results / row["dataset"] / RUNS / LABELS[row["strategy"]] / _lrs(row) / row["split"]
        metrics = json.loads((run / "metrics.json").read_text())
        preds = list(read_jsonl(run / "predictions.jsonl"))
        n = _size(cfg, row["split"])
        assert row["n"] == metrics["n"] == len(preds) == n
        assert row["EM"] == metrics["em"]
        assert row["F1"] == pytest.approx(round(100 * sum(p["f1"] for p in preds) / n, 2))
        assert row["Recall@k"] == pytest.approx(round(100 * sum(p["recall"] for p in preds) / n, 2))
        assert row["k"] == k and all(len(p["retrieved_titles"]) == k for p in preds)
    md = (results / "tables/averaged.md").read_text()
    assert "2-Phase" in md and "RAG-Tok." in md and "hotpotqa EM" in md


def test_winner_is_the_argmax_of_recorded_scores(tiny_run):
    _, results, _ = tiny_run
    table = _table(results)
    for strategy in ("ft_embed", "ft_gen", "two_phase"):
        sel = _selected(results, strategy)
        assert sel["metric"] == "f1" and sel["scores"]
        best = max(sel["scores"].values())
        assert sel["winner"] == next(k for k, v in sel["scores"].items() if v == best)
        # each score is the grid point's recorded validation metric
        for lrs, score in sel["scores"].items():
            m = results / "hotpotqa" / RUNS / strategy / lrs / "validation" / "metrics.json"
            assert json.loads(m.read_text())["f1"] == score
    assert len(_selected(results, "ft_gen")["scores"]) == 2
    # 2-Phase's phase 1 is Ft. Gen.'s winner (phase1: ft_gen): no grid of its own, and phase
    # 2 ran at its LR, with its adapter frozen
    assert not (results / "hotpotqa" / RUNS / "two_phase_1").exists()
    phase1 = _selected(results, "ft_gen")["winner"]
    assert all(lrs.endswith(f"_{phase1}") for lrs in _selected(results, "two_phase")["scores"])
    val = table[table.split == "validation"].set_index("strategy")
    for label, strategy in (("Ft. Embed.", "ft_embed"), ("Ft. Gen.", "ft_gen")):
        assert _lrs(val.loc[label]) == _selected(results, strategy)["winner"]
    assert _lrs(val.loc["Indp."]) == f"{_lrs(val.loc['Ft. Embed.'])}_{_lrs(val.loc['Ft. Gen.'])}"
    # RAG-Seq. and RAG-Tok. train at the LRs 2-Phase chose, as in the paper
    for label in ("2-Phase", "RAG-Seq.", "RAG-Tok."):
        assert _lrs(val.loc[label]) == _selected(results, "two_phase")["winner"]


def test_joint_runs_trained_the_right_sides(tiny_run):
    cfg, results, _ = tiny_run
    lrs = _selected(results, "two_phase")["winner"]
    runs = results / "hotpotqa" / RUNS

    def trained(strategy, point):
        # (Snakemake marks a directory output with a hidden .snakemake_timestamp)
        names = {p.name for p in (runs / strategy / point / "model").iterdir()}
        return {n for n in names if not n.startswith(".")} - {"loss.csv"}

    assert trained("two_phase", lrs) == {"query_encoder"}
    phase1 = json.loads((runs / "two_phase" / lrs / "train.json").read_text())
    assert phase1["generator"].endswith(f"ft_gen/lr{lrs.split('_g')[1]}/adapter"), phase1
    assert trained("rag_seq", lrs) == trained("rag_tok", lrs) == {"adapter", "query_encoder"}
    assert _train_info(runs / "rag_seq" / lrs / "train.json")["loss"] == "rag_sequence"
    assert _train_info(runs / "rag_tok" / lrs / "train.json")["loss"] == "rag_token"
    # a jointly trained query encoder retrieves for its own runs, every evaluation split in
    # one job
    retrieval = results / "hotpotqa/retrieval/minilm" / RUNS / "rag_seq" / lrs
    for split in cfg["evaluation"]["splits"]:
        retrieved = retrieval / f"{split}.jsonl"
        assert len(list(read_jsonl(retrieved))) == _size(cfg, split)


def _device_hours(results, rule, *parts):
    """A job's (seconds, device-hours), from its Snakemake benchmark record and its own device
    record (train.json, or metrics.json for an evaluation)."""
    bench = results / "benchmarks" / rule / f"{Path(*parts)}.jsonl"
    seconds = json.loads(bench.read_text().splitlines()[-1])["s"]
    if rule == "evaluate":
        record = results / parts[0] / Path(*parts[1:]) / "metrics.json"
    else:
        record = results / parts[0] / Path(*parts[1:]) / "train.json"
    info = json.loads(record.read_text())
    assert info["gpu_count"] == 0  # CPU: cost is seconds x threads
    return seconds, seconds * info["cpu_threads"] / 3600


def test_costs_add_up(tiny_run):
    _, results, _ = tiny_run
    table = _table(results)
    val = table[table.split == "validation"].set_index("strategy")
    time, grid = val["Time (h)"], val["Grid cost (device-h)"]
    assert time["No Ft."] == 0 and grid["No Ft."] == 0
    assert time["Indp."] == pytest.approx(time["Ft. Embed."] + time["Ft. Gen."])
    assert grid["Indp."] == pytest.approx(grid["Ft. Embed."] + grid["Ft. Gen."])
    assert grid["Ft. Gen."] >= time["Ft. Gen."] > 0
    # 2-Phase = phase 1 (Ft. Gen.'s winning run) + phase 2, as the paper's Figure 3 counts
    # it, from Snakemake's benchmark records
    lrs = _selected(results, "two_phase")["winner"]
    ds = ("hotpotqa", RUNS)
    phase2 = _device_hours(results, "train_joint", *ds, "two_phase", lrs)[0]
    assert time["2-Phase"] == pytest.approx(time["Ft. Gen."] + phase2 / 3600)
    # the whole 2-Phase search: Ft. Gen.'s grid, and the phase-2 run trained and evaluated on
    # validation
    points = [("two_phase", p) for p in _selected(results, "two_phase")["scores"]]
    cost = grid["Ft. Gen."] + sum(
        _device_hours(results, "train_joint", *ds, st, p)[1]
        + _device_hours(results, "evaluate", *ds, st, p, "validation")[1]
        for st, p in points
    )
    assert len(points) == 1 and grid["2-Phase"] == pytest.approx(cost)
    # RAG-Seq. borrows 2-Phase's search, so that search is part of its cost
    assert grid["RAG-Seq."] > grid["2-Phase"] and time["RAG-Seq."] > 0
    costs = pd.read_csv(results / "tables/cost.csv").set_index(["strategy", "dataset"])
    assert costs.loc[("2-Phase", "all"), "Grid total (device-h)"] == pytest.approx(cost)
    assert costs.loc[("2-Phase", "all"), "Unit"] == "CPU"


def test_every_table_figure_and_the_report(tiny_run):
    cfg, results, _ = tiny_run
    for name in ("all_runs", "per_pipeline", "averaged", "test", "cost", "paper_comparison"):
        for ext in ("csv", "md", "tex"):
            assert (results / "tables" / f"{name}.{ext}").stat().st_size > 200
    for name in ("strategies", "lr_sensitivity", "loss_curves", "paper_comparison"):
        png = results / "figures" / f"{name}.png"
        assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 20_000
        assert (results / "figures" / f"{name}.svg").stat().st_size > 10_000
    comparison = pd.read_csv(results / "tables/paper_comparison.csv")
    assert set(comparison["source"]) == {"ragtune", "paper"}
    # the run's own config, defaults filled in, is in the report
    assert yaml.safe_load((results / "report/config.yaml").read_text())["seed"] == cfg["seed"]
    report = results.parent / "report.html"
    out = snakemake(
        "--cores", "1", "--configfile", str(results.parent / "tiny.yaml"),
        "--directory", str(results.parent), "--report", str(report),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert report.stat().st_size > 100_000


def test_summary_printed_at_the_end(tiny_run):
    _, _, out = tiny_run
    text = out.stdout + out.stderr
    assert "ragtune results" in text and "| RAG-Tok." in text and "report.html" in text
    assert "made by another config" not in text  # this run made its own tables


def test_the_summary_rule_prints_the_table_when_there_is_nothing_to_do(tiny_run, tmp_path):
    """What `make run` ends with: the table of a finished run, though nothing ran (Snakemake
    runs no onsuccess hook then), written to its log too."""
    cfg, results, _ = tiny_run
    path = write_config(cfg, tmp_path / "again.yaml")
    out = snakemake(
        "--cores", "1", "--quiet=all", "--configfile", str(path),
        "--directory", str(results.parent), "summary",
        env={**os.environ, "RAGTUNE_SUMMARY": "0"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("ragtune results") == 1 and "| RAG-Tok." in out.stdout
    assert "| RAG-Tok." in (results / "logs/summary/summary.log").read_text()


def test_rerun_has_nothing_to_do(tiny_run, tmp_path):
    cfg, results, _ = tiny_run
    path = write_config(cfg, tmp_path / "again.yaml")
    out = snakemake(
        "-n", "--cores", "2", "--configfile", str(path), "--directory", str(results.parent)
    )
    assert out.returncode == 0
    assert "Nothing to be done" in out.stdout + out.stderr


def _planned(cfg, results, tmp_path, name):
    """{rule: jobs} a dry run plans on the finished tiny run under ``cfg``."""
    import re

    path = write_config(cfg, tmp_path / f"{name}.yaml")
    out = snakemake(
        "-n", "--cores", "2", "--configfile", str(path), "--directory", str(results.parent)
    )
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    if "Nothing to be done" in text:
        return {}
    stats = text.split("Job stats:")[1]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", stats, re.M)}


def test_the_same_config_in_another_key_order_plans_nothing(tiny_run, tmp_path):
    """Every dict reversed (a yaml.safe_dump round trip sorts them): Snakemake compares params
    by repr, which follows key order, so this once re-ran everything from prepare_qa down."""

    def reordered(value):
        if isinstance(value, dict):
            return {k: reordered(value[k]) for k in reversed(list(value))}
        return value

    cfg, results, _ = tiny_run
    assert _planned(reordered(cfg), results, tmp_path, "reordered") == {}


def test_each_edit_re_runs_exactly_what_reads_it(tiny_run, tmp_path):
    """Params are Snakemake re-run triggers: each rule gets only the keys that shape its
    outputs, and speed-only knobs none."""
    import copy

    cfg, results, _ = tiny_run
    speed = copy.deepcopy(cfg)
    speed["retrieval"]["query_batch_size"] = 7
    speed["embedding"]["batch_size"] = 5
    speed["generation"]["batch_size"] = 3
    speed["training"]["joint"]["rows_per_forward"] = 3
    speed["training"]["checkpoint_every"] = 3
    speed["resources"]["gpu_memory_gb"] = 80
    assert _planned(speed, results, tmp_path, "speed") == {}

    joint = copy.deepcopy(cfg)
    joint["training"]["joint"]["scale"] = 7.0
    rules = _planned(joint, results, tmp_path, "joint")
    assert rules["train_joint"] >= 1
    untouched = {"train_embedder", "train_generator", "embed_corpus", "build_index", "retrieve"}
    assert not untouched & set(rules), rules

    k = copy.deepcopy(cfg)
    k["retrieval"]["k"] = cfg["retrieval"]["k"] - 1
    rules = _planned(k, results, tmp_path, "k")
    # Ft. Gen. trains on the base retrieval; the joint runs follow once its grid is selected
    # again (2-Phase's phase 1 is its winner), so a dry run cannot list them yet.
    assert rules["retrieve"] >= 1 and rules["train_generator"] >= 1
    # Ft. Embed. reads the retrieval only for hard negatives, which are off here
    assert not {"build_index", "embed_corpus", "chunk_corpus", "train_embedder"} & set(rules), rules


# ---- seeds: `seeds: [13, 14]` end to end, on the tiny run's corpus, index, QA and base runs --
SEEDS = [13, 14]
# What a seeded run shares with the tiny run: hard links, so it starts where the tiny run's
# untrained steps ended (mtimes kept, nothing copied) and trains only its seeded runs.
SHARED = ["corpus", "models", "hotpotqa/qa", "hotpotqa/retrieval/minilm/base",
          f"hotpotqa/{RUNS}/no_ft/base/validation"]  # fmt: skip


def _linked_results(tiny_results, results, parts):
    """``parts`` of the tiny run's results, as hard links under ``results`` (mtimes kept)."""
    import shutil

    for part in parts:
        shutil.copytree(tiny_results / part, results / part, copy_function=os.link)


@pytest.fixture(scope="module")
def seeded_run(tiny_run, tmp_path_factory):
    import copy

    tiny_cfg, tiny_results, _ = tiny_run
    tmp = tmp_path_factory.mktemp("seeded")
    results = tmp / "results"
    _linked_results(tiny_results, results, SHARED)
    cfg = copy.deepcopy(tiny_cfg)
    cfg["results"] = str(results)
    cfg["resources"]["train_embedder"] = 1
    # Ft. Embed., Ft. Gen. and Indp. on validation, one LR each: enough to see seeds through
    # training, selection, combination and every table, at a fraction of the full tiny run's
    # jobs. How a grid's points and seeds interleave, and that the mean over seeds picks the
    # winner, are tested without a run (tests/test_plan.py).
    cfg["strategies"] = {"ft_embed": {"lrs": [1e-4]}, "ft_gen": {"lrs": [3e-4]}}
    cfg["evaluation"]["splits"] = ["validation"]
    cfg["seeds"] = SEEDS
    path = write_config(cfg, tmp / "seeded.yaml")
    out = snakemake("--cores", "2", "--configfile", str(path), "--directory", str(tmp))
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    # It reused the tiny run's untrained steps instead of redoing them.
    for rule in ("download_corpus", "embed_corpus", "build_index", "prepare_qa", "retrieve"):
        assert f"rule {rule}:" not in out.stdout, rule
    return cfg, results


def _seed_metrics(results, strategy, lrs):
    path = results / "hotpotqa" / RUNS / strategy / lrs / "validation" / "metrics.json"
    return json.loads(path.read_text())


def test_every_training_job_ran_once_per_seed(seeded_run):
    _, results = seeded_run
    for seed in SEEDS:
        info = results / "hotpotqa" / RUNS / "ft_gen" / f"lr3e-04_s{seed}" / "train.json"
        assert json.loads(info.read_text())["seed"] == seed
    embedder = results / "hotpotqa/models/minilm/ft_embed"
    assert sorted(p.name for p in embedder.iterdir()) == ["lr1e-04_s13", "lr1e-04_s14"]
    # The seeds trained different adapters (LoRA's B starts at zero: A is what a seed draws).
    a, b = (
        (results / "hotpotqa" / RUNS / "ft_gen" / f"lr3e-04_s{s}/adapter").glob("*.safetensors")
        for s in SEEDS
    )
    assert next(a).read_bytes() != next(b).read_bytes()
    # No Ft. trains nothing: one run, no seed.
    assert (results / "hotpotqa" / RUNS / "no_ft" / "base" / "validation").is_dir()


def test_the_selection_records_each_seed_s_score(seeded_run):
    _, results = seeded_run
    sel = json.loads((results / "hotpotqa" / RUNS / "ft_gen" / "selected.json").read_text())
    assert sel["seeds"] == SEEDS and sel["winner"] == "g3e-04"
    per_seed = [_seed_metrics(results, "ft_gen", f"g3e-04_s{s}")["f1"] for s in SEEDS]
    assert sel["seed_scores"]["g3e-04"] == per_seed
    assert sel["scores"]["g3e-04"] == pytest.approx(statistics.fmean(per_seed))
    assert sel["seed_sd"]["g3e-04"] == pytest.approx(statistics.stdev(per_seed))


def test_tables_show_the_mean_and_spread_over_seeds(seeded_run):
    _, results = seeded_run
    runs = read_runs(results / "tables/all_runs.csv").set_index("strategy")
    winner = json.loads((results / "hotpotqa" / RUNS / "ft_gen" / "selected.json").read_text())
    row = runs.loc["Ft. Gen."]
    assert row["Seeds"] == 2
    for metric, field in (("EM", "em"), ("F1", "f1"), ("Recall@k", "recall_at_k")):
        per_seed = [
            _seed_metrics(results, "ft_gen", f"{winner['winner']}_s{s}")[field] for s in SEEDS
        ]
        assert row[metric] == pytest.approx(statistics.fmean(per_seed))
        assert row[f"{metric} sd"] == pytest.approx(statistics.stdev(per_seed))
    assert runs.loc["No Ft.", "EM sd"] != runs.loc["No Ft.", "EM sd"]  # NaN: one run
    # Indp. combines each seed's embedder with the same seed's generator.
    assert runs.loc["Indp.", "Seeds"] == 2
    assert runs.loc["No Ft.", "Seeds"] == 1
    averaged = (results / "tables/averaged.md").read_text()
    assert " ± " in averaged and "training seeds" in averaged


def test_the_cost_counts_every_seed(seeded_run):
    _, results = seeded_run
    cost = read_runs(results / "tables/cost.csv")
    gen = cost[(cost["strategy"] == "Ft. Gen.") & (cost["dataset"] == "hotpotqa")].iloc[0]
    assert gen["Grid training jobs"] == len(SEEDS)
    indp = cost[(cost["strategy"] == "Indp.") & (cost["dataset"] == "hotpotqa")].iloc[0]
    assert indp["Grid training jobs"] == 2 * len(SEEDS)
    per_pipeline = read_runs(results / "tables/per_pipeline.csv").set_index("strategy")
    assert per_pipeline.loc["Ft. Gen.", "Seeds"] == 2


# ---- a config with no strategy but No Ft. ----------------------------------------------------
def test_a_baseline_only_config_runs_to_its_tables(tiny_run, tmp_path):
    """`strategies: {}` (which the schema accepts) runs to its tables and figures; it once
    crashed grouping an empty significance table. On hard links to the tiny run's untrained
    steps and No Ft. runs, so only the report is made."""
    import copy

    tiny_cfg, tiny_results, _ = tiny_run
    results = tmp_path / "results"
    _linked_results(tiny_results, results, [*SHARED, f"hotpotqa/{RUNS}/no_ft/base/test"])
    cfg = copy.deepcopy(tiny_cfg)
    cfg["results"] = str(results)
    cfg["strategies"] = {}
    path = write_config(cfg, tmp_path / "baseline.yaml")
    out = snakemake("--cores", "2", "--configfile", str(path), "--directory", str(tmp_path))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "rule evaluate:" not in out.stdout  # No Ft.'s runs were the tiny run's
    averaged = pd.read_csv(results / "tables/averaged.csv")
    assert list(averaged["strategy"]) == ["No Ft."]
    assert len(pd.read_csv(results / "tables/significance.csv")) == 0
    assert (results / "figures/strategies.png").stat().st_size > 0
    assert "ragtune results" in out.stdout + out.stderr
