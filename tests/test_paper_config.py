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
    assert counts["download_corpus"] == counts["chunk_corpus"] == shards
    assert counts["embed_corpus"] == shards * embedders
    assert counts["build_index"] == embedders
    lrs_embed = len(cfg["strategies"]["ft_embed"]["lrs"])
    lrs_gen = len(cfg["strategies"]["ft_gen"]["lrs"])
    assert counts["train_embedder"] == datasets * embedders * lrs_embed
    assert counts["train_generator"] == datasets * pipelines * lrs_gen
    # 2-Phase's phase 1 is Ft. Gen.'s winner (phase1: ft_gen): no joint job can be planned
    # before Ft. Gen.'s grid is selected. Phase 2 and RAG-Seq./RAG-Tok. (which reuse the
    # 2-Phase LRs, as in the paper) wait for the winners.
    assert cfg["strategies"]["two_phase"]["phase1"] == "ft_gen"
    assert cfg["strategies"]["rag_seq"] == cfg["strategies"]["rag_tok"] == {"lrs_from": "two_phase"}
    assert "train_joint" not in counts
    # ft_embed, ft_gen and two_phase each select a winner
    assert counts["select_lr"] == datasets * pipelines * 3
    # Before the grids are selected, the plan holds No Ft. on every split and each grid point
    # on validation; the winners' test runs and Indp. join once select_lr has run.
    assert counts["evaluate"] == datasets * pipelines * (splits + lrs_embed + lrs_gen)
    assert "convert_generator" not in counts  # Hub generators load directly
    assert cfg["corpus"]["source"] == {"hub": "MedRAG/wikipedia", "split": "train"}


def _joint_jobs(cfg) -> int:
    """Every train_joint job of the whole run (each grid once), through the plan itself,
    with every grid's winner its first point."""
    from ragtune import plan as P

    plan = P.Plan(cfg, lambda d, p, st: plan.grid_lrs(d, p, st)[0])
    jobs = set()
    for d in cfg["datasets"]:
        for p in cfg["pipelines"]:
            for st in plan.rows:
                for g_st, lrs in plan.grid_points(d, p, st):
                    if P.STRATEGIES[g_st].job == "train_joint":
                        jobs.add((d, p, g_st, lrs))
    return len(jobs)


def test_phase_1_as_ft_gen_saves_the_paper_72_joint_runs():
    """The paper's 2 datasets x 4 pipelines x 9 phase-1 LRs: 72 RAG-Token runs that
    phase1: rag_token trains and phase1: ft_gen (the default) does not."""
    cfg = yaml.safe_load((REPO / "config/paper.yaml").read_text())
    ft_gen = _joint_jobs(cfg)
    cfg["strategies"]["two_phase"].update(
        phase1="rag_token", gen_lrs=cfg["strategies"]["ft_gen"]["lrs"]
    )
    assert _joint_jobs(cfg) - ft_gen == 2 * 4 * 9 == 72
    # What remains: 2-Phase's phase 2 (9 embedder LRs) and one RAG-Seq. and one RAG-Tok. run
    # per pipeline and dataset.
    assert ft_gen == 2 * 4 * (9 + 1 + 1)


def test_gain_config_plans_only_the_independent_strategies_on_validation(tmp_path):
    # config/gain.yaml is the README's evidence that Ft. Gen. gains with more data: it must
    # stay runnable, train no joint model, and never evaluate on the test split. An empty
    # results folder: a finished run in results/gain would leave nothing to plan.
    out = snakemake(
        "-n", "--cores", "2", "--configfile", "config/gain.yaml",
        "--config", f"results={tmp_path / 'results'}",
    )  # fmt: skip
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    counts = {
        m.group(1): int(m.group(2))
        for m in re.finditer(r"^(\w+)\s+(\d+)$", text.split("Job stats:")[1], re.M)
    }
    assert counts["train_embedder"] == counts["train_generator"] == 2
    assert "train_joint" not in counts
    # No Ft. plus each grid point, on validation only; Indp. joins once both grids are selected.
    assert counts["evaluate"] == 1 + 2 + 2
    assert "/test/" not in text


def test_each_shipped_config_writes_to_its_own_results_folder():
    folders = {
        path.name: yaml.safe_load(path.read_text())["results"]
        for path in (REPO / "config").glob("*.yaml")
        if path.name != "schema.yaml"
    }
    assert len(set(folders.values())) == len(folders), folders


def test_paper_config_offline_fails_before_any_job_naming_every_hub_source(tmp_path):
    """A real run of the paper config where the Hub cannot be reached (and nothing is cached)
    stops before the first job with one message naming each source, not in a job's log."""
    import os
    import shutil

    cache = REPO / ".snakemake" / "ragtune-memory-plan"  # planned by the dry run above
    if cache.exists():
        shutil.copytree(cache, tmp_path / ".snakemake" / "ragtune-memory-plan")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    out = snakemake(
        "-c1",
        "--configfile",
        str(REPO / "config/paper.yaml"),
        "--directory",
        str(tmp_path),
        "-s",
        str(REPO / "Snakefile"),
        timeout=600,
        env=env,
    )
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert "HubCheckError" in text and "the Hugging Face Hub cannot be reached" in text
    assert "corpus.source.hub: MedRAG/wikipedia" in text
    assert "generators.llama3-8b: meta-llama/Meta-Llama-3-8B-Instruct" in text
    assert "HF_HUB_OFFLINE=1" in text  # the fix
    assert not (tmp_path / "results").exists() and "rule download_corpus" not in text
