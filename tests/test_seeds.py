"""`seeds: [...]` end to end on a tiny config: every training job once per seed, each LR
selected on its mean over seeds, the tables' mean and spread, and every seed in the cost."""

import json
import statistics

import pytest

from helpers import snakemake, tiny_config, write_config
from ragtune.report.build import read_runs

pytestmark = pytest.mark.workflow

SEEDS = [13, 14]
RUNS = "minilm-smollm2"


@pytest.fixture(scope="module")
def seeded_run(mirror, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("seeded")
    results = tmp / "results"
    cfg = tiny_config(mirror, results)
    # Ft. Embed., Ft. Gen. and Indp. on validation: enough to see seeds through training,
    # selection, combination and every table, at a fraction of the full tiny run's jobs.
    cfg["strategies"] = {"ft_embed": {"lrs": [1e-4]}, "ft_gen": {"lrs": [3e-4, 1e-3]}}
    cfg["evaluation"]["splits"] = ["validation"]
    cfg["seeds"] = SEEDS
    path = write_config(cfg, tmp / "seeded.yaml")
    out = snakemake("--cores", "2", "--configfile", str(path), "--directory", str(tmp))
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    return cfg, results


def _metrics(results, strategy, lrs):
    path = results / "hotpotqa" / RUNS / strategy / lrs / "validation" / "metrics.json"
    return json.loads(path.read_text())


def test_every_training_job_ran_once_per_seed(seeded_run):
    _, results = seeded_run
    for lr in ("3e-04", "1e-03"):
        for seed in SEEDS:
            info = results / "hotpotqa" / RUNS / "ft_gen" / f"lr{lr}_s{seed}" / "train.json"
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


def test_each_lr_is_selected_on_its_mean_over_seeds(seeded_run):
    _, results = seeded_run
    sel = json.loads((results / "hotpotqa" / RUNS / "ft_gen" / "selected.json").read_text())
    assert sel["seeds"] == SEEDS
    for lrs in ("g3e-04", "g1e-03"):
        per_seed = [_metrics(results, "ft_gen", f"{lrs}_s{s}")["f1"] for s in SEEDS]
        assert sel["seed_scores"][lrs] == per_seed
        assert sel["scores"][lrs] == pytest.approx(statistics.fmean(per_seed))
        assert sel["seed_sd"][lrs] == pytest.approx(statistics.stdev(per_seed))
    best = max(sel["scores"].values())  # a tie goes to the grid's first LR
    assert sel["winner"] == next(k for k, v in sel["scores"].items() if v == best)


def test_tables_show_the_mean_and_spread_over_seeds(seeded_run):
    _, results = seeded_run
    runs = read_runs(results / "tables/all_runs.csv").set_index("strategy")
    winner = json.loads((results / "hotpotqa" / RUNS / "ft_gen" / "selected.json").read_text())
    row = runs.loc["Ft. Gen."]
    assert row["Seeds"] == 2
    for metric, field in (("EM", "em"), ("F1", "f1"), ("Recall@k", "recall_at_k")):
        per_seed = [_metrics(results, "ft_gen", f"{winner['winner']}_s{s}")[field] for s in SEEDS]
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
    assert gen["Grid training jobs"] == 2 * len(SEEDS)
    indp = cost[(cost["strategy"] == "Indp.") & (cost["dataset"] == "hotpotqa")].iloc[0]
    assert indp["Grid training jobs"] == 3 * len(SEEDS)
    per_pipeline = read_runs(results / "tables/per_pipeline.csv").set_index("strategy")
    assert per_pipeline.loc["Ft. Gen.", "Seeds"] == 2
