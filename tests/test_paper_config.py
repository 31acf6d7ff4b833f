"""The paper's config plans every stage at full scale (a dry run: no Hub access needed)."""

import re

import yaml

from helpers import REPO, snakemake


def test_paper_config_dry_run_plans_full_scale():
    cfg = yaml.safe_load((REPO / "config/paper.yaml").read_text())
    out = snakemake("-n", "--cores", "8", "--configfile", "config/paper.yaml")
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    counts = {
        m.group(1): int(m.group(2))
        for m in re.finditer(r"^(\w+)\s+(\d+)$", text.split("Job stats:")[1], re.M)
    }
    shards, embedders = cfg["corpus"]["shards"], len(cfg["embedders"])
    datasets, pipelines = len(cfg["datasets"]), len(cfg["pipelines"])
    splits = len(cfg["evaluation"]["splits"])
    assert counts["chunk_corpus"] == shards
    assert counts["embed_corpus"] == shards * embedders
    assert counts["build_index"] == embedders
    lrs_embed = len(cfg["strategies"]["ft_embed"]["lrs"])
    lrs_gen = len(cfg["strategies"]["ft_gen"]["lrs"])
    assert counts["train_embedder"] == datasets * embedders * lrs_embed
    assert counts["train_generator"] == datasets * pipelines * lrs_gen
    assert counts["select_lr"] == datasets * pipelines * 2
    # Before the grids are selected, the plan holds No Ft. on every split and each grid point
    # on validation; the winners' test runs and Indp. join once select_lr has run.
    assert counts["evaluate"] == datasets * pipelines * (splits + lrs_embed + lrs_gen)
    assert "convert_generator" not in counts  # Hub generators load directly
    assert cfg["corpus"]["source"] == {"hub": "MedRAG/wikipedia", "split": "train"}
    assert "MedRAG/wikipedia" in text or counts["download_corpus"] == 1
